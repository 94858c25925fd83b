"""HDR (PQ, HLG) to SDR sRGB for outputs with `hdr = "tonemap"`: made once per source, at 16 bits.

The method, all in linear light on float32:
1. the signal to display light: PQ by SMPTE ST 2084's EOTF (cd/m²); HLG by BT.2100's inverse OETF
   and its OOTF for a 1000 cd/m² display (gamma 1.2 on the scene luminance);
2. the source primaries to BT.709's by their RGB → XYZ matrices (Bradford where the whites differ);
3. ITU-R BT.2390's EETF (the Hermite knee, in the PQ domain) on max(R, G, B), from the source peak
   (the picture's brightest pixel, at least 1000 cd/m², BT.2408's usual mastering peak) down to the
   SDR reference white of 203 cd/m² (BT.2408), every channel scaled by the same ratio, so hue and
   the saturation of what is not clipped are kept;
4. 203 cd/m² taken as SDR's 1.0, out-of-gamut values clipped, the sRGB OETF, 16 bits.
"""

from __future__ import annotations

import weakref
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from hotfolder.decide.colourspace import HLG, PRIMARIES, ColourSpace
from hotfolder.render import transfer as tf
from hotfolder.render.colour import srgb_profile
from hotfolder.render.deep import Deep
from hotfolder.render.profiles import adaptation, rgb_to_xyz
from hotfolder.render.source import Source

if TYPE_CHECKING:
    import numpy as np
else:
    from hotfolder.render.deep import np

SDR_WHITE: Final = 203.0  # cd/m², BT.2408's HDR reference white, shown as SDR's 100%
MIN_PEAK: Final = 1000.0
_STRIP: Final = 512  # rows per pass: 24 MP at float32 would hold ~1.5 GB of temporaries at once
_D65_XYZ: Final = (0.3127 / 0.3290, 1.0, (1 - 0.3127 - 0.3290) / 0.3290)


# Each HDR source's SDR rendering, while that source lives: one tone map serves all its outputs.
_SDR: weakref.WeakKeyDictionary[Source, Source] = weakref.WeakKeyDictionary()


def to_sdr(source: Source) -> Source:
    """The source tone-mapped to SDR sRGB, as a new Source (made once per source)."""
    if (done := _SDR.get(source)) is not None:
        return done
    held = source.deep if source.deep is not None else Deep.from_8bit(source.image, None)
    pixels = sdr_pixels(held.visible.pixels, source.colour)
    icc = srgb_profile()
    deep = Deep(pixels=pixels, bits=held.bits, icc=icc)
    srgb = ColourSpace(origin="icc")
    meta = replace(source.meta, icc=icc, cicp=None)
    sdr = _SDR[source] = replace(source, view=None, deep=deep, meta=meta, colour=srgb, channels=None)
    return sdr


def sdr_pixels(pixels: np.ndarray, colour: ColourSpace) -> np.ndarray:
    """uint16 HDR samples (colour, then alpha if any) → uint16 SDR sRGB samples, alpha unchanged."""
    assert colour.cicp is not None and colour.hdr
    _, xys = colour.primaries or PRIMARIES[colour.cicp.primaries]
    to_709 = _matrix(xys)
    luma = np.asarray(rgb_to_xyz(xys)[1], dtype=np.float32)  # the source's luminance weights
    hlg = colour.cicp.transfer == HLG
    rgb = pixels[:, :, :3]
    peak = MIN_PEAK if hlg else max(MIN_PEAK, min(tf.PQ_PEAK, float(tf.pq_eotf(_unit(rgb.max())))))
    out = np.empty_like(pixels)
    for top in range(0, pixels.shape[0], _STRIP):
        strip = _unit(rgb[top : top + _STRIP])
        nits = _hlg_display(strip, luma) if hlg else tf.pq_eotf(strip)
        mapped = _eetf_max_rgb(nits @ to_709.T, peak) / SDR_WHITE
        out[top : top + _STRIP, :, :3] = np.round(tf.srgb_oetf(mapped) * 65535).astype(np.uint16)
    if pixels.shape[2] > 3:
        out[:, :, 3:] = pixels[:, :, 3:]
    return out


def _unit(v: Any) -> Any:
    return np.asarray(v, dtype=np.float32) / np.float32(65535)


def _matrix(xys: tuple[tuple[float, float], ...]) -> Any:
    """Linear source RGB → linear BT.709 RGB."""
    src = rgb_to_xyz(xys)
    if xys[3] != PRIMARIES[1][1][3]:
        src = adaptation(xys[3], to=_D65_XYZ) @ src
    return (np.linalg.inv(rgb_to_xyz(PRIMARIES[1][1])) @ src).astype(np.float32)


def _hlg_display(signal: Any, luma: Any) -> Any:
    """HLG signal → display light (cd/m²) by BT.2100's OOTF for a 1000 cd/m² display, black 0."""
    scene = tf.hlg_inverse_oetf(signal)
    ys = np.maximum(scene @ luma, 1e-12)[..., None]
    return tf.HLG_PEAK * np.power(ys, tf.HLG_GAMMA - 1) * scene


def _eetf_max_rgb(nits: Any, peak: float) -> Any:
    """BT.2390's EETF applied to max(R, G, B), every channel scaled alike; [0, peak] → [0, SDR_WHITE]."""
    nits = np.maximum(nits, 0)
    m = np.max(nits, axis=-1, keepdims=True)
    source_max = float(tf.pq_inverse_eotf(np.float32(peak)))
    max_lum = float(tf.pq_inverse_eotf(np.float32(SDR_WHITE))) / source_max
    e1 = tf.pq_inverse_eotf(m) / source_max
    knee = 1.5 * max_lum - 0.5
    if knee >= 1:  # the source fits under reference white: nothing to compress
        return nits
    t = np.clip((e1 - knee) / (1 - knee), 0, 1)
    t2, t3 = t * t, t * t * t
    spline = (2 * t3 - 3 * t2 + 1) * knee + (t3 - 2 * t2 + t) * (1 - knee) + (-2 * t3 + 3 * t2) * max_lum
    e2 = np.where(e1 < knee, e1, spline)
    mapped = tf.pq_eotf(e2 * source_max)
    return nits * (mapped / np.maximum(m, 1e-6))
