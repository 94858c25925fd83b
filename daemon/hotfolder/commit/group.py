"""A picture's companions in the commit: named with the picture (one counter for the whole group),
recorded in the intent with the original, and disposed of after it, each exactly the file that was
read. They follow what became of the original: moved beside it, deleted with it, or kept."""

from __future__ import annotations

import errno
from dataclasses import asdict, dataclass
from pathlib import Path, PurePath
from typing import Any

from hotfolder.commit import dispose
from hotfolder.commit.dispose import Disposed, Read
from hotfolder.commit.faults import checkpoint
from hotfolder.commit.staged import Companion
from hotfolder.core import tempnames
from hotfolder.core.identity import FileIdentity


@dataclass(frozen=True)
class CompanionDisposed:
    """What became of one companion."""

    src: Path
    role: str
    disposed: Disposed


def companion_name(picture_dest: Path, suffix: str) -> Path:
    """A companion's name beside its picture's: the picture's new stem with the companion's own suffix."""
    return picture_dest.parent / (PurePath(picture_dest.name).stem + suffix)


def _free(path: Path, taken: set[Path]) -> bool:
    return not path.exists() and not path.is_symlink() and path not in taken


def group_dest(dest: Path, companions: tuple[Companion, ...], taken: set[Path]) -> Path:
    """The first numbered name for the picture at which every companion's name is free too: one
    collision moves the whole group to the next number."""
    for n in range(10_000):
        candidate = tempnames.numbered(dest, n)
        names = [candidate, *(companion_name(candidate, c.suffix) for c in companions)]
        if all(_free(p, taken) for p in names):
            taken.update(names[1:])
            return candidate
    raise FileExistsError(errno.EEXIST, "no free name for the group", str(dest))


def plan(companions: tuple[Companion, ...], picture_dest: Path | None) -> list[dict[str, Any]]:
    """The intent's record of each companion: what was read, and (a move) where it goes."""
    return [{"src": str(c.path), "identity": asdict(c.identity), "sha256": c.sha256, "read_ns": c.read_ns,
             "role": c.role, "suffix": c.suffix,
             "dest": str(companion_name(picture_dest, c.suffix)) if picture_dest else None}
            for c in companions]  # fmt: skip


def dispose_all(entries: list[dict[str, Any]], original: Disposed, *, token: str, root: Path,
                fresh: bool) -> tuple[CompanionDisposed, ...]:  # fmt: skip
    """Each companion as the original went: moved beside it, deleted, or left where it is."""
    done = []
    for index, entry in enumerate(entries):
        read = Read(Path(entry["src"]), FileIdentity(**entry["identity"]), entry["sha256"], entry["read_ns"])
        if original.result == "moved" and entry["dest"]:
            assert original.where is not None
            dest = companion_name(original.where, entry["suffix"])  # the name the picture really took
            outcome = _move(read, dest, root, fresh=fresh)
        elif original.result == "deleted":
            outcome = _delete(read, token=f"{token}{index:02x}", fresh=fresh)
        else:
            outcome = Disposed("kept", why=original.why)
        done.append(CompanionDisposed(read.path, entry["role"], outcome))
        checkpoint("between-companions")
    return tuple(done)


def _move(read: Read, dest: Path, root: Path, *, fresh: bool) -> Disposed:
    if not fresh and FileIdentity.at(dest) == read.identity:
        return Disposed("moved", where=dest)  # moved before the interruption
    return dispose.move(read, dest, root)


def _delete(read: Read, *, token: str, fresh: bool) -> Disposed:
    hidden = dispose.hidden_name(read, token)
    if not fresh and FileIdentity.at(hidden) is not None:
        return dispose.finish_delete(read, hidden)
    if not fresh and FileIdentity.at(read.path) is None:
        return Disposed("deleted")  # deleted before the interruption
    return dispose.delete(read, token)
