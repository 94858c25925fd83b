"""ICC profiles that say what a RAW render is: sRGB (lcms' own), Adobe RGB (1998) and ProPhoto RGB.

lcms, through Pillow, builds only sRGB; the other two are plain matrix/TRC profiles (ICC v2: white
point, three colorants adapted to D50, one gamma per channel), written from their published
constants. The transforms themselves stay lcms' and libvips' work: these bytes only describe pixels.
"""

from __future__ import annotations

import struct
from functools import cache
from typing import Final

from hotfolder.render.colour import srgb_profile

_D50: Final = (0.9642, 1.0, 0.8249)
# Colorants as the ICC publishes them for D50 (Bradford-adapted for Adobe RGB), and each gamma.
_SPACES: Final = {
    "adobe": ("Adobe RGB (1998) compatible, hotfolder", ((0.6097, 0.3111, 0.0195), (0.2052, 0.6257, 0.0609),
                                                        (0.1492, 0.0632, 0.7446)), 563 / 256),
    "prophoto": ("ProPhoto RGB compatible, hotfolder", ((0.7977, 0.2880, 0.0000), (0.1352, 0.7119, 0.0000),
                                                       (0.0313, 0.0001, 0.8249)), 1.8),
}  # fmt: skip


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
    tags = [(b"desc", _desc(name)), (b"cprt", b"text\0\0\0\0No copyright, use freely\0"),
            (b"wtpt", _xyz(*_D50)), (b"rXYZ", _xyz(*colorants[0])), (b"gXYZ", _xyz(*colorants[1])),
            (b"bXYZ", _xyz(*colorants[2])), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]  # fmt: skip
    table, body = b"", b""
    at = 128 + 4 + 12 * len(tags)
    for sig, data in tags:
        table += sig + struct.pack(">II", at + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    size = at + len(body)
    # Size, CMM, version 2.1, a display profile of RGB to XYZ, a fixed date (equal bytes every run),
    # 'acsp', platform, flags, device, attributes, perceptual intent, the D50 illuminant, creator.
    header = (struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"APPL" + bytes(4 + 8 + 8)
              + struct.pack(">I", 0) + _s15(_D50[0]) + _s15(_D50[1]) + _s15(_D50[2]) + b"hfld")  # fmt: skip
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


@cache
def profile_for(space: str) -> bytes:
    """The ICC profile of a render developed into `space` (srgb, adobe, prophoto)."""
    if space == "srgb":
        return srgb_profile()
    name, colorants, gamma = _SPACES[space]
    return _matrix_profile(name, colorants, gamma)
