"""EXIF / XMP / ICC: capture from a decoded source, patch raw EXIF in place, prepare per output.

Raw EXIF bytes are patched in place (Orientation, pixel dimensions, the IFD1 thumbnail) rather
than re-serialised: re-serialising drops IFD1 and can corrupt MakerNotes, whose internal offsets
point into the original block (Pillow #7545).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from PIL import Image

EXIF_PREFIX: Final = b"Exif\x00\x00"

TAG_ORIENTATION: Final = 0x0112
TAG_IMAGE_WIDTH: Final = 0x0100
TAG_IMAGE_LENGTH: Final = 0x0101
TAG_EXIF_IFD: Final = 0x8769
TAG_PIXEL_X: Final = 0xA002
TAG_PIXEL_Y: Final = 0xA003
TAG_THUMB_OFFSET: Final = 0x0201
TAG_THUMB_LENGTH: Final = 0x0202

# Tags that describe a TIFF file's own layout: meaningless (and harmful) in another file's EXIF.
TIFF_STRUCTURAL: Final = frozenset(
    {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 320, 338, 339, 700, 33723, 34377, 34675}
)

_TYPE_SIZES: Final = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_SHORT, _LONG = 3, 4


class ExifStructureError(ValueError):
    """The EXIF block does not follow the TIFF layout closely enough to patch it in place."""


@dataclass(frozen=True)
class Metadata:
    """What a source carries, captured once before any transform touches `info`."""

    exif: bytes | None = None  # always with the b"Exif\\0\\0" prefix
    icc: bytes | None = None
    xmp: bytes | None = None


def capture(im: Image.Image) -> Metadata:
    """Take EXIF, ICC and XMP from a freshly opened image (the TIFF source's own layout removed)."""
    info = im.info
    exif: bytes | None = info.get("exif") or None
    if exif is None and im.format == "TIFF":
        ex = im.getexif()
        for tag in TIFF_STRUCTURAL:
            ex.pop(tag, None)
        exif = ex.tobytes() if len(ex) else None
    if exif is not None:
        exif = with_prefix(exif)
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp") or None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return Metadata(exif=exif, icc=info.get("icc_profile") or None, xmp=xmp)


def with_prefix(raw: bytes) -> bytes:
    """EXIF bytes with the JPEG APP1 prefix (WebP and PNG sources give bare TIFF bytes)."""
    return raw if raw.startswith(EXIF_PREFIX) else EXIF_PREFIX + raw


class _Tiff:
    """A mutable view of an EXIF block's TIFF structure, bounds-checked at every step."""

    def __init__(self, raw: bytes) -> None:
        self.prefix = EXIF_PREFIX if raw.startswith(EXIF_PREFIX) else b""
        self.buf = bytearray(raw[len(self.prefix) :])
        order = bytes(self.buf[:2])
        if order == b"II":
            self.endian = "<"
        elif order == b"MM":
            self.endian = ">"
        else:
            raise ExifStructureError("no TIFF byte-order mark")
        if self._unpack("H", 2) != 42:
            raise ExifStructureError("bad TIFF magic number")

    def _unpack(self, fmt: str, offset: int) -> int:
        size = struct.calcsize(fmt)
        if offset < 0 or offset + size > len(self.buf):
            raise ExifStructureError(f"offset {offset} lies outside the EXIF block")
        return int(struct.unpack_from(self.endian + fmt, self.buf, offset)[0])

    def _pack(self, fmt: str, offset: int, value: int) -> None:
        struct.pack_into(self.endian + fmt, self.buf, offset, value)

    def ifd0(self) -> int:
        return self._unpack("I", 4)

    def entries(self, ifd: int) -> dict[int, int]:
        """Tag → offset of its 12-byte entry."""
        count = self._unpack("H", ifd)
        if count > 1000:
            raise ExifStructureError(f"implausible IFD entry count {count}")
        return {self._unpack("H", ifd + 2 + 12 * k): ifd + 2 + 12 * k for k in range(count)}

    def next_pointer(self, ifd: int) -> int:
        """Offset of the 4-byte 'next IFD' pointer that follows an IFD's entries."""
        return ifd + 2 + 12 * self._unpack("H", ifd)

    def scalar(self, entry: int) -> int:
        kind, count = self._unpack("H", entry + 2), self._unpack("I", entry + 4)
        if count != 1 or kind not in (_SHORT, _LONG):
            raise ExifStructureError(f"tag {self._unpack('H', entry):#06x} is not a single SHORT/LONG")
        return self._unpack("H" if kind == _SHORT else "I", entry + 8)

    def set_scalar(self, entry: int, value: int) -> None:
        kind = self._unpack("H", entry + 2)
        if kind == _SHORT and value > 0xFFFF:
            raise ExifStructureError(f"{value} does not fit the SHORT tag {self._unpack('H', entry):#06x}")
        self.scalar(entry)  # validates type and count
        self._pack("H" if kind == _SHORT else "I", entry + 8, value)

    def bytes(self) -> bytes:
        return self.prefix + bytes(self.buf)


def orientation(raw: bytes | None) -> int | None:
    """The Orientation value of IFD0, or None when absent or unreadable."""
    if not raw:
        return None
    try:
        tiff = _Tiff(raw)
        entry = tiff.entries(tiff.ifd0()).get(TAG_ORIENTATION)
        return None if entry is None else tiff.scalar(entry)
    except ExifStructureError:
        return None


def patch(raw: bytes, *, size: tuple[int, int] | None, upright: bool, drop_thumbnail: bool) -> bytes:
    """Return raw EXIF with Orientation set to 1, dimensions updated and IFD1 removed, in place.

    Everything else keeps its exact bytes and offsets. Raises ExifStructureError when the block
    cannot be patched safely; the caller then falls back to re-serialising and says so.
    """
    tiff = _Tiff(raw)
    ifd0 = tiff.ifd0()
    entries = tiff.entries(ifd0)
    if upright and TAG_ORIENTATION in entries:
        tiff.set_scalar(entries[TAG_ORIENTATION], 1)
    if size is not None:
        for tag, value in ((TAG_IMAGE_WIDTH, size[0]), (TAG_IMAGE_LENGTH, size[1])):
            if tag in entries:
                tiff.set_scalar(entries[tag], value)
        if TAG_EXIF_IFD in entries:
            exif_entries = tiff.entries(tiff.scalar(entries[TAG_EXIF_IFD]))
            for tag, value in ((TAG_PIXEL_X, size[0]), (TAG_PIXEL_Y, size[1])):
                if tag in exif_entries:
                    tiff.set_scalar(exif_entries[tag], value)
    if drop_thumbnail:
        _drop_ifd1(tiff, ifd0)
    return tiff.bytes()


def _drop_ifd1(tiff: _Tiff, ifd0: int) -> None:
    pointer = tiff.next_pointer(ifd0)
    ifd1 = tiff._unpack("I", pointer)
    if ifd1 == 0:
        return
    # Blank the stale thumbnail's bytes too: unreferenced data would still travel with the file.
    try:
        entries = tiff.entries(ifd1)
        if TAG_THUMB_OFFSET in entries and TAG_THUMB_LENGTH in entries:
            start, length = tiff.scalar(entries[TAG_THUMB_OFFSET]), tiff.scalar(entries[TAG_THUMB_LENGTH])
            if start > 0 and start + length <= len(tiff.buf):
                tiff.buf[start : start + length] = bytes(length)
        end = tiff.next_pointer(ifd1) + 4
        tiff.buf[ifd1:end] = bytes(end - ifd1)
    except ExifStructureError:
        pass  # the pointer below is what readers follow; a malformed IFD1 is simply unlinked
    tiff._pack("I", pointer, 0)
