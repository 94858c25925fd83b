"""ICC profiles hotfolder cannot use never cost the picture (issue 28, case 7): dropped with
`metadata.damaged` and `colour.assumed_srgb`, the pixels converted as sRGB; a valid profile over 1 MB is
written and read back, from a PNG input too."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from conftest import corpus, output, run_outputs


def _srgb() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def _big_srgb(size: int) -> bytes:
    """A valid sRGB profile grown past `size` bytes (its header's size says the grown length)."""
    icc = bytearray(_srgb() + b"\0" * size)
    struct.pack_into(">I", icc, 0, len(icc))
    return bytes(icc)


def _cmyk() -> bytes:
    with Image.open(corpus("multiple_icc_segments.jpg")) as im:
        icc = im.info["icc_profile"]
    assert isinstance(icc, bytes)
    return icc


BAD = {
    "cmyk_on_rgb": _cmyk,
    "lab_on_rgb": lambda: bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()),
    "truncated": lambda: _srgb()[:300],
    "garbage": lambda: b"not an ICC profile at all, " * 20,
}


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("container", ["png", "jpeg", "tiff"])
def test_an_unusable_profile_is_dropped_and_the_picture_kept(
    tmp_path: Path, kind: str, container: str
) -> None:
    """Every output is written (the lossless archive too), each says why the profile went."""
    src = tmp_path / f"{kind}.{container}"
    Image.new("RGB", (64, 48), (200, 100, 50)).save(src, icc_profile=BAD[kind]())
    done = run_outputs(
        tmp_path,
        src,
        output(format="png"),
        output(format="tiff", path="{stem}.tif"),
        output(format="jpeg", path="{stem}.jpg", icc="srgb"),
    )
    assert done.status == "done", done.error
    names = [n for n, _ in done.notes]
    assert "metadata.damaged" in names and "colour.assumed_srgb" in names
    for written in (tmp_path / "out").iterdir():
        with Image.open(written) as im:
            kept = im.info.get("icc_profile")
            if kept:  # the sRGB profile a web output embeds, never the unusable one
                assert ImageCms.ImageCmsProfile(io.BytesIO(kept)).profile.xcolor_space.strip() == "RGB"
                assert kept != BAD[kind]()
            if written.suffix == ".png":
                assert im.convert("RGB").getpixel((3, 3)) == (200, 100, 50)  # lossless, as sRGB


def test_a_profile_over_a_megabyte_is_written_and_read_back(tmp_path: Path) -> None:
    """A valid 1.5 MB profile on a PNG input: the input opens, the archival PNG keeps it byte for byte and
    is read back by its verification (Pillow's 1 MB text-chunk default refused both)."""
    icc = _big_srgb(1536 << 10)
    src = tmp_path / "wide.png"
    Image.new("RGB", (64, 48), (10, 120, 240)).save(src, icc_profile=icc)
    done = run_outputs(tmp_path, src, output(format="png"), output(format="jpeg", path="{stem}.jpg"))
    assert done.status == "done", done.error
    assert "metadata.damaged" not in [n for n, _ in done.notes]
    with Image.open(tmp_path / "out" / "wide.png") as im:
        assert im.info["icc_profile"] == icc
    with Image.open(io.BytesIO((tmp_path / "out" / "wide.jpg").read_bytes())) as im:
        assert im.info["icc_profile"] == icc  # split over APP2 segments
