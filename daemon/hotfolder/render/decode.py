"""Decode once: the allowlist, completeness, bomb limits, bit depth, orientation and extra channels.

Per output work (frames, size, colour, mode) is transform.py's; writing each format is writers.py's.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import replace
from typing import Final

from PIL import Image

from hotfolder.core.exiftiff import orientation
from hotfolder.core.formats import DEFAULT_MAX_PIXELS, name_of
from hotfolder.decide.colourspace import ColourSpace, source_colour
from hotfolder.decide.header import identify, too_many_pixels
from hotfolder.decide.jxlimage import DEEP_KEY
from hotfolder.decide.sniff import register_codecs
from hotfolder.errors import InputError
from hotfolder.render.colour import converts_to_srgb, srgb_profile
from hotfolder.render.deep import Deep, load_heif, load_vips
from hotfolder.render.gainmap import read_gain_map
from hotfolder.render.metadata import Metadata, capture
from hotfolder.render.profiles import profile_of
from hotfolder.render.source import Source

_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(?:="|>)\s*([1-8])')


def _ultra_hdr(meta: Metadata) -> bool:
    return bool(meta.xmp and (b"hdrgm:" in meta.xmp or b"GainMap" in meta.xmp))


def auxiliary_losses(im: Image.Image, meta: Metadata) -> list[str]:
    """What the source holds beyond its primary image that no output can carry (logged per job)."""
    losses = []
    if im.info.get("depth_images"):
        losses.append("HEIF depth map: pillow-heif/libheif cannot write auxiliary images")
    if im.info.get("aux"):
        losses.append("HEIF auxiliary images (HDR gain map, alpha/matte): cannot be written")
    if _ultra_hdr(meta):
        losses.append(
            'Ultra HDR gain map after the primary JPEG: kept only by JPEG outputs with gain_map = "keep"'
        )
    if meta.xmp and b"GDepth:" in meta.xmp:
        losses.append("Google depth map in extended XMP: not carried")
    return losses


def decode(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    edge: int | None = None,
    exact: bool = False,
    gain_map: bool = True,
    srgb: bool = False,
    opened: Image.Image | None = None,
) -> Source:
    """Decode the primary image completely before anything is written; raise InputError if it is bad.

    `edge`: the longest edge any output needs (None: full size). A JPEG at least twice that size is
    decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling, never below `edge`. `exact`: every output
    is `edge` or at most half of it, so an 8-bit JPEG is decoded and shrunk to `edge` in one pass.
    `gain_map`: an output keeps an Ultra HDR gain map (else it is not read). `srgb`: every output
    converts to sRGB, so that one pass converts an embedded profile's colour too.
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
    meta = capture(im, damaged)
    bits = _bit_depth(im, fmt, data)
    extra, channels = _extra_channels(im, fmt)
    if extra:
        meta = replace(meta, extra_samples=_extra_samples(im))
    stored = im.size  # before a reduced-scale decode changes it
    colour, meta = _colour(im, data, fmt, meta)
    convert = (
        srgb
        and colour.origin == "icc"
        and not colour.hdr
        and bool(meta.icc)
        and converts_to_srgb(meta.icc or b"")
    )
    image, deep, converted = _pixels(
        im, data, fmt, bits=bits, extra=extra, edge=edge, exact=exact, to_srgb=meta.icc if convert else None
    )
    if converted:
        # Its pixels are sRGB now, and its metadata says so: every output embeds this profile, as
        # colour() would have made them.
        colour, meta = ColourSpace(origin="icc"), replace(meta, icc=srgb_profile(), cicp=None)
    if deep is not None and deep.icc != meta.icc:
        deep = replace(deep, icc=meta.icc)
    n = getattr(im, "n_frames", 1)
    animated = bool(getattr(im, "is_animated", False)) and fmt in {"gif", "png", "webp", "avif", "jxl"}
    return Source(
        losses=tuple(auxiliary_losses(im, meta)),
        damaged=tuple(damaged),
        channels=channels,
        view=image,
        format=fmt,
        meta=meta,
        orientation=_orientation(im, fmt, meta, deep=deep is not None),
        frame_count=1 if im.format == "MPO" else n,
        animated=animated,
        loop=im.info.get("loop"),
        deep=deep,
        colour=colour,
        gain_map=read_gain_map(data) if gain_map and fmt == "jpeg" and _ultra_hdr(meta) else None,
        stored=stored if stored != image.size else None,
    )


def _colour(im: Image.Image, data: bytes, fmt: str, meta: Metadata) -> tuple[ColourSpace, Metadata]:
    """The source's colour decided once, and its metadata made to say it: a colour given by NCLX,
    cICP or EXIF gets the ICC profile built from it (which every ICC path then uses), and keeps its
    H.273 code points for the formats that carry them; an ICC-described one drops a second NCLX."""
    colour = source_colour(im, data, fmt)
    built = profile_of(colour)
    if colour.origin in ("nclx", "cicp"):
        return colour, replace(meta, cicp=colour.cicp, icc=built)
    # An ICC profile whose cicp tag says PQ or HLG (hotfolder's own archives): said as NCLX/cICP too.
    return colour, replace(meta, cicp=colour.cicp if colour.hdr else None, icc=meta.icc or built)


def _pixels(
    im: Image.Image,
    data: bytes,
    fmt: str,
    *,
    bits: int,
    extra: int,
    edge: int | None,
    exact: bool,
    to_srgb: bytes | None,
) -> tuple[Image.Image, Deep | None, bool]:
    """Decode the pixels: above 8 bits or with extra channels at full precision (the 8-bit view
    beside it), otherwise by Pillow, a large JPEG by DCT scaling to no less than `edge` (or, `exact`,
    straight to `edge` by libvips, converted from the `to_srgb` profile on the way when given: then
    the last value is True)."""
    deep: Deep | None = None
    try:
        if exact and edge is not None and fmt == "jpeg" and im.mode in {"L", "RGB"} and max(im.size) > edge:
            small = _jpeg_to_edge(data, im, edge, to_srgb if im.mode == "RGB" else None)
            if small is not None:
                return small[0], None, small[1]
        if bits > 8 and fmt == "heif":
            deep = load_heif(data, bits=bits)
        elif bits > 8 and fmt == "jxl" and im.mode != "I;16":
            im.load()  # libjxl's samples at full precision, kept by the opener beside its 8-bit view
            deep = Deep(pixels=im.info.pop(DEEP_KEY), bits=min(bits, 16))
        elif (
            (bits > 8 or extra)
            and fmt in {"png", "tiff", "avif"}
            and im.mode not in {"I;16", "I;16B", "I;16L", "I", "F"}
        ):
            deep = replace(load_vips(data, bits=bits), extra=extra)
        if deep is not None:
            return deep.to_8bit(), deep, False
        if edge is not None and fmt == "jpeg" and max(im.size) >= 2 * edge:
            scale = edge / max(im.size)
            im.draft(im.mode, (math.ceil(im.width * scale), math.ceil(im.height * scale)))
        im.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels() from None
    except Exception as exc:  # noqa: BLE001 - same boundary as identify()
        raise InputError(f"cannot decode this {fmt.upper()}: {exc}") from None
    return im, None, False


def _jpeg_to_edge(
    data: bytes, im: Image.Image, edge: int, to_srgb: bytes | None
) -> tuple[Image.Image, bool] | None:
    """The JPEG decoded and shrunk to `edge` in one libvips stream, never held at full size: the DCT
    scale Pillow's draft() would choose, then the Lanczos-3 shrink fit() makes, to the size fit() gives
    (byte-identical outputs on the 8 phone photos; 75 + 44 ms a 12.5 MP photo before, ~55 ms after).
    `to_srgb`: the embedded profile, converted from in the same stream (lcms2 as ImageCms, relative
    colorimetric: 32 ms a Display P3 photo at 2048 px where ImageCms took 95 ms after the stream, at most
    1 level apart). With whether it was converted; None when libvips would give another size (the Pillow
    path then decodes it)."""
    import pyvips  # noqa: PLC0415 - loaded by the first job that needs it, not at process start

    scale = edge / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    wanted = min(im.width // math.ceil(im.width * scale), im.height // math.ceil(im.height * scale))
    shrink = next(s for s in (8, 4, 2, 1) if wanted >= s)
    # fail_on="truncated": a file that ends early is an error, as Pillow makes it (never grey rows).
    stream = pyvips.Image.jpegload_buffer(data, shrink=shrink, fail_on="truncated", access="sequential")
    if stream.bands != len(im.getbands()):
        return None
    out = stream.resize(size[0] / stream.width, vscale=size[1] / stream.height, kernel="lanczos3")
    if (out.width, out.height) != size:
        return None
    if to_srgb is not None:
        out = out.copy()
        out.set_type(pyvips.GValue.blob_type, "icc-profile-data", to_srgb)  # the profile colour() reads
        out = out.icc_transform("srgb", embedded=True, intent="relative")
    # Not Image.frombytes: it clears the new image before filling it (9 ms at 2048 px here).
    small = Image.new(im.mode, size, None)
    small.frombytes(out.write_to_memory())
    return small, to_srgb is not None


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
    if fmt in ("heif", "jxl"):
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
    if fmt in {"heif", "avif", "jxl"}:
        # libheif/libavif applied irot/imir, libjxl the codestream's orientation; EXIF's is informational
        return 1
    if fmt == "tiff" and not deep:
        return 1  # Pillow applies TIFF Orientation at load
    value = orientation(meta.exif)
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
