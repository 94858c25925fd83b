"""Verifying an output: it decodes, and a lossless output holds exactly the pixels rendered."""

from __future__ import annotations

import io
from typing import Final

from PIL import Image, ImageChops

from hotfolder.core.formats import PIL_FORMAT
from hotfolder.decide.sniff import register_codecs
from hotfolder.errors import EncodeError
from hotfolder.render import deep as deepmod
from hotfolder.render.transform import Rendered
from hotfolder.settings.outputs import Output


def verify(data: bytes, rendered: Rendered, output: Output) -> None:
    """Decode a written output again; lossless outputs must equal the rendered pixels exactly."""
    register_codecs()
    try:
        with Image.open(io.BytesIO(data), formats=(PIL_FORMAT[output.format],)) as check:
            frames = getattr(check, "n_frames", 1)
            size = check.size
            if rendered.deep is None:
                check.load()
                same = _same_pixels(check, rendered) if output.is_lossless else True
            else:
                # Pillow reads the structure; the samples are decoded once, at full precision, by the
                # deep reader (a second 8-bit decode by Pillow cost 1.0 s on a 24 MP 16-bit TIFF).
                same = _same_deep(data, rendered.deep, output)
            map_size = None
            if rendered.gain_map is not None and frames > 1:  # an Ultra HDR JPEG: MPF's second image
                check.seek(1)
                check.load()
                map_size = check.size
    except EncodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the output is bad
        raise EncodeError(f"the written {output.format} does not decode again: {exc}") from None
    if size != rendered.size:
        raise EncodeError(f"written {output.format} is {size[0]}x{size[1]}, expected {rendered.size}")
    expected = rendered.frame_count + (rendered.gain_map is not None)
    if frames != expected:
        raise EncodeError(f"written {output.format} has {frames} frames, expected {expected}")
    if rendered.gain_map is not None and map_size != rendered.gain_map.size:
        raise EncodeError(f"the written gain map is {map_size}, expected {rendered.gain_map.size}")
    if not same:
        raise EncodeError(f"lossless {output.format} output differs from the source pixels")


def _same_deep(data: bytes, deep: deepmod.Deep, output: Output) -> bool:
    """A deep output decoded again (which a damaged file fails) and, if lossless, equal sample for sample."""
    if output.format != "heif":
        return deepmod.written_equals(data, deep)  # PNG and TIFF: always lossless
    got = deepmod.load_heif(data, bits=16).pixels
    if not output.is_lossless:
        return True
    # Stored at 10/12 bits: compare at the precision that was kept.
    depth = output.bit_depth or (deep.bits if deep.bits in (10, 12) else 12)
    return deepmod.same_samples(got >> (16 - depth), deep.pixels >> (16 - depth))


def _same_pixels(check: Image.Image, rendered: Rendered) -> bool:
    for index, expected in enumerate(rendered.frames):
        check.seek(index)
        if not _equal(check, expected):
            return False
    return True


_DIFFERENCE_MODES: Final = frozenset({"L", "LA", "RGB", "RGBA", "CMYK"})


def _equal(a: Image.Image, b: Image.Image) -> bool:
    """Same pixels, comparing in a mode both widen to without loss (J1/J2 of FIDELITY.md)."""
    if a.size != b.size:
        return False
    if a.mode == b.mode and a.mode in _DIFFERENCE_MODES:
        # |a - b| is zero everywhere iff the pixels are equal: in C, a third of tobytes()'s time.
        return ImageChops.difference(a, b).getbbox(alpha_only=False) is None
    if a.mode == b.mode and a.mode != "P":
        return a.tobytes() == b.tobytes()
    if a.mode.startswith("I;16") or b.mode.startswith("I;16"):
        return a.convert("I").tobytes() == b.convert("I").tobytes()
    alpha = (
        any(m in {"RGBA", "LA", "PA"} for m in (a.mode, b.mode))
        or a.has_transparency_data
        or b.has_transparency_data
    )
    common = "RGBA" if alpha else "L" if {a.mode, b.mode} <= {"1", "L"} else "RGB"
    return a.convert(common).tobytes() == b.convert(common).tobytes()
