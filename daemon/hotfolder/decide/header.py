"""Opening a picture's header once: the pixel limit, damaged metadata blocks recovered, container quirks."""

from __future__ import annotations

import io
import struct

from PIL import Image, UnidentifiedImageError

from hotfolder.core.exiftiff import EXIF_PREFIX
from hotfolder.core.formats import DEFAULT_MAX_PIXELS, PIL_ALLOWLIST
from hotfolder.decide.sniff import DAMAGED_KEY, register_codecs
from hotfolder.errors import InputError


def identify(data: bytes, *, max_pixels: int | None = None) -> Image.Image:
    """Open lazily with the format allowlist; raise InputError if the content is not an allowed image.
    With max_pixels, Pillow's decompression-bomb check uses that limit."""
    register_codecs()
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        im = Image.open(io.BytesIO(webp_alpha_flag(data)), formats=PIL_ALLOWLIST)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels() from None
    except UnidentifiedImageError:
        precision = jpeg_precision(data)
        if precision not in (None, 8):
            raise InputError(
                f"{precision}-bit JPEG: the pinned Pillow (libjpeg-turbo, 8-bit) cannot decode it"
            ) from None
        raise InputError("content is not a recognisable image of an allowed format") from None
    # Decoders raise many types on hostile input; every one of them means "this input is bad".
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot open it: {exc}") from None
    # A damaged metadata block never costs the picture (capture() reports what happened).
    im.info[DAMAGED_KEY] = (*im.info.get(DAMAGED_KEY, ()), *recover_raw_profiles(im))
    return im


def webp_alpha_flag(data: bytes) -> bytes:
    """An animated WebP with VP8X's alpha flag set, so that Pillow decodes its transparency.

    libwebp's animation encoder (so Pillow and others writing animated WebP) may leave the flag off
    although the canvas is transparent where frames do not cover it, or frames carry alpha; Pillow
    trusts the flag and would decode the whole animation as opaque RGB (transparency turned black).
    An animation that is opaque after all comes out RGBA with alpha 255, and Source's frames make it RGB."""
    if data[8:12] != b"WEBP" or data[12:16] != b"VP8X" or not data[20] & 0x02 or data[20] & 0x10:
        return data
    patched = bytearray(data)
    patched[20] |= 0x10
    return bytes(patched)


def too_many_pixels() -> InputError:
    """Pillow's bomb check, in the words of the setting that decides it (not Pillow's 2x threshold)."""
    limit = Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS
    return InputError(
        f"the image (or one of its frames) has more than max_image_pixels ({limit:,}) pixels; "
        "raise max_image_pixels in the config to accept it"
    )


class MetadataDamageError(ValueError):
    """A metadata block that cannot be read whole: what can be recovered is, the rest is dropped."""


def recover_raw_profiles(im: Image.Image) -> list[str]:
    """ImageMagick keeps EXIF, IPTC and XMP in PNG text chunks as "\\nexif\\n  <length>\\n<hex>". When the
    length or the line breaks are off, Pillow's getexif() raises (non-hexadecimal number found); the hex
    itself is usually whole, as exiftool shows with a warning. Read what the hex says; say what was off."""
    notes = []
    for key, kind in (
        ("Raw profile type exif", "exif"),
        ("Raw profile type iptc", "iptc"),
        ("Raw profile type xmp", "xmp"),
    ):
        text = im.info.get(key)
        if not isinstance(text, str):
            continue
        try:
            payload, why = _raw_profile(text)
        except MetadataDamageError as exc:
            del im.info[key]
            notes.append(f"{kind} (ImageMagick text): {exc}; dropped")
            continue
        if why:
            notes.append(f"{kind} (ImageMagick text): {why}; the data was read as exiftool reads it")
        if kind == "exif":
            del im.info[key]
            if payload.startswith(EXIF_PREFIX) or payload[:4] in (b"II*\x00", b"MM\x00*"):
                im.info["exif"] = payload  # Pillow's getexif() reads this before the text chunk
            else:
                notes.append("exif (ImageMagick text): not an EXIF block; dropped")
        elif kind == "xmp":
            im.info.setdefault("xmp", payload)
        else:
            im.info[key] = "\n".join(["", kind, f"{len(payload):8d}", payload.hex()])
    return notes


def _raw_profile(text: str) -> tuple[bytes, str | None]:
    """(payload, what was off) of an ImageMagick raw profile text; MetadataDamage if nothing is readable."""
    lines = text.strip("\n").split("\n")
    digits = next((i for i, line in enumerate(lines[:4]) if line.strip().isdigit()), None)
    if digits is None:
        raise MetadataDamageError("no length line before the hex data")
    declared = int(lines[digits].strip())
    hexes = "".join(c for c in "".join(lines[digits + 1 :]) if c in "0123456789abcdefABCDEF")
    if len(hexes) % 2:
        hexes = hexes[:-1]
    payload = bytes.fromhex(hexes)
    if not payload:
        raise MetadataDamageError("no hex data")
    off = [] if digits == 1 else ["the header lines are not where ImageMagick puts them"]
    if declared != len(payload):
        off.append(f"its length field says {declared} bytes, the data holds {len(payload)}")
    return payload, "; ".join(off) or None


def jpeg_precision(data: bytes) -> int | None:
    """Sample precision from a JPEG's SOF marker, or None if this is not a readable JPEG header."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return data[pos + 4]
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return None
