"""Ultra HDR gain maps (`gain_map = "keep"` on web JPEGs): read from the source, transformed with the
picture, written again by libvips' uhdrsave (Google's libultrahdr, in the pyvips-binary wheel).

The gain map is a small grey (or RGB) JPEG that says, per region, how much brighter than the SDR
base an HDR display may show it; it follows the base's orientation and size (its own scale kept:
a quarter-size map stays a quarter of the output's size)."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Any, Final

from PIL import Image

from hotfolder.errors import EncodeError
from hotfolder.render.metadata import Metadata
from hotfolder.render.notes import Notes
from hotfolder.render.orient import orient

_GAIN_MAP_QUALITY: Final = 90  # libultrahdr's own default for the map


@dataclass(frozen=True)
class GainMap:
    """A source's gain map: its JPEG, its pixel size, and libvips' gainmap-* fields with their types."""

    jpeg: bytes
    size: tuple[int, int]
    base: tuple[int, int]  # the stored size of the picture it was made for (not a DCT-scaled decode's)
    fields: tuple[tuple[str, int, Any], ...]

    def fitted(self, orientation: int, out: tuple[int, int]) -> GainMap:
        """The map turned like the picture and resized to keep its scale against the output."""
        im = orient(Image.open(io.BytesIO(self.jpeg)), orientation)
        turned = self.base if orientation < 5 else (self.base[1], self.base[0])
        size = (max(1, round(out[0] * im.width / turned[0])), max(1, round(out[1] * im.height / turned[1])))
        if size != im.size:
            im = im.resize(size, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=_GAIN_MAP_QUALITY)
        return replace(self, jpeg=buf.getvalue(), size=size)


def read_gain_map(data: bytes) -> GainMap | None:
    """The gain map of an Ultra HDR JPEG as libultrahdr finds it, or None."""
    import pyvips  # noqa: PLC0415

    try:
        vimg = pyvips.Image.new_from_buffer(data, "")
    except pyvips.Error:
        return None
    names = [n for n in vimg.get_fields() if n.startswith("gainmap-") and n != "gainmap-data"]
    if "gainmap-data" not in vimg.get_fields():
        return None
    jpeg = bytes(vimg.get("gainmap-data"))
    size = Image.open(io.BytesIO(jpeg)).size
    return GainMap(
        jpeg=jpeg,
        size=size,
        base=(vimg.width, vimg.height),
        fields=tuple((n, vimg.get_typeof(n), vimg.get(n)) for n in names),
    )


def ultrahdr_jpeg(
    frame: Image.Image, gain_map: GainMap, meta: Metadata, *, quality: int, exif: bytes | None, notes: Notes
) -> bytes:
    """The SDR picture and its gain map as one Ultra HDR JPEG (JPEG/R: MPF + the hdrgm XMP container)."""
    import pyvips  # noqa: PLC0415

    rgb = frame.convert("RGB")
    vimg = pyvips.Image.new_from_memory(rgb.tobytes(), rgb.width, rgb.height, 3, "uchar")
    vimg = vimg.copy(interpretation="srgb")
    vimg.set_type(pyvips.GValue.blob_type, "gainmap-data", gain_map.jpeg)
    for name, gtype, value in gain_map.fields:
        vimg.set_type(gtype, name, value)
    keep = ["gainmap"]  # libvips strips what `keep` does not name, the map's own fields included
    if exif:
        vimg.set_type(pyvips.GValue.blob_type, "exif-data", exif)
        keep.append("exif")
    if meta.icc:
        vimg.set_type(pyvips.GValue.blob_type, "icc-profile-data", meta.icc)
        keep.append("icc")
    if meta.xmp:
        why = "an Ultra HDR JPEG's XMP is its gain map container (hdrgm), written by libultrahdr"
        notes.warn("metadata.dropped", item="xmp", format="jpeg", error=why)
    try:
        return bytes(vimg.uhdrsave_buffer(Q=quality, keep=",".join(keep)))
    except pyvips.Error as exc:
        raise EncodeError(f"cannot write the Ultra HDR JPEG: {str(exc).strip()}") from None
