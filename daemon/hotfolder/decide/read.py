"""Reading an input safely: only a regular file, only a plausible length, once."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from hotfolder.core.formats import HEAD_BYTES, INPUT_FORMATS, claimed_format
from hotfolder.core.identity import kind_of
from hotfolder.decide.probe import probe
from hotfolder.decide.sniff import sniff
from hotfolder.errors import InputError, NotRegularError


def open_regular(path: Path) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without following a link or blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularError(f"{path} is a symbolic link; links are never processed") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularError(f"{path} is {kind_of(st)}, not a regular file")
    return fd, st


def read_all(fd: int, size: int) -> bytes:
    """The whole file, by positioned reads (the descriptor's offset is never relied on)."""
    chunks, pos = [], 0
    while pos < size:
        chunk = os.pread(fd, min(size - pos, 8 << 20), pos)
        if not chunk:
            break
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


def sniffed(fd: int, relpath: str) -> tuple[str | None, bool]:
    """(our format name, whether the content itself says so) from the first bytes of a file."""
    head = os.pread(fd, HEAD_BYTES, 0)
    by_content = sniff(head, relpath)
    return by_content or claimed_format(relpath), by_content is not None


def read_bounded(fd: int, st: os.stat_result, fmt: str | None, *, by_content: bool, max_pixels: int) -> bytes:
    """The whole file, once its header says it is an image of a plausible length (probe.py)."""
    if fmt is not None and fmt in INPUT_FORMATS and by_content:
        probe(fd, st.st_size, fmt, max_pixels=max_pixels)
    elif fmt is not None and fmt in INPUT_FORMATS:
        raise InputError(f"content is not a recognisable image (its name says {fmt.upper()})")
    return read_all(fd, st.st_size)
