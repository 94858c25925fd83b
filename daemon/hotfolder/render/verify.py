"""Verifying an output: it decodes, and a lossless output holds exactly the pixels rendered."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Final

from PIL import Image, ImageChops, ImageStat

from hotfolder.core.formats import PIL_FORMAT
from hotfolder.decide import jxl
from hotfolder.decide.sniff import register_codecs
from hotfolder.errors import EncodeError, InputError
from hotfolder.render import deep as deepmod
from hotfolder.render import private
from hotfolder.render.transform import Rendered
from hotfolder.settings.outputs import Output


def verify(data: bytes, rendered: Rendered, output: Output) -> None:
    """Decode a written output again; lossless outputs must equal the rendered pixels exactly."""
    if output.format == "jxl":
        _verify_jxl(data, rendered, output)
        return
    register_codecs()
    try:
        with Image.open(io.BytesIO(data), formats=(PIL_FORMAT[output.format],)) as check:
            frames = getattr(check, "n_frames", 1)
            size = check.size
            timed = rendered.durations is not None and rendered.frame_count > 1
            timeline: str | None = None
            if timed:
                # An animation is judged as a viewer sees it, not by its frame count: writers merge
                # repeated frames (Pillow's APNG and WebP) and that changes nothing on screen.
                timeline = timeline_problem(check, rendered, lossless=output.is_lossless)
                same = True
            elif rendered.deep is None:
                if _reduced(check, output, rendered):
                    # A lossy JPEG is judged by decoding its whole stream (every entropy-coded block: a
                    # truncated or broken stream fails as at full size) at 1/8 scale: 2 vs 14 ms at 2048 px.
                    check.draft(check.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
                check.load()
                same = _same_pixels(check, rendered) if output.is_lossless else True
            else:
                # Pillow reads the structure; the samples are decoded once, at full precision, by the
                # deep reader (a second 8-bit decode by Pillow cost 1.0 s on a 24 MP 16-bit TIFF).
                same = _same_deep(data, rendered.deep, output)
            leaked = private.leaks_in(check, output) if private.strips_anything(output) else []
            map_size = None
            if rendered.gain_map is not None and frames > 1:  # an Ultra HDR JPEG: MPF's second image
                check.seek(1)
                check.load()
                map_size = check.size
    except EncodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the output is bad
        raise EncodeError(f"the written {output.format} does not decode again: {exc}") from None
    if timed and timeline is not None:
        raise EncodeError(f"the written {output.format} {timeline}")
    if size != rendered.size:
        raise EncodeError(f"written {output.format} is {size[0]}x{size[1]}, expected {rendered.size}")
    expected = rendered.frame_count + (rendered.gain_map is not None)
    if frames != expected and not timed:
        raise EncodeError(f"written {output.format} has {frames} frames, expected {expected}")
    if rendered.gain_map is not None and map_size != rendered.gain_map.size:
        raise EncodeError(f"the written gain map is {map_size}, expected {rendered.gain_map.size}")
    if not same:
        raise EncodeError(f"lossless {output.format} output differs from the source pixels")
    if leaked:
        raise EncodeError(
            f"the written {output.format} still holds {', '.join(leaked)}, which its options strip"
        )


def _verify_jxl(data: bytes, rendered: Rendered, output: Output) -> None:
    """A JPEG XL decoded again whole by libjxl (a truncated one fails): its size, and when lossless
    every sample equal to what was rendered (16-bit as 16-bit, alpha included)."""
    import numpy as np  # noqa: PLC0415 - samples are compared as arrays

    width, height = rendered.size
    try:
        got = jxl.decode(data, max_pixels=width * height)
    except InputError as exc:
        raise EncodeError(f"the written jxl does not decode again: {exc}") from None
    if (got.header.width, got.header.height) != rendered.size:
        raise EncodeError(f"written jxl is {got.header.width}x{got.header.height}, expected {rendered.size}")
    if private.strips_anything(output):
        exif, xmp = None, None
        for box in jxl.boxes(data):
            if box.kind == b"Exif" and len(box.data) > 4:
                exif = Image.Exif()
                exif.load(box.data[4 + int.from_bytes(box.data[:4], "big") :])
            elif box.kind == b"xml ":
                xmp = box.data
        leaked = private.leaks(exif, xmp, None, output)
        if leaked:
            raise EncodeError(f"the written jxl still holds {', '.join(leaked)}, which its options strip")
    if not output.is_lossless:
        return
    if rendered.deep is not None:
        expected = rendered.deep.visible.pixels
    else:
        expected = np.asarray(rendered.frames[0])
        expected = expected[:, :, None] if expected.ndim == 2 else expected
    if got.pixels.dtype != expected.dtype or not np.array_equal(got.pixels, expected):
        raise EncodeError("lossless jxl output differs from the source pixels")


def _reduced(check: Image.Image, output: Output, rendered: Rendered) -> bool:
    """Whether this output may be decoded at reduced scale: a lossy JPEG without a gain map (nothing is
    compared pixel for pixel, and libjpeg's DCT scaling still decodes every block). libwebp, libheif and
    libavif have no such scaling: their lossy outputs are decoded whole at full size."""
    return not output.is_lossless and check.format in ("JPEG", "MPO") and rendered.gain_map is None


def _shown(frame: Image.Image) -> bytes:
    """What a frame puts on screen: RGBA, the colour of fully transparent pixels ignored (a writer may
    store anything there)."""
    rgba = frame.convert("RGBA")
    alpha = rgba.getchannel("A")
    if alpha.getextrema()[0] == 0:
        clear = Image.new("RGBA", rgba.size, (0, 0, 0, 0))
        rgba = Image.composite(rgba, clear, alpha.point(lambda v: 255 if v else 0))
    return rgba.tobytes()


# A frame shown this long or less is on no screen (a 240 Hz display refreshes every 4 ms): AVIF writes a
# GIF's 0 ms frames as 1 ms, which changes nothing a viewer sees.
_UNSEEN_MS: Final = 1


def _segments(frames: list[tuple[bytes | None, int]]) -> list[tuple[bytes | None, int, int]]:
    """(what is shown, from ms, for ms) with repeated consecutive frames merged; unseen frames left out."""
    out: list[tuple[bytes | None, int, int]] = []
    at = 0
    for shown, ms in frames:
        if ms <= _UNSEEN_MS:
            continue
        if out and shown is not None and out[-1][0] == shown:
            out[-1] = (shown, out[-1][1], out[-1][2] + ms)
        else:
            out.append((shown, at, ms))
        at += ms
    return out


def timeline_problem(check: Image.Image, rendered: Rendered, *, lossless: bool) -> str | None:
    """How a written animation's timeline differs from the rendered one, and at which time, or None. Each
    written frame is decoded once. Lossless outputs are compared pixel for pixel at every instant; lossy
    ones by when their content changes (every change of the source must be a frame boundary there)."""
    assert rendered.durations is not None
    written: list[tuple[bytes | None, int]] = []
    for index in range(getattr(check, "n_frames", 1)):
        check.seek(index)
        check.load()
        written.append((_shown(check) if lossless else None, int(check.info.get("duration") or 0)))
    source: list[tuple[bytes | None, int]] = [
        (_shown(f), int(d)) for f, d in zip(rendered.frames, rendered.durations, strict=True)
    ]
    if not any(ms > 0 for _, ms in source):  # no timing stored at all: the frames in order
        source = [(shown, 1) for shown, _ in source]
        written = [(shown, 1) for shown, _ in written]
    expected = _segments(source)
    total = sum(ms for _, _, ms in expected)
    if len(written) == 1 and len(expected) == 1 and not lossless:
        return None  # one picture shown all along: a still of it is the same on screen
    if len(written) == 1 and len(expected) == 1:
        return None if written[0][0] == expected[0][0] else "shows something else than the source"
    got_total = sum(ms for _, ms in written if ms > _UNSEEN_MS)
    if got_total != total:
        return f"lasts {got_total} ms, the source {total} ms"
    if lossless:
        got = _segments(written)
        for (want, start, ms), (have, got_start, got_ms) in zip(expected, got, strict=False):
            if want != have or ms != got_ms:
                # The same picture for a different time: they part where the shorter one ends.
                at = min(start, got_start) if want != have else start + min(ms, got_ms)
                return f"shows something else than the source at {at} ms"
        if len(got) != len(expected):
            return f"changes {len(got)} times where the source changes {len(expected)} times"
    else:
        # Lossy: a writer may merge frames that differ by less than its loss (libwebp does), but every
        # frame boundary it writes must be one of the source's: no frame starts at another time.
        allowed = {start + ms for _, start, ms in _segments([(None, ms) for _, ms in source])}
        at = 0
        for _, ms in written:
            if ms <= _UNSEEN_MS:
                continue
            at += ms
            if at not in allowed:
                return f"has a frame change at {at} ms, where the source has none"
    loop = check.info.get("loop")
    if rendered.loop is not None and loop is not None and int(loop) != int(rendered.loop):
        return f"loops {loop} times, the source {rendered.loop}"
    return None


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


# Mean difference per sample at 16x16, measured on the eight phone photos at 2048 px and on the 128 px
# hopper: the same pixels at q85 vs q70 4:2:0, 0.12-0.20 (hopper 1.05); brightened by 3 %, 0.47-3.53;
# mirrored, 8.7-50. Under 1.5 is another encoder's output of the same pixels (only asked where the
# mtime already matches to the nanosecond; coarser thumbnails let a tiny picture's artefacts through).
_SAME_PICTURE_MEAN: Final = 1.5
_THUMB: Final = (16, 16)
# A JPEG is decoded at a DCT scale giving at least this size: at 1/8 (its 16 px floor) the very pixels
# hotfolder wrote for dscn0010 (640x480) differed from themselves by 1.69 (chroma at 1/16, rounding);
# from >= 256 px by what the encoders differ by (see above).
_DRAFT: Final = (256, 256)


def same_picture(path: Path, rendered: Rendered, output: Output) -> bool:
    """Whether the file at `path` shows what `rendered` shows: the same format and size, and the same
    picture at 16 px (an earlier encoder's output of the same source, not byte-identical)."""
    if output.format == "jxl":
        return False  # no Pillow reader: an earlier JPEG XL is never taken for this output's
    register_codecs()
    try:
        with Image.open(path, formats=(PIL_FORMAT[output.format],)) as there:
            if there.size != rendered.size:
                return False
            there.draft("RGB", _DRAFT)
            theirs = there.convert("RGB").resize(_THUMB, Image.Resampling.BOX)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False
    ours = rendered.frames[0].convert("RGB").resize(_THUMB, Image.Resampling.BOX)
    difference = ImageStat.Stat(ImageChops.difference(theirs, ours)).mean
    return sum(difference) / len(difference) < _SAME_PICTURE_MEAN
