"""Decode (allowlist, completeness), orient, resize, convert modes and encode each output format."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Final

from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from . import metadata
from .errors import EncodeError, InputError
from .formats import PIL_ALLOWLIST, name_of, register_codecs
from .metadata import Metadata
from .rules import Output

# Pillow format id for each output format name.
_PIL_OUT: Final = {
    "png": "PNG",
    "tiff": "TIFF",
    "jpeg": "JPEG",
    "heif": "HEIF",
    "webp": "WEBP",
    "avif": "AVIF",
}
JPEG_MAX_EXIF: Final = 65533
JPEG_MAX_XMP: Final = 65504
DEFAULT_QUALITY: Final = {"jpeg": 85, "heif": 80, "webp": 85, "avif": 70}
DEFAULT_PNG_LEVEL: Final = 6

# Modes each encoder accepts as they are; anything else is converted explicitly (never by accident).
_NATIVE_MODES: Final = {
    "png": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
    "tiff": {"1", "L", "LA", "RGB", "RGBA", "CMYK", "I;16"},
    "jpeg": {"L", "RGB"},
    "heif": {"L", "RGB", "RGBA"},
    "webp": {"RGB", "RGBA"},
    "avif": {"RGB", "RGBA"},
}
_ALPHA_FORMATS: Final = {"png", "tiff", "heif", "webp", "avif"}


@dataclass
class Notes:
    """Warnings met while producing outputs, returned to the daemon to log (workers do not log)."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def warn(self, event: str, **fields: Any) -> None:
        self.items.append((event, fields))


@dataclass(frozen=True)
class Source:
    """A decoded input: the primary image, loaded, with its metadata captured before any transform."""

    image: Image.Image
    format: str
    meta: Metadata
    frames: int


def identify(data: bytes) -> Image.Image:
    """Open lazily with the format allowlist; raise InputError if the content is not an allowed image."""
    register_codecs()
    try:
        return Image.open(io.BytesIO(data), formats=PIL_ALLOWLIST)
    except UnidentifiedImageError:
        raise InputError("content is not a recognisable image of an allowed format") from None
    # Decoders raise many types on hostile input; every one of them means "this input is bad".
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot open: {type(exc).__name__}: {exc}") from None


def decode(im: Image.Image) -> Source:
    """Load every pixel of the primary image before anything is written."""
    fmt = name_of(im.format)
    if fmt is None:
        raise InputError(f"format {im.format} is not allowed")
    try:
        im.load()
    except Exception as exc:  # noqa: BLE001 - same boundary as identify()
        raise InputError(f"cannot decode {fmt}: {type(exc).__name__}: {exc}") from None
    return Source(image=im, format=fmt, meta=metadata.capture(im), frames=getattr(im, "n_frames", 1))


def upright(src: Source) -> tuple[Image.Image, bool]:
    """The source pixels as a viewer shows them, and whether a rotation had to be applied."""
    turned = ImageOps.exif_transpose(src.image)
    if turned is None or turned is src.image:
        return src.image, False
    return turned, True


def fit(im: Image.Image, max_edge: int | None) -> Image.Image:
    """Shrink so the long edge is at most max_edge; never enlarge."""
    if max_edge is None or max(im.size) <= max_edge:
        return im
    scale = max_edge / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    if im.mode in {"1", "P"}:
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def to_mode(im: Image.Image, fmt: str) -> Image.Image:
    """Convert to a mode the encoder holds faithfully; alpha is flattened only where it cannot be kept."""
    if im.mode in _NATIVE_MODES[fmt] and not (im.mode == "P" and fmt != "png"):
        return im
    if im.mode.startswith("I;16") or im.mode in {"I", "F"}:
        if fmt in {"png", "tiff"} and im.mode.startswith("I;16"):
            return im.convert("I;16") if fmt == "png" else im
        # Scale 16-bit (or wider) samples into 8 bits; convert("L") would clamp instead.
        return im.point(lambda v: v / 256).convert("L") if im.mode != "F" else im.convert("L")
    has_alpha = im.has_transparency_data or im.mode in {"RGBA", "LA", "PA", "RGBa"}
    if has_alpha:
        rgba = im.convert("RGBA")
        if fmt in _ALPHA_FORMATS:
            return rgba
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if im.mode in {"1", "L"} and "L" in _NATIVE_MODES[fmt]:
        return im.convert("L")
    return im.convert("RGB")


def encode(im: Image.Image, output: Output, meta: Metadata, fp: IO[bytes], *, notes: Notes) -> None:
    """Write one image to fp in the output's format, passing every metadata item explicitly."""
    fmt = output.format
    im = im.copy() if im.info else im
    im.info = {}  # nothing may travel implicitly: every item is passed below
    writer = _WRITERS[fmt]
    try:
        writer(im, output, meta, fp, notes)
    except (OSError, ValueError, KeyError) as exc:
        raise EncodeError(f"cannot write {fmt}: {type(exc).__name__}: {exc}") from exc


def _exif_for_jpeg(meta: Metadata, notes: Notes) -> bytes | None:
    if meta.exif is None or len(meta.exif) <= JPEG_MAX_EXIF:
        return meta.exif
    notes.warn("metadata.dropped", item="exif", format="jpeg", error=f"{len(meta.exif)} bytes > APP1 limit")
    return None


def _write_jpeg(im: Image.Image, output: Output, meta: Metadata, fp: IO[bytes], notes: Notes) -> None:
    kwargs: dict[str, Any] = {"quality": output.quality or DEFAULT_QUALITY["jpeg"], "optimize": False}
    exif = _exif_for_jpeg(meta, notes)
    if exif:
        kwargs["exif"] = exif
    if meta.icc:
        kwargs["icc_profile"] = meta.icc
    if meta.xmp:
        if len(meta.xmp) <= JPEG_MAX_XMP:
            kwargs["xmp"] = meta.xmp
        else:
            notes.warn(
                "metadata.dropped", item="xmp", format="jpeg", error=f"{len(meta.xmp)} bytes > APP1 limit"
            )
    im.save(fp, "JPEG", **kwargs)


def _write_png(im: Image.Image, output: Output, meta: Metadata, fp: IO[bytes], notes: Notes) -> None:
    level = DEFAULT_PNG_LEVEL if output.compress_level is None else output.compress_level
    kwargs: dict[str, Any] = {"compress_level": level}
    if meta.exif:
        kwargs["exif"] = meta.exif
    if meta.icc:
        kwargs["icc_profile"] = meta.icc
    if meta.xmp:
        # The PNG writer ignores xmp=; XMP lives in an iTXt chunk with this keyword.
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", meta.xmp.decode("utf-8", "replace"), zip=False)
        kwargs["pnginfo"] = info
    im.save(fp, "PNG", **kwargs)


def _write_tiff(im: Image.Image, output: Output, meta: Metadata, fp: IO[bytes], notes: Notes) -> None:
    kwargs: dict[str, Any] = {"compression": "tiff_adobe_deflate"}
    if meta.icc:
        kwargs["icc_profile"] = meta.icc
    if meta.exif:
        ex = Image.Exif()
        ex.load(meta.exif)
        if meta.xmp:
            ex[700] = meta.xmp
        kwargs["exif"] = ex
    im.save(fp, "TIFF", **kwargs)


def _write_modern(pil_format: str) -> Callable[[Image.Image, Output, Metadata, IO[bytes], Notes], None]:
    def write(im: Image.Image, output: Output, meta: Metadata, fp: IO[bytes], notes: Notes) -> None:
        kwargs: dict[str, Any] = {"quality": output.quality or DEFAULT_QUALITY[output.format]}
        if meta.exif:
            kwargs["exif"] = meta.exif
        if meta.icc:
            kwargs["icc_profile"] = meta.icc
        if meta.xmp:
            kwargs["xmp"] = meta.xmp
        im.save(fp, pil_format, **kwargs)

    return write


_WRITERS: Final = {
    "jpeg": _write_jpeg,
    "png": _write_png,
    "tiff": _write_tiff,
    "heif": _write_modern("HEIF"),
    "webp": _write_modern("WEBP"),
    "avif": _write_modern("AVIF"),
}


def verify(path_or_fp: Any, expected_size: tuple[int, int], output: Output) -> None:
    """Re-open a written output and decode it fully; raise EncodeError if it is not what was meant."""
    register_codecs()
    try:
        with Image.open(path_or_fp, formats=(_PIL_OUT[output.format],)) as check:
            check.load()
            size = check.size
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the output is bad
        raise EncodeError(f"written {output.format} does not decode: {type(exc).__name__}: {exc}") from None
    if size != expected_size:
        raise EncodeError(f"written {output.format} is {size}, expected {expected_size}")
