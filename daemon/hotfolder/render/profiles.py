"""ICC profiles that say what pixels are: a RAW render's (sRGB, Adobe RGB, ProPhoto RGB), and any
colour an NCLX box, a PNG cICP chunk or EXIF describes (Display P3, BT.2020, PQ, HLG, ...).

lcms, through Pillow, builds only sRGB, LAB and XYZ profiles (ImageCms.createProfile), and no
maintained Python package writes RGB profiles; these are the small ICC structure written from the
published constants: matrix/TRC profiles, v2 for the RAW spaces, v4.4 for the rest (primaries as a
matrix adapted to D50 by Bradford, with chad; SDR transfers as parametric curves, PQ and HLG
tabulated, as the ICC's own BT.2100 profiles do; a cicp tag saying the H.273 code points). The
transforms themselves stay lcms' and libvips' work: these bytes only describe pixels.
"""

from __future__ import annotations

import struct
from functools import cache
from typing import Any, Final

from hotfolder.decide.colourspace import PRIMARIES, Cicp, ColourSpace
from hotfolder.render import transfer as tf
from hotfolder.render.colour import srgb_profile

_D50: Final = (0.9642, 1.0, 0.8249)
# Colorants as the ICC publishes them for D50 (Bradford-adapted for Adobe RGB), and each gamma.
_SPACES: Final = {
    "adobe": (
        "Adobe RGB (1998) compatible, hotfolder",
        ((0.6097, 0.3111, 0.0195), (0.2052, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446)),
        563 / 256,
    ),
    "prophoto": (
        "ProPhoto RGB compatible, hotfolder",
        ((0.7977, 0.2880, 0.0000), (0.1352, 0.7119, 0.0000), (0.0313, 0.0001, 0.8249)),
        1.8,
    ),
}


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_))
        + ascii_
        + b"\0" * 4
        + b"\0" * 4
        + b"\0" * 3
        + b"\0" * 64
    )


def _matrix_profile(name: str, colorants: tuple[tuple[float, float, float], ...], gamma: float) -> bytes:
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [
        (b"desc", _desc(name)),
        (b"cprt", b"text\0\0\0\0No copyright, use freely\0"),
        (b"wtpt", _xyz(*_D50)),
        (b"rXYZ", _xyz(*colorants[0])),
        (b"gXYZ", _xyz(*colorants[1])),
        (b"bXYZ", _xyz(*colorants[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    return _assemble(tags, version=bytes([2, 0x10, 0, 0]))


def _assemble(tags: list[tuple[bytes, bytes]], *, version: bytes) -> bytes:
    table, body = b"", b""
    at = 128 + 4 + 12 * len(tags)
    placed: dict[bytes, int] = {}  # equal tag data stored once (three TRCs of 8 KB each otherwise)
    for sig, data in tags:
        if data not in placed:
            placed[data] = at + len(body)
            body += data + b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", placed[data], len(data))
    size = at + len(body)
    # Size, CMM, version, a display profile of RGB to XYZ, a fixed date (equal bytes every run),
    # 'acsp', platform, flags, device, attributes, perceptual intent, the D50 illuminant, creator.
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + version
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"APPL"
        + bytes(4 + 8 + 8)
        + struct.pack(">I", 0)
        + _s15(_D50[0])
        + _s15(_D50[1])
        + _s15(_D50[2])
        + b"hfld"
    )
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


@cache
def profile_for(space: str) -> bytes:
    """The ICC profile of a render developed into `space` (srgb, adobe, prophoto)."""
    if space == "srgb":
        return srgb_profile()
    name, colorants, gamma = _SPACES[space]
    return _matrix_profile(name, colorants, gamma)


# Bradford's cone response (ICC.1 Annex E), for adapting a white point to D50.
_BRADFORD: Final = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))
_TABLE_SIZE: Final = 4096  # entries of a tabulated PQ/HLG curve: below 0.1% error against the formula


def _mluc(text: str) -> bytes:
    utf16 = text.encode("utf-16-be")
    return b"mluc\0\0\0\0" + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(utf16), 28) + utf16


def _sf32(matrix: Any) -> bytes:
    return b"sf32\0\0\0\0" + b"".join(_s15(float(v)) for row in matrix for v in row)


def _curve(kind: object) -> bytes:
    """A TRC tag: parametric for the SDR transfers, a table for PQ and HLG."""
    if kind == "srgb":
        return _para(3, (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
    if kind == "bt709":  # the inverse of BT.709's OETF
        return _para(3, (1 / 0.45, 1 / 1.099, 0.099 / 1.099, 1 / 4.5, 0.081))
    if isinstance(kind, tuple):
        return _para(0, (float(kind[1]),))
    table = tf.tabulated(str(kind), _TABLE_SIZE)
    return b"curv\0\0\0\0" + struct.pack(f">I{_TABLE_SIZE}H", _TABLE_SIZE, *table)


def _para(function: int, params: tuple[float, ...]) -> bytes:
    return b"para\0\0\0\0" + struct.pack(">HH", function, 0) + b"".join(_s15(v) for v in params)


def _xyz_of(xy: tuple[float, float]) -> tuple[float, float, float]:
    x, y = xy
    return (x / y, 1.0, (1 - x - y) / y)


def rgb_to_xyz(xys: tuple[tuple[float, float], ...]) -> Any:
    """The RGB → XYZ matrix (Y of white = 1) of primaries and a white point given as xy (numpy 3x3)."""
    import numpy as np  # noqa: PLC0415 - only when a profile or a tone map is made

    p = np.array([_xyz_of(xy) for xy in xys[:3]], dtype=np.float64).T
    s = np.linalg.solve(p, np.array(_xyz_of(xys[3])))
    return p * s


def adaptation(white: tuple[float, float], to: tuple[float, float, float] = _D50) -> Any:
    """Bradford adaptation of XYZ from this white to another (D50: the chad tag), numpy 3x3."""
    import numpy as np  # noqa: PLC0415

    bradford = np.array(_BRADFORD)
    src, dst = bradford @ np.array(_xyz_of(white)), bradford @ np.array(to)
    return np.linalg.inv(bradford) @ np.diag(dst / src) @ bradford


def _v4_profile(name: str, xys: tuple[tuple[float, float], ...], kind: object, cicp: Cicp | None) -> bytes:
    chad = adaptation(xys[3])
    m = chad @ rgb_to_xyz(xys)
    curve = _curve(kind)
    tags = [
        (b"desc", _mluc(name)),
        (b"cprt", _mluc("No copyright, use freely")),
        (b"wtpt", _xyz(*_D50)),
        (b"chad", _sf32(chad)),
        (b"rXYZ", _xyz(m[0][0], m[1][0], m[2][0])),
        (b"gXYZ", _xyz(m[0][1], m[1][1], m[2][1])),
        (b"bXYZ", _xyz(m[0][2], m[1][2], m[2][2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    if cicp is not None:  # RGB pixels: matrix 0, full range (ICC.1:2022 cicp tag)
        tags.append((b"cicp", b"cicp\0\0\0\0" + bytes([cicp.primaries, cicp.transfer, 0, 1])))
    return _assemble(tags, version=bytes([4, 0x40, 0, 0]))


@cache
def profile_of(colour: ColourSpace) -> bytes | None:
    """The ICC profile of a colour that came without one (NCLX, cICP, EXIF), or None for sRGB."""
    if not colour.needs_profile:
        return None
    if colour.origin == "exif":
        return profile_for("adobe")
    assert colour.cicp is not None
    name, xys = colour.primaries or PRIMARIES[colour.cicp.primaries]
    # Named by code, not by the transfer's name: colour() takes a description saying "sRGB" for sRGB.
    label = f"{name}, H.273 transfer {colour.cicp.transfer}, hotfolder"
    return _v4_profile(label, xys, colour.transfer, colour.cicp)
