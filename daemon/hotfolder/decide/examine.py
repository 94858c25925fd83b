"""The decide stage as `run`, `explain` and `process --dry-run` all make it, in two steps.

1. `candidate`: the file opened and sniffed once (content, and a TIFF container's IFDs), and the
   rules its path, size and format already allow: a file no rule can take is never read.
2. `examine_bytes`: its bytes read once; its header parsed once (a RAW's container, or the one
   Pillow open), and the rules that take it. The worker goes on to render; `explain` stops here.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from hotfolder.core.formats import HEAD_BYTES, RAW, claimed_format
from hotfolder.decide.facts import content_facts, raw_facts
from hotfolder.decide.header import identify, too_many_pixels
from hotfolder.decide.match import Decision, Facts, decide
from hotfolder.decide.rating import rated
from hotfolder.decide.raw import RawHeader
from hotfolder.decide.raw import inspect as inspect_raw
from hotfolder.decide.read import Sniffed, misnamed, sniffed
from hotfolder.decide.sniff import sniff
from hotfolder.errors import InputError
from hotfolder.settings.rules import Rule
from hotfolder.settings.watches import Watch


@dataclass(frozen=True)
class Candidate:
    """A file opened and sniffed, before its bytes are read: what its name, size and format say."""

    found: Sniffed
    facts: Facts  # no content yet
    decision: Decision  # partial: the rules that may take it once its header is known
    misnamed: str | None  # its name and content disagree about camera RAW (file.misnamed)


def candidate(
    fd: int, st: os.stat_result, relpath: str, rules: tuple[Rule, ...], *, watch: Watch | None
) -> Candidate:
    """Sniff an open file (positioned reads only) and decide what its path and format allow."""
    found = sniffed(fd, relpath)
    facts = Facts(
        relpath=relpath,
        watch=watch.name if watch else None,
        watch_path=str(watch.path) if watch else None,
        size=st.st_size,
        format=found.format,
    )
    return Candidate(found, facts, decide(rules, facts, partial=True), misnamed(found, relpath))


@dataclass(frozen=True)
class Examined:
    """A file's bytes looked at once: its header's facts and the rules that take it."""

    facts: Facts
    decision: Decision
    raw: RawHeader | None = None  # a camera RAW's header
    opened: Image.Image | None = None  # the one Pillow open, handed on to decode
    # Why the pixels cannot be had (a RAW LibRaw cannot develop, a header Pillow cannot open): it
    # matters only to a rule that wants pixels; copying needs the bytes alone (a camera too new).
    unusable: InputError | None = None

    @property
    def needs_pixels(self) -> bool:
        """Whether a rule that takes it makes anything but copies."""
        return any(o.format != "copy" for r in self.decision.rules for o in r.outputs)


def examine_bytes(
    data: bytes, facts: Facts, rules: tuple[Rule, ...], *, mtime: float, max_pixels: int
) -> Examined:
    """Parse the header once and decide. Pillow's decompression-bomb warning is the same refusal
    here as in decode (past max_image_pixels, with the limit in the message), never a stray warning."""
    if facts.format == RAW:
        try:
            header = inspect_raw(data, max_pixels=max_pixels)
        except InputError as exc:
            return Examined(facts, examine(data, facts.relpath, rules, facts=facts), unusable=exc)
        facts = replace(
            facts, content=replace(raw_facts(header, mtime), rated=rated(header.xmp, _picture_path(facts)))
        )
        return Examined(facts, examine(data, facts.relpath, rules, facts=facts), raw=header)
    opened: Image.Image | None = None
    unusable: InputError | None = None
    with warnings.catch_warnings():
        # Past max_image_pixels (up to Pillow's 2x error) the header is still read for the rules'
        # facts (size, camera, date), and the picture refused by the limit, as decode refuses it.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            opened = identify(data, max_pixels=max_pixels)
        except InputError as exc:
            unusable = exc
    if opened is not None and opened.width * opened.height > max_pixels:
        unusable = too_many_pixels()
    found = content_facts(data, mtime, opened) if opened is not None else None
    content = replace(found, rated=rated(_own_xmp(opened), _picture_path(facts))) if found else None
    facts = replace(facts, content=content)
    # A header that fails part way (a truncated file) leaves no content: decode opens afresh and says why.
    return Examined(
        facts,
        decide(rules, facts),
        opened=opened if content is not None else None,
        unusable=unusable,
    )


def _own_xmp(im: Image.Image | None) -> bytes | None:
    """The XMP packet a Pillow opener found in the picture (its key differs by format)."""
    if im is None:
        return None
    found = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if isinstance(found, str):
        return found.encode()
    if found is None and im.format == "TIFF":
        found = getattr(im, "tag_v2", {}).get(700)
    return found if isinstance(found, bytes) else None


def _picture_path(facts: Facts) -> Path | None:
    """Where the picture is, to find its XMP sidecar beside it (None: bytes without a place)."""
    return Path(facts.watch_path) / facts.relpath if facts.watch_path else None


def examine(
    data: bytes,
    relpath: str,
    rules: tuple[Rule, ...],
    *,
    facts: Facts | None = None,
    mtime: float | None = None,
) -> Decision:
    """Decide which rules take a file from its bytes and path (its format sniffed here unless `facts`
    already say it).

    Content the decoders do not recognise still counts as the format its name claims: a
    zero-byte `.heic` is a broken image to quarantine, while a `.mov` is simply not ours.
    """
    base = facts or Facts(relpath=relpath, size=len(data))
    fmt = base.format or sniff(data[:HEAD_BYTES], relpath) or claimed_format(relpath)
    # A RAW's facts come from its own header (decide/raw.py), never from Pillow reading it as a TIFF.
    content = base.content or (content_facts(data, mtime) if fmt and fmt != RAW else None)
    return decide(rules, replace(base, relpath=relpath, format=fmt, content=content))
