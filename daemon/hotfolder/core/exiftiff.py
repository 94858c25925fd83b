"""The EXIF/TIFF reader-patcher: pure bytes in, bytes out, no codec (structure, orientation, patches)."""

from __future__ import annotations

import struct
from typing import Final

from hotfolder.core import resolution as res
from hotfolder.core.resolution import Resolution

EXIF_PREFIX: Final = b"Exif\x00\x00"


TAG_ORIENTATION: Final = 0x0112


TAG_IMAGE_WIDTH: Final = 0x0100


TAG_IMAGE_LENGTH: Final = 0x0101


TAG_EXIF_IFD: Final = 0x8769


TAG_PIXEL_X: Final = 0xA002


TAG_PIXEL_Y: Final = 0xA003


TAG_THUMB_OFFSET: Final = 0x0201


TAG_THUMB_LENGTH: Final = 0x0202


TAG_GPS_IFD: Final = 0x8825


TAG_MAKERNOTE: Final = 0x927C
# What identifies a camera or its owner rather than a picture (EXIF 2.3+, DNG): ExifIFD's
# CameraOwnerName, BodySerialNumber and LensSerialNumber, and IFD0's CameraSerialNumber (DNG).
TAGS_SERIALS: Final = frozenset({0xA431, 0xA435, 0xC62F})
TAGS_OWNER: Final = frozenset({0xA430})


TAG_XMP: Final = 700


TAG_IPTC: Final = 33723


TAG_PHOTOSHOP: Final = 34377


TAG_IMAGE_SOURCE_DATA: Final = 37724  # Photoshop's layers in a TIFF


# Tags that describe a TIFF file's own layout: meaningless (and harmful) in another file's EXIF.
TIFF_STRUCTURAL: Final = frozenset(
    {
        254,
        255,
        256,
        257,
        258,
        259,
        262,
        266,
        273,
        277,
        278,
        279,
        284,
        317,
        320,
        322,
        323,
        324,
        325,
        338,
        339,
        347,
        512,
        513,
        514,
        515,
        517,
        518,
        519,
        520,
        521,
        530,
        531,
        532,
        700,
        33723,
        34377,
        34675,
        37724,
    }  # ImageSourceData: Photoshop's layers, meaningless once the pixels are re-encoded
)


_SHORT, _LONG = 3, 4
_TYPE_SIZES: Final = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


class ExifStructureError(ValueError):
    """The EXIF block does not follow the TIFF layout closely enough to patch it in place."""


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

    def set_rational(self, entry: int, value: tuple[int, int]) -> None:
        """Overwrite a single RATIONAL value where it lies (8 bytes out of line)."""
        kind, count = self._unpack("H", entry + 2), self._unpack("I", entry + 4)
        if kind != 5 or count != 1:
            raise ExifStructureError(f"tag {self._unpack('H', entry):#06x} is not a single RATIONAL")
        at = self._unpack("I", entry + 8)
        self._unpack("I", at + 4)  # bounds
        self._pack("I", at, value[0])
        self._pack("I", at + 4, value[1])

    def value_span(self, entry: int) -> tuple[int, int] | None:
        """(offset, length) of an entry's out-of-line value, or None when it fits in the entry."""
        kind, count = self._unpack("H", entry + 2), self._unpack("I", entry + 4)
        length = _TYPE_SIZES.get(kind, 1) * count
        if length <= 4:
            return None
        start = self._unpack("I", entry + 8)
        if start + length > len(self.buf):
            raise ExifStructureError(f"tag {self._unpack('H', entry):#06x} points past the EXIF block")
        return start, length

    def blank_ifd(self, ifd: int) -> None:
        """Zero an IFD and every value it points to (its data must not travel on unreferenced)."""
        for entry in self.entries(ifd).values():
            span = self.value_span(entry)
            if span is not None:
                self.buf[span[0] : span[0] + span[1]] = bytes(span[1])
        end = self.next_pointer(ifd) + 4
        self.buf[ifd:end] = bytes(end - ifd)

    def remove_entry(self, ifd: int, tag: int) -> None:
        """Delete one entry from an IFD in place: later entries and the next pointer move up 12 bytes."""
        entries = self.entries(ifd)
        at = entries[tag]
        end = self.next_pointer(ifd) + 4
        self.buf[at : end - 12] = self.buf[at + 12 : end]
        self.buf[end - 12 : end] = bytes(12)
        self._pack("H", ifd, len(entries) - 1)

    def bytes(self) -> bytes:
        return self.prefix + bytes(self.buf)


def ifd0_tags(raw: bytes) -> set[int]:
    """The tags of IFD0 in a TIFF-structured block, or an empty set when it cannot be read."""
    try:
        tiff = _Tiff(raw)
        return set(tiff.entries(tiff.ifd0()))
    except ExifStructureError:
        return set()


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


def patch(
    raw: bytes,
    *,
    size: tuple[int, int] | None,
    orientation: int | None,
    drop_thumbnail: bool,
    drop_gps: bool = False,
    drop_orientation: bool = False,
    resolution: Resolution | None = None,
    drop_tags: frozenset[int] = frozenset(),
) -> bytes:
    """Edit raw EXIF in place: set Orientation, dimensions and resolution, unlink IFD1 and GPS, remove
    `drop_tags` from IFD0 and the Exif IFD (serial numbers, owner, MakerNote).

    Everything else keeps its exact bytes and offsets (MakerNotes stay valid). Removed data is
    blanked, not just unlinked, so no GPS or stale thumbnail travels with the file. Raises
    ExifStructureError when the block cannot be edited safely.
    """
    tiff = _Tiff(raw)
    ifd0 = tiff.ifd0()
    entries = tiff.entries(ifd0)
    if drop_orientation and TAG_ORIENTATION in entries:
        tiff.remove_entry(ifd0, TAG_ORIENTATION)
        entries = tiff.entries(ifd0)  # later entries moved up by one slot
    elif orientation is not None and TAG_ORIENTATION in entries:
        tiff.set_scalar(entries[TAG_ORIENTATION], orientation)
    if size is not None:
        for tag, value in ((TAG_IMAGE_WIDTH, size[0]), (TAG_IMAGE_LENGTH, size[1])):
            if tag in entries:
                tiff.set_scalar(entries[tag], value)
        if TAG_EXIF_IFD in entries:
            exif_entries = tiff.entries(tiff.scalar(entries[TAG_EXIF_IFD]))
            for tag, value in ((TAG_PIXEL_X, size[0]), (TAG_PIXEL_Y, size[1])):
                if tag in exif_entries:
                    tiff.set_scalar(exif_entries[tag], value)
    if resolution is not None:
        entries = tiff.entries(ifd0)
        for tag, per in ((res.TAG_X, resolution.x), (res.TAG_Y, resolution.y)):
            if tag in entries:
                tiff.set_rational(entries[tag], res.rational(per))
        if res.TAG_UNIT in entries:
            tiff.set_scalar(entries[res.TAG_UNIT], resolution.tiff_unit)
    if drop_tags:
        _drop_tags(tiff, ifd0, drop_tags)
    if drop_gps and TAG_GPS_IFD in tiff.entries(ifd0):
        gps = tiff.scalar(tiff.entries(ifd0)[TAG_GPS_IFD])
        tiff.blank_ifd(gps)
        tiff.remove_entry(ifd0, TAG_GPS_IFD)
    if drop_thumbnail:
        _drop_ifd1(tiff, ifd0)
    return tiff.bytes()


def _drop_tags(tiff: _Tiff, ifd0: int, tags: frozenset[int]) -> None:
    """Remove these tags from IFD0 and the Exif IFD, their values blanked where they lay."""
    ifds = [ifd0]
    if TAG_EXIF_IFD in tiff.entries(ifd0):
        ifds.append(tiff.scalar(tiff.entries(ifd0)[TAG_EXIF_IFD]))
    for ifd in ifds:
        for tag in sorted(tags & tiff.entries(ifd).keys()):
            span = tiff.value_span(tiff.entries(ifd)[tag])
            if span is not None:
                tiff.buf[span[0] : span[0] + span[1]] = bytes(span[1])
            tiff.remove_entry(ifd, tag)


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
