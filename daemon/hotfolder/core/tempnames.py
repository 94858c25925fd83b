"""Names of temp files (marked and tokened, so every stage can tell ours from a user's) and of numbered
names for conflicts: pure string work, no I/O."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from hotfolder import names

MAX_NAME_BYTES: Final = 255  # NAME_MAX of ext4, XFS, Btrfs, ZFS: a longer name cannot be created
TEMP_MARK: Final = ".hf-"


TEMP_SUFFIX: Final = ".tmp"


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of hotfolder's own temp files."""
    return name.startswith(".") and TEMP_MARK in name and name.endswith(TEMP_SUFFIX)


def temp_path(final: Path, *, token: str | None = None) -> Path:
    """A unique temp name beside `final` (same folder, so the rename is atomic), carrying `token`."""
    stem = names.cut(final.name, 100)
    return final.with_name(f".{stem}{TEMP_MARK}{token or os.urandom(4).hex()}{TEMP_SUFFIX}")


# The counter in a counter_format: {n}, or {n:03d} for zero-padded (validated in outputs.py).
COUNTER = re.compile(r"\{n(?::0?(\d)d)?\}")


def numbered(final: Path, n: int, counter_format: str = "-{n}") -> Path:
    """The n-th alternative name for `final`: photo.jpg → photo-1.jpg (n = 0: the name itself).

    The stem is shortened when the counter would push the name past 255 bytes.
    """
    if n == 0:
        return final
    stem, dot, ext = final.name.rpartition(".")
    if not dot:
        stem, ext = final.name, ""
    counter = COUNTER.sub(lambda m: str(n).zfill(int(m.group(1) or 0)), counter_format)
    room = MAX_NAME_BYTES - len(names.raw(counter + dot + ext))
    stem = names.cut(stem, room)
    return final.with_name(f"{stem}{counter}{dot}{ext}")
