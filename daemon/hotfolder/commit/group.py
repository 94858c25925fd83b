"""A picture's companions in the commit: named with the picture (one counter for the whole group),
recorded in the intent with the original, and disposed of after it, each exactly the file that was
read. They follow what became of the original: moved beside it, deleted with it, or kept."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath

from hotfolder.commit import dispose
from hotfolder.commit.dispose import Disposed, Read
from hotfolder.commit.faults import checkpoint
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.plan import PlannedCompanion
from hotfolder.commit.records import CompanionNote
from hotfolder.commit.staged import Companion
from hotfolder.core import tempnames
from hotfolder.core.identity import FileIdentity
from hotfolder.decide import companions as pairing
from hotfolder.settings.companions import Companions


@dataclass(frozen=True)
class CompanionDisposed:
    """What became of one companion."""

    src: Path
    role: str
    disposed: Disposed

    def summary(self) -> CompanionNote:
        """The ledger's note of it."""
        where = str(self.disposed.where) if self.disposed.where else None
        return CompanionNote(str(self.src), self.role, self.disposed.result, where, self.disposed.why)


def companion_name(picture_dest: Path, suffix: str, replaces: str = "") -> Path:
    """A companion's name beside its picture's: the picture's new stem with the companion's own suffix
    (a pattern twin's in place of the end of the picture's stem it `replaces`, when that is still there)."""
    new_stem = PurePath(picture_dest.name).stem
    if replaces and new_stem.lower().endswith(replaces.lower()):
        new_stem = new_stem[: -len(replaces)]
    return picture_dest.parent / (new_stem + suffix)


def _free(path: Path, taken: set[Path]) -> bool:
    return not path.exists() and not path.is_symlink() and path not in taken


def group_dest(dest: Path, companions: tuple[Companion, ...], taken: set[Path]) -> Path:
    """The first numbered name for the picture at which every companion's name is free too: one
    collision moves the whole group to the next number."""
    for n in range(10_000):
        candidate = tempnames.numbered(dest, n)
        names = [candidate, *(companion_name(candidate, c.suffix, c.replaces) for c in companions)]
        if all(_free(p, taken) for p in names):
            taken.update(names[1:])
            return candidate
    raise FileExistsError(errno.EEXIST, "no free name for the group", str(dest))


def plan(companions: tuple[Companion, ...], picture_dest: Path | None) -> tuple[PlannedCompanion, ...]:
    """The intent's record of each companion: what was read, and (a move) where it goes."""
    return tuple(
        PlannedCompanion(
            src=c.path,
            identity=c.identity,
            sha256=c.sha256,
            read_ns=c.read_ns,
            role=c.role,
            suffix=c.suffix,
            dest=companion_name(picture_dest, c.suffix, c.replaces) if picture_dest else None,
            replaces=c.replaces,
        )
        for c in companions
    )


def dispose_all(
    entries: tuple[PlannedCompanion, ...], original: Disposed, *, token: str, root: Path, fresh: bool
) -> tuple[CompanionDisposed, ...]:
    """Each companion as the original went: moved beside it, deleted, or left where it is."""
    done = []
    for index, entry in enumerate(entries):
        read = Read(entry.src, entry.identity, entry.sha256, entry.read_ns)
        if original.result == "moved" and entry.dest:
            assert original.where is not None
            dest = companion_name(original.where, entry.suffix, entry.replaces)  # the picture's real name
            outcome = _move(read, dest, root, fresh=fresh)
        elif original.result == "deleted":
            outcome = _delete(read, token=f"{token}{index:02x}", fresh=fresh)
        else:
            outcome = Disposed("kept", why=original.why)
        done.append(CompanionDisposed(read.path, entry.role, outcome))
        checkpoint("between-companions")
    return tuple(done)


def _move(read: Read, dest: Path, root: Path, *, fresh: bool) -> Disposed:
    if not fresh:
        if FileIdentity.at(dest) == read.identity:
            return Disposed("moved", where=dest)  # renamed before the interruption
        copy = dispose.copied_before(read, dest)
        if copy is not None:
            return Disposed("moved", where=copy)  # copied across filesystems, source unlinked
    return dispose.move(read, dest, root)


def _delete(read: Read, *, token: str, fresh: bool) -> Disposed:
    hidden = dispose.hidden_name(read, token)
    if not fresh and FileIdentity.at(hidden) is not None:
        return dispose.finish_delete(read, hidden)
    if not fresh and FileIdentity.at(read.path) is None:
        return Disposed("deleted")  # deleted before the interruption
    return dispose.delete(read, token)


def late(path: Path, spec: Companions, ledger: Ledger, root: Path, *, now: datetime) -> tuple[Disposed, str]:
    """A companion-shaped file whose picture is no longer beside it: moved to where its picture went
    when that was within `late` seconds (found through the ledger); else left, and why."""
    for picture, original, updated in ledger.done_in(path.parent):
        if pairing.holder(path.name, [picture.name], spec) != picture.name:
            continue
        if any(pairing.matches(path.name, p) for p in spec.videos):
            # A video joins only in its picture's own commit, where the Live Photo identifiers are
            # compared; by name alone, afterwards, it could be any clip of that stem.
            why = (
                f"a video follows {picture.name} only when it is there as the picture is done "
                "(its Live Photo identifiers are checked then)"
            )
            return Disposed("kept", why=why), str(picture)
        if original == "deleted":
            return Disposed(
                "kept",
                why=f"its picture {picture.name} was deleted: hotfolder deletes only "
                "files it read as part of a group",
            ), str(picture)
        if not original.startswith("/"):
            return Disposed("kept", why=f"its picture {picture.name} was {original}"), str(picture)
        age = (now - datetime.fromisoformat(updated)).total_seconds()
        if age > spec.late:
            why = f"its picture {picture.name} was moved {age:.0f} s ago, more than late = {spec.late:.0f} s"
            return Disposed("kept", why=why), str(picture)
        identity = FileIdentity.at(path)
        if identity is None:
            return Disposed("kept", why=dispose.GONE), str(picture)
        base = pairing.stem(picture.name)
        named = pairing.pattern_twin(path.name, [picture.name], spec)
        if named is not None:  # a pattern twin: its suffix after the shared base, in place of the picture's
            dest = companion_name(Path(original), path.name[len(named[1]) :], base[len(named[1]) :])
        else:
            dest = companion_name(Path(original), path.name[len(base) :])
        return dispose.move(Read(path, identity), dest, root), str(picture)
    return Disposed("kept", why="no picture of its group is in its folder"), ""
