"""Watchdog observers per watched root. Their callbacks only record paths; nothing is read there."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from watchdog.events import (
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

from hotfolder import logs
from hotfolder.arrive.queue import Arrival, ReadyQueue
from hotfolder.core.fsinfo import filesystem_type, is_network_fs
from hotfolder.settings.watches import Watch

log = logs.get()


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

    def on_modified(self, event: FileSystemEvent) -> None:
        # Only polling observers report this (inotify sends close events instead): settle it.
        if not event.is_directory:
            self.ready.put(Arrival(self.watch, Path(os.fsdecode(event.src_path)), settle=True))

    def on_moved(self, event: FileSystemEvent) -> None:
        dest = Path(os.fsdecode(event.dest_path))
        if dest.is_relative_to(self.watch.path):  # moved out of the root: not ours any more
            self.ready.put(Arrival(self.watch, dest, is_folder=event.is_directory))


INOTIFY_HINT = (
    "raise it with: sysctl fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=1024 "
    "(and in /etc/sysctl.d/ to keep it); this root is polled meanwhile"
)


def choose_mode(watch: Watch) -> tuple[str, str]:
    """native or poll for a root, and why: auto polls network and FUSE filesystems (no inotify there)."""
    if watch.mode != "auto":
        return watch.mode, "configured"
    kind = filesystem_type(watch.path)
    if is_network_fs(kind):
        return "poll", f"{kind} filesystem: inotify does not see changes made by other machines"
    return "native", f"{kind or 'local'} filesystem"


def start_observer(watch: Watch, ready: ReadyQueue, *, create: bool = True) -> BaseObserver:
    """Arm one observer on a watched root and start its thread; falls back to polling at inotify limits."""
    if create:
        watch.path.mkdir(parents=True, exist_ok=True)
    mode, why = choose_mode(watch)
    if log is not None:
        log.info(
            "watch.mode",
            src=str(watch.path),
            watch=watch.name,
            mode=mode,
            why=why,
            poll_interval=watch.poll_interval if mode == "poll" else None,
        )
    if mode == "native":
        try:
            observer = _start(InotifyObserver(generate_full_events=True), watch, ready)
            problem = inotify_exhausted(watch.path)
            if problem is None:
                return observer
            observer.stop()
            observer.join(timeout=5)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            problem = str(exc)
        if log is not None:  # an expected limit with a known remedy: no traceback
            log.error("watch.inotify_limit", src=str(watch.path), error=f"{problem}; {INOTIFY_HINT}")
    return _start(PollingObserver(timeout=watch.poll_interval), watch, ready)


_IN_CLOEXEC = 0o2000000
_IN_CREATE = 0x100
_libc = ctypes.CDLL(None, use_errno=True)


def inotify_exhausted(path: Path) -> str | None:
    """Why no further inotify watch can be added, or None while they still can.

    watchdog ignores a failure to watch a sub-folder (it may have vanished meanwhile), so at the
    kernel's watch limit sub-folders go silently unwatched. One probe watch tells: if it cannot
    be added, the limit is spent.
    """
    fd = _libc.inotify_init1(_IN_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        return f"inotify_init: {os.strerror(err)}" if err in (errno.EMFILE, errno.ENFILE) else None
    try:
        if _libc.inotify_add_watch(fd, os.fsencode(path), _IN_CREATE) < 0:
            err = ctypes.get_errno()
            return f"inotify watch limit reached: {os.strerror(err)}" if err == errno.ENOSPC else None
        return None
    finally:
        os.close(fd)


def _start(observer: BaseObserver, watch: Watch, ready: ReadyQueue) -> BaseObserver:
    # Full events (inotify): a file or folder moved in from outside arrives as a move (with no
    # source), not as a bare 'created' that would look like a file still being written.
    observer.schedule(
        _Recorder(watch, ready),
        str(watch.path),
        recursive=watch.recursive,
        # inotify says "closed after writing"; polling can only say "modified" (and then the file
        # must settle). Modified events from inotify would fire on every write() for nothing.
        event_filter=[
            FileModifiedEvent if isinstance(observer, PollingObserver) else FileClosedEvent,
            FileCreatedEvent,
            FileMovedEvent,
            DirMovedEvent,
        ],
    )
    observer.daemon = True
    try:
        observer.start()
    except BaseException:
        observer.stop()
        raise
    return observer


def healthy(observer: BaseObserver, watch: Watch) -> bool:
    """Whether an observer still watches its root: thread and emitters alive, root present, and
    (for inotify) no sub-folder left unwatched because the kernel's watch limit is spent."""
    alive = observer.is_alive() and watch.path.is_dir() and all(e.is_alive() for e in observer.emitters)
    return alive and (not isinstance(observer, InotifyObserver) or inotify_exhausted(watch.path) is None)
