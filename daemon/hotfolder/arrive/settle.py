"""When a file is ready to process.

A file is ready when:
- it was closed after writing, or moved/renamed into the root (the watcher says so), or
- it was seen created (or found by a scan) and, across two looks at least `quiet` seconds apart,
  it is still a regular file with unchanged size and mtime, or
- at the first look nothing about it has changed for `quiet` seconds already: its mtime and its
  ctime (which no copy tool can set back, unlike the mtime `cp -p` or rsync restore) are that old.
  A photo waiting in the inbox when the daemon starts is taken at once instead of a second later.

The second rule covers files that never get a close-after-write event in their folder: a file
copied into a subfolder before its watch was armed, hard links, a copy in progress at startup.
A pending file is never dropped while it exists; one that disappears is forgotten.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hotfolder.arrive.queue import Arrival
from hotfolder.core.identity import FileIdentity

DEFAULT_QUIET = 1.0


@dataclass
class _Look:
    arrival: Arrival
    identity: FileIdentity  # as last seen: a change (written to, replaced) restarts the quiet period
    since: float  # clock time of the last change seen


class Settler:
    """Tracks pending files until they hold still; the clock is injectable so tests need no sleeps."""

    def __init__(
        self,
        *,
        quiet: float = DEFAULT_QUIET,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.quiet = quiet
        self.clock = clock
        self.wall = wall  # what file times are compared with
        self._pending: dict[Path, _Look] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def track(self, arrival: Arrival) -> bool:
        """Start (or keep) watching a file that may still be written; True when it is ready now (it
        has held still for the quiet period already), and then it is not tracked."""
        if arrival.path in self._pending:
            return False
        try:
            st = arrival.path.lstat()
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        if self.wall() - max(st.st_mtime, st.st_ctime) >= self.quiet:
            return True
        self._pending[arrival.path] = _Look(arrival, FileIdentity.of(st), self.clock())
        return False

    def forget(self, path: Path) -> None:
        """The file became ready another way (a close event): stop tracking it."""
        self._pending.pop(path, None)

    def due(self) -> list[Arrival]:
        """Pending files that held still for the quiet period; they leave the tracker."""
        now = self.clock()
        ready = []
        for path, look in list(self._pending.items()):
            if now - look.since < self.quiet:
                continue
            identity = FileIdentity.at(path)
            if identity is None:
                del self._pending[path]
            elif identity != look.identity:
                look.identity, look.since = identity, now
            else:
                del self._pending[path]
                ready.append(look.arrival)
        return ready
