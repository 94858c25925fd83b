"""Synthetic DNGs for tests and the benchmark: a real photo's pixels as an RGGB Bayer mosaic.

The camera is made linear sRGB (ColorMatrix1 is XYZ->linear sRGB under D65, AsShotNeutral 1,1,1), so
a render with the camera's white balance gives back the photo's colours; EXIF is written in IFD0 and
an Exif IFD the way cameras do, so the transplant into outputs can be judged with exiftool.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

_XYZ_TO_SRGB = ((3.2406, -1.5372, -0.4986), (-0.9689, 1.8758, 0.0415), (0.0557, -0.2040, 1.0570))


def _entry(tag: int, kind: int, values: bytes | str | tuple[object, ...]) -> tuple[int, int, int, bytes]:
    if isinstance(values, str):
        data = values.encode() + b"\0"
        return tag, 2, len(data), data
    if isinstance(values, bytes):
        return tag, kind, len(values), values
    fmt = {1: "B", 3: "H", 4: "I", 5: "II", 10: "ii"}[kind]
    flat: list[object] = []
    for v in values:
        flat.extend(v if isinstance(v, tuple) else (v,))
    return tag, kind, len(values), struct.pack("<" + fmt[0] * len(flat), *flat)


def _ifd(entries: list[tuple[int, int, int, bytes]], at: int, next_ifd: int = 0) -> tuple[bytes, bytes]:
    """IFD bytes placed at `at`, and the out-of-line data that follows it."""
    entries = sorted(entries)
    head = struct.pack("<H", len(entries))
    extra_at = at + 2 + 12 * len(entries) + 4
    body, extra = b"", b""
    for tag, kind, count, data in entries:
        if len(data) <= 4:
            body += struct.pack("<HHI", tag, kind, count) + data.ljust(4, b"\0")
        else:
            body += struct.pack("<HHII", tag, kind, count, extra_at + len(extra))
            extra += data + (b"\0" if len(data) % 2 else b"")
    return head + body + struct.pack("<I", next_ifd), extra


def mosaic(photo: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """The photo (resized to `size` if given) as linear 16-bit RGGB samples."""
    with Image.open(photo) as im:
        rgb = im.convert("RGB")
        if size is not None:
            rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    s = np.asarray(rgb).astype(np.float32) / 255.0
    linear = np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)
    h, w = linear.shape[0] - linear.shape[0] % 2, linear.shape[1] - linear.shape[1] % 2
    lin = (linear[:h, :w] * 65535 + 0.5).astype(np.uint16)
    raw = np.zeros((h, w), np.uint16)
    raw[0::2, 0::2] = lin[0::2, 0::2, 0]  # R
    raw[0::2, 1::2] = lin[0::2, 1::2, 1]  # G
    raw[1::2, 0::2] = lin[1::2, 0::2, 1]  # G
    raw[1::2, 1::2] = lin[1::2, 1::2, 2]  # B
    return raw


def write_dng(
    path: Path,
    photo: Path,
    *,
    orientation: int = 1,
    size: tuple[int, int] | None = None,
    make: str = "Hotfolder",
    model: str = "Synthetic DNG",
    preview: int | None = None,
) -> Path:
    """A DNG of `photo` with the given EXIF orientation, and (`preview`: its long edge) an embedded
    JPEG preview in a SubIFD, stored as the sensor lies, as cameras store it; returns its path."""
    raw = mosaic(photo, size)
    h, w = raw.shape
    pixels = raw.astype("<u2").tobytes()
    exif_entries = [
        _entry(0x829A, 5, ((1, 250),)),  # ExposureTime 1/250
        _entry(0x829D, 5, ((56, 10),)),  # FNumber 5.6
        _entry(0x8827, 3, (200,)),  # ISO
        _entry(0x9003, 2, "2024:05:17 14:03:22"),  # DateTimeOriginal
        _entry(0x9291, 2, "42"),  # SubSecTimeOriginal
        _entry(0x9011, 2, "+02:00"),  # OffsetTimeOriginal
        _entry(0x920A, 5, ((350, 10),)),  # FocalLength 35 mm
        _entry(0xA431, 2, "SN-0042"),  # BodySerialNumber
        _entry(0xA434, 2, "Synthetic 35mm F1.4"),  # LensModel
    ]
    matrix = tuple((round(v * 10000), 10000) for row in _XYZ_TO_SRGB for v in row)
    ifd0_entries = [
        _entry(254, 4, (0,)),
        _entry(256, 4, (w,)),
        _entry(257, 4, (h,)),
        _entry(258, 3, (16,)),
        _entry(259, 3, (1,)),
        _entry(262, 3, (32803,)),
        _entry(271, 2, make),
        _entry(272, 2, model),
        _entry(273, 4, (0,)),  # patched below
        _entry(274, 3, (orientation,)),
        _entry(277, 3, (1,)),
        _entry(278, 4, (h,)),
        _entry(279, 4, (len(pixels),)),
        _entry(284, 3, (1,)),
        _entry(305, 2, "hotfolder tests"),
        _entry(33421, 3, (2, 2)),
        _entry(33422, 1, bytes([0, 1, 1, 2])),
        _entry(34665, 4, (0,)),  # patched below
        _entry(50706, 1, bytes([1, 4, 0, 0])),
        _entry(50707, 1, bytes([1, 1, 0, 0])),
        _entry(50708, 2, f"{make} {model}"),
        _entry(50717, 4, (65535,)),
        _entry(50721, 10, matrix),
        _entry(50728, 5, ((1, 1), (1, 1), (1, 1))),
        _entry(50778, 3, (21,)),
    ]

    # Layout: header, IFD0 (+ its data), Exif IFD (+ data), the preview's IFD and JPEG, pixels.
    jpeg = b""
    if preview is not None:
        with Image.open(photo) as im:
            small = im.convert("RGB")
            small.thumbnail((preview, preview), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            small.save(out, "JPEG", quality=90)
            jpeg, jpeg_size = out.getvalue(), small.size
        ifd0_entries.append(_entry(330, 4, (0,)))  # patched below

    def preview_ifd(at: int, jpeg_at: int) -> tuple[bytes, bytes]:
        w2, h2 = jpeg_size
        return _ifd(
            [
                _entry(254, 4, (1,)),
                _entry(256, 4, (w2,)),
                _entry(257, 4, (h2,)),
                _entry(258, 3, (8, 8, 8)),
                _entry(259, 3, (7,)),
                _entry(262, 3, (6,)),
                _entry(273, 4, (jpeg_at,)),
                _entry(277, 3, (3,)),
                _entry(278, 4, (h2,)),
                _entry(279, 4, (len(jpeg),)),
            ],
            at,
        )

    def build(strip_at: int, exif_at: int, sub_at: int = 0) -> tuple[bytes, bytes]:
        entries = [e for e in ifd0_entries if e[0] not in (273, 34665, 330)]
        entries += [_entry(273, 4, (strip_at,)), _entry(34665, 4, (exif_at,))]
        if jpeg:
            entries.append(_entry(330, 4, (sub_at,)))
        return _ifd(entries, 8)

    ifd0, extra0 = build(0, 0)
    exif_at = 8 + len(ifd0) + len(extra0)
    exif_ifd, exif_extra = _ifd(exif_entries, exif_at)
    sub_at = exif_at + len(exif_ifd) + len(exif_extra)
    sub, sub_extra = preview_ifd(sub_at, 0) if jpeg else (b"", b"")
    jpeg_at = sub_at + len(sub) + len(sub_extra)
    strip_at = jpeg_at + len(jpeg)
    strip_at += strip_at % 2
    ifd0, extra0 = build(strip_at, exif_at, sub_at)
    sub, sub_extra = preview_ifd(sub_at, jpeg_at) if jpeg else (b"", b"")
    body = ifd0 + extra0 + exif_ifd + exif_extra + sub + sub_extra + jpeg
    body += b"\0" * (strip_at - 8 - len(body))
    path.write_bytes(b"II*\0" + struct.pack("<I", 8) + body + pixels)
    return path
