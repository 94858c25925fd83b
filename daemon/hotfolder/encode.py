"""Write one rendered output in its format, passing every metadata item explicitly; verify it.

Nothing travels implicitly (Pillow and pillow-heif copy `info` items on their own): each writer
receives exactly the EXIF, XMP, ICC and IPTC the output's options allow, and logs what its
format cannot hold.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from typing import IO, Any, Final

from PIL import Image, ImageChops, PngImagePlugin, TiffImagePlugin, TiffTags

from . import deep as deepmod
from . import metadata
from .errors import EncodeError, is_transient
from .formats import register_codecs
from .imaging import Notes, Rendered
from .metadata import Metadata
from .outputs import Output

JPEG_MAX_EXIF: Final = 65533
JPEG_MAX_XMP: Final = 65504
LOSSLESS_HEIF_TILE: Final = 1024
_JPEG_MAX_SEGMENT: Final = 65533
_PIL_FORMAT: Final = {
    "png": "PNG",
    "tiff": "TIFF",
    "jpeg": "JPEG",
    "heif": "HEIF",
    "webp": "WEBP",
    "avif": "AVIF",
}
_TIFF_COMPRESSION: Final = {"none": "raw", "lzw": "tiff_lzw", "deflate": "tiff_adobe_deflate", "zstd": "zstd"}
_VIPS_COMPRESSION: Final = {"none": "none", "lzw": "lzw", "deflate": "deflate", "zstd": "zstd"}

Writer = Callable[[Rendered, Output, IO[bytes], Notes], None]


def encode(rendered: Rendered, output: Output, fp: IO[bytes], *, notes: Notes) -> None:
    """Write the rendered output to fp in its format."""
    try:
        _WRITERS[output.format](rendered, output, fp, notes)
    except EncodeError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if is_transient(exc):
            raise  # disk full and friends: the job waits and retries, the input is fine
        raise EncodeError(f"cannot write {output.format}: {type(exc).__name__}: {exc}") from exc


def _dropped(notes: Notes, item: str, output: Output, why: str) -> None:
    notes.warn("metadata.dropped", item=item, format=output.format, error=why)


def _clean(im: Image.Image) -> Image.Image:
    # Rule one: nothing may travel implicitly. Pillow/pillow-heif writers read `info` on their own.
    im = im.copy() if im.info else im
    im.info = {}
    return im


# JPEG ----------------------------------------------------------------------------------------


def jpeg_exif(meta: Metadata, notes: Notes, output: Output) -> bytes | None:
    """EXIF that fits JPEG's 64 KB APP1: raw, then rebuilt without IFD1, then without MakerNote."""
    raw = meta.exif
    if raw is None or len(raw) <= JPEG_MAX_EXIF:
        return raw
    for drop_makernote, what in ((False, "thumbnail and padding"), (True, "MakerNote")):
        try:
            rebuilt = metadata.reserialise(raw, size=None, orientation=None, drop_gps=False,
                                           drop_makernote=drop_makernote)  # fmt: skip
        except (ValueError, struct.error, TypeError) as exc:
            _dropped(notes, "exif", output, f"{len(raw)} bytes > APP1 limit, and cannot be rebuilt: {exc}")
            return None
        if len(rebuilt) <= JPEG_MAX_EXIF:
            _dropped(
                notes,
                f"exif {what}",
                output,
                f"{len(raw)} bytes > 64 KB APP1 limit; rebuilt as {len(rebuilt)}",
            )
            return rebuilt
    _dropped(
        notes, "exif", output, f"{len(raw)} bytes do not fit the 64 KB APP1 segment even without MakerNote"
    )
    return None


def _write_jpeg(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    im = _clean(r.frames[0])
    kwargs: dict[str, Any] = {
        "quality": output.quality,
        "subsampling": output.subsampling,
        "progressive": output.progressive,
        "optimize": output.progressive,
    }
    exif = jpeg_exif(r.meta, notes, output)
    if exif:
        kwargs["exif"] = exif
    if r.meta.icc:
        kwargs["icc_profile"] = r.meta.icc  # Pillow splits large profiles over APP2 segments
    if r.meta.xmp:
        if len(r.meta.xmp) <= JPEG_MAX_XMP:
            kwargs["xmp"] = r.meta.xmp
        else:
            _dropped(notes, "xmp", output, f"{len(r.meta.xmp)} bytes > 64 KB APP1 limit (no ExtendedXMP)")
    irb = metadata.photoshop_irb(r.meta)
    if irb is None:
        im.save(fp, "JPEG", **kwargs)
        return
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kwargs)
    fp.write(_with_app13(buf.getvalue(), irb, notes, output))


def _with_app13(jpeg: bytes, irb: bytes, notes: Notes, output: Output) -> bytes:
    """Insert a Photoshop APP13 segment (IPTC) after the APPn segments Pillow wrote."""
    payload = metadata.PHOTOSHOP_HEADER + irb
    if len(payload) > _JPEG_MAX_SEGMENT:
        _dropped(notes, "iptc", output, f"{len(payload)} bytes > 64 KB APP13 limit")
        return jpeg
    pos = 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        pos += 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
    segment = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:pos] + segment + jpeg[pos:]


# PNG -----------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png_metadata_chunks(meta: Metadata) -> list[bytes]:
    chunks = []
    if meta.icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(meta.icc)))
    if meta.exif:
        chunks.append(_png_chunk(b"eXIf", meta.exif[len(metadata.EXIF_PREFIX) :]))
    if meta.xmp:
        chunks.append(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + meta.xmp))
    return chunks


def _write_png(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    if r.meta.has_iptc:
        _dropped(notes, "iptc", output, "PNG has no standard place for IPTC")
    if r.deep is not None:
        png = deepmod.png_bytes(r.deep, level=output.compress_level)
        ihdr_end = 8 + 25  # signature + IHDR chunk: metadata chunks must come before IDAT
        fp.write(png[:ihdr_end] + b"".join(_png_metadata_chunks(r.meta)) + png[ihdr_end:])
        return
    frames = [_clean(f) for f in r.frames]
    kwargs: dict[str, Any] = {"compress_level": output.compress_level}
    if r.meta.exif:
        kwargs["exif"] = r.meta.exif
    if r.meta.icc:
        kwargs["icc_profile"] = r.meta.icc
    if r.meta.xmp:
        # The PNG writer ignores xmp=; XMP lives in an iTXt chunk with this keyword.
        pnginfo = PngImagePlugin.PngInfo()
        pnginfo.add_itxt("XML:com.adobe.xmp", r.meta.xmp.decode("utf-8", "replace"), zip=False)
        kwargs["pnginfo"] = pnginfo
    if frames[0].mode == "P" and "transparency" in r.frames[0].info:
        kwargs["transparency"] = r.frames[0].info["transparency"]
    if len(frames) > 1:
        kwargs.update(save_all=True, append_images=frames[1:], duration=r.durations or 0, loop=r.loop or 0,
                      default_image=False, disposal=0, blend=0)  # fmt: skip
    frames[0].save(fp, "PNG", **kwargs)


# TIFF ----------------------------------------------------------------------------------------


def _write_tiff(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    predictor = output.compression != "none"
    if r.deep is not None:
        compression = output.compression
        if compression == "zstd":
            # The libtiff inside pyvips-binary is built without zstd.
            why = "16-bit TIFF written with deflate: the libtiff in libvips has no zstd"
            notes.warn("option.substituted", format="tiff", error=why)
            compression = "deflate"
        data = deepmod.tiff_bytes(r.deep, compression=_VIPS_COMPRESSION[compression], predictor=predictor)
    elif len(r.frames) == 1 and r.frames[0].mode in {"L", "RGB"} and output.compression != "zstd":
        data = _vips_tiff(r.frames[0], r.meta.icc, compression=_VIPS_COMPRESSION[output.compression],
                          predictor=predictor)  # fmt: skip
    else:
        frames = [_clean(f) for f in r.frames]
        kwargs: dict[str, Any] = {"compression": _TIFF_COMPRESSION[output.compression]}
        if predictor and frames[0].mode not in {"1", "P"}:
            kwargs["tiffinfo"] = {317: 2}  # horizontal differencing: a third smaller for photos
        if r.meta.icc:
            kwargs["icc_profile"] = r.meta.icc
        if len(frames) > 1:
            kwargs.update(save_all=True, append_images=frames[1:])
        buf = io.BytesIO()
        frames[0].save(buf, "TIFF", **kwargs)
        data = buf.getvalue()
    fp.write(tiff_with_metadata(data, r.meta, notes, output))


def _vips_tiff(im: Image.Image, icc: bytes | None, *, compression: str, predictor: bool) -> bytes:
    """An 8-bit grey or RGB TIFF written by libvips: its libtiff deflates with libdeflate, twice as fast
    as Pillow's (0.8 vs 1.6 s for 12.5 MP with the predictor) and a little smaller. Other modes,
    pages and zstd stay with Pillow. Only pixels and ICC here; tiff_with_metadata adds the rest."""
    import pyvips  # noqa: PLC0415

    bands = len(im.getbands())
    vimg = pyvips.Image.new_from_memory(im.tobytes(), im.width, im.height, bands, "uchar")
    vimg = vimg.copy(interpretation="srgb" if bands == 3 else "b-w")
    return deepmod.vips_tiff(vimg, icc, compression=compression, predictor=predictor)


_TAG_INTEROP: Final = 0xA005
_POINTERS: Final = {34665, 34853, _TAG_INTEROP}
_TIFF_OWN: Final = metadata.TIFF_STRUCTURAL | _POINTERS


def tiff_with_metadata(data: bytes, meta: Metadata, notes: Notes, output: Output) -> bytes:
    """Add EXIF (with its Exif and GPS sub-IFDs), XMP and IPTC to a TIFF written by libtiff/libvips.

    libtiff cannot take sub-IFDs from Pillow ("Error setting from dictionary"), so the image is
    written first and IFD0 is then rewritten by Pillow's IFD serialiser and appended, with the
    header pointing at it. Pixel data and later pages are untouched.
    """
    irb = metadata.photoshop_irb(meta)
    if not (meta.exif or meta.xmp or irb or meta.iptc):
        return data
    buf = bytearray(data)
    endian = "<" if buf[:2] == b"II" else ">"
    ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=bytes(buf[:8]))
    stream = io.BytesIO(data)
    stream.seek(struct.unpack_from(endian + "I", buf, 4)[0])
    ifd.load(stream)
    for tag in list(ifd.keys()):
        ifd[tag] = ifd[tag]  # materialise lazily read tags: tobytes() writes only decoded ones
    strip_offsets = ifd.get(273)
    following = ifd.next
    if meta.exif:
        _exif_into(ifd, meta.exif, notes)
    if meta.xmp:
        ifd[metadata.TAG_XMP] = meta.xmp
        ifd.tagtype[metadata.TAG_XMP] = 1
    if meta.iptc:
        ifd[metadata.TAG_IPTC] = meta.iptc
        ifd.tagtype[metadata.TAG_IPTC] = 7
    if irb:
        ifd[metadata.TAG_PHOTOSHOP] = irb
        ifd.tagtype[metadata.TAG_PHOTOSHOP] = 1
    if len(buf) % 2:
        buf += b"\x00"
    at = len(buf)
    blob = bytearray(ifd.tobytes(at))
    _restore_ifd_values(blob, endian, at, strip_offsets, following)
    buf += blob
    struct.pack_into(endian + "I", buf, 4, at)
    return bytes(buf)


def _exif_into(ifd: TiffImagePlugin.ImageFileDirectory_v2, exif: bytes, notes: Notes) -> None:
    """Put EXIF tags in IFD0 and its Exif, Interop and GPS sub-IFDs, leaving the TIFF's own layout alone."""
    ex = Image.Exif()
    ex.load(exif)
    layout = sorted(TiffTags.lookup(t).name for t in ex if t in _TIFF_OWN and t not in _POINTERS)
    if layout:
        # The source's EXIF describes JPEG layout (YCbCr, tiles): wrong for this TIFF's own.
        why = f"{', '.join(layout)} describe the source's layout, not this TIFF's"
        notes.warn("metadata.dropped", item="exif layout tags", format="tiff", error=why)
    for tag, value in ex.items():
        if tag not in _TIFF_OWN:
            ifd[tag] = value
    sub: dict[int, Any] = dict(ex.get_ifd(metadata.TAG_EXIF_IFD))
    if metadata.TAG_MAKERNOTE in sub:
        why = "MakerNote moved inside the TIFF; makers' internal offsets may no longer resolve"
        notes.warn("metadata.relocated", item="exif makernote", format="tiff", error=why)
    interop = dict(ex.get_ifd(_TAG_INTEROP))
    sub.pop(_TAG_INTEROP, None)
    if interop:
        sub[_TAG_INTEROP] = interop
    if sub:
        ifd[metadata.TAG_EXIF_IFD] = sub
        ifd.tagtype[metadata.TAG_EXIF_IFD] = 4
    gps = dict(ex.get_ifd(metadata.TAG_GPS_IFD))
    if gps:
        ifd[metadata.TAG_GPS_IFD] = gps
        ifd.tagtype[metadata.TAG_GPS_IFD] = 4


def _restore_ifd_values(blob: bytearray, endian: str, at: int, strips: Any, following: int) -> None:
    """Undo what tobytes() assumes of a fresh file: strips after the IFD, and no next page."""
    count = struct.unpack_from(endian + "H", blob, 0)[0]
    struct.pack_into(endian + "I", blob, 2 + 12 * count, following)
    if strips is None:
        return
    values = strips if isinstance(strips, tuple) else (strips,)
    for k in range(count):
        entry = 2 + 12 * k
        tag, kind, n = struct.unpack_from(endian + "HHI", blob, entry)
        if tag != 273:
            continue
        code = {3: "H", 4: "I"}[kind]
        size = struct.calcsize(code) * n
        where = entry + 8 if size <= 4 else struct.unpack_from(endian + "I", blob, entry + 8)[0] - at
        struct.pack_into(endian + code * n, blob, where, *values)


# HEIF, WebP, AVIF ----------------------------------------------------------------------------


def _common(meta: Metadata, output: Output, notes: Notes) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if meta.exif:
        kwargs["exif"] = meta.exif
    if meta.xmp:
        kwargs["xmp"] = meta.xmp
    if meta.icc:
        kwargs["icc_profile"] = meta.icc
    if meta.has_iptc:
        _dropped(notes, "iptc", output, f"{output.format} has no place for IPTC")
    return kwargs


def _write_heif(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    import pillow_heif  # noqa: PLC0415

    kwargs = _common(r.meta, output, notes)
    if r.meta.nclx and not r.meta.icc:
        # Explicit keys: pillow-heif's HeifFile path ignores an nclx_profile dict.
        for key in ("color_primaries", "transfer_characteristics", "matrix_coefficients", "full_range_flag"):
            kwargs[key] = r.meta.nclx[key]
    if output.lossless:
        # The only lossless HEIF: RGB matrix, 4:4:4 (libheif #62); verified byte-exact.
        # Full range too: a limited-range source's NCLX flag would otherwise squeeze the samples.
        kwargs.update(quality=-1, chroma=444, matrix_coefficients=0, full_range_flag=1)
    else:
        kwargs.update(quality=output.quality, chroma=int(output.chroma or 420))
    # libheif's own default is x265's "slow"-like settings: several times the time for a few % of size.
    kwargs["enc_params"] = {"preset": output.preset}
    options = pillow_heif.options
    saved = (options.SAVE_HDR_TO_12_BIT, options.GRID_TILE_SIZE)
    # libde265 cannot decode a large lossless (4:4:4) picture in one piece (a 12 MP one fails);
    # a grid of 1024 px tiles decodes, bit-exact. pillow-heif's options are process-wide, and a
    # worker runs one job at a time, so they are set for this write and restored after it.
    options.GRID_TILE_SIZE = LOSSLESS_HEIF_TILE if output.lossless else saved[1]
    try:
        if r.deep is None:
            _clean(r.frames[0]).save(fp, "HEIF", **kwargs)
            return
        depth = output.bit_depth or (r.deep.bits if r.deep.bits in (10, 12) else 12)
        if r.deep.bits > depth:
            why = f"{r.deep.bits}-bit samples stored at {depth} bits"
            notes.warn("precision.reduced", format="heif", error=why)
        options.SAVE_HDR_TO_12_BIT = depth == 12
        deepmod.heif_file(r.deep, bit_depth=depth).save(fp, **kwargs)
    finally:
        options.SAVE_HDR_TO_12_BIT, options.GRID_TILE_SIZE = saved


def _write_webp(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    kwargs = _common(r.meta, output, notes)
    if output.lossless:
        kwargs.update(lossless=True, exact=True, quality=100, method=4)  # exact: keep RGB under alpha 0
    else:
        kwargs.update(quality=output.quality)
    _save_frames(r, fp, "WEBP", kwargs)


def _write_avif(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    kwargs = _common(r.meta, output, notes)
    kwargs.update(quality=output.quality, speed=output.speed)
    _save_frames(r, fp, "AVIF", kwargs)


def _save_frames(r: Rendered, fp: IO[bytes], pil_format: str, kwargs: dict[str, Any]) -> None:
    frames = [_clean(f) for f in r.frames]
    if len(frames) > 1:
        kwargs.update(save_all=True, append_images=frames[1:], duration=r.durations or 0, loop=r.loop or 0)
    frames[0].save(fp, pil_format, **kwargs)


_WRITERS: Final[dict[str, Writer]] = {
    "jpeg": _write_jpeg,
    "png": _write_png,
    "tiff": _write_tiff,
    "heif": _write_heif,
    "webp": _write_webp,
    "avif": _write_avif,
}


# Verification --------------------------------------------------------------------------------


def verify(data: bytes, rendered: Rendered, output: Output) -> None:
    """Decode a written output again; lossless outputs must equal the rendered pixels exactly."""
    register_codecs()
    try:
        with Image.open(io.BytesIO(data), formats=(_PIL_FORMAT[output.format],)) as check:
            check.load()
            frames = getattr(check, "n_frames", 1)
            size = check.size
            same = _same_pixels(check, rendered, output, data) if output.is_lossless else True
    except EncodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the output is bad
        raise EncodeError(f"written {output.format} does not decode: {type(exc).__name__}: {exc}") from None
    if size != rendered.size:
        raise EncodeError(f"written {output.format} is {size[0]}x{size[1]}, expected {rendered.size}")
    if frames != len(rendered.frames):
        raise EncodeError(f"written {output.format} has {frames} frames, expected {len(rendered.frames)}")
    if not same:
        raise EncodeError(f"lossless {output.format} output differs from the source pixels")


def _same_pixels(check: Image.Image, rendered: Rendered, output: Output, data: bytes) -> bool:
    if rendered.deep is not None:
        got = deepmod.decode_for_verify(data, output.format)
        want = rendered.deep.pixels
        if output.format == "heif":
            # Stored at 10/12 bits: compare at the precision that was kept.
            depth = output.bit_depth or (rendered.deep.bits if rendered.deep.bits in (10, 12) else 12)
            return deepmod.same_samples(got >> (16 - depth), want >> (16 - depth))
        return deepmod.same_samples(got, want)
    for index, expected in enumerate(rendered.frames):
        check.seek(index)
        if not _equal(check, expected):
            return False
    return True


_DIFFERENCE_MODES: Final = frozenset({"L", "LA", "RGB", "RGBA", "CMYK"})


def _equal(a: Image.Image, b: Image.Image) -> bool:
    """Same pixels, comparing in a mode both widen to without loss (J1/J2 of FIDELITY.md)."""
    if a.size != b.size:
        return False
    if a.mode == b.mode and a.mode in _DIFFERENCE_MODES:
        # |a - b| is zero everywhere iff the pixels are equal: in C, a third of tobytes()'s time.
        return ImageChops.difference(a, b).getbbox(alpha_only=False) is None
    if a.mode == b.mode and a.mode != "P":
        return a.tobytes() == b.tobytes()
    if a.mode.startswith("I;16") or b.mode.startswith("I;16"):
        return a.convert("I").tobytes() == b.convert("I").tobytes()
    alpha = (
        any(m in {"RGBA", "LA", "PA"} for m in (a.mode, b.mode))
        or a.has_transparency_data
        or b.has_transparency_data
    )
    common = "RGBA" if alpha else "L" if {a.mode, b.mode} <= {"1", "L"} else "RGB"
    return a.convert(common).tobytes() == b.convert(common).tobytes()
