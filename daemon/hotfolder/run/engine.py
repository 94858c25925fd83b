"""The engine: files offered in, jobs on a pool of workers, and each outcome committed and recorded.

Workers stage; the engine (in the daemon's main thread) commits, quarantines and writes the
ledger, so every visible change happens in one place and in one order. Timing decisions (a file
settling, a broken file holding still, an empty file getting content, retries) use one
injectable clock, so tests advance it instead of sleeping.
"""

from __future__ import annotations

import ctypes
import heapq
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from hotfolder import logs
from hotfolder.arrive.ignore import Ignore
from hotfolder.arrive.queue import Settler
from hotfolder.arrive.watch import Arrival
from hotfolder.commit import dispose
from hotfolder.commit.committer import (
    CommitIncompleteError,
    Committed,
    Committer,
    as_duplicate,
    duplicate_of,
    remove_job_temps,
)
from hotfolder.commit.dispose import Disposed, Read
from hotfolder.commit.ledger import Intent, Ledger, Record
from hotfolder.commit.staged import Outcome
from hotfolder.core.identity import FileIdentity
from hotfolder.core.status import Result, RetryReason, Status
from hotfolder.decide.job import Job
from hotfolder.decide.match import candidates
from hotfolder.decide.sniff import register_codecs
from hotfolder.errors import HotfolderError, is_transient
from hotfolder.run.job import run_job
from hotfolder.settings.config import Config, Watch

_PR_SET_PDEATHSIG: Final = 1
RETRY_BASE_SECONDS: Final = 2.0  # transient failures wait 2, 4, 8, ... seconds
RETRY_CAP_SECONDS: Final = 300.0  # ... but never more than 5 minutes between attempts
RETRY_MAX_ATTEMPTS: Final = 10  # then the input is quarantined with the last error
CHANGING_RECHECK_SECONDS: Final = 1.0  # a source still being written is looked at again this soon
EMPTY_WAIT_SECONDS: Final = 60.0  # an empty file is looked at this long for content, then left alone
HEAVY_FORMATS: Final = frozenset({"heif", "avif"})


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


def kill_workers() -> None:
    """SIGKILL every worker process (the daemon's only children)."""
    for child in multiprocessing.active_children():
        child.kill()


def make_executor(workers: int) -> Executor:
    """A pool of worker processes; spawned (not forked) because the daemon runs observer threads."""
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
    )


def rules_fingerprint(config: Config) -> str:
    """What an 'unmatched' verdict depends on: a rules change offers those files again."""
    import hashlib  # noqa: PLC0415

    made = repr(tuple((r.name, r.match, r.outputs) for r in config.rules))
    return hashlib.sha1(made.encode(), usedforsecurity=False).hexdigest()[:16]


# What the user can do about each of hotfolder's own errors, written into every quarantine note.
HINTS: Final = {
    "InputError": "the file itself cannot be used (truncated, corrupt, too large, or not what its name "
    "says); replace it, or fix the limit named above, then run `hotfolder retry PATH`",
    "MissingFieldError": "an output path needs a value this file does not have; give the template a "
    "fallback such as {model|'unknown'}, then run `hotfolder retry PATH`",
    "EncodeError": "an output could not be written or did not verify; the reason above says which; after "
    "fixing the rule or the disk, run `hotfolder retry PATH`",
    "UnsafePathError": "an output or quarantine folder is a link or not a folder; hotfolder never writes "
    "through links: replace it with a real folder, then run `hotfolder retry PATH`",
}


def quarantine_note(job: Job, outcome: Outcome, attempts: int) -> dict[str, Any]:
    """The note beside a quarantined input: which of our errors, why, and what to do about it."""
    error_class = outcome.error_class or "InputError"
    return {"src": str(job.src), "rule": outcome.rule, "watch": job.watch, "error_class": error_class,
            "error": outcome.error, "hint": HINTS.get(error_class, HINTS["InputError"]),
            "attempts": attempts}  # fmt: skip


@dataclass(frozen=True)
class _Pending:
    job: Job
    heavy: bool  # writes HEIF or AVIF: a multi-threaded encoder that keeps every core busy by itself
    submitted: float = 0.0  # engine clock


@dataclass(order=True)
class _Due:
    """Something to do at a time: offer a file again, or finish an interrupted commit."""

    at: float
    tie: int
    watch: Watch | None = field(compare=False, default=None)
    path: Path | None = field(compare=False, default=None)
    root: Path | None = field(compare=False, default=None)
    intent: int | None = field(compare=False, default=None)


@dataclass
class _Broken:
    """A failed input waiting to hold still before it is quarantined (two looks, `settle` apart)."""

    job: Job
    outcome: Outcome
    since: float


class Engine:
    """Runs jobs on a pool of worker processes with at most `limit` in flight, commits and records
    each outcome. A pool broken by a crashed or stuck worker is replaced; the daemon goes on."""

    def __init__(self, config: Config, ledger: Ledger, *, clock: Callable[[], float] = time.monotonic,
                 batch: bool = False) -> None:  # fmt: skip
        self.config = config
        self.batch = batch  # `process`: files were named just now; an empty one is reported at once
        self.ledger = ledger
        self.clock = clock
        self.committer = Committer(ledger, output_root=config.output_root)
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
        self.settler = Settler(quiet=config.settle, clock=clock)
        self.broken: dict[Path, _Broken] = {}
        self.empties: dict[Path, tuple[Watch, Path, float]] = {}  # path -> (watch, root, first seen)
        self.dirty: set[Path] = set()  # changed while busy: offered again once the current look ends
        self.ignore = Ignore(config.ignore)
        self.rules_fp = rules_fingerprint(config)
        self.log = logs.get()
        outcomes = ("done", "quarantined", "unmatched", "duplicate", "failed", "skipped", "retried", "empty")
        self.counts = dict.fromkeys(outcomes, 0)
        self.attempts: dict[Path | int, int] = {}  # per input path, and per open intent id
        self._due: list[_Due] = []
        self._tie = 0

    def reconfigure(self, config: Config) -> None:
        """New rules and ignore list (a reload); files no rule took before are looked at again."""
        self.config = config
        self.ignore = Ignore(config.ignore)
        self.rules_fp = rules_fingerprint(config)

    # Offering files ----------------------------------------------------------------------------

    def arrive(self, arrival: Arrival) -> None:
        """A file the watcher or a scan reported: settled first when it may still be written."""
        if arrival.settle:
            self.settler.track(arrival)
        else:
            self.settler.forget(arrival.path)
            self.offer(arrival.watch, arrival.path, arrival.watch.path)

    def busy(self, path: Path) -> bool:
        """Whether this path is being processed or looked at right now."""
        return (
            path in self.broken
            or path in self.empties
            or any(p.job.src == path for p in (*self.inflight.values(), *self.queued))
        )

    def offer(self, watch: Watch, path: Path, root: Path, *, force: bool = False) -> None:
        """Consider one file: skip what is ignored, known or unmatched by path; otherwise queue a job."""
        if self.ignore(path.name):
            return
        identity = FileIdentity.at(path)
        if identity is None:
            return  # gone, a link, a folder, a FIFO: never an input
        if self.busy(path):
            self.dirty.add(path)  # a second event for it: looked at again when this look ends
            return
        if not force and self.ledger.is_handled(path, identity, rules_fp=self.rules_fp):
            self.counts["skipped"] += 1
            return
        if identity.size == 0:
            self._empty(path, watch, root, identity)
            return
        relpath = path.relative_to(root).as_posix()
        rules = candidates(self.config.rules, relpath)
        if not rules:
            self._record(Record(path, identity, Status.UNMATCHED, watch=watch.name, rules_fp=self.rules_fp))
            self.log.info("file.unmatched", src=str(path), bytes_in=identity.size)
            self.counts["unmatched"] += 1
            return
        job = Job(
            src=path,
            relpath=relpath,
            rules=rules,
            output_root=self.config.output_root,
            watch=watch.name,
            watch_path=watch.path,
            max_pixels=self.config.max_image_pixels,
            file_mode=self.config.file_mode,
            gid=self.config.gid,
            seen=identity,
            force=force,
        )
        heavy = any(o.format in HEAVY_FORMATS for r in rules for o in r.outputs)
        while len(self.inflight) + len(self.queued) >= self.backlog:  # backpressure on the dispatcher
            self.collect(timeout=1.0)
            self.on_wait()
        self.queued.append(_Pending(job, heavy))
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
            job = pending.job
            if not job.force and job.seen is not None:
                # Inputs already done with this size: the worker compares hashes, and a duplicate
                # costs a read instead of a render.
                job = replace(job, twins=self.ledger.twins(job.seen.size, job.src))
            try:
                future = self.executor.submit(run_job, job)
            except BrokenProcessPool:
                self._replace_pool()
                future = self.executor.submit(run_job, job)
            self.inflight[future] = replace(pending, job=job, submitted=self.clock())
            heavy_now += pending.heavy

    # Time passing ------------------------------------------------------------------------------

    def tick(self) -> None:
        """Everything whose time has come: settled files, broken files that held still, empty
        files that got content or waited long enough, retries; then finished jobs."""
        for arrival in self.settler.due():
            self.offer(arrival.watch, arrival.path, arrival.watch.path)
        self._look_at_broken()
        self._look_at_empties()
        now = self.clock()
        while self._due and self._due[0].at <= now:
            due = heapq.heappop(self._due)
            if due.intent is not None:
                self._finish_intent(due.intent)
            else:
                assert due.watch is not None and due.path is not None and due.root is not None
                self.offer(due.watch, due.path, due.root)
        self.collect(timeout=0)

    def pending(self) -> int:
        """Files not finished yet: in flight, queued, settling, waiting to be retried or confirmed."""
        return (len(self.inflight) + len(self.queued) + len(self.settler) + len(self.broken)
                + len(self.empties) + len(self._due))  # fmt: skip

    def next_due(self) -> float | None:
        """Seconds until something is due, or None when nothing waits for time."""
        times = [d.at for d in self._due[:1]]
        times += [b.since + self.config.settle for b in self.broken.values()]
        if self.settler or self.empties:
            times.append(self.clock() + min(self.config.settle, 0.5))
        return max(0.0, min(times) - self.clock()) if times else None

    def _later(self, delay: float, **what: Any) -> None:
        self._tie += 1
        heapq.heappush(self._due, _Due(self.clock() + delay, self._tie, **what))

    def _again(self, job: Job, delay: float) -> None:
        root = job.watch_path or job.src.parent
        watch = Watch(path=root, name=job.watch or root.name)
        self._later(delay, watch=watch, path=job.src, root=root)

    def _release(self, job: Job) -> None:
        """This look at the file is over: if it changed meanwhile, it is offered again now."""
        if job.src in self.dirty and not self.busy(job.src):
            self.dirty.discard(job.src)
            self._again(job, 0.0)

    # Collecting outcomes -----------------------------------------------------------------------

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
            self.handle(pending.job, outcome)
        if broken:
            self._replace_pool()
        self._submit_ready()

    def handle(self, job: Job, outcome: Outcome) -> None:
        """Log a worker's notes, then commit, quarantine, record or schedule what came back."""
        for event, fields in outcome.notes:
            self.log.warning(event, **{"src": str(job.src), "rule": outcome.rule, **fields})
        try:
            if outcome.result in (Result.STAGED, Result.DUPLICATE):
                self._commit(job, outcome)
            elif outcome.result is Result.UNMATCHED:
                assert outcome.identity is not None
                self._record(Record(job.src, outcome.identity, Status.UNMATCHED, watch=job.watch,
                                    rules_fp=self.rules_fp))  # fmt: skip
                self.log.info("file.unmatched", src=str(job.src), bytes_in=outcome.bytes_in)
                self.counts["unmatched"] += 1
            elif outcome.result is Result.BROKEN:
                self._broken(job, outcome)
            elif outcome.result is Result.RETRY:
                self._retry(job, outcome)
            elif outcome.error:
                self.log.info("file.refused", src=str(job.src), error=outcome.error)
        finally:
            self._release(job)

    def _commit(self, job: Job, outcome: Outcome) -> None:
        if outcome.result is Result.STAGED and (twin := duplicate_of(self.ledger, outcome, job)) is not None:
            outcome = as_duplicate(outcome, twin)  # identical files arriving together: one is done
        duplicate = outcome.result is Result.DUPLICATE
        assert outcome.identity is not None
        record = Record(
            path=job.src, identity=outcome.identity, status=Status.DUPLICATE if duplicate else Status.DONE,
            sha256=outcome.sha256, rule=outcome.rule, chain=outcome.chain, watch=job.watch,
            attempts=self.attempts.pop(job.src, 0) + 1, orientation=outcome.orientation,
            error=f"same content as {outcome.twin}" if duplicate and outcome.twin else None,
        )  # fmt: skip
        try:
            committed = self.committer.commit(job, outcome, record)
        except CommitIncompleteError as exc:
            self._incomplete(exc, job.src)
            return
        except OSError as exc:  # before the first rename: nothing is visible
            if is_transient(exc):
                self._retry(job, replace(outcome, result=Result.RETRY, retry=RetryReason.TRANSIENT,
                                         error=f"{exc.strerror or exc} ({exc.filename})"))  # fmt: skip
            else:
                self._broken(
                    job,
                    replace(
                        outcome,
                        result=Result.BROKEN,
                        error_class="EncodeError",
                        error=f"EncodeError: cannot put outputs in place: {exc}",
                    ),
                )
            return
        except HotfolderError as exc:
            self._broken(job, replace(outcome, result=Result.BROKEN, error_class=type(exc).__name__,
                                      error=f"{type(exc).__name__}: {exc}"))  # fmt: skip
            return
        self._log_committed(committed, outcome, fresh=True)

    def _log_committed(self, committed: Committed, outcome: Outcome | None, *, fresh: bool) -> None:
        record, src = committed.record, str(committed.record.path)
        for w in committed.written:
            self.log.info(f"output.{w.action}", src=src, dst=str(w.dst), rule=w.rule, format=w.format,
                          bytes_in=record.identity.size, bytes_out=w.bytes_out, ms=w.ms)  # fmt: skip
        disposed = committed.disposed
        if disposed.why is not None:
            self.log.warning("original.kept", src=src, rule=record.rule, error=disposed.why,
                             dst=str(disposed.where) if disposed.where else None)  # fmt: skip
        if not fresh:
            self.log.info("intent.finished", src=src, rule=record.rule, original=disposed.summary)
        if record.status == Status.DUPLICATE:
            self.log.info("file.duplicate", src=src, rule=record.rule, error=record.error,
                          original=disposed.summary)  # fmt: skip
            self.counts["duplicate"] += 1
            return
        self.log.info(
            "job.done",
            src=src,
            rule=record.rule,
            format=outcome.format if outcome else None,
            bytes_in=record.identity.size,
            ms=outcome.ms if outcome else None,
            original=disposed.summary,
            started_at=outcome.started_at if outcome else None,
        )
        self.counts["done"] += 1

    def _incomplete(self, exc: CommitIncompleteError, src: Path) -> None:
        """Outputs are in place, the rest failed: finish the intent later; give up keeping the original."""
        attempts = self.attempts.get(exc.intent_id, 0) + 1
        self.attempts[exc.intent_id] = attempts
        delay = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempts - 1))
        self.log.error("commit.incomplete", src=str(src), error=str(exc), attempt=attempts, retry_in_s=delay)
        self._later(delay, intent=exc.intent_id)

    def _finish_intent(self, intent_id: int) -> None:
        intent = next((i for i in self.ledger.intents() if i.id == intent_id), None)
        if intent is not None:
            self.finish(intent)

    def finish(self, intent: Intent) -> None:
        """Complete an intent left open (at start, or as a retry); past the cap, the original is kept."""
        try:
            committed = self.committer.finish(intent)
        except CommitIncompleteError as exc:
            if self.attempts.get(intent.id, 0) + 1 < RETRY_MAX_ATTEMPTS:
                self._incomplete(exc, intent.path)
                return
            why = f"could not be disposed of after {RETRY_MAX_ATTEMPTS} attempts: {exc}"
            record = replace(intent.record, original=f"kept: {why}")
            self.ledger.close_intent(intent.id, record)
            committed = Committed(record, (), Disposed("kept", why=why))
        self.attempts.pop(intent.id, None)
        self._log_committed(committed, None, fresh=False)

    # Failures ----------------------------------------------------------------------------------

    def _broken(self, job: Job, outcome: Outcome) -> None:
        """A permanent problem: quarantined only once the file has held still (`settle`) across two looks;
        a file that changed since it was read is still being written, and is simply offered again."""
        if outcome.identity is None:
            outcome = replace(outcome, identity=job.seen)
        if outcome.identity is None or FileIdentity.at(job.src) != outcome.identity:
            self.log.info(
                "job.deferred", src=str(job.src), error=f"changed since it was read; {outcome.error}"
            )
            self._again(job, 0.0)
            return
        if outcome.identity.size == 0:
            root = job.watch_path or job.src.parent
            self._empty(job.src, Watch(path=root, name=job.watch or root.name), root, outcome.identity)
            return
        if outcome.read_ns and outcome.read_ns / 1e9 - outcome.identity.mtime_ns / 1e9 >= self.config.settle:
            # It had already held still for `settle` when it was read, and is unchanged now: two looks.
            self._quarantine(job, outcome)
            return
        self.broken[job.src] = _Broken(job, outcome, self.clock())

    def _look_at_broken(self) -> None:
        now = self.clock()
        for path, waiting in list(self.broken.items()):
            if now - waiting.since < self.config.settle:
                continue
            del self.broken[path]
            outcome, job = waiting.outcome, waiting.job
            assert outcome.identity is not None
            if FileIdentity.at(path) != outcome.identity:
                self.log.info(
                    "job.deferred", src=str(path), error=f"changed since it was read; {outcome.error}"
                )
                self._again(job, 0.0)
            else:
                self._quarantine(job, outcome)
            self._release(job)

    def _quarantine(self, job: Job, outcome: Outcome) -> None:
        assert outcome.identity is not None
        attempts = self.attempts.pop(job.src, 0) + 1
        read = Read(job.src, outcome.identity, outcome.sha256, outcome.read_ns)
        note = quarantine_note(job, outcome, attempts)
        try:
            result = dispose.quarantine(
                read, self.config.quarantine / job.relpath, self.config.quarantine, note
            )
        except (OSError, HotfolderError) as exc:
            why = f"could not quarantine: {exc}; {outcome.error}"
            self.log.error("job.failed", src=str(job.src), error=why)  # noqa: TRY400 - expected: no traceback
            self._record(
                Record(
                    job.src,
                    outcome.identity,
                    Status.FAILED,
                    rule=outcome.rule,
                    watch=job.watch,
                    attempts=attempts,
                    error=f"{outcome.error}; not quarantined: {exc}",
                )
            )
            self.counts["failed"] += 1
            return
        if isinstance(result, Disposed):
            self.log.info("job.deferred", src=str(job.src), error=f"{result.why}; {outcome.error}")
            self._again(job, 0.0)
            return
        parked, note_file = result
        self._record(Record(job.src, outcome.identity, Status.QUARANTINED, sha256=outcome.sha256,
                            rule=outcome.rule, watch=job.watch, attempts=attempts, error=outcome.error,
                            quarantined_to=str(parked), note=str(note_file)))  # fmt: skip
        self.log.error("job.quarantined", src=str(job.src), dst=str(parked), rule=outcome.rule,
                       error=outcome.error, ms=outcome.ms)  # fmt: skip
        self.counts["quarantined"] += 1

    def _empty(self, path: Path, watch: Watch, root: Path, identity: FileIdentity) -> None:
        """Not an arrival yet (`touch` first, content later, or never): looked at again for a while."""
        if not self.batch:
            self.empties[path] = (watch, root, self.clock())
            return
        self._record(Record(path, identity, Status.EMPTY, watch=watch.name))
        self.log.warning("file.empty", src=str(path), error="0 bytes: left alone, not quarantined")
        self.counts["empty"] += 1

    def _look_at_empties(self) -> None:
        now = self.clock()
        for path, (watch, _root, since) in list(self.empties.items()):
            identity = FileIdentity.at(path)
            if identity is None:
                del self.empties[path]
            elif identity.size > 0:
                del self.empties[path]
                self.settler.track(Arrival(watch, path, settle=True))  # content at last: once it holds still
            elif now - since >= EMPTY_WAIT_SECONDS:
                del self.empties[path]
                self._record(Record(path, identity, Status.EMPTY, watch=watch.name))
                self.log.warning(
                    "file.empty",
                    src=str(path),
                    error=f"0 bytes for {EMPTY_WAIT_SECONDS:g} s: left alone, not quarantined",
                )
                self.counts["empty"] += 1
            else:
                continue
            self.dirty.discard(path)

    def _retry(self, job: Job, outcome: Outcome) -> None:
        """Look again soon at a file still being written; back off a transient failure, up to the cap."""
        src = str(job.src)
        if outcome.retry is RetryReason.DEFERRED:
            self.log.info("job.deferred", src=src, error=outcome.error)
            self._again(job, CHANGING_RECHECK_SECONDS)
            return
        attempts = self.attempts.get(job.src, 0) + 1
        self.attempts[job.src] = attempts
        if attempts >= RETRY_MAX_ATTEMPTS:
            error = f"{outcome.error} (gave up after {attempts} attempts)"
            identity = outcome.identity or job.seen
            if identity is not None:
                self.attempts[job.src] = attempts - 1
                self._quarantine(
                    job, replace(outcome, identity=identity, error=error, error_class="InputError")
                )
            return
        delay = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempts - 1))
        self.log.warning("job.retry", src=src, rule=outcome.rule, error=outcome.error, attempt=attempts,
                         retry_in_s=delay)  # fmt: skip
        self.counts["retried"] += 1
        self._again(job, delay)

    def _record(self, record: Record) -> None:
        self.ledger.record(record)

    # The pool ----------------------------------------------------------------------------------

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
        kill_workers()

    def _lost(self, pending: _Pending, exc: BaseException) -> Outcome:
        """The outcome of a job whose worker died: its temp files go; stuck ones are quarantined, the
        others retried."""
        job = pending.job
        remove_job_temps(job.token, (self.config.output_root, self.config.quarantine))
        if job.src in self.stuck:
            self.stuck.discard(job.src)
            error = (f"took longer than job_timeout = {self.config.job_timeout:g} s; "
                     "raise job_timeout if the machine is just slow")  # fmt: skip
            return Outcome(job.src, Result.BROKEN, identity=job.seen, error_class="InputError",
                           error=f"InputError: {error}")  # fmt: skip
        # A worker crashed (a codec fault, the OOM killer): maybe this input's doing, maybe a neighbour's.
        # Retried with the attempt counted, so an input that keeps crashing ends in quarantine.
        why = f"the worker process died (a codec crash, or the out-of-memory killer): {exc}"
        return Outcome(job.src, Result.RETRY, identity=job.seen, retry=RetryReason.TRANSIENT, error=why)

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
            kill_workers()
            self.executor.shutdown(wait=False, cancel_futures=True)
        else:
            self.executor.shutdown(wait=True)

    def drain(self, deadline: float | None = None) -> int:
        """Wait for the jobs in flight, until `deadline` (engine clock) if given; returns how many remain."""
        while self.inflight or self.queued:
            left = None if deadline is None else deadline - self.clock()
            if left is not None and left <= 0:
                break
            self.collect(timeout=left)
        return len(self.inflight) + len(self.queued)

    def settle_all(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """`process`: run until nothing is pending (files settling, retries, failures holding still)."""
        while self.pending():
            self.tick()
            if not (self.inflight or self.queued):
                wait_s = self.next_due()
                if wait_s:
                    sleep(min(wait_s, 0.5))
            else:
                self.collect(timeout=0.05)

    def finish_open_intents(self) -> int:
        """At start: every commit a crash interrupted is finished before anything else happens."""
        intents = self.ledger.intents()
        for intent in intents:
            self.finish(intent)
        return len(intents)
