"""A motion photo's parts: where the video a phone appended after the picture starts and ends.

Three layouts are written by phones today, all a picture followed by an MP4 in the same file:
Google's MotionPhoto (XMP `Container:Directory`, the video the last item, its `Item:Length` counted
from the end of the file), Google's older MicroVideo (XMP `GCamera:MicroVideoOffset`, the video's
distance from the end), and Samsung's trailer (`MotionPhoto_Data`, the video after it, then the SEF
trailer). The video's end is where its ISO-BMFF boxes end, so bytes after it (Samsung's SEF records)
are never taken for video, and a length that does not hold whole boxes is said, never guessed.
"""

from __future__ import annotations

import hashlib
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Final

from defusedxml import ElementTree as SafeET

from hotfolder.decide.containers import xmp_packet

_NS_CAMERA: Final = "http://ns.google.com/photos/1.0/camera/"
_NS_CONTAINER: Final = "http://ns.google.com/photos/1.0/container/"
_NS_ITEM: Final = "http://ns.google.com/photos/1.0/container/item/"
_SAMSUNG: Final = b"MotionPhoto_Data"
# The boxes an MP4 or QuickTime file has at its top level; anything else ends the video.
_TOP_LEVEL: Final = frozenset(
    b"ftyp moov mdat free skip wide uuid meta udta pnot sidx moof mfra styp emsg prft pdin".split()
)
# A phone's video is seconds long: a Pixel's is 1.5-3 s, ~2-6 MB. 256 MB is far beyond any.
_MAX_SEARCH: Final = 1 << 28


@dataclass(frozen=True)
class Motion:
    """A motion photo's video: its byte range in the file and its SHA-256, or why it cannot be taken."""

    layout: str  # "Google MotionPhoto", "Google MicroVideo" or "Samsung"
    start: int = 0
    end: int = 0
    sha256: str = ""
    brand: str = ""  # the MP4's major brand (isom, mp42, qt  ...)
    problem: str | None = None  # why the video cannot be extracted (the picture is still made)

    @property
    def size(self) -> int:
        """The video's length in bytes."""
        return self.end - self.start

    @property
    def suffix(self) -> str:
        """The extension its container calls for: .mov for QuickTime, else .mp4."""
        return ".mov" if self.brand == "qt  " else ".mp4"


def motion_video(data: bytes, xmp: bytes | None = None) -> Motion | None:
    """The video a motion photo carries after its picture, or None when the file is no motion photo.
    `xmp`: the picture's XMP packet when the caller has it (else it is looked for in `data`)."""
    packet = xmp if xmp is not None else xmp_packet(data)
    said = _from_xmp(packet, len(data)) if packet and b"ns.google.com/photos/1.0/" in packet else None
    marker = _samsung_marker(data)
    if marker >= 0 and (said is None or data[marker + 20 : marker + 24] == b"ftyp"):
        # Samsung's own marker says where its video starts; the Google-style XMP its newer phones write
        # too counts the SEF trailer after the video into the video's length.
        said = Motion("Samsung", start=marker + len(_SAMSUNG))
    if said is None:
        return None
    if said.problem is not None:
        return said
    walked = _boxes_at(data, said.start)
    if isinstance(walked, str):
        return Motion(said.layout, start=said.start, problem=walked)
    end, brand = walked
    if said.end and end != said.end and said.layout != "Samsung":
        why = (
            f"the XMP says the video is {said.end - said.start:,} bytes, its MP4 boxes hold "
            f"{end - said.start:,}: the file was cut or changed after the phone wrote it"
        )
        return Motion(said.layout, start=said.start, problem=why)
    digest = hashlib.sha256(memoryview(data)[said.start : end]).hexdigest()
    return Motion(said.layout, start=said.start, end=end, sha256=digest, brand=brand)


def _samsung_marker(data: bytes) -> int:
    """Where Samsung's `MotionPhoto_Data` marker is: the last one an MP4 follows, else the last one."""
    floor = max(0, len(data) - _MAX_SEARCH)
    last = pos = data.rfind(_SAMSUNG, floor)
    for _ in range(8):  # the name may recur in the SEF trailer's records after the video
        if pos < 0 or data[pos + 20 : pos + 24] == b"ftyp":
            break
        pos = data.rfind(_SAMSUNG, floor, pos)
    return pos if pos >= 0 else last


def _from_xmp(packet: bytes, size: int) -> Motion | None:
    """The video's range as Google's XMP gives it, relative to the end of a file of `size` bytes."""
    try:
        root = SafeET.fromstring(packet[packet.find(b"<x:xmpmeta") :])
    except (ET.ParseError, ValueError):
        return None  # damaged XMP: nothing said (a Samsung trailer may still be found)
    flags = {}
    for element in root.iter():
        for name, value in element.attrib.items():
            if name.startswith(f"{{{_NS_CAMERA}}}"):
                flags[name.rsplit("}", 1)[1]] = value.strip()
        if element.tag.startswith(f"{{{_NS_CAMERA}}}"):
            flags[element.tag.rsplit("}", 1)[1]] = (element.text or "").strip()
    items = [_item(e) for e in root.iter(f"{{{_NS_CONTAINER}}}Item")]
    video = [
        i for i, (semantic, mime, _, _) in enumerate(items) if semantic == "MotionPhoto" or "video" in mime
    ]
    if video and flags.get("MotionPhoto", "1") != "0":
        at = video[-1]
        lengths = [length + padding for _, _, length, padding in items[at + 1 :]]
        if any(n < 0 for n in lengths) or items[at][2] <= 0:
            return Motion(
                "Google MotionPhoto", problem="the XMP's Container:Directory gives no usable length"
            )
        end = size - sum(lengths)
        start = end - items[at][2]
        if start <= 0:
            return Motion("Google MotionPhoto", problem="the XMP says the video is longer than the file")
        return Motion("Google MotionPhoto", start=start, end=end)
    if flags.get("MicroVideo") == "1" and "MicroVideoOffset" in flags:
        try:
            offset = int(flags["MicroVideoOffset"])
        except ValueError:
            return Motion("Google MicroVideo", problem="GCamera:MicroVideoOffset is not a number")
        if not 0 < offset < size:
            return Motion(
                "Google MicroVideo", problem=f"GCamera:MicroVideoOffset {offset} is outside the file"
            )
        return Motion("Google MicroVideo", start=size - offset, end=size)
    if flags.get("MotionPhoto") == "1" or flags.get("MicroVideo") == "1":
        return Motion("Google MotionPhoto", problem="the XMP says motion photo but not where its video is")
    return None


def _item(element: ET.Element) -> tuple[str, str, int, int]:
    """(semantic, mime, length, padding) of one Container:Item, attributes or child elements."""

    def value(name: str) -> str:
        found = element.get(f"{{{_NS_ITEM}}}{name}")
        if found is None:
            child = element.find(f"{{{_NS_ITEM}}}{name}")
            found = child.text if child is not None else None
        return (found or "").strip()

    def number(name: str) -> int:
        text = value(name)
        return int(text) if text.isdigit() else (0 if not text else -1)

    return value("Semantic"), value("Mime"), number("Length"), number("Padding")


def _boxes_at(data: bytes, start: int) -> tuple[int, str] | str:
    """(end, major brand) of the MP4 whose boxes start at `start`, or why there is none."""
    if data[start + 4 : start + 8] != b"ftyp":
        return f"no MP4 at byte {start:,} (no ftyp box where the video should start)"
    brand = data[start + 8 : start + 12].decode("latin-1")
    pos, seen = start, set()
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        if kind not in _TOP_LEVEL:
            break
        if size == 1:
            if pos + 16 > len(data):
                break
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:
            size = len(data) - pos
        if size < 8 or pos + size > len(data):
            return f"the video's {kind.decode('latin-1')} box runs past the end of the file (cut short)"
        seen.add(kind)
        pos += size
    missing = [k.decode() for k in (b"moov", b"mdat") if k not in seen]
    if missing:
        return f"the video has no {' or '.join(missing)} box: it is not a whole MP4"
    return pos, brand
