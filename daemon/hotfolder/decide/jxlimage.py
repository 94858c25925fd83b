"""JPEG XL as a Pillow image (registered by sniff.register_codecs): opened from its header, decoded
whole by libjxl on load, upright (the codestream's orientation applied: JPEG XL viewers ignore EXIF's),
with its ICC profile, EXIF and XMP in `info` as every other opener gives them."""

from __future__ import annotations

from typing import Any, Final

from PIL import Image, ImageFile

from hotfolder.core.exiftiff import EXIF_PREFIX
from hotfolder.decide import jxl

FORMAT: Final = "JXL"
_MODES: Final = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
# Where the samples of a JPEG XL of more than 8 bits per colour sample wait for render/decode.py, which
# keeps them at full precision (Pillow holds such colour at 8 bits only).
DEEP_KEY: Final = "hotfolder:jxl-deep"


def _accept(prefix: bytes) -> bool:
    return prefix.startswith(jxl.SIGNATURES)


class JxlImageFile(ImageFile.ImageFile):
    """A JPEG XL's first frame."""

    format = FORMAT
    format_description = "JPEG XL"

    def _open(self) -> None:
        assert self.fp is not None
        self._data = self.fp.read()
        head, icc = jxl.header(self._data)
        self._head = head
        self._size = head.shown
        grey16 = head.bits > 8 and head.bands == 1
        self._mode = "I;16" if grey16 else _MODES[head.bands]
        self.info["bit_depth"] = head.bits
        if icc:
            self.info["icc_profile"] = icc
        for box in jxl.boxes(self._data):
            if box.kind == b"Exif" and len(box.data) > 4:
                offset = int.from_bytes(box.data[:4], "big")
                self.info["exif"] = EXIF_PREFIX + box.data[4 + offset :]
            elif box.kind == b"xml ":
                self.info["xmp"] = box.data
        self.is_animated = head.animated
        self._frames: list[tuple[Any, int]] | None = None
        self._frame = 0
        if head.animated:
            # A JPEG XL does not say how many frames it has: an animation is decoded whole at open.
            _, self._frames, _ = jxl.decode_frames(self._data, max_pixels=Image.MAX_IMAGE_PIXELS or 1 << 62)
            self.info["loop"] = head.loops
            self.info["duration"] = self._frames[0][1]
        self.n_frames = len(self._frames) if self._frames else 1
        self.tile = []

    def seek(self, frame: int) -> None:
        if not self._seek_check(frame):
            return
        self._frame = frame
        self._im = None
        if self._frames is not None:
            self.info["duration"] = self._frames[frame][1]

    def tell(self) -> int:
        return self._frame

    def load(self) -> Image.core.PixelAccess | None:  # type: ignore[name-defined]
        if self._im is None:
            if self._frames is not None:
                pixels = self._frames[self._frame][0]
            else:
                limit = Image.MAX_IMAGE_PIXELS or 1 << 62
                pixels = jxl.decode(self._data, max_pixels=limit, upright=True).pixels
            if pixels.dtype.itemsize == 2 and pixels.shape[2] > 1:
                self.info[DEEP_KEY] = pixels
                pixels = ((pixels.astype("uint32") + 128) // 257).astype("uint8")
            self.load_prepare()
            raw = "I;16" if self._mode == "I;16" else self._mode
            self.frombytes(pixels.tobytes(), "raw", raw)
        return super().load()


def register() -> None:
    """Make Pillow open JPEG XL (by content: the bare codestream and the container)."""
    Image.register_open(FORMAT, JxlImageFile, _accept)
    Image.register_extensions(FORMAT, [".jxl"])
