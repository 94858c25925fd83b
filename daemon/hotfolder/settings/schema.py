"""Small value validators shared by the config, rule and output parsers.

Each takes the raw TOML value and returns the typed value, or raises ValueError with a message
that says what was expected; the caller adds the file, rule, key and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from hotfolder.core.template import Template, TemplateSyntaxError, parse

Validator = Callable[[Any], Any]


def int_range(lo: int, hi: int | None = None) -> Validator:
    """A whole number in [lo, hi]."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, not {value!r}")
        if value < lo or (hi is not None and value > hi):
            raise ValueError(f"must be {lo}..{hi}, not {value}" if hi is not None else f"must be >= {lo}")
        return value

    return check


def number_range(lo: float, hi: float) -> Validator:
    """A number (whole or not) in [lo, hi], as a float."""

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, not {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"must be {lo:g}..{hi:g}, not {value}")
        return float(value)

    return check


def choice(options: Iterable[Any]) -> Validator:
    """One of a closed set of values."""
    allowed = tuple(options)

    def check(value: Any) -> Any:
        if isinstance(value, bool) and not any(isinstance(a, bool) for a in allowed):
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}, not {value!r}")
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}, not {value!r}")
        return value

    return check


def boolean(value: Any) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


def boolean_or(word: str) -> Validator:
    """true, false, or one word beyond them (`optimize = "max"`)."""

    def check(value: Any) -> bool | str:
        if isinstance(value, bool) or value == word:
            return value  # type: ignore[no-any-return]
        raise ValueError(f'must be true, false or "{word}", not {value!r}')

    return check


def template(value: Any) -> Template:
    """An output path template."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty text, not {value!r}")
    try:
        return parse(value)
    except TemplateSyntaxError as exc:
        raise ValueError(str(exc)) from None


def str_list(value: Any) -> tuple[str, ...]:
    """A text, or a non-empty list of texts."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise ValueError(f"must be a text or a non-empty list of texts, not {value!r}")
    return tuple(items)


_HEX = re.compile(r"#([0-9a-fA-F]{6})")


def colour(value: Any) -> tuple[int, int, int]:
    """An RGB colour: "#rrggbb" or [r, g, b] with 0-255 components."""
    if isinstance(value, str) and (m := _HEX.fullmatch(value)):
        n = int(m.group(1), 16)
        return (n >> 16, (n >> 8) & 255, n & 255)
    if (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    ):
        return (value[0], value[1], value[2])
    raise ValueError(f'must be "#rrggbb" or [r, g, b] with 0-255 values, not {value!r}')
