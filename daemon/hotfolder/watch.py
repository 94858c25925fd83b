"""Watchdog observers per watched root. Their callbacks only record paths; nothing is read there."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver

from .config import Watch
from .ignore import Ignore


@dataclass(frozen=True)
class Arrival:
    """A path that became ready (a closed-after-write or moved-in file), or a folder to scan."""

    watch: Watch
    path: Path
    is_folder: bool = False
    settle: bool = False  # True: may still be written; ready once it holds still (see arrival.py)


class ReadyQueue:
    """Arrivals in order, each path at most once while it waits; safe between threads."""

    def __init__(self) -> None:
        self._items: dict[Path, Arrival] = {}
        self._cond = threading.Condition()

    def put(self, arrival: Arrival) -> None:
        with self._cond:
            waiting = self._items.get(arrival.path)
            # A definite arrival (closed, moved in) replaces a tentative one, keeping its place.
            if waiting is None or (waiting.settle and not arrival.settle):
                self._items[arrival.path] = arrival
            self._cond.notify()

    def pop(self, timeout: float) -> Arrival | None:
        """The oldest arrival, waiting up to `timeout` seconds for one."""
        with self._cond:
            if not self._items and not self._cond.wait(timeout):
                return None
            if not self._items:
                return None
            path = next(iter(self._items))
            return self._items.pop(path)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class _Recorder(FileSystemEventHandler):
    # watchdog calls this while holding its observer lock: record and return, nothing more.
    def __init__(self, watch: Watch, ready: ReadyQueue) -> None:
        self.watch = watch
        self.ready = ready

    def on_closed(self, event: FileSystemEvent) -> None:
        self.ready.put(Arrival(self.watch, Path(os.fsdecode(event.src_path))))

    def on_created(self, event: FileSystemEvent) -> None:
        # Usually a close follows; if none does (the folder was armed too late), it must settle.
        if not event.is_directory:
            self.ready.put(Arrival(self.watch, Path(os.fsdecode(event.src_path)), settle=True))

    def on_moved(self, event: FileSystemEvent) -> None:
        dest = Path(os.fsdecode(event.dest_path))
        if dest.is_relative_to(self.watch.path):  # moved out of the root: not ours any more
            self.ready.put(Arrival(self.watch, dest, is_folder=event.is_directory))


def start_observer(watch: Watch, ready: ReadyQueue) -> BaseObserver:
    """Arm one observer on a watched root (created if missing) and start its thread."""
    watch.path.mkdir(parents=True, exist_ok=True)
    # Full events: a file or folder moved in from outside arrives as a move (with no source),
    # not as a bare 'created' that would be indistinguishable from a file still being written.
    observer = InotifyObserver(generate_full_events=True)
    observer.schedule(
        _Recorder(watch, ready),
        str(watch.path),
        recursive=watch.recursive,
        event_filter=[FileClosedEvent, FileCreatedEvent, FileMovedEvent, DirMovedEvent],
    )
    observer.daemon = True
    observer.start()
    return observer


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
