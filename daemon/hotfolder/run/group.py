"""The group's I/O at the edges: the dispatcher's look at a folder (is this file a companion, an
orphan, or a picture whose stem is still arriving?) and the worker's reading of each companion
(identity and SHA-256, the Live Photo check), for the commit to dispose of exactly what was read."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from hotfolder import logs
from hotfolder.commit.staged import Companion
from hotfolder.core.digest import fd_sha256
from hotfolder.core.exiftiff import TAG_EXIF_IFD, TAG_MAKERNOTE
from hotfolder.core.identity import FileIdentity
from hotfolder.decide import companions as pairing
from hotfolder.decide.job import Job
from hotfolder.decide.match import Content
from hotfolder.decide.read import open_regular
from hotfolder.errors import NotRegularError
from hotfolder.run.timetable import Timetable
from hotfolder.settings.companions import Companions
from hotfolder.settings.rules import Rule
from hotfolder.settings.watches import Watch

log = logs.get()

if TYPE_CHECKING:  # the worker's side only: the daemon imports this module without the render stack
    from hotfolder.render.notes import Notes
    from hotfolder.render.source import Source

QUIET_SECONDS: Final = 1.0  # a picture's stem counts as quiet once nothing with it changed for this long
_MOOV_LIMIT: Final = 64 << 20  # a video's metadata box larger than this is not read


def spec_of(rules: tuple[Rule, ...]) -> Companions | None:
    """The companions table of the first of these rules that has one."""
    return next((r.companions for r in rules if r.companions is not None), None)


def members_of(picture: Path, rules: tuple[Rule, ...]) -> tuple[str, ...]:
    """The names of the picture's companions in its folder now, under the first rule with a table."""
    spec = spec_of(rules)
    if spec is None:
        return ()
    try:
        listing = [p.name for p in picture.parent.iterdir()]
    except OSError:
        return ()
    claims = claimed(picture.parent, pairing.stem(picture.name), listing)
    return tuple(m.name for m in pairing.group_of(picture.name, listing, spec, claims))


def claimed(folder: Path, base: str, listing: list[str]) -> str | None:
    """The extension the group's `{stem}.xmp` says it describes, if it says (read: it is small)."""
    name = next((n for n in listing if n.lower() == f"{base.lower()}.xmp"), None)
    if name is None:
        return None
    try:
        with (folder / name).open("rb") as fp:
            return pairing.sidecar_for(fp.read(1 << 20))
    except OSError:
        return None


class Orphans(Protocol):
    """Where a companion without its picture goes (the recorder)."""

    def orphan(
        self, path: Path, spec: Companions, identity: FileIdentity, *, watch: str | None, rules_fp: str
    ) -> None: ...


class Arrivals:
    """The dispatcher's view of groups: companions are held, orphans said, pictures wait for quiet."""

    def __init__(
        self, clock: Callable[[], float], *, timetable: Timetable, recorder: Orphans, wait: bool
    ) -> None:
        self.clock = clock
        self.timetable = timetable
        self.recorder = recorder
        self.wait = wait  # `process` forms groups from what it is given, without waiting
        self.first_seen: dict[Path, float] = {}

    def admit(
        self,
        watch: Watch,
        path: Path,
        root: Path,
        rules: tuple[Rule, ...],
        identity: FileIdentity,
        *,
        rules_fp: str,
        taken: Callable[[str], bool] = lambda _name: True,
    ) -> bool:
        """Whether a file goes on as an input: a companion is not one while its picture is there, an
        orphan is left where it is, and a picture waits (at most `wait`) until its stem is quiet."""
        spec = spec_of(rules)
        if spec is None:
            return True
        first_look = path not in self.first_seen
        verdict, detail = self.verdict(path, spec, wait=self.wait, taken=taken)
        if verdict == "held":
            log.debug("companion.held", src=str(path), dst=str(path.parent / str(detail)))
        elif verdict == "orphan":
            self.recorder.orphan(path, spec, identity, watch=watch.name, rules_fp=rules_fp)
        elif verdict == "wait":
            assert isinstance(detail, float)
            if first_look:  # said once per picture, not at every look
                log.info("group.waiting", src=str(path), error="its stem is still changing")
            self.timetable.later(detail, watch=watch, path=path, root=root)
        return verdict == "go"

    def verdict(
        self, path: Path, spec: Companions, *, wait: bool, taken: Callable[[str], bool] = lambda _name: True
    ) -> tuple[str, str | float | None]:
        """("held", its picture), ("orphan", None), ("wait", seconds) or ("go", None) for one file;
        `taken`: whether some rule takes the picture of that name in the same folder."""
        try:
            listing = [p.name for p in path.parent.iterdir()]
        except OSError:
            return "go", None
        picture = pairing.holder(
            path.name, listing, spec, claimed(path.parent, pairing.stem(path.name), listing), taken=taken
        )
        if picture is not None:
            return "held", picture
        if pairing.looks_like_companion(path.name, spec):
            return "orphan", None
        if not wait:
            return "go", None
        now = self.clock()
        left = spec.wait - (now - self.first_seen.setdefault(path, now))
        still = _stem_busy(path, listing)
        if still > 0 and left > 0:
            return "wait", min(still, left)  # at most `wait` in all, then it goes with what is there
        self.first_seen.pop(path, None)
        return "go", None


def _stem_busy(path: Path, listing: list[str]) -> float:
    """Seconds until the picture's stem has been quiet for QUIET_SECONDS (0: quiet now). A same-stem
    temp file (a download or copy in progress) counts as a change now."""
    base = pairing.stem(path.name).lower()
    latest = 0.0
    for name in listing:
        lower = name.lower()
        if base not in lower:
            continue
        temp = lower.startswith(".") or lower.endswith((".tmp", ".part", ".crdownload", ".partial"))
        if pairing.stem(lower) != base and not temp:
            continue
        try:
            st = (path.parent / name).lstat()
        except OSError:
            continue
        # ctime too: a file moved in keeps its old mtime, but the rename changes its ctime.
        latest = max(latest, time.time() if temp else max(st.st_mtime, st.st_ctime))
    return max(0.0, latest + QUIET_SECONDS - time.time())


# In the worker -------------------------------------------------------------------------------------


def read_group(
    job: Job, chain: tuple[Rule, ...], data: bytes, content: Content | None, notes: Notes
) -> tuple[Companion, ...]:
    """Each companion of the job's picture as read now: identity, hash, role, suffix."""
    spec = spec_of(chain)
    if spec is None:
        return ()
    listing = [p.name for p in job.src.parent.iterdir()]
    claims = claimed(job.src.parent, pairing.stem(job.src.name), listing)
    members = pairing.group_of(job.src.name, listing, spec, claims)
    found = []
    for member in members:
        path = job.src.parent / member.name
        if member.role == pairing.VIDEO:
            paired, why = live_photo(data, content, path)
            if not paired:
                notes.warn(
                    "companion.unpaired", error=f"{member.name} is not this picture's Live Photo video: {why}"
                )
                continue
        read = _read(path)
        if read is None:
            notes.warn("companion.skipped", error=f"{member.name} changed or went while it was read")
            continue
        identity, digest, read_ns = read
        found.append(Companion(path, identity, digest, read_ns, member.role, member.suffix, member.replaces))
    return tuple(found)


def live_photo(data: bytes, content: Content | None, video: Path) -> tuple[bool, str]:
    """Whether `video` is the Live Photo video of the still whose bytes are `data`, and why."""
    return pairing.live_pair(_still_id(data), content.taken if content else None, _video_tags(video))


def _read(path: Path) -> tuple[FileIdentity, str, int] | None:
    """(identity, SHA-256, when) of a companion, or None if it is not a regular file or changed."""
    try:
        fd, st = open_regular(path)
    except (NotRegularError, OSError):
        return None
    try:
        read_ns = time.time_ns()
        sha256 = fd_sha256(fd)
        after = FileIdentity.of(os.fstat(fd))
    finally:
        os.close(fd)
    identity = FileIdentity.of(st)
    return (identity, sha256, read_ns) if after == identity else None


def _still_id(data: bytes) -> str | None:
    """The still's Apple content identifier, from its EXIF MakerNote."""
    try:
        from PIL import Image  # noqa: PLC0415 - in the worker, where Pillow is loaded already

        with Image.open(io.BytesIO(data)) as im:
            note = im.getexif().get_ifd(TAG_EXIF_IFD).get(TAG_MAKERNOTE)
    except (OSError, ValueError, SyntaxError, struct.error):
        return None
    return pairing.apple_content_id(note) if isinstance(note, bytes) else None


def _video_tags(path: Path) -> dict[bytes, str]:
    """The QuickTime metadata of a video, reading only its top-level box headers and its moov box."""
    try:
        with path.open("rb") as fp:
            at = 0
            while True:
                fp.seek(at)
                head = fp.read(16)
                if len(head) < 8:
                    return {}
                size, kind = struct.unpack(">I4s", head[:8])
                if size == 1 and len(head) == 16:
                    size = struct.unpack(">Q", head[8:16])[0]
                if size < 8:
                    return {}
                if kind == b"moov":
                    if size > _MOOV_LIMIT:
                        return {}
                    fp.seek(at)
                    return pairing.quicktime_tags(fp.read(size))
                at += size
    except OSError:
        return {}


# An XMP sidecar larger than this is not read (darktable's and Lightroom's are a few KB, a long edit
# history some hundred KB): a 1.5 GB one was read whole, 1.57 GB of memory for a 24 KB picture.
MAX_SIDECAR_BYTES: Final = 16 << 20


def sidecar_xmp(picture: Path, companions: tuple[Companion, ...], notes: Notes) -> bytes | None:
    """The group's XMP sidecar as read: `{name}.xmp` (this very file's) before `{stem}.xmp`."""
    sidecars = [c for c in companions if c.role == pairing.SIDECAR and c.suffix.lower().endswith(".xmp")]
    own = picture.suffix.lower() + ".xmp"
    sidecars.sort(key=lambda c: c.suffix.lower() != own)
    for c in sidecars:
        if c.identity.size > MAX_SIDECAR_BYTES:
            why = (
                f"{c.path.name} is {c.identity.size / 1e6:.0f} MB, past the {MAX_SIDECAR_BYTES >> 20} MB an "
                "XMP sidecar may have: not read or merged (it still travels with the picture)"
            )
            notes.warn("metadata.damaged", item="sidecar xmp", error=why)
            continue
        try:
            with c.path.open("rb") as fp:
                data = fp.read(MAX_SIDECAR_BYTES + 1)  # bounded: it may have grown since it was hashed
        except OSError as exc:
            notes.warn("companion.skipped", error=f"{c.path.name}: {exc.strerror or exc}")
            continue
        if hashlib.sha256(data).hexdigest() == c.sha256:  # the bytes the commit will move
            return data
    return None


def with_sidecar(source: Source, sidecar: bytes, notes: Notes) -> Source:
    """The source with the sidecar's descriptive XMP over its own (said, and left out, if unreadable)."""
    try:
        from hotfolder.render.sidecar import merge  # noqa: PLC0415 - see TYPE_CHECKING above

        xmp, names = merge(source.meta.xmp, sidecar)
    except (ValueError, SyntaxError) as exc:
        notes.warn("metadata.damaged", item="sidecar xmp", error=f"the XMP sidecar cannot be merged: {exc}")
        return source
    if not names:
        return source
    return replace(source, meta=replace(source.meta, xmp=xmp))
