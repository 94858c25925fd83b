"""Developing camera RAW for each output: the camera's embedded preview or a LibRaw render, chosen per
output, made once per input and shared; the RAW's EXIF transplanted into what the outputs carry.

A render uses the camera's white balance (LibRaw's default is daylight), no auto-brightening (its
gain depends on the content, so equal inputs would not give equal bytes), AHD, 16 bits, one thread;
the gamma LibRaw applies is the one the embedded ICC profile says. Rendered pixels come out upright;
a preview is stored as the sensor lies and is turned by the RAW's orientation, once.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from PIL import Image

from hotfolder.core.exiftiff import TAG_EXIF_IFD, TAG_GPS_IFD, TAG_MAKERNOTE, TAG_ORIENTATION, with_prefix
from hotfolder.decide.containers import block_tags
from hotfolder.decide.raw import RawHeader, preview_jpeg
from hotfolder.errors import InputError
from hotfolder.render.decode import decode
from hotfolder.render.deep import Deep
from hotfolder.render.metadata import Metadata
from hotfolder.render.notes import Notes
from hotfolder.render.profiles import profile_for
from hotfolder.render.source import Source
from hotfolder.settings.outputs import Output

if TYPE_CHECKING:  # numpy is loaded by a RAW render only (LibRaw's pixels): ~60 ms at worker start
    import numpy as np

# (LibRaw's output colour space, its gamma as (power, toe slope)) per raw_colour.
_COLOUR: Final = {
    "srgb": ("sRGB", (2.4, 12.92)),
    "adobe": ("Adobe", (563 / 256, 0.0)),
    "prophoto": ("ProPhoto", (1.8, 0.0)),
}
# IFD0 tags kept from a RAW: what describes the picture and the camera. Everything else in a RAW's
# IFD0 describes its own storage (strips, SubIFDs, CFA layout, DNG colour calibration, previews).
_IFD0_KEEP: Final = frozenset(
    {
        0x010E,
        0x010F,
        0x0110,
        0x0112,
        0x0131,
        0x0132,
        0x013B,
        0x8298,
        0x9C9B,
        0x9C9C,
        0x9C9D,
        0x9C9E,
        0x9C9F,
        TAG_EXIF_IFD,
        TAG_GPS_IFD,
    }
)
# MakerNotes that carry their own TIFF header, so their offsets survive a move (Nikon type 3).
_RELOCATABLE: Final = (b"Nikon\x00\x02", b"OLYMPUS\x00", b"OM SYSTEM\x00", b"FUJIFILM", b"Apple iOS\x00")
# Camera Raw / darktable develop settings: not applied by this render, so not claimed for its pixels.
_EDIT_HISTORY = re.compile(
    rb'\s(?:crs|darktable):[A-Za-z0-9]+="[^"]*"|<(crs|darktable):(\w+)\b.*?</\1:\2>', re.DOTALL
)


def choose(header: RawHeader, output: Output) -> tuple[str, str]:
    """("preview" or "render", why) for one output of a RAW input."""
    if output.profile == "archival":
        return "render", "archival outputs are always developed from the raw data"
    if output.raw == "render":
        return "render", 'raw = "render"'
    longest = max(header.upright)
    needed = min(output.max_edge or longest, longest)
    if header.preview is None:
        if output.raw == "preview":
            raise InputError('this RAW has no embedded JPEG preview, and the output asks for raw = "preview"')
        return "render", "the RAW has no embedded preview"
    size = max(header.preview)
    if output.raw == "preview":
        return "preview", 'raw = "preview"'
    if size >= needed:
        return "preview", f"the camera's preview ({size} px) is as large as the output needs ({needed} px)"
    return "render", f"the camera's preview ({size} px) is smaller than the output needs ({needed} px)"


@dataclass
class Developed:
    """What one RAW input gives its outputs, each made at most once."""

    data: bytes
    header: RawHeader
    max_pixels: int
    half: bool  # every rendered output fits in half the sensor's size: demosaic at half size
    made: dict[str, Source]

    def source(self, output: Output, notes: Notes) -> Source:
        """The preview or the render this output uses (made on first use)."""
        kind, _why = choose(self.header, output)
        key = "preview" if kind == "preview" else f"render:{output.raw_colour}"
        if key not in self.made:
            self.made[key] = (
                self._preview(notes) if kind == "preview" else self._render(output.raw_colour, notes)
            )
        return self.made[key]

    def _preview(self, notes: Notes) -> Source:
        jpeg = preview_jpeg(self.data)
        if jpeg is None:
            raise InputError("the embedded preview of this RAW cannot be read")
        source = decode(jpeg, max_pixels=self.max_pixels)
        exif = transplant(
            self.header, orientation=self.header.orientation, size=source.image.size, notes=notes
        )
        # Stored as the sensor lies: turned by the RAW's orientation, never by its own EXIF as well.
        meta = replace(source.meta, exif=exif, xmp=self.header.xmp)
        return replace(source, format="raw", meta=meta, orientation=self.header.orientation)

    def _render(self, colour: str, notes: Notes) -> Source:
        pixels = render(self.data, colour=colour, half=self.half)
        icc = profile_for(colour)
        deep = Deep(pixels=pixels, bits=16, icc=icc)
        height, width = pixels.shape[:2]
        exif = transplant(self.header, orientation=1, size=(width, height), notes=notes)
        meta = Metadata(exif=exif, icc=icc, xmp=without_edits(self.header.xmp))
        return Source(view=None, format="raw", meta=meta, orientation=1, deep=deep)


def develop(data: bytes, header: RawHeader, outputs: list[Output], *, max_pixels: int) -> Developed:
    """The RAW's sources for these outputs; half-size when no rendered output needs more."""
    half_edge = max(header.upright) // 2
    rendered = [o for o in outputs if o.format != "copy" and choose(header, o)[0] == "render"]
    half = bool(rendered) and all(o.max_edge is not None and o.max_edge <= half_edge for o in rendered)
    return Developed(data=data, header=header, max_pixels=max_pixels, half=half, made={})


def render(data: bytes, *, colour: str, half: bool) -> np.ndarray:
    """LibRaw's demosaic of the raw data: upright, 16 bits per sample, in `colour`'s primaries and gamma."""
    import rawpy  # noqa: PLC0415 - only workers develop RAW

    space, gamma = _COLOUR[colour]
    raw = rawpy.RawPy()
    try:
        raw.open_buffer(io.BytesIO(data))
        raw.unpack()
        pixels = raw.postprocess(
            demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD,
            half_size=half,
            use_camera_wb=True,
            no_auto_bright=True,
            output_bps=16,
            gamma=gamma,
            output_color=getattr(rawpy.ColorSpace, space),
        )
    except rawpy.LibRawError as exc:
        text = exc.args[0] if exc.args else exc
        raise InputError(f"LibRaw cannot develop this RAW: {text!s}") from None
    finally:
        raw.close()
    import numpy as np  # noqa: PLC0415 - see TYPE_CHECKING above

    return np.ascontiguousarray(pixels, dtype=np.uint16)


def transplant(header: RawHeader, *, orientation: int, size: tuple[int, int], notes: Notes) -> bytes | None:
    """The RAW's camera tags rebuilt as an EXIF block of their own (a RAW's offsets point into the RAW):
    IFD0's descriptive tags, the Exif and GPS IFDs, the MakerNote where it can move; no storage tags."""
    if header.exif is None:
        return None
    source = Image.Exif()
    try:
        source.load(header.exif)
    except (SyntaxError, ValueError, struct.error) as exc:
        notes.warn(
            "metadata.dropped", item="exif", format="raw", error=f"the RAW's EXIF cannot be read: {exc}"
        )
        return None
    out = Image.Exif()
    for tag, value in _texts_cleaned(dict(source.items())).items():
        if tag in _IFD0_KEEP and tag not in (TAG_EXIF_IFD, TAG_GPS_IFD):
            out[tag] = value
    out[TAG_ORIENTATION] = orientation
    sub = _texts_cleaned(dict(source.get_ifd(TAG_EXIF_IFD)) or block_tags(header.exif_ifd))
    note = sub.get(TAG_MAKERNOTE)
    if isinstance(note, bytes) and not note.startswith(_RELOCATABLE):
        del sub[TAG_MAKERNOTE]
        notes.warn(
            "metadata.dropped",
            item="makernote",
            format="raw",
            error="its offsets point into the RAW and cannot be relocated",
        )
    sub[0xA002], sub[0xA003] = size
    sub.pop(0xA005, None)  # the Interop IFD pointer: Pillow would write it as a dangling offset
    out[TAG_EXIF_IFD] = sub
    gps = _texts_cleaned(dict(source.get_ifd(TAG_GPS_IFD)) or block_tags(header.gps_ifd))
    if gps:
        out[TAG_GPS_IFD] = gps
    return with_prefix(out.tobytes())


def _texts_cleaned(tags: dict[int, Any]) -> dict[int, Any]:
    """Text tags as written, without the padding some firmware fills them with: a DateTime of 20 NULs
    (Magic Lantern's DNGs) is no date, and libtiff refuses to read it back."""
    cleaned = {}
    for tag, value in tags.items():
        text = value.split("\x00", 1)[0].strip() if isinstance(value, str) else None
        if text is None:
            cleaned[tag] = value
        elif text:
            cleaned[tag] = text
    return cleaned


def without_edits(xmp: bytes | None) -> bytes | None:
    """XMP without Camera Raw or darktable develop settings: this render did not apply them."""
    if xmp is None:
        return None
    return _EDIT_HISTORY.sub(b"", xmp)
