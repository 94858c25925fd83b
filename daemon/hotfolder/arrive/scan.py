"""Walking a root for the files already there (at start, after a reload, as a safety net), in name order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from hotfolder.arrive.ignore import Ignore


def scan(root: Path, *, recursive: bool, ignore: Ignore) -> Iterator[Path]:
    """Every regular file below root, in name order, without following symlinks or ignored names."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    for entry in entries:
        if ignore(entry.name):
            continue
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                yield from scan(Path(entry.path), recursive=recursive, ignore=ignore)
        elif entry.is_file(follow_symlinks=False):
            yield Path(entry.path)
