"""A decoded input, the hand-off from decode to every output: frozen, its lazy parts (the 8-bit view
of deep pixels, every frame) computed once per Source and never written by anyone else."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from PIL import Image, ImageSequence

from hotfolder.decide.colourspace import SRGB, ColourSpace
from hotfolder.decide.header import too_many_pixels
from hotfolder.errors import InputError
from hotfolder.render.deep import Deep
from hotfolder.render.gainmap import GainMap
from hotfolder.render.metadata import Metadata, capture


@dataclass(frozen=True, eq=False)
class Source:
    """A decoded input: primary image loaded, metadata captured before any transform."""

    view: Image.Image | None  # primary image; None when `deep` holds it (its 8-bit view made on demand)
    format: str
    meta: Metadata
    orientation: int  # what still has to be applied to `image` to show it upright (1: nothing)
    frame_count: int = 1
    animated: bool = False  # frames with timing (GIF, APNG, WebP); else pages or images
    loop: int | None = None
    deep: Deep | None = None
    losses: tuple[str, ...] = ()  # auxiliary content no output can carry
    damaged: tuple[str, ...] = ()  # metadata blocks recovered in part or dropped
    channels: str | None = None  # channels beyond colour and alpha, said in words (only TIFF keeps them)
    colour: ColourSpace = SRGB  # what its colour is (decide/colourspace.py), read by every output
    gain_map: GainMap | None = None  # an Ultra HDR JPEG's, for outputs with gain_map = "keep"
    # The size as stored in the file, when the pixels were decoded smaller (a JPEG at 1/2..1/8 scale for
    # small outputs): what a print resolution is scaled from.
    stored: tuple[int, int] | None = None

    @cached_property
    def image(self) -> Image.Image:
        """The primary image at 8 bits per sample: a deep source's scaled view is made on first use
        (0.9 s on a 24 MP RAW render, which a 16-bit TIFF output never needs)."""
        if self.view is not None:
            return self.view
        assert self.deep is not None, "a Source holds its pixels in view or in deep"
        return self.deep.to_8bit()

    @property
    def size(self) -> tuple[int, int]:
        """Width and height of the decoded pixels, without making the 8-bit view."""
        return self.deep.size if self.deep is not None else self.image.size

    @property
    def stored_size(self) -> tuple[int, int]:
        """Width and height as the file stores them (the decoded size unless decoded at a reduced scale)."""
        return self.stored or self.size

    @property
    def primary_index(self) -> int:
        """Which frame is a multi-image HEIF's primary image (pillow-heif marks it in each frame's info)."""
        return next((i for i, (f, _) in enumerate(self.frames()) if f.info.get("primary")), 0)

    @cached_property
    def _decoded(self) -> tuple[list[tuple[Image.Image, int | None]], list[Metadata]]:
        """Every frame with its duration in ms, and its own metadata: decoded once for all outputs."""
        frames, metas = [], []
        try:
            for frame in ImageSequence.Iterator(self.image):
                frames.append((frame.copy(), frame.info.get("duration")))
                # A page or an image has its own EXIF and XMP (a TIFF page its resolution, a spatial
                # photo's right image its lens); read while the file is at that frame.
                metas.append(self.meta if self.animated else capture(frame))
            self.image.seek(0)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise too_many_pixels() from None
        except (OSError, ValueError, EOFError, SyntaxError) as exc:
            raise InputError(f"cannot decode every frame: {exc}") from None
        return _one_mode(frames), metas

    def frames(self) -> list[tuple[Image.Image, int | None]]:
        """Every frame with its duration in ms, decoded once and kept for all outputs."""
        return self._decoded[0]

    def frame_metadata(self) -> list[Metadata]:
        """Each frame's own metadata, as captured while it was decoded (the source's for an animation)."""
        return self._decoded[1]


def _transparent(im: Image.Image) -> bool:
    if im.mode in {"RGBA", "LA", "PA"}:
        lowest = im.getchannel("A").getextrema()[0]
        return isinstance(lowest, int | float) and lowest < 255
    return im.has_transparency_data


def _one_mode(frames: list[tuple[Image.Image, int | None]]) -> list[tuple[Image.Image, int | None]]:
    """Every frame in one mode. Pillow gives a GIF's first frame as P with a transparency index and
    the later ones as RGBA; writers take one mode (and one transparency) for a whole animation."""
    modes = {f.mode for f, _ in frames}
    alpha = any(_transparent(f) for f, _ in frames)
    if modes == {"RGBA"} and not alpha:
        return [(f.convert("RGB"), d) for f, d in frames]  # alpha 255 everywhere: an opaque animation
    if len(modes) == 1 and not (alpha and "P" in modes):
        return frames
    target = "RGBA" if alpha else "RGB"
    return [(f if f.mode == target else f.convert(target), d) for f, d in frames]
