"""A file's identity: which file a path names, and whether it is still the file that was read.

One value for every stage that asks "is this the same file?": the dispatcher (has it been handled?),
the worker (what exactly did it read?), the ledger (what was recorded?) and the disposal of an
original (is the file at this path still the one whose outputs were written?).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileIdentity:
    """Device, inode, size and mtime: it changes when a file is replaced, rewritten or appended to."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        """The identity of a stat result."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    @classmethod
    def at(cls, path: Path) -> FileIdentity | None:
        """The identity of the regular file at `path` (links not followed), or None if there is none."""
        try:
            st = path.lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return cls.of(st) if stat.S_ISREG(st.st_mode) else None

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.dev, self.ino, self.size, self.mtime_ns)


def kind_of(st: os.stat_result) -> str:
    """A word for what a non-regular file is, for messages that refuse it."""
    mode = st.st_mode
    for test, word in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return word
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def no_longer(path: Path, held: tuple[int, int], what: str) -> str | None:
    """How the file at `path` stopped being the one held open (device, inode): "deleted (its lock is
    gone)", "replaced (...)", or None while it is the same file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"deleted (its {what} is gone)"
    except OSError as exc:
        return f"made unreadable ({exc.strerror or exc})"
    return None if (st.st_dev, st.st_ino) == held else f"replaced (its {what} is another file now)"
