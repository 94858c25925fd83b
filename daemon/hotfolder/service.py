"""Lifecycle: worker pool, dispatch with a bounded number of jobs in flight, outcomes, signals."""

from __future__ import annotations

import ctypes
import heapq
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

from watchdog.observers.api import BaseObserver

from . import logs
from .arrival import Settler
from .atomic import is_temp_name
from .config import Config, Watch, load_config
from .errors import ConfigError
from .formats import register_codecs
from .ignore import Ignore
from .ledger import Identity, Ledger, Lock
from .match import candidates
from .notify import Notifier
from .pipeline import Job, Outcome, quarantine, run_job
from .watch import Arrival, ReadyQueue, healthy, scan, start_observer

_PR_SET_PDEATHSIG = 1
RETRY_BASE_SECONDS = 2.0  # transient failures wait 2, 4, 8, ... seconds
RETRY_CAP_SECONDS = 300.0  # ... but never more than 5 minutes between attempts
RETRY_MAX_ATTEMPTS = 10  # then the input is quarantined with the last error
CHANGING_RECHECK_SECONDS = 1.0  # a source still being written is looked at again this soon
RULE_POLL_SECONDS = 1.0  # how often rule files are checked for changes
SUPERVISE_SECONDS = 2.0  # how often observers are checked
REARM_MAX_SECONDS = 60.0  # a lost root is retried at most this far apart
SCAN_QUEUE_LIMIT = 10_000  # a scan waits while this many arrivals are queued
STATUS_SECONDS = 2.0  # how often systemd's STATUS= line may change
STUCK_GRACE_SECONDS = 60.0  # past job_timeout plus this, the pool could not be mended: let systemd restart


def _worker_init() -> None:
    # One libvips thread per worker: the pool already keeps every core busy.
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    # Ctrl-C reaches the whole process group; the daemon decides when workers stop, not the terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # If the daemon dies (even kill -9), its workers die with it instead of writing on as orphans.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the daemon died while this worker was starting: no signal will come
        os._exit(1)
    register_codecs()


def _kill_workers() -> None:
    """SIGKILL every worker process (the daemon's only children)."""
    for child in multiprocessing.active_children():
        child.kill()


def make_executor(workers: int) -> Executor:
    """A pool of worker processes; spawned (not forked) because the daemon runs observer threads."""
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
    )


@dataclass(frozen=True)
class _Pending:
    job: Job
    identity: Identity
    heavy: bool  # writes HEIF or AVIF: a multi-threaded encoder that keeps every core busy by itself
    submitted: float = 0.0  # monotonic


HEAVY_FORMATS = frozenset({"heif", "avif"})


class Engine:
    """Runs jobs on a pool of worker processes with at most `limit` in flight, then logs and records
    each outcome. A pool broken by a crashed or stuck worker is replaced; the daemon goes on."""

    def __init__(self, config: Config, ledger: Ledger) -> None:
        self.config = config
        self.ledger = ledger
        self.executor: Executor = make_executor(config.workers)
        self.on_wait: Callable[[], None] = lambda: None  # called while waiting for room in the pool
        self.stuck: set[Path] = set()
        # Submitted at most: a job per worker plus one ready to start, so no worker waits for the
        # dispatcher, and nothing sits in the pool's own first-come queue for long.
        self.limit = config.workers + 1
        # x265 and AV1 encoders use every core on their own (two HEIF encodes at once finish only 7%
        # sooner than one after the other here), so they get half the workers; the rest stay free
        # for small jobs, which pass queued heavy ones instead of waiting minutes behind them.
        self.heavy_limit = max(1, config.workers // 2)
        self.queued: deque[_Pending] = deque()  # accepted, waiting for a slot (oldest first)
        self.backlog = self.limit + 8 * config.workers
        self.inflight: dict[Future[Outcome], _Pending] = {}
        self.ignore = Ignore(config.ignore)
        self.log = logs.get()
        outcomes = ("done", "quarantined", "unmatched", "duplicate", "failed", "skipped", "retried")
        self.counts = dict.fromkeys(outcomes, 0)
        self.attempts: dict[Path, int] = {}
        self._retries: list[tuple[float, int, Watch, Path, Path]] = []  # heap: (due, tie, watch, path, root)
        self._tie = 0
        self.clock = time.monotonic

    def due(self) -> list[tuple[Watch, Path, Path]]:
        """Retries whose backoff has passed."""
        now, ready = self.clock(), []
        while self._retries and self._retries[0][0] <= now:
            _, _, watch, path, root = heapq.heappop(self._retries)
            ready.append((watch, path, root))
        return ready

    def waiting_retries(self) -> int:
        return len(self._retries)

    def next_due(self) -> float | None:
        """Seconds until the next retry, or None when none is waiting."""
        return max(0.0, self._retries[0][0] - self.clock()) if self._retries else None

    def _schedule(self, job: Job, delay: float) -> None:
        root = job.watch_path or job.src.parent
        watch = Watch(path=root, name=job.watch or root.name)
        self._tie += 1
        heapq.heappush(self._retries, (self.clock() + delay, self._tie, watch, job.src, root))

    def offer(self, watch: Watch, path: Path, root: Path, *, force: bool = False) -> None:
        """Consider one file: skip what is ignored, known or unmatched by path; otherwise submit it."""
        if self.ignore(path.name):
            return
        try:
            st = path.lstat()
        except FileNotFoundError:
            return
        if not path.is_file() or path.is_symlink():
            return
        identity = Identity.of(st)
        if any(p.job.src == path for p in (*self.inflight.values(), *self.queued)):
            return  # already being processed; a second event for it changes nothing
        if not force and self.ledger.is_handled(path, identity):
            self.counts["skipped"] += 1
            return
        relpath = path.relative_to(root).as_posix()
        rules = candidates(self.config.rules, relpath)
        if not rules:
            outcome = Outcome(path, "unmatched", bytes_in=st.st_size)
            self._finish(outcome, identity)
            return
        job = Job(
            src=path,
            relpath=relpath,
            rules=rules,
            output_root=self.config.output_root,
            quarantine=self.config.quarantine,
            watch=watch.name,
            watch_path=watch.path,
            max_pixels=self.config.max_image_pixels,
            state_dir=self.config.state_dir,
            file_mode=self.config.file_mode,
            gid=self.config.gid,
            seen=(st.st_size, st.st_mtime_ns),
            force=force,
        )
        heavy = any(o.format in HEAVY_FORMATS for r in rules for o in r.outputs)
        while len(self.inflight) + len(self.queued) >= self.backlog:  # backpressure on the dispatcher
            self.collect(timeout=1.0)
            self.on_wait()
        self.queued.append(_Pending(job, identity, heavy))
        self._submit_ready()

    def _submit_ready(self) -> None:
        """Start queued jobs, oldest first, while there is room; a heavy job waits for its lane."""
        heavy_now = sum(p.heavy for p in self.inflight.values())
        for pending in list(self.queued):
            if len(self.inflight) >= self.limit:
                return
            if pending.heavy and heavy_now >= self.heavy_limit:
                continue
            self.queued.remove(pending)
            try:
                future = self.executor.submit(run_job, pending.job)
            except BrokenProcessPool:
                self._replace_pool()
                future = self.executor.submit(run_job, pending.job)
            self.inflight[future] = replace(pending, submitted=self.clock())
            heavy_now += pending.heavy

    def collect(self, timeout: float | None) -> None:
        """Handle the jobs that finish within `timeout` seconds (None: wait for at least one)."""
        self._submit_ready()
        if not self.inflight:
            return
        self._stop_stuck()
        done, _ = wait(list(self.inflight), timeout=timeout, return_when=FIRST_COMPLETED)
        broken = False
        for future in done:
            pending = self.inflight.pop(future)
            try:
                outcome = future.result()
                self.stuck.discard(pending.job.src)  # finished after all, just before its worker was stopped
            except BrokenProcessPool as exc:
                broken = True
                outcome = self._lost(pending, exc)
            except Exception as exc:  # noqa: BLE001 - a broken worker must not stop the daemon
                outcome = Outcome(pending.job.src, "failed", error=f"{type(exc).__name__}: {exc}")
            if outcome.status == "retry":
                outcome = self._retry(pending.job, outcome)
            self._finish(outcome, pending.identity, watch=pending.job.watch)
        if broken:
            self._replace_pool()
        self._submit_ready()

    def _stop_stuck(self) -> None:
        """Stop the pool when a job outlives job_timeout: a codec in an endless loop holds a worker."""
        limit = self.config.job_timeout
        if not limit:
            return
        now = self.clock()
        late = [
            p for p in self.inflight.values() if now - p.submitted > limit and p.job.src not in self.stuck
        ]
        if not late:
            return
        for p in late:
            self.stuck.add(p.job.src)
            self.log.error("job.timeout", src=str(p.job.src), error=f"still running after {limit:g} s",
                           ms=round((now - p.submitted) * 1000, 1))  # fmt: skip
        # Which worker runs which job is not known: all of them stop; the others' jobs are retried.
        _kill_workers()

    def _lost(self, pending: _Pending, exc: BaseException) -> Outcome:
        """The outcome of a job whose worker died: stuck ones are quarantined, the others retried."""
        job = pending.job
        if job.src in self.stuck:
            self.stuck.discard(job.src)
            error = (f"took longer than job_timeout = {self.config.job_timeout:g} s; "
                     "raise job_timeout if the machine is just slow")  # fmt: skip
            moved = quarantine(job, None, error)
            return Outcome(job.src, "quarantined", quarantined_to=moved, error=error)
        # A worker crashed (a codec fault, the OOM killer): maybe this input's doing, maybe a neighbour's.
        # Retried with the attempt counted, so an input that keeps crashing ends in quarantine.
        return Outcome(job.src, "retry", error=f"worker process died: {type(exc).__name__}: {exc}")

    def _replace_pool(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = make_executor(self.config.workers)
        self.log.warning("pool.restarted", error="a worker process died; a fresh pool takes over")

    def oldest_job_s(self) -> float:
        """How long the oldest job in flight has been running (0 when none is)."""
        now = self.clock()
        return max((now - p.submitted for p in self.inflight.values()), default=0.0)

    def shutdown(self, *, abandon: bool) -> None:
        """Stop the pool: wait for it, or (abandon) kill its workers at once."""
        if abandon:
            _kill_workers()
            self.executor.shutdown(wait=False, cancel_futures=True)
        else:
            self.executor.shutdown(wait=True)

    def _retry(self, job: Job, outcome: Outcome) -> Outcome:
        """Schedule a transient failure again with exponential backoff; quarantine it past the cap."""
        src = str(job.src)
        if (outcome.error or "").startswith("source still changing"):
            self.log.info("job.deferred", src=src, error=outcome.error)
            self._schedule(job, CHANGING_RECHECK_SECONDS)
            return outcome
        attempts = self.attempts.get(job.src, 0) + 1
        self.attempts[job.src] = attempts
        if attempts >= RETRY_MAX_ATTEMPTS:
            del self.attempts[job.src]
            error = f"{outcome.error} (gave up after {attempts} attempts)"
            moved = quarantine(job, outcome.rule, error, attempts=attempts)
            return replace(outcome, status="quarantined", quarantined_to=moved, error=error)
        delay = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempts - 1))
        self.log.warning("job.retry", src=src, rule=outcome.rule, error=outcome.error, attempt=attempts,
                         retry_in_s=delay)  # fmt: skip
        self.counts["retried"] += 1
        self._schedule(job, delay)
        return outcome

    def drain(self, deadline: float | None = None) -> int:
        """Wait for the jobs in flight, until the monotonic `deadline` if given; returns how many remain."""
        while self.inflight or self.queued:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self.collect(timeout=left)
        return len(self.inflight) + len(self.queued)

    def _finish(self, outcome: Outcome, identity: Identity, *, watch: str | None = None) -> None:
        src = str(outcome.src)
        for event, fields in outcome.notes:
            self.log.warning(event, **{"src": src, "rule": outcome.rule, **fields})
        if outcome.status == "done":
            for w in outcome.written:
                self.log.info(
                    f"output.{w.action}",
                    src=src, dst=str(w.dst), rule=outcome.rule, format=w.format,
                    bytes_in=outcome.bytes_in, bytes_out=w.bytes_out, ms=w.ms,
                )  # fmt: skip
            self.log.info("job.done", src=src, rule=outcome.rule, format=outcome.format,
                          bytes_in=outcome.bytes_in, ms=outcome.ms, original=outcome.original,
                          started_at=outcome.started_at)  # fmt: skip
        elif outcome.status == "quarantined":
            self.log.error("job.quarantined", src=src, dst=str(outcome.quarantined_to), rule=outcome.rule,
                           error=outcome.error, ms=outcome.ms)  # fmt: skip
        elif outcome.status == "duplicate":
            self.log.info(
                "file.duplicate", src=src, rule=outcome.rule, error=outcome.error, original=outcome.original
            )
        elif outcome.status == "unmatched":
            self.log.info("file.unmatched", src=src, bytes_in=outcome.bytes_in)
        elif outcome.status == "failed":
            self.log.error("job.failed", src=src, error=outcome.error)
        if outcome.status in self.counts:
            self.counts[outcome.status] += 1
        if outcome.status not in {"gone", "retry"}:
            self.ledger.record(outcome, identity, watch=watch, attempts=self.attempts.pop(outcome.src, 0) + 1)


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
        self.settler = Settler()
        self.reload_wanted = False
        self._stamps = self._rule_stamps()
        self._last_look = time.monotonic()
        self.observers: dict[str, BaseObserver] = {}
        self.scanner: threading.Thread | None = None
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
        self.config = engine.config = fresh
        engine.ignore = Ignore(fresh.ignore)
        self._rewatch(old.watches, fresh.watches)
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
        ledger = Ledger(self.config.state_dir)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        remove_leftover_temps(self.config, self.log)
        engine = Engine(self.config, ledger)
        engine.on_wait = lambda: self._heartbeat(engine)
        try:
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
        finally:
            self.notifier.send(stopping=1, status="stopping: finishing the jobs in flight")
            self.log.info("daemon.stopping", inflight=len(engine.inflight) + len(engine.queued),
                          waiting=len(self.ready),
                          deadline_s=self.config.stop_timeout)  # fmt: skip
            for observer in self.observers.values():
                observer.stop()
            engine.queued.clear()  # not started yet: the next start's scan finds them again
            left = engine.drain(deadline=time.monotonic() + self.config.stop_timeout)
            if left:
                # Abandoned, not half-done: outputs are only ever renamed into place whole, the
                # inputs stay where they are, and the next start redoes them.
                self.log.warning(
                    "daemon.abandoned", jobs=left, error=f"still running after {self.config.stop_timeout} s"
                )
                engine.shutdown(abandon=True)
                remove_leftover_temps(self.config, self.log)
            else:
                engine.shutdown(abandon=False)
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
        pending = (len(self.ready) + len(self.settler) + len(engine.inflight) + len(engine.queued)
                   + engine.waiting_retries())  # fmt: skip
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

    def _start_scan(self, watches: Iterable[Watch]) -> None:
        """Stream every file of these roots into the queue from a thread (bounded: it waits for room)."""
        if self.scanner is not None and self.scanner.is_alive():
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
            busy = engine.inflight or engine.queued or len(self.settler) or engine.next_due() is not None
            arrival = self.ready.pop(timeout=0.05 if busy else self._idle_wait)
            if arrival is not None:
                self._dispatch(engine, arrival)
            for settled in self.settler.due():
                engine.offer(settled.watch, settled.path, settled.watch.path)
            for watch, path, root in engine.due():
                engine.offer(watch, path, root)
            engine.collect(timeout=0)
            self._heartbeat(engine)
            self._maybe_reload(engine)
            self._supervise()
            interval = self.config.rescan_interval
            if interval and time.monotonic() - self._last_scan >= interval:
                self._start_scan(self.config.watches)

    def _dispatch(self, engine: Engine, arrival: Arrival) -> None:
        watch = arrival.watch
        if arrival.is_folder:
            # Moved in whole, so complete: its files are ready now.
            for path in scan(arrival.path, recursive=True, ignore=engine.ignore):
                self.ready.put(Arrival(watch, path))
        elif arrival.settle:
            self.settler.track(arrival)
        else:
            self.settler.forget(arrival.path)
            engine.offer(watch, arrival.path, watch.path)


def remove_leftover_temps(config: Config, log: Any) -> int:
    """Temp files left by a killed run are incomplete by definition: remove them before starting."""
    removed = 0
    for root in (config.output_root, config.quarantine):
        for dirpath, _, names in os.walk(root):
            for name in names:
                if is_temp_name(name):
                    (Path(dirpath) / name).unlink(missing_ok=True)
                    removed += 1
    if removed:
        log.warning("startup.temps_removed", files=removed, error="left by an interrupted run")
    return removed


def given_inputs(config: Config, paths: Iterable[Path]) -> Iterator[tuple[Watch, Path]]:
    """The files `process` works on: a folder acts as a watch root (for globs and {relpath}),
    a file is judged within its own folder; ignored names are skipped as the daemon skips them."""
    ignore = Ignore(config.ignore)
    for given in paths:
        path = given.resolve()
        if path.is_dir():
            watch = Watch(path=path, name=path.name)
            for f in scan(path, recursive=True, ignore=ignore):
                yield watch, f
        elif not ignore(path.name):
            yield Watch(path=path.parent, name=path.parent.name), path


def process_paths(config: Config, paths: Iterable[Path], *, force: bool = True) -> dict[str, int]:
    """`hotfolder process`: the same pipeline once over files and folders; returns outcome counts."""
    lock = Lock(config.state_dir)
    ledger = Ledger(config.state_dir)
    remove_leftover_temps(config, logs.get())
    engine = Engine(config, ledger)
    try:
        for watch, path in given_inputs(config, paths):
            engine.offer(watch, path, watch.path, force=force)
        engine.drain()
        while (wait_s := engine.next_due()) is not None:
            time.sleep(wait_s)
            for watch, path, root in engine.due():
                engine.offer(watch, path, root, force=force)
            engine.drain()
    finally:
        engine.shutdown(abandon=False)
        ledger.close()
        lock.release()
    return engine.counts


def summary(counts: dict[str, Any]) -> str:
    """One line for a terminal: how many inputs ended in each state."""
    return ", ".join(f"{k} {v}" for k, v in counts.items())
