"""JPEG XL through libjxl's C API: a camera JPEG transcoded (its own coefficients, rebuildable byte for
byte), pixels encoded with their ICC profile and plain metadata boxes, and decoding with the profile.

libjxl is the one imagecodecs ships (its wheel carries libjxl 0.11 with the whole documented C API).
imagecodecs' own calls are used where they suffice (rebuilding a JPEG); the encoder is driven through
ctypes because imagecodecs' `jpegxl_encode` takes no ICC profile (a Display P3 or ProPhoto archive would
be labelled sRGB: wrong colours, silently), no metadata boxes and no effort for a transcode. pylibjxl
holds 8-bit RGB only; pillow-jxl-plugin pulls a GPL-3.0 crate; pyvips' wheel has no JPEG XL.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hotfolder.errors import EncodeError, InputError

if TYPE_CHECKING:
    import numpy as np

SIGNATURES: Final = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")
# The box hotfolder writes the archived JPEG's SHA-256 into (64 lowercase hex digits): a JPEG rebuild
# reads `jbrd` and the `Exif`/`xml ` boxes only, so this one never changes the bytes it gives back.
HASH_BOX: Final = b"hfsh"

_SUCCESS: Final = 0
_NEED_MORE_OUTPUT: Final = 2
_EFFORT: Final = 0  # JXL_ENC_FRAME_SETTING_EFFORT
_COMPRESS_BOXES: Final = 33  # JXL_ENC_FRAME_SETTING_JPEG_COMPRESS_BOXES
_UINT8, _UINT16 = 2, 3  # JxlDataType
# Decoder events and statuses (decode.h).
_DEC_ERROR, _DEC_NEED_MORE_INPUT, _DEC_NEED_IMAGE_OUT_BUFFER = 1, 2, 5
_DEC_BASIC_INFO, _DEC_COLOR_ENCODING, _DEC_FRAME, _DEC_FULL_IMAGE = 0x40, 0x100, 0x400, 0x1000
_PROFILE_TARGET_DATA: Final = 1
# H.273 code points -> JxlColorEncoding's enums (color_encoding.h), for an HDR signal said in the
# codestream itself. Display P3 is JXL's P3 primaries with a D65 white.
_JXL_PRIMARIES: Final = {1: 1, 9: 9, 12: 11}
_JXL_TRANSFERS: Final = {16: 16, 18: 18}  # PQ, HLG
_WHITE_D65, _INTENT_PERCEPTUAL = 1, 0


class _Preview(ctypes.Structure):
    _fields_ = (("xsize", ctypes.c_uint32), ("ysize", ctypes.c_uint32))


class _Animation(ctypes.Structure):
    _fields_ = (
        ("tps_numerator", ctypes.c_uint32),
        ("tps_denominator", ctypes.c_uint32),
        ("num_loops", ctypes.c_uint32),
        ("have_timecodes", ctypes.c_int),
    )


class _BasicInfo(ctypes.Structure):
    """JxlBasicInfo (codestream_header.h)."""

    _fields_ = (
        ("have_container", ctypes.c_int),
        ("xsize", ctypes.c_uint32),
        ("ysize", ctypes.c_uint32),
        ("bits_per_sample", ctypes.c_uint32),
        ("exponent_bits_per_sample", ctypes.c_uint32),
        ("intensity_target", ctypes.c_float),
        ("min_nits", ctypes.c_float),
        ("relative_to_max_display", ctypes.c_int),
        ("linear_below", ctypes.c_float),
        ("uses_original_profile", ctypes.c_int),
        ("have_preview", ctypes.c_int),
        ("have_animation", ctypes.c_int),
        ("orientation", ctypes.c_int),
        ("num_color_channels", ctypes.c_uint32),
        ("num_extra_channels", ctypes.c_uint32),
        ("alpha_bits", ctypes.c_uint32),
        ("alpha_exponent_bits", ctypes.c_uint32),
        ("alpha_premultiplied", ctypes.c_int),
        ("preview", _Preview),
        ("animation", _Animation),
        ("intrinsic_xsize", ctypes.c_uint32),
        ("intrinsic_ysize", ctypes.c_uint32),
        ("padding", ctypes.c_uint8 * 100),
    )


class _PixelFormat(ctypes.Structure):
    """JxlPixelFormat (types.h)."""

    _fields_ = (
        ("num_channels", ctypes.c_uint32),
        ("data_type", ctypes.c_int),
        ("endianness", ctypes.c_int),
        ("align", ctypes.c_size_t),
    )


class _ColorEncoding(ctypes.Structure):
    """JxlColorEncoding (color_encoding.h), filled by JxlColorEncodingSetToSRGB only."""

    _fields_ = (
        ("color_space", ctypes.c_int),
        ("white_point", ctypes.c_int),
        ("white_point_xy", ctypes.c_double * 2),
        ("primaries", ctypes.c_int),
        ("primaries_red_xy", ctypes.c_double * 2),
        ("primaries_green_xy", ctypes.c_double * 2),
        ("primaries_blue_xy", ctypes.c_double * 2),
        ("transfer_function", ctypes.c_int),
        ("gamma", ctypes.c_double),
        ("rendering_intent", ctypes.c_int),
    )


_P = ctypes.c_void_p
_SIGS: Final[dict[str, tuple[Any, tuple[Any, ...]]]] = {
    "JxlEncoderVersion": (ctypes.c_uint32, ()),
    "JxlEncoderCreate": (_P, (_P,)),
    "JxlEncoderDestroy": (None, (_P,)),
    "JxlEncoderGetError": (ctypes.c_int, (_P,)),
    "JxlEncoderUseContainer": (ctypes.c_int, (_P, ctypes.c_int)),
    "JxlEncoderUseBoxes": (ctypes.c_int, (_P,)),
    "JxlEncoderAddBox": (ctypes.c_int, (_P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)),
    "JxlEncoderCloseBoxes": (None, (_P,)),
    "JxlEncoderStoreJPEGMetadata": (ctypes.c_int, (_P, ctypes.c_int)),
    "JxlEncoderInitBasicInfo": (None, (ctypes.POINTER(_BasicInfo),)),
    "JxlEncoderSetBasicInfo": (ctypes.c_int, (_P, ctypes.POINTER(_BasicInfo))),
    "JxlEncoderSetICCProfile": (ctypes.c_int, (_P, ctypes.c_char_p, ctypes.c_size_t)),
    "JxlColorEncodingSetToSRGB": (None, (ctypes.POINTER(_ColorEncoding), ctypes.c_int)),
    "JxlEncoderSetColorEncoding": (ctypes.c_int, (_P, ctypes.POINTER(_ColorEncoding))),
    "JxlEncoderFrameSettingsCreate": (_P, (_P, _P)),
    "JxlEncoderFrameSettingsSetOption": (ctypes.c_int, (_P, ctypes.c_int, ctypes.c_int64)),
    "JxlEncoderSetFrameLossless": (ctypes.c_int, (_P, ctypes.c_int)),
    "JxlEncoderSetFrameDistance": (ctypes.c_int, (_P, ctypes.c_float)),
    "JxlEncoderDistanceFromQuality": (ctypes.c_float, (ctypes.c_float,)),
    "JxlEncoderAddJPEGFrame": (ctypes.c_int, (_P, ctypes.c_char_p, ctypes.c_size_t)),
    "JxlEncoderAddImageFrame": (ctypes.c_int, (_P, ctypes.POINTER(_PixelFormat), _P, ctypes.c_size_t)),
    "JxlEncoderCloseInput": (None, (_P,)),
    "JxlEncoderProcessOutput": (
        ctypes.c_int,
        (_P, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)),
    ),
    "JxlDecoderCreate": (_P, (_P,)),
    "JxlDecoderDestroy": (None, (_P,)),
    "JxlDecoderSubscribeEvents": (ctypes.c_int, (_P, ctypes.c_int)),
    "JxlDecoderSetKeepOrientation": (ctypes.c_int, (_P, ctypes.c_int)),
    "JxlDecoderSetInput": (ctypes.c_int, (_P, ctypes.c_char_p, ctypes.c_size_t)),
    "JxlDecoderCloseInput": (None, (_P,)),
    "JxlDecoderProcessInput": (ctypes.c_int, (_P,)),
    "JxlDecoderGetBasicInfo": (ctypes.c_int, (_P, ctypes.POINTER(_BasicInfo))),
    "JxlDecoderGetFrameHeader": (ctypes.c_int, (_P, ctypes.c_void_p)),
    "JxlDecoderGetICCProfileSize": (ctypes.c_int, (_P, ctypes.c_int, ctypes.POINTER(ctypes.c_size_t))),
    "JxlDecoderGetColorAsICCProfile": (ctypes.c_int, (_P, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)),
    "JxlDecoderImageOutBufferSize": (
        ctypes.c_int,
        (_P, ctypes.POINTER(_PixelFormat), ctypes.POINTER(ctypes.c_size_t)),
    ),
    "JxlDecoderSetImageOutBuffer": (ctypes.c_int, (_P, ctypes.POINTER(_PixelFormat), _P, ctypes.c_size_t)),
}
# JxlEncoderError (encode.h), for messages a user can act on.
_ENCODER_ERRORS: Final = {
    1: "libjxl failed",
    2: "out of memory",
    3: "the JPEG cannot be transcoded (its reconstruction data cannot be made)",
    4: "the input is malformed",
    128: "libjxl does not support it",
    129: "libjxl was used wrongly",
}


@cache
def _lib() -> Any:
    """libjxl as imagecodecs' wheel ships it (beside its package), else the system's."""
    import imagecodecs  # noqa: PLC0415 - only where JPEG XL is used

    # Its extension module loads libjxl and the libraries it needs (libjxl_cms, brotli, ...) by their
    # bundled names, which the dynamic loader then finds already loaded for ours.
    imagecodecs.jpegxl_version()
    shipped = sorted((Path(imagecodecs.__file__).parent.parent / "imagecodecs.libs").glob("libjxl-*.so*"))
    name: str | None
    if shipped:
        name = str(shipped[0])
    else:
        from ctypes.util import find_library  # noqa: PLC0415 - ~5 ms (subprocess, tempfile) at every start

        name = find_library("jxl")
    if name is None:
        raise EncodeError("JPEG XL: libjxl not found (install imagecodecs from its wheel)")
    lib = ctypes.CDLL(name)
    for fn, (restype, argtypes) in _SIGS.items():
        getattr(lib, fn).restype = restype
        getattr(lib, fn).argtypes = argtypes
    return lib


def hdr_encodable(primaries: int, transfer: int) -> bool:
    """Whether the codestream's colour encoding can say this PQ or HLG signal (BT.709, BT.2020 or
    Display P3 primaries)."""
    return primaries in _JXL_PRIMARIES and transfer in _JXL_TRANSFERS


def distance_for(quality: int) -> float:
    """libjxl's distance for a 0-100 quality on the scale cjxl and libjpeg use (90: distance 1.0)."""
    return float(_lib().JxlEncoderDistanceFromQuality(float(quality)))


def version() -> str:
    """libjxl's version, e.g. 0.11.2."""
    v = int(_lib().JxlEncoderVersion())
    return f"{v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"


@dataclass(frozen=True)
class Box:
    """One box of the container: its four-character type and its contents."""

    kind: bytes
    data: bytes


def exif_box(tiff: bytes) -> Box:
    """An `Exif` box: a 4-byte offset to the TIFF header (0), then the TIFF data (no `Exif\\0\\0`)."""
    return Box(b"Exif", b"\0\0\0\0" + tiff)


class _Encoder:
    """One libjxl encoder: boxes and one frame in, the file out."""

    def __init__(self, *, container: bool) -> None:
        self.lib = _lib()
        self.enc = self.lib.JxlEncoderCreate(None)
        if not self.enc:
            raise EncodeError("JPEG XL: libjxl could not make an encoder (out of memory)")
        self.check(self.lib.JxlEncoderUseContainer(self.enc, int(container)), "container")

    def check(self, status: int, what: str) -> None:
        if status != _SUCCESS:
            code = int(self.lib.JxlEncoderGetError(self.enc))
            raise EncodeError(f"JPEG XL: {what}: {_ENCODER_ERRORS.get(code, f'libjxl error {code}')}")

    def boxes(self, boxes: tuple[Box, ...]) -> None:
        if not boxes:
            return
        self.check(self.lib.JxlEncoderUseBoxes(self.enc), "boxes")
        for box in boxes:
            self.check(self.lib.JxlEncoderAddBox(self.enc, box.kind, box.data, len(box.data), 0), "box")
        self.lib.JxlEncoderCloseBoxes(self.enc)

    def settings(self, effort: int) -> Any:
        settings = self.lib.JxlEncoderFrameSettingsCreate(self.enc, None)
        self.check(self.lib.JxlEncoderFrameSettingsSetOption(settings, _EFFORT, effort), "effort")
        return settings

    def finish(self) -> bytes:
        self.lib.JxlEncoderCloseInput(self.enc)
        out = bytearray()
        chunk = ctypes.create_string_buffer(1 << 20)
        while True:
            start = ctypes.c_void_p(ctypes.addressof(chunk))
            avail = ctypes.c_size_t(len(chunk))
            status = self.lib.JxlEncoderProcessOutput(self.enc, ctypes.byref(start), ctypes.byref(avail))
            out += chunk.raw[: len(chunk) - avail.value]
            if status != _NEED_MORE_OUTPUT:
                self.check(status, "encode")
                return bytes(out)

    def close(self) -> None:
        self.lib.JxlEncoderDestroy(self.enc)


def transcode(jpeg: bytes, *, effort: int, boxes: tuple[Box, ...] = ()) -> bytes:
    """The JPEG's own DCT coefficients re-coded, with the data that rebuilds it byte for byte; its EXIF
    and XMP become plain (not Brotli) `Exif`/`xml ` boxes, which exiftool reads without a Brotli module.
    `boxes` are added after them (never read by a rebuild)."""
    enc = _Encoder(container=True)
    try:
        enc.check(enc.lib.JxlEncoderStoreJPEGMetadata(enc.enc, 1), "JPEG reconstruction data")
        settings = enc.settings(effort)
        enc.check(enc.lib.JxlEncoderFrameSettingsSetOption(settings, _COMPRESS_BOXES, 0), "plain boxes")
        enc.check(enc.lib.JxlEncoderAddJPEGFrame(settings, jpeg, len(jpeg)), "transcode")
        if boxes:
            enc.boxes(boxes)
        return enc.finish()
    finally:
        enc.close()


def encode(
    pixels: np.ndarray,
    *,
    bits: int,
    icc: bytes | None,
    lossless: bool,
    distance: float,
    effort: int,
    orientation: int = 1,
    hdr: tuple[int, int] | None = None,
    boxes: tuple[Box, ...] = (),
) -> bytes:
    """Pixels (height, width, bands: grey, grey+alpha, RGB, RGBA; uint8 or uint16) as JPEG XL, with
    their ICC profile (none: sRGB), the EXIF orientation they are stored in, and the boxes given. `hdr`:
    the H.273 (primaries, transfer) of a PQ or HLG signal, said by the codestream's colour encoding
    instead of the profile (see hdr_encodable)."""
    import numpy as np  # noqa: PLC0415 - only with pixels to encode

    height, width, bands = (int(n) for n in pixels.shape)
    deep = pixels.dtype == np.uint16
    buffer = np.ascontiguousarray(pixels)
    info = _BasicInfo()
    enc = _Encoder(container=True)
    try:
        lib = enc.lib
        lib.JxlEncoderInitBasicInfo(ctypes.byref(info))
        info.xsize, info.ysize = width, height
        info.bits_per_sample = bits
        info.num_color_channels = 1 if bands <= 2 else 3
        alpha = bands in (2, 4)
        info.num_extra_channels = int(alpha)
        info.alpha_bits = bits if alpha else 0
        info.uses_original_profile = int(lossless)
        info.orientation = orientation if 1 <= orientation <= 8 else 1
        enc.check(lib.JxlEncoderSetBasicInfo(enc.enc, ctypes.byref(info)), "image header")
        if hdr is not None and hdr_encodable(*hdr):
            colour = _ColorEncoding()
            colour.color_space = 1 if bands <= 2 else 0
            colour.white_point, colour.rendering_intent = _WHITE_D65, _INTENT_PERCEPTUAL
            colour.primaries, colour.transfer_function = _JXL_PRIMARIES[hdr[0]], _JXL_TRANSFERS[hdr[1]]
            enc.check(lib.JxlEncoderSetColorEncoding(enc.enc, ctypes.byref(colour)), "colour encoding")
        elif icc:
            enc.check(lib.JxlEncoderSetICCProfile(enc.enc, icc, len(icc)), "ICC profile")
        else:
            colour = _ColorEncoding()
            lib.JxlColorEncodingSetToSRGB(ctypes.byref(colour), int(bands <= 2))
            enc.check(lib.JxlEncoderSetColorEncoding(enc.enc, ctypes.byref(colour)), "colour encoding")
        enc.boxes(boxes)
        settings = enc.settings(effort)
        if lossless:
            enc.check(lib.JxlEncoderSetFrameLossless(settings, 1), "lossless")
        else:
            enc.check(lib.JxlEncoderSetFrameDistance(settings, distance), "distance")
        fmt = _PixelFormat(bands, _UINT16 if deep else _UINT8, 0, 0)
        enc.check(
            lib.JxlEncoderAddImageFrame(settings, ctypes.byref(fmt), buffer.ctypes.data, buffer.nbytes),
            "pixels",
        )
        return enc.finish()
    finally:
        enc.close()


class _FrameHeader(ctypes.Structure):
    """JxlFrameHeader (codestream_header.h): its duration is all that is read; the layer info after it
    is given room (JxlLayerInfo: 9 four-byte fields)."""

    _fields_ = (
        ("duration", ctypes.c_uint32),
        ("timecode", ctypes.c_uint32),
        ("name_length", ctypes.c_uint32),
        ("is_last", ctypes.c_int),
        ("layer_info", ctypes.c_uint32 * 9),
    )


@dataclass(frozen=True)
class Header:
    """What a JPEG XL says about itself before its pixels are decoded."""

    width: int
    height: int
    bits: int
    bands: int  # colour channels and alpha
    orientation: int
    animated: bool
    tick_ms: float = 0.0  # an animation's time unit in ms
    loops: int = 0  # an animation's repetitions (0: for ever)

    @property
    def shown(self) -> tuple[int, int]:
        """Width and height once the orientation is applied (5-8 turn it by a quarter)."""
        return (self.height, self.width) if self.orientation >= 5 else (self.width, self.height)


@dataclass(frozen=True)
class Decoded:
    """The first frame's pixels (height, width, bands; uint8 or uint16), as stored (not oriented), and
    the ICC profile that describes them."""

    header: Header
    pixels: np.ndarray
    icc: bytes | None


class _Decoder:
    def __init__(self, data: bytes, events: int, *, upright: bool = False) -> None:
        self.lib = _lib()
        self.dec = self.lib.JxlDecoderCreate(None)
        self.data = data  # libjxl reads from it until the decoder is destroyed
        self.lib.JxlDecoderSubscribeEvents(self.dec, events)
        self.lib.JxlDecoderSetKeepOrientation(self.dec, int(not upright))
        self.lib.JxlDecoderSetInput(self.dec, data, len(data))
        self.lib.JxlDecoderCloseInput(self.dec)

    def events(self) -> Iterator[int]:
        while True:
            status = int(self.lib.JxlDecoderProcessInput(self.dec))
            if status == _SUCCESS:
                return
            if status == _DEC_NEED_MORE_INPUT:
                raise InputError("JPEG XL: truncated (the codestream ends before the picture does)")
            if status == _DEC_ERROR:
                raise InputError("JPEG XL: libjxl cannot decode it (damaged or not JPEG XL)")
            yield status

    def header(self) -> Header:
        info = _BasicInfo()
        self.lib.JxlDecoderGetBasicInfo(self.dec, ctypes.byref(info))
        bands = int(info.num_color_channels) + (1 if info.alpha_bits else 0)
        animation = info.animation
        tick = (
            1000.0 * animation.tps_denominator / animation.tps_numerator if animation.tps_numerator else 0.0
        )
        return Header(
            int(info.xsize),
            int(info.ysize),
            int(info.bits_per_sample),
            bands,
            int(info.orientation),
            bool(info.have_animation),
            tick_ms=tick,
            loops=int(animation.num_loops),
        )

    def icc(self) -> bytes | None:
        size = ctypes.c_size_t()
        if (
            self.lib.JxlDecoderGetICCProfileSize(self.dec, _PROFILE_TARGET_DATA, ctypes.byref(size))
            != _SUCCESS
        ):
            return None
        buffer = ctypes.create_string_buffer(size.value)
        if self.lib.JxlDecoderGetColorAsICCProfile(self.dec, _PROFILE_TARGET_DATA, buffer, size.value):
            return None
        return buffer.raw

    def close(self) -> None:
        self.lib.JxlDecoderDestroy(self.dec)


def header(data: bytes) -> tuple[Header, bytes | None]:
    """Size, depth, channels and orientation from the codestream header, and the ICC profile of the
    decoded pixels; nothing is decoded."""
    dec = _Decoder(data, _DEC_BASIC_INFO | _DEC_COLOR_ENCODING)
    try:
        head: Header | None = None
        for event in dec.events():
            if event == _DEC_BASIC_INFO:
                head = dec.header()
            elif event == _DEC_COLOR_ENCODING and head is not None:
                return head, dec.icc()
        raise InputError("JPEG XL: no image header")
    finally:
        dec.close()


def decode(data: bytes, *, max_pixels: int, upright: bool = False) -> Decoded:
    """The first frame, whole: a truncated file is an error, never a partial picture. The pixel count is
    checked against max_pixels from the header, before anything is allocated for pixels. `upright`: the
    codestream's orientation applied (the pixels as shown), else the pixels as stored."""
    import numpy as np  # noqa: PLC0415 - only with pixels to decode

    dec = _Decoder(data, _DEC_BASIC_INFO | _DEC_COLOR_ENCODING | _DEC_FULL_IMAGE, upright=upright)
    try:
        head: Header | None = None
        icc: bytes | None = None
        pixels: np.ndarray | None = None
        for event in dec.events():
            if event == _DEC_BASIC_INFO:
                head = dec.header()
                if head.width * head.height > max_pixels:
                    raise InputError(
                        f"JPEG XL: {head.width}x{head.height} is more than max_image_pixels ({max_pixels})"
                    )
            elif event == _DEC_COLOR_ENCODING:
                icc = dec.icc()
            elif event == _DEC_NEED_IMAGE_OUT_BUFFER:
                assert head is not None
                deep = head.bits > 8
                fmt = _PixelFormat(head.bands, _UINT16 if deep else _UINT8, 0, 0)
                width, height = head.shown if upright else (head.width, head.height)
                pixels = np.empty((height, width, head.bands), np.uint16 if deep else np.uint8)
                dec.lib.JxlDecoderSetImageOutBuffer(
                    dec.dec, ctypes.byref(fmt), pixels.ctypes.data, pixels.nbytes
                )
            elif event == _DEC_FULL_IMAGE:
                assert head is not None and pixels is not None
                return Decoded(head, pixels, icc)
        raise InputError("JPEG XL: no image in it")
    finally:
        dec.close()


def decode_frames(
    data: bytes, *, max_pixels: int
) -> tuple[Header, list[tuple[np.ndarray, int]], bytes | None]:
    """Every frame of an animation as shown (coalesced, upright) with its duration in ms, and the ICC
    profile; the frames together may hold at most max_pixels (a long animation is a bomb too)."""
    import numpy as np  # noqa: PLC0415

    dec = _Decoder(data, _DEC_BASIC_INFO | _DEC_COLOR_ENCODING | _DEC_FRAME | _DEC_FULL_IMAGE, upright=True)
    try:
        head: Header | None = None
        icc: bytes | None = None
        frames: list[tuple[np.ndarray, int]] = []
        duration = 0
        pixels: np.ndarray | None = None
        for event in dec.events():
            if event == _DEC_BASIC_INFO:
                head = dec.header()
            elif event == _DEC_COLOR_ENCODING:
                icc = dec.icc()
            elif event == _DEC_FRAME:
                assert head is not None
                if (len(frames) + 1) * head.width * head.height > max_pixels:
                    raise InputError(
                        f"JPEG XL: {len(frames) + 1} frames of {head.width}x{head.height} are more than "
                        f"max_image_pixels ({max_pixels}) together"
                    )
                frame = _FrameHeader()
                dec.lib.JxlDecoderGetFrameHeader(dec.dec, ctypes.byref(frame))
                duration = round(frame.duration * head.tick_ms)
            elif event == _DEC_NEED_IMAGE_OUT_BUFFER:
                assert head is not None
                deep = head.bits > 8
                fmt = _PixelFormat(head.bands, _UINT16 if deep else _UINT8, 0, 0)
                width, height = head.shown
                pixels = np.empty((height, width, head.bands), np.uint16 if deep else np.uint8)
                dec.lib.JxlDecoderSetImageOutBuffer(
                    dec.dec, ctypes.byref(fmt), pixels.ctypes.data, pixels.nbytes
                )
            elif event == _DEC_FULL_IMAGE:
                assert pixels is not None
                frames.append((pixels, duration))
        if head is None or not frames:
            raise InputError("JPEG XL: no image in it")
        return head, frames, icc
    finally:
        dec.close()


def boxes(data: bytes) -> Iterator[Box]:
    """The container's boxes (nothing for a bare codestream); a `brob` box is given decompressed under
    the type it wraps. Stops quietly at a box that runs past the end (the decoder judges the file)."""
    if not data.startswith(SIGNATURES[1]):
        return
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            if pos + 16 > len(data):
                return
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            head = 16
        elif size == 0:
            size = len(data) - pos
        if size < head or pos + size > len(data):
            return
        body = data[pos + head : pos + size]
        if kind == b"brob" and len(body) >= 4:
            import imagecodecs  # noqa: PLC0415

            yield Box(body[:4], bytes(imagecodecs.brotli_decode(body[4:])))
        else:
            yield Box(kind, body)
        pos += size


def rebuild(data: bytes) -> bytes:
    """The JPEG a transcoded JPEG XL was made from, byte for byte (its `jbrd` reconstruction data)."""
    import imagecodecs  # noqa: PLC0415

    try:
        return bytes(imagecodecs.jpegxl_decode_jpeg(data, numthreads=1))
    except imagecodecs.JpegxlError as exc:
        raise InputError(f"JPEG XL: cannot rebuild the JPEG from it: {exc}") from None


def recorded_sha256(data: bytes) -> str | None:
    """The SHA-256 hotfolder recorded of the JPEG it archived in this JPEG XL, or None."""
    found = next((box.data for box in boxes(data) if box.kind == HASH_BOX), b"")
    text = found.decode("ascii", "replace")
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


def rebuildable(data: bytes) -> bool:
    """Whether it holds JPEG reconstruction data (a `jbrd` box)."""
    return any(box.kind == b"jbrd" for box in boxes(data))
