"""From the decoded source to one output's frames: orientation, size, colour and mode."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Final

from PIL import Image

from hotfolder.core.formats import (
    ALPHA_FORMATS,
    ANIMATION_FORMATS,
    FORMATS,
    NATIVE_MODES,
    PAGE_FORMATS,
)
from hotfolder.render.colour import approximated_srgb, colour, said_by_others, srgb_profile
from hotfolder.render.deep import Deep
from hotfolder.render.gainmap import GainMap
from hotfolder.render.metadata import Metadata
from hotfolder.render.notes import Notes
from hotfolder.render.orient import orient
from hotfolder.render.pixels import vips_view
from hotfolder.render.source import Source
from hotfolder.render.tonemap import to_sdr
from hotfolder.settings.outputs import Output


def fit(im: Image.Image, max_edge: int | None) -> Image.Image:
    """Shrink so the long edge is at most max_edge (Lanczos); never enlarge."""
    if max_edge is None or max(im.size) <= max_edge:
        return im
    scale = max_edge / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    if im.mode in {"1", "P", "PA"}:
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    elif im.mode.startswith("I;16"):
        # Resample at full precision (mode I), then back to 16 bits.
        return im.convert("I").resize(size, Image.Resampling.LANCZOS).convert("I;16")
    if im.mode in _VIPS_RESIZE_MODES:
        shrunk = _vips_resize(im, size)
        if shrunk is not None:
            return shrunk
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


# Modes libvips resizes as plain bands. Alpha stays with Pillow, which premultiplies while resampling.
_VIPS_RESIZE_MODES: Final = frozenset({"L", "RGB", "CMYK"})


def _vips_resize(im: Image.Image, size: tuple[int, int]) -> Image.Image | None:
    """The same Lanczos-3 shrink by libvips, about 3x faster than Pillow's here (46 vs 136 ms for
    12.5 MP to 2048 px, copies included); None if libvips would not give exactly `size`."""
    bands = len(im.getbands())
    # Over Pillow's memory, RGB comes padded to 4 bands: all 4 are shrunk (cheaper than extracting
    # 3 first, which makes libvips read pixel by pixel: 75 vs 135 ms) and the padding dropped after.
    src, alive = vips_view(im)
    out = src.resize(size[0] / im.width, vscale=size[1] / im.height, kernel="lanczos3")
    if out.bands != bands:
        out = out[0:bands]
    if (out.width, out.height) != size:
        return None
    pixels = out.write_to_memory()
    del alive  # Pillow's memory may go only once libvips has read it
    # Not Image.frombytes: it clears the new image before filling it (9 ms at 2048 px here).
    shrunk = Image.new(im.mode, size, None)
    shrunk.frombytes(pixels)
    return shrunk


def to_mode(im: Image.Image, output: Output) -> Image.Image:
    """Convert to a mode the encoder holds exactly; alpha is flattened only where it cannot be kept."""
    fmt = output.format
    mode = im.mode
    if mode == "P" and fmt == "png":
        return im
    if mode in NATIVE_MODES[fmt] and mode != "P":
        return im
    if mode.startswith("I;16") or mode in {"I", "F"}:
        if 16 in FORMATS[fmt].bits and mode != "F":
            return im.convert("I;16") if mode != "I;16" else im
        if fmt == "tiff":
            return im  # float TIFF holds F exactly
        # Scale wide samples into 8 bits; convert("L") would clamp instead (Pillow #1108).
        # point() scales only modes I and F, so 16-bit grey goes through I first.
        scale = 1 / 257 if mode != "F" else 255.0
        wide = im.convert("I") if mode.startswith("I;16") else im
        return wide.point(lambda v: v * scale + 0.5).convert("L")
    has_alpha = im.has_transparency_data or mode in {"RGBA", "LA", "PA", "RGBa", "La"}
    if has_alpha:
        if fmt in ALPHA_FORMATS:
            if mode in {"LA", "La"} and "LA" in NATIVE_MODES[fmt]:
                return im.convert("LA")
            return im.convert("RGBA")
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, output.background)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode in {"1", "L"}:
        return im.convert("L") if "L" in NATIVE_MODES[fmt] else im.convert("RGB")
    if mode == "CMYK":
        return im.convert("RGB")  # reached only when colour() left CMYK for a format that needs RGB
    return im.convert("RGB")


@dataclass(frozen=True, eq=False)
class Rendered:
    """One output's pixels and the metadata to embed, ready for its encoder (policy.py fills in the
    metadata by making a new one)."""

    views: list[Image.Image] | None  # None when `deep` holds the one frame
    meta: Metadata
    durations: list[int] | None = None  # animation timing; None for a still or for pages
    loop: int | None = None
    deep: Deep | None = None  # full-precision pixels, when the output keeps them
    gain_map: GainMap | None = None  # an Ultra HDR source's map, fitted to these pixels (gain_map = "keep")
    primary: int = 0  # which of several images is the primary one (a multi-image HEIF)
    # Each image's own metadata where the format keeps several with theirs (HEIF), by frame; else ().
    images_meta: tuple[Metadata, ...] = ()

    @cached_property
    def frames(self) -> list[Image.Image]:
        """The frames at 8 bits; a deep output's view is made only if a writer asks for it."""
        if self.views is not None:
            return self.views
        assert self.deep is not None, "a Rendered holds its pixels in views or in deep"
        return [self.deep.to_8bit()]

    @property
    def frame_count(self) -> int:
        return 1 if self.views is None else len(self.views)

    @property
    def size(self) -> tuple[int, int]:
        return self.deep.size if self.deep is not None else self.frames[0].size


def wants_deep(source: Source, output: Output) -> bool:
    """Whether this output keeps more than 8 bits (PNG, TIFF; HEIF at 10/12 bits, also when asked for
    an 8-bit source) or the extra channels (TIFF)."""
    if output.format == "heif" and output.bit_depth in (10, 12):
        return True
    if source.deep is None:
        # 16-bit grey (I;16) is held by Pillow, not in `deep`: HEIF keeps it at 10/12 bits unless 8 is asked.
        return output.format == "heif" and output.bit_depth != 8 and _grey16(source.image.mode)
    if output.format == "tiff":
        return True
    if output.format in ("png", "jxl"):
        return source.deep.bits > 8
    if output.format == "avif":  # a 10-bit AVIF only for HDR kept (render/capabilities.py)
        return source.colour.hdr and output.hdr == "keep" and source.deep.bits > 8
    return output.format == "heif" and output.bit_depth != 8 and source.deep.bits > 8


def _grey16(mode: str) -> bool:
    return mode.startswith("I;16") or mode == "I"


def render(
    source: Source, output: Output, notes: Notes, resized: dict[int, Image.Image] | None = None
) -> Rendered:
    """Frames, size, orientation, colour and mode for one output; metadata follows in the pipeline.

    `resized` (one per job) keeps the single-frame images already shrunk for other outputs: a
    smaller output starts from one at least twice its size instead of from the full image.
    """
    if source.colour.hdr and output.hdr == "tonemap":
        why = f"{source.colour.words}: tone-mapped to SDR sRGB (BT.2390 EETF, reference white 203 cd/m²)"
        notes.warn("colour.tonemapped", format=output.format, error=why)
        source = to_sdr(source)
    upright = output.orientation == "upright"
    turn = source.orientation if upright else 1
    if source.channels and not (output.format == "tiff" and source.deep is not None and source.deep.extra):
        kept = "colour and alpha only" if output.format != "tiff" else "none of them from this source"
        notes.warn(
            "channels.dropped", format=output.format, error=f"{source.channels}: {output.format} keeps {kept}"
        )
    if wants_deep(source, output):
        if source.deep is not None:
            held = source.deep
        elif _grey16(source.image.mode):
            held = Deep.from_grey16(source.image, source.meta.icc)
        else:
            held = Deep.from_8bit(source.image, source.meta.icc)
        deep = held.fitted(output.max_edge).oriented(turn)
        if output.format != "tiff":
            deep = deep.visible
        if output.icc == "srgb" and not source.colour.hdr:  # HDR here is kept (hdr = "keep")
            if deep.icc is None and source.meta.cicp is not None:
                approximated_srgb(source.colour, "RGB", notes)
            said_by_others(source.colour, output.format, notes)
            deep = deep.to_srgb(srgb_profile())
        elif deep.icc is None and source.meta.cicp is not None and output.format != "heif":
            deep = replace(deep, icc=approximated_srgb(source.colour, "RGB", notes))
        meta = source.meta if deep.icc == source.meta.icc else _with_icc(source.meta, deep.icc)
        return Rendered(views=None, meta=meta, deep=deep)
    if source.deep is not None and source.deep.bits > 8:
        notes.warn(
            "precision.reduced",
            format=output.format,
            error=f"{source.deep.bits}-bit source written at 8 bits per sample (scaled)",
        )
    wide = source.image.mode.startswith("I;16") or source.image.mode in {"I", "F"}
    if wide and 16 not in FORMATS[output.format].bits:
        notes.warn(
            "precision.reduced",
            format=output.format,
            error=f"{source.image.mode} samples written at 8 bits (scaled)",
        )
    frames, durations = _frames_for(source, output, notes)
    out: list[Image.Image] = []
    icc: bytes | None = None
    for frame in frames:
        im = orient(_fitted(frame, output.max_edge, resized if len(frames) == 1 else None), turn)
        im, icc = colour(im, source.meta, output, notes, source.colour)
        out.append(to_mode(im, output))
    meta = source.meta if icc == source.meta.icc else _with_icc(source.meta, icc)
    gain_map = None
    if output.gain_map == "keep" and source.gain_map is not None:
        gain_map = source.gain_map.fitted(turn, out[0].size)
    primary = source.primary_index if len(out) > 1 and source.format == "heif" else 0
    return Rendered(
        views=out,
        meta=meta,
        durations=durations,
        loop=source.loop if durations else None,
        gain_map=gain_map,
        primary=primary,
    )


def _fitted(frame: Image.Image, max_edge: int | None, resized: dict[int, Image.Image] | None) -> Image.Image:
    """fit(), from the smallest already-shrunk image that is at least twice max_edge, when there is one.

    Lanczos from twice the size or more is indistinguishable from Lanczos from the full image (the
    2x margin is what Pillow's reducing_gap relies on too), at a fraction of the cost.
    """
    if resized is None or max_edge is None or max(frame.size) <= max_edge:
        return fit(frame, max_edge)
    bigger = [im for edge, im in resized.items() if edge >= 2 * max_edge and im.mode == frame.mode]
    base = min(bigger, key=lambda im: im.width) if bigger else frame
    result = fit(base, max_edge)
    resized[max_edge] = result
    return result


def _frames_for(source: Source, output: Output, notes: Notes) -> tuple[list[Image.Image], list[int] | None]:
    """The frames this output holds; what the format cannot hold is logged, never dropped silently."""
    if source.frame_count <= 1:
        return [source.image], None
    kind = "frames" if source.animated else "pages" if source.format == "tiff" else "images"
    if output.frames == "first":
        return [source.image], None
    if source.format == "heif" and output.format != "heif":
        why = f"HEIF holds {source.frame_count} images; outputs use the primary image"
        notes.warn("frames.dropped", format=output.format, error=why)
        return [source.image], None
    can_animate = source.animated and output.format in ANIMATION_FORMATS
    # Several images in one HEIF (a multi-image HEIF, a multi-page TIFF); pillow-heif writes no sequence,
    # so an animation to HEIF is its first frame, as before.
    can_page = output.format in PAGE_FORMATS and not (source.animated and output.format == "heif")
    if not (can_animate or can_page):
        why = f"{output.format} holds one image; {source.frame_count - 1} {kind} dropped"
        notes.warn("frames.dropped", format=output.format, error=why)
        return [source.image], None
    frames = source.frames()
    if source.animated and not can_animate:
        notes.warn("timing.dropped", format=output.format, error="TIFF pages carry no frame timing")
        return [f for f, _ in frames], None
    durations = [int(d) if d is not None else 0 for _, d in frames] if source.animated else None
    return [f for f, _ in frames], durations


def _with_icc(meta: Metadata, icc: bytes | None) -> Metadata:
    return replace(meta, icc=icc, cicp=None)
