"""Facts about a candidate from its header (size, date taken, camera, GPS), which rules match on."""

from __future__ import annotations

import struct
import unicodedata
from datetime import datetime
from typing import Any

from PIL import Image

from hotfolder.core.exiftiff import TAG_EXIF_IFD, TAG_GPS_IFD, TAG_ORIENTATION
from hotfolder.decide.containers import block_tags
from hotfolder.decide.header import identify
from hotfolder.decide.match import Content
from hotfolder.decide.raw import RawHeader
from hotfolder.errors import InputError


def content_facts(data: bytes, mtime: float | None, opened: Image.Image | None = None) -> Content | None:
    """Size, camera and date from the image header (no pixels decoded); None if it cannot be read.
    `opened`: the same bytes already opened by identify (the header is parsed once per job)."""
    try:
        im = opened if opened is not None else identify(data)
        ex = im.getexif()
    except (InputError, OSError, ValueError, SyntaxError):
        return None
    width, height = im.size
    if im.format not in {"HEIF", "AVIF", "TIFF"} and ex.get(TAG_ORIENTATION) in (5, 6, 7, 8):
        width, height = height, width
    return _from_exif(ex, ex.get_ifd(TAG_EXIF_IFD), bool(ex.get_ifd(TAG_GPS_IFD)), (width, height), mtime)


def raw_facts(header: RawHeader, mtime: float | None) -> Content:
    """Size, camera and date of a camera RAW from its container's EXIF, without unpacking its data."""
    ex = Image.Exif()
    if header.exif is not None:
        try:
            ex.load(header.exif)
        except (SyntaxError, ValueError, struct.error):
            ex = Image.Exif()
    sub = dict(ex.get_ifd(TAG_EXIF_IFD)) or block_tags(header.exif_ifd)
    gps = bool(ex.get_ifd(TAG_GPS_IFD)) or bool(block_tags(header.gps_ifd))
    return _from_exif(ex, sub, gps, header.upright, mtime)


def _from_exif(ex: Image.Exif, sub: Any, gps: bool, size: tuple[int, int], mtime: float | None) -> Content:  # noqa: FBT001
    taken, subsec = _taken(sub, mtime)
    return Content(
        width=size[0],
        height=size[1],
        make=exif_text(ex.get(0x010F)),
        model=exif_text(ex.get(0x0110)),
        has_exif=len(ex) > 0 or bool(sub),
        has_gps=gps,
        taken=taken,
        subsec=subsec,
    )


def exif_text(value: Any) -> str | None:
    """An EXIF text value as the camera meant it: UTF-8 when the bytes are valid UTF-8, else Latin-1.

    Pillow decodes ASCII-typed tags as Latin-1, so a UTF-8 Make ('Ünïcode Kamera') came out as
    'Ã\x9cnÃ¯code Kamera'; the Latin-1 round trip gives back the bytes the camera wrote.
    """
    if isinstance(value, str):
        value = value.encode("latin-1", "replace")
    if not isinstance(value, bytes):
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    return unicodedata.normalize("NFC", text.strip("\x00 ")) or None


def _taken(sub: Any, mtime: float | None) -> tuple[datetime | None, str]:
    """DateTimeOriginal (+ SubSecTimeOriginal), then CreateDate, then the file's mtime."""
    for tag, subsec in ((0x9003, 0x9291), (0x9004, 0x9292)):
        raw = exif_text(sub.get(tag))
        if raw:
            try:
                return datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S"), (
                    exif_text(sub.get(subsec)) or ""
                ).strip()
            except ValueError:
                continue
    # Local time, as cameras write it: no time zone is implied anywhere in EXIF dates.
    return (datetime.fromtimestamp(mtime) if mtime is not None else None), ""
