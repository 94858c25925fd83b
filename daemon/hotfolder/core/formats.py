"""The format table: what hotfolder may decode (the allowlist), what it can write, and the names and
extensions of each. Data only, so settings and `check` know formats without importing a codec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    "jxl": ("JXL",),  # hotfolder's own opener (decide/jxlimage.py), libjxl underneath
}

# Camera RAW is recognised so that it is never decoded as TIFF (archiving an embedded preview
# as "the photo" would be data loss). Rules may match it only to copy it unchanged.
RAW: Final = "raw"
MATCH_FORMATS: Final[tuple[str, ...]] = (*INPUT_FORMATS, RAW)

# The largest picture decoded unless the config says otherwise (max_image_pixels): admits real 200 MP
# phone photos, refuses the 4 Gpx bombs. Here, not in settings.config, so that a worker's job stack does
# not import the config loader (tomllib and every table's parser: ~10 ms of the fork server's start).
DEFAULT_MAX_PIXELS: Final = 250_000_000

# Pillow ids passed to Image.open(formats=...). MPO is produced by the JPEG opener itself.
PIL_ALLOWLIST: Final[tuple[str, ...]] = ("JPEG", "PNG", "TIFF", "GIF", "WEBP", "BMP", "HEIF", "AVIF", "JXL")

_PIL_TO_NAME: Final[Mapping[str, str]] = {pil: name for name, pils in INPUT_FORMATS.items() for pil in pils}

# A file whose content is not recognised but whose name claims an image format is a broken
# image (quarantined), not an unrelated file (left alone).
_EXTENSION_CLAIMS: Final[Mapping[str, str]] = {
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "jpe": "jpeg",
    "jfif": "jpeg",
    "mpo": "jpeg",
    "png": "png",
    "apng": "png",
    "tif": "tiff",
    "tiff": "tiff",
    "gif": "gif",
    "webp": "webp",
    "bmp": "bmp",
    "dib": "bmp",
    "heic": "heif",
    "heif": "heif",
    "hif": "heif",
    "heics": "heif",
    "avif": "avif",
    "avifs": "avif",
    "jxl": "jxl",
}

RAW_EXTENSIONS: Final = frozenset(
    {
        "dng",
        "nef",
        "nrw",
        "cr2",
        "cr3",
        "crw",
        "arw",
        "srf",
        "sr2",
        "orf",
        "rw2",
        "raw",
        "rwl",
        "pef",
        "srw",
        "raf",
        "3fr",
        "fff",
        "erf",
        "kdc",
        "dcr",
        "mrw",
        "mos",
        "iiq",
        "x3f",
        "gpr",
    }
)


HEAD_BYTES: Final = 4096


def name_of(pil_format: str | None) -> str | None:
    """Our format name for a Pillow format id, or None if it is outside the allowlist."""
    return _PIL_TO_NAME.get(pil_format or "")


def raw_name(name: PurePath | str) -> bool:
    """Whether a file's name says camera RAW (what its content is, only the content says)."""
    return PurePath(name).suffix.lower().lstrip(".") in RAW_EXTENSIONS


def claimed_format(path: PurePath | str) -> str | None:
    """The format a file's extension claims, or None if the name claims no image format."""
    suffix = PurePath(path).suffix.lower().lstrip(".")
    return _EXTENSION_CLAIMS.get(suffix)


@dataclass(frozen=True)
class OutputFormat:
    """What one output format can hold, and how hotfolder writes it."""

    name: str
    # The extensions an output may have (any case): a name that says PNG must hold PNG, because web
    # servers and CDNs set Content-Type from the extension.
    extensions: tuple[str, ...]
    pil: str  # Pillow's id for its writer (and the only opener asked when verifying)
    # Modes the encoder holds exactly; anything else is converted explicitly, never by accident.
    modes: frozenset[str]
    bits: tuple[int, ...]  # sample depths it holds
    alpha: bool
    animation: bool  # frames with timing
    pages: bool  # several images, without timing
    lossless: str  # "always", "option" (`lossless = true`), or "never"
    # x265 and AV1 use every core on their own: such jobs get a lane of half the workers.
    heavy: bool
    profile: str  # the default metadata profile (settings/outputs.py: PROFILES)
    quality: int | None  # the default quality of a lossy encoder
    # Whether it can carry HDR (PQ, HLG) as it is, for `hdr = "keep"`: "yes", "no", or "probe" (only
    # if the installed writers can: render/capabilities.py asks them at start).
    hdr: str = "no"


def _modes(*modes: str) -> frozenset[str]:
    return frozenset(modes)


_TABLE: Final = (
    # name, extensions, Pillow's writer, the modes held exactly, the sample depths held
    OutputFormat(
        "png",
        ("png",),
        "PNG",
        _modes("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
        (8, 16),
        alpha=True,
        animation=True,
        pages=False,
        lossless="always",
        heavy=False,
        profile="archival",
        quality=None,
        hdr="yes",
    ),
    OutputFormat(
        "tiff",
        ("tif", "tiff"),
        "TIFF",
        _modes("1", "L", "LA", "RGB", "RGBA", "CMYK", "I;16"),
        (8, 16),
        alpha=True,
        animation=False,
        pages=True,
        lossless="always",
        heavy=False,
        profile="archival",
        quality=None,
        hdr="yes",
    ),
    OutputFormat(
        "jpeg",
        ("jpg", "jpeg", "jpe"),
        "JPEG",
        _modes("L", "RGB", "CMYK"),
        (8,),
        alpha=False,
        animation=False,
        pages=False,
        lossless="never",
        heavy=False,
        profile="web",
        quality=85,
    ),
    OutputFormat(
        "heif",
        ("heic", "heif", "hif"),
        "HEIF",
        _modes("L", "RGB", "RGBA"),
        (8, 10, 12),
        alpha=True,
        animation=False,
        pages=True,
        lossless="option",
        heavy=True,
        profile="web",
        quality=80,
        hdr="yes",
    ),
    OutputFormat(
        "webp",
        ("webp",),
        "WEBP",
        _modes("RGB", "RGBA"),
        (8,),
        alpha=True,
        animation=True,
        pages=False,
        lossless="option",
        heavy=False,
        profile="web",
        quality=85,
    ),
    OutputFormat(
        "avif",
        ("avif",),
        "AVIF",
        _modes("RGB", "RGBA"),
        (8,),
        alpha=True,
        animation=True,
        pages=False,
        lossless="never",
        heavy=True,
        profile="web",
        quality=70,
        hdr="probe",
    ),
    # JPEG XL (libjxl through render/jxl.py; no Pillow writer, so `pil` names no Pillow plugin). An
    # archive: a JPEG source is transcoded (rebuildable byte for byte), anything else lossless.
    OutputFormat(
        "jxl",
        ("jxl",),
        "JXL",
        _modes("L", "LA", "RGB", "RGBA", "I;16"),
        (8, 16),
        alpha=True,
        animation=False,
        pages=False,
        lossless="option",
        heavy=False,  # libjxl runs on the worker's one thread here (no parallel runner is given)
        profile="archival",
        quality=90,  # web: libjxl's distance 1.0, its own default ("visually lossless")
        hdr="yes",  # PQ and HLG said by the codestream's own colour encoding
    ),
)
FORMATS: Final[Mapping[str, OutputFormat]] = {f.name: f for f in _TABLE}

# Views of the table, for the stages that ask one question of it.
ENCODED_FORMATS: Final = tuple(FORMATS)
OUTPUT_EXTENSIONS: Final = {n: f.extensions for n, f in FORMATS.items()}
NATIVE_MODES: Final = {n: f.modes for n, f in FORMATS.items()}
ALPHA_FORMATS: Final = frozenset(n for n, f in FORMATS.items() if f.alpha)
ANIMATION_FORMATS: Final = frozenset(n for n, f in FORMATS.items() if f.animation)
PAGE_FORMATS: Final = frozenset(n for n, f in FORMATS.items() if f.pages)
HEAVY_FORMATS: Final = frozenset(n for n, f in FORMATS.items() if f.heavy)
PIL_FORMAT: Final = {n: f.pil for n, f in FORMATS.items()}
DEFAULT_QUALITY: Final = {n: f.quality for n, f in FORMATS.items() if f.quality is not None}
