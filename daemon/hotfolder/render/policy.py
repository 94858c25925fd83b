"""Which metadata each output carries: EXIF patched to the output's size and orientation, XMP, resolution."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Any

from hotfolder.core.exiftiff import TAG_MAKERNOTE, ExifStructureError, patch
from hotfolder.core.resolution import Resolution
from hotfolder.render import stamp
from hotfolder.render.metadata import Metadata, edit_xmp, reserialise
from hotfolder.render.notes import Notes
from hotfolder.render.private import private_tags
from hotfolder.render.source import Source
from hotfolder.render.transform import Rendered
from hotfolder.settings.outputs import Output


@dataclass(frozen=True)
class Origin:
    """The input an output is made from, for its provenance: its file name and SHA-256."""

    name: str
    sha256: str


def output_metadata(
    source: Source,
    rendered: Rendered,
    output: Output,
    notes: Notes,
    *,
    stamped: stamp.Stamped | None = None,
    origin: Origin | None = None,
) -> Metadata:
    """Exactly the EXIF, XMP, IPTC, ICC and resolution this output's options allow, as they must read
    on its pixels, with its stamp written over the source's values for those fields.

    Orientation is set to 1 wherever the pixels are upright (never applied twice); dimensions and
    resolution follow the pixels; a thumbnail that no longer shows the pixels is removed; GPS goes
    when asked, from EXIF and XMP alike. A block that cannot be edited is dropped and said so.
    """
    meta = _for_pixels(
        rendered.meta,
        _Shape(source.orientation, source.stored_size, rendered.size),
        output,
        notes,
        stamped,
        source_icc=source.meta.icc,
    )
    if origin is None or output.provenance != "keep" or output.xmp != "keep":
        return meta
    return replace(meta, xmp=stamp.provenance(meta.xmp, name=origin.name, sha256=origin.sha256))


def images_metadata(
    source: Source, rendered: Rendered, output: Output, notes: Notes, stamped: stamp.Stamped | None = None
) -> tuple[Metadata, ...]:
    """Each image's own EXIF and XMP, by the same rules, for a HEIF that keeps several images (a
    multi-image HEIF, a TIFF's pages): the primary's is `rendered.meta`; () for anything else."""
    if output.format != "heif" or rendered.frame_count < 2 or source.animated:
        return ()
    found = []
    for i, (meta, (frame, _), image) in enumerate(
        zip(source.frame_metadata(), source.frames(), rendered.frames, strict=True)
    ):
        if i == rendered.primary:
            found.append(rendered.meta)
            continue
        shape = _Shape(source.orientation, frame.size, image.size)
        own = Metadata(exif=meta.exif, xmp=meta.xmp, icc=rendered.meta.icc, resolution=meta.resolution)
        found.append(_for_pixels(own, shape, output, notes, stamped, source_icc=rendered.meta.icc))
    return tuple(found)


@dataclass(frozen=True)
class _Shape:
    """What an image's metadata must be made to say: its orientation still to apply, its size as the
    file stores it, and the size written."""

    orientation: int
    stored: tuple[int, int]
    written: tuple[int, int]


def _for_pixels(
    meta: Metadata,
    shape: _Shape,
    output: Output,
    notes: Notes,
    stamped: stamp.Stamped | None,
    *,
    source_icc: bytes | None,
) -> Metadata:
    applied = output.orientation == "upright" or shape.orientation == 1
    # Resized and rescaled from the size the file stores, never from a reduced-scale decode: a JPEG
    # decoded straight to its output's size is still resized (its EXIF thumbnail goes), and a 4080 px
    # JPEG decoded at 1/2 for a 1000 px output said 71 dpi where 17.65 is right.
    kept = shape.stored[::-1] if applied and shape.orientation >= 5 else shape.stored
    resized = shape.written != kept
    turned = applied and shape.orientation != 1
    drop_gps = output.gps == "strip"
    private = private_tags(output)
    resolution = _output_resolution(
        meta.resolution, output, kept, shape.written, swap=turned and shape.orientation >= 5
    )
    exif = None
    if output.exif == "keep" and meta.exif:
        exif = _output_exif(
            meta.exif,
            output,
            notes,
            size=shape.written,
            orientation=1 if applied else None,
            drop_gps=drop_gps,
            drop_thumbnail=resized or turned,
            resolution=resolution,
            drop_orientation=applied and output.format == "avif",
            drop_tags=private,
        )
    xmp = None
    if output.xmp == "keep" and meta.xmp:
        try:
            xmp = edit_xmp(
                meta.xmp,
                drop_orientation=applied,
                drop_gps=drop_gps,
                drop_serials=output.serials == "strip",
                drop_owner=output.owner == "strip",
                drop_appended=True,  # a re-encode carries nothing after its picture
            )
        except (ValueError, SyntaxError) as exc:
            why = f"XMP cannot be parsed (so orientation and GPS cannot be removed from it): {exc}; dropped"
            notes.warn("metadata.damaged", item="xmp", format=output.format, error=why)
    keep_iptc = output.iptc == "keep"
    photoshop, iptc = (meta.photoshop, meta.iptc) if keep_iptc else (None, None)
    if drop_gps and (photoshop or iptc):
        photoshop, iptc = stamp.without_location(photoshop, iptc)
    if stamped:
        exif = stamp.exif(exif, stamped)
        xmp = stamp.xmp(xmp, stamped)
        if output.format in ("jpeg", "tiff") and any(f in stamped for f in stamp.IPTC_FIELDS):
            records = stamp.iptc(iptc or stamp.records_in(photoshop), stamped, notes)
            photoshop, iptc = (
                (stamp.replace_iptc_resource(photoshop, records), None) if photoshop else (None, records)
            )
    layers = meta.layers
    if layers is not None and (output.format != "tiff" or resized or turned or meta.icc != source_icc):
        why = (
            "Photoshop layers describe the source's pixels exactly; they are kept only in a TIFF of the "
            "same pixels"
        )
        notes.warn("layers.dropped", format=output.format, error=why)
        layers = None
    return Metadata(
        exif=exif,
        icc=meta.icc,
        xmp=xmp,
        photoshop=photoshop,
        iptc=iptc,
        cicp=meta.cicp,
        resolution=resolution,
        layers=layers,
        extra_samples=meta.extra_samples,
    )


def _output_exif(raw: bytes, output: Output, notes: Notes, **args: Any) -> bytes | None:
    """The source's EXIF patched in place, else rebuilt (logged), else dropped (logged)."""
    drop_thumbnail = args.pop("drop_thumbnail")
    try:
        return patch(raw, drop_thumbnail=drop_thumbnail, **args)
    except ExifStructureError as exc:
        notes.warn("metadata.reserialised", item="exif", format=output.format, error=str(exc))
    try:
        return reserialise(raw, drop_makernote=TAG_MAKERNOTE in args["drop_tags"], **args)
    except (ValueError, SyntaxError, struct.error, TypeError, KeyError) as exc:
        notes.warn(
            "metadata.damaged",
            item="exif",
            format=output.format,
            error=f"the EXIF block cannot be read or rebuilt ({exc}); dropped",
        )
        return None


def _output_resolution(
    source: Resolution | None, output: Output, upright: tuple[int, int], size: tuple[int, int], *, swap: bool
) -> Resolution | None:
    """The output's print resolution: `dpi` if set, else the source's, following a turn and a resize."""
    if output.dpi is not None:
        return Resolution(float(output.dpi), float(output.dpi))
    if source is None:
        return None
    turned = source.swapped() if swap else source
    if size == upright:
        return turned
    return turned.scaled(size[0] / upright[0], size[1] / upright[1])
