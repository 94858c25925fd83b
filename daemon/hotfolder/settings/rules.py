"""Rule files → frozen Rule objects. Every mistake is reported with file, rule, key and line."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

from hotfolder.core.formats import MATCH_FORMATS
from hotfolder.core.template import Template
from hotfolder.errors import ConfigError, Problem
from hotfolder.settings import schema
from hotfolder.settings.companions import Companions, parse_companions
from hotfolder.settings.outputs import HdrProbe, Output, no_probe, parse_output


@dataclass(frozen=True)
class Match:
    """Conditions on a file; None, an empty tuple or an empty set means 'no condition'."""

    watch: str | None = None  # a watch's name or path
    globs: tuple[str, ...] = ()
    formats: frozenset[str] = frozenset()
    min_bytes: int | None = None
    max_bytes: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    exif_make: tuple[str, ...] = ()  # globs, case-insensitive
    exif_model: tuple[str, ...] = ()
    has_gps: bool | None = None
    has_exif: bool | None = None
    taken_after: datetime | None = None
    taken_before: datetime | None = None
    rating_min: int | None = None  # xmp:Rating: -1 (rejected), 0 (unrated), 1 .. 5 stars
    rating_max: int | None = None
    labels: tuple[str, ...] = ()  # xmp:Label, any of these (case-insensitive)

    @property
    def reads_content(self) -> bool:
        """Whether deciding needs the image header (pixels, EXIF), not just the path and size."""
        return bool(
            self.min_pixels is not None
            or self.max_pixels is not None
            or self.exif_make
            or self.exif_model
            or self.has_gps is not None
            or self.has_exif is not None
            or self.taken_after
            or self.taken_before
            or self.rating_min is not None
            or self.rating_max is not None
            or bool(self.labels)
        )


ORIGINAL_POLICIES: Final = ("keep", "delete", "move")


@dataclass(frozen=True)
class Rule:
    name: str
    file: Path | None
    match: Match = field(default_factory=Match)
    outputs: tuple[Output, ...] = ()
    continue_: bool = False  # `continue = true`: later rules are tried too
    original: str = "keep"
    original_path: Template | None = None  # where `move` puts the original, under output_root
    companions: Companions | None = None  # [rule.companions]: the picture's group travels with it
    # Lines of keys that are checked against the config later (a rule's watch), for the error message.
    where: tuple[tuple[str, int], ...] = field(default=(), compare=False, repr=False)

    @property
    def lines(self) -> dict[str, int]:
        return dict(self.where)


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


def _when(value: Any) -> datetime:
    """A TOML date or date-time, or a text 'YYYY-MM-DD[ HH:MM[:SS]]' (local time, as cameras write it)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("T", " "))
        except ValueError:
            pass
    raise ValueError(f"must be a date like 2024-05-01 or 2024-05-01T12:00:00, not {value!r}")


def _exif_table(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ValueError("must be a table of EXIF conditions, e.g. exif.Make = 'Canon*'")
    unknown = sorted(value.keys() - {"Make", "Model"})
    if unknown:
        raise ValueError(f"unknown EXIF condition {unknown[0]!r}; known: Make, Model")
    return {k: schema.str_list(v) for k, v in value.items()}


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty text, not {value!r}")
    return value


_COUNT = schema.int_range(0)
_MATCH_KEYS: Final[Mapping[str, schema.Validator]] = {
    "watch": _text,
    "glob": _globs,
    "formats": _formats,
    "min_bytes": _COUNT,
    "max_bytes": _COUNT,
    "min_pixels": _COUNT,
    "max_pixels": _COUNT,
    "exif": _exif_table,
    "has_gps": schema.boolean,
    "has_exif": schema.boolean,
    "taken_after": _when,
    "taken_before": _when,
    "rating_min": schema.int_range(-1, 5),
    "rating_max": schema.int_range(-1, 5),
    "label": schema.str_list,
}
_RULE_KEYS: Final = frozenset(
    {"name", "match", "output", "continue", "original", "original_path", "companions"}
)
_MATCH_FIELDS: Final = {"glob": "globs", "label": "labels"}


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


def load_rules(
    files: Iterable[Path | tuple[Path | None, str]], hdr_probe: HdrProbe = no_probe
) -> tuple[Rule, ...]:
    """Load rule files in order; raise ConfigError listing every problem in every file.
    `hdr_probe` says whether a writer can keep HDR where that depends on the installed libraries."""
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
        rules.extend(_parse_file(path, text, problems, hdr_probe))
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in seen:
            problems.append(
                Problem(
                    rule.file, f"duplicate rule name (first defined in {seen[rule.name].file})", rule.name
                )
            )
        seen.setdefault(rule.name, rule)
    problems.extend(_chain_conflicts(rules))
    if problems:
        raise ConfigError(problems)
    return tuple(rules)


def _chain_conflicts(rules: list[Rule]) -> list[Problem]:
    """Rules joined by `continue = true` share one original: their policies must agree."""
    problems = []
    for i, rule in enumerate(rules):
        if not rule.continue_:
            continue
        for later in rules[i + 1 :]:
            a, b = (rule.original, rule.original_path), (later.original, later.original_path)
            if "keep" not in (rule.original, later.original) and a != b:
                problems.append(
                    Problem(
                        later.file,
                        f"original = {later.original!r} conflicts with "
                        f"{rule.original!r} of rule {rule.name!r}, which continues into it",
                        later.name,
                        "original",
                    )
                )
            if not later.continue_:
                break
    return problems


def _parse_file(path: Path | None, text: str, problems: list[Problem], hdr_probe: HdrProbe) -> list[Rule]:
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
        rule = _parse_rule(path, i, entry, where, problems, hdr_probe=hdr_probe)
        if rule is not None:
            rules.append(rule)
    return rules


def _parse_rule(
    path: Path | None,
    i: int,
    entry: dict[str, Any],
    where: _Locator,
    problems: list[Problem],
    *,
    hdr_probe: HdrProbe,
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

    match_kwargs = _parse_match(i, entry, where, problem)

    rule_kwargs: dict[str, Any] = {}
    for key, check in (
        ("continue", schema.boolean),
        ("original", schema.choice(ORIGINAL_POLICIES)),
        ("original_path", schema.template),
    ):
        if key in entry:
            try:
                rule_kwargs["continue_" if key == "continue" else key] = check(entry[key])
            except ValueError as exc:
                problem(str(exc), key, where.line(i, key))
    if rule_kwargs.get("original") == "move" and "original_path" not in rule_kwargs:
        problem(
            "original = 'move' needs original_path (a template under output_root)",
            "original_path",
            where.line(i, "original"),
        )
    if "original_path" in rule_kwargs and rule_kwargs.get("original") != "move":
        problem(
            "original_path only applies with original = 'move'",
            "original_path",
            where.line(i, "original_path"),
        )

    if "companions" in entry:
        found = parse_companions(
            entry["companions"], lambda key: where.line(i, key, section="rule.companions"), problem
        )
        if found is not None:
            rule_kwargs["companions"] = found

    outputs = []
    raw_outputs = entry.get("output")
    if not isinstance(raw_outputs, list) or not raw_outputs:
        problem("every rule needs at least one [[rule.output]]", "output", where.line(i, None))
        raw_outputs = []
    for j, raw in enumerate(raw_outputs):
        output = parse_output(raw, partial(_output_line, where, i, j), problem, hdr_probe)
        if output is not None:
            outputs.append(output)

    if len(problems) > before:
        return None
    watch_line = where.line(i, "watch", section="rule.match")
    lines = (("match.watch", watch_line),) if watch_line is not None else ()
    return Rule(
        name=str(name),
        file=path,
        match=Match(**match_kwargs),
        outputs=tuple(outputs),
        where=lines,
        **rule_kwargs,
    )


def _parse_match(i: int, entry: dict[str, Any], where: _Locator, problem: Any) -> dict[str, Any]:
    """The [rule.match] table as Match keyword arguments; each problem reported with its line."""
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
            checked = check(value)
        except ValueError as exc:
            problem(str(exc), f"match.{key}", line)
            continue
        if key == "exif":
            match_kwargs.update({f"exif_{k.lower()}": v for k, v in checked.items()})
        else:
            match_kwargs[_MATCH_FIELDS.get(key, key)] = checked
    for low, high in (
        ("min_bytes", "max_bytes"),
        ("min_pixels", "max_pixels"),
        ("taken_after", "taken_before"),
        ("rating_min", "rating_max"),
    ):
        if low in match_kwargs and high in match_kwargs and match_kwargs[low] > match_kwargs[high]:
            problem(
                f"{low} is after {high}: nothing could ever match",
                f"match.{low}",
                where.line(i, low, section="rule.match"),
            )
    return match_kwargs


def _output_line(where: _Locator, rule: int, index: int, key: str | None) -> int | None:
    return where.line(rule, key, section="rule.output", index=index)
