"""Who made the picture: an output's `stamp` written consistently to EXIF, XMP and IPTC.

Each field replaces the source's value for that field only (everything else is kept as the
output's options say), and is written even where the rest of a block is stripped: a stamp is
explicit. IPTC is written as UTF-8 (coded character set ESC % G); values longer than IPTC's own
limits are cut there (`metadata.truncated`), the full value staying in XMP.
"""

from __future__ import annotations

import io
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any, Final

from defusedxml import ElementTree as SafeET
from PIL import Image

from hotfolder.core.exiftiff import ExifStructureError, _Tiff, with_prefix

Stamped = Mapping[str, str | tuple[str, ...]]

# EXIF IFD0 tags (ASCII) per field.
_EXIF: Final = {"artist": 0x013B, "copyright": 0x8298, "description": 0x010E}

_NS: Final = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "stRef": "http://ns.adobe.com/xap/1.0/sType/ResourceRef#",
    # hotfolder's own, for what no standard namespace says: the source's SHA-256 (docs: Outputs).
    "hf": "https://hotfolder.dev/ns/provenance/1.0/",
}
# XMP property per field, and its container: Seq (ordered), Alt (language alternatives), Bag, or simple.
_XMP: Final = {
    "artist": ("dc", "creator", "Seq"),
    "copyright": ("dc", "rights", "Alt"),
    "credit": ("photoshop", "Credit", None),
    "title": ("dc", "title", "Alt"),
    "description": ("dc", "description", "Alt"),
    "keywords": ("dc", "subject", "Bag"),
    "rights_url": ("xmpRights", "WebStatement", None),
}
# IPTC IIM record 2 datasets per field, with the standard's byte limits.
_IPTC: Final = {
    "artist": (80, 32),  # By-line
    "copyright": (116, 128),  # CopyrightNotice
    "credit": (110, 32),  # Credit
    "title": (5, 64),  # ObjectName
    "description": (120, 2000),  # Caption-Abstract
    "keywords": (25, 64),  # Keywords, each
}
IPTC_FIELDS: Final = frozenset(_IPTC)
_UTF8: Final = b"\x1b%G"  # IPTC 1:90 CodedCharacterSet: UTF-8
_BINARY_DATASETS: Final = frozenset({0, 200, 201, 202})  # record 2 datasets that are not text


def _values(stamped: Stamped, field: str) -> tuple[str, ...]:
    value = stamped[field]
    return value if isinstance(value, tuple) else (value,)


# EXIF -------------------------------------------------------------------------------------------


def exif(raw: bytes | None, stamped: Stamped) -> bytes | None:
    """The EXIF with the stamped Artist, Copyright and ImageDescription (a new block if there is none).

    IFD0 is rewritten at the end of the block with the new entries; every other IFD and value keeps
    its offset, so MakerNotes stay valid. The replaced values are blanked."""
    updates = {_EXIF[f]: _values(stamped, f)[0].encode() + b"\x00" for f in _EXIF if f in stamped}
    if not updates:
        return raw
    if raw is None:
        ex = Image.Exif()
        for tag, value in updates.items():
            ex[tag] = value[:-1]
        return with_prefix(ex.tobytes())
    try:
        return _rewrite_ifd0(raw, updates)
    except ExifStructureError:
        ex = Image.Exif()
        ex.load(raw)
        for tag, value in updates.items():
            ex[tag] = value[:-1]
        return with_prefix(ex.tobytes())


def _rewrite_ifd0(raw: bytes, updates: dict[int, bytes]) -> bytes:
    tiff = _Tiff(raw)
    ifd0 = tiff.ifd0()
    entries = tiff.entries(ifd0)
    old = {tag: bytes(tiff.buf[at : at + 12]) for tag, at in entries.items()}
    for tag in updates:
        if tag in entries:
            span = tiff.value_span(entries[tag])
            if span is not None:
                tiff.buf[span[0] : span[0] + span[1]] = bytes(span[1])
    following = struct.unpack_from(tiff.endian + "I", tiff.buf, tiff.next_pointer(ifd0))[0]
    end = tiff.next_pointer(ifd0) + 4
    tiff.buf[ifd0:end] = bytes(end - ifd0)  # the old IFD0 is not referenced any more
    if len(tiff.buf) % 2:
        tiff.buf += b"\x00"
    tags = sorted(set(old) | set(updates))
    at = len(tiff.buf)
    data_at = at + 2 + 12 * len(tags) + 4
    table, data = bytearray(struct.pack(tiff.endian + "H", len(tags))), bytearray()
    for tag in tags:
        if tag not in updates:
            table += old[tag]
            continue
        value = updates[tag]
        if len(value) <= 4:
            table += struct.pack(tiff.endian + "HHI", tag, 2, len(value)) + value.ljust(4, b"\x00")
        else:
            table += struct.pack(tiff.endian + "HHII", tag, 2, len(value), data_at + len(data))
            data += value + (b"\x00" if len(value) % 2 else b"")
    table += struct.pack(tiff.endian + "I", following)
    tiff.buf += table + data
    struct.pack_into(tiff.endian + "I", tiff.buf, 4, at)
    return tiff.bytes()


# XMP --------------------------------------------------------------------------------------------

_XMPMETA: Final = re.compile(rb"<x:xmpmeta\b.*?</x:xmpmeta>|<rdf:RDF\b.*?</rdf:RDF>", re.DOTALL)


def _q(prefix: str, name: str) -> str:
    return f"{{{_NS[prefix]}}}{name}"


def xmp(packet: bytes | None, stamped: Stamped) -> bytes:
    """The XMP with the stamped properties (a new packet if there is none, or if it cannot be parsed)."""

    def write(descriptions: list[ET.Element]) -> None:
        for field, (prefix, name, _) in _XMP.items():
            if field in stamped:
                _remove(descriptions, _q(prefix, name))
        target = descriptions[0]
        for field, (prefix, name, container) in _XMP.items():
            if field not in stamped:
                continue
            element = ET.SubElement(target, _q(prefix, name))
            if container is None:
                element.text = _values(stamped, field)[0]
                continue
            holder = ET.SubElement(element, _q("rdf", container))
            for value in _values(stamped, field):
                attrs = (
                    {"{http://www.w3.org/XML/1998/namespace}lang": "x-default"} if container == "Alt" else {}
                )
                ET.SubElement(holder, _q("rdf", "li"), attrs).text = value

    return _edit(packet, write)


def provenance(packet: bytes | None, *, name: str, sha256: str) -> bytes:
    """The XMP with where the picture came from: xmpMM:PreservedFileName (the original's name, unless the
    source already keeps an earlier one), xmpMM:DerivedFrom (stRef:documentID: the source's own
    xmpMM:DocumentID, else urn:sha256:<its SHA-256>; stRef:filePath: its name) and hotfolder's
    hf:SourceSHA256 (64 lowercase hex digits)."""

    def write(descriptions: list[ET.Element]) -> None:
        kept = _first_value(descriptions, _q("xmpMM", "PreservedFileName"))
        document = _first_value(descriptions, _q("xmpMM", "DocumentID"))
        for prop in ("PreservedFileName", "DerivedFrom"):
            _remove(descriptions, _q("xmpMM", prop))
        _remove(descriptions, _q("hf", "SourceSHA256"))
        target = descriptions[0]
        ET.SubElement(target, _q("xmpMM", "PreservedFileName")).text = kept or name
        derived = ET.SubElement(target, _q("xmpMM", "DerivedFrom"), {_q("rdf", "parseType"): "Resource"})
        ET.SubElement(derived, _q("stRef", "documentID")).text = document or f"urn:sha256:{sha256}"
        ET.SubElement(derived, _q("stRef", "filePath")).text = name
        ET.SubElement(target, _q("hf", "SourceSHA256")).text = sha256

    return _edit(packet, write)


def _first_value(descriptions: list[ET.Element], tag: str) -> str | None:
    for description in descriptions:
        if tag in description.attrib:
            return description.attrib[tag]
        found = description.find(tag)
        if found is not None and found.text:
            return found.text
    return None


def _remove(descriptions: list[ET.Element], tag: str) -> None:
    for description in descriptions:
        description.attrib.pop(tag, None)
        for child in description.findall(tag):
            description.remove(child)


def _edit(packet: bytes | None, write: Callable[[list[ET.Element]], None]) -> bytes:
    """Parse the packet (or start one), let `write` change its descriptions, and serialise it in place."""
    for prefix, uri in _NS.items():
        ET.register_namespace(prefix, uri)
    root = None
    found = _XMPMETA.search(packet) if packet else None
    if found is not None:
        for _, (prefix, uri) in SafeET.iterparse(io.BytesIO(found.group(0)), events=("start-ns",)):
            try:
                ET.register_namespace(prefix, uri)
            except ValueError:
                continue  # prefixes like ns0 are reserved by ElementTree
        try:
            root = SafeET.fromstring(found.group(0))
        except ET.ParseError:
            root = None
    if root is None:
        root = ET.Element(_q("x", "xmpmeta"))
        ET.SubElement(
            ET.SubElement(root, _q("rdf", "RDF")), _q("rdf", "Description"), {_q("rdf", "about"): ""}
        )
    rdf = root if root.tag == _q("rdf", "RDF") else root.find(_q("rdf", "RDF"))
    if rdf is None:
        rdf = ET.SubElement(root, _q("rdf", "RDF"))
    descriptions = rdf.findall(_q("rdf", "Description")) or [
        ET.SubElement(rdf, _q("rdf", "Description"), {_q("rdf", "about"): ""})
    ]
    write(descriptions)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    if packet and found is not None:
        return packet[: found.start()] + body + packet[found.end() :]
    return b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>' + body + b'<?xpacket end="w"?>'


# IPTC -------------------------------------------------------------------------------------------


def _datasets(records: bytes) -> list[tuple[int, int, bytes]]:
    """(record, dataset, data) of an IIM block; stops at the first malformed dataset."""
    found, pos = [], 0
    while pos + 5 <= len(records) and records[pos] == 0x1C:
        record, number, length = (
            records[pos + 1],
            records[pos + 2],
            struct.unpack_from(">H", records, pos + 3)[0],
        )
        if length & 0x8000:
            break  # extended datasets: not written by anything this reads
        found.append((record, number, records[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    return found


def _dataset(record: int, number: int, data: bytes) -> bytes:
    return struct.pack(">BBBH", 0x1C, record, number, len(data)) + data


def _cut(text: str, limit: int) -> bytes:
    data = text.encode()
    return data if len(data) <= limit else data[:limit].decode("utf-8", "ignore").encode()


def iptc(records: bytes | None, stamped: Stamped, notes: Any) -> bytes:
    """IIM records with the stamped datasets, as UTF-8 (other text datasets re-encoded to UTF-8)."""
    existing = _datasets(records or b"")
    utf8 = any(r == 1 and n == 90 and d == _UTF8 for r, n, d in existing)
    replaced = {_IPTC[f][0] for f in _IPTC if f in stamped}
    kept = []
    for record, number, data in existing:
        if record == 1 and number == 90:
            continue
        if record == 2 and number in replaced:
            continue
        text = data
        if record == 2 and number not in _BINARY_DATASETS and not utf8:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("latin-1").encode()  # old IPTC without a charset: Latin-1 by convention
        kept.append((record, number, text))
    out = [_dataset(1, 90, _UTF8)]
    out += [_dataset(r, n, d) for r, n, d in kept if r == 1]
    if not any(r == 2 and n == 0 for r, n, _ in kept):
        out.append(_dataset(2, 0, b"\x00\x04"))
    out += [_dataset(r, n, d) for r, n, d in kept if r == 2 and n == 0]
    for field, (number, limit) in _IPTC.items():
        if field not in stamped:
            continue
        for value in _values(stamped, field):
            data = _cut(value, limit)
            if len(data) < len(value.encode()):
                why = f"{len(value.encode())} bytes > IPTC's {limit}: cut there; XMP keeps the whole value"
                notes.warn("metadata.truncated", item=f"iptc {field}", error=why)
            out.append(_dataset(2, number, data))
    out += [_dataset(r, n, d) for r, n, d in kept if r == 2 and n != 0]
    out += [_dataset(r, n, d) for r, n, d in kept if r > 2]
    return b"".join(out)


def replace_iptc_resource(irb: bytes, records: bytes) -> bytes:
    """Photoshop image resources with resource 0x0404 (IPTC) replaced or added."""
    out, pos, done = bytearray(), 0, False
    while pos + 12 <= len(irb) and irb[pos : pos + 4] == b"8BIM":
        rid = struct.unpack_from(">H", irb, pos + 4)[0]
        name_len = irb[pos + 6]
        name_end = pos + 7 + name_len + ((name_len + 1) % 2)
        size = struct.unpack_from(">I", irb, name_end)[0]
        end = name_end + 4 + size + (size % 2)
        if rid == 0x0404:
            out += _resource(records)
            done = True
        else:
            out += irb[pos:end]
        pos = end
    if not done:
        out += _resource(records)
    return bytes(out)


def _resource(records: bytes) -> bytes:
    body = records + (b"\x00" if len(records) % 2 else b"")
    return b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(records)) + body


def records_in(irb: bytes | None) -> bytes | None:
    """The IPTC records inside Photoshop image resources (resource 0x0404), if any."""
    pos = 0
    while irb and pos + 12 <= len(irb) and irb[pos : pos + 4] == b"8BIM":
        rid = struct.unpack_from(">H", irb, pos + 4)[0]
        name_len = irb[pos + 6]
        name_end = pos + 7 + name_len + ((name_len + 1) % 2)
        size = struct.unpack_from(">I", irb, name_end)[0]
        if rid == 0x0404:
            return irb[name_end + 4 : name_end + 4 + size]
        pos = name_end + 4 + size + (size % 2)
    return None


# IPTC's place datasets: content location code and name, city, sublocation, province/state, country
# code and name (IIM record 2).
IPTC_LOCATION: Final = frozenset({26, 27, 90, 92, 95, 100, 101})


def without_location(photoshop: bytes | None, records: bytes | None) -> tuple[bytes | None, bytes | None]:
    """The IPTC records (on their own, or inside Photoshop's resources) without a place's datasets."""

    def cleaned(block: bytes) -> bytes:
        sets = _datasets(block)
        if not any(r == 2 and n in IPTC_LOCATION for r, n, _ in sets):
            return block
        return b"".join(_dataset(r, n, d) for r, n, d in sets if not (r == 2 and n in IPTC_LOCATION))

    inside = records_in(photoshop)
    if photoshop is not None and inside is not None:
        photoshop = replace_iptc_resource(photoshop, cleaned(inside))
    return photoshop, cleaned(records) if records is not None else None
