"""Output path templates: our own small parser (never str.format), fallbacks and sanitising.

Syntax: literal text with fields in braces. A field is a chain of alternatives separated by
``|``; each alternative is a field name or a quoted literal (``'unknown'``), and the first one
with a value wins: ``{model|make|'unknown'}``. ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from hotfolder.core.tempnames import MAX_NAME_BYTES
from hotfolder.errors import InputError

# Fields every job can fill. `relpath`, `reldir` and `taken` (through its format) may hold
# folders; every other value is one path component.
FIELDS: Final[frozenset[str]] = frozenset(
    {
        "stem",
        "ext",
        "name",
        "relpath",
        "reldir",
        "watch",
        "rule",
        "make",
        "model",
        "camera",
        "width",
        "height",
        "hash8",
        "seq",
        "taken",
        "group",
        "paired",
        "rating",
        "label",
    }
)
MULTI_COMPONENT: Final[frozenset[str]] = frozenset({"relpath", "reldir", "taken"})
# Fields whose value may be empty rather than missing: {reldir} of a file at the watch root.
MAY_BE_EMPTY: Final[frozenset[str]] = frozenset({"reldir"})
# strftime directives with a meaning on every platform (C99 and Python's %f); anything else
# (%Q, %K) would be copied literally into folder names by glibc.
_DATE_DIRECTIVES: Final = frozenset("aAbBcdHIjmMpSUwWxXyYzZfGuVeCgDFhnrRtT%")
DATED: Final[frozenset[str]] = frozenset({"taken"})  # fields that take a strftime format: {taken:%Y/%m}
DEFAULT_DATE_FORMAT: Final = "%Y-%m-%d"

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateSyntaxError(ValueError):
    """The template text cannot be parsed or names an unknown field."""


class MissingFieldError(InputError):
    """No alternative of a field had a value for this file."""


@dataclass(frozen=True)
class Literal:
    text: str


@dataclass(frozen=True)
class When:
    """A date-time value with the sub-second digits the camera wrote (for %f)."""

    at: datetime
    subsec: str = ""

    def format(self, spec: str) -> str:
        return self.at.strftime(spec.replace("%f", self.subsec or "0"))


Value = str | When | None


@dataclass(frozen=True)
class Field:
    """A chain of alternatives: each a field name (with an optional format) or a quoted constant."""

    alternatives: tuple[tuple[str, bool], ...]
    specs: tuple[str | None, ...] = ()

    @property
    def source(self) -> str:
        return "|".join(f"'{v}'" if quoted else v for v, quoted in self.alternatives)


@dataclass(frozen=True)
class Template:
    text: str
    parts: tuple[Literal | Field, ...]

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(
            v for p in self.parts if isinstance(p, Field) for v, quoted in p.alternatives if not quoted
        )


def parse(text: str, *, known: frozenset[str] = FIELDS, path: bool = True) -> Template:
    """Parse a template; raise TemplateSyntaxError naming the position and the problem.
    path=False: a text (a stamp's caption), not a path: '/' and '..' are just characters."""
    parts: list[Literal | Field] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if text.startswith(("{{", "}}"), i):
            buf.append(ch)
            i += 2
        elif ch == "}":
            raise TemplateSyntaxError(f"unmatched '}}' at position {i + 1} in {text!r}")
        elif ch == "{":
            end = text.find("}", i)
            if end < 0:
                raise TemplateSyntaxError(f"unclosed '{{' at position {i + 1} in {text!r}")
            if buf:
                parts.append(Literal("".join(buf)))
                buf = []
            parts.append(_parse_field(text[i + 1 : end], text, known))
            i = end + 1
        else:
            buf.append(ch)
            i += 1
    if buf:
        parts.append(Literal("".join(buf)))
    template = Template(text, tuple(parts))
    if path:
        _check_fixed_text(template)
    return template


def _parse_field(body: str, text: str, known: frozenset[str]) -> Field:
    alternatives: list[tuple[str, bool]] = []
    specs: list[str | None] = []
    for raw in body.split("|"):
        alt = raw.strip()
        name, colon, spec = alt.partition(":")
        if len(alt) >= 2 and alt[0] == alt[-1] == "'":
            alternatives.append((alt[1:-1], True))
            specs.append(None)
        elif _IDENT.fullmatch(name):
            if name not in known:
                raise TemplateSyntaxError(
                    f"unknown field {{{name}}} in {text!r}; known fields: {', '.join(sorted(known))}"
                )
            if colon and name not in DATED:
                raise TemplateSyntaxError(
                    f"{{{name}}} takes no format in {text!r}; only {{taken:%Y-%m-%d}} does"
                )
            if colon:
                _check_date_format(spec, text)
            alternatives.append((name, False))
            specs.append(spec if colon else None)
        else:
            raise TemplateSyntaxError(f"bad field {{{body}}} in {text!r}: expected a name or a 'quoted' text")
    return Field(tuple(alternatives), tuple(specs))


def _check_date_format(spec: str, text: str) -> None:
    if not spec or "%" not in spec:
        raise TemplateSyntaxError(f"empty or directive-less date format {spec!r} in {text!r}")
    for directive in re.findall(r"%[-_0^#]?(.?)", spec):
        if directive not in _DATE_DIRECTIVES:
            raise TemplateSyntaxError(
                f"unknown date directive %{directive} in {spec!r} of {text!r}; "
                "use %Y, %m, %d, %H, %M, %S, %f, ..."
            )
    try:
        When(datetime(2001, 2, 3, 4, 5, 6), "7").format(spec)
    except ValueError as exc:
        raise TemplateSyntaxError(f"bad date format {spec!r} in {text!r}: {exc}") from None


def _check_fixed_text(template: Template) -> None:
    text = template.text
    if text.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", text):
        raise TemplateSyntaxError(f"{text!r} is absolute; output paths are relative to output_root")
    if ".." in text.replace("\\", "/").split("/"):
        raise TemplateSyntaxError(f"{text!r} climbs out of output_root with '..'")
    # Rendering with harmless values exposes what the template's own text does to the path.
    try:
        probe = render(
            template, {f: When(datetime(2001, 2, 3)) if f in DATED else "x" for f in template.fields}
        )
    except MissingFieldError as exc:
        raise TemplateSyntaxError(str(exc)) from None
    if not probe:
        raise TemplateSyntaxError(f"{text!r} renders to an empty path")


def render(template: Template, values: Mapping[str, Value]) -> str:
    """Fill a template with sanitised values; raise MissingFieldError when a chain has no value."""
    out: list[str] = []
    for part in template.parts:
        if isinstance(part, Literal):
            out.append(part.text)
            continue
        empty = False
        for (value, quoted), spec in zip(
            part.alternatives, part.specs or [None] * len(part.alternatives), strict=True
        ):
            if quoted:
                out.append(sanitise_component(value))
                break
            got = values.get(value)
            if isinstance(got, When):
                got = got.format(spec or DEFAULT_DATE_FORMAT)
            if got:
                out.append(sanitise_value(value, got))
                break
            empty = empty or (got == "" and value in MAY_BE_EMPTY)
        else:
            if not empty:
                raise MissingFieldError(f"template {template.text!r}: no value for {{{part.source}}}")
    return normalise("".join(out))


def render_text(template: Template, values: Mapping[str, Value]) -> str:
    """Fill a text template (a stamp): the same fields and fallbacks as a path, but no path rules;
    only control characters other than line breaks are removed."""
    out: list[str] = []
    for part in template.parts:
        if isinstance(part, Literal):
            out.append(part.text)
            continue
        for (value, quoted), spec in zip(
            part.alternatives, part.specs or [None] * len(part.alternatives), strict=True
        ):
            got = value if quoted else values.get(value)
            if isinstance(got, When):
                got = got.format(spec or DEFAULT_DATE_FORMAT)
            if got:
                out.append(got)
                break
        else:
            raise MissingFieldError(f"stamp {template.text!r}: no value for {{{part.source}}}")
    text = "".join(out)
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in {"Cc", "Cf"}).strip()


def sanitise_component(value: str) -> str:
    """Make one path component safe: no separators, control or format characters, '.' or '..'."""
    cleaned = "".join(
        "_" if ch in "/\\" or unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch for ch in value
    ).strip()
    if cleaned in {"", ".", ".."}:
        cleaned = cleaned.replace(".", "_") or "_"
    return _cap(cleaned)


def sanitise_value(field: str, value: str) -> str:
    """Sanitise a field's value; fields that carry folders keep their separators, safely."""
    if field in MULTI_COMPONENT:
        return "/".join(sanitise_component(c) for c in value.replace("\\", "/").split("/") if c)
    return sanitise_component(value)


def normalise(path: str) -> str:
    """Collapse empty components and cap each at 255 bytes; the result is relative and safe."""
    parts = [_cap(c) for c in path.replace("\\", "/").split("/") if c and c != "."]
    if any(c == ".." for c in parts):
        raise MissingFieldError(f"output path {path!r} would climb out of output_root")
    return "/".join(parts)


def _cap(component: str) -> str:
    encoded = component.encode("utf-8", "surrogateescape")
    if len(encoded) <= MAX_NAME_BYTES:
        return component
    # Keep the extension: a capped name must still say what it is.
    _, dot, ext = component.rpartition(".")
    tail = (dot + ext).encode("utf-8", "surrogateescape") if dot and len(ext) <= 16 else b""
    head = encoded[: MAX_NAME_BYTES - len(tail)].decode("utf-8", "ignore")
    return head + tail.decode("utf-8", "surrogateescape")


def camera(make: str | None, model: str | None) -> str | None:
    """Make and Model without repeating the make: 'Canon EOS 7D', not 'Canon Canon EOS 7D'."""
    make, model = (make or "").strip(), (model or "").strip()
    if not model:
        return make or None
    first = make.split()[0].lower() if make else ""
    if not first or model.lower().startswith(first):
        return model
    return f"{make.split()[0]} {model}" if make.isupper() or len(make.split()) > 1 else f"{make} {model}"
