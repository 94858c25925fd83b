"""The format table: what hotfolder may decode (the allowlist), what it can write, and the names and
extensions of each. Data only, so settings and `check` know formats without importing a codec."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Final

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

# The extensions an output of each format may have (any case): a name that says PNG must hold PNG,
# because web servers and CDNs set Content-Type from the extension.
OUTPUT_EXTENSIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "jpeg": ("jpg", "jpeg", "jpe"),
    "png": ("png",),
    "tiff": ("tif", "tiff"),
    "heif": ("heic", "heif", "hif"),
    "webp": ("webp",),
    "avif": ("avif",),
}

RAW_EXTENSIONS: Final = frozenset(
    {"dng", "nef", "nrw", "cr2", "cr3", "crw", "arw", "srf", "sr2", "orf", "rw2", "raw", "rwl", "pef",
     "srw", "raf", "3fr", "fff", "erf", "kdc", "dcr", "mrw", "mos", "iiq", "x3f", "gpr"}
)  # fmt: skip


HEAD_BYTES: Final = 4096


def name_of(pil_format: str | None) -> str | None:
    """Our format name for a Pillow format id, or None if it is outside the allowlist."""
    return _PIL_TO_NAME.get(pil_format or "")


def claimed_format(path: PurePath | str) -> str | None:
    """The format a file's extension claims, or None if the name claims no image format."""
    suffix = PurePath(path).suffix.lower().lstrip(".")
    return _EXTENSION_CLAIMS.get(suffix)


# Modes each encoder holds exactly; anything else is converted explicitly, never by accident.
NATIVE_MODES: Final = {
    "png": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
    "tiff": {"1", "L", "LA", "RGB", "RGBA", "CMYK", "I;16"},
    "jpeg": {"L", "RGB", "CMYK"},
    "heif": {"L", "RGB", "RGBA"},
    "webp": {"RGB", "RGBA"},
    "avif": {"RGB", "RGBA"},
}


ALPHA_FORMATS: Final = {"png", "tiff", "heif", "webp", "avif"}


ANIMATION_FORMATS: Final = {"png", "webp", "avif"}  # hold frames with timing


PAGE_FORMATS: Final = {"tiff"}  # hold several images, without timing


PIL_FORMAT: Final = {
    "png": "PNG",
    "tiff": "TIFF",
    "jpeg": "JPEG",
    "heif": "HEIF",
    "webp": "WEBP",
    "avif": "AVIF",
}
