"""Colour: the output's profile (kept, converted to sRGB, or dropped)."""

from __future__ import annotations

import io
import struct
from functools import cache, lru_cache

from PIL import Image, ImageCms

from hotfolder.core.formats import NATIVE_MODES
from hotfolder.decide.colourspace import SRGB, ColourSpace
from hotfolder.errors import EncodeError
from hotfolder.render.metadata import Metadata
from hotfolder.render.notes import Notes
from hotfolder.settings.outputs import Output


@cache
def srgb_profile() -> bytes:
    """The sRGB profile embedded in converted outputs (lcms' built-in, 588 bytes).

    lcms stamps the creation time into the header, which would make every run's output differ
    (and defeat skip_identical and redo-after-crash); the date is pinned. The profile ID is 0.
    """
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
    return bytes(data)


def colour(
    im: Image.Image, meta: Metadata, output: Output, notes: Notes, space: ColourSpace = SRGB
) -> tuple[Image.Image, bytes | None]:
    """Pixels and the ICC profile to embed, as the output's `icc` option and format require.

    A colour described without ICC (NCLX, cICP, EXIF) arrives with the profile built from it in
    `meta.icc`, so it is kept or converted like any ICC-described one. HDR reaching here is kept
    (`hdr = "keep"`): its pixels are never put through an SDR conversion."""
    fmt = output.format
    cmyk_out = im.mode == "CMYK" and "CMYK" in NATIVE_MODES[fmt] and output.icc == "keep"
    keep = output.icc == "keep" or space.hdr
    if keep and (im.mode != "CMYK" or cmyk_out):
        if meta.icc is None and meta.cicp is not None:
            return im, approximated_srgb(space, im.mode, notes) if fmt != "heif" else None
        return im, meta.icc
    # icc = "srgb", or CMYK that the format cannot hold: convert through the embedded profile.
    if output.icc == "keep":
        why = f"{fmt} cannot hold CMYK: converted to sRGB" + (" through its ICC profile" if meta.icc else "")
        notes.warn("colour.converted", format=fmt, error=why)
    if meta.icc is None:
        if im.mode == "CMYK":
            notes.warn(
                "colour.naive_cmyk", error="CMYK without an ICC profile: converted without colour management"
            )
            return im.convert("RGB"), srgb_profile()
        if meta.cicp is not None:
            approximated_srgb(space, im.mode, notes)
        return im, srgb_profile() if im.mode in {"RGB", "RGBA", "P", "PA"} else None
    try:
        described = _description(meta.icc)
    except (OSError, ImageCms.PyCMSError) as exc:
        raise EncodeError(f"the embedded ICC profile is unreadable, cannot convert to sRGB: {exc}") from None
    if "sRGB" in described and im.mode != "CMYK":
        return im, meta.icc  # already sRGB: keep its own profile, no conversion round trip
    said_by_others(space, fmt, notes)
    alpha = im.getchannel("A") if im.mode in {"RGBA", "LA", "PA"} else None
    base = im.convert("RGB") if im.mode in {"P", "PA", "RGBA"} else im.convert("L") if im.mode == "LA" else im
    try:
        converted = ImageCms.applyTransform(base, _to_srgb(meta.icc, base.mode))
    except ImageCms.PyCMSError as exc:
        raise EncodeError(f"cannot convert {im.mode} through its ICC profile to sRGB: {exc}") from None
    assert converted is not None
    if alpha is not None:
        converted.putalpha(alpha)
    # ImageCms files the new profile in `info`; metadata travels in Rendered.meta only, and a writer
    # would otherwise copy these pixels to clear it (writers.bare: 8 ms at 2048 px).
    converted.info = {}
    return converted, srgb_profile()


# A worker converts the same few profiles (a camera's, Display P3) again and again: parsing one and
# building its transform took 6.5 ms a photo, a seventh of the conversion itself (47 ms at 2048 px).
@lru_cache(maxsize=16)
def _profile(icc: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(icc))


@lru_cache(maxsize=16)
def _description(icc: bytes) -> str:
    return ImageCms.getProfileDescription(_profile(icc))


@lru_cache(maxsize=16)
def _to_srgb(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    """The transform ImageCms.profileToProfile builds (relative colorimetric, to lcms' sRGB), kept."""
    return ImageCms.buildTransform(
        _profile(icc),
        ImageCms.createProfile("sRGB"),
        mode,
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )


def converts_to_srgb(icc: bytes) -> bool:
    """Whether colour() converts pixels this profile describes when sRGB is asked: a readable profile
    that is not sRGB. An unreadable one is left to colour(), which says why it cannot convert."""
    try:
        return "sRGB" not in _description(icc)
    except (OSError, ImageCms.PyCMSError):
        return False


def said_by_others(space: ColourSpace, fmt: str, notes: Notes) -> None:
    """Say so when pixels are converted by a profile hotfolder built (from NCLX, cICP or EXIF)."""
    if space.needs_profile:
        notes.warn("colour.converted", format=fmt, error=f"{space.words}: converted to sRGB")


def approximated_srgb(space: ColourSpace, mode: str, notes: Notes) -> bytes | None:
    """The sRGB profile for a colour taken as sRGB (NCLX or cICP within 1% of it), said when inexact."""
    if space.approximated:
        notes.warn("colour.approximated", error=space.approximated)
    return srgb_profile() if mode in {"RGB", "RGBA"} else None
