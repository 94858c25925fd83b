"""Print resolution: read from what the source says (JFIF, pHYs, TIFF tags, BMP, EXIF), carried to
every output that can hold one, in the source's unit, scaled with the pixels when resized.

A source without a resolution gets none invented (TIFF, which requires the tags, says "no
absolute unit", 1/1). `dpi = N` on an output sets it instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

INCH: Final = "inch"
CM: Final = "cm"
_UNITS_TIFF: Final = {2: INCH, 3: CM}  # ResolutionUnit (TIFF and EXIF); 1 = no absolute unit
_UNITS_JFIF: Final = {1: INCH, 2: CM}
TAG_X: Final = 282
TAG_Y: Final = 283
TAG_UNIT: Final = 296


@dataclass(frozen=True)
class Resolution:
    """Pixels per inch or per centimetre, per axis."""

    x: float
    y: float
    unit: str = INCH

    def scaled(self, sx: float, sy: float) -> Resolution:
        """The same physical size after resizing by (sx, sy): the resolution follows the pixels."""
        return Resolution(round(self.x * sx, 2), round(self.y * sy, 2), self.unit)

    def swapped(self) -> Resolution:
        """After a quarter turn, the axes trade places."""
        return Resolution(self.y, self.x, self.unit)

    @property
    def per_inch(self) -> tuple[float, float]:
        factor = 2.54 if self.unit == CM else 1.0
        return (self.x * factor, self.y * factor)

    @property
    def tiff_unit(self) -> int:
        return 3 if self.unit == CM else 2

    @property
    def jfif_unit(self) -> int:
        return 2 if self.unit == CM else 1


def rational(value: float) -> tuple[int, int]:
    """A resolution as a TIFF RATIONAL (exact to the 0.01 it is kept at)."""
    frac = Fraction(value).limit_denominator(100)
    return (frac.numerator, frac.denominator)


def _positive(x: Any, y: Any) -> tuple[float, float] | None:
    try:
        fx, fy = float(x), float(y)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return (fx, fy) if fx > 0 and fy > 0 else None


def from_tags(tags: Any) -> Resolution | None:
    """From TIFF/EXIF XResolution, YResolution and ResolutionUnit (2 inch by default, 3 cm)."""
    try:
        found = _positive(tags.get(TAG_X), tags.get(TAG_Y))
        unit = _UNITS_TIFF.get(int(tags.get(TAG_UNIT, 2)))
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return Resolution(round(found[0], 2), round(found[1], 2), unit) if found and unit else None


def from_per_metre(x: float, y: float) -> Resolution:
    """PNG and BMP store pixels per metre: an exact number of per-centimetre stays centimetres, else inches
    (snapped to a whole dpi when within what the integer metre count can say: 600 dpi is 23622 px/m)."""
    if round(x) % 100 == 0 and round(y) % 100 == 0:
        return Resolution(round(x) / 100, round(y) / 100, CM)

    def inch(v: float) -> float:
        dpi = v * 0.0254
        return float(round(dpi)) if abs(dpi - round(dpi)) <= 0.0127 else round(dpi, 2)

    return Resolution(inch(x), inch(y), INCH)


def from_image(im: Any, exif: Any) -> Resolution | None:
    """What an opened image says of its print resolution, or None."""
    info = im.info
    if im.format in ("JPEG", "MPO"):
        unit, density = _UNITS_JFIF.get(info.get("jfif_unit", 0)), info.get("jfif_density")
        found = _positive(*density) if unit and density else None
        if found and unit:
            return Resolution(found[0], found[1], unit)
        return from_tags(exif)
    if im.format in ("PNG", "BMP"):
        dpi = info.get("dpi")
        found = _positive(*dpi) if dpi else None
        return from_per_metre(found[0] / 0.0254, found[1] / 0.0254) if found else None
    if im.format == "TIFF":
        return from_tags(getattr(im, "tag_v2", {}))
    return from_tags(exif)  # WebP, HEIF, AVIF: only EXIF can say


def png_phys(res: Resolution) -> bytes:
    """The pHYs chunk's data: pixels per metre, unit metre."""
    x, y = res.per_inch
    return struct.pack(">IIB", round(x / 0.0254), round(y / 0.0254), 1)


def with_jfif_density(jpeg: bytes, res: Resolution) -> bytes:
    """Set the JFIF APP0 density and unit (Pillow writes whole dots per inch only)."""
    at = 2
    if jpeg[at : at + 2] == b"\xff\xe0" and jpeg[at + 4 : at + 9] == b"JFIF\x00":
        patched = bytearray(jpeg)
        struct.pack_into(">BHH", patched, at + 11, res.jfif_unit, round(res.x), round(res.y))
        return bytes(patched)
    return jpeg
