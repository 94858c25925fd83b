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
from PIL.TiffImagePlugin import IFDRational

from hotfolder.core.resolution import png_phys, rational, with_jfif_density
from hotfolder.decide.sniff import register_codecs
from hotfolder.errors import EncodeError, is_transient
from hotfolder.render import deep as deepmod
from hotfolder.render import metadata
from hotfolder.render.imaging import Notes, Rendered
from hotfolder.render.metadata import Metadata
from hotfolder.settings.outputs import DEFAULT_PNG_LEVEL, Output

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
        raise EncodeError(f"cannot write {output.format}: {exc}") from exc


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
        "optimize": output.optimize or output.progressive,  # libjpeg optimises progressive tables anyway
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
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kwargs)
    data = buf.getvalue()
    if r.meta.resolution is not None:
        data = with_jfif_density(data, r.meta.resolution)
    if irb is not None:
        data = _with_app13(data, irb, notes, output)
    fp.write(data)


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
    if meta.resolution is not None:
        chunks.append(_png_chunk(b"pHYs", png_phys(meta.resolution)))
    if meta.icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(meta.icc)))
    if meta.exif:
        chunks.append(_png_chunk(b"eXIf", meta.exif[len(metadata.EXIF_PREFIX) :]))
    if meta.xmp:
        chunks.append(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + meta.xmp))
    return chunks


def _without_chunk(png: bytes, kind: bytes) -> bytes:
    """A PNG without any chunk of this type (libvips writes a pHYs of its own default, 1 px/mm)."""
    out, pos = bytearray(png[:8]), 8
    while pos + 12 <= len(png):
        length = struct.unpack_from(">I", png, pos)[0]
        end = pos + 12 + length
        if png[pos + 4 : pos + 8] != kind:
            out += png[pos:end]
        pos = end
    return bytes(out)


def _write_png(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    if r.meta.has_iptc:
        _dropped(notes, "iptc", output, "PNG has no standard place for IPTC")
    level = DEFAULT_PNG_LEVEL if output.compress_level is None else output.compress_level
    if r.deep is not None:
        png = _without_chunk(deepmod.png_bytes(r.deep, level=level, optimize=output.optimize), b"pHYs")
        ihdr_end = 8 + 25  # signature + IHDR chunk: metadata chunks must come before IDAT
        fp.write(png[:ihdr_end] + b"".join(_png_metadata_chunks(r.meta)) + png[ihdr_end:])
        return
    frames = [_clean(f) for f in r.frames]
    kwargs: dict[str, Any] = {"compress_level": level, "optimize": output.optimize}
    if r.meta.resolution is not None:
        kwargs["dpi"] = r.meta.resolution.per_inch  # Pillow writes pHYs in pixels per metre
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
    level = output.compress_level
    pages = None if r.deep is not None or output.compression == "zstd" else _vips_pages(r.frames)
    if r.deep is not None:
        compression = output.compression
        if compression == "zstd":
            # The libtiff inside pyvips-binary is built without zstd.
            why = "TIFF written with deflate: the libtiff in libvips (which writes these pixels) has no zstd"
            notes.warn("option.substituted", format="tiff", error=why)
            compression = "deflate"
        data = deepmod.tiff_bytes(r.deep, compression=_VIPS_COMPRESSION[compression], predictor=predictor,
                                  level=level)  # fmt: skip
    elif pages is not None:
        image, mode = pages
        data = deepmod.vips_tiff(
            image,
            r.meta.icc,
            compression=_VIPS_COMPRESSION[output.compression],
            predictor=predictor and mode != "1",
            level=level,
            float_predictor=mode == "F",
            bitdepth=1 if mode == "1" else None,
        )
    else:
        # zstd (Pillow's libtiff has it, libvips' has not), and pages of different sizes or modes.
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


# Pillow mode -> (bands, libvips format, interpretation); "1" is written as 1-bit from 0/255 grey.
_VIPS_MODES: Final = {
    "L": (1, "uchar", "b-w"), "LA": (2, "uchar", "b-w"), "RGB": (3, "uchar", "srgb"),
    "RGBA": (4, "uchar", "srgb"), "CMYK": (4, "uchar", "cmyk"), "1": (1, "uchar", "b-w"),
    "I;16": (1, "ushort", "grey16"), "F": (1, "float", "b-w"),
}  # fmt: skip


def _vips_pages(frames: list[Image.Image]) -> tuple[Any, str] | None:
    """Pillow frames as one libvips image (pages stacked, with page-height), or None when libvips
    cannot write them (pages of different sizes or modes, a mode it has no TIFF for).

    libvips' libtiff deflates with libdeflate, twice as fast as Pillow's (0.8 vs 1.6 s for 12.5 MP
    with the predictor), takes a compression level, and a little smaller. Only pixels and ICC go in
    here; tiff_with_metadata adds the rest."""
    mode, size = frames[0].mode, frames[0].size
    if mode not in _VIPS_MODES or any(f.mode != mode or f.size != size for f in frames):
        return None
    import pyvips  # noqa: PLC0415

    bands, fmt, interpretation = _VIPS_MODES[mode]
    images = []
    for frame in frames:
        raw = frame.convert("L").tobytes() if mode == "1" else frame.tobytes()
        image = pyvips.Image.new_from_memory(raw, size[0], size[1], bands, fmt)
        images.append(image.copy(interpretation=interpretation))
    joined = images[0] if len(images) == 1 else pyvips.Image.arrayjoin(images, across=1)
    if len(images) > 1:
        joined = joined.copy()
        joined.set_type(pyvips.GValue.gint_type, "page-height", size[1])
    return joined, mode


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
    if meta.layers:
        ifd[metadata.TAG_IMAGE_SOURCE_DATA] = meta.layers
        ifd.tagtype[metadata.TAG_IMAGE_SOURCE_DATA] = 7
    if meta.extra_samples:
        ifd[338] = meta.extra_samples  # what the extra channels are, as the source said
        ifd.tagtype[338] = 3
    # The resolution is always said: the source's (its unit kept), or "no absolute unit, 1/1",
    # which TIFF requires (libvips would otherwise write its own default of 1 pixel per mm).
    found = meta.resolution
    ifd[282], ifd[283] = (
        (IFDRational(*rational(found.x)), IFDRational(*rational(found.y)))
        if found
        else (IFDRational(1), IFDRational(1))
    )
    ifd.tagtype[282] = ifd.tagtype[283] = 5
    ifd[296] = found.tiff_unit if found else 1
    ifd.tagtype[296] = 3
    if len(buf) % 2:
        buf += b"\x00"
    at = len(buf)
    blob = bytearray(ifd.tobytes(at))
    _restore_ifd_values(blob, endian, at, strip_offsets, following)
    buf += blob
    struct.pack_into(endian + "I", buf, 4, at)
    return bytes(buf)


def _as_written(value: Any) -> Any:
    """Text as the bytes it was read from: Pillow reads ASCII tags as Latin-1 and would write anything
    beyond ASCII as '?', while cameras and exiftool put UTF-8 there ('© 2024', 'Ünïcode')."""
    if isinstance(value, str) and not value.isascii():
        return value.encode("latin-1", "replace")
    return value


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
            ifd[tag] = _as_written(value)
    sub: dict[int, Any] = {tag: _as_written(v) for tag, v in ex.get_ifd(metadata.TAG_EXIF_IFD).items()}
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
    buf = io.BytesIO()
    _save_frames(r, buf, "WEBP", kwargs)
    data = bytearray(buf.getvalue())
    if len(r.frames) > 1 and r.frames[0].mode == "RGBA" and data[12:16] == b"VP8X" and not data[20] & 0x10:
        # libwebp's animation encoder leaves VP8X's alpha flag off for lossy frames that do carry alpha
        # (ALPH chunks): readers that trust the flag (Pillow) would show the transparency as black.
        data[20] |= 0x10
    fp.write(data)


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
        raise EncodeError(f"the written {output.format} does not decode again: {exc}") from None
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
