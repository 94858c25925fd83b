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


def _images(path: Path) -> list[np.ndarray]:
    heif = pillow_heif.open_heif(path)
    return [np.asarray(im.to_pillow().convert("RGB"), dtype=np.int16) for im in heif]


@pytest.mark.parametrize("name", ["example.heic", "spatial_photo.heic"])
def test_every_image_of_a_multi_image_heif_is_kept(tmp_path: Path, name: str) -> None:
    """Both images of the corpus' multi-image HEICs, each close to the source's own (a stereo pair's
    two eyes differ: the second written image matches the source's second, not its first)."""
    done = run_outputs(tmp_path, corpus(name), output(format="heif", path="{stem}.heic"))
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


def test_every_page_of_a_tiff_is_an_image_of_the_heif(tmp_path: Path) -> None:
    done = run_outputs(tmp_path, corpus("multipage.tif"), output(format="heif", path="{stem}.heic"))
    assert done.status == "done", done.error
    heif = pillow_heif.open_heif(tmp_path / "out" / "multipage.heic")
    with Image.open(corpus("multipage.tif")) as tif:
        pages = []
        for index in range(tif.n_frames):
            tif.seek(index)
            pages.append(tif.size)
    assert [im.size for im in heif] == pages


def test_an_animation_to_heif_is_its_first_frame_said(tmp_path: Path) -> None:
    src = tmp_path / "anim.gif"
    src.write_bytes(gif_frames([RED, GREEN, BLUE], [100, 100, 100]))
    done = run_outputs(tmp_path, src, output(format="heif", path="{stem}.heic"))
    assert done.status == "done", done.error
    assert [n for n, _ in done.notes].count("frames.dropped") == 1
    heif = pillow_heif.open_heif(tmp_path / "out" / "anim.heic")
    assert len(heif) == 1
