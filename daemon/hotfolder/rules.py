"""Rule files → frozen Rule objects. Every mistake is reported with file, rule, key and line."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

from .errors import ConfigError, Problem
from .formats import INPUT_FORMATS, OUTPUT_FORMATS
from .template import Template, TemplateSyntaxError, parse


@dataclass(frozen=True)
class Match:
    """Conditions on a file; an empty tuple or set means 'no condition'."""

    globs: tuple[str, ...] = ()
    formats: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Output:
    """One file a rule writes for each input it matches."""

    format: str
    path: Template
    max_edge: int | None = None
    quality: int | None = None
    compress_level: int | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    file: Path | None
    match: Match = field(default_factory=Match)
    outputs: tuple[Output, ...] = ()


Validator = Callable[[Any], Any]


def _int_range(lo: int, hi: int | None = None) -> Validator:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, not {value!r}")
        if value < lo or (hi is not None and value > hi):
            raise ValueError(f"must be {lo}..{hi}, not {value}" if hi is not None else f"must be >= {lo}")
        return value

    return check


def _choice(options: Iterable[str]) -> Validator:
    allowed = tuple(options)

    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, not {value!r}")
        return str(value)

    return check


def _template(value: Any) -> Template:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty text, not {value!r}")
    try:
        return parse(value)
    except TemplateSyntaxError as exc:
        raise ValueError(str(exc)) from None


def _str_list(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise ValueError(f"must be a text or a non-empty list of texts, not {value!r}")
    return tuple(items)


def _globs(value: Any) -> tuple[str, ...]:
    globs = _str_list(value)
    for g in globs:
        if g.startswith("/") or ".." in g.split("/"):
            raise ValueError(f"{g!r} must be relative to the watch root")
    return globs


def _formats(value: Any) -> frozenset[str]:
    names = _str_list(value)
    unknown = [n for n in names if n not in INPUT_FORMATS]
    if unknown:
        raise ValueError(f"unknown format {unknown[0]!r}; known: {', '.join(INPUT_FORMATS)}")
    return frozenset(names)


# key -> (validator, formats the key applies to; None = every format)
_OUTPUT_KEYS: Final[Mapping[str, tuple[Validator, frozenset[str] | None]]] = {
    "format": (_choice(OUTPUT_FORMATS), None),
    "path": (_template, None),
    "max_edge": (_int_range(1), None),
    "quality": (_int_range(0, 100), frozenset({"jpeg", "heif", "webp", "avif"})),
    "compress_level": (_int_range(0, 9), frozenset({"png"})),
}
_MATCH_KEYS: Final[Mapping[str, Validator]] = {"glob": _globs, "formats": _formats}
_RULE_KEYS: Final = frozenset({"name", "match", "output"})
_REQUIRED_OUTPUT: Final = ("format", "path")
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
        output = _parse_output(raw, partial(_output_line, where, i, j), problem)
        if output is not None:
            outputs.append(output)

    if len(problems) > before:
        return None
    return Rule(name=str(name), file=path, match=Match(**match_kwargs), outputs=tuple(outputs))


def _output_line(where: _Locator, rule: int, index: int, key: str | None) -> int | None:
    return where.line(rule, key, section="rule.output", index=index)


def _parse_output(
    raw: dict[str, Any],
    line_of: Callable[[str | None], int | None],
    problem: Callable[[str, str | None, int | None], None],
) -> Output | None:
    fmt = raw.get("format")
    values: dict[str, Any] = {}
    ok = True
    for key in _REQUIRED_OUTPUT:
        if key not in raw:
            problem(f"[[rule.output]] needs {key!r}", f"output.{key}", line_of(None))
            ok = False
    for key, value in raw.items():
        spec = _OUTPUT_KEYS.get(key)
        if spec is None:
            problem(
                f"unknown key in [[rule.output]]; known: {', '.join(_OUTPUT_KEYS)}",
                f"output.{key}",
                line_of(key),
            )
            ok = False
            continue
        check, applies = spec
        if applies is not None and fmt in OUTPUT_FORMATS and fmt not in applies:
            problem(f"does not apply to format {fmt!r}", f"output.{key}", line_of(key))
            ok = False
            continue
        try:
            values[key] = check(value)
        except ValueError as exc:
            problem(str(exc), f"output.{key}", line_of(key))
            ok = False
    return Output(**values) if ok else None
