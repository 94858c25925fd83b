"""Camera RAW without decoding it: which container it is, where its EXIF lies, whether its raw data
lies inside the file, and its sizes and preview as LibRaw parses them (no unpacking).

A truncated RAW can keep an intact preview, and LibRaw renders some truncated files without an error
(zeros or garbage where the data is missing), so the extent of the raw data is read from the
container itself before anything is made from it; a RAW whose extent cannot be verified is refused.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from typing import Final

from hotfolder.decide.containers import CONTAINER_NAMES, container_of, exif_blocks, extent_problem, xmp_packet
from hotfolder.errors import InputError

_EXIF_IFD: Final = 34665
_DNG_VERSION: Final = 50706
# LibRaw's flip (0, 3, 5, 6) as the EXIF orientation that shows the stored pixels upright.
_FLIP_TO_ORIENTATION: Final = {0: 1, 3: 3, 5: 8, 6: 6}


@dataclass(frozen=True)
class RawHeader:
    """What a RAW says about itself before any raw data is unpacked."""

    container: str  # tiff (NEF, CR2, ARW, DNG, PEF, ...), orf, rw2, cr3, raf, ciff, x3f, unknown
    exif: bytes | None  # a TIFF block whose IFD0 holds the camera's tags (and Exif/GPS pointers)
    exif_ifd: bytes | None  # CR3 keeps the Exif IFD in a block of its own (CMT2)
    gps_ifd: bytes | None  # ... and the GPS IFD (CMT4)
    xmp: bytes | None
    orientation: int  # what turns the sensor's pixels (and the preview) upright
    sensor: tuple[int, int]  # the developed size before orientation (LibRaw's width x height)
    preview: tuple[int, int] | None  # the embedded JPEG preview's size as stored, if there is one

    @property
    def upright(self) -> tuple[int, int]:
        """The developed picture's size once upright."""
        w, h = self.sensor
        return (h, w) if self.orientation in (5, 6, 7, 8) else (w, h)


def inspect(data: bytes, *, max_pixels: int) -> RawHeader:
    """The header of a RAW, or InputError saying why it cannot be used (truncated, unsupported)."""
    container = container_of(data[:16])
    exif, exif_ifd, gps_ifd = exif_blocks(data, container)
    problem = extent_problem(data, container)
    if problem is not None:
        raise InputError(problem)
    sizes, flip, preview = _libraw_header(data, container)
    width, height = sizes
    if width * height > max_pixels:
        raise InputError(
            f"{width}x{height} = {width * height:,} pixels exceeds max_image_pixels ({max_pixels:,}); "
            "raise max_image_pixels in the config to accept it"
        )
    return RawHeader(
        container=container,
        exif=exif,
        exif_ifd=exif_ifd,
        gps_ifd=gps_ifd,
        xmp=xmp_packet(data),
        orientation=_FLIP_TO_ORIENTATION.get(flip, 1),
        sensor=sizes,
        preview=preview,
    )


def _libraw_header(data: bytes, container: str) -> tuple[tuple[int, int], int, tuple[int, int] | None]:
    """LibRaw's parse of the header: developed size, flip, and the preview's stored size."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before LibRaw loads: the pool keeps the cores busy
    import rawpy  # noqa: PLC0415 - only workers (and explain) parse RAW

    raw = rawpy.RawPy()
    try:
        try:
            raw.open_buffer(io.BytesIO(data))
        except rawpy.LibRawError as exc:
            name = CONTAINER_NAMES.get(container, container.upper())
            raise InputError(
                f"LibRaw cannot read this {name}: {_said(exc)} (unsupported or damaged)"
            ) from None
        sizes = (int(raw.sizes.width), int(raw.sizes.height))
        flip = int(raw.sizes.flip)
        try:
            thumb = raw.extract_thumb()
        except rawpy.LibRawError:
            return sizes, flip, None
        preview = None
        if thumb.format == rawpy.ThumbFormat.JPEG:
            preview = _jpeg_size(bytes(thumb.data))
        return sizes, flip, preview
    finally:
        raw.close()


def preview_jpeg(data: bytes) -> bytes | None:
    """The camera's embedded JPEG preview, as stored (not turned), or None."""
    import rawpy  # noqa: PLC0415

    raw = rawpy.RawPy()
    try:
        raw.open_buffer(io.BytesIO(data))
        thumb = raw.extract_thumb()
    except rawpy.LibRawError:
        return None
    finally:
        raw.close()
    return bytes(thumb.data) if thumb.format == rawpy.ThumbFormat.JPEG else None


def _said(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else exc
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)


def _jpeg_size(jpeg: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(jpeg):
        if jpeg[pos] != 0xFF:
            return None
        marker = jpeg[pos + 1]
        length = struct.unpack_from(">H", jpeg, pos + 2)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack_from(">HH", jpeg, pos + 5)
            return int(width), int(height)
        pos += 2 + length
    return None


# Where the raw data lies ------------------------------------------------------------------------


# EXIF blocks --------------------------------------------------------------------------------------


# Canon CRW (CIFF): a heap of records, each heap's table found through its last four bytes ---------
