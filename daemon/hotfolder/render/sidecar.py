"""A group's XMP sidecar merged into an output's XMP: the photographer's descriptive fields (title,
description, keywords, creator, rights, rating, photoshop:*) written over the picture's own.

Edit settings (crs:, darktable history, anything else) are not carried: those edits were not applied
to these pixels. The output's own options apply afterwards (gps, xmp = "strip"), and a stamp wins.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

from hotfolder.render.metadata import parse_xmp

_RDF: Final = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_DC: Final = "http://purl.org/dc/elements/1.1/"
_XMP: Final = "http://ns.adobe.com/xap/1.0/"
_NAMESPACES: Final = frozenset({"http://ns.adobe.com/photoshop/1.0/", "http://ns.adobe.com/xap/1.0/rights/"})
_NAMES: Final = frozenset(
    {f"{{{_DC}}}{n}" for n in ("title", "description", "subject", "creator", "rights")}
    | {f"{{{_XMP}}}Rating"}
)
_DESCRIPTION: Final = f"{{{_RDF}}}Description"
_EMPTY: Final = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about=""/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def carried(name: str) -> bool:
    """Whether a property (Clark notation, {uri}local) is one a sidecar brings to the output."""
    return name in _NAMES or name[1:].split("}", 1)[0] in _NAMESPACES


def merge(own: bytes | None, sidecar: bytes) -> tuple[bytes, tuple[str, ...]]:
    """The picture's XMP with the sidecar's descriptive fields over it, and the names carried.
    Raises ValueError when either packet cannot be parsed."""
    _, side = parse_xmp(sidecar)
    props: list[tuple[str, str | ET.Element]] = []
    for desc in side.iter(_DESCRIPTION):
        props += [(k, v) for k, v in desc.attrib.items() if carried(k)]
        props += [(child.tag, child) for child in desc if carried(child.tag)]
    if not props:
        return own or b"", ()
    base = own or _EMPTY
    found, root = parse_xmp(base)
    targets = list(root.iter(_DESCRIPTION))
    if not targets:
        raise ValueError("the picture's XMP has no rdf:Description to merge into")
    names = {name for name, _ in props}
    for desc in targets:  # the sidecar's value replaces the picture's, wherever it was written
        for attr in [a for a in desc.attrib if a in names]:
            del desc.attrib[attr]
        for child in [c for c in desc if c.tag in names]:
            desc.remove(child)
    into = targets[0]
    for name, value in props:
        if isinstance(value, str):
            into.set(name, value)
        else:
            into.append(value)
    rebuilt = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return base[: found.start()] + rebuilt + base[found.end() :], tuple(sorted(names))
