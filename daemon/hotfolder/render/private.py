"""What an output whose options strip them must not say (GPS and place names, serial numbers, the
owner's name, the MakerNote), and the check that a written file does not: its metadata read back by
Pillow's own parsers and a plain scan of its XMP, not by the code that removed them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from PIL import Image, ImageFile

from hotfolder.core.exiftiff import TAG_EXIF_IFD, TAG_GPS_IFD, TAG_MAKERNOTE, TAGS_OWNER, TAGS_SERIALS
from hotfolder.render.stamp import IPTC_LOCATION
from hotfolder.settings.outputs import Output

_TAG_NAMES: Final = {0xA430: "CameraOwnerName", 0xA431: "BodySerialNumber", 0xA435: "LensSerialNumber",
                     0xC62F: "CameraSerialNumber", TAG_MAKERNOTE: "MakerNote"}  # fmt: skip


def private_tags(output: Output) -> frozenset[int]:
    """The EXIF tags this output's options remove: serial numbers, the owner's name, the MakerNote."""
    tags: set[int] = set()
    if output.serials == "strip":
        tags |= TAGS_SERIALS
    if output.owner == "strip":
        tags |= TAGS_OWNER
    if output.makernote == "strip":
        tags.add(TAG_MAKERNOTE)
    return frozenset(tags)


def _names(*local: str) -> re.Pattern[bytes]:
    """An XMP property of one of these local names, as an element or an attribute, any prefix."""
    return re.compile(rb"[<\s][\w.-]+:(?:" + b"|".join(n.encode() for n in local) + rb")[\s=>/]")


_XMP_GPS: Final = re.compile(rb"[<\s][\w.-]+:GPS\w*[\s=>/]")
_XMP_PLACE: Final = _names(
    "City", "State", "Country", "CountryCode", "Location", "LocationCreated", "LocationShown"
)
_XMP_SERIALS: Final = _names("SerialNumber", "LensSerialNumber", "BodySerialNumber")
_XMP_OWNER: Final = _names("OwnerName", "CameraOwnerName")


def leaks(
    exif: Image.Exif | None, xmp: bytes | None, iptc: Mapping[tuple[int, int], object] | None, output: Output
) -> list[str]:
    """What the written file still says that its options strip (empty: nothing)."""
    found = []
    if exif is not None:
        if output.gps == "strip" and exif.get_ifd(TAG_GPS_IFD):
            found.append("EXIF GPS")
        inner = exif.get_ifd(TAG_EXIF_IFD)
        found += [f"EXIF {_TAG_NAMES[t]}" for t in sorted(private_tags(output)) if t in exif or t in inner]
    if xmp:
        checks = (
            ("gps", _XMP_GPS, "XMP GPS"),
            ("gps", _XMP_PLACE, "XMP place names"),
            ("serials", _XMP_SERIALS, "XMP serial numbers"),
            ("owner", _XMP_OWNER, "XMP owner name"),
        )
        found += [
            what
            for option, pattern, what in checks
            if getattr(output, option) == "strip" and pattern.search(xmp)
        ]
    if iptc and output.gps == "strip" and any(r == 2 and n in IPTC_LOCATION for r, n in iptc):
        found.append("IPTC place names")
    return found


def leaks_in(im: ImageFile.ImageFile, output: Output) -> list[str]:
    """leaks() of a written file as Pillow opened it."""
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode()
    return leaks(im.getexif(), xmp if isinstance(xmp, bytes) else None, _iptc_of(im), output)


def _iptc_of(im: ImageFile.ImageFile) -> dict[tuple[int, int], bytes]:
    """The IIM datasets of a written JPEG (Photoshop resource 0x0404 in APP13) or TIFF (tag 33723), read
    by a scan of their own (not Pillow's IPTC plugin: a decoder hotfolder does not otherwise load)."""
    block = b""
    if im.format in ("JPEG", "MPO"):
        resources = im.info.get("photoshop")
        if isinstance(resources, dict):
            block = resources.get(0x0404, b"") or b""
    elif im.format == "TIFF":
        raw = im.tag_v2.get(33723) if hasattr(im, "tag_v2") else None
        block = raw if isinstance(raw, bytes) else bytes(raw or b"") if isinstance(raw, tuple) else b""
    found: dict[tuple[int, int], bytes] = {}
    pos = 0
    while pos + 5 <= len(block) and block[pos] == 0x1C:
        length = int.from_bytes(block[pos + 3 : pos + 5], "big")
        if length & 0x8000:
            break
        found[(block[pos + 1], block[pos + 2])] = block[pos + 5 : pos + 5 + length]
        pos += 5 + length
    return found


def strips_anything(output: Output) -> bool:
    """Whether the output's options strip something the check must look for."""
    return any(getattr(output, k) == "strip" for k in ("gps", "serials", "owner", "makernote"))
