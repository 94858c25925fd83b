"""Lifecycle: the daemon loop (watches, dispatch, reload, supervision, systemd) and batch `process`."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from watchdog.observers.api import BaseObserver

from hotfolder import logs
from hotfolder.arrive.ignore import Ignore
from hotfolder.arrive.watch import Arrival, ReadyQueue, healthy, scan, start_observer
from hotfolder.commit.committer import checkpoint
from hotfolder.commit.ledger import Ledger, Lock
from hotfolder.core.tempnames import TEMP_MARK, is_temp_name
from hotfolder.errors import ConfigError, LedgerCorruptError
from hotfolder.run.engine import Engine
from hotfolder.run.notify import Notifier
from hotfolder.settings.config import Config, Watch, load_config

RULE_POLL_SECONDS = 1.0  # how often rule files are checked for changes
SUPERVISE_SECONDS = 2.0  # how often observers are checked
REARM_MAX_SECONDS = 60.0  # a lost root is retried at most this far apart
SCAN_QUEUE_LIMIT = 10_000  # a scan waits while this many arrivals are queued
STATUS_SECONDS = 2.0  # how often systemd's STATUS= line may change
STUCK_GRACE_SECONDS = 60.0  # past job_timeout plus this, the pool could not be mended: let systemd restart


class Daemon:
    """`hotfolder run`: observers record arrivals, the main thread dispatches, collects and tells
    systemd (when it is there) how things stand."""

    def __init__(
        self, config: Config, *, cwd: Path | None = None, overrides: dict[str, Any] | None = None
    ) -> None:
        self.config = config
        self.cwd = cwd or Path.cwd()
        self.overrides = overrides or {}  # command-line settings that outrank the config file
        self.ready = ReadyQueue()
        self.reload_wanted = False
        self._stamps = self._rule_stamps()
        self._last_look = time.monotonic()
        self.observers: dict[str, BaseObserver] = {}
        self.scanner: threading.Thread | None = None
        self._rescan_wanted = False
        self._last_scan = time.monotonic()
        self._next_check = time.monotonic() + SUPERVISE_SECONDS
        self._rearm: dict[str, tuple[float, float]] = {}  # watch name -> (next try, backoff)
        self.stopping = threading.Event()
        self.notifier = Notifier()
        self._next_status = 0.0
        self._next_ping = 0.0
        self._last_status = ""
        self._withheld: str | None = None
        # Idle, the loop wakes this often: enough to feed a watchdog at a quarter of its interval.
        self._idle_wait = min(0.5, (self.notifier.watchdog_s or 2.0) / 4)
        self.log = logs.get()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.log.info("daemon.signal", signal=signal.Signals(signum).name)
        if signum == signal.SIGHUP:
            self.reload_wanted = True
        else:
            self.stopping.set()

    def _rule_stamps(self) -> dict[Path, int]:
        stamps = {}
        for path in (*self.config.rule_files, *([self.config.source] if self.config.source else [])):
            try:
                stamps[path] = path.stat().st_mtime_ns
            except OSError:
                stamps[path] = -1
        return stamps

    def _maybe_reload(self, engine: Engine) -> None:
        """Reload config and rules on SIGHUP or when a file changed; invalid ones leave the old running."""
        now = time.monotonic()
        if not self.reload_wanted and now - self._last_look < RULE_POLL_SECONDS:
            return
        self._last_look = now
        stamps = self._rule_stamps()
        if not self.reload_wanted and stamps == self._stamps:
            return
        self.reload_wanted, self._stamps = False, stamps
        self.notifier.send(reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)
        try:
            fresh = load_config(self.config.source, cwd=self.cwd)
        except ConfigError as exc:
            # A configuration mistake, not a crash: the problems are the message, no traceback.
            failed = {"error": str(exc), "problems": len(exc.problems), "keeping": "old rules"}
            self.log.error("rules.reload_failed", **failed)  # noqa: TRY400
            self.notifier.send(ready=1)
            return
        for key in ("state_dir", "workers", "output_root", "quarantine"):
            if getattr(fresh, key) != getattr(self.config, key):
                self.log.warning(
                    "config.needs_restart", key=key, error="changed; takes effect after a restart"
                )
        fresh = replace(fresh, state_dir=self.config.state_dir, workers=self.config.workers,
                        output_root=self.config.output_root, quarantine=self.config.quarantine,
                        **self.overrides)  # fmt: skip
        if (fresh.log_format, fresh.log_level) != (self.config.log_format, self.config.log_level):
            logs.configure(fmt=fresh.log_format, level=fresh.log_level)
            self.log = engine.log = logs.get()
        old = self.config
        self.config = fresh
        engine.reconfigure(fresh)
        self._rewatch(old.watches, fresh.watches)
        # Files no rule took may be taken now: a scan offers them again (known ones are skipped).
        self._start_scan(fresh.watches, again=True)
        self.log.info("rules.reloaded", rules=[r.name for r in fresh.rules],
                      watches=[w.name for w in fresh.watches], log_level=fresh.log_level)  # fmt: skip
        self.notifier.send(ready=1)

    def _rewatch(self, old: tuple[Watch, ...], new: tuple[Watch, ...]) -> None:
        """Apply a changed watch list: stop what went or changed, arm and scan what is new."""
        before = {w.name: w for w in old}
        after = {w.name: w for w in new}
        for name, watch in before.items():
            if after.get(name) != watch:
                observer = self.observers.pop(name, None)
                self._rearm.pop(name, None)
                if observer is not None:
                    observer.stop()
                    observer.join(timeout=5)
                self.log.info("watch.removed", src=str(watch.path), watch=name)
        added = [w for name, w in after.items() if before.get(name) != w]
        for watch in added:
            self._arm(watch)
        if added:
            self._start_scan(added)

    def _arm(self, watch: Watch) -> None:
        try:
            self.observers[watch.name] = start_observer(watch, self.ready, log=self.log)
        except OSError as exc:
            # Not there yet (an unmounted disk): supervision keeps trying, the others run meanwhile.
            self._rearm[watch.name] = (time.monotonic() + 1.0, 2.0)
            self.log.warning(
                "watch.retry", src=str(watch.path), watch=watch.name, error=str(exc), retry_in_s=1.0
            )
            return
        self.log.info("watch.armed", src=str(watch.path), watch=watch.name, recursive=watch.recursive)

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; returns the exit code."""
        lock = Lock(self.config.state_dir)
        try:
            ledger = Ledger(self.config.state_dir)
        except LedgerCorruptError as exc:
            self.log.error(exc.event, error=str(exc))  # noqa: TRY400 - the message says it all; no traceback
            lock.release()
            raise
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        engine = Engine(self.config, ledger)
        engine.on_wait = lambda: self._heartbeat(engine)
        corrupt: LedgerCorruptError | None = None
        for warning in self.config.warnings:
            self.log.warning("config.warning", error=str(warning))
        try:
            # Commits a crash interrupted are finished first; only then are the rest of the temp
            # files (of jobs that never reached their commit) known to be leftovers.
            engine.finish_open_intents()
            remove_leftover_temps(self.config, self.log, keep=open_tokens(ledger))
            checkpoint("recovered")  # tests look at ledger, outputs and originals here
            for watch in self.config.watches:
                self._arm(watch)
            # Armed first, then scanned: a file that arrives meanwhile is seen at least once.
            self._start_scan(self.config.watches)
            self.log.info(
                "daemon.started",
                pid=os.getpid(),
                workers=self.config.workers,
                rules=[r.name for r in self.config.rules],
                output_root=str(self.config.output_root),
                notify=self.notifier.enabled,
                watchdog_s=self.notifier.watchdog_s,
            )
            # Ready now: the backlog is work to do, not a reason to keep systemd (and boot) waiting.
            self.notifier.send(ready=1, status=self._status(engine), mainpid=os.getpid())
            self._loop(engine)
        except LedgerCorruptError as exc:
            # The state cannot be trusted any more: stop now, with the same message as at start.
            self.log.error(exc.event, error=str(exc))  # noqa: TRY400 - the message says it all; no traceback
            corrupt = exc
            raise
        finally:
            self.notifier.send(stopping=1, status="stopping: finishing the jobs in flight")
            self.log.info("daemon.stopping", inflight=len(engine.inflight) + len(engine.queued),
                          waiting=len(self.ready),
                          deadline_s=self.config.stop_timeout)  # fmt: skip
            for observer in self.observers.values():
                observer.stop()
            engine.queued.clear()  # not started yet: the next start's scan finds them again
            left = 0 if corrupt else engine.drain(deadline=engine.clock() + self.config.stop_timeout)
            if left:
                # Abandoned, not half-done: outputs are only ever renamed into place whole, the
                # inputs stay where they are, and the next start redoes them.
                self.log.warning(
                    "daemon.abandoned", jobs=left, error=f"still running after {self.config.stop_timeout} s"
                )
                engine.shutdown(abandon=True)
                remove_leftover_temps(self.config, self.log, keep=open_tokens(ledger))
            else:
                engine.shutdown(abandon=corrupt is not None)
            for observer in self.observers.values():
                observer.join(timeout=5)
            if self.scanner is not None:
                self.scanner.join(timeout=5)
            ledger.close()
            lock.release()
            self.log.info("daemon.stopped", **engine.counts)
            self.notifier.close()
        return 0

    def _status(self, engine: Engine) -> str:
        """The one line `systemctl status` shows."""
        c = engine.counts
        pending = len(self.ready) + engine.pending()
        text = (f"pending {pending}, done {c['done']}, failed {c['failed']}, "
                f"quarantined {c['quarantined']} since start")  # fmt: skip
        if self._rearm:
            text += "; retrying root " + ", ".join(sorted(self._rearm))
        return text

    def vitals(self, engine: Engine) -> str | None:
        """Why the watchdog must not be fed now, or None when every part is alive and moving.

        The dispatcher is this thread: a stuck loop simply stops feeding it. A root that is offline and
        being retried is not a fault (nothing systemd could mend); a dead observer that is not being
        re-armed is, and so is a pool whose oldest job is well past job_timeout (stopping it failed).
        """
        for watch in self.config.watches:
            if watch.name in self._rearm:
                continue
            observer = self.observers.get(watch.name)
            if (
                observer is None
                or not observer.is_alive()
                or not all(e.is_alive() for e in observer.emitters)
            ):
                if time.monotonic() < self._next_check:  # supervision has not looked yet: give it its turn
                    continue
                return f"observer of watch {watch.name!r} is dead"
        limit = self.config.job_timeout
        if limit and engine.oldest_job_s() > limit + STUCK_GRACE_SECONDS:
            return f"a job has run {engine.oldest_job_s():.0f} s, past job_timeout {limit:g} s"
        return None

    def _heartbeat(self, engine: Engine) -> None:
        """STATUS when it changes (at most every few seconds), WATCHDOG=1 at half the interval if vital."""
        if not self.notifier.enabled:
            return
        now = time.monotonic()
        if now >= self._next_status:
            self._next_status = now + STATUS_SECONDS
            status = self._status(engine)
            if status != self._last_status:
                self._last_status = status
                self.notifier.send(status=status)
        interval = self.notifier.watchdog_s
        if interval is None or now < self._next_ping:
            return
        self._next_ping = now + interval / 2
        reason = self.vitals(engine)
        if reason is None:
            self.notifier.send(watchdog=1)
            self._withheld = None
        elif reason != self._withheld:
            self._withheld = reason
            self.log.error("watchdog.withheld", error=reason)

    def _start_scan(self, watches: Iterable[Watch], *, again: bool = False) -> None:
        """Stream every file of these roots into the queue from a thread (bounded: it waits for room)."""
        if self.scanner is not None and self.scanner.is_alive():
            if again:
                self._rescan_wanted = True  # a reload during a scan: scan again once it ends
            return
        self._last_scan = time.monotonic()
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
            self.log.info("scan.done", src=str(watch.path), watch=watch.name, files=n)

    def _supervise(self) -> None:
        """Re-arm observers whose root vanished or whose thread died, with backoff; then rescan."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + SUPERVISE_SECONDS
        for watch in self.config.watches:
            observer = self.observers.get(watch.name)
            if observer is not None and healthy(observer, watch):
                continue
            if observer is not None:
                self.log.error("watch.lost", src=str(watch.path), watch=watch.name,
                               error="root missing or observer stopped; re-arming with backoff")  # fmt: skip
                observer.stop()
                self.observers.pop(watch.name)
                self._rearm[watch.name] = (now, 1.0)
            due, delay = self._rearm.get(watch.name, (now, 1.0))
            if now < due:
                continue
            try:
                if not watch.path.is_dir():
                    raise FileNotFoundError(str(watch.path))
                self.observers[watch.name] = start_observer(watch, self.ready, create=False, log=self.log)
            except OSError as exc:
                self._rearm[watch.name] = (now + delay, min(delay * 2, REARM_MAX_SECONDS))
                self.log.warning("watch.retry", src=str(watch.path), watch=watch.name, error=str(exc),
                                 retry_in_s=delay)  # fmt: skip
                continue
            self._rearm.pop(watch.name, None)
            self.log.info("watch.rearmed", src=str(watch.path), watch=watch.name)
            self._start_scan([watch])

    def _loop(self, engine: Engine) -> None:
        while not self.stopping.is_set():
            busy = engine.inflight or engine.queued or engine.next_due() is not None
            arrival = self.ready.pop(timeout=0.05 if busy else self._idle_wait)
            if arrival is not None:
                self._dispatch(engine, arrival)
            engine.tick()
            self._heartbeat(engine)
            self._maybe_reload(engine)
            self._supervise()
            interval = self.config.rescan_interval
            scanning = self.scanner is not None and self.scanner.is_alive()
            if (interval and time.monotonic() - self._last_scan >= interval) or (
                self._rescan_wanted and not scanning
            ):
                self._rescan_wanted = False
                self._start_scan(self.config.watches)

    def _dispatch(self, engine: Engine, arrival: Arrival) -> None:
        watch = arrival.watch
        if arrival.is_folder:
            # Moved in whole, so complete: its files are ready now.
            for path in scan(arrival.path, recursive=True, ignore=engine.ignore):
                self.ready.put(Arrival(watch, path))
        else:
            engine.arrive(arrival)


def open_tokens(ledger: Ledger) -> frozenset[str]:
    """The tokens of commits still open: their staged files are not leftovers."""
    return frozenset(i.token for i in ledger.intents())


def remove_leftover_temps(config: Config, log: Any, *, keep: frozenset[str] = frozenset()) -> int:
    """Temp files left by a killed run are incomplete by definition: remove them before starting
    (except those of a commit that is still open: it needs them to finish)."""
    removed = 0
    marks = [f"{TEMP_MARK}{token}" for token in keep]
    for root in (config.output_root, config.quarantine):
        for dirpath, _, names in os.walk(root):
            for name in names:
                if is_temp_name(name) and not any(m in name for m in marks):
                    (Path(dirpath) / name).unlink(missing_ok=True)
                    removed += 1
    if removed:
        log.warning("startup.temps_removed", files=removed, error="left by an interrupted run")
    return removed


def given_inputs(config: Config, paths: Iterable[Path]) -> Iterator[tuple[Watch, Path]]:
    """The files `process` works on. Inside a configured watch, they are judged as the daemon judges
    them (that watch's name, paths below its root, as `explain` does); elsewhere a folder acts as a
    watch root and a file is judged within its own folder. Ignored names are skipped."""
    ignore = Ignore(config.ignore)
    for given in paths:
        path = given.resolve()
        inside = next((w for w in config.watches if path == w.path or path.is_relative_to(w.path)), None)
        if path.is_dir():
            watch = inside or Watch(path=path, name=path.name)
            for f in scan(path, recursive=True, ignore=ignore):
                yield watch, f
        elif not ignore(path.name):
            yield inside or Watch(path=path.parent, name=path.parent.name), path


def process_paths(config: Config, paths: Iterable[Path], *, force: bool = True) -> dict[str, int]:
    """`hotfolder process`: the same pipeline once over files and folders; returns outcome counts."""
    lock = Lock(config.state_dir)
    ledger = Ledger(config.state_dir)
    engine = Engine(config, ledger, batch=True)
    try:
        engine.finish_open_intents()
        remove_leftover_temps(config, logs.get(), keep=open_tokens(ledger))
        for watch, path in given_inputs(config, paths):
            engine.offer(watch, path, watch.path, force=force)
        engine.settle_all()
    finally:
        engine.shutdown(abandon=False)
        ledger.close()
        lock.release()
    return engine.counts


def summary(counts: dict[str, Any]) -> str:
    """One line for a terminal: how many inputs ended in each state."""
    return ", ".join(f"{k} {v}" for k, v in counts.items())
