"""Multi-image HEIF (issue 29): `frames = "all"` on a HEIF output keeps every top-level image of a
multi-image HEIF (the primary still primary) and every page of a multi-page TIFF; `frames = "first"`
keeps the primary only; an animation to HEIF stays its first frame, said (pillow-heif writes no
sequences). Read back by pillow-heif itself and compared with the source's images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from conftest import corpus, output, run_outputs
from test_animation import BLUE, GREEN, RED, gif_frames

# x265's fastest preset: which images and metadata a HEIF keeps is the subject here, not its encoder speed.
HEIF = output(format="heif", path="{stem}.heic", preset="ultrafast")


def _images(path: Path) -> list[np.ndarray]:
    heif = pillow_heif.open_heif(path)
    return [np.asarray(im.to_pillow().convert("RGB"), dtype=np.int16) for im in heif]


@pytest.mark.parametrize("name", ["example.heic", "spatial_photo.heic"])
def test_every_image_of_a_multi_image_heif_is_kept(tmp_path: Path, name: str) -> None:
    """Both images of the corpus' multi-image HEICs, each close to the source's own (a stereo pair's
    two eyes differ: the second written image matches the source's second, not its first)."""
    done = run_outputs(tmp_path, corpus(name), HEIF)
    assert done.status == "done", done.error
    written = tmp_path / "out" / (Path(name).stem + ".heic")
    source = pillow_heif.open_heif(corpus(name))
    assert pillow_heif.open_heif(written).primary_index == source.primary_index
    got, want = _images(written), _images(corpus(name))
    assert len(got) == len(want) == 2
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape
        assert float(np.abs(g - w).mean()) < 3.0, f"image {index} differs from the source's"


def test_frames_first_keeps_the_primary_only(tmp_path: Path) -> None:
    done = run_outputs(
        tmp_path, corpus("example.heic"), output(format="heif", path="{stem}.heic", frames="first")
    )
    assert done.status == "done", done.error
    assert len(pillow_heif.open_heif(tmp_path / "out" / "example.heic")) == 1


def test_an_animation_to_heif_is_its_first_frame_said(tmp_path: Path) -> None:
    src = tmp_path / "anim.gif"
    src.write_bytes(gif_frames([RED, GREEN, BLUE], [100, 100, 100]))
    done = run_outputs(tmp_path, src, output(format="heif", path="{stem}.heic"))
    assert done.status == "done", done.error
    assert [n for n, _ in done.notes].count("frames.dropped") == 1
    heif = pillow_heif.open_heif(tmp_path / "out" / "anim.heic")
    assert len(heif) == 1


def _exifs(path: Path) -> list[Image.Exif]:
    """Each image's EXIF as libheif finds it in the container, parsed by Pillow (not by the writer)."""
    found = []
    for im in pillow_heif.open_heif(path):
        exif = Image.Exif()
        if im.info.get("exif"):
            exif.load(im.info["exif"])
        found.append(exif)
    return found


def test_each_image_keeps_its_own_metadata(tmp_path: Path) -> None:
    """The spatial photo's two eyes have their own EXIF (left and right lens) and each keeps its own,
    not the primary's, with GPS stripped from both on a web output (the primary alone has a GPS IFD) and
    XMP from both (the web profile strips it)."""
    done = run_outputs(
        tmp_path,
        corpus("spatial_photo.heic"),
        output(format="heif", path="{stem}.heic", profile="web", preset="ultrafast"),
    )
    assert done.status == "done", done.error
    left, right = _exifs(tmp_path / "out" / "spatial_photo.heic")
    assert "Left" in left.get_ifd(0x8769)[42036] and "Right" in right.get_ifd(0x8769)[42036]
    assert 0x8825 not in left and 0x8825 not in right
    for im in pillow_heif.open_heif(tmp_path / "out" / "spatial_photo.heic"):
        assert not im.info.get("xmp")


def test_every_page_of_a_tiff_is_an_image_of_the_heif_with_its_own_resolution(tmp_path: Path) -> None:
    """multipage.tif's five pages (two at 600 dpi, three at 200) are five HEIF images of the pages'
    sizes, each saying its own page's resolution (one encode for both checks: five 29 MP pages)."""
    done = run_outputs(tmp_path, corpus("multipage.tif"), HEIF)
    assert done.status == "done", done.error
    heif = pillow_heif.open_heif(tmp_path / "out" / "multipage.heic")
    with Image.open(corpus("multipage.tif")) as tif:
        sizes, pages = [], []
        for index in range(tif.n_frames):
            tif.seek(index)
            sizes.append(tif.size)
            pages.append(float(tif.info["dpi"][0]))
    assert [im.size for im in heif] == sizes
    assert pages == [600.0, 600.0, 200.0, 200.0, 200.0]
    assert [float(e[282]) for e in _exifs(tmp_path / "out" / "multipage.heic")] == pages


def test_each_image_keeps_its_own_xmp_on_an_archive(tmp_path: Path) -> None:
    archive = output(format="heif", path="{stem}.heic", profile="archival", preset="ultrafast")
    done = run_outputs(tmp_path, corpus("spatial_photo.heic"), archive)
    assert done.status == "done", done.error
    written = pillow_heif.open_heif(tmp_path / "out" / "spatial_photo.heic")
    assert all(b"CreatorTool>SpatialCapture" in im.info["xmp"] for im in written)
    left, right = _exifs(tmp_path / "out" / "spatial_photo.heic")
    assert 0x8825 in left and 0x8825 not in right  # the archive keeps GPS where the source had it
