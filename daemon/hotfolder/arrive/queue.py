"""Arrivals: what a watcher or a scan saw, and the bounded queue they wait in for the dispatcher."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from hotfolder.settings.watches import Watch


@dataclass(frozen=True)
class Arrival:
    """A path that became ready (a closed-after-write or moved-in file), or a folder to scan."""

    watch: Watch
    path: Path
    is_folder: bool = False
    settle: bool = False  # True: may still be written; ready once it holds still (see settle.py)


class ReadyQueue:
    """Arrivals in order, each path at most once while it waits; safe between threads."""

    def __init__(self) -> None:
        self._items: dict[Path, Arrival] = {}
        self._cond = threading.Condition()
        self._woken = False

    def put_waiting(self, arrival: Arrival, *, limit: int, stop: threading.Event) -> None:
        """put() for scans: wait while `limit` arrivals are queued, so a huge tree streams in."""
        with self._cond:
            while len(self._items) >= limit and not stop.is_set():
                self._cond.wait(0.2)
        self.put(arrival)

    def put(self, arrival: Arrival) -> None:
        with self._cond:
            waiting = self._items.get(arrival.path)
            # A definite arrival (closed, moved in) replaces a tentative one, keeping its place.
            if waiting is None or (waiting.settle and not arrival.settle):
                self._items[arrival.path] = arrival
            self._cond.notify()

    def wake(self) -> None:
        """Make the waiting pop(), or the next one, return at once (None if no arrival waits): something
        else needs the dispatcher, a job that finished. Safe from any thread."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def pop(self, timeout: float) -> Arrival | None:
        """The oldest arrival, waiting up to `timeout` seconds for one (less if woken)."""
        with self._cond:
            if not self._items and not self._woken:
                self._cond.wait(timeout)
            self._woken = False
            if not self._items:
                return None
            path = next(iter(self._items))
            self._cond.notify_all()  # a scan may be waiting for room
            return self._items.pop(path)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
