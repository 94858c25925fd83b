"""Before a file is read whole: does it start with a real header, and could an image that size hold
this many bytes?

A file that only starts like an image (1.5 GB of zeros after a JPEG signature) used to be read
whole, hashed and handed to Pillow, whose JPEG parser then walked the zeros a byte at a time: 3 GB
of memory and five minutes before it was refused. Here only small positioned reads are made until
the header has given the picture's size; the file is then read only if its length is plausible
for that size (generous bounds: raw samples at 16 bits, twice, plus 16 MB of metadata).
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from typing import IO, Final, cast

from hotfolder.errors import InputError

SLACK: Final = 16 << 20  # metadata a header may carry beyond the pixels (EXIF, ICC, XMP, previews)
HEADER_BUDGET: Final = 16 << 20  # bytes a parser may ask for before the header must be complete
_PNG_TEXT: Final = 64 << 20  # Pillow's own cap on PNG text chunks (MAX_TEXT_MEMORY)
_JPEG_JUNK: Final = 64 << 10  # stray bytes between JPEG markers tolerated (libjpeg warns, decodes)
_MAX_PAGES: Final = 10_000


@dataclass(frozen=True)
class Header:
    """What a header says before any pixel is read: the size, and how many bytes the file may hold."""

    width: int
    height: int
    limit: int  # a larger file is not this image (plus junk): refused unread


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


class Window(io.RawIOBase):
    """A read-only view of a file descriptor for parsers, refusing to hand out more than `budget` bytes."""

    def __init__(self, fd: int, size: int, budget: int = HEADER_BUDGET) -> None:
        super().__init__()
        self._fd, self._size, self._pos, self._left = fd, size, 0, budget

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        want = self._size - self._pos if n is None or n < 0 else n
        want = max(0, min(want, self._size - self._pos))
        if want > self._left:
            raise InputError(f"no complete image header in the first {_mb(HEADER_BUDGET)}")
        data = os.pread(self._fd, want, self._pos)
        self._left -= len(data)
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def probe(fd: int, size: int, fmt: str, *, max_pixels: int) -> Header:
    """The header of a file of our format `fmt`; raise InputError if it has none or is implausibly long."""
    header = _PROBES[fmt](fd, size, max_pixels)
    if header.width * header.height > max_pixels:
        raise InputError(
            f"{header.width}x{header.height} = {header.width * header.height:,} pixels exceeds "
            f"max_image_pixels ({max_pixels:,}); raise max_image_pixels in the config to accept it"
        )
    if size > header.limit:
        raise InputError(
            f"{_mb(size)} is far more than a {header.width}x{header.height} {fmt.upper()} can hold "
            f"(at most {_mb(header.limit)}): not an image, or an image followed by other data"
        )
    return header


def _pread(fd: int, n: int, at: int) -> bytes:
    return os.pread(fd, n, at)


def _jpeg(fd: int, size: int, _max_pixels: int) -> Header:
    """Walk the markers up to the frame header (SOFn); stray bytes between markers are tolerated a little."""
    pos, junk = 2, 0
    while pos < min(size, HEADER_BUDGET):
        block = _pread(fd, 4096, pos)
        if not block:
            break
        if block[0] != 0xFF:
            skip = block.find(b"\xff")
            junk += len(block) if skip < 0 else skip
            if junk > _JPEG_JUNK:
                raise InputError(f"corrupt JPEG: no marker where one must be (after byte {pos})")
            pos += len(block) if skip < 0 else skip
            continue
        while len(block) > 1 and block[1] == 0xFF:  # fill bytes
            block, pos = block[1:], pos + 1
        if len(block) < 10:
            block = _pread(fd, 10, pos)
            if len(block) < 4:
                break
        marker = block[1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack_from(">HH", block, 5)
            components = block[9] if len(block) > 9 else 3
            return Header(width, height, SLACK + 3 * width * height * max(1, components) * 2)
        if marker in (0xD9, 0xDA):
            raise InputError("corrupt JPEG: no frame header (SOF) before the image data")
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        pos += 2 + struct.unpack_from(">H", block, 2)[0]
    raise InputError(f"truncated or corrupt JPEG: no frame header (SOF) in {_mb(min(size, HEADER_BUDGET))}")


_PNG_CHANNELS: Final = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _png(fd: int, size: int, _max_pixels: int) -> Header:
    head = _pread(fd, 33, 0)
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise InputError("corrupt PNG: no IHDR chunk after the signature")
    width, height, depth, colour = struct.unpack_from(">IIBB", head, 16)
    row = 1 + (width * _PNG_CHANNELS.get(colour, 4) * max(depth, 8) + 7) // 8
    frames, pos = 1, 8
    for _ in range(10_000):  # chunks before the image data; a hostile file could hold millions
        chunk = _pread(fd, 12, pos)
        if len(chunk) < 12:
            break
        length, kind = struct.unpack_from(">I4s", chunk)
        if kind in (b"IDAT", b"IEND"):
            break
        if kind == b"acTL":
            frames = max(1, struct.unpack_from(">I", chunk, 8)[0])
        pos += 12 + length
    return Header(width, height, SLACK + _PNG_TEXT + frames * height * row * 2)


def _gif(fd: int, size: int, max_pixels: int) -> Header:
    width, height = struct.unpack("<HH", _pread(fd, 4, 6))
    # Frames are not counted in the header: all of them together get the pixel budget.
    return Header(width, height, SLACK + 2 * max(max_pixels, width * height))


def _bmp(fd: int, size: int, _max_pixels: int) -> Header:
    head = _pread(fd, 26, 0)
    if len(head) < 26:
        raise InputError("truncated BMP header")
    width, height = struct.unpack_from("<ii", head, 18)
    if struct.unpack_from("<I", head, 14)[0] == 12:  # OS/2 core header: 16-bit sizes
        width, height = struct.unpack_from("<hh", head, 18)
    width, height = abs(width), abs(height)
    return Header(width, height, SLACK + width * height * 8)


def _webp(fd: int, size: int, max_pixels: int) -> Header:
    head = _pread(fd, 30, 0)
    if len(head) < 30 or head[8:12] != b"WEBP":
        raise InputError("corrupt WebP: no WEBP header")
    kind = head[12:16]
    if kind == b"VP8X":
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
        animated = bool(head[20] & 0x02)
        pixels = max(max_pixels, width * height) if animated else width * height
        return Header(width, height, SLACK + 8 * pixels)
    if kind == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif kind == b"VP8 ":
        width, height = (v & 0x3FFF for v in struct.unpack_from("<HH", head, 26))
    else:
        raise InputError(f"corrupt WebP: unknown first chunk {kind!r}")
    return Header(width, height, SLACK + 8 * width * height)


def _tiff(fd: int, size: int, _max_pixels: int) -> Header:
    """Pillow reads the IFDs (positioned reads within the budget); every page counts."""
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 - only workers and explain probe

    try:
        with Image.open(cast(IO[bytes], Window(fd, size)), formats=("TIFF",)) as im:
            width, height = im.size
            limit = SLACK
            for page in range(_MAX_PAGES):
                try:
                    im.seek(page)
                except EOFError:
                    break
                tags = im.tag_v2  # type: ignore[attr-defined]
                bits = tags.get(258, (8,))
                per_sample = max(bits) if isinstance(bits, tuple) else int(bits)
                samples = int(tags.get(277, 1))
                limit += 2 * im.width * im.height * samples * max(per_sample, 8) // 8
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error, KeyError) as exc:
        raise InputError(f"corrupt TIFF header: {exc}") from None
    return Header(width, height, limit)


def _bmff(fd: int, size: int, max_pixels: int) -> Header:
    """Every top-level box must end inside the file; the image sizes come from the ispe properties."""
    pos, meta, sequence = 0, None, False
    while pos < size:
        head = _pread(fd, 16, pos)
        if len(head) < 8:
            raise InputError(f"truncated HEIF/AVIF: {len(head)} stray bytes after the last box")
        length, kind = struct.unpack_from(">I4s", head)
        start = 8
        if length == 1:
            if len(head) < 16:
                raise InputError("truncated HEIF/AVIF: incomplete large box header")
            length, start = struct.unpack_from(">Q", head, 8)[0], 16
        elif length == 0:
            length = size - pos
        if length < start:
            raise InputError(f"corrupt HEIF/AVIF: box {kind!r} has impossible size {length}")
        if pos + length > size:
            name = kind.decode("latin-1")
            raise InputError(
                f"truncated HEIF/AVIF: box {name!r} ends at {pos + length}, file has {size} bytes"
            )
        if kind == b"meta" and length <= HEADER_BUDGET:
            meta = _pread(fd, length - start, pos + start)
        sequence = sequence or kind == b"moov"
        pos += length
    if meta is None and not sequence:
        raise InputError("corrupt HEIF/AVIF: no 'meta' box (no image items)")
    areas = _ispe_areas(meta) if meta is not None else []
    width, height = max(areas, key=lambda a: a[0] * a[1], default=(1, 1))
    total = sum(w * h for w, h in areas)
    return Header(width, height, SLACK + 8 * (max(max_pixels, total) if sequence else total))


def _boxes(data: bytes, pos: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(kind, payload start, payload end) of the boxes in data[pos:end]."""
    end = len(data) if end is None else end
    found = []
    while pos + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if length < 8 or pos + length > end:
            break
        found.append((kind, pos + 8, pos + length))
        pos += length
    return found


def _ispe_areas(meta: bytes) -> list[tuple[int, int]]:
    """(width, height) of every image item, from the ispe property each one is associated with."""
    iprp = next(((s, e) for k, s, e in _boxes(meta, 4) if k == b"iprp"), None)
    if iprp is None:
        return []
    children = _boxes(meta, *iprp)
    ipco = next(((s, e) for k, s, e in children if k == b"ipco"), None)
    if ipco is None:
        return []
    properties = _boxes(meta, *ipco)
    sizes = {
        index: struct.unpack_from(">II", meta, start + 4)
        for index, (kind, start, end) in enumerate(properties, start=1)
        if kind == b"ispe" and end - start >= 12
    }
    areas: list[tuple[int, int]] = []
    for kind, start, end in children:
        if kind != b"ipma":
            continue
        version, flags = meta[start], int.from_bytes(meta[start + 1 : start + 4], "big")
        count = struct.unpack_from(">I", meta, start + 4)[0]
        pos = start + 8
        for _ in range(min(count, 100_000)):
            pos += 4 if version >= 1 else 2
            if pos >= end:
                break
            n, pos = meta[pos], pos + 1
            for _ in range(n):
                if flags & 1:
                    index, pos = struct.unpack_from(">H", meta, pos)[0] & 0x7FFF, pos + 2
                else:
                    index, pos = meta[pos] & 0x7F, pos + 1
                if index in sizes:
                    areas.append(sizes[index])
    return areas or list(sizes.values())


def _jxl(fd: int, size: int, max_pixels: int) -> Header:
    """libjxl reads the codestream's header (and the boxes before it) from the first bytes."""
    from hotfolder.decide import jxl  # noqa: PLC0415 - only where JPEG XL comes in

    head, _ = jxl.header(_pread(fd, min(size, HEADER_BUDGET), 0))
    # Lossless 16-bit RGBA stays under 8 bytes a pixel; an animation's frames are not counted here.
    pixels = max(max_pixels, head.width * head.height) if head.animated else head.width * head.height
    return Header(head.width, head.height, SLACK + 8 * pixels)


_PROBES: Final = {
    "jpeg": _jpeg,
    "png": _png,
    "gif": _gif,
    "bmp": _bmp,
    "webp": _webp,
    "tiff": _tiff,
    "heif": _bmff,
    "avif": _bmff,
    "jxl": _jxl,
}
