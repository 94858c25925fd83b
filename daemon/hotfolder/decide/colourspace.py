"""What a source's colour is, decided once: primaries, transfer, range, HDR or not, and what said so.

ICC, an NCLX box (HEIF, AVIF), a PNG cICP chunk or the EXIF ColorSpace / Interop index (Adobe RGB
camera JPEGs are often untagged) may describe it; every output reads this one decision. The code
points are ITU-T H.273's (the ones NCLX and cICP carry).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

from PIL import ExifTags, Image

# H.273 colour primaries: (red, green, blue, white) as CIE 1931 xy.
_D65: Final = (0.3127, 0.3290)
PRIMARIES: Final[dict[int, tuple[str, tuple[tuple[float, float], ...]]]] = {
    1: ("BT.709 (sRGB)", ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), _D65)),
    4: ("BT.470 M", ((0.670, 0.330), (0.210, 0.710), (0.140, 0.080), (0.310, 0.316))),
    5: ("BT.601 625", ((0.640, 0.330), (0.290, 0.600), (0.150, 0.060), _D65)),
    6: ("BT.601 525", ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), _D65)),
    7: ("SMPTE 240M", ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), _D65)),
    9: ("BT.2020", ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), _D65)),
    11: ("DCI-P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.314, 0.351))),
    12: ("Display P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), _D65)),
    22: ("EBU 3213", ((0.630, 0.340), (0.295, 0.605), (0.155, 0.077), _D65)),
}
# Adobe RGB (1998) has no H.273 code; EXIF names it. Kept here so one table owns every primaries set.
ADOBE_RGB: Final = ("Adobe RGB (1998)", ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060), _D65))

# Primaries within 1% of sRGB's: taken as sRGB, as they always were (logged when not exactly 1).
SRGB_LIKE_PRIMARIES: Final = frozenset({1, 5, 6, 7})

PQ: Final = 16  # SMPTE ST 2084 (BT.2100 PQ)
HLG: Final = 18  # ARIB STD-B67 (BT.2100 HLG)
SRGB_TRANSFER: Final = 13
# H.273 transfer → what the display applies: ("srgb" | "bt709" | ("gamma", g) | "pq" | "hlg", name).
TRANSFERS: Final[dict[int, tuple[Any, str]]] = {
    1: ("bt709", "BT.709"),
    4: (("gamma", 2.2), "gamma 2.2"),
    5: (("gamma", 2.8), "gamma 2.8"),
    6: ("bt709", "BT.601"),
    8: (("gamma", 1.0), "linear"),
    13: ("srgb", "sRGB"),
    14: ("bt709", "BT.2020 10-bit"),
    15: ("bt709", "BT.2020 12-bit"),
    PQ: ("pq", "PQ (SMPTE ST 2084)"),
    HLG: ("hlg", "HLG (ARIB STD-B67)"),
}
SRGB_LIKE_TRANSFERS: Final = frozenset({1, 6, 13, 14, 15})
# EXIF ColorSpace (0xA001): 1 sRGB, 2 Adobe RGB (written by some cameras), 0xFFFF uncalibrated;
# DCF's Adobe RGB files are "uncalibrated" with Interop index R03.
_EXIF_SRGB, _EXIF_ADOBE, _EXIF_UNCALIBRATED = 1, 2, 0xFFFF


@dataclass(frozen=True)
class Cicp:
    """H.273 code points as NCLX and cICP carry them."""

    primaries: int
    transfer: int
    matrix: int
    full_range: bool = True

    @classmethod
    def from_nclx(cls, nclx: dict[str, Any]) -> Cicp:
        """From pillow-heif's nclx_profile dict."""
        return cls(
            primaries=int(nclx.get("color_primaries", 2)),
            transfer=int(nclx.get("transfer_characteristics", 2)),
            matrix=int(nclx.get("matrix_coefficients", 2)),
            full_range=bool(nclx.get("full_range_flag", 1)),
        )

    def nclx_options(self) -> dict[str, int]:
        """pillow-heif's save keywords for this NCLX."""
        return {
            "color_primaries": self.primaries,
            "transfer_characteristics": self.transfer,
            "matrix_coefficients": self.matrix,
            "full_range_flag": int(self.full_range),
        }

    @property
    def words(self) -> str:
        p = PRIMARIES.get(self.primaries, (f"primaries {self.primaries}",))[0]
        t = TRANSFERS.get(self.transfer, (None, f"transfer {self.transfer}"))[1]
        return f"{p}, {t} (CICP {self.primaries}/{self.transfer}/{self.matrix})"


@dataclass(frozen=True)
class ColourSpace:
    """The source's colour as every output reads it.

    `origin`: what said it ("icc", "nclx", "cicp", "exif", or "none": nothing did, taken as sRGB).
    `cicp`: the H.273 description (from NCLX or cICP, or an ICC profile's cicp tag), when there is one.
    `primaries`: the primaries' name and xy set, when not told by an ICC profile.
    `approximated`: why what was said is taken as something near it (logged), or None.
    """

    origin: str
    cicp: Cicp | None = None
    primaries: tuple[str, tuple[tuple[float, float], ...]] | None = None
    approximated: str | None = None

    @property
    def transfer(self) -> Any:
        """The transfer kind: "srgb", "bt709", ("gamma", g), "pq" or "hlg"."""
        if self.cicp is None or self.cicp.transfer not in TRANSFERS:
            return "srgb"
        return TRANSFERS[self.cicp.transfer][0]

    @property
    def hdr(self) -> bool:
        return self.transfer in ("pq", "hlg")

    @property
    def needs_profile(self) -> bool:
        """Whether no ICC profile came with it and sRGB does not describe it: one is built from this."""
        return self.origin in ("nclx", "cicp", "exif") and not self.srgb

    @property
    def srgb(self) -> bool:
        """Taken as sRGB (exactly, or approximated and logged)."""
        if self.origin in ("none", "icc"):
            return self.origin == "none"
        if self.primaries is not None and self.primaries[0] == ADOBE_RGB[0]:
            return False
        assert self.cicp is not None
        return self.cicp.primaries in SRGB_LIKE_PRIMARIES and self.cicp.transfer in SRGB_LIKE_TRANSFERS

    @property
    def words(self) -> str:
        """What it is, for logs and explain."""
        if self.origin == "icc":
            return "ICC profile" + (f" ({self.cicp.words})" if self.cicp else "")
        if self.origin == "exif":
            return "Adobe RGB (1998), from EXIF (no ICC profile)"
        if self.cicp is None:
            return "sRGB (nothing describes it)"
        return f"{self.cicp.words}, from {'NCLX' if self.origin == 'nclx' else 'PNG cICP'}"


SRGB: Final = ColourSpace(origin="none")


def describe(
    *,
    icc: bytes | None,
    nclx: Cicp | None,
    png_cicp: Cicp | None,
    exif_space: int | None,
    interop: str | None,
) -> ColourSpace:
    """Decide the source's colour from everything that may say it.

    An HDR transfer in NCLX or cICP wins over an ICC profile (a v2 ICC cannot say PQ or HLG, and HDR
    files carry one only as a fallback); otherwise an ICC profile is what colour-managed readers use."""
    said = png_cicp or nclx
    origin = "cicp" if png_cicp else "nclx"
    if said is not None and said.transfer in (PQ, HLG):
        return _from_cicp(said, origin)
    if icc:
        return ColourSpace(origin="icc", cicp=icc_cicp(icc))
    if said is not None:
        return _from_cicp(said, origin)
    adobe = exif_space == _EXIF_ADOBE or (exif_space == _EXIF_UNCALIBRATED and interop == "R03")
    if adobe:
        return ColourSpace(origin="exif", primaries=ADOBE_RGB)
    return SRGB


def source_colour(im: Image.Image, data: bytes, fmt: str) -> ColourSpace:
    """The colour of an opened picture (its ICC, NCLX, cICP and EXIF read here), as describe() decides."""
    icc = im.info.get("icc_profile") or None
    nclx_info = im.info.get("nclx_profile")
    if fmt == "heif":
        nclx = Cicp.from_nclx(nclx_info) if isinstance(nclx_info, dict) else None
    else:
        nclx = bmff_nclx(data) if fmt == "avif" else None
    space, interop = _exif_colour(im) if icc is None and nclx is None else (None, None)
    return describe(
        icc=icc,
        nclx=nclx,
        png_cicp=png_cicp(data) if fmt == "png" else None,
        exif_space=space,
        interop=interop,
    )


def _exif_colour(im: Image.Image) -> tuple[int | None, str | None]:
    """EXIF's ColorSpace and Interop index (R03: Adobe RGB), which untagged camera JPEGs rely on."""
    try:
        exif = im.getexif()
        space = exif.get_ifd(ExifTags.IFD.Exif).get(0xA001)
        interop = exif.get_ifd(ExifTags.IFD.Interop).get(0x0001)
    except (ValueError, SyntaxError, OSError, struct.error, KeyError, TypeError):
        return None, None  # the damaged EXIF is reported where it is captured
    return (
        space if isinstance(space, int) else None,
        interop.strip("\0 ") if isinstance(interop, str) else None,
    )


def _from_cicp(cicp: Cicp, origin: str) -> ColourSpace:
    notes = []
    primaries = PRIMARIES.get(cicp.primaries)
    if primaries is None:
        notes.append(f"primaries {cicp.primaries} taken as BT.709 (sRGB)")
        primaries = PRIMARIES[1]
    if cicp.transfer not in TRANSFERS:
        notes.append(f"transfer {cicp.transfer} taken as sRGB")
    elif (
        cicp.primaries in SRGB_LIKE_PRIMARIES
        and cicp.transfer in SRGB_LIKE_TRANSFERS
        and (cicp.primaries, cicp.transfer) != (1, SRGB_TRANSFER)
    ):
        notes.append(f"{cicp.words} written as sRGB (within 1%)")
    return ColourSpace(origin=origin, cicp=cicp, primaries=primaries, approximated="; ".join(notes) or None)


def png_cicp(data: bytes) -> Cicp | None:
    """A PNG's cICP chunk (PNG third edition), read from the chunks before the first IDAT."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IDAT":
            return None
        if kind == b"cICP" and length == 4 and pos + 12 <= len(data):
            p, t, m, full = data[pos + 8 : pos + 12]
            return Cicp(primaries=p, transfer=t, matrix=m, full_range=bool(full))
        pos += 12 + length
    return None


def bmff_nclx(data: bytes) -> Cicp | None:
    """The first NCLX colour box of an AVIF/HEIF's item properties (the primary image's, in every
    file seen: libavif and libheif write the primary's properties first)."""
    at = data.find(b"colrnclx", 0, 1 << 20)
    if at < 4 or at + 15 > len(data):
        return None
    p, t, m = struct.unpack_from(">HHH", data, at + 8)
    return Cicp(primaries=p, transfer=t, matrix=m, full_range=bool(data[at + 14] & 0x80))


def icc_cicp(icc: bytes) -> Cicp | None:
    """The cicp tag of an ICC v4.4 profile (how an ICC profile says PQ or HLG), or None."""
    if len(icc) < 132:
        return None
    count = struct.unpack_from(">I", icc, 128)[0]
    for i in range(min(count, 200)):
        at = 132 + 12 * i
        if at + 12 > len(icc):
            return None
        sig, offset, size = struct.unpack_from(">4sII", icc, at)
        if sig == b"cicp" and size >= 12 and offset + 12 <= len(icc) and icc[offset : offset + 4] == b"cicp":
            p, t, m, full = icc[offset + 8 : offset + 12]
            return Cicp(primaries=p, transfer=t, matrix=m, full_range=bool(full))
    return None
