"""A picture's group: which files beside it are its companions, decided from names and, for a Live
Photo video, from the identifiers the still and the video both carry. Pure: listings and bytes in.

Names match case-insensitively (`IMG_1234.XMP` is `IMG_1234.xmp`); `{name}` is the picture's file
name, `{stem}` that name without its last extension. A companion keeps its own suffix (what follows
the picture's stem in its name) when the group is renamed: `IMG_1234.CR2.xmp` -> `<new>.CR2.xmp`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePath
from typing import Final

from hotfolder.core.formats import raw_name
from hotfolder.settings.companions import Companions

JPEG_EXTENSIONS: Final = frozenset({".jpg", ".jpeg"})


SIDECAR, TWIN, VIDEO = "sidecar", "twin", "video"
_LIVE_SECONDS: Final = 2.0  # a Live Photo's still and video without identifiers: taken this close
_QT_ID_KEYS: Final = (b"com.apple.quicktime.content.identifier", b"com.apple.quicktime.live-photo.auto")
_QT_DATE_KEY: Final = b"com.apple.quicktime.creationdate"
_APPLE_MAKERNOTE: Final = b"Apple iOS\x00"
_APPLE_CONTENT_ID: Final = 0x0011  # exiftool: MediaGroupUUID, formerly ContentIdentifier


@dataclass(frozen=True)
class Member:
    """One companion of a picture: its name in the folder, what it is, and the suffix it keeps."""

    name: str
    role: str  # sidecar | twin | video
    suffix: str
    # A twin named by a pattern: the end of the picture's own stem its suffix replaces (a Pixel's
    # ".RAW-02.ORIGINAL"), so that the pair keeps its names when the picture's is kept.
    replaces: str = ""


def stem(name: str) -> str:
    return PurePath(name).stem


def _expand(pattern: str, picture: str) -> str:
    return pattern.replace("{name}", picture).replace("{stem}", stem(picture)).lower()


def _twin_wanted(picture: str, other: str, spec: Companions) -> bool:
    """Whether `other` (same stem) is the RAW+JPEG twin that travels with `picture`."""
    if spec.raw_jpeg != "group":
        return False
    jpeg = PurePath(other).suffix.lower() in JPEG_EXTENSIONS
    raw = raw_name(other)
    if spec.primary == "raw":
        return raw_name(picture) and jpeg
    return PurePath(picture).suffix.lower() in JPEG_EXTENSIONS and raw


def stem_owner(base: str, listing: Iterable[str], spec: Companions, claims: str | None = None) -> str | None:
    """The picture that `{stem}` companions belong to when several pictures share the stem (RAW and
    JPEG kept separate, a HEIC beside a JPEG): the one whose extension the sidecar's
    photoshop:SidecarForExtension names (`claims`), else the RAW, else the first by name; never a twin."""
    names = [n for n in listing if stem(n).lower() == base.lower() and not looks_like_companion(n, spec)]
    pictures = [n for n in names if not any(_twin_wanted(p, n, spec) for p in names if p != n)]
    wanted = (claims or "").lower()
    return min(
        pictures, key=lambda n: (PurePath(n).suffix[1:].lower() != wanted, not raw_name(n), n), default=None
    )


_SIDECAR_FOR: Final = re.compile(rb'photoshop:SidecarForExtension(?:=["\']|>)\s*([A-Za-z0-9]{1,8})')


def sidecar_for(xmp: bytes) -> str | None:
    """The extension an XMP sidecar says it describes (Lightroom writes photoshop:SidecarForExtension)."""
    found = _SIDECAR_FOR.search(xmp)
    return found.group(1).decode() if found else None


def group_of(
    picture: str, listing: Iterable[str], spec: Companions, claims: str | None = None
) -> tuple[Member, ...]:
    """The companions of `picture` among the names of its folder, in a stable order (`claims`: what
    the group's `{stem}.xmp` says it is for)."""
    names = list(listing)
    # Every name per lower-cased name: IMG_2.xmp and IMG_2.XMP both belong to the picture (one of the
    # two used to stay behind in the inbox, counted nowhere).
    others: dict[str, list[str]] = {}
    for n in names:
        if n != picture:
            others.setdefault(n.lower(), []).append(n)
    base = stem(picture)
    owns_stem = stem_owner(base, names, spec, claims) == picture
    members: dict[str, Member] = {}
    for role, patterns in ((SIDECAR, spec.files), (VIDEO, spec.videos)):
        for pattern in patterns:
            if "{name}" not in pattern and not owns_stem:
                continue  # a same-stem picture takes the group's {stem} companions
            for found in others.get(_expand(pattern, picture), ()):
                if found not in members:
                    members[found] = Member(found, role, found[len(base) :])
    for lower, same in others.items():
        for name in same:
            if stem(lower) == base.lower() and name not in members and _twin_wanted(picture, name, spec):
                members[name] = Member(name, TWIN, name[len(base) :])
    named = pattern_twin(picture, names, spec)
    if named is not None and named[0] not in members and _twin_wanted(picture, named[0], spec):
        shared = named[1]
        members[named[0]] = Member(named[0], TWIN, named[0][len(shared) :], replaces=base[len(shared) :])
    return tuple(sorted(members.values(), key=lambda m: m.name))


def _twin_shape(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\{base\}|\{n\})", pattern)
    regex = "".join(
        "(?P<base>.+?)" if p == "{base}" else r"\d+" if p == "{n}" else re.escape(p) for p in parts if p
    )
    return re.compile(f"^{regex}$", re.IGNORECASE)


def pattern_twin(name: str, listing: Iterable[str], spec: Companions) -> tuple[str, str] | None:
    """The name paired with `name` by one of the rule's twin patterns (same {base}), and that base."""
    for first, second in spec.twins:
        for this, other in ((first, second), (second, first)):
            hit = _twin_shape(this).match(name)
            if hit is None:
                continue
            shape = _twin_shape(other)
            for candidate in listing:
                found = shape.match(candidate)
                if candidate != name and found and found["base"].lower() == hit["base"].lower():
                    return candidate, hit["base"]
    return None


def _shape(pattern: str) -> re.Pattern[str]:
    """A pattern as a regex over companion names, capturing the picture's name or stem."""
    parts = re.split(r"(\{name\}|\{stem\})", pattern)
    regex = "".join(f"(?P<{p[1:-1]}>.+)" if p in ("{name}", "{stem}") else re.escape(p) for p in parts if p)
    return re.compile(f"^{regex}$", re.IGNORECASE)


def holder(
    name: str,
    listing: Iterable[str],
    spec: Companions,
    claims: str | None = None,
    *,
    taken: Callable[[str], bool] = lambda _picture: True,
) -> str | None:
    """The picture in this folder that `name` is a companion of, if any (a companion is never an input
    of its own while its group exists). Only a picture some rule will take (`taken`) holds anything: a
    JPEG beside a RAW that no rule takes used to wait as its twin for ever."""
    found = _holder(name, listing, spec, claims)
    return found if found is not None and taken(found) else None


def _holder(name: str, listing: Iterable[str], spec: Companions, claims: str | None) -> str | None:
    names = [n for n in listing if n != name]
    by_name = {n.lower(): n for n in names}
    by_stem: dict[str, list[str]] = {}
    for n in names:
        by_stem.setdefault(stem(n).lower(), []).append(n)
    for pattern in (*spec.files, *spec.videos):
        hit = _shape(pattern).match(name)
        if hit is None:
            continue
        parts = hit.groupdict()
        if "name" in parts and parts["name"].lower() in by_name:
            return by_name[parts["name"].lower()]
        if "stem" in parts:
            owner = stem_owner(parts["stem"], names, spec, claims)
            if owner is not None:
                return owner
    for picture in by_stem.get(stem(name).lower(), []):
        if _twin_wanted(picture, name, spec):
            return picture
    named = pattern_twin(name, names, spec)
    if named is not None and _twin_wanted(named[0], name, spec):
        return named[0]
    return None


def matches(name: str, pattern: str) -> bool:
    """Whether a name has the shape of one companion pattern."""
    return _shape(pattern).match(name) is not None


def looks_like_companion(name: str, spec: Companions) -> bool:
    """Whether a name has a companion's shape (a sidecar, a video): an orphan when no picture holds it."""
    return any(_shape(p).match(name) for p in (*spec.files, *spec.videos))


# Live Photos: the still's and the video's identifiers ------------------------------------------


def apple_content_id(makernote: bytes | None) -> str | None:
    """The content identifier in an Apple MakerNote ("Apple iOS", big-endian IFD after 14 bytes)."""
    if not makernote or not makernote.startswith(_APPLE_MAKERNOTE) or len(makernote) < 16:
        return None
    (count,) = struct.unpack_from(">H", makernote, 14)
    for k in range(min(count, 256)):
        at = 16 + 12 * k
        if at + 12 > len(makernote):
            return None
        tag, kind, n, value = struct.unpack_from(">HHII", makernote, at)
        if tag == _APPLE_CONTENT_ID and kind == 2:
            raw = makernote[at + 8 : at + 12] if n <= 4 else makernote[value : value + n]
            return raw.split(b"\x00", 1)[0].decode("ascii", "replace") or None
    return None


def _boxes(data: bytes, start: int, end: int) -> Iterable[tuple[bytes, int, int]]:
    """(type, body start, box end) of the ISO-BMFF boxes in data[start:end]."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        head = 8
        if size == 1 and at + 16 <= end:
            size, head = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:
            size = end - at
        if size < head or at + size > end:
            return
        yield kind, at + head, at + size
        at += size


def quicktime_tags(data: bytes) -> dict[bytes, str]:
    """The QuickTime `mdta` metadata of a video (moov/meta keys + ilst), text values only."""
    for kind, body, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for inner, ibody, iend in _boxes(data, body, end):
            if inner == b"meta":
                return _mdta(data, ibody, iend)
    return {}


def _mdta(data: bytes, start: int, end: int) -> dict[bytes, str]:
    keys: list[bytes] = []
    values: dict[bytes, str] = {}
    for kind, body, box_end in _boxes(data, start, end):
        if kind == b"keys":
            for _k, kbody, kend in _boxes(data, body + 8, box_end):
                keys.append(data[kbody:kend])
        elif kind == b"ilst":
            for index, ibody, iend in _boxes(data, body, box_end):
                n = int.from_bytes(index, "big") - 1
                for dkind, dbody, dend in _boxes(data, ibody, iend):
                    if (
                        dkind == b"data"
                        and 0 <= n < len(keys)
                        and data[dbody : dbody + 4] == b"\x00\x00\x00\x01"
                    ):
                        values[keys[n]] = data[dbody + 8 : dend].decode("utf-8", "replace")
    return values


def video_content_id(tags: dict[bytes, str]) -> str | None:
    return next((tags[k] for k in _QT_ID_KEYS if tags.get(k)), None)


def video_taken(tags: dict[bytes, str]) -> datetime | None:
    text = tags.get(_QT_DATE_KEY)
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def live_pair(
    still_id: str | None, still_taken: datetime | None, video: dict[bytes, str]
) -> tuple[bool, str]:
    """Whether a same-stem video is this still's Live Photo video, and why (identifiers first; else
    capture times within 2 s, compared in UTC when both carry an offset, as local times otherwise)."""
    video_id = video_content_id(video)
    if still_id and video_id:
        same = still_id.upper() == video_id.upper()
        return same, f"content identifiers {'agree' if same else 'differ'} ({still_id} / {video_id})"
    taken = video_taken(video)
    if still_taken is None or taken is None:
        return False, "no content identifier on both, and no capture time on both"
    if (still_taken.tzinfo is None) != (taken.tzinfo is None):
        taken, still_taken = taken.replace(tzinfo=None), still_taken.replace(tzinfo=None)
    gap = abs(taken - still_taken)
    close = gap <= timedelta(seconds=_LIVE_SECONDS)
    return close, f"capture times {gap.total_seconds():.1f} s apart"
