"""Recognising a file by its first bytes (RAW first, then Pillow's own acceptance tests), and the
process-wide codec registration every decoder needs."""

from __future__ import annotations

import importlib
import warnings
import zlib
from pathlib import PurePath
from typing import Final

from PIL import Image, ImageFile, PngImagePlugin

from hotfolder.core.exiftiff import ifd0_tags
from hotfolder.core.formats import PIL_ALLOWLIST, RAW, name_of, raw_name
from hotfolder.decide import jxlimage

_registered = False
# The modules that register PIL_ALLOWLIST's formats (HEIF is pillow_heif's) and MPO, which Pillow's JPEG
# opener returns for a multi-picture file (an Ultra HDR photo with its gain map).
_PLUGINS: Final = (
    *("JpegImagePlugin", "MpoImagePlugin", "PngImagePlugin", "TiffImagePlugin", "GifImagePlugin"),
    *("WebPImagePlugin", "BmpImagePlugin", "AvifImagePlugin"),
)
# Where the opened image's `info` carries the metadata found damaged on the way (the iCCP reader below,
# recover_raw_profiles() in header.py); capture() reports them. Writers never see `info` implicitly.
DAMAGED_KEY: Final = "hotfolder:damaged"
ICC_LIMIT: Final = 16 << 20  # as probe.SLACK: the metadata a header may carry beyond the pixels


def _chunk_iccp(stream: PngImagePlugin.PngStream, _pos: int, length: int) -> bytes:
    """Pillow's iCCP reader with a 16 MB bound of its own; a larger or undecodable profile is dropped
    and said (metadata.damaged), never the reason a picture cannot be opened."""
    assert stream.fp is not None
    chunk = ImageFile._safe_read(stream.fp, length)  # Pillow's own bounded read
    name_end = chunk.find(b"\0")
    if name_end < 0 or name_end + 1 >= len(chunk) or chunk[name_end + 1] != 0:
        raise SyntaxError("unknown compression method in the iCCP chunk")
    inflate = zlib.decompressobj()
    try:
        icc: bytes | None = inflate.decompress(chunk[name_end + 2 :], ICC_LIMIT)
    except zlib.error as exc:
        icc, why = None, f"icc: the iCCP chunk does not inflate ({exc}); dropped"
    else:
        why = (
            f"icc: the profile inflates past {ICC_LIMIT >> 20} MB; dropped" if inflate.unconsumed_tail else ""
        )
    if why:
        icc = None
        stream.im_info.setdefault(DAMAGED_KEY, []).append(why)
    stream.im_info["icc_profile"] = icc
    return chunk


def register_codecs() -> None:
    """Make the HEIF opener known to Pillow and turn bomb warnings into errors; idempotent."""
    global _registered  # noqa: PLW0603 - registration is process-wide by nature
    if _registered:
        return
    import pillow_heif  # noqa: PLC0415 - imported only where images are decoded

    pillow_heif.register_heif_opener()
    # Pillow's plugins for the allowlist only, not Image.init()'s ~45 (EPS, PSD, WMF, ...): 14-23 ms
    # instead of 30-50 here, in the command and in the fork server before any worker can start. Open and
    # save never need the rest: Pillow calls init() itself only for a format not registered yet.
    for plugin in _PLUGINS:
        importlib.import_module(f"PIL.{plugin}")
    jxlimage.register()
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    # A PNG's ICC profile up to what writers put there: Pillow's 1 MB text-chunk cap refused a valid
    # 1.5 MB profile, hotfolder's own archive among them, as "cannot open it". Text chunks keep the cap.
    PngImagePlugin.PngStream.chunk_iCCP = _chunk_iccp  # type: ignore[method-assign,assignment]
    # Every image in one memory block, so libvips can read it in place (render/pixels.py).
    Image.core.set_use_block_allocator(1)  # type: ignore[attr-defined]
    _registered = True


_RAW_MAGIC: Final = (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00", b"FUJIFILMCCD-RAW", b"FOVb")
_TAG_DNG_VERSION: Final = 50706


def is_camera_raw(head: bytes, name: PurePath | str) -> bool:
    """Camera RAW by content: its own magic, a DNG, or a TIFF container named as a RAW (NEF, ARW, PEF,
    ... are plain TIFF at the start). Many RAW files are TIFF containers Pillow would happily open."""
    if head.startswith(_RAW_MAGIC) or head[8:11] == b"CR\x02" or head[4:12] == b"ftypcrx ":
        return True
    if head[:2] in (b"II", b"MM") and head[6:10] == b"HEAP":  # Canon CRW (CIFF)
        return True
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return raw_name(name) or _TAG_DNG_VERSION in ifd0_tags(head)
    return False


def sniff(head: bytes, name: PurePath | str = "") -> str | None:
    """Our format name for a file's first bytes, by content: RAW first, then Pillow's own acceptance
    tests; a file named as a RAW whose content nothing recognises is a RAW for LibRaw to judge."""
    if is_camera_raw(head, name):
        return RAW
    register_codecs()
    for pil in PIL_ALLOWLIST:
        entry = Image.OPEN.get(pil)
        if entry is not None and entry[1] is not None and entry[1](head):
            return name_of(pil)
    return RAW if raw_name(name) else None
