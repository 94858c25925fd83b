"""Decode once (allowlist, completeness, bomb limits, bit depth), then per output: frames, size,
orientation, colour and mode. Encoding each format is encode.py's business."""

from __future__ import annotations

import io
import math
import re
import struct
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any, Final

from PIL import Image, ImageCms, ImageSequence, UnidentifiedImageError

from hotfolder.core.formats import PIL_ALLOWLIST, name_of
from hotfolder.decide.sniff import register_codecs
from hotfolder.errors import EncodeError, InputError
from hotfolder.render import metadata
from hotfolder.render.deep import Deep, load_heif, load_vips
from hotfolder.render.metadata import Metadata
from hotfolder.settings.outputs import Output

DEFAULT_MAX_PIXELS: Final = 250_000_000  # admits real 200 MP phone photos; refuses the 4 Gpx bombs

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

_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(?:="|>)\s*([1-8])')


@dataclass
class Notes:
    """Warnings met while producing outputs, returned to the daemon to log (workers do not log)."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def warn(self, event: str, **fields: Any) -> None:
        self.items.append((event, fields))


@dataclass
class Source:
    """A decoded input: primary image loaded, metadata captured before any transform."""

    image: Image.Image  # primary image; 8 bits per sample (scaled) when the source is deeper
    format: str
    meta: Metadata
    orientation: int  # what still has to be applied to `image` to show it upright (1: nothing)
    frame_count: int = 1
    animated: bool = False  # frames with timing (GIF, APNG, WebP); else pages or images
    loop: int | None = None
    deep: Deep | None = None
    losses: tuple[str, ...] = ()  # auxiliary content no output can carry
    damaged: tuple[str, ...] = ()  # metadata blocks recovered in part or dropped
    channels: str | None = None  # channels beyond colour and alpha, said in words (only TIFF keeps them)
    _frames: list[tuple[Image.Image, int | None]] | None = None

    def frames(self) -> list[tuple[Image.Image, int | None]]:
        """Every frame with its duration in ms, decoded once and kept for all outputs."""
        if self._frames is None:
            frames = []
            try:
                for frame in ImageSequence.Iterator(self.image):
                    frames.append((frame.copy(), frame.info.get("duration")))
                self.image.seek(0)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise too_many_pixels() from None
            except (OSError, ValueError, EOFError, SyntaxError) as exc:
                raise InputError(f"cannot decode every frame: {exc}") from None
            self._frames = _one_mode(frames)
        return self._frames


def _transparent(im: Image.Image) -> bool:
    if im.mode in {"RGBA", "LA", "PA"}:
        lowest = im.getchannel("A").getextrema()[0]
        return isinstance(lowest, int | float) and lowest < 255
    return im.has_transparency_data


def _one_mode(frames: list[tuple[Image.Image, int | None]]) -> list[tuple[Image.Image, int | None]]:
    """Every frame in one mode. Pillow gives a GIF's first frame as P with a transparency index and
    the later ones as RGBA; writers take one mode (and one transparency) for a whole animation."""
    modes = {f.mode for f, _ in frames}
    alpha = any(_transparent(f) for f, _ in frames)
    if modes == {"RGBA"} and not alpha:
        return [(f.convert("RGB"), d) for f, d in frames]  # alpha 255 everywhere: an opaque animation
    if len(modes) == 1 and not (alpha and "P" in modes):
        return frames
    target = "RGBA" if alpha else "RGB"
    return [(f if f.mode == target else f.convert(target), d) for f, d in frames]


def identify(data: bytes, *, max_pixels: int | None = None) -> Image.Image:
    """Open lazily with the format allowlist; raise InputError if the content is not an allowed image.
    With max_pixels, Pillow's decompression-bomb check uses that limit."""
    register_codecs()
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        im = Image.open(io.BytesIO(webp_alpha_flag(data)), formats=PIL_ALLOWLIST)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels() from None
    except UnidentifiedImageError:
        precision = jpeg_precision(data)
        if precision not in (None, 8):
            raise InputError(
                f"{precision}-bit JPEG: the pinned Pillow (libjpeg-turbo, 8-bit) cannot decode it"
            ) from None
        raise InputError("content is not a recognisable image of an allowed format") from None
    # Decoders raise many types on hostile input; every one of them means "this input is bad".
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot open it: {exc}") from None
    # A damaged metadata block never costs the picture (capture() reports what happened).
    im.info[metadata.DAMAGED_KEY] = tuple(metadata.recover_raw_profiles(im))
    return im


def webp_alpha_flag(data: bytes) -> bytes:
    """An animated WebP with VP8X's alpha flag set, so that Pillow decodes its transparency.

    libwebp's animation encoder (so Pillow and others writing animated WebP) may leave the flag off
    although the canvas is transparent where frames do not cover it, or frames carry alpha; Pillow
    trusts the flag and would decode the whole animation as opaque RGB (transparency turned black).
    An animation that is opaque after all comes out RGBA with alpha 255, and _one_mode makes it RGB."""
    if data[8:12] != b"WEBP" or data[12:16] != b"VP8X" or not data[20] & 0x02 or data[20] & 0x10:
        return data
    patched = bytearray(data)
    patched[20] |= 0x10
    return bytes(patched)


def too_many_pixels() -> InputError:
    """Pillow's bomb check, in the words of the setting that decides it (not Pillow's 2x threshold)."""
    limit = Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS
    return InputError(
        f"the image (or one of its frames) has more than max_image_pixels ({limit:,}) pixels; "
        "raise max_image_pixels in the config to accept it"
    )


def jpeg_precision(data: bytes) -> int | None:
    """Sample precision from a JPEG's SOF marker, or None if this is not a readable JPEG header."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return data[pos + 4]
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return None


def auxiliary_losses(im: Image.Image, meta: Metadata) -> list[str]:
    """What the source holds beyond its primary image that no output can carry (logged per job)."""
    losses = []
    if im.info.get("depth_images"):
        losses.append("HEIF depth map: pillow-heif/libheif cannot write auxiliary images")
    if im.info.get("aux"):
        losses.append("HEIF auxiliary images (HDR gain map, alpha/matte): cannot be written")
    if meta.xmp and (b"hdrgm:" in meta.xmp or b"GainMap" in meta.xmp):
        losses.append("Ultra HDR gain map after the primary JPEG: re-encoding keeps the SDR image only")
    if meta.xmp and b"GDepth:" in meta.xmp:
        losses.append("Google depth map in extended XMP: not carried")
    return losses


def decode(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    edge: int | None = None,
    opened: Image.Image | None = None,
) -> Source:
    """Decode the primary image completely before anything is written; raise InputError if it is bad.

    `edge`: the longest edge any output needs (None: full size). A JPEG at least twice that size is
    decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling, never below `edge`.
    """
    register_codecs()
    Image.MAX_IMAGE_PIXELS = max_pixels
    fmt_hint = data[4:12]
    if fmt_hint[:4] == b"ftyp":
        check_bmff(data)
    # Reused as it is: a PNG without an early eXIf chunk was already decoded by getexif() (which
    # looks for a late one), and decoding it again would double the job's biggest cost.
    im = opened if opened is not None else identify(data)
    fmt = name_of(im.format)
    if fmt is None:
        raise InputError(f"format {im.format} is not allowed")
    if im.width * im.height > max_pixels:
        # pillow-heif opens without Pillow's bomb check, so the limit is enforced here for all.
        raise InputError(f"{im.width}x{im.height} exceeds max_image_pixels ({max_pixels})")
    if im.width < 1 or im.height < 1:
        raise InputError(f"empty image ({im.width}x{im.height})")
    damaged: list[str] = []
    meta = metadata.capture(im, damaged)
    bits = _bit_depth(im, fmt, data)
    extra, channels = _extra_channels(im, fmt)
    if extra:
        meta = replace(meta, extra_samples=_extra_samples(im))
    deep: Deep | None = None
    try:
        if bits > 8 and fmt == "heif":
            deep = load_heif(data, bits=bits)
        elif (
            (bits > 8 or extra)
            and fmt in {"png", "tiff", "avif"}
            and im.mode not in {"I;16", "I;16B", "I;16L", "I", "F"}
        ):
            deep = replace(load_vips(data, bits=bits), extra=extra)
        if deep is not None:
            image = deep.to_8bit()
        else:
            if edge is not None and fmt == "jpeg" and max(im.size) >= 2 * edge:
                scale = edge / max(im.size)
                im.draft(im.mode, (math.ceil(im.width * scale), math.ceil(im.height * scale)))
            im.load()
            image = im
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels() from None
    except Exception as exc:  # noqa: BLE001 - same boundary as identify()
        raise InputError(f"cannot decode this {fmt.upper()}: {exc}") from None
    n = getattr(im, "n_frames", 1)
    animated = bool(getattr(im, "is_animated", False)) and fmt in {"gif", "png", "webp", "avif"}
    return Source(
        losses=tuple(auxiliary_losses(im, meta)),
        damaged=tuple(damaged),
        channels=channels,
        image=image,
        format=fmt,
        meta=meta,
        orientation=_orientation(im, fmt, meta, deep=deep is not None),
        frame_count=1 if im.format == "MPO" else n,
        animated=animated,
        loop=im.info.get("loop"),
        deep=deep,
    )


_COLOUR_BANDS: Final = {
    "L": 1,
    "LA": 2,
    "RGB": 3,
    "RGBA": 4,
    "CMYK": 4,
    "I;16": 1,
    "I;16B": 1,
    "I": 1,
    "F": 1,
}


def _extra_channels(im: Image.Image, fmt: str) -> tuple[int, str | None]:
    """(extra channels libvips can carry, a description of every extra channel) of a TIFF.

    Pillow opens RGB plus unspecified extra samples as plain RGB ("RGBXX") without a word."""
    if fmt != "tiff":
        return 0, None
    samples = int(im.tag_v2.get(277, 1))  # type: ignore[attr-defined]
    extra = samples - _COLOUR_BANDS.get(im.mode, samples)
    if extra <= 0:
        return 0, None
    kinds = _extra_samples(im)
    what = f"{extra} extra channel(s) beyond {im.mode} (ExtraSamples {kinds}: saved selections, spot or NIR)"
    return (extra if im.mode in {"L", "LA", "RGB", "RGBA"} else 0), what


def _extra_samples(im: Image.Image) -> tuple[int, ...]:
    value = im.tag_v2.get(338, ())  # type: ignore[attr-defined]
    return tuple(value) if isinstance(value, tuple) else (int(value),)


def _bit_depth(im: Image.Image, fmt: str, data: bytes) -> int:
    """Bits per sample the file really stores (Pillow reports 16-bit colour as 8-bit)."""
    if fmt == "heif":
        return int(im.info.get("bit_depth", 8))
    if fmt == "avif":
        return _pixi_depth(data)
    if fmt == "png":
        # From IHDR, not from Pillow's tile list, which is gone once the pixels are loaded.
        return 16 if data[12:16] == b"IHDR" and data[24] == 16 else 8
    if fmt == "tiff":
        depth = im.tag_v2.get(258, (8,))  # type: ignore[attr-defined]
        return max(depth) if isinstance(depth, tuple) else int(depth)
    return 8


def _pixi_depth(data: bytes) -> int:
    # Pillow's AVIF plugin decodes to 8 bits and does not say the stored depth; the pixi box does.
    at = data.find(b"pixi", 0, 1 << 16)
    if at < 0 or at + 10 > len(data):
        return 8
    channels = data[at + 8]
    return max(data[at + 9 : at + 9 + channels] or b"\x08")


def _orientation(im: Image.Image, fmt: str, meta: Metadata, *, deep: bool) -> int:
    if fmt in {"heif", "avif"}:
        return 1  # libheif/libavif already applied irot/imir; EXIF orientation is informational
    if fmt == "tiff" and not deep:
        return 1  # Pillow applies TIFF Orientation at load
    value = metadata.orientation(meta.exif)
    if value is None and meta.xmp:
        m = _XMP_ORIENTATION.search(meta.xmp)
        value = int(m.group(1)) if m else None
    if value is None and fmt == "tiff":
        value = im.tag_v2.get(274)  # type: ignore[attr-defined]
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def check_bmff(data: bytes) -> None:
    """Every top-level ISO-BMFF box must end inside the file: libheif decodes half a HEIC silently."""
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < 8:
            raise InputError(f"truncated HEIF/AVIF: {end - pos} stray bytes after the last box")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise InputError("truncated HEIF/AVIF: incomplete large box header")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos  # the box runs to the end of the file
        if size < header:
            raise InputError(f"corrupt HEIF/AVIF: box {kind!r} has impossible size {size}")
        if pos + size > end:
            name = kind.decode("latin-1")
            raise InputError(f"truncated HEIF/AVIF: box {name!r} ends at {pos + size}, file has {end} bytes")
        pos += size


# Per-output transforms ------------------------------------------------------------------------


def fit(im: Image.Image, max_edge: int | None) -> Image.Image:
    """Shrink so the long edge is at most max_edge (Lanczos); never enlarge."""
    if max_edge is None or max(im.size) <= max_edge:
        return im
    scale = max_edge / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    if im.mode in {"1", "P", "PA"}:
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    elif im.mode.startswith("I;16"):
        # Resample at full precision (mode I), then back to 16 bits.
        return im.convert("I").resize(size, Image.Resampling.LANCZOS).convert("I;16")
    if im.mode in _VIPS_RESIZE_MODES:
        shrunk = _vips_resize(im, size)
        if shrunk is not None:
            return shrunk
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


# Modes libvips resizes as plain bands. Alpha stays with Pillow, which premultiplies while resampling.
_VIPS_RESIZE_MODES: Final = frozenset({"L", "RGB", "CMYK"})


def _vips_resize(im: Image.Image, size: tuple[int, int]) -> Image.Image | None:
    """The same Lanczos-3 shrink by libvips, about 3x faster than Pillow's here (46 vs 136 ms for
    12.5 MP to 2048 px, copies included); None if libvips would not give exactly `size`."""
    import pyvips  # noqa: PLC0415 - loaded by the first resize, not at every process start

    bands = len(im.getbands())
    src = pyvips.Image.new_from_memory(im.tobytes(), im.width, im.height, bands, "uchar")
    out = src.resize(size[0] / im.width, vscale=size[1] / im.height, kernel="lanczos3")
    if (out.width, out.height) != size:
        return None
    return Image.frombytes(im.mode, size, out.write_to_memory())


def orient(im: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation value to stored pixels (lossless permutation)."""
    method = _TRANSPOSE.get(orientation)
    return im if method is None else im.transpose(method)


@cache
def srgb_profile() -> bytes:
    """The sRGB profile embedded in converted outputs (lcms' built-in, 588 bytes).

    lcms stamps the creation time into the header, which would make every run's output differ
    (and defeat skip_identical and redo-after-crash); the date is pinned. The profile ID is 0.
    """
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
    return bytes(data)


def colour(im: Image.Image, meta: Metadata, output: Output, notes: Notes) -> tuple[Image.Image, bytes | None]:
    """Pixels and the ICC profile to embed, as the output's `icc` option and format require."""
    fmt = output.format
    cmyk_out = im.mode == "CMYK" and "CMYK" in NATIVE_MODES[fmt] and output.icc == "keep"
    if output.icc == "keep" and (im.mode != "CMYK" or cmyk_out):
        if meta.icc is None and meta.nclx:
            return im, nclx_as_icc(meta.nclx, im.mode, notes) if fmt != "heif" else None
        return im, meta.icc
    # icc = "srgb", or CMYK that the format cannot hold: convert through the embedded profile.
    if output.icc == "keep":
        why = f"{fmt} cannot hold CMYK: converted to sRGB" + (" through its ICC profile" if meta.icc else "")
        notes.warn("colour.converted", format=fmt, error=why)
    if meta.icc is None:
        if im.mode == "CMYK":
            notes.warn(
                "colour.naive_cmyk", error="CMYK without an ICC profile: converted without colour management"
            )
            return im.convert("RGB"), srgb_profile()
        if meta.nclx and fmt != "heif":
            nclx_as_icc(meta.nclx, im.mode, notes)  # refuses what cannot be represented
        return im, srgb_profile() if im.mode in {"RGB", "RGBA", "P", "PA"} else None
    try:
        source_profile = ImageCms.ImageCmsProfile(io.BytesIO(meta.icc))
    except (OSError, ImageCms.PyCMSError) as exc:
        raise EncodeError(f"the embedded ICC profile is unreadable, cannot convert to sRGB: {exc}") from None
    if "sRGB" in ImageCms.getProfileDescription(source_profile) and im.mode != "CMYK":
        return im, meta.icc  # already sRGB: keep its own profile, no conversion round trip
    alpha = im.getchannel("A") if im.mode in {"RGBA", "LA", "PA"} else None
    base = im.convert("RGB") if im.mode in {"P", "PA", "RGBA"} else im.convert("L") if im.mode == "LA" else im
    try:
        converted = ImageCms.profileToProfile(
            base, source_profile, ImageCms.createProfile("sRGB"), outputMode="RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        )  # fmt: skip
    except ImageCms.PyCMSError as exc:
        raise EncodeError(f"cannot convert {im.mode} through its ICC profile to sRGB: {exc}") from None
    assert converted is not None
    if alpha is not None:
        converted.putalpha(alpha)
    return converted, srgb_profile()


_SRGB_LIKE_PRIMARIES: Final = {1, 5, 6}  # BT.709 (sRGB), and the BT.601 sets within 1% of it
_SRGB_LIKE_TRANSFER: Final = {1, 6, 13, 14, 15}


def nclx_as_icc(nclx: dict[str, Any], mode: str, notes: Notes) -> bytes | None:
    """An ICC profile saying what an NCLX box says, for formats without NCLX; refuse what differs."""
    primaries, transfer = nclx.get("color_primaries"), nclx.get("transfer_characteristics")
    if primaries in _SRGB_LIKE_PRIMARIES and transfer in _SRGB_LIKE_TRANSFER:
        if (primaries, transfer) != (1, 13):
            notes.warn(
                "colour.approximated",
                error=f"NCLX primaries {primaries}, transfer {transfer} written as sRGB",
            )
        return srgb_profile() if mode in {"RGB", "RGBA"} else None
    raise EncodeError(
        f"the source's colour is NCLX primaries {primaries}, transfer {transfer} (wide gamut or HDR), "
        "which only a HEIF output can carry; use format heif for this file"
    )


def to_mode(im: Image.Image, output: Output) -> Image.Image:
    """Convert to a mode the encoder holds exactly; alpha is flattened only where it cannot be kept."""
    fmt = output.format
    mode = im.mode
    if mode == "P" and fmt == "png":
        return im
    if mode in NATIVE_MODES[fmt] and mode != "P":
        return im
    if mode.startswith("I;16") or mode in {"I", "F"}:
        if fmt in {"png", "tiff"} and mode != "F":
            return im.convert("I;16") if mode != "I;16" else im
        if fmt == "tiff":
            return im  # float TIFF holds F exactly
        # Scale wide samples into 8 bits; convert("L") would clamp instead (Pillow #1108).
        # point() scales only modes I and F, so 16-bit grey goes through I first.
        scale = 1 / 257 if mode != "F" else 255.0
        wide = im.convert("I") if mode.startswith("I;16") else im
        return wide.point(lambda v: v * scale + 0.5).convert("L")
    has_alpha = im.has_transparency_data or mode in {"RGBA", "LA", "PA", "RGBa", "La"}
    if has_alpha:
        if fmt in ALPHA_FORMATS:
            if mode in {"LA", "La"} and "LA" in NATIVE_MODES[fmt]:
                return im.convert("LA")
            return im.convert("RGBA")
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, output.background)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode in {"1", "L"}:
        return im.convert("L") if "L" in NATIVE_MODES[fmt] else im.convert("RGB")
    if mode == "CMYK":
        return im.convert("RGB")  # reached only when colour() left CMYK for a format that needs RGB
    return im.convert("RGB")


@dataclass
class Rendered:
    """One output's pixels and the metadata to embed, ready for its encoder."""

    frames: list[Image.Image]
    meta: Metadata
    durations: list[int] | None = None  # animation timing; None for a still or for pages
    loop: int | None = None
    deep: Deep | None = None  # full-precision pixels, when the output keeps them

    @property
    def size(self) -> tuple[int, int]:
        return self.deep.size if self.deep is not None else self.frames[0].size


def wants_deep(source: Source, output: Output) -> bool:
    """Whether this output keeps more than 8 bits (PNG, TIFF; HEIF at 10/12 bits, also when asked for
    an 8-bit source) or the extra channels (TIFF)."""
    if output.format == "heif" and output.bit_depth in (10, 12):
        return True
    if source.deep is None:
        return False
    if output.format == "tiff":
        return True
    if output.format == "png":
        return source.deep.bits > 8
    return output.format == "heif" and output.bit_depth != 8 and source.deep.bits > 8


def render(
    source: Source, output: Output, notes: Notes, resized: dict[int, Image.Image] | None = None
) -> Rendered:
    """Frames, size, orientation, colour and mode for one output; metadata follows in the pipeline.

    `resized` (one per job) keeps the single-frame images already shrunk for other outputs: a
    smaller output starts from one at least twice its size instead of from the full image.
    """
    upright = output.orientation == "upright"
    turn = source.orientation if upright else 1
    if source.channels and not (output.format == "tiff" and source.deep is not None and source.deep.extra):
        kept = "colour and alpha only" if output.format != "tiff" else "none of them from this source"
        notes.warn(
            "channels.dropped", format=output.format, error=f"{source.channels}: {output.format} keeps {kept}"
        )
    if wants_deep(source, output):
        held = source.deep if source.deep is not None else Deep.from_8bit(source.image, source.meta.icc)
        deep = held.fitted(output.max_edge).oriented(turn)
        if output.format != "tiff":
            deep = deep.visible
        if output.icc == "srgb":
            if deep.icc is None and source.meta.nclx:
                nclx_as_icc(source.meta.nclx, "RGB", notes)  # refuses a wide-gamut or HDR NCLX
            deep = deep.to_srgb(srgb_profile())
        elif deep.icc is None and source.meta.nclx and output.format != "heif":
            deep = replace(deep, icc=nclx_as_icc(source.meta.nclx, "RGB", notes))
        meta = source.meta if deep.icc == source.meta.icc else _with_icc(source.meta, deep.icc)
        return Rendered(frames=[deep.to_8bit()], meta=meta, deep=deep)
    if source.deep is not None and source.deep.bits > 8:
        notes.warn("precision.reduced", format=output.format,
                   error=f"{source.deep.bits}-bit source written at 8 bits per sample (scaled)")  # fmt: skip
    wide = source.image.mode.startswith("I;16") or source.image.mode in {"I", "F"}
    if wide and output.format not in {"png", "tiff"}:
        notes.warn("precision.reduced", format=output.format,
                   error=f"{source.image.mode} samples written at 8 bits (scaled)")  # fmt: skip
    frames, durations = _frames_for(source, output, notes)
    out: list[Image.Image] = []
    icc: bytes | None = None
    for frame in frames:
        im = orient(_fitted(frame, output.max_edge, resized if len(frames) == 1 else None), turn)
        im, icc = colour(im, source.meta, output, notes)
        out.append(to_mode(im, output))
    meta = source.meta if icc == source.meta.icc else _with_icc(source.meta, icc)
    return Rendered(frames=out, meta=meta, durations=durations, loop=source.loop if durations else None)


def _fitted(frame: Image.Image, max_edge: int | None, resized: dict[int, Image.Image] | None) -> Image.Image:
    """fit(), from the smallest already-shrunk image that is at least twice max_edge, when there is one.

    Lanczos from twice the size or more is indistinguishable from Lanczos from the full image (the
    2x margin is what Pillow's reducing_gap relies on too), at a fraction of the cost.
    """
    if resized is None or max_edge is None or max(frame.size) <= max_edge:
        return fit(frame, max_edge)
    bigger = [im for edge, im in resized.items() if edge >= 2 * max_edge and im.mode == frame.mode]
    base = min(bigger, key=lambda im: im.width) if bigger else frame
    result = fit(base, max_edge)
    resized[max_edge] = result
    return result


def _with_icc(meta: Metadata, icc: bytes | None) -> Metadata:
    return replace(meta, icc=icc, nclx=None)


def _frames_for(source: Source, output: Output, notes: Notes) -> tuple[list[Image.Image], list[int] | None]:
    """The frames this output holds; what the format cannot hold is logged, never dropped silently."""
    if source.frame_count <= 1:
        return [source.image], None
    kind = "frames" if source.animated else "pages" if source.format == "tiff" else "images"
    if output.frames == "first":
        return [source.image], None
    if source.format == "heif":
        why = f"HEIF holds {source.frame_count} images; outputs use the primary image"
        notes.warn("frames.dropped", format=output.format, error=why)
        return [source.image], None
    can_animate = source.animated and output.format in ANIMATION_FORMATS
    can_page = output.format in PAGE_FORMATS
    if not (can_animate or can_page):
        why = f"{output.format} holds one image; {source.frame_count - 1} {kind} dropped"
        notes.warn("frames.dropped", format=output.format, error=why)
        return [source.image], None
    frames = source.frames()
    if source.animated and not can_animate:
        notes.warn("timing.dropped", format=output.format, error="TIFF pages carry no frame timing")
        return [f for f, _ in frames], None
    durations = [int(d) if d is not None else 0 for _, d in frames] if source.animated else None
    return [f for f, _ in frames], durations
