"""Names that are never inputs: uploader and sync-tool temp files, OS droppings, our own temp files."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from wcmatch import fnmatch

from hotfolder.core.tempnames import is_temp_name

DEFAULT_PATTERNS: Final[tuple[str, ...]] = (
    # browsers and uploaders
    "*.part",
    "*.crdownload",
    "*.download",
    "*.filepart",
    "*.tmp",
    # rsync writes .name.XXXXXX, then renames
    ".*.??????",
    # Syncthing
    ".syncthing.*.tmp",
    "~syncthing~*.tmp",
    ".stfolder",
    ".stversions",
    # NFS keeps a file deleted while open as .nfsXXXX until it is closed ("silly rename")
    ".nfs*",
    # operating systems
    "._*",
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    "@eaDir",
    "__MACOSX",
)


class Ignore:
    """Decides, by name alone, whether a file or folder is never an input."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.patterns = (*DEFAULT_PATTERNS, *extra)
        self._matcher = fnmatch.compile(list(self.patterns), flags=fnmatch.IGNORECASE | fnmatch.DOTMATCH)

    def __call__(self, name: str) -> bool:
        return is_temp_name(name) or bool(self._matcher.match(name))
