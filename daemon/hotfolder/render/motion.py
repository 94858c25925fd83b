"""A motion photo's video as an output writes it beside the picture: byte for byte, or without its
location when the output strips GPS, and checked before it is staged.

The location a phone's video carries sits in `moov` as QuickTime user data (`udta/©xyz`, 3GPP's
`loci`) or as an `mdta` key (`com.apple.quicktime.location.ISO6709`, read from `keys`/`ilst`). Each
is turned into a `free` box of the same size, its bytes zeroed: every reader skips `free`, and no box
moves, so the sample offsets in `stco`/`co64` stay right and the video plays as before. The result is
no longer the phone's bytes, which the output's log line says.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from hotfolder.decide.motion import Motion
from hotfolder.errors import EncodeError
from hotfolder.settings.outputs import Output

# Boxes whose children are boxes, on the way to where a video keeps its metadata.
_CONTAINERS: Final = frozenset({b"moov", b"trak", b"udta", b"meta", b"mdia", b"minf", b"ilst", b"edts"})
_PLACES: Final = frozenset({b"\xa9xyz", b"loci"})
_FREE: Final = b"free"


@dataclass(frozen=True)
class Video:
    """The bytes an output writes for a motion photo's video, and what was taken out of them."""

    data: bytes
    removed: tuple[str, ...] = ()  # the location boxes turned into free space (empty: byte for byte)


def video_for(data: bytes, motion: Motion, output: Output) -> Video:
    """The video as `output` writes it: the phone's bytes, without location when the output strips GPS."""
    video = data[motion.start : motion.end]
    if output.format == "copy" or output.gps != "strip":
        return Video(video)
    found = location_boxes(video)
    if not found:
        return Video(video)
    edited = bytearray(video)
    for start, end, _ in found:
        edited[start : start + 8] = struct.pack(">I4s", end - start, _FREE)
        edited[start + 8 : end] = bytes(end - start - 8)
    return Video(bytes(edited), removed=tuple(name for _, _, name in found))


def check_video(written: bytes, video: Video, motion: Motion) -> None:
    """The file read back is the video it should be: the bytes made (the phone's own when nothing was
    removed, by its SHA-256 in the picture), whole MP4 boxes, and no location left where one was taken."""
    if written != video.data:
        raise EncodeError("the written video is not the bytes extracted from the motion photo")
    if not video.removed and hashlib.sha256(written).hexdigest() != motion.sha256:
        raise EncodeError("the extracted video is not the one the motion photo holds (SHA-256 differs)")
    if video.removed and location_boxes(written):
        raise EncodeError("the extracted video still holds a location")
    if _top_level_end(written) != len(written):
        raise EncodeError("the extracted video is not whole MP4 boxes")


def location_boxes(video: bytes) -> list[tuple[int, int, str]]:
    """(start, end, name) of every box in the video that holds where it was taken."""
    found: list[tuple[int, int, str]] = []
    _walk(video, 0, len(video), found, keys=[])
    return found


def _walk(data: bytes, pos: int, end: int, found: list[tuple[int, int, str]], keys: list[bytes]) -> None:
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return  # not a box: stop here (check_video judges the whole)
        body = pos + header
        if kind in _PLACES:
            found.append((pos, pos + size, kind.decode("latin-1")))
        elif kind == b"keys":
            keys[:] = _keys(data, body, pos + size)
        elif kind in _CONTAINERS:
            if kind == b"meta" and data[body + 4 : body + 8] != b"hdlr":
                body += 4  # ISO's meta is a full box (version and flags); QuickTime's is not
            if kind == b"ilst":
                _mdta_places(data, body, pos + size, found, keys)
            else:
                _walk(data, body, pos + size, found, keys)
        pos += size


def _keys(data: bytes, pos: int, end: int) -> list[bytes]:
    """The key names of an `mdta` keys box, in order (ilst items name them by their 1-based index)."""
    names = []
    count = struct.unpack_from(">I", data, pos + 4)[0] if pos + 8 <= end else 0
    pos += 8
    for _ in range(count):
        if pos + 8 > end:
            break
        size = struct.unpack_from(">I", data, pos)[0]
        if size < 8 or pos + size > end:
            break
        names.append(data[pos + 8 : pos + size])
        pos += size
    return names


def _mdta_places(
    data: bytes, pos: int, end: int, found: list[tuple[int, int, str]], keys: list[bytes]
) -> None:
    """ilst items whose key is a location (`com.apple.quicktime.location.*`), and iTunes-style ©xyz."""
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8 or pos + size > end:
            return
        index = int.from_bytes(kind, "big")
        named = keys[index - 1] if 0 < index <= len(keys) else b""
        if kind in _PLACES or b"location" in named.lower():
            found.append((pos, pos + size, named.decode("latin-1") or kind.decode("latin-1")))
        pos += size


def _top_level_end(data: bytes) -> int:
    pos = 0
    while pos + 8 <= len(data):
        size = struct.unpack_from(">I", data, pos)[0]
        if size == 1 and pos + 16 <= len(data):
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:
            size = len(data) - pos
        if size < 8:
            return pos
        pos += size
    return pos
