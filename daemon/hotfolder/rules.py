"""Rule files → frozen Rule objects. Every mistake is reported with file, rule, key and line."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

from . import schema
from .errors import ConfigError, Problem
from .formats import MATCH_FORMATS
from .outputs import Output, parse_output


@dataclass(frozen=True)
class Match:
    """Conditions on a file; an empty tuple or set means 'no condition'."""

    globs: tuple[str, ...] = ()
    formats: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rule:
    name: str
    file: Path | None
    match: Match = field(default_factory=Match)
    outputs: tuple[Output, ...] = ()


def _globs(value: Any) -> tuple[str, ...]:
    globs = schema.str_list(value)
    for g in globs:
        if g.startswith("/") or ".." in g.split("/"):
            raise ValueError(f"{g!r} must be relative to the watch root")
    return globs


def _formats(value: Any) -> frozenset[str]:
    names = schema.str_list(value)
    unknown = [n for n in names if n not in MATCH_FORMATS]
    if unknown:
        raise ValueError(f"unknown format {unknown[0]!r}; known: {', '.join(MATCH_FORMATS)}")
    return frozenset(names)


_MATCH_KEYS: Final[Mapping[str, schema.Validator]] = {"glob": _globs, "formats": _formats}
_RULE_KEYS: Final = frozenset({"name", "match", "output"})
_MATCH_FIELDS: Final = {"glob": "globs", "formats": "formats"}


class _Locator:
    """Finds the line of a key inside the n-th [[rule]] (and its m-th [[rule.output]])."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, rule: int, key: str | None, *, section: str = "rule", index: int = 0) -> int | None:
        """1-based line of `key` in the given section of rule number `rule`, if it can be found."""
        rules_seen, section_seen, current = -1, -1, ""
        for n, text in enumerate(self.lines, start=1):
            header = self._HEADER.match(text)
            if header:
                current = header.group(1).replace(" ", "")
                if current == "rule":
                    rules_seen += 1
                    section_seen = -1
                if rules_seen == rule and current == section:
                    section_seen += 1
                    if key is None and (section == "rule" or section_seen == index):
                        return n
                continue
            if rules_seen != rule or current != section or (section != "rule" and section_seen != index):
                continue
            if key is not None and re.match(rf"^\s*{re.escape(key)}\s*=", text):
                return n
        return None


def load_rules(files: Iterable[Path | tuple[Path | None, str]]) -> tuple[Rule, ...]:
    """Load rule files in order; raise ConfigError listing every problem in every file."""
    problems: list[Problem] = []
    rules: list[Rule] = []
    for item in files:
        path, text = item if isinstance(item, tuple) else (item, None)
        if text is None:
            assert path is not None
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem(path, f"cannot read rule file: {exc}"))
                continue
        rules.extend(_parse_file(path, text, problems))
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in seen:
            problems.append(
                Problem(
                    rule.file, f"duplicate rule name (first defined in {seen[rule.name].file})", rule.name
                )
            )
        seen.setdefault(rule.name, rule)
    if problems:
        raise ConfigError(problems)
    return tuple(rules)


def _parse_file(path: Path | None, text: str, problems: list[Problem]) -> list[Rule]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        problems.append(Problem(path, f"TOML syntax error: {exc}", line=int(line.group(1)) if line else None))
        return []
    where = _Locator(text)
    for key in doc.keys() - {"rule"}:
        problems.append(Problem(path, "unknown top-level key (rule files hold [[rule]] tables)", key=key))
    entries = doc.get("rule", [])
    if not isinstance(entries, list) or not entries:
        problems.append(Problem(path, "defines no rules: add at least one [[rule]] table"))
        return []
    rules = []
    for i, entry in enumerate(entries):
        rule = _parse_rule(path, i, entry, where, problems)
        if rule is not None:
            rules.append(rule)
    return rules


def _parse_rule(
    path: Path | None, i: int, entry: dict[str, Any], where: _Locator, problems: list[Problem]
) -> Rule | None:
    name = entry.get("name")
    label = name if isinstance(name, str) and name else f"#{i + 1}"
    before = len(problems)

    def problem(message: str, key: str | None, line: int | None) -> None:
        problems.append(Problem(path, message, label, key, line))

    if not isinstance(name, str) or not name.strip():
        problem("every rule needs a non-empty name", "name", where.line(i, "name") or where.line(i, None))
    for key in entry.keys() - _RULE_KEYS:
        problem(f"unknown key; rule keys are {', '.join(sorted(_RULE_KEYS))}", key, where.line(i, key))

    match_kwargs: dict[str, Any] = {}
    raw_match = entry.get("match", {})
    if not isinstance(raw_match, dict):
        problem("must be a table [rule.match]", "match", where.line(i, "match"))
        raw_match = {}
    for key, value in raw_match.items():
        check = _MATCH_KEYS.get(key)
        line = where.line(i, key, section="rule.match")
        if check is None:
            problem(f"unknown key in [rule.match]; known: {', '.join(_MATCH_KEYS)}", f"match.{key}", line)
            continue
        try:
            match_kwargs[_MATCH_FIELDS[key]] = check(value)
        except ValueError as exc:
            problem(str(exc), f"match.{key}", line)

    outputs = []
    raw_outputs = entry.get("output")
    if not isinstance(raw_outputs, list) or not raw_outputs:
        problem("every rule needs at least one [[rule.output]]", "output", where.line(i, None))
        raw_outputs = []
    for j, raw in enumerate(raw_outputs):
        output = parse_output(raw, partial(_output_line, where, i, j), problem)
        if output is not None:
            outputs.append(output)

    if "raw" in match_kwargs.get("formats", ()) and any(o.format != "copy" for o in outputs):
        problem("camera RAW is never decoded: a rule matching 'raw' may only have format = 'copy' outputs",
                "match.formats", where.line(i, "formats", section="rule.match"))  # fmt: skip
    if len(problems) > before:
        return None
    return Rule(name=str(name), file=path, match=Match(**match_kwargs), outputs=tuple(outputs))


def _output_line(where: _Locator, rule: int, index: int, key: str | None) -> int | None:
    return where.line(rule, key, section="rule.output", index=index)
