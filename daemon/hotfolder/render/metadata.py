"""EXIF / XMP / ICC / IPTC captured from a decoded source, and XMP edited per output.

Raw EXIF bytes are patched in place by core/exiftiff.py rather than re-serialised: re-serialising
drops IFD1 and can corrupt MakerNotes, whose internal offsets point into the original block
(Pillow #7545).
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Final

from defusedxml import ElementTree as SafeET
from PIL import Image, TiffImagePlugin

from hotfolder.core import resolution as res
from hotfolder.core.exiftiff import (
    TAG_EXIF_IFD,
    TAG_GPS_IFD,
    TAG_IMAGE_SOURCE_DATA,
    TAG_IPTC,
    TAG_MAKERNOTE,
    TAG_ORIENTATION,
    TAG_PHOTOSHOP,
    TAG_PIXEL_X,
    TAG_PIXEL_Y,
    TIFF_STRUCTURAL,
    with_prefix,
)
from hotfolder.core.resolution import Resolution
from hotfolder.decide.colourspace import Cicp
from hotfolder.decide.sniff import DAMAGED_KEY

PHOTOSHOP_HEADER: Final = b"Photoshop 3.0\x00"


@dataclass(frozen=True)
class Metadata:
    """What a source carries, captured once before any transform touches `info`."""

    exif: bytes | None = None  # always with the b"Exif\0\0" prefix
    icc: bytes | None = None
    xmp: bytes | None = None
    photoshop: bytes | None = None  # Photoshop image resource blocks (IPTC lives in resource 0x0404)
    iptc: bytes | None = None  # raw IPTC-NAA records, when the source stores them on their own
    # H.273 colour description (HEIF/AVIF NCLX, PNG cICP), written where the output format carries one
    cicp: Cicp | None = None
    resolution: Resolution | None = None  # print resolution, in the source's unit
    layers: bytes | None = None  # Photoshop's layers (TIFF ImageSourceData), valid only for these pixels
    extra_samples: tuple[int, ...] | None = None  # TIFF ExtraSamples of channels beyond colour and alpha
    icc_dropped: str | None = None  # why the source's ICC profile could not be used (pixels taken as sRGB)

    @property
    def has_iptc(self) -> bool:
        return bool(self.photoshop or self.iptc)


def capture(im: Image.Image, damaged: list[str] | None = None) -> Metadata:
    """Take EXIF, ICC, XMP, IPTC and NCLX from a freshly opened image (a TIFF's own layout removed).
    A damaged block never costs the picture: it is recovered or dropped, and `damaged` says which."""
    info = im.info
    if damaged is not None:
        damaged.extend(info.get(DAMAGED_KEY, ()))
    exif: bytes | None = info.get("exif") or None
    ex: Image.Exif | None = None
    try:
        ex = im.getexif()
    except (ValueError, SyntaxError, OSError, struct.error) as error:
        if damaged is not None:
            damaged.append(f"exif: {error}; dropped")
        exif = None
    if ex is not None and exif is None and im.format == "TIFF":
        # TIFF keeps EXIF in its own IFD0: it is rebuilt without the TIFF's own layout tags.
        for tag in TIFF_STRUCTURAL:
            ex.pop(tag, None)
        if len(ex):
            exif = ex.tobytes()
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp") or None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    photoshop, iptc = _capture_iptc(im)
    tags = getattr(im, "tag_v2", {}) if im.format == "TIFF" else {}
    layers = tags.get(TAG_IMAGE_SOURCE_DATA)
    icc, unusable = usable_icc(info.get("icc_profile") or None, im.mode)
    if unusable is not None:
        # Dropped from `info` too: every later reader (the colour decided from it, the writers) then sees
        # a picture without a profile, converted as sRGB. It used to cost the whole picture.
        info.pop("icc_profile", None)
        if damaged is not None:
            damaged.append(f"icc: {unusable}; dropped, the pixels taken as sRGB")
    return Metadata(
        exif=with_prefix(exif) if exif else None,
        icc=icc,
        xmp=xmp,
        photoshop=photoshop,
        iptc=iptc,
        cicp=Cicp.from_nclx(nclx) if isinstance(nclx := info.get("nclx_profile"), dict) else None,
        resolution=res.from_image(im, ex if ex is not None else {}),
        layers=layers if isinstance(layers, bytes) and layers else None,
        icc_dropped=unusable,
    )


# What an image mode's pixels need of a profile (lcms' colour space signature).
_PROFILE_SPACE: Final = {
    "RGB": "RGB",
    "RGBA": "RGB",
    "RGBX": "RGB",
    "P": "RGB",
    "PA": "RGB",
    "L": "GRAY",
    "LA": "GRAY",
    "I": "GRAY",
    "I;16": "GRAY",
    "I;16B": "GRAY",
    "I;16L": "GRAY",
    "F": "GRAY",
    "CMYK": "CMYK",
    "1": "GRAY",
}


@functools.lru_cache(maxsize=16)  # a camera writes the same profile into every photo: judged once per worker
def usable_icc(icc: bytes | None, mode: str) -> tuple[bytes | None, str | None]:
    """The profile if colour management can use it on pixels of this mode, else (None, why): garbage, a
    profile cut short, or one for other pixels (grey or CMYK on RGB) cannot convert anything."""
    if not icc:
        return None, None
    if len(icc) < 132:
        return None, f"the ICC profile is {len(icc)} bytes, shorter than its own header"
    declared = struct.unpack_from(">I", icc, 0)[0]
    if declared > len(icc):
        return None, f"the ICC profile is cut short ({len(icc):,} of its {declared:,} bytes)"
    from PIL import ImageCms  # noqa: PLC0415 - only where pixels are converted

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ValueError, TypeError) as exc:
        return None, f"the ICC profile cannot be read: {exc}"
    space = str(profile.profile.xcolor_space).strip().upper()
    wanted = _PROFILE_SPACE.get(mode)
    if wanted is not None and space != wanted:
        return None, f"the ICC profile is for {space} pixels, these are {mode}"
    if wanted == "RGB":
        try:
            ImageCms.buildTransform(profile, _srgb(), "RGB", "RGB")
        except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as exc:
            return None, f"the ICC profile cannot convert to sRGB: {exc or type(exc).__name__}"
    return icc, None


_SRGB: list[Any] = []


def _srgb() -> Any:
    if not _SRGB:
        from PIL import ImageCms  # noqa: PLC0415

        _SRGB.append(ImageCms.createProfile("sRGB"))
    return _SRGB[0]


def _capture_iptc(im: Image.Image) -> tuple[bytes | None, bytes | None]:
    raw_profile = im.info.get("Raw profile type iptc")
    if isinstance(raw_profile, str):
        # ImageMagick's PNG text form: "\nIPTC profile\n   <length>\n<hex of Photoshop resources>".
        lines = raw_profile.strip().split("\n")
        with contextlib.suppress(ValueError):
            return bytes.fromhex("".join(lines[2:])) or None, None
    if im.format in {"JPEG", "MPO"}:
        for marker, payload in getattr(im, "applist", []):
            if marker == "APP13" and payload.startswith(PHOTOSHOP_HEADER):
                return payload[len(PHOTOSHOP_HEADER) :], None
        return None, None
    if im.format == "TIFF":
        tags = getattr(im, "tag_v2", {})
        return _as_bytes(tags.get(TAG_PHOTOSHOP)), _as_bytes(tags.get(TAG_IPTC))
    return None, None


def _as_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value or None
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        # IPTC stored as LONG: the bytes are the native-order dump of the values.
        return struct.pack(f"<{len(value)}I", *value) or None
    return None


def photoshop_irb(meta: Metadata) -> bytes | None:
    """Photoshop resource blocks holding the source's IPTC (built from bare IPTC if need be)."""
    if meta.photoshop:
        return meta.photoshop
    if meta.iptc:
        body = meta.iptc + (b"\x00" if len(meta.iptc) % 2 else b"")
        return b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(meta.iptc)) + body
    return None


# XMP ---------------------------------------------------------------------------------------

_NS_TIFF: Final = "http://ns.adobe.com/tiff/1.0/"
_NS_EXIF: Final = "http://ns.adobe.com/exif/1.0/"
_XMPMETA = re.compile(rb"<x:xmpmeta\b.*?</x:xmpmeta>|<rdf:RDF\b.*?</rdf:RDF>", re.DOTALL)


def parse_xmp(xmp: bytes) -> tuple[re.Match[bytes], ET.Element]:
    """The packet's x:xmpmeta (or rdf:RDF) span and its parsed tree, its prefixes registered so they
    are written back as they were. Raises ValueError when it cannot be parsed."""
    found = _XMPMETA.search(xmp)
    if found is None:
        raise ValueError("no x:xmpmeta or rdf:RDF element in the XMP packet")
    # XMP comes from untrusted files: defusedxml refuses entity expansion and external references.
    packet = found.group(0)
    try:
        for _, (prefix, uri) in SafeET.iterparse(io.BytesIO(packet), events=("start-ns",)):
            with contextlib.suppress(ValueError):  # prefixes like ns0 are reserved by ElementTree
                ET.register_namespace(prefix, uri)
        root = SafeET.fromstring(packet)
    except ET.ParseError as exc:
        raise ValueError(f"XMP is not well-formed XML: {exc}") from None
    return found, root


def edit_xmp(
    xmp: bytes,
    *,
    drop_orientation: bool,
    drop_gps: bool,
    drop_serials: bool = False,
    drop_owner: bool = False,
    drop_appended: bool = False,
) -> bytes:
    """XMP without tiff:Orientation (pixels are upright), and for privacy without exif:GPS* and the
    location names (drop_gps), the serial numbers, the owner's name; without the pointers to what a
    re-encode does not carry after its picture (drop_appended: a motion photo's video, Google's
    Container:Directory of appended items).

    Untouched bytes pass through when there is nothing to remove. Raises ValueError when the
    packet cannot be parsed: the caller then drops the XMP rather than leak what it must remove.
    """
    names: set[str] = set()
    if drop_orientation:
        names.add(f"{{{_NS_TIFF}}}Orientation")
    if drop_gps:
        names |= XMP_LOCATION
    if drop_serials:
        names |= XMP_SERIALS
    if drop_owner:
        names |= XMP_OWNER
    appended = drop_appended and any(w in xmp for w in (b"MotionPhoto", b"MicroVideo", b"Directory"))
    if not (
        (drop_gps and b"GPS" in xmp) or appended or any(n.rsplit("}", 1)[1].encode() in xmp for n in names)
    ):
        return xmp
    found, root = parse_xmp(xmp)

    def unwanted(name: str) -> bool:
        return (
            name in names
            or (drop_gps and name.startswith(f"{{{_NS_EXIF}}}GPS"))
            or (appended and (name == _CONTAINER_DIRECTORY or name.startswith(_MOTION_FIELDS)))
        )

    for parent in root.iter():
        for attr in [a for a in parent.attrib if unwanted(a)]:
            del parent.attrib[attr]
        for child in [c for c in parent if unwanted(c.tag)]:
            parent.remove(child)
    rebuilt: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return xmp[: found.start()] + rebuilt + xmp[found.end() :]


# Google's camera namespace says a motion photo (MotionPhoto*, MicroVideo*); its container namespace
# lists the items appended after the primary image (a video, an Ultra HDR gain map).
_NS_GCAMERA: Final = "http://ns.google.com/photos/1.0/camera/"
_MOTION_FIELDS: Final = (f"{{{_NS_GCAMERA}}}MotionPhoto", f"{{{_NS_GCAMERA}}}MicroVideo")
_CONTAINER_DIRECTORY: Final = "{http://ns.google.com/photos/1.0/container/}Directory"
_NS_AUX: Final = "http://ns.adobe.com/exif/1.0/aux/"
_NS_EXIFEX: Final = "http://cipa.jp/exif/1.0/"
_NS_PHOTOSHOP: Final = "http://ns.adobe.com/photoshop/1.0/"
_NS_IPTC_CORE: Final = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
_NS_IPTC_EXT: Final = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
# Where XMP says a place (besides exif:GPS*), a camera's serial numbers, and its owner.
XMP_LOCATION: Final = frozenset(
    {
        *(f"{{{_NS_PHOTOSHOP}}}{n}" for n in ("City", "State", "Country")),
        *(f"{{{_NS_IPTC_CORE}}}{n}" for n in ("Location", "CountryCode")),
        *(f"{{{_NS_IPTC_EXT}}}{n}" for n in ("LocationCreated", "LocationShown")),
    }
)
XMP_SERIALS: Final = frozenset(
    {
        *(f"{{{_NS_AUX}}}{n}" for n in ("SerialNumber", "LensSerialNumber")),
        *(f"{{{_NS_EXIFEX}}}{n}" for n in ("BodySerialNumber", "LensSerialNumber")),
    }
)
XMP_OWNER: Final = frozenset({f"{{{_NS_AUX}}}OwnerName", f"{{{_NS_EXIFEX}}}CameraOwnerName"})


def reserialise(
    raw: bytes,
    *,
    size: tuple[int, int] | None,
    orientation: int | None,
    drop_gps: bool,
    drop_orientation: bool = False,
    drop_makernote: bool = False,
    resolution: Resolution | None = None,
    drop_tags: frozenset[int] = frozenset(),
) -> bytes:
    """Rebuild EXIF with Pillow (drops IFD1; may move MakerNote data): the fallback when patching fails."""
    ex = Image.Exif()
    ex.load(raw)
    if drop_orientation:
        ex.pop(TAG_ORIENTATION, None)
    elif orientation is not None and TAG_ORIENTATION in ex:
        ex[TAG_ORIENTATION] = orientation
    if drop_gps:
        ex.pop(TAG_GPS_IFD, None)
    sub = ex.get_ifd(TAG_EXIF_IFD)
    if size is not None and sub:
        for tag, value in ((TAG_PIXEL_X, size[0]), (TAG_PIXEL_Y, size[1])):
            if tag in sub:
                sub[tag] = value
    if drop_makernote:
        sub.pop(TAG_MAKERNOTE, None)
    for tag in drop_tags:
        ex.pop(tag, None)
        sub.pop(tag, None)
    if resolution is not None and res.TAG_X in ex:
        ex[res.TAG_X], ex[res.TAG_Y] = (
            TiffImagePlugin.IFDRational(resolution.x),
            TiffImagePlugin.IFDRational(resolution.y),
        )
        ex[res.TAG_UNIT] = resolution.tiff_unit
    return with_prefix(ex.tobytes())
