"""Camera RAW containers as bytes: which one a file is, where it keeps its EXIF, and whether the
image data it describes lies inside the file (TIFF strips and tiles, CR3 boxes, RAF offsets, CIFF
records). No decoder is involved; a RAW whose data cannot be located is refused by the caller."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any, Final

# TIFF tags that locate image data, in every IFD of a TIFF-based RAW (SubIFDs included).
_STRIPS: Final = ((273, 279), (324, 325), (513, 514))  # strips, tiles, an embedded JPEG


_SUB_IFDS: Final = 330


_TYPE_SIZES: Final = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


_MAX_IFDS: Final = 64


# Containers LibRaw reads whose raw data hotfolder cannot locate yet: refused, never trusted.
# What each container is called in messages, for the user who has to act on them.
CONTAINER_NAMES: Final = {
    "tiff": "TIFF-based RAW",
    "orf": "Olympus ORF",
    "rw2": "Panasonic RW2",
    "cr3": "Canon CR3",
    "raf": "Fujifilm RAF",
    "ciff": "Canon CRW",
    "x3f": "Sigma X3F",
}


_CIFF_MAKE_MODEL: Final = 0x080A


_CIFF_TIMESTAMP: Final = 0x180E


_CIFF_RAW_DATA: Final = 0x2005


def container_of(head: bytes) -> str:
    """Which RAW container the first bytes are (without trusting the name)."""
    if head[4:12] == b"ftypcrx ":
        return "cr3"
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "raf"
    if head[:2] in (b"II", b"MM") and head[6:10] == b"HEAP":
        return "ciff"
    if head.startswith(b"FOVb"):
        return "x3f"
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "orf"
    if head[:4] == b"IIU\x00":
        return "rw2"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return "unknown"


def as_tiff(data: bytes, container: str) -> bytes:
    """A TIFF-family RAW with the standard magic number (ORF and RW2 use their own), for TIFF readers."""
    if container in ("orf", "rw2"):
        magic = b"*\x00" if data[:2] == b"II" else b"\x00*"
        return data[:2] + magic + data[4:]
    return data


def extent_problem(data: bytes, container: str) -> str | None:
    """Why the raw data does not (verifiably) lie inside the file, or None when it does."""
    if container in ("tiff", "orf", "rw2"):
        return _tiff_extent(as_tiff(data, container))
    if container == "cr3":
        return _bmff_extent(data)
    if container == "raf":
        return _raf_extent(data)
    if container == "ciff":
        return _ciff_extent(data)
    if container == "unknown":
        return (
            f"named as camera RAW, but its content is no RAW container LibRaw or hotfolder knows "
            f"(it starts {data[:8].hex(' ')})"
        )
    name = CONTAINER_NAMES[container]
    return f"{name}: where its raw data lies cannot be verified, so it is refused, not trusted"


def _tiff_extent(tiff: bytes) -> str | None:
    try:
        reader = _TiffReader(tiff)
        spans = reader.data_spans()
    except (struct.error, ValueError) as exc:
        return f"its TIFF structure is damaged ({exc}): the raw data cannot be located"
    if not spans:
        return "no image data is described in this RAW: nothing to develop"
    end = max(offset + length for offset, length in spans)
    if end > len(tiff):
        return (
            f"truncated: its image data runs to byte {end:,} but the file has {len(tiff):,} bytes "
            "(an intact preview does not make a complete RAW)"
        )
    return None


def _boxes(data: bytes, pos: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of ISO-BMFF boxes between pos and end (end may lie past the data)."""
    found = []
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > len(data):
                break
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            break
        found.append((kind, pos + header, pos + size))
        pos += size
    return found


def _bmff_extent(data: bytes) -> str | None:
    boxes = _boxes(data, 0, len(data))
    media = [b for b in boxes if b[0] == b"mdat"]
    if not media:
        return "this CR3 holds no image data (no mdat box): nothing to develop"
    end = max(e for _, _, e in boxes)
    if end > len(data):
        return f"truncated: its boxes run to byte {end:,} but the file has {len(data):,} bytes"
    return None


def _raf_extent(data: bytes) -> str | None:
    if len(data) < 108:
        return "truncated: the RAF header is incomplete"
    jpeg_at, jpeg_len, _meta_at, _meta_len, cfa_at, cfa_len = struct.unpack_from(">6I", data, 84)
    end = max(jpeg_at + jpeg_len, cfa_at + cfa_len)
    if cfa_len == 0:
        return "this RAF holds no raw data: nothing to develop"
    if end > len(data):
        return f"truncated: its raw data runs to byte {end:,} but the file has {len(data):,} bytes"
    return None


def exif_blocks(data: bytes, container: str) -> tuple[bytes | None, bytes | None, bytes | None]:
    """(IFD0, separate Exif IFD, separate GPS IFD) as TIFF blocks, as the container keeps them."""
    if container in ("tiff", "orf", "rw2"):
        return as_tiff(data, container), None, None
    if container == "cr3":
        return _cr3_blocks(data)
    if container == "raf" and len(data) >= 92:
        jpeg_at, jpeg_len = struct.unpack_from(">2I", data, 84)
        return _app1_exif(data[jpeg_at : jpeg_at + jpeg_len]), None, None
    if container == "ciff":
        return _ciff_exif(data), None, None
    return None, None, None


def ciff_records(data: bytes) -> dict[int, tuple[int, int]]:
    """Every record of a CRW's heaps: tag -> (absolute offset, size); sub-heaps are walked (bounded)."""
    if len(data) < 14:
        return {}
    endian = "<" if data[:2] == b"II" else ">"
    found: dict[int, tuple[int, int]] = {}
    todo = [(struct.unpack_from(endian + "I", data, 2)[0], len(data))]
    while todo and len(found) < 4096:
        start, end = todo.pop()
        if not 0 <= start < end <= len(data) or end - start < 6:
            continue
        table = start + struct.unpack_from(endian + "I", data, end - 4)[0]
        if not start <= table < end - 2:
            continue
        count = struct.unpack_from(endian + "H", data, table)[0]
        for k in range(min(count, (end - table - 2) // 10)):
            tag, size, offset = struct.unpack_from(endian + "HII", data, table + 2 + 10 * k)
            if tag & 0xC000:  # the value is stored in the record itself
                found.setdefault(tag & 0x3FFF, (table + 2 + 10 * k + 2, 8))
                continue
            found.setdefault(tag & 0x3FFF, (start + offset, size))
            if (tag >> 8) & 0x38 in (0x28, 0x30):  # a sub-heap
                todo.append((start + offset, start + offset + size))
    return found


def _ciff_extent(data: bytes) -> str | None:
    raw = ciff_records(data).get(_CIFF_RAW_DATA)
    if raw is None:
        return "this CRW holds no image data (no RawData record): nothing to develop"
    if raw[0] + raw[1] > len(data):
        return (
            f"truncated: its raw data runs to byte {raw[0] + raw[1]:,} but the file has {len(data):,} bytes"
        )
    return None


def _ciff_exif(data: bytes) -> bytes | None:
    """Make, Model and DateTimeOriginal from a CRW's records, as a TIFF block like any other RAW's."""
    records = ciff_records(data)
    tags: dict[int, Any] = {}
    if _CIFF_MAKE_MODEL in records:
        at, size = records[_CIFF_MAKE_MODEL]
        parts = data[at : at + size].split(b"\0")
        if len(parts) >= 2:
            tags[0x010F], tags[0x0110] = parts[0].decode("latin-1"), parts[1].decode("latin-1")
    taken = None
    if _CIFF_TIMESTAMP in records:
        at, _ = records[_CIFF_TIMESTAMP]
        endian = "<" if data[:2] == b"II" else ">"
        seconds = struct.unpack_from(endian + "I", data, at)[0]
        # CIFF keeps local time as seconds since 1970 without a zone: formatted as UTC, it is the local time.
        taken = datetime.fromtimestamp(seconds, UTC).strftime("%Y:%m:%d %H:%M:%S")
    if not tags and taken is None:
        return None
    from PIL import Image  # noqa: PLC0415 - Pillow writes the block; this module stays importable without it

    ex = Image.Exif()
    for tag, value in tags.items():
        ex[tag] = value
    if taken is not None:
        ex[0x8769] = {0x9003: taken}
    return ex.tobytes()


def _cr3_blocks(data: bytes) -> tuple[bytes | None, bytes | None, bytes | None]:
    blocks: dict[bytes, bytes] = {}
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for inner, s, e in _boxes(data, start, min(end, len(data))):
            if inner == b"uuid":  # Canon's metadata box: a 16-byte UUID, then CMT1..CMT4, THMB, ...
                for cmt, cs, ce in _boxes(data, s + 16, min(e, len(data))):
                    if cmt in (b"CMT1", b"CMT2", b"CMT4"):
                        blocks[cmt] = data[cs:ce]
    return blocks.get(b"CMT1"), blocks.get(b"CMT2"), blocks.get(b"CMT4")


def _app1_exif(jpeg: bytes) -> bytes | None:
    pos = 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF:
        marker, length = jpeg[pos + 1], struct.unpack_from(">H", jpeg, pos + 2)[0]
        if marker == 0xE1 and jpeg[pos + 4 : pos + 10] == b"Exif\x00\x00":
            return jpeg[pos + 10 : pos + 2 + length]
        if marker == 0xDA:
            break
        pos += 2 + length
    return None


def xmp_packet(data: bytes) -> bytes | None:
    """An XMP packet embedded anywhere in the RAW (TIFF tag 700, CR3's XMP uuid box, ...)."""
    start = data.find(b"<x:xmpmeta")
    if start < 0:
        return None
    end = data.find(b"</x:xmpmeta>", start)
    return data[start : end + len(b"</x:xmpmeta>")] if end > 0 else None


class _TiffReader:
    """Just enough of TIFF to list where image data lies: IFD chains, SubIFDs, offsets and counts."""

    def __init__(self, tiff: bytes) -> None:
        self.data = tiff
        self.endian = "<" if tiff[:2] == b"II" else ">"
        if tiff[:2] not in (b"II", b"MM"):
            raise ValueError("no TIFF byte order")

    def _u(self, fmt: str, at: int) -> int:
        return int(struct.unpack_from(self.endian + fmt, self.data, at)[0])

    def _values(self, entry: int) -> list[int]:
        kind, count = self._u("H", entry + 2), self._u("I", entry + 4)
        size = _TYPE_SIZES.get(kind, 1)
        if kind not in (3, 4, 13) or count > 1 << 20:
            return []
        at = entry + 8 if size * count <= 4 else self._u("I", entry + 8)
        fmt = "H" if kind == 3 else "I"
        return [self._u(fmt, at + size * i) for i in range(count)]

    def _entries(self, ifd: int) -> dict[int, int]:
        count = self._u("H", ifd)
        if count > 4000:
            raise ValueError(f"implausible IFD entry count {count}")
        return {self._u("H", ifd + 2 + 12 * k): ifd + 2 + 12 * k for k in range(count)}

    def data_spans(self) -> list[tuple[int, int]]:
        """(offset, length) of every strip, tile and embedded JPEG in every IFD reachable from IFD0."""
        spans: list[tuple[int, int]] = []
        todo, seen = [self._u("I", 4)], set[int]()
        while todo and len(seen) < _MAX_IFDS:
            ifd = todo.pop()
            if ifd == 0 or ifd in seen or ifd >= len(self.data):
                continue
            seen.add(ifd)
            entries = self._entries(ifd)
            for offsets_tag, counts_tag in _STRIPS:
                if offsets_tag in entries and counts_tag in entries:
                    offsets, counts = self._values(entries[offsets_tag]), self._values(entries[counts_tag])
                    spans += [(o, c) for o, c in zip(offsets, counts, strict=False) if c]
            if _SUB_IFDS in entries:
                todo += self._values(entries[_SUB_IFDS])
            todo.append(self._u("I", ifd + 2 + 12 * len(entries)))
        return spans


def block_tags(block: bytes | None) -> dict[int, Any]:
    """The tags of a TIFF block whose IFD0 is itself an Exif or GPS IFD (CR3's CMT2, CMT4)."""
    if not block:
        return {}
    from PIL import Image  # noqa: PLC0415 - Pillow parses the IFD; this module stays importable without it

    ex = Image.Exif()
    try:
        ex.load(block)
    except (SyntaxError, ValueError, struct.error):
        return {}
    return dict(ex.items())
