"""Format names: what hotfolder may decode (the allowlist) and what it can write."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import PurePath
from typing import Final

from PIL import Image

# Our names for input formats and the Pillow format ids each covers. This is also the decoder
# allowlist: Pillow is never asked to open anything else (no EPS, PSD, WMF, ...).
INPUT_FORMATS: Final[Mapping[str, tuple[str, ...]]] = {
    "jpeg": ("JPEG", "MPO"),
    "png": ("PNG",),
    "tiff": ("TIFF",),
    "gif": ("GIF",),
    "webp": ("WEBP",),
    "bmp": ("BMP",),
    "heif": ("HEIF",),
    "avif": ("AVIF",),
}

# Camera RAW is recognised so that it is never decoded as TIFF (archiving an embedded preview
# as "the photo" would be data loss). Rules may match it only to copy it unchanged.
RAW: Final = "raw"
MATCH_FORMATS: Final[tuple[str, ...]] = (*INPUT_FORMATS, RAW)

# Pillow ids passed to Image.open(formats=...). MPO is produced by the JPEG opener itself.
PIL_ALLOWLIST: Final[tuple[str, ...]] = ("JPEG", "PNG", "TIFF", "GIF", "WEBP", "BMP", "HEIF", "AVIF")

_PIL_TO_NAME: Final[Mapping[str, str]] = {pil: name for name, pils in INPUT_FORMATS.items() for pil in pils}

# A file whose content is not recognised but whose name claims an image format is a broken
# image (quarantined), not an unrelated file (left alone).
_EXTENSION_CLAIMS: Final[Mapping[str, str]] = {
    "jpg": "jpeg", "jpeg": "jpeg", "jpe": "jpeg", "jfif": "jpeg", "mpo": "jpeg",
    "png": "png", "apng": "png",
    "tif": "tiff", "tiff": "tiff",
    "gif": "gif",
    "webp": "webp",
    "bmp": "bmp", "dib": "bmp",
    "heic": "heif", "heif": "heif", "hif": "heif", "heics": "heif",
    "avif": "avif", "avifs": "avif",
}  # fmt: skip

_registered = False


def register_codecs() -> None:
    """Make the HEIF opener known to Pillow and turn bomb warnings into errors; idempotent."""
    global _registered  # noqa: PLW0603 - registration is process-wide by nature
    if _registered:
        return
    import pillow_heif  # noqa: PLC0415 - imported only where images are decoded

    pillow_heif.register_heif_opener()
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    _registered = True


RAW_EXTENSIONS: Final = frozenset(
    {"dng", "nef", "nrw", "cr2", "cr3", "crw", "arw", "srf", "sr2", "orf", "rw2", "raw", "rwl", "pef",
     "srw", "raf", "3fr", "fff", "erf", "kdc", "dcr", "mrw", "mos", "iiq", "x3f", "gpr"}
)  # fmt: skip
_RAW_MAGIC: Final = (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00", b"FUJIFILMCCD-RAW", b"FOVb")
_TAG_DNG_VERSION: Final = 50706


def is_camera_raw(head: bytes, name: PurePath | str) -> bool:
    """Camera RAW by name or content: many RAW files are TIFF containers Pillow would happily open."""
    if PurePath(name).suffix.lower().lstrip(".") in RAW_EXTENSIONS:
        return True
    if head.startswith(_RAW_MAGIC) or head[8:11] == b"CR\x02" or head[4:12] == b"ftypcrx ":
        return True
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        from .metadata import ifd0_tags  # noqa: PLC0415 - metadata imports Pillow plugins lazily

        return _TAG_DNG_VERSION in ifd0_tags(head)
    return False


def sniff(head: bytes, name: PurePath | str = "") -> str | None:
    """Our format name for a file's first bytes (RAW first), by Pillow's own acceptance tests."""
    if is_camera_raw(head, name):
        return RAW
    register_codecs()
    Image.init()
    for pil in PIL_ALLOWLIST:
        entry = Image.OPEN.get(pil)
        if entry is not None and entry[1] is not None and entry[1](head):
            return name_of(pil)
    return None


HEAD_BYTES: Final = 4096


def name_of(pil_format: str | None) -> str | None:
    """Our format name for a Pillow format id, or None if it is outside the allowlist."""
    return _PIL_TO_NAME.get(pil_format or "")


def claimed_format(path: PurePath | str) -> str | None:
    """The format a file's extension claims, or None if the name claims no image format."""
    suffix = PurePath(path).suffix.lower().lstrip(".")
    return _EXTENSION_CLAIMS.get(suffix)
