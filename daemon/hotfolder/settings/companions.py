"""A rule's `[rule.companions]` table: which files travel with a picture, parsed once, frozen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from hotfolder.settings import schema

DEFAULT_FILES: Final = ("{name}.xmp", "{stem}.xmp", "{stem}.aae", "{stem}.thm", "{name}.json")
DEFAULT_VIDEOS: Final = ("{stem}.mov", "{stem}_HEVC.mov", "{stem}.mp4")
RAW_JPEG: Final = ("group", "separate")
PRIMARY: Final = ("raw", "jpeg")


@dataclass(frozen=True)
class Companions:
    """Patterns (case-insensitive; `{name}` is the picture's file name, `{stem}` without its extension)
    and the timing of a rule's groups."""

    files: tuple[str, ...] = DEFAULT_FILES
    videos: tuple[str, ...] = DEFAULT_VIDEOS  # Live Photo candidates: joined only when the still agrees
    wait: float = 3.0  # seconds a picture waits at most for its stem to be quiet
    late: float = 3600.0  # seconds after its picture was moved that a companion still follows it
    raw_jpeg: str = "group"  # "separate": a JPEG beside a RAW is a picture of its own
    primary: str = "raw"  # in a RAW+JPEG group, the one the outputs are made from


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


_KEYS: Final[dict[str, Callable[[Any], Any]]] = {
    "files": _patterns,
    "videos": _patterns,
    "wait": _seconds,
    "late": _seconds,
    "raw_jpeg": schema.choice(RAW_JPEG),
    "primary": schema.choice(PRIMARY),
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
