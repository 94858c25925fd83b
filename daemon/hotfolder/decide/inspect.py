"""What `explain` and `process --dry-run` show: the same read and decision a job makes, without writing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hotfolder.decide.colourspace import ColourSpace, source_colour
from hotfolder.decide.examine import candidate, examine_bytes
from hotfolder.decide.match import Decision, Facts, candidates, decide
from hotfolder.decide.raw import RawHeader
from hotfolder.decide.read import open_regular, read_bounded, sniffed
from hotfolder.errors import InputError, NotRegularError
from hotfolder.settings.rules import Rule
from hotfolder.settings.watches import Watch


@dataclass(frozen=True)
class Inspection:
    """What `explain` and `process --dry-run` learn of a file, by the same reads a worker makes."""

    facts: Facts
    decision: Decision
    data: bytes | None = None  # None: refused before it was read (the reason is in `refusal`)
    refusal: str | None = None
    raw: RawHeader | None = None  # a camera RAW's header
    colour: ColourSpace | None = None  # what its colour is, as every output will read it
    misnamed: str | None = None  # its name and its content disagree about camera RAW (file.misnamed)


def inspect_file(
    path: Path, relpath: str, rules: tuple[Rule, ...], *, max_pixels: int, watch: Watch | None = None
) -> Inspection:
    """Decide which rules take a file by the worker's own steps (decide/examine.py): opened as a
    worker opens it (never a FIFO or a link), sniffed, read bounded, its header parsed once."""
    fd, st = open_regular(path)
    try:
        found = candidate(fd, st, relpath, rules, watch=watch)
        facts = found.facts
        if st.st_size == 0:
            return Inspection(
                facts, found.decision, refusal="the file is empty (0 bytes)", misnamed=found.misnamed
            )
        try:
            data = read_bounded(fd, st, found.found, max_pixels=max_pixels)
        except InputError as exc:
            return Inspection(facts, found.decision, refusal=str(exc), misnamed=found.misnamed)
    finally:
        os.close(fd)
    seen = examine_bytes(data, facts, rules, mtime=st.st_mtime, max_pixels=max_pixels)
    # What run does with it: a rule that wants pixels it cannot have quarantines it; a copy does not.
    refusal = str(seen.unusable) if seen.unusable is not None and seen.needs_pixels else None
    colour = None
    if seen.opened is not None and facts.format:
        colour = source_colour(seen.opened, data, facts.format)
    return Inspection(
        seen.facts,
        seen.decision,
        data=data,
        refusal=refusal,
        raw=seen.raw,
        colour=colour,
        misnamed=found.misnamed,
    )


def may_take(path: Path, root: Path, rules: tuple[Rule, ...], *, watch: str | None = None) -> bool:
    """Whether any rule could take this file, judged as `run` judges it before reading it whole (its
    path, its size, its format by content): a picture no rule takes holds no twin or sidecar."""
    try:
        relpath = path.relative_to(root).as_posix()
    except ValueError:
        relpath = path.name
    chain = candidates(rules, relpath)
    if not chain:
        return False
    try:
        fd, st = open_regular(path)
    except (OSError, NotRegularError):
        return False
    try:
        found = sniffed(fd, relpath)
    finally:
        os.close(fd)
    facts = Facts(relpath=relpath, watch=watch, watch_path=str(root), size=st.st_size, format=found.format)
    return bool(decide(chain, facts, partial=True).rules)
