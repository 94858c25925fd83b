"""SHA-256 of a file, streamed in 1 MiB chunks: the one way hotfolder hashes what is on disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

_CHUNK: Final = 1 << 20


def fd_sha256(fd: int) -> str:
    """The SHA-256 of what an open file descriptor reads from its position to the end."""
    digest = hashlib.sha256()
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of the file at `path`, or None when it cannot be read: a file that cannot be read
    is never taken for one with known bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return fd_sha256(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
