"""What becomes of an original, and of a broken input: exactly the file that was read, or nothing.

An original is deleted, moved or quarantined only if the file at its path is still the one whose
outputs were written (same device, inode, size, mtime; and, when it was read within two seconds
of its last write, the same SHA-256, because timestamps tick coarsely and a rewrite of the same
size inside one tick keeps the rest of the identity). The file is first renamed to where it is
going (or to a hidden name beside it, for a delete), and only then checked: a newer file renamed
onto the path at that moment is never the one acted on; it is put back and treated as a new arrival.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from hotfolder import names
from hotfolder.commit import atomic
from hotfolder.core import tempnames
from hotfolder.core.digest import file_sha256
from hotfolder.core.identity import FileIdentity

FRESH_NS: Final = 2_000_000_000  # read this soon after its last write: the bytes decide, not the stat
_NOTE_SUFFIX: Final = ".json"


@dataclass(frozen=True)
class Read:
    """The file a job read: its path then, its identity, its bytes' hash and when it was read."""

    path: Path
    identity: FileIdentity
    sha256: str | None = None
    read_ns: int = 0


@dataclass(frozen=True)
class Disposed:
    """What happened: deleted, moved (to `where`), or kept (and why)."""

    result: str  # deleted | moved | kept
    where: Path | None = None
    why: str | None = None

    @property
    def summary(self) -> str:
        """The ledger's `original` column: kept, deleted, where it moved, or kept and why."""
        if self.result == "moved":
            return str(self.where)
        return self.result if self.why is None else f"{self.result}: {self.why}"


def is_the_file(path: Path, read: Read) -> bool:
    """Whether the file now at `path` is the one that was read."""
    if FileIdentity.at(path) != read.identity:
        return False
    if read.sha256 is not None and read.read_ns - read.identity.mtime_ns < FRESH_NS:
        try:
            return file_sha256(path) == read.sha256
        except FileNotFoundError:
            return False
    return True


CHANGED: Final = "the file at this path is no longer the one that was read (it changed meanwhile)"
GONE: Final = "the file is no longer at its path (moved or deleted by someone else)"


def hidden_name(read: Read, token: str) -> Path:
    """Where a deleted original waits, beside itself, while it is checked (the watcher ignores it)."""
    return tempnames.temp_path(read.path, token=f"{token}dl")


def delete(read: Read, token: str) -> Disposed:
    """Delete the file that was read: renamed aside, checked, then unlinked; anything else is put back."""
    hidden = hidden_name(read, token)
    try:
        atomic.rename_noreplace(read.path, hidden)
    except FileNotFoundError:
        return Disposed("kept", why=GONE)
    return finish_delete(read, hidden)


def finish_delete(read: Read, hidden: Path) -> Disposed:
    """The second half of delete(): also what a restart does with a hidden name left by a crash."""
    if is_the_file(hidden, read):
        hidden.unlink()
        atomic.fsync_dir(hidden.parent)
        return Disposed("deleted")
    if FileIdentity.at(hidden) is None:
        return Disposed("kept", why=GONE)
    put_back(hidden, read.path)
    return Disposed("kept", why=CHANGED)


def put_back(moved: Path, path: Path) -> Path:
    """Return a file taken by mistake to its path (or beside it, numbered, if the path is taken again)."""
    return atomic.rename_free(moved, path)


def move(read: Read, dest: Path, root: Path) -> Disposed:
    """Move the file that was read to `dest` (the next free numbered name if taken) by a rename."""
    atomic.make_folder(dest.parent, root)
    try:
        target = atomic.rename_free(read.path, dest)
    except FileNotFoundError:
        return Disposed("kept", why=GONE)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        return copy_across(read, dest, root)  # a bind mount: same device number, another mount
    if is_the_file(target, read):
        atomic.fsync_dir(read.path.parent)
        return Disposed("moved", where=target)
    put_back(target, read.path)
    return Disposed("kept", why=CHANGED)


def copy_across(read: Read, dest: Path, root: Path) -> Disposed:
    """Move to another filesystem: copy, check the copy against what was read, place it, unlink the source."""
    try:
        staged = atomic.stage_at(tempnames.temp_path(dest), lambda fp: atomic.copy_file(read.path, fp))
    except FileNotFoundError:
        if FileIdentity.at(read.path) is None:
            return Disposed("kept", why=GONE)  # removed by someone else before its copy: nothing to move
        raise
    try:
        if FileIdentity.at(read.path) != read.identity or (
            read.sha256 is not None and file_sha256(staged.temp) != read.sha256
        ):
            return Disposed("kept", why=CHANGED)
        placed = place_copy(staged.temp, dest, root)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.temp.unlink()
    return unlink_copied(read, placed)


def copied_before(read: Read, dest: Path) -> Path | None:
    """Where an interrupted move to another filesystem left its verified copy, or None: at `dest` or the
    numbered names after it, a file of the read's size and SHA-256 (a copy has another inode, so the
    identity cannot tell it), while the source itself is gone."""
    if read.sha256 is None or FileIdentity.at(read.path) is not None:
        return None
    for n in range(100):
        candidate = tempnames.numbered(dest, n)
        there = FileIdentity.at(candidate)
        if there is None:
            return None  # names are taken in order: past the first free one there is no copy of ours
        if there.size == read.identity.size and file_sha256(candidate) == read.sha256:
            return candidate
    return None


def place_copy(staged: Path, dest: Path, root: Path) -> Path:
    """Rename a verified copy of the original into place (a move to another filesystem)."""
    atomic.make_folder(dest.parent, root)
    return atomic.rename_free(staged, dest)


def unlink_copied(read: Read, copy: Path) -> Disposed:
    """After a copy to another filesystem: unlink the source only if it is still the file that was read."""
    if FileIdentity.at(read.path) is None:
        return Disposed("moved", where=copy)
    if not is_the_file(read.path, read):
        return Disposed("kept", where=copy, why=CHANGED + "; a copy of what was read is at " + str(copy))
    read.path.unlink()  # an error here is the unlink's: reported as such, the copy stays
    atomic.fsync_dir(read.path.parent)
    return Disposed("moved", where=copy)


# Quarantine ---------------------------------------------------------------------------------------


def note_path(parked: Path) -> Path:
    """The note beside a quarantined file; shortened (with a unique suffix) when the name is long."""
    name = parked.name + _NOTE_SUFFIX
    if len(names.raw(name)) <= tempnames.MAX_NAME_BYTES:
        return parked.with_name(name)
    tag = "~" + hashlib.sha1(names.raw(parked.name), usedforsecurity=False).hexdigest()[:10] + _NOTE_SUFFIX
    room = tempnames.MAX_NAME_BYTES - len(tag.encode())
    return parked.with_name(names.cut(parked.name, room) + tag)


def quarantine(
    read: Read, dest: Path, root: Path, note: Mapping[str, object]
) -> tuple[Path, Path] | Disposed:
    """Move a broken input into quarantine with a note saying why; (where it is, its note), or why not."""
    atomic.make_folder(dest.parent, root)
    same_fs = dest.parent.stat().st_dev == read.identity.dev
    moved = move(read, dest, root) if same_fs else copy_across(read, dest, root)
    if moved.result != "moved":
        if moved.where is not None:
            moved.where.unlink(missing_ok=True)  # a copy of a file that changed: not a quarantined input
        return moved
    assert moved.where is not None
    parked = moved.where
    body = {**note, "quarantined_to": str(parked), "time": datetime.now(UTC).isoformat(timespec="seconds")}
    text = json.dumps(names.portable(body), indent=2, ensure_ascii=False)  # names readable, bytes beside
    written = atomic.write_bytes(note_path(parked), text.encode() + b"\n")
    return parked, written
