"""Thumbnails of the outputs hotfolder wrote (its web JPEG or WebP first), made small once and kept in
memory: `serve` writes nothing, and never decodes an input (a quarantined file may be hostile)."""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from PIL import Image

from hotfolder.serve.files import open_below

EDGE: Final = 160  # CSS pixels on the page, 2x for a high-density screen below
PIXELS: Final = 2 * EDGE
CACHE_ENTRIES: Final = 1024  # ~10 KB each: ~10 MB at most
# Pillow's own bomb limit for an image we did not write is 179 MP; ours are outputs, but a page must stay
# quick: an archival PNG of a 100 MP scan would take seconds to decode for a 320 px picture.
MAX_SOURCE_BYTES: Final = 64 << 20
_PREFERRED: Final = (".jpg", ".jpeg", ".webp", ".png")
_PILLOW_FORMATS: Final = ("JPEG", "WEBP", "PNG")


def source_of(outputs: Sequence[str]) -> Path | None:
    """The output a thumbnail is made from: a web format Pillow reads, JPEG and WebP before PNG."""
    paths = [Path(o) for o in outputs]
    for suffix in _PREFERRED:
        for p in paths:
            if p.suffix.lower() == suffix:
                return p
    return None


class Thumbnails:
    """An LRU of JPEG thumbnails keyed by the output's path and identity (a rewritten output is redone)."""

    def __init__(self, output_root: Path) -> None:
        self.output_root = output_root
        self._cache: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, outputs: Sequence[str]) -> bytes | None:
        """A small JPEG of this job's web output, or None when it has none hotfolder can show."""
        source = source_of(outputs)
        if source is None:
            return None
        opened = open_below(source, self.output_root)
        if opened is None:
            return None
        key = (str(opened.path), opened.size, opened.mtime_ns)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                os.close(opened.fd)
                return self._cache[key]
        if opened.size > MAX_SOURCE_BYTES:
            os.close(opened.fd)
            return None
        try:
            with os.fdopen(opened.fd, "rb") as f:
                data = _small(f.read())
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return data


def _small(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS) as im:
        im.draft("RGB", (PIXELS, PIXELS))  # JPEG: decoded at 1/2..1/8 scale, ~10x less work
        im.thumbnail((PIXELS, PIXELS))
        rgb = im.convert("RGB")
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=80)
    return out.getvalue()
