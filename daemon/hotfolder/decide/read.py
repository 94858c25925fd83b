"""Reading an input safely: only a regular file, only a plausible length, once."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path

from hotfolder.core.formats import HEAD_BYTES, INPUT_FORMATS, RAW, claimed_format, raw_name
from hotfolder.core.identity import kind_of
from hotfolder.decide import tiffraw
from hotfolder.decide.probe import SLACK, probe
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


@dataclass(frozen=True)
class Sniffed:
    """What a file is by its content: our format name, whether the content said so (not only the name),
    and for a TIFF-structured file its IFDs' layout (a camera RAW is told by it, and its length bounded)."""

    format: str | None
    by_content: bool
    layout: tiffraw.Layout | None = None


def sniffed(fd: int, relpath: str) -> Sniffed:
    """What a file is, from its first bytes and, for a TIFF container, its IFDs (positioned reads only)."""
    head = os.pread(fd, HEAD_BYTES, 0)
    by_content = sniff(head, relpath)
    found = Sniffed(by_content or claimed_format(relpath), by_content=by_content is not None)
    if by_content not in (RAW, "tiff"):
        return found
    shape = tiffraw.layout(fd, os.fstat(fd).st_size)
    if shape is not None and shape.raw:
        return Sniffed(
            RAW, by_content=True, layout=shape
        )  # a RAW whose name says TIFF, or a RAW extension we do not list
    return replace(found, layout=shape)


def misnamed(found: Sniffed, relpath: str) -> str | None:
    """Why a file's name and content disagree about camera RAW (the `file.misnamed` event), or None."""
    if found.format != RAW and raw_name(relpath):
        return f"named as camera RAW, but its content is {str(found.format).upper()}: handled as what it is"
    if found.format == RAW and not raw_name(relpath):
        why = f" ({found.layout.why})" if found.layout is not None else ""
        return f"its content is camera RAW{why}, whatever its name says: only a RAW rule takes it"
    return None


def read_bounded(fd: int, st: os.stat_result, found: Sniffed, *, max_pixels: int) -> bytes:
    """The whole file, once its header says it is an image of a plausible length (probe.py)."""
    fmt = found.format
    if fmt is not None and fmt in INPUT_FORMATS and found.by_content:
        probe(fd, st.st_size, fmt, max_pixels=max_pixels)
    elif fmt is not None and fmt in INPUT_FORMATS:
        raise InputError(f"content is not a recognisable image (its name says {fmt.upper()})")
    elif fmt == RAW:
        _plausible_raw(st.st_size, found.layout, max_pixels)
    return read_all(fd, st.st_size)


def _plausible_raw(size: int, shape: tiffraw.Layout | None, max_pixels: int) -> None:
    """A RAW far longer than its IFDs' data (or, without IFDs to read, than max_image_pixels of 16-bit
    samples in two copies) is refused unread: a DNG padded with zeros to 3 GB was read whole (6.2 GB)."""
    if shape is not None and shape.data_end > 0:
        limit, what = SLACK + 2 * shape.data_end, f"its IFDs describe {shape.data_end / 1e6:,.1f} MB of data"
    else:
        limit, what = SLACK + 4 * max_pixels, f"max_image_pixels ({max_pixels:,}) allows"
    if size > limit:
        raise InputError(
            f"{size / 1e6:,.1f} MB is far more than this camera RAW can hold ({what}; at most "
            f"{limit / 1e6:,.1f} MB): not a RAW, or a RAW followed by other data"
        )
