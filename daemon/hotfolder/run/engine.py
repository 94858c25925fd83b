"""The engine: files offered in, jobs on a pool of workers, and each outcome committed and recorded.

Workers stage; the engine (in the daemon's main thread) commits, quarantines and writes the
ledger, so every visible change happens in one place and in one order. Timing decisions (a file
settling, a broken file holding still, an empty file getting content, retries) use one
injectable clock, so tests advance it instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from hotfolder import logs
from hotfolder.arrive.ignore import Ignore
from hotfolder.arrive.queue import Arrival
from hotfolder.arrive.settle import Settler
from hotfolder.commit.cleanup import open_tokens, remove_leftover_temps
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.records import Record
from hotfolder.commit.staged import Outcome
from hotfolder.core.identity import FileIdentity
from hotfolder.core.status import Result, RetryReason, Status, Tally
from hotfolder.decide.inspect import may_take
from hotfolder.decide.job import Job
from hotfolder.decide.match import candidates, rules_fingerprint
from hotfolder.run.group import Arrivals
from hotfolder.run.pool import Lanes, Pool, preload_for
from hotfolder.run.recorder import RETRY_MAX_ATTEMPTS, Recorder, backoff
from hotfolder.run.timetable import Timetable
from hotfolder.settings.config import Config
from hotfolder.settings.watches import Watch

log = logs.get()

CHANGING_RECHECK_SECONDS: Final = 1.0  # a source still being written is looked at again this soon
EMPTY_WAIT_SECONDS: Final = 60.0  # an empty file is looked at this long for content, then left alone
# A state disk that cannot be written is tried again this often (at most 30 s apart: space coming back
# is noticed within that, and work resumes at once).
STATE_RETRY_SECONDS: Final = 10.0
GIVE_UP_LOOK_S: Final = 0.1  # a second Ctrl-C while jobs finish is acted on this soon


@dataclass
class _Broken:
    """A failed input waiting to hold still before it is quarantined (two looks, `settle` apart)."""

    job: Job
    outcome: Outcome
    since: float


def make_pool(config: Config, clock: Callable[[], float], *, inline: bool = False) -> Lanes:
    """The local process pool, or with [cluster] the dask cluster (loaded only then); `inline`: jobs
    run in this process (`process` of one input)."""
    roots = (config.output_root, config.quarantine)
    if config.cluster is None or inline:
        return Pool(
            config.workers,
            clock=clock,
            job_timeout=config.job_timeout,
            temp_roots=roots,
            preload=preload_for(config.rules),
            inline=inline,
        )
    from hotfolder.run.cluster import ClusterPool  # noqa: PLC0415 - dask is imported only in cluster mode

    # A worker must see the inputs and the outputs where the daemon does (after path_map).
    probes = (config.output_root, *(w.path for w in config.watches))
    return ClusterPool(
        config.cluster,
        clock=clock,
        job_timeout=config.job_timeout,
        temp_roots=roots,
        probe_dirs=probes,
    )


class Engine:
    """Offers files, runs their jobs on the pool, and hands each outcome to the recorder; a file
    that is not final yet (settling, empty, broken but maybe still written, to retry) waits here."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.monotonic,
        batch: bool = False,
        inline: bool = False,
        on_wait: Callable[[], None] = lambda: None,
        on_finish: Callable[[], None] = lambda: None,
        hold: Callable[[], bool] = lambda: False,
    ) -> None:
        self.config = config
        self.hold = hold  # while true no queued job starts: a `process` stopped by Ctrl-C
        self.batch = batch  # `process`: files were named just now; an empty one is reported at once
        self.ledger = ledger
        self.clock = clock
        self.on_wait = on_wait  # called while the dispatcher waits for room in the pool
        self.pool = make_pool(config, clock, inline=inline)
        self.pool.on_finish = on_finish  # called from the pool's threads as each job finishes
        self.timetable = Timetable(clock)
        self.recorder = Recorder(config, ledger, self.timetable)
        self._next_state_try = 0.0
        self.arrivals = Arrivals(clock, timetable=self.timetable, recorder=self.recorder, wait=not batch)
        self.settler = Settler(quiet=config.settle, clock=clock)
        self.broken: dict[Path, _Broken] = {}
        self.empties: dict[Path, tuple[Watch, float]] = {}  # path -> (watch, first seen)
        self.dirty: set[Path] = set()  # changed while busy: offered again once the current look ends
        self.ignore = Ignore(config.ignore)
        self.rules_fp = rules_fingerprint(config.rules)

    @property
    def counts(self) -> dict[str, int]:
        """What this run did so far, by Tally."""
        return self.recorder.counts

    def reconfigure(self, config: Config) -> None:
        """New rules and ignore list (a reload); files no rule took before are looked at again."""
        self.config = self.recorder.config = config
        self.ignore = Ignore(config.ignore)
        self.rules_fp = rules_fingerprint(config.rules)

    # Offering files ----------------------------------------------------------------------------

    def arrive(self, arrival: Arrival) -> None:
        """A file the watcher or a scan reported: settled first when it may still be written."""
        if arrival.settle:
            if not self.settler.track(arrival):
                return  # offered once it holds still
        else:
            self.settler.forget(arrival.path)
        self.offer(arrival.watch, arrival.path, arrival.watch.path)

    def busy(self, path: Path) -> bool:
        """Whether this path is being processed or looked at right now."""
        return path in self.broken or path in self.empties or self.pool.has(path)

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
            log.debug("file.skipped", src=str(path), error="known and unchanged since it was handled")
            self.recorder.count(Tally.SKIPPED)
            return
        if identity.size == 0:
            self._empty(path, watch, identity)
            return
        relpath = path.relative_to(root).as_posix()
        rules = candidates(self.config.rules, relpath)
        if not rules:
            self._unmatched(path, identity, watch.name, identity.size)
            return
        every = self.config.rules
        taken = lambda name: may_take(path.parent / name, root, every, watch=watch.name)  # noqa: E731
        if not self.arrivals.admit(watch, path, root, rules, identity, rules_fp=self.rules_fp, taken=taken):
            return
        c = self.config
        job = Job(
            src=path,
            relpath=relpath,
            rules=rules,
            output_root=c.output_root,
            watch=watch,
            max_pixels=c.max_image_pixels,
            file_mode=c.file_mode,
            gid=c.gid,
            seen=identity,
            force=force,
        )
        while self.pool.full() and not self.hold():  # backpressure on the dispatcher
            self.collect(timeout=1.0)
            self.on_wait()
        self.pool.add(job)
        self._start_queued()

    def _with_twins(self, job: Job) -> Job:
        if job.force or job.seen is None:
            return job
        # Inputs already done with this size: the worker compares hashes, and a duplicate costs a
        # read instead of a render.
        return replace(job, twins=self.ledger.twins(job.seen.size, job.src))

    def _unmatched(self, path: Path, identity: FileIdentity, watch: str | None, size: int) -> None:
        self.recorder.record(Record(path, identity, Status.UNMATCHED, watch=watch, rules_fp=self.rules_fp))
        log.info("file.unmatched", src=str(path), bytes_in=size)
        self.recorder.count(Tally.UNMATCHED)

    # Time passing ------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether new work waits: the state disk cannot be written (full, failing, read-only)."""
        return self.recorder.unwritable is not None

    def _resume_if_due(self) -> None:
        now = self.clock()
        if now < self._next_state_try:
            return
        self._next_state_try = now + STATE_RETRY_SECONDS
        again = self.recorder.resume()
        if again is None:
            return
        for job, outcome in again:
            self.handle(job, outcome)  # while the disk is still full, each waits again (said once)
        self.recorder.recovered()

    def tick(self) -> None:
        """Everything whose time has come: settled files, broken files that held still, empty
        files that got content or waited long enough, retries; then finished jobs. While the state disk
        cannot be written, only the jobs in flight come back (their commits wait) and the ledger is tried."""
        if self.paused:
            self._resume_if_due()
            self.collect(timeout=0)
            return
        self._next_state_try = self.clock() + STATE_RETRY_SECONDS  # the first retry, once paused
        for arrival in self.settler.due():
            self.offer(arrival.watch, arrival.path, arrival.watch.path)
        self._look_at_broken()
        self._look_at_empties()
        for due in self.timetable.due():
            if due.intent is not None:
                self.recorder.finish_intent(due.intent)
            else:
                assert due.watch is not None and due.path is not None and due.root is not None
                self.offer(due.watch, due.path, due.root)
        self.collect(timeout=0)

    def pending(self) -> int:
        """Files not finished yet: in flight, queued, settling, waiting to be retried or confirmed."""
        return len(self.pool) + len(self.settler) + len(self.broken) + len(self.empties) + len(self.timetable)

    def next_due(self) -> float | None:
        """Seconds until something is due, or None when nothing waits for time."""
        first = self.timetable.next_at()
        times = [first] if first is not None else []
        times += [b.since + self.config.settle for b in self.broken.values()]
        if self.settler or self.empties:
            times.append(self.clock() + min(self.config.settle, 0.5))
        return max(0.0, min(times) - self.clock()) if times else None

    def _release(self, job: Job) -> None:
        """This look at the file is over: if it changed meanwhile, it is offered again now."""
        if job.src in self.dirty and not self.busy(job.src):
            self.dirty.discard(job.src)
            self.timetable.again(job, 0.0)

    # Outcomes ----------------------------------------------------------------------------------

    def collect(self, timeout: float | None) -> None:
        """Handle the jobs that finish within `timeout` seconds (None: wait for at least one); no new job
        starts while the state disk cannot be written, nor while hold() is true."""
        self._start_queued()
        for job, outcome in self.pool.collect(timeout):
            self.handle(job, outcome)
        self._start_queued()

    def _start_queued(self) -> None:
        if not self.paused and not self.hold():
            self.pool.start(self._with_twins)

    def handle(self, job: Job, outcome: Outcome) -> None:
        """Log a worker's notes, then commit, quarantine, record or schedule what came back."""
        for event, fields in outcome.notes:
            log.warning(event, **{"src": str(job.src), "rule": outcome.rule, **fields})
        try:
            if outcome.result in (Result.STAGED, Result.DUPLICATE):
                handled = self.recorder.commit(job, outcome)
                outcome = handled if isinstance(handled, Outcome) else outcome
            if outcome.result is Result.UNMATCHED:
                assert outcome.identity is not None
                self._unmatched(job.src, outcome.identity, job.watch_name, outcome.bytes_in)
            elif outcome.result is Result.BROKEN:
                self._broken(job, outcome)
            elif outcome.result is Result.RETRY:
                self._retry(job, outcome)
            elif outcome.result is Result.GONE and outcome.error:
                log.info("file.refused", src=str(job.src), error=outcome.error)
        finally:
            self._release(job)

    def _broken(self, job: Job, outcome: Outcome) -> None:
        """A permanent problem: quarantined only once the file has held still (`settle`) across two looks;
        a file that changed since it was read is still being written, and is simply offered again."""
        if outcome.identity is None:
            outcome = replace(outcome, identity=job.seen)
        if outcome.identity is None or FileIdentity.at(job.src) != outcome.identity:
            log.info("job.deferred", src=str(job.src), error=f"changed since it was read; {outcome.error}")
            self.timetable.again(job, 0.0)
            return
        if outcome.identity.size == 0:
            root = job.root
            self._empty(job.src, job.watch or Watch(path=root, name=root.name), outcome.identity)
            return
        if outcome.read_ns and outcome.read_ns / 1e9 - outcome.identity.mtime_ns / 1e9 >= self.config.settle:
            # It had already held still for `settle` when it was read, and is unchanged now: two looks.
            self._quarantine(job, outcome)
            return
        self.broken[job.src] = _Broken(job, outcome, self.clock())

    def _quarantine(self, job: Job, outcome: Outcome) -> None:
        if not self.recorder.quarantine(job, outcome):
            self.timetable.again(job, 0.0)

    def _look_at_broken(self) -> None:
        now = self.clock()
        for path, waiting in list(self.broken.items()):
            if now - waiting.since < self.config.settle:
                continue
            del self.broken[path]
            outcome, job = waiting.outcome, waiting.job
            if FileIdentity.at(path) != outcome.identity:
                log.info("job.deferred", src=str(path), error=f"changed since it was read; {outcome.error}")
                self.timetable.again(job, 0.0)
            else:
                self._quarantine(job, outcome)
            self._release(job)

    def _empty(self, path: Path, watch: Watch, identity: FileIdentity) -> None:
        """Not an arrival yet (`touch` first, content later, or never): looked at again for a while."""
        if self.batch:
            self.recorder.empty(path, identity, watch.name, None)
        else:
            self.empties[path] = (watch, self.clock())

    def _look_at_empties(self) -> None:
        now = self.clock()
        for path, (watch, since) in list(self.empties.items()):
            identity = FileIdentity.at(path)
            if identity is None:
                del self.empties[path]
            elif identity.size > 0:
                del self.empties[path]
                self.arrive(Arrival(watch, path, settle=True))  # content at last: once it holds still
            elif now - since >= EMPTY_WAIT_SECONDS:
                del self.empties[path]
                self.recorder.empty(path, identity, watch.name, EMPTY_WAIT_SECONDS)
            else:
                continue
            self.dirty.discard(path)

    def _retry(self, job: Job, outcome: Outcome) -> None:
        """Look again soon at a file still being written; back off a transient failure, up to the cap."""
        if outcome.retry is RetryReason.DEFERRED:
            log.info("job.deferred", src=str(job.src), error=outcome.error)
            self.timetable.again(job, CHANGING_RECHECK_SECONDS)
            return
        attempts = self.recorder.failed_attempt(job.src)
        if attempts is None:
            error = f"{outcome.error} (gave up after {RETRY_MAX_ATTEMPTS} attempts)"
            identity = outcome.identity or job.seen
            if identity is not None:
                self._quarantine(
                    job, replace(outcome, identity=identity, error=error, error_class="InputError")
                )
            return
        delay = backoff(attempts)
        log.warning(
            "job.retry",
            src=str(job.src),
            rule=outcome.rule,
            error=outcome.error,
            attempt=attempts,
            retry_in_s=delay,
        )
        self.recorder.count(Tally.RETRIED)
        self.timetable.again(job, delay)

    # Running to the end ------------------------------------------------------------------------

    def shutdown(self, *, abandon: bool) -> None:
        """Stop the pool: wait for it, or (abandon) kill its workers at once."""
        self.pool.shutdown(abandon=abandon)

    def drain(self, deadline: float | None = None, give_up: Callable[[], bool] | None = None) -> int:
        """Wait for the jobs in flight, until `deadline` (engine clock) if given, or until give_up() is
        true (looked at every 0.1 s); returns how many remain."""
        while self.pool:
            left = None if deadline is None else deadline - self.clock()
            if (left is not None and left <= 0) or (give_up is not None and give_up()):
                break
            if give_up is not None:
                left = GIVE_UP_LOOK_S if left is None else min(left, GIVE_UP_LOOK_S)
            self.collect(timeout=left)
        return len(self.pool)

    def wind_down(self, deadline: float, give_up: Callable[[], bool] | None = None) -> int:
        """Stop: jobs not started are dropped (their inputs untouched: found again next time), those in
        flight finish and are committed until `deadline` or give_up(); the rest are abandoned, their
        workers killed and temp files removed. Returns how many were abandoned."""
        self.pool.queued.clear()
        left = self.drain(deadline, give_up)
        # Abandoned, not half-done: outputs are only ever renamed into place whole, the inputs stay
        # where they are, and the next run redoes them.
        self.shutdown(abandon=bool(left))
        if left:
            remove_leftover_temps(self.config, keep=open_tokens(self.ledger))
        return left

    def finish_open_intents(self) -> int:
        """At start: every commit a crash interrupted is finished before anything else happens."""
        intents = self.ledger.intents()
        for intent in intents:
            self.recorder.finish(intent)
        return len(intents)
