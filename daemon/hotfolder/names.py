"""File names that are not UTF-8 (Latin-1 from an old SMB or FTP client, a Windows ZIP).

Python hands such a name over as a str with surrogate escapes (PEP 383: byte 0xE9 becomes U+DCE9), which
is exact and reversible but cannot be encoded as UTF-8: a log line, a ledger row or a web page that tries
fails with UnicodeEncodeError. These helpers are the one place that says how such text travels:
readably for people (`caf\\xe9.jpg`), exactly for machines (the raw bytes, base64, as `<key>_bytes`).
"""

from __future__ import annotations

import base64
import codecs
import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def is_clean(text: str) -> bool:
    """Whether `text` encodes as UTF-8 (no surrogate escapes from an undecodable name)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def raw(text: str | Path) -> bytes:
    """The exact bytes a name (or any text holding one) stands for."""
    return os.fsencode(text) if isinstance(text, Path) else text.encode("utf-8", "surrogateescape")


def readable(text: str | Path) -> str:
    """Valid UTF-8 for people: undecodable bytes shown as \\xNN, everything else as it is."""
    return raw(text).decode("utf-8", "backslashreplace")


def b64(text: str | Path) -> str:
    """The raw bytes as base64, for a field that must give the name back exactly."""
    return base64.b64encode(raw(text)).decode("ascii")


def from_bytes(data: bytes) -> str:
    """Text stored as raw bytes, back as the surrogate-escaped str the file system calls gave."""
    return data.decode("utf-8", "surrogateescape")


def cut(text: str, limit: int) -> str:
    """The longest start of `text` whose raw bytes fit in `limit`, never splitting a character."""
    out, used = [], 0
    for char in text:
        size = len(raw(char))
        if used + size > limit:
            break
        out.append(char)
        used += size
    return "".join(out)


def exact(fields: Mapping[str, Any]) -> dict[str, str]:
    """`<key>_bytes` (base64 of the raw bytes) for each text field that is not UTF-8: what a reader needs
    to give such a name back exactly, beside the readable form."""
    return {
        f"{key}_bytes": b64(value)
        for key, value in fields.items()
        if isinstance(value, str | Path) and not is_clean(str(value))
    }


def portable(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` safe to write as UTF-8 (a log line, a note): names readable, lists of names too, and
    `<key>_bytes` beside each top-level one that is not UTF-8. `exact_text` reads such a field back."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, str | Path):
            out[key] = value if is_clean(str(value)) else readable(value)
        elif isinstance(value, list | tuple) and any(isinstance(v, str | Path) for v in value):
            out[key] = [readable(v) if isinstance(v, str | Path) else v for v in value]
        else:
            out[key] = value
    out.update(exact(fields))
    return out


def exact_text(fields: Mapping[str, Any], key: str) -> str:
    """A field written by `portable`, back exactly (from `<key>_bytes` where there is one)."""
    coded = fields.get(f"{key}_bytes")
    return from_bytes(base64.b64decode(coded)) if isinstance(coded, str) else str(fields[key])


def _as_hex(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler: surrogate escapes written as the \\xNN of the byte they stand for."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start : error.end]
    shown = "".join(
        f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else f"\\u{ord(c):04x}" for c in bad
    )
    return shown, error.end


def readable_streams() -> None:
    """Have stdout and stderr write a name that is not UTF-8 as \\xNN instead of raising (a `print` of
    such a path in any command used to end it with UnicodeEncodeError)."""
    codecs.register_error("hotfolder-readable", _as_hex)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="hotfolder-readable")
