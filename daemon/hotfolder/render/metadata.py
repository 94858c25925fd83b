"""EXIF / XMP / ICC: capture from a decoded source, patch raw EXIF in place, prepare per output.

Raw EXIF bytes are patched in place (Orientation, pixel dimensions, the IFD1 thumbnail) rather
than re-serialised: re-serialising drops IFD1 and can corrupt MakerNotes, whose internal offsets
point into the original block (Pillow #7545).
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Final

from defusedxml import ElementTree as SafeET
from PIL import Image, TiffImagePlugin

from hotfolder.core import resolution as res
from hotfolder.core.resolution import Resolution

EXIF_PREFIX: Final = b"Exif\x00\x00"

TAG_ORIENTATION: Final = 0x0112
TAG_IMAGE_WIDTH: Final = 0x0100
TAG_IMAGE_LENGTH: Final = 0x0101
TAG_EXIF_IFD: Final = 0x8769
TAG_PIXEL_X: Final = 0xA002
TAG_PIXEL_Y: Final = 0xA003
TAG_THUMB_OFFSET: Final = 0x0201
TAG_THUMB_LENGTH: Final = 0x0202
TAG_GPS_IFD: Final = 0x8825
TAG_MAKERNOTE: Final = 0x927C
TAG_XMP: Final = 700
TAG_IPTC: Final = 33723
TAG_PHOTOSHOP: Final = 34377
TAG_IMAGE_SOURCE_DATA: Final = 37724  # Photoshop's layers in a TIFF
PHOTOSHOP_HEADER: Final = b"Photoshop 3.0\x00"

# Tags that describe a TIFF file's own layout: meaningless (and harmful) in another file's EXIF.
TIFF_STRUCTURAL: Final = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325,
     338, 339, 347, 512, 513, 514, 515, 517, 518, 519, 520, 521, 530, 531, 532, 700, 33723, 34377, 34675,
     37724}  # ImageSourceData: Photoshop's layers, meaningless once the pixels are re-encoded
)  # fmt: skip

_TYPE_SIZES: Final = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_SHORT, _LONG = 3, 4


class ExifStructureError(ValueError):
    """The EXIF block does not follow the TIFF layout closely enough to patch it in place."""


@dataclass(frozen=True)
class Metadata:
    """What a source carries, captured once before any transform touches `info`."""

    exif: bytes | None = None  # always with the b"Exif\0\0" prefix
    icc: bytes | None = None
    xmp: bytes | None = None
    photoshop: bytes | None = None  # Photoshop image resource blocks (IPTC lives in resource 0x0404)
    iptc: bytes | None = None  # raw IPTC-NAA records, when the source stores them on their own
    nclx: dict[str, Any] | None = None  # HEIF colour description without an ICC profile
    exif_reserialised: bool = False  # the source's EXIF had to be rebuilt (PNG text, TIFF IFD)
    resolution: Resolution | None = None  # print resolution, in the source's unit
    layers: bytes | None = None  # Photoshop's layers (TIFF ImageSourceData), valid only for these pixels
    extra_samples: tuple[int, ...] | None = None  # TIFF ExtraSamples of channels beyond colour and alpha

    @property
    def has_iptc(self) -> bool:
        return bool(self.photoshop or self.iptc)


# Where identify() leaves what recover_raw_profiles() found (writers never see `info` implicitly).
DAMAGED_KEY: Final = "hotfolder:damaged"


class MetadataDamageError(ValueError):
    """A metadata block that cannot be read whole: what can be recovered is, the rest is dropped."""


def capture(im: Image.Image, damaged: list[str] | None = None) -> Metadata:
    """Take EXIF, ICC, XMP, IPTC and NCLX from a freshly opened image (a TIFF's own layout removed).
    A damaged block never costs the picture: it is recovered or dropped, and `damaged` says which."""
    info = im.info
    if damaged is not None:
        damaged.extend(info.get(DAMAGED_KEY, ()))
    exif: bytes | None = info.get("exif") or None
    rebuilt = False
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
            exif, rebuilt = ex.tobytes(), True
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp") or None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    photoshop, iptc = _capture_iptc(im)
    tags = getattr(im, "tag_v2", {}) if im.format == "TIFF" else {}
    layers = tags.get(TAG_IMAGE_SOURCE_DATA)
    return Metadata(
        exif=with_prefix(exif) if exif else None,
        icc=info.get("icc_profile") or None,
        xmp=xmp,
        photoshop=photoshop,
        iptc=iptc,
        nclx=info.get("nclx_profile") if not info.get("icc_profile") else None,
        exif_reserialised=rebuilt,
        resolution=res.from_image(im, ex if ex is not None else {}),
        layers=layers if isinstance(layers, bytes) and layers else None,
    )


def recover_raw_profiles(im: Image.Image) -> list[str]:
    """ImageMagick keeps EXIF, IPTC and XMP in PNG text chunks as "\\nexif\\n  <length>\\n<hex>". When the
    length or the line breaks are off, Pillow's getexif() raises (non-hexadecimal number found); the hex
    itself is usually whole, as exiftool shows with a warning. Read what the hex says; say what was off."""
    notes = []
    for key, kind in (("Raw profile type exif", "exif"), ("Raw profile type iptc", "iptc"),
                      ("Raw profile type xmp", "xmp")):  # fmt: skip
        text = im.info.get(key)
        if not isinstance(text, str):
            continue
        try:
            payload, why = _raw_profile(text)
        except MetadataDamageError as exc:
            del im.info[key]
            notes.append(f"{kind} (ImageMagick text): {exc}; dropped")
            continue
        if why:
            notes.append(f"{kind} (ImageMagick text): {why}; the data was read as exiftool reads it")
        if kind == "exif":
            del im.info[key]
            if payload.startswith(EXIF_PREFIX) or payload[:4] in (b"II*\x00", b"MM\x00*"):
                im.info["exif"] = payload  # Pillow's getexif() reads this before the text chunk
            else:
                notes.append("exif (ImageMagick text): not an EXIF block; dropped")
        elif kind == "xmp":
            im.info.setdefault("xmp", payload)
        else:
            im.info[key] = "\n".join(["", kind, f"{len(payload):8d}", payload.hex()])
    return notes


def _raw_profile(text: str) -> tuple[bytes, str | None]:
    """(payload, what was off) of an ImageMagick raw profile text; MetadataDamage if nothing is readable."""
    lines = text.strip("\n").split("\n")
    digits = next((i for i, line in enumerate(lines[:4]) if line.strip().isdigit()), None)
    if digits is None:
        raise MetadataDamageError("no length line before the hex data")
    declared = int(lines[digits].strip())
    hexes = "".join(c for c in "".join(lines[digits + 1 :]) if c in "0123456789abcdefABCDEF")
    if len(hexes) % 2:
        hexes = hexes[:-1]
    payload = bytes.fromhex(hexes)
    if not payload:
        raise MetadataDamageError("no hex data")
    off = [] if digits == 1 else ["the header lines are not where ImageMagick puts them"]
    if declared != len(payload):
        off.append(f"its length field says {declared} bytes, the data holds {len(payload)}")
    return payload, "; ".join(off) or None


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


def with_prefix(raw: bytes) -> bytes:
    """EXIF bytes with the JPEG APP1 prefix (WebP and PNG sources give bare TIFF bytes)."""
    return raw if raw.startswith(EXIF_PREFIX) else EXIF_PREFIX + raw


class _Tiff:
    """A mutable view of an EXIF block's TIFF structure, bounds-checked at every step."""

    def __init__(self, raw: bytes) -> None:
        self.prefix = EXIF_PREFIX if raw.startswith(EXIF_PREFIX) else b""
        self.buf = bytearray(raw[len(self.prefix) :])
        order = bytes(self.buf[:2])
        if order == b"II":
            self.endian = "<"
        elif order == b"MM":
            self.endian = ">"
        else:
            raise ExifStructureError("no TIFF byte-order mark")
        if self._unpack("H", 2) != 42:
            raise ExifStructureError("bad TIFF magic number")

    def _unpack(self, fmt: str, offset: int) -> int:
        size = struct.calcsize(fmt)
        if offset < 0 or offset + size > len(self.buf):
            raise ExifStructureError(f"offset {offset} lies outside the EXIF block")
        return int(struct.unpack_from(self.endian + fmt, self.buf, offset)[0])

    def _pack(self, fmt: str, offset: int, value: int) -> None:
        struct.pack_into(self.endian + fmt, self.buf, offset, value)

    def ifd0(self) -> int:
        return self._unpack("I", 4)

    def entries(self, ifd: int) -> dict[int, int]:
        """Tag → offset of its 12-byte entry."""
        count = self._unpack("H", ifd)
        if count > 1000:
            raise ExifStructureError(f"implausible IFD entry count {count}")
        return {self._unpack("H", ifd + 2 + 12 * k): ifd + 2 + 12 * k for k in range(count)}

    def next_pointer(self, ifd: int) -> int:
        """Offset of the 4-byte 'next IFD' pointer that follows an IFD's entries."""
        return ifd + 2 + 12 * self._unpack("H", ifd)

    def scalar(self, entry: int) -> int:
        kind, count = self._unpack("H", entry + 2), self._unpack("I", entry + 4)
        if count != 1 or kind not in (_SHORT, _LONG):
            raise ExifStructureError(f"tag {self._unpack('H', entry):#06x} is not a single SHORT/LONG")
        return self._unpack("H" if kind == _SHORT else "I", entry + 8)

    def set_scalar(self, entry: int, value: int) -> None:
        kind = self._unpack("H", entry + 2)
        if kind == _SHORT and value > 0xFFFF:
            raise ExifStructureError(f"{value} does not fit the SHORT tag {self._unpack('H', entry):#06x}")
        self.scalar(entry)  # validates type and count
        self._pack("H" if kind == _SHORT else "I", entry + 8, value)

    def set_rational(self, entry: int, value: tuple[int, int]) -> None:
        """Overwrite a single RATIONAL value where it lies (8 bytes out of line)."""
        kind, count = self._unpack("H", entry + 2), self._unpack("I", entry + 4)
        if kind != 5 or count != 1:
            raise ExifStructureError(f"tag {self._unpack('H', entry):#06x} is not a single RATIONAL")
        at = self._unpack("I", entry + 8)
        self._unpack("I", at + 4)  # bounds
        self._pack("I", at, value[0])
        self._pack("I", at + 4, value[1])

    def value_span(self, entry: int) -> tuple[int, int] | None:
        """(offset, length) of an entry's out-of-line value, or None when it fits in the entry."""
        kind, count = self._unpack("H", entry + 2), self._unpack("I", entry + 4)
        length = _TYPE_SIZES.get(kind, 1) * count
        if length <= 4:
            return None
        start = self._unpack("I", entry + 8)
        if start + length > len(self.buf):
            raise ExifStructureError(f"tag {self._unpack('H', entry):#06x} points past the EXIF block")
        return start, length

    def blank_ifd(self, ifd: int) -> None:
        """Zero an IFD and every value it points to (its data must not travel on unreferenced)."""
        for entry in self.entries(ifd).values():
            span = self.value_span(entry)
            if span is not None:
                self.buf[span[0] : span[0] + span[1]] = bytes(span[1])
        end = self.next_pointer(ifd) + 4
        self.buf[ifd:end] = bytes(end - ifd)

    def remove_entry(self, ifd: int, tag: int) -> None:
        """Delete one entry from an IFD in place: later entries and the next pointer move up 12 bytes."""
        entries = self.entries(ifd)
        at = entries[tag]
        end = self.next_pointer(ifd) + 4
        self.buf[at : end - 12] = self.buf[at + 12 : end]
        self.buf[end - 12 : end] = bytes(12)
        self._pack("H", ifd, len(entries) - 1)

    def bytes(self) -> bytes:
        return self.prefix + bytes(self.buf)


def ifd0_tags(raw: bytes) -> set[int]:
    """The tags of IFD0 in a TIFF-structured block, or an empty set when it cannot be read."""
    try:
        tiff = _Tiff(raw)
        return set(tiff.entries(tiff.ifd0()))
    except ExifStructureError:
        return set()


def orientation(raw: bytes | None) -> int | None:
    """The Orientation value of IFD0, or None when absent or unreadable."""
    if not raw:
        return None
    try:
        tiff = _Tiff(raw)
        entry = tiff.entries(tiff.ifd0()).get(TAG_ORIENTATION)
        return None if entry is None else tiff.scalar(entry)
    except ExifStructureError:
        return None


def patch(
    raw: bytes,
    *,
    size: tuple[int, int] | None,
    orientation: int | None,
    drop_thumbnail: bool,
    drop_gps: bool = False,
    drop_orientation: bool = False,
    resolution: Resolution | None = None,
) -> bytes:
    """Edit raw EXIF in place: set Orientation, dimensions and resolution, unlink IFD1 and GPS.

    Everything else keeps its exact bytes and offsets (MakerNotes stay valid). Removed data is
    blanked, not just unlinked, so no GPS or stale thumbnail travels with the file. Raises
    ExifStructureError when the block cannot be edited safely.
    """
    tiff = _Tiff(raw)
    ifd0 = tiff.ifd0()
    entries = tiff.entries(ifd0)
    if drop_orientation and TAG_ORIENTATION in entries:
        tiff.remove_entry(ifd0, TAG_ORIENTATION)
        entries = tiff.entries(ifd0)  # later entries moved up by one slot
    elif orientation is not None and TAG_ORIENTATION in entries:
        tiff.set_scalar(entries[TAG_ORIENTATION], orientation)
    if size is not None:
        for tag, value in ((TAG_IMAGE_WIDTH, size[0]), (TAG_IMAGE_LENGTH, size[1])):
            if tag in entries:
                tiff.set_scalar(entries[tag], value)
        if TAG_EXIF_IFD in entries:
            exif_entries = tiff.entries(tiff.scalar(entries[TAG_EXIF_IFD]))
            for tag, value in ((TAG_PIXEL_X, size[0]), (TAG_PIXEL_Y, size[1])):
                if tag in exif_entries:
                    tiff.set_scalar(exif_entries[tag], value)
    if resolution is not None:
        entries = tiff.entries(ifd0)
        for tag, per in ((res.TAG_X, resolution.x), (res.TAG_Y, resolution.y)):
            if tag in entries:
                tiff.set_rational(entries[tag], res.rational(per))
        if res.TAG_UNIT in entries:
            tiff.set_scalar(entries[res.TAG_UNIT], resolution.tiff_unit)
    if drop_gps and TAG_GPS_IFD in tiff.entries(ifd0):
        gps = tiff.scalar(tiff.entries(ifd0)[TAG_GPS_IFD])
        tiff.blank_ifd(gps)
        tiff.remove_entry(ifd0, TAG_GPS_IFD)
    if drop_thumbnail:
        _drop_ifd1(tiff, ifd0)
    return tiff.bytes()


def reserialise(raw: bytes, *, size: tuple[int, int] | None, orientation: int | None, drop_gps: bool,
                drop_orientation: bool = False, drop_makernote: bool = False,
                resolution: Resolution | None = None) -> bytes:  # fmt: skip
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
    if resolution is not None and res.TAG_X in ex:
        ex[res.TAG_X], ex[res.TAG_Y] = (
            TiffImagePlugin.IFDRational(resolution.x),
            TiffImagePlugin.IFDRational(resolution.y),
        )
        ex[res.TAG_UNIT] = resolution.tiff_unit
    return with_prefix(ex.tobytes())


def _drop_ifd1(tiff: _Tiff, ifd0: int) -> None:
    pointer = tiff.next_pointer(ifd0)
    ifd1 = tiff._unpack("I", pointer)
    if ifd1 == 0:
        return
    # Blank the stale thumbnail's bytes too: unreferenced data would still travel with the file.
    try:
        entries = tiff.entries(ifd1)
        if TAG_THUMB_OFFSET in entries and TAG_THUMB_LENGTH in entries:
            start, length = tiff.scalar(entries[TAG_THUMB_OFFSET]), tiff.scalar(entries[TAG_THUMB_LENGTH])
            if start > 0 and start + length <= len(tiff.buf):
                tiff.buf[start : start + length] = bytes(length)
        end = tiff.next_pointer(ifd1) + 4
        tiff.buf[ifd1:end] = bytes(end - ifd1)
    except ExifStructureError:
        pass  # the pointer below is what readers follow; a malformed IFD1 is simply unlinked
    tiff._pack("I", pointer, 0)


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


def edit_xmp(xmp: bytes, *, drop_orientation: bool, drop_gps: bool) -> bytes:
    """XMP without tiff:Orientation (pixels are upright) and/or exif:GPS* (privacy).

    Untouched bytes pass through when there is nothing to remove. Raises ValueError when the
    packet cannot be parsed: the caller then drops the XMP rather than leak what it must remove.
    """
    needles = ([b"Orientation"] if drop_orientation else []) + ([b"GPS"] if drop_gps else [])
    if not any(n in xmp for n in needles):
        return xmp
    found = _XMPMETA.search(xmp)
    if found is None:
        raise ValueError("no x:xmpmeta or rdf:RDF element in the XMP packet")
    # XMP comes from untrusted files: defusedxml refuses entity expansion and external references.
    packet = found.group(0)
    for _, (prefix, uri) in SafeET.iterparse(io.BytesIO(packet), events=("start-ns",)):
        with contextlib.suppress(ValueError):  # prefixes like ns0 are reserved by ElementTree
            ET.register_namespace(prefix, uri)
    root = SafeET.fromstring(packet)

    def unwanted(name: str) -> bool:
        return (drop_orientation and name == f"{{{_NS_TIFF}}}Orientation") or (
            drop_gps and name.startswith(f"{{{_NS_EXIF}}}GPS")
        )

    for parent in root.iter():
        for attr in [a for a in parent.attrib if unwanted(a)]:
            del parent.attrib[attr]
        for child in [c for c in parent if unwanted(c.tag)]:
            parent.remove(child)
    rebuilt: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return xmp[: found.start()] + rebuilt + xmp[found.end() :]
