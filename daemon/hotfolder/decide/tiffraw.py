"""Camera RAW inside a TIFF container, told by its structure, not by its name.

NEF, ARW, PEF, SRW, MEF, 3FR, DCR, ERF, IIQ, DNG (and CR2, ORF and RW2 with their own magic) are TIFF
files at the start: Pillow opens one as a plain TIFF and finds only IFD0's 160x120 thumbnail. A NEF
renamed `.tif`, or a RAW extension missing from our list (Mamiya `.mef`), was taken as "the picture"
by a TIFF rule, and its original deleted. The structure says what it is:

- a DNGVersion tag, or maker tags only RAW files carry (DNGPrivateData, which holds Sony's SR2Private);
- an IFD whose photometric interpretation is CFA (32803) or LinearRaw (34892), or that has CFA pattern
  tags, or a compression only RAW writers use (Nikon 34713, Sony 32767, Panasonic 34316, ...);
- a reduced-resolution IFD0 (NewSubfileType 1) beside a larger SubIFD of 12 bits or more: the sensor.

Only positioned reads of the IFDs are made (at most 64 IFDs, a bounded number of bytes), so a file of
any length is judged in milliseconds; the same walk gives the extent of the data the header describes,
which bounds how long a plausible file can be (a DNG padded to 3 GB is refused unread).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Final

_TIFF_MAGIC: Final = {42, 0x4F52, 0x5352, 0x55}  # TIFF; Olympus ORF ("RO", "RS"); Panasonic RW2 (0x55)
_PHOTOMETRIC_RAW: Final = {32803, 34892}  # CFA, LinearRaw
# Sony ARW 32767, packed 32769, Samsung 32770, Panasonic 34316, Nikon NEF 34713, Kodak 65000, Pentax 65535
_COMPRESSION_RAW: Final = {32767, 32769, 32770, 34316, 34713, 65000, 65535}
_RAW_ONLY_TAGS: Final = {
    50706: "DNGVersion",
    50740: "DNGPrivateData",
    33421: "CFARepeatPatternDim",
    33422: "CFAPattern",
    33423: "KodakIFD",
    34310: "Leaf data",
}
_SUBFILE, _WIDTH, _HEIGHT, _BITS, _COMPRESSION, _PHOTOMETRIC = 254, 256, 257, 258, 259, 262
_STRIP_OFFSETS, _STRIP_COUNTS, _TILE_OFFSETS, _TILE_COUNTS, _SUB_IFDS = 273, 279, 324, 325, 330
_JPEG_OFFSET, _JPEG_LENGTH = 513, 514
_MAX_IFDS: Final = 64
_MAX_ENTRIES: Final = 1000
_MAX_ARRAY: Final = 65536  # strips or tiles of one IFD read for the extent; more are not needed
_TYPE_SIZE: Final = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}


@dataclass(frozen=True)
class Layout:
    """What a TIFF-structured file's IFDs say: RAW or not (and why), and where its described data ends."""

    raw: bool
    why: str
    data_end: int  # the last byte any strip, tile or embedded JPEG of any IFD reaches
    pixels: int  # the largest image of any IFD, in pixels


@dataclass(frozen=True)
class _Ifd:
    tags: dict[int, tuple[int, ...]]


class _Reader:
    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        head = os.pread(fd, 8, 0)
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            raise ValueError("no TIFF byte order")
        self.endian = "<" if head[:2] == b"II" else ">"
        magic, self.first = struct.unpack(self.endian + "HI", head[2:8])
        if magic not in _TIFF_MAGIC:
            raise ValueError("no TIFF magic")

    def ifd(self, offset: int) -> tuple[_Ifd, int]:
        """The IFD at `offset` (values as int tuples, arrays cut at _MAX_ARRAY) and the next one's offset."""
        count_raw = os.pread(self.fd, 2, offset)
        if len(count_raw) < 2:
            raise ValueError("IFD past the end")
        (count,) = struct.unpack(self.endian + "H", count_raw)
        if count > _MAX_ENTRIES:
            raise ValueError("implausible IFD")
        body = os.pread(self.fd, 12 * count + 4, offset + 2)
        if len(body) < 12 * count + 4:
            raise ValueError("truncated IFD")
        tags = {}
        for k in range(count):
            tag, kind, n = struct.unpack_from(self.endian + "HHI", body, 12 * k)
            tags[tag] = self._values(kind, n, body[12 * k + 8 : 12 * k + 12])
        (following,) = struct.unpack_from(self.endian + "I", body, 12 * count)
        return _Ifd(tags), following

    def _values(self, kind: int, n: int, inline: bytes) -> tuple[int, ...]:
        fmt = {3: "H", 4: "I", 13: "I", 16: "Q", 1: "B", 7: "B"}.get(kind)
        if fmt is None:
            return ()
        n = min(n, _MAX_ARRAY)
        size = struct.calcsize(fmt) * n
        if size <= 4:
            data = inline[:size]
        else:
            (at,) = struct.unpack(self.endian + "I", inline)
            data = os.pread(self.fd, size, at)
            if len(data) < size:
                return ()
        return struct.unpack(self.endian + fmt * n, data)


def layout(fd: int, size: int) -> Layout | None:
    """The layout of a TIFF-structured file, or None when it is not one (or its IFD0 cannot be read)."""
    try:
        reader = _Reader(fd, size)
    except (ValueError, OSError, struct.error):
        return None
    seen: set[int] = set()
    todo = [(reader.first, 0)]  # (offset, depth); depth 0: the main chain
    ifds: list[tuple[_Ifd, int]] = []
    while todo and len(seen) < _MAX_IFDS:
        offset, depth = todo.pop(0)
        if offset in seen or not 8 <= offset < size:
            continue
        seen.add(offset)
        try:
            ifd, following = reader.ifd(offset)
        except (ValueError, OSError, struct.error):
            if not ifds:
                return None
            continue
        ifds.append((ifd, depth))
        todo += [(o, depth + 1) for o in ifd.tags.get(_SUB_IFDS, ())]
        if depth == 0 and following:
            todo.append((following, 0))
    return _judge(ifds)


def _judge(ifds: list[tuple[_Ifd, int]]) -> Layout:
    why = ""
    end, pixels = 0, 0
    first = ifds[0][0].tags
    for ifd, depth in ifds:
        tags = ifd.tags
        area = _one(tags, _WIDTH) * _one(tags, _HEIGHT)
        pixels = max(pixels, area)
        for offsets, counts in (
            (_STRIP_OFFSETS, _STRIP_COUNTS),
            (_TILE_OFFSETS, _TILE_COUNTS),
            (_JPEG_OFFSET, _JPEG_LENGTH),
        ):
            end = max(
                [end, *(o + c for o, c in zip(tags.get(offsets, ()), tags.get(counts, ()), strict=False))]
            )
        if why:
            continue
        found = next((name for tag, name in _RAW_ONLY_TAGS.items() if tag in tags), None)
        if found:
            why = f"it has the RAW-only tag {found}"
        elif _one(tags, _PHOTOMETRIC) in _PHOTOMETRIC_RAW:
            kind = "CFA" if _one(tags, _PHOTOMETRIC) == 32803 else "LinearRaw"
            why = f"{'a SubIFD' if depth else 'an IFD'} holds {kind} sensor data"
        elif _one(tags, _COMPRESSION) in _COMPRESSION_RAW:
            why = f"its image data uses the RAW compression {_one(tags, _COMPRESSION)}"
        elif (
            depth > 0
            and _one(first, _SUBFILE) == 1
            and max(tags.get(_BITS, (8,))) >= 12
            and area > _one(first, _WIDTH) * _one(first, _HEIGHT)
        ):
            why = "IFD0 is a reduced-resolution preview and a SubIFD holds a larger image of 12 bits or more"
    return Layout(raw=bool(why), why=why, data_end=end, pixels=pixels)


def _one(tags: dict[int, tuple[int, ...]], tag: int) -> int:
    values = tags.get(tag, ())
    return int(values[0]) if values else 0
