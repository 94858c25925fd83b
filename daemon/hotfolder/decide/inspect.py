"""What `explain` and `process --dry-run` show: the same read and decision a job makes, without writing."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from hotfolder.core.formats import HEAD_BYTES, RAW, claimed_format
from hotfolder.decide.colourspace import ColourSpace, source_colour
from hotfolder.decide.facts import content_facts, raw_facts
from hotfolder.decide.header import identify
from hotfolder.decide.match import Decision, Facts, candidates, decide
from hotfolder.decide.raw import RawHeader
from hotfolder.decide.raw import inspect as inspect_raw
from hotfolder.decide.read import Sniffed, misnamed, open_regular, read_bounded, sniffed
from hotfolder.decide.sniff import sniff
from hotfolder.errors import InputError, NotRegularError
from hotfolder.settings.rules import Rule


def examine(
    data: bytes,
    relpath: str,
    rules: tuple[Rule, ...],
    *,
    facts: Facts | None = None,
    mtime: float | None = None,
) -> Decision:
    """Decide which rules take a file from its bytes and path.

    Content the decoders do not recognise still counts as the format its name claims: a
    zero-byte `.heic` is a broken image to quarantine, while a `.mov` is simply not ours.
    """
    base = facts or Facts(relpath=relpath, size=len(data))
    fmt = sniff(data[:HEAD_BYTES], relpath) or claimed_format(relpath)
    # A RAW's facts come from its own header (decide/raw.py), never from Pillow reading it as a TIFF.
    content = base.content or (content_facts(data, mtime) if fmt and fmt != RAW else None)
    return decide(rules, replace(base, relpath=relpath, format=fmt, content=content))


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
    path: Path,
    relpath: str,
    rules: tuple[Rule, ...],
    *,
    max_pixels: int,
    watch: str | None = None,
    watch_path: Path | None = None,
) -> Inspection:
    """Decide which rules take a file, reading it as a worker would (bounded, never a FIFO or a link)."""
    fd, st = open_regular(path)
    try:
        found = sniffed(fd, relpath)
    except BaseException:
        os.close(fd)
        raise
    seen = _inspect(fd, st, found, relpath, rules, max_pixels=max_pixels, watch=watch, watch_path=watch_path)
    return replace(seen, misnamed=misnamed(found, relpath))


def _inspect(
    fd: int,
    st: os.stat_result,
    found: Sniffed,
    relpath: str,
    rules: tuple[Rule, ...],
    *,
    max_pixels: int,
    watch: str | None,
    watch_path: Path | None,
) -> Inspection:
    try:
        fmt = found.format
        facts = Facts(
            relpath=relpath,
            watch=watch,
            watch_path=str(watch_path) if watch_path else None,
            size=st.st_size,
            format=fmt,
        )
        if st.st_size == 0:
            return Inspection(
                facts, decide(rules, facts, partial=True), refusal="the file is empty (0 bytes)"
            )
        try:
            data = read_bounded(fd, st, found, max_pixels=max_pixels)
        except InputError as exc:
            return Inspection(facts, decide(rules, facts, partial=True), refusal=str(exc))
    finally:
        os.close(fd)
    if fmt == RAW:
        try:
            header = inspect_raw(data, max_pixels=max_pixels)
        except InputError as exc:
            return Inspection(facts, decide(rules, facts, partial=True), data=data, refusal=str(exc))
        facts = replace(facts, content=raw_facts(header, st.st_mtime))
        return Inspection(facts, examine(data, relpath, rules, facts=facts), data=data, raw=header)
    try:
        opened = identify(data, max_pixels=max_pixels)  # the config's limit, as `run` applies it
    except InputError as exc:
        return Inspection(facts, decide(rules, facts, partial=True), data=data, refusal=str(exc))
    facts = replace(facts, content=content_facts(data, st.st_mtime, opened))
    colour = source_colour(opened, data, fmt) if fmt else None
    return Inspection(facts, examine(data, relpath, rules, facts=facts), data=data, colour=colour)


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
