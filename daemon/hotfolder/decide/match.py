"""Pure matching: (rules, facts about one file) → the rule that takes it, and why the others did not."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from wcmatch import fnmatch
from wcmatch import glob as wglob

from hotfolder.core.formats import INPUT_FORMATS, RAW
from hotfolder.decide.rating import NOT_RATED, Rated
from hotfolder.settings.rules import Match, Rule

# `**/` matches zero or more folders; matching ignores case; dot files are ordinary names
# (temp and hidden files are the ignore list's business, not the glob's).
_GLOB_FLAGS = wglob.GLOBSTAR | wglob.IGNORECASE | wglob.DOTGLOB | wglob.BRACE | wglob.EXTGLOB


@dataclass(frozen=True)
class Content:
    """What the image header says (no pixels decoded)."""

    width: int
    height: int
    make: str | None = None
    model: str | None = None
    has_exif: bool = False
    has_gps: bool = False
    taken: datetime | None = None  # DateTimeOriginal, then CreateDate, then the file's mtime
    subsec: str = ""  # the sub-second digits the camera wrote
    rated: Rated = NOT_RATED  # xmp:Rating and xmp:Label, the sidecar's over the picture's


@dataclass(frozen=True)
class Facts:
    """What is known about a candidate file. `format` None means: not an image we may decode;
    `content` None means the header is not known (yet, or not readable)."""

    relpath: str  # below the watch root, '/'-separated
    format: str | None = None
    watch: str | None = None
    watch_path: str | None = None
    size: int | None = None
    content: Content | None = None


@dataclass(frozen=True)
class Verdict:
    rule: str
    matched: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    rules: tuple[Rule, ...]  # the first match, and those `continue = true` chains into
    verdicts: tuple[Verdict, ...]

    @property
    def rule(self) -> Rule | None:
        return self.rules[0] if self.rules else None


@lru_cache(maxsize=512)
def _compiled(globs: tuple[str, ...]) -> Any:
    return wglob.compile(list(globs), flags=_GLOB_FLAGS)


@lru_cache(maxsize=512)
def _names(globs: tuple[str, ...]) -> Any:
    return fnmatch.compile(list(globs), flags=fnmatch.IGNORECASE)


@lru_cache(maxsize=512)
def _nfc_globs(globs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(unicodedata.normalize("NFC", g) for g in globs)


def path_matches(rule: Rule, relpath: str) -> bool:
    """Whether the rule's path conditions (its globs) accept this relative path.

    Both sides are compared in Unicode NFC: macOS writes 'été' decomposed (NFD), rule files
    usually hold it composed; the same name must match either way.
    """
    if not rule.match.globs:
        return True
    return bool(_compiled(_nfc_globs(rule.match.globs)).match(unicodedata.normalize("NFC", relpath)))


def judge(rule: Rule, facts: Facts, *, partial: bool = False) -> Verdict:
    """One rule against one file: matched, or the first condition that failed and the value seen.

    With partial=True, conditions on unknown content count as met: the answer is "could match".
    """
    m = rule.match

    def no(reason: str) -> Verdict:
        return Verdict(rule.name, matched=False, reason=reason)

    if m.watch is not None and m.watch not in (facts.watch, facts.watch_path):
        return no(f"watch {facts.watch!r} is not {m.watch!r}")
    if not path_matches(rule, facts.relpath):
        return no(f"{facts.relpath!r} matches no glob of {list(m.globs)}")
    if facts.format is None:
        return no(f"not an image of an allowed format ({', '.join(INPUT_FORMATS)})")
    if facts.format == RAW and not m.formats:
        return no("camera RAW is only taken by a rule with formats = ['raw']")
    if m.formats and facts.format not in m.formats:
        return no(f"format {facts.format!r} is not in {sorted(m.formats)}")
    if facts.size is not None:
        if m.min_bytes is not None and facts.size < m.min_bytes:
            return no(f"{facts.size} bytes < min_bytes {m.min_bytes}")
        if m.max_bytes is not None and facts.size > m.max_bytes:
            return no(f"{facts.size} bytes > max_bytes {m.max_bytes}")
    c = facts.content
    if c is None:
        if m.reads_content and not partial:
            return no("the image header cannot be read, and this rule has conditions on it")
        return Verdict(
            rule.name, matched=True, reason="every condition holds" if not m.reads_content else "may match"
        )
    reason = _content_mismatch(m, c)
    if reason:
        return no(reason)
    return Verdict(rule.name, matched=True, reason="every condition holds")


def _content_mismatch(m: Match, c: Content) -> str | None:
    pixels = c.width * c.height
    if m.min_pixels is not None and pixels < m.min_pixels:
        return f"{c.width}x{c.height} = {pixels} pixels < min_pixels {m.min_pixels}"
    if m.max_pixels is not None and pixels > m.max_pixels:
        return f"{c.width}x{c.height} = {pixels} pixels > max_pixels {m.max_pixels}"
    for label, globs, value in (("Make", m.exif_make, c.make), ("Model", m.exif_model, c.model)):
        if globs and not (
            value and _names(_nfc_globs(globs)).match(unicodedata.normalize("NFC", value.strip()))
        ):
            return f"EXIF {label} {value!r} matches none of {list(globs)}"
    if m.has_exif is not None and c.has_exif != m.has_exif:
        return f"has_exif is {c.has_exif}"
    if m.has_gps is not None and c.has_gps != m.has_gps:
        return f"has_gps is {c.has_gps}"
    if m.taken_after is not None and (c.taken is None or c.taken <= m.taken_after):
        return f"taken {c.taken} is not after {m.taken_after}"
    if m.taken_before is not None and (c.taken is None or c.taken >= m.taken_before):
        return f"taken {c.taken} is not before {m.taken_before}"
    stars = c.rated.rating if c.rated.rating is not None else 0  # unrated is 0, as in Lightroom
    said = f" (from {c.rated.rating_from})" if c.rated.rating_from else " (unrated)"
    if m.rating_min is not None and stars < m.rating_min:
        return f"rating {stars}{said} < rating_min {m.rating_min}"
    if m.rating_max is not None and stars > m.rating_max:
        return f"rating {stars}{said} > rating_max {m.rating_max}"
    if m.labels and (c.rated.label or "").casefold() not in {x.casefold() for x in m.labels}:
        where = f" (from {c.rated.label_from})" if c.rated.label_from else ""
        return f"label {c.rated.label!r}{where} is not one of {list(m.labels)}"
    return None


def decide(rules: Sequence[Rule], facts: Facts, *, partial: bool = False) -> Decision:
    """Try rules in order; the first match wins, and `continue = true` lets later ones match too."""
    verdicts: list[Verdict] = []
    chosen: list[Rule] = []
    for rule in rules:
        if chosen and not chosen[-1].continue_:
            verdicts.append(
                Verdict(rule.name, matched=False, reason=f"not tried: rule {chosen[0].name!r} matched first")
            )
            continue
        verdict = judge(rule, facts, partial=partial)
        verdicts.append(verdict)
        if verdict.matched:
            chosen.append(rule)
    return Decision(tuple(chosen), tuple(verdicts))


def candidates(rules: Sequence[Rule], relpath: str) -> tuple[Rule, ...]:
    """The rules that could still match once the content is known (a cheap filter before any read)."""
    return tuple(r for r in rules if path_matches(r, relpath))


def rules_fingerprint(rules: tuple[Rule, ...]) -> str:
    """What an 'unmatched' verdict depends on: a rules change offers those files again."""
    made = repr(tuple((r.name, r.match, r.outputs) for r in rules))
    return hashlib.sha1(made.encode(), usedforsecurity=False).hexdigest()[:16]
