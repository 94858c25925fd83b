"""Files the page may hand out, found by ledger id only: an output hotfolder wrote (below output_root) or
a quarantined input (below quarantine, as a download, never decoded here); opened without following links."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CHUNK: Final = 1 << 20
# Content types by the suffix of a file hotfolder wrote (anything else is a plain download).
TYPES: Final = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".avif": "image/avif",
    ".json": "application/json",
    ".xmp": "application/rdf+xml",
}


@dataclass(frozen=True)
class Opened:
    """A regular file opened below an allowed root: its descriptor, size and identity."""

    fd: int
    path: Path
    size: int
    mtime_ns: int


def open_below(path: Path, root: Path) -> Opened | None:
    """Open `path` for reading if it lies below `root` with no link on the way and is a regular file."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if resolved != path.absolute() or not resolved.is_relative_to(root.resolve()):
        return None  # a link somewhere on the way, or outside the root
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return Opened(fd, resolved, st.st_size, st.st_mtime_ns)


def chunks(opened: Opened) -> Iterator[bytes]:
    """The file's bytes from the descriptor that was checked (closed at the end)."""
    try:
        while block := os.read(opened.fd, CHUNK):
            yield block
    finally:
        os.close(opened.fd)
