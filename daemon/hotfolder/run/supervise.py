"""Watching the roots: an observer per watch, re-armed with backoff when its root vanishes or its
thread dies, and scans (at start, for new watches, after a reload, as a safety net) in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

from watchdog.observers.api import BaseObserver

from hotfolder import logs
from hotfolder.arrive.ignore import Ignore
from hotfolder.arrive.queue import Arrival, ReadyQueue
from hotfolder.arrive.scan import scan
from hotfolder.arrive.watch import healthy, start_observer
from hotfolder.commit.live import WatchHealth
from hotfolder.settings.config import Config
from hotfolder.settings.watches import Watch

log = logs.get()

SUPERVISE_SECONDS: Final = 2.0  # how often observers are checked
REARM_MAX_SECONDS: Final = 60.0  # a lost root is retried at most this far apart
SCAN_QUEUE_LIMIT: Final = 10_000  # a scan waits while this many arrivals are queued


class Watches:
    """The observers of the configured watches and the scanner thread, on the daemon's clock."""

    def __init__(
        self,
        config: Config,
        ready: ReadyQueue,
        *,
        clock: Callable[[], float],
        stopping: threading.Event,
    ) -> None:
        self.config = config
        self.ready = ready
        self.clock = clock
        self.stopping = stopping
        self.observers: dict[str, BaseObserver] = {}
        self.rearm: dict[str, tuple[float, float]] = {}  # watch name -> (next try, backoff)
        self.lost_since: dict[str, float] = {}  # watch name -> wall-clock time it was found lost
        # watch name -> (st_dev, st_ino) of the root when its observer was armed: a root moved away and made
        # again, or a share mounted on it after start, is another folder the observer does not see.
        self.armed: dict[str, tuple[int, int]] = {}
        self.next_check = clock() + SUPERVISE_SECONDS
        self.scanner: threading.Thread | None = None
        self._rescan_wanted = False
        self._last_scan = clock()

    def arm(self, watch: Watch) -> None:
        """Start the observer of one watch; a root not there yet is retried by `supervise`."""
        try:
            self.observers[watch.name] = start_observer(watch, self.ready)
            self._remember_root(watch)
        except OSError as exc:
            # Not there yet (an unmounted disk): supervision keeps trying, the others run meanwhile.
            self.rearm[watch.name] = (self.clock() + 1.0, 2.0)
            self.lost_since.setdefault(watch.name, time.time())
            log.warning("watch.retry", src=str(watch.path), watch=watch.name, error=str(exc), retry_in_s=1.0)
            return
        log.info("watch.armed", src=str(watch.path), watch=watch.name, recursive=watch.recursive)

    def start(self) -> None:
        """Arm every watch, then scan them: a file that arrives meanwhile is seen at least once."""
        for watch in self.config.watches:
            self.arm(watch)
        self.scan(self.config.watches)

    def change(self, config: Config) -> None:
        """Apply a reloaded config: stop what went or changed, arm and scan what is new, then scan
        everything again (files no rule took may be taken now; known ones are skipped)."""
        before = {w.name: w for w in self.config.watches}
        after = {w.name: w for w in config.watches}
        self.config = config
        for name, watch in before.items():
            if after.get(name) != watch:
                observer = self.observers.pop(name, None)
                self.rearm.pop(name, None)
                self.lost_since.pop(name, None)
                if observer is not None:
                    observer.stop()
                    observer.join(timeout=5)
                log.info("watch.removed", src=str(watch.path), watch=name)
        added = [w for name, w in after.items() if before.get(name) != w]
        for watch in added:
            self.arm(watch)
        if added:
            self.scan(added)
        self.scan(config.watches, again=True)

    def scan(self, watches: Iterable[Watch], *, again: bool = False) -> None:
        """Stream every file of these roots into the queue from a thread (bounded: it waits for room)."""
        if self.scanner is not None and self.scanner.is_alive():
            if again:
                self._rescan_wanted = True  # a reload during a scan: scan again once it ends
            return
        self._last_scan = self.clock()
        self.scanner = threading.Thread(target=self._scan, args=(tuple(watches),), name="scan", daemon=True)
        self.scanner.start()

    def _scan(self, watches: tuple[Watch, ...]) -> None:
        ignore = Ignore(self.config.ignore)
        for watch in watches:
            n = 0
            for path in scan(watch.path, recursive=watch.recursive, ignore=ignore):
                if self.stopping.is_set():
                    return
                # A file found by a scan may be a copy still in progress: it must settle first.
                self.ready.put_waiting(
                    Arrival(watch, path, settle=True), limit=SCAN_QUEUE_LIMIT, stop=self.stopping
                )
                n += 1
            # Known files are skipped later without a line each; this is the one summary.
            log.info("scan.done", src=str(watch.path), watch=watch.name, files=n)

    def rescan_if_due(self) -> None:
        """The safety-net rescan every rescan_interval, and a scan a reload asked for during another."""
        interval = self.config.rescan_interval
        scanning = self.scanner is not None and self.scanner.is_alive()
        if (interval and self.clock() - self._last_scan >= interval) or (
            self._rescan_wanted and not scanning
        ):
            self._rescan_wanted = False
            self.scan(self.config.watches)

    def supervise(self) -> None:
        """Re-arm observers whose root vanished or whose thread died, with backoff; then rescan."""
        now = self.clock()
        if now < self.next_check:
            return
        self.next_check = now + SUPERVISE_SECONDS
        for watch in self.config.watches:
            observer = self.observers.get(watch.name)
            replaced = self._replaced(watch) if observer is not None else None
            if observer is not None and replaced is None and healthy(observer, watch):
                continue
            if observer is not None:
                why = replaced or "root missing or observer stopped; re-arming with backoff"
                log.error("watch.lost", src=str(watch.path), watch=watch.name, error=why)
                observer.stop()
                self.observers.pop(watch.name)
                self.rearm[watch.name] = (now, 1.0)
                self.lost_since.setdefault(watch.name, time.time())
            due, delay = self.rearm.get(watch.name, (now, 1.0))
            if now >= due:
                self._rearm(watch, now, delay)

    def _rearm(self, watch: Watch, now: float, delay: float) -> None:
        try:
            if not watch.path.is_dir():
                raise FileNotFoundError(str(watch.path))
            self.observers[watch.name] = start_observer(watch, self.ready, create=False)
            self._remember_root(watch)
        except OSError as exc:
            self.rearm[watch.name] = (now + delay, min(delay * 2, REARM_MAX_SECONDS))
            log.warning(
                "watch.retry", src=str(watch.path), watch=watch.name, error=str(exc), retry_in_s=delay
            )
            return
        self.rearm.pop(watch.name, None)
        self.lost_since.pop(watch.name, None)
        log.info("watch.rearmed", src=str(watch.path), watch=watch.name)
        self.scan([watch])

    def _remember_root(self, watch: Watch) -> None:
        st = watch.path.stat()
        self.armed[watch.name] = (st.st_dev, st.st_ino)

    def _replaced(self, watch: Watch) -> str | None:
        """Why the folder at the root is not the one the observer watches (it is deaf to it), or None."""
        try:
            st = watch.path.stat()
        except OSError:
            return None  # missing: healthy() says so
        was = self.armed.get(watch.name)
        if was is None or was == (st.st_dev, st.st_ino):
            return None
        if was[0] != st.st_dev:
            return "another filesystem is mounted on the root (or it was unmounted) since it was armed"
        return "the root folder was replaced (moved away and made again) since it was armed"

    def health(self) -> tuple[WatchHealth, ...]:
        """Each configured watch: watched now, or lost (and since when)."""
        return tuple(
            WatchHealth(
                w.name,
                str(w.path),
                up=w.name in self.observers and w.name not in self.lost_since,
                lost_since=self.lost_since.get(w.name),
            )
            for w in self.config.watches
        )

    def dead(self) -> str | None:
        """The first watch whose observer is dead and not being re-armed (supervision has had its turn)."""
        for watch in self.config.watches:
            if watch.name in self.rearm:
                continue  # a root that is offline and being retried is not a fault
            observer = self.observers.get(watch.name)
            alive = (
                observer is not None and observer.is_alive() and all(e.is_alive() for e in observer.emitters)
            )
            if not alive and self.clock() >= self.next_check:
                return watch.name
        return None

    def stop(self) -> None:
        """Stop every observer (joined by `join`)."""
        for observer in self.observers.values():
            observer.stop()

    def join(self) -> None:
        """Wait for the observers and the scanner to end."""
        for observer in self.observers.values():
            observer.join(timeout=5)
        if self.scanner is not None:
            self.scanner.join(timeout=5)
