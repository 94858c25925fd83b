"""A rule's `[rule.companions]` table: which files travel with a picture, parsed once, frozen."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from hotfolder.errors import Problem
from hotfolder.settings import schema

DEFAULT_FILES: Final = ("{name}.xmp", "{stem}.xmp", "{stem}.aae", "{stem}.thm", "{name}.json")
DEFAULT_VIDEOS: Final = ("{stem}.mov", "{stem}_HEVC.mov", "{stem}.mp4")
# RAW+JPEG twins whose names differ beyond the stem: a Pixel writes PXL_..._111.RAW-01.COVER.jpg beside
# PXL_..._111.RAW-02.ORIGINAL.dng. {base} is what the two share, {n} any digits.
DEFAULT_TWINS: Final = (("{base}.RAW-{n}.COVER.jpg", "{base}.RAW-{n}.ORIGINAL.dng"),)
RAW_JPEG: Final = ("group", "separate")
PRIMARY: Final = ("raw", "jpeg")
_KEEPS_NAME: Final = frozenset({"{name}", "{stem}.{ext}"})  # an original_path file name that renames nothing
_APPLE_FORMATS: Final = frozenset({"jpeg", "heif"})


@dataclass(frozen=True)
class Companions:
    """Patterns (case-insensitive; `{name}` is the picture's file name, `{stem}` without its extension)
    and the timing of a rule's groups."""

    files: tuple[str, ...] = DEFAULT_FILES
    videos: tuple[str, ...] = DEFAULT_VIDEOS  # Live Photo candidates: joined only when the still agrees
    wait: float = 3.0  # seconds a picture waits at most for its stem to be quiet
    late: float = 3600.0  # seconds after its picture was moved that a companion still follows it
    raw_jpeg: str = "group"  # "separate": a JPEG beside a RAW is a picture of its own
    twins: tuple[tuple[str, str], ...] = DEFAULT_TWINS  # name patterns of twins with different stems
    primary: str = "raw"  # in a RAW+JPEG group, the one the outputs are made from


def apple_edit_renames(rules: Iterable[Any]) -> list[Problem]:
    """A warning for each rule that would move pictures under a new name while Apple edit sets may
    come in: IMG_1234.HEIC, IMG_1234.AAE and IMG_E1234.JPG are tied by their names alone, and Apple
    Photos re-imports the edit only when they still match."""
    found = []
    for rule in rules:
        if rule.original != "move" or rule.original_path is None:
            continue
        if rule.original_path.text.rsplit("/", 1)[-1] in _KEEPS_NAME:
            continue
        if rule.match.formats and not rule.match.formats & _APPLE_FORMATS:
            continue  # it takes no JPEG or HEIF: no Apple edit set
        why = (
            f"original_path {rule.original_path.text!r} renames the pictures it moves: an Apple edit set "
            "(IMG_1234.HEIC with IMG_1234.AAE and IMG_E1234.JPG) renamed this way can no longer be "
            "re-imported into Apple Photos as an edit; keep {name} (or {stem}.{ext}) as the file name"
        )
        found.append(Problem(rule.file, why, rule.name, "original_path", rule.lines.get("original_path")))
    return found


def _patterns(value: Any) -> tuple[str, ...]:
    found = schema.str_list(value)
    for pattern in found:
        if "{stem}" not in pattern and "{name}" not in pattern:
            raise ValueError(f"pattern {pattern!r} names no picture: use {{stem}} or {{name}}")
        if "/" in pattern:
            raise ValueError(f"pattern {pattern!r}: companions live in the picture's own folder (no '/')")
    return found


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"expected a number of seconds >= 0, got {value!r}")
    return float(value)


def _twin_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise ValueError(
            'must be a list of pairs, e.g. [["{base}.RAW-{n}.COVER.jpg", "{base}.RAW-{n}.ORIGINAL.dng"]]'
        )
    for pattern in (p for pair in value for p in pair):
        if not isinstance(pattern, str) or "{base}" not in pattern or "/" in pattern:
            raise ValueError(f"pattern {pattern!r}: needs {{base}} (the part both names share) and no '/'")
    return tuple((a, b) for a, b in value)


_KEYS: Final[dict[str, Callable[[Any], Any]]] = {
    "files": _patterns,
    "videos": _patterns,
    "wait": _seconds,
    "late": _seconds,
    "raw_jpeg": schema.choice(RAW_JPEG),
    "primary": schema.choice(PRIMARY),
    "twins": _twin_pairs,
}


def parse_companions(
    table: Any,
    line: Callable[[str | None], int | None],
    problem: Callable[[str, str | None, int | None], None],
) -> Companions | None:
    """The table as a Companions, or None after reporting each problem with its key and line."""
    if not isinstance(table, dict):
        problem("[rule.companions] must be a table", "companions", line(None))
        return None
    ok = True
    values: dict[str, Any] = {}
    for key in sorted(table.keys() - _KEYS.keys()):
        problem(f"unknown key in [rule.companions]; its keys are {', '.join(sorted(_KEYS))}", key, line(key))
        ok = False
    for key, check in _KEYS.items():
        if key in table:
            try:
                values[key] = check(table[key])
            except ValueError as exc:
                problem(str(exc), f"companions.{key}", line(key))
                ok = False
    return Companions(**values) if ok else None
