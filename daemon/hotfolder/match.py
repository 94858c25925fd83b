"""Pure matching: (rules, facts about one file) → the rule that takes it, and why the others did not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from wcmatch import glob as wglob

from .formats import INPUT_FORMATS, RAW
from .rules import Rule

# `**/` matches zero or more folders; matching ignores case; dot files are ordinary names
# (temp and hidden files are the ignore list's business, not the glob's).
_GLOB_FLAGS = wglob.GLOBSTAR | wglob.IGNORECASE | wglob.DOTGLOB | wglob.BRACE | wglob.EXTGLOB


@dataclass(frozen=True)
class Facts:
    """What is known about a candidate file. `format` None means: not an image we may decode."""

    relpath: str  # below the watch root, '/'-separated
    format: str | None = None


@dataclass(frozen=True)
class Verdict:
    rule: str
    matched: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    rule: Rule | None
    verdicts: tuple[Verdict, ...]


@lru_cache(maxsize=512)
def _compiled(globs: tuple[str, ...]) -> Any:
    return wglob.compile(list(globs), flags=_GLOB_FLAGS)


def path_matches(rule: Rule, relpath: str) -> bool:
    """Whether the rule's path conditions (its globs) accept this relative path."""
    return not rule.match.globs or bool(_compiled(rule.match.globs).match(relpath))


def judge(rule: Rule, facts: Facts) -> Verdict:
    """One rule against one file: matched, or the first condition that failed and the value seen."""
    if not path_matches(rule, facts.relpath):
        return Verdict(
            rule.name, matched=False, reason=f"{facts.relpath!r} matches no glob of {list(rule.match.globs)}"
        )
    if facts.format is None:
        return Verdict(
            rule.name, matched=False, reason=f"not an image of an allowed format ({', '.join(INPUT_FORMATS)})"
        )
    if facts.format == RAW and not rule.match.formats:
        return Verdict(
            rule.name, matched=False, reason="camera RAW is only taken by a rule with formats = ['raw']"
        )
    if rule.match.formats and facts.format not in rule.match.formats:
        return Verdict(
            rule.name, matched=False, reason=f"format {facts.format!r} is not in {sorted(rule.match.formats)}"
        )
    return Verdict(rule.name, matched=True, reason="every condition holds")


def decide(rules: Sequence[Rule], facts: Facts) -> Decision:
    """Try rules in order; the first match wins. Rules after the winner are reported as not tried."""
    verdicts: list[Verdict] = []
    winner: Rule | None = None
    for rule in rules:
        if winner is not None:
            verdicts.append(
                Verdict(rule.name, matched=False, reason=f"not tried: rule {winner.name!r} matched first")
            )
            continue
        verdict = judge(rule, facts)
        verdicts.append(verdict)
        if verdict.matched:
            winner = rule
    return Decision(winner, tuple(verdicts))


def candidates(rules: Sequence[Rule], relpath: str) -> tuple[Rule, ...]:
    """The rules that could still match once the content is known (a cheap filter before any read)."""
    return tuple(r for r in rules if path_matches(r, relpath))
