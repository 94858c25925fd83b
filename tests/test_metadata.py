"""Raw EXIF patching: Orientation, dimensions and IFD1 change in place; every other byte stays."""

from __future__ import annotations

import io

import exifread
import pytest
from PIL import Image

from conftest import corpus
from hotfolder.core.exiftiff import EXIF_PREFIX, ExifStructureError, orientation, patch, with_prefix


def raw_exif(name: str) -> bytes:
    with Image.open(corpus(name)) as im:
        return with_prefix(im.info["exif"])


def tags(raw: bytes) -> dict[str, str]:
    """Read EXIF with exifread (independent of Pillow) from a bare TIFF block."""
    body = raw[len(EXIF_PREFIX) :] if raw.startswith(EXIF_PREFIX) else raw
    return {k: str(v) for k, v in exifread.process_file(io.BytesIO(body), details=False).items()}


def test_patch_sets_orientation_and_size_only() -> None:
    """Orientation becomes 1 and pixel dimensions are updated; the block keeps its length and tags."""
    raw = raw_exif("samsung_gt-i9000_galaxy_s.jpg")
    assert orientation(raw) == 6
    patched = patch(raw, size=(120, 90), orientation=1, drop_thumbnail=False)
    assert len(patched) == len(raw)
    assert orientation(patched) == 1
    before, after = tags(raw), tags(patched)
    assert after["EXIF ExifImageWidth"] == "120" and after["EXIF ExifImageLength"] == "90"
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed <= {"Image Orientation", "EXIF ExifImageWidth", "EXIF ExifImageLength"}


def test_patch_drops_the_stale_thumbnail() -> None:
    """With drop_thumbnail, IFD1 is unlinked and its bytes blanked."""
    raw = raw_exif("canon_eos_7d.jpg")
    assert "Thumbnail JPEGInterchangeFormat" in tags(raw)
    patched = patch(raw, size=None, orientation=1, drop_thumbnail=True)
    assert not any(k.startswith("Thumbnail") for k in tags(patched))
    assert tags(patched)["Image Model"] == "Canon EOS 7D"


def test_garbage_is_refused_not_misread() -> None:
    """Bytes that are not a TIFF structure raise ExifStructureError."""
    with pytest.raises(ExifStructureError):
        patch(b"Exif\x00\x00garbage", size=None, orientation=1, drop_thumbnail=True)
    assert orientation(b"nonsense") is None
