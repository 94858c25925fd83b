"""The pool: worker processes, at most `limit` jobs in flight, a lane for heavy encoders, and a pool
broken by a crashed or stuck worker replaced while the daemon goes on."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, Future, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from hotfolder import logs
from hotfolder.commit.cleanup import remove_job_temps
from hotfolder.commit.staged import Outcome
from hotfolder.core.formats import HEAVY_FORMATS, RAW, raw_name
from hotfolder.core.status import Result, RetryReason
from hotfolder.decide.job import Job
from hotfolder.errors import PoolError
from hotfolder.run import prefork, worker
from hotfolder.run.inline import inline_executor
from hotfolder.settings.rules import Rule

log = logs.get()


def preload_for(rules: tuple[Rule, ...]) -> tuple[str, ...]:
    """The decoders worth loading at worker start for these rules: LibRaw when a rule develops RAW."""
    develops = any(RAW in r.match.formats and any(o.format != "copy" for o in r.outputs) for r in rules)
    return ("rawpy", "pyvips") if develops else ()  # pyvips resizes and writes what LibRaw renders


def kill_workers() -> None:
    """SIGKILL every worker process (the daemon's only children)."""
    import multiprocessing  # noqa: PLC0415 - see make_executor

    for child in multiprocessing.active_children():
        child.kill()


def make_executor(workers: int, preload: tuple[str, ...] = ()) -> Executor:
    """A pool of worker processes, forked from the fork server (prefork.py), never from the daemon:
    forking a process with threads (the daemon's observers, libvips', LibRaw's) can deadlock. Every
    worker is started now, not at the first job: they get ready while the daemon scans and the first
    file settles."""
    # Imported only for a pool (~10 ms): `process` of one input runs its job inline (run/inline.py).
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

    # Starting the workers waits for the fork server to finish its imports (~0.1 s after this process
    # has done its own): the logging library is imported meanwhile, not after it (logs.preload).
    logs.preload()

    executor = ProcessPoolExecutor(
        max_workers=workers, mp_context=prefork.context(), initializer=worker.init, initargs=(preload,)
    )
    try:
        for _ in range(workers):
            # The pool forks one more worker for each call that finds none idle.
            executor.submit(worker.ready)
    except (EOFError, OSError, BrokenExecutor) as exc:
        # Said as what it is, never as multiprocessing's traceback (it was an EOFError when the daemon
        # ran as PID 1 and the server took that for its parent's death).
        executor.shutdown(wait=False, cancel_futures=True)
        raise PoolError(
            f"the worker pool cannot start: its fork server ended while starting ({type(exc).__name__}: "
            f"{exc or 'no answer'}); the log above it, if any, says why"
        ) from None
    return executor


class Finishing(Protocol):
    """A job's future, local or a dask one: either calls back when it is done."""

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...


@dataclass(frozen=True)
class Pending:
    job: Job
    heavy: bool  # writes HEIF or AVIF: a multi-threaded encoder that keeps every core busy by itself
    submitted: float = 0.0  # engine clock


class Lanes:
    """The queue in front of any executor: jobs oldest first, at most `limit` in flight, and the heavy
    lane; the local pool and the cluster differ only in where a job runs."""

    def __init__(
        self,
        workers: int,
        *,
        clock: Callable[[], float],
        job_timeout: float,
        temp_roots: tuple[Path, ...],
    ) -> None:
        self.clock = clock
        self.job_timeout = job_timeout
        self.temp_roots = temp_roots  # where a dead worker's temp files may lie
        self.queued: deque[Pending] = deque()
        self.stuck: set[Path] = set()
        self.size(workers, max(1, workers // 2))
        # Called from any thread as each job finishes: the daemon's loop waits for arrivals up to 50 ms
        # between looks at its jobs, and a finished job waited that long (25 ms on average) to commit.
        self.on_finish: Callable[[], None] = lambda: None

    def _tell_when_done(self, future: Finishing) -> None:
        future.add_done_callback(lambda _done: self.on_finish())

    def size(self, workers: int, heavy: int) -> None:
        """Bounds for `workers` job slots of which `heavy` may run heavy encoders."""
        self.workers = workers
        # Submitted at most: a job per worker plus one ready to start, so no worker waits for the
        # dispatcher, and nothing sits in the pool's own first-come queue for long.
        self.limit = workers + 1
        # x265 and AV1 encoders use every core on their own (two HEIF encodes at once finish only 7%
        # sooner than one after the other here), so they get half the workers; the rest stay free
        # for small jobs, which pass queued heavy ones instead of waiting minutes behind them.
        self.heavy_limit = heavy
        self.backlog = self.limit + 8 * max(1, workers)  # past this, the dispatcher waits (backpressure)

    def running(self) -> list[Pending]:
        """The jobs in flight."""
        raise NotImplementedError

    def start(self, prepare: Callable[[Job], Job]) -> None:
        """Start queued jobs while there is room; `prepare` adds what is known only now."""
        raise NotImplementedError

    def collect(self, timeout: float | None) -> list[tuple[Job, Outcome]]:
        """The jobs that finish within `timeout` seconds."""
        raise NotImplementedError

    def shutdown(self, *, abandon: bool) -> None:
        """Stop: wait for the jobs in flight, or (abandon) give them up at once."""
        raise NotImplementedError

    def problem(self) -> str | None:
        """Why no job can run now (a cluster without workers), or None."""
        return None

    def __len__(self) -> int:
        return len(self.running()) + len(self.queued)

    def full(self) -> bool:
        """Whether the dispatcher must wait before adding more."""
        return len(self) >= self.backlog

    def has(self, path: Path) -> bool:
        """Whether a job for this path is queued or running."""
        return any(p.job.src == path for p in (*self.running(), *self.queued))

    def add(self, job: Job) -> None:
        """Queue a job; it starts as soon as there is room (`start`)."""
        self.queued.append(Pending(job, is_heavy(job)))

    def oldest_job_s(self) -> float:
        """How long the oldest job in flight has been running (0 when none is)."""
        now = self.clock()
        return max((now - p.submitted for p in self.running()), default=0.0)

    def timed_out(self, pending: Pending) -> Outcome:
        """The outcome of a job stopped for outliving job_timeout: quarantined (a codec in a loop)."""
        job = pending.job
        remove_job_temps(job.token, self.temp_roots)
        error = (
            f"took longer than job_timeout = {self.job_timeout:g} s; "
            "raise job_timeout if the machine is just slow"
        )
        return Outcome(
            job.src, Result.BROKEN, identity=job.seen, error_class="InputError", error=f"InputError: {error}"
        )

    def worker_died(self, pending: Pending, why: str) -> Outcome:
        """The outcome of a job whose worker died: its temp files go, and it is retried with the attempt
        counted (maybe this input's doing, maybe a neighbour's), so an input that keeps crashing ends in
        quarantine."""
        remove_job_temps(pending.job.token, self.temp_roots)
        return Outcome(
            pending.job.src, Result.RETRY, identity=pending.job.seen, retry=RetryReason.TRANSIENT, error=why
        )


def is_heavy(job: Job) -> bool:
    """A RAW render, or an HEIF/AVIF encode: seconds of every core each, so they take the heavy lane."""
    raw = raw_name(job.relpath) and any(RAW in r.match.formats for r in job.rules)
    return bool(raw) or any(o.format in HEAVY_FORMATS for r in job.rules for o in r.outputs)


class Pool(Lanes):
    """Jobs queued oldest first and run on worker processes; `collect` hands back what finished."""

    def __init__(
        self,
        workers: int,
        *,
        clock: Callable[[], float],
        job_timeout: float,
        temp_roots: tuple[Path, ...],
        preload: tuple[str, ...] = (),
        inline: bool = False,
    ) -> None:
        super().__init__(workers, clock=clock, job_timeout=job_timeout, temp_roots=temp_roots)
        self.preload = preload
        # inline: `process` of one input runs it in its own process (run/inline.py).
        self.executor: Executor = inline_executor() if inline else make_executor(workers, preload)
        self.inflight: dict[Future[Outcome], Pending] = {}

    def running(self) -> list[Pending]:
        return list(self.inflight.values())

    def start(self, prepare: Callable[[Job], Job]) -> None:
        """Start queued jobs, oldest first, while there is room; a heavy job waits for its lane.
        `prepare` adds what is known only now (the ledger's twins of the input's size)."""
        heavy_now = sum(p.heavy for p in self.inflight.values())
        for pending in list(self.queued):
            if len(self.inflight) >= self.limit:
                return
            if pending.heavy and heavy_now >= self.heavy_limit:
                continue
            self.queued.remove(pending)
            job = prepare(pending.job)
            try:
                future = self.executor.submit(worker.run, job)
            except BrokenExecutor:  # a process pool's BrokenProcessPool
                self._replace()
                future = self.executor.submit(worker.run, job)
            self._tell_when_done(future)
            self.inflight[future] = replace(pending, job=job, submitted=self.clock())
            heavy_now += pending.heavy

    def collect(self, timeout: float | None) -> list[tuple[Job, Outcome]]:
        """The jobs that finish within `timeout` seconds (None: wait for at least one)."""
        if not self.inflight:
            return []
        self._stop_stuck()
        done, _ = wait(list(self.inflight), timeout=timeout, return_when=FIRST_COMPLETED)
        broken, finished = False, []
        for future in done:
            pending = self.inflight.pop(future)
            try:
                outcome = future.result()
                self.stuck.discard(pending.job.src)  # finished after all, just before its worker was stopped
            except BrokenExecutor as exc:
                broken = True
                outcome = self._lost(pending, exc)
            finished.append((pending.job, outcome))
        if broken:
            self._replace()
        return finished

    def _stop_stuck(self) -> None:
        """Stop the pool when a job outlives job_timeout: a codec in an endless loop holds a worker."""
        limit = self.job_timeout
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
            log.error(
                "job.timeout",
                src=str(p.job.src),
                error=f"still running after {limit:g} s",
                ms=round((now - p.submitted) * 1000, 1),
            )
        # Which worker runs which job is not known: all of them stop; the others' jobs are retried.
        kill_workers()

    def _lost(self, pending: Pending, exc: BaseException) -> Outcome:
        if pending.job.src in self.stuck:
            self.stuck.discard(pending.job.src)
            return self.timed_out(pending)
        return self.worker_died(
            pending, f"the worker process died (a codec crash, or the out-of-memory killer): {exc}"
        )

    def _replace(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = make_executor(self.workers, self.preload)
        log.warning("pool.restarted", error="a worker process died; a fresh pool takes over")

    def shutdown(self, *, abandon: bool) -> None:
        """Stop the pool: wait for it, or (abandon) kill its workers at once."""
        if abandon:
            kill_workers()
            self.executor.shutdown(wait=False, cancel_futures=True)
        else:
            self.executor.shutdown(wait=True)
