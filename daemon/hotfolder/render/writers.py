"""One writer per output format (JPEG, PNG, HEIF, WebP, AVIF), each embedding the metadata it can hold."""

from __future__ import annotations

import io
import struct
import zlib
from typing import IO, Any, Final

from PIL import Image, PngImagePlugin

from hotfolder.core.exiftiff import EXIF_PREFIX, orientation
from hotfolder.core.resolution import png_phys, with_jfif_density
from hotfolder.decide import jxl
from hotfolder.render import deep as deepmod
from hotfolder.render import mozjpeg, pngcodec
from hotfolder.render.gainmap import ultrahdr_jpeg
from hotfolder.render.metadata import PHOTOSHOP_HEADER, Metadata, photoshop_irb, reserialise
from hotfolder.render.notes import Notes
from hotfolder.render.transform import Rendered
from hotfolder.settings.outputs import DEFAULT_JXL_EFFORT, DEFAULT_PNG_LEVEL, Output

JPEG_MAX_EXIF: Final = 65533


JPEG_MAX_XMP: Final = 65504


LOSSLESS_HEIF_TILE: Final = 1024


_JPEG_MAX_SEGMENT: Final = 65533


def dropped(notes: Notes, item: str, output: Output, why: str) -> None:
    notes.warn("metadata.dropped", item=item, format=output.format, error=why)


def bare(im: Image.Image) -> Image.Image:
    # Rule one: nothing may travel implicitly. Pillow/pillow-heif writers read `info` on their own.
    im = im.copy() if im.info else im
    im.info = {}
    return im


def jpeg_exif(meta: Metadata, notes: Notes, output: Output) -> bytes | None:
    """EXIF that fits JPEG's 64 KB APP1: raw, then rebuilt without IFD1, then without MakerNote."""
    raw = meta.exif
    if raw is None or len(raw) <= JPEG_MAX_EXIF:
        return raw
    for drop_makernote, what in ((False, "thumbnail and padding"), (True, "MakerNote")):
        try:
            rebuilt = reserialise(
                raw, size=None, orientation=None, drop_gps=False, drop_makernote=drop_makernote
            )
        except (ValueError, struct.error, TypeError) as exc:
            dropped(notes, "exif", output, f"{len(raw)} bytes > APP1 limit, and cannot be rebuilt: {exc}")
            return None
        if len(rebuilt) <= JPEG_MAX_EXIF:
            dropped(
                notes,
                f"exif {what}",
                output,
                f"{len(raw)} bytes > 64 KB APP1 limit; rebuilt as {len(rebuilt)}",
            )
            return rebuilt
    dropped(
        notes, "exif", output, f"{len(raw)} bytes do not fit the 64 KB APP1 segment even without MakerNote"
    )
    return None


def write_jpeg(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    im = bare(r.frames[0])
    kwargs: dict[str, Any] = {
        "quality": output.quality,
        "subsampling": output.subsampling,
        "progressive": output.progressive,
        "optimize": bool(output.optimize)
        or output.progressive,  # libjpeg optimises progressive tables anyway
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
            dropped(notes, "xmp", output, f"{len(r.meta.xmp)} bytes > 64 KB APP1 limit (no ExtendedXMP)")
    irb = photoshop_irb(r.meta)
    if r.gain_map is not None:
        data = ultrahdr_jpeg(im, r.gain_map, r.meta, quality=output.quality, exif=exif, notes=notes)
    elif output.optimize == "max":
        pixels = mozjpeg.encode(im, quality=output.quality, subsampling=output.subsampling)
        data = mozjpeg.with_segments(pixels, exif=exif, xmp=kwargs.get("xmp"), icc=r.meta.icc)
    else:
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
    payload = PHOTOSHOP_HEADER + irb
    if len(payload) > _JPEG_MAX_SEGMENT:
        dropped(notes, "iptc", output, f"{len(payload)} bytes > 64 KB APP13 limit")
        return jpeg
    pos = 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        pos += 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
    segment = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:pos] + segment + jpeg[pos:]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png_metadata_chunks(meta: Metadata) -> list[bytes]:
    chunks = []
    if meta.cicp is not None:
        # PNG third edition: readers that know cICP use it over iCCP (which stays, for the others).
        cicp = meta.cicp
        chunks.append(_png_chunk(b"cICP", bytes([cicp.primaries, cicp.transfer, 0, 1])))  # RGB, full
    if meta.resolution is not None:
        chunks.append(_png_chunk(b"pHYs", png_phys(meta.resolution)))
    if meta.icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(meta.icc)))
    if meta.exif:
        chunks.append(_png_chunk(b"eXIf", meta.exif[len(EXIF_PREFIX) :]))
    if meta.xmp:
        chunks.append(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + meta.xmp))
    return chunks


_OXIPNG_MODES: Final = frozenset({"L", "LA", "RGB", "RGBA"})


def _with_metadata(fp: IO[bytes], png: bytes, meta: Metadata) -> None:
    """The encoder's PNG with hotfolder's metadata chunks right after IHDR (before any IDAT)."""
    ihdr_end = 8 + 25  # the signature and the IHDR chunk
    fp.write(png[:ihdr_end] + b"".join(_png_metadata_chunks(meta)) + png[ihdr_end:])


def write_png(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    if r.meta.has_iptc:
        dropped(notes, "iptc", output, "PNG has no standard place for IPTC")
    level = DEFAULT_PNG_LEVEL if output.compress_level is None else output.compress_level
    if r.deep is not None:
        deep = r.deep.visible
        png = pngcodec.encode(
            deep.pixels.tobytes(),
            deep.size,
            bands=deep.bands,
            bits=16,
            level=level,
            optimize=output.optimize is True,
        )
        _with_metadata(fp, png, r.meta)
        return
    if len(r.frames) == 1 and r.frames[0].mode in _OXIPNG_MODES:
        im = r.frames[0]
        png = pngcodec.encode(
            im.tobytes(),
            im.size,
            bands=len(im.getbands()),
            bits=8,
            level=level,
            optimize=output.optimize is True,
        )
        _with_metadata(fp, png, r.meta)
        return
    # A palette (its PLTE and tRNS) or an animation (APNG): Pillow's writer.
    frames = [bare(f) for f in r.frames]
    kwargs: dict[str, Any] = {"compress_level": level, "optimize": output.optimize is True}
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
        kwargs.update(
            save_all=True,
            append_images=frames[1:],
            duration=r.durations or 0,
            loop=r.loop or 0,
            default_image=False,
            disposal=0,
            blend=0,
        )
    if r.meta.cicp is None:
        frames[0].save(fp, "PNG", **kwargs)
        return
    # Pillow writes no cICP for this PNG: the chunk goes right after IHDR, before PLTE and IDAT.
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", **kwargs)
    png = buf.getvalue()
    ihdr_end = 8 + 25
    cicp = _png_metadata_chunks(Metadata(cicp=r.meta.cicp))[0]
    fp.write(png[:ihdr_end] + cicp + png[ihdr_end:])


def _common(meta: Metadata, output: Output, notes: Notes) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if meta.exif:
        kwargs["exif"] = meta.exif
    if meta.xmp:
        kwargs["xmp"] = meta.xmp
    if meta.icc:
        kwargs["icc_profile"] = meta.icc
    if meta.has_iptc:
        dropped(notes, "iptc", output, f"{output.format} has no place for IPTC")
    return kwargs


def write_heif(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    import pillow_heif  # noqa: PLC0415

    kwargs = _common(r.meta, output, notes)
    if r.meta.cicp is not None:
        # The source's own NCLX rather than the profile built from it (HEIF readers, HDR ones first,
        # read NCLX). Explicit keys: pillow-heif's HeifFile path ignores an nclx_profile dict.
        kwargs.pop("icc_profile", None)
        kwargs.update(r.meta.cicp.nclx_options())
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
            frames = [bare(f) for f in r.frames]
            if len(frames) > 1:  # a multi-image HEIF (or pages): every image, the primary still primary
                kwargs.update(save_all=True, append_images=frames[1:], primary_index=r.primary)
            if len(frames) > 1 and r.images_meta:
                # pillow-heif gives every image the `exif` and `xmp` keywords; each image's own goes in
                # its info instead (None: none), which it reads per image.
                kwargs.pop("exif", None)
                kwargs.pop("xmp", None)
                for frame, meta in zip(frames, r.images_meta, strict=True):
                    frame.info = {"exif": meta.exif, "xmp": meta.xmp}
            frames[0].save(fp, "HEIF", **kwargs)
            return
        depth = output.bit_depth or (r.deep.bits if r.deep.bits in (10, 12) else 12)
        if r.deep.bits > depth:
            why = f"{r.deep.bits}-bit samples stored at {depth} bits"
            notes.warn("precision.reduced", format="heif", error=why)
        options.SAVE_HDR_TO_12_BIT = depth == 12
        deepmod.heif_file(r.deep, bit_depth=depth).save(fp, **kwargs)
    finally:
        options.SAVE_HDR_TO_12_BIT, options.GRID_TILE_SIZE = saved


def write_webp(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
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


def write_avif(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    kwargs = _common(r.meta, output, notes)
    if r.deep is not None and r.meta.cicp is not None:
        # hdr = "keep", accepted only where render/capabilities.py found pillow-heif's AV1 encoder
        # writing 10-bit with the NCLX it is given.
        kwargs.pop("icc_profile", None)
        kwargs.update(r.meta.cicp.nclx_options(), quality=output.quality)
        deepmod.heif_file(r.deep, bit_depth=10).save(fp, format="AVIF", **kwargs)
        return
    kwargs.update(quality=output.quality, speed=output.speed)
    _save_frames(r, fp, "AVIF", kwargs)


def _save_frames(r: Rendered, fp: IO[bytes], pil_format: str, kwargs: dict[str, Any]) -> None:
    frames = [bare(f) for f in r.frames]
    if len(frames) > 1:
        kwargs.update(save_all=True, append_images=frames[1:], duration=r.durations or 0, loop=r.loop or 0)
    frames[0].save(fp, pil_format, **kwargs)


def write_jxl(r: Rendered, output: Output, fp: IO[bytes], notes: Notes) -> None:
    """JPEG XL from pixels (a JPEG source that can be transcoded never comes here: run/staging.py):
    lossless keeps 16 bits and alpha, lossy takes quality or distance; the ICC profile in the
    codestream, EXIF and XMP as plain `Exif`/`xml ` boxes."""
    import numpy as np  # noqa: PLC0415 - the pixels go to libjxl as an array

    if r.deep is not None:
        pixels, bits = r.deep.visible.pixels, 16
    else:
        im = bare(r.frames[0])
        pixels = np.asarray(im)
        bits = 16 if pixels.dtype == np.uint16 else 8
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
    boxes = []
    if r.meta.exif:
        boxes.append(jxl.exif_box(r.meta.exif.removeprefix(EXIF_PREFIX)))
    if r.meta.xmp:
        boxes.append(jxl.Box(b"xml ", r.meta.xmp))
    if r.meta.has_iptc:
        dropped(notes, "iptc", output, "jxl has no place for IPTC (its XMP, when kept, has the same fields)")
    # orientation = "keep": the pixels are as stored, and the codestream says how to show them (JPEG XL
    # viewers read that field, not EXIF's).
    turn = (orientation(r.meta.exif) or 1) if output.orientation == "keep" else 1
    kind = "lossless" if output.lossless else "lossy"
    distance = output.distance if output.distance is not None else jxl.distance_for(output.quality)
    cicp = r.meta.cicp
    hdr = (cicp.primaries, cicp.transfer) if cicp is not None and r.deep is not None else None
    # icc = "srgb": the pixels are sRGB, said by JPEG XL's own sRGB encoding. Given as a profile, a
    # camera's v4 sRGB (ultra-hdr.jpg's) was read by libjxl as a D50 white with adapted primaries.
    icc = None if output.icc == "srgb" and hdr is None else r.meta.icc
    fp.write(
        jxl.encode(
            pixels,
            bits=bits,
            icc=icc,
            lossless=output.lossless,
            distance=distance,
            effort=output.effort or DEFAULT_JXL_EFFORT[kind],
            orientation=turn,
            hdr=hdr,
            boxes=tuple(boxes),
        )
    )
