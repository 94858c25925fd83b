"""A picture's star rating and colour label, as Lightroom, darktable, digiKam and cameras write them in
XMP (`xmp:Rating`, `xmp:Label`): from the picture's own XMP, or from its XMP sidecar, which wins (as in
Lightroom). Read with a scan of the packet: the two properties are plain values in every writer's
serialisation, as an attribute or an element."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

MAX_SIDECAR_BYTES: Final = 16 << 20  # as a group's sidecar (run/group.py): a sidecar is a few KB
_RATING: Final = re.compile(rb"xmp:Rating\s*(?:=\s*[\"']|>)\s*(-?\d+)")
_LABEL: Final = re.compile(rb"xmp:Label\s*(?:=\s*\"([^\"]*)\"|=\s*'([^']*)'|>([^<]*)<)")


@dataclass(frozen=True)
class Rated:
    """The rating (-1 rejected, 0 unrated, 1-5 stars) and label, and where each was read."""

    rating: int | None = None
    label: str | None = None
    rating_from: str | None = None
    label_from: str | None = None


NOT_RATED: Final = Rated()


def _read(xmp: bytes) -> tuple[int | None, str | None]:
    rating = _RATING.search(xmp)
    label = _LABEL.search(xmp)
    raw = next((g for g in label.groups() if g is not None), None) if label else None
    text = raw.decode("utf-8", "replace").strip() if raw else ""
    value = int(rating.group(1)) if rating else None
    return (value if value is None or -1 <= value <= 5 else None), text or None


def sidecar_beside(picture: Path) -> Path | None:
    """The picture's XMP sidecar: `{name}.xmp` (this very file's) before `{stem}.xmp`, either case."""
    for name in (picture.name, picture.stem):
        for ext in (".xmp", ".XMP"):
            candidate = picture.with_name(name + ext)
            if candidate.is_file():
                return candidate
    return None


def rated(own_xmp: bytes | None, picture: Path | None) -> Rated:
    """The rating and label: the sidecar's where it says them, else the picture's own XMP."""
    rating, label = _read(own_xmp) if own_xmp else (None, None)
    rating_from = "the picture's XMP" if rating is not None else None
    label_from = "the picture's XMP" if label is not None else None
    sidecar = sidecar_beside(picture) if picture is not None else None
    if sidecar is not None:
        try:
            with sidecar.open("rb") as fp:
                data = fp.read(MAX_SIDECAR_BYTES + 1)
        except OSError:
            data = b""
        if len(data) <= MAX_SIDECAR_BYTES:
            side_rating, side_label = _read(data)
            if side_rating is not None:
                rating, rating_from = side_rating, f"the sidecar {sidecar.name}"
            if side_label is not None:
                label, label_from = side_label, f"the sidecar {sidecar.name}"
    return Rated(rating, label, rating_from, label_from)
