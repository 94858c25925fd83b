"""The cluster: jobs run on dask.distributed workers on other hosts; this process still decides and commits.

dask carries the jobs, runs them, notices dead workers and restarts them (its nannies); hotfolder keeps
the policy: which worker may run what (verified versions and storage, the heavy lane), one job per
worker thread, its own attempt count (the scheduler's allowed-failures is set to 0, so a KilledWorker
reaches the retry policy instead of dask retrying silently), and job_timeout (the future is cancelled,
that one worker restarted). Workers stage; every result is committed here, in one order.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import dask
import distributed
from distributed.scheduler import KilledWorker

from hotfolder import logs
from hotfolder.commit.cleanup import remove_job_temps
from hotfolder.commit.staged import Outcome
from hotfolder.core import tempnames
from hotfolder.core.status import Result, RetryReason
from hotfolder.decide.job import Job
from hotfolder.errors import HotfolderError
from hotfolder.run.pool import Lanes, Pending
from hotfolder.run.remote import Context, mapper, remap, run_remote, versions, worker_facts
from hotfolder.settings.cluster import HEAVY_RESOURCE as HEAVY
from hotfolder.settings.cluster import LOCAL, Cluster

log = logs.get()

REFRESH_SECONDS: Final = 1.0  # how often the worker list is asked for (a scheduler round trip, ~1 ms)
CONNECT_TIMEOUT: Final = "30s"
# A cluster with no admitted worker for this long is said to be one (the daemon's problem, logged, on the
# page and in /metrics): a scheduler whose workers all died used to leave the daemon waiting in silence.
NO_WORKERS_SECONDS: Final = 30.0
# A lost scheduler (dask's client gives up after its own 30 s of reconnecting) is asked for again this
# often, each try bounded by RECONNECT_TIMEOUT so the main loop (and the watchdog) keeps moving.
RECONNECT_SECONDS: Final = 30.0
RECONNECT_TIMEOUT: Final = "5s"
CLOSE_TIMEOUT_S: Final = 5
# A job sent to a worker that left before it started never runs (dask keeps it for that worker): it is
# sent again, without counting an attempt, this long after the worker left. A job the worker was
# running comes back as KilledWorker within milliseconds of the scheduler noticing, well inside this.
REQUEUE_AFTER_SECONDS: Final = 2.0
# dask's own retry of a task whose worker died is off: hotfolder counts the attempt (its backoff and
# quarantine cap), and a task that kills workers is not run three times more behind its back.
SCHEDULER_SETTINGS: Final = {"distributed.scheduler.allowed-failures": 0}


class ClusterError(HotfolderError):
    """The cluster cannot be reached or used as configured."""


def tune_scheduler(dask_scheduler: Any) -> int:
    """Run on the scheduler at connect: allowed-failures 0 (see SCHEDULER_SETTINGS); returns the old value."""
    old = int(dask_scheduler.allowed_failures)
    dask_scheduler.allowed_failures = 0
    return old


def security(cluster: Cluster) -> distributed.Security | None:
    """Mutual TLS with one CA, one certificate and key for every role; None on an allowed plain tcp."""
    if not cluster.tls:
        return None
    ca, cert, key = (str(p) for p in (cluster.tls_ca, cluster.tls_cert, cluster.tls_key))
    return distributed.Security(
        tls_ca_file=ca,
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
        require_encryption=True,
    )


def local_zone() -> str | None:
    """The daemon's time zone name (TZ, else /etc/localtime's link), given to every worker."""
    if os.environ.get("TZ"):
        return os.environ["TZ"]
    with contextlib.suppress(OSError):
        target = str(Path("/etc/localtime").readlink())
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    return None


@dataclass
class _Worker:
    address: str
    slots: int  # its threads: one job each
    heavy: bool
    running: int = 0


@dataclass(frozen=True)
class _Sent:
    pending: Pending
    worker: str
    future: distributed.Future


class ClusterPool(Lanes):
    """Jobs queued here and placed one per free worker thread on verified workers of a dask cluster."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        clock: Callable[[], float],
        job_timeout: float,
        temp_roots: tuple[Path, ...],
        probe_dirs: tuple[Path, ...],
    ) -> None:
        super().__init__(0, clock=clock, job_timeout=job_timeout, temp_roots=temp_roots)
        self.cluster = cluster
        self.local: distributed.LocalCluster | None = None
        sec = security(cluster)
        address = cluster.address
        try:
            if cluster.scheduler == LOCAL:
                with dask.config.set(SCHEDULER_SETTINGS):
                    self.local = distributed.LocalCluster(
                        n_workers=0,
                        scheduler_port=_port(address),
                        host=_host(address),
                        protocol=address.split("://", 1)[0] + "://",
                        security=sec,
                        dashboard_address=None,
                    )
                address = self.local.scheduler_address
            self.client = distributed.Client(
                address, security=sec, timeout=CONNECT_TIMEOUT, set_as_default=True
            )
            old = self.client.run_on_scheduler(tune_scheduler)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the dask scheduler at {address}: {exc}") from None
        self.address = address
        # Results are fetched in the client's own thread as tasks finish: a worker stopped right after a
        # job (SIGSTOP, a host frozen) must not block this loop, only that job, until job_timeout.
        self.results = distributed.as_completed(with_results=True, raise_errors=False)
        self.checked = distributed.as_completed(with_results=True, raise_errors=False)
        log.info("cluster.connected", scheduler=address, tls=cluster.tls, allowed_failures_was=old)
        self.expected = versions()
        self.context = Context(
            key="", tz=local_zone(), pairs=cluster.path_map, expect=tuple(sorted(self.expected.items()))
        )
        self.probe_dirs = probe_dirs
        self.probes: tuple[tuple[Path, str], ...] = ()
        self.hosts: dict[str, _Worker] = {}  # address -> a verified worker
        self.late: list[tuple[Job, Outcome]] = []  # timed out, handed back by the next collect
        self.checking: dict[str, distributed.Future] = {}
        self.refused: set[str] = set()
        self.departed: dict[str, float] = {}  # address -> when it left (it never comes back: ports are new)
        self.sent: dict[distributed.Future, _Sent] = {}
        self.refreshed = float("-inf")
        self.serial = 0
        self.security = sec
        self.empty_since: float | None = clock()  # no admitted worker since then
        self.lost_since: float | None = None  # the scheduler unreachable since then
        self.next_connect = 0.0

    # Workers joining and leaving ---------------------------------------------------------------

    def _probe_files(self) -> tuple[tuple[Path, str], ...]:
        """A file with a random content in each folder a worker must see, there while a worker is being
        checked (a temp name: no watcher takes it, and a crash leaves it to the start-up cleanup)."""
        if not self.probes:
            made = []
            for folder in self.probe_dirs:
                content = secrets.token_hex(16)
                folder.mkdir(parents=True, exist_ok=True)
                path = tempnames.temp_path(folder / "hotfolder-probe", token=content[:8])
                path.write_text(content, encoding="ascii")
                made.append((path, content))
            self.probes = tuple(made)
        return self.probes

    def _refresh(self) -> None:
        now = self.clock()
        if now - self.refreshed < REFRESH_SECONDS and not self.checking:
            return  # while a worker is being checked, its answer is looked for at every pass
        self.refreshed = now
        info = self._workers_info(now)
        if info is None:
            return
        for address in list(self.hosts):
            if address not in info:
                self._gone(address)
        for address in list(self.checking):
            if address not in info:
                self.checking.pop(address).release()
        leaf = mapper(self.cluster.path_map)
        for address, facts in info.items():
            if (
                address in self.hosts
                or address in self.checking
                or address in self.refused | self.departed.keys()
            ):
                continue
            probes = tuple((str(leaf(p)), c) for p, c in self._probe_files())
            self.checking[address] = self.client.submit(
                worker_facts,
                probes,
                key=f"hotfolder-check-{secrets.token_hex(6)}",
                workers=[address],
                allow_other_workers=False,
                pure=False,
            )
            self.checked.add(self.checking[address])
            log.debug("cluster.worker_seen", worker=address, nthreads=facts.get("nthreads"))
        for future, result in self.checked.next_batch(block=False) if self.checked.has_ready() else []:
            found = next((a for a, f in self.checking.items() if f is future), None)
            if found is not None and found in info:
                del self.checking[found]
                self._admit(found, info[found], future, result)
            future.release()
        if not self.checking and self.probes:
            for path, _ in self.probes:
                path.unlink(missing_ok=True)
            self.probes = ()
        self.size(sum(w.slots for w in self.hosts.values()), sum(w.heavy for w in self.hosts.values()))
        self._count_empty(now)

    def _count_empty(self, now: float) -> None:
        if self.hosts:
            self.empty_since = None
        elif self.empty_since is None:
            self.empty_since = now

    def _workers_info(self, now: float) -> dict[str, Any] | None:
        """The scheduler's worker list; None while the scheduler is lost (reconnected to at most every
        RECONNECT_SECONDS: dask's client closes itself after 30 s of failing to reconnect)."""
        if self.lost_since is None:
            try:
                if self.client.status not in ("running", "connecting"):
                    raise ConnectionError(f"dask's client is {self.client.status}")
                reply = self.client.scheduler_info(n_workers=-1)
                if "workers" not in reply:
                    raise ConnectionError("the scheduler gave no worker list")
                return dict(reply["workers"])
            except (OSError, TimeoutError) as exc:
                self._lose_scheduler(now, exc)
        if now < self.next_connect:
            return None
        self.next_connect = now + RECONNECT_SECONDS
        try:
            client = distributed.Client(
                self.address, security=self.security, timeout=RECONNECT_TIMEOUT, set_as_default=True
            )
            client.run_on_scheduler(tune_scheduler)
        except (OSError, TimeoutError) as exc:
            log.error(  # noqa: TRY400 - expected while it is down: no traceback
                "cluster.unreachable", scheduler=self.address, error=f"{type(exc).__name__}: {exc}"
            )
            return None
        with contextlib.suppress(Exception):  # the old one is closed or closing: nothing to keep
            self.client.close(timeout=CLOSE_TIMEOUT_S)
        self.client = client
        self.results = distributed.as_completed(with_results=True, raise_errors=False)
        self.checked = distributed.as_completed(with_results=True, raise_errors=False)
        log.info("cluster.reconnected", scheduler=self.address, lost_s=round(now - (self.lost_since or now)))
        self.lost_since = None
        return None  # the worker list is read at the next pass, from the new connection

    def _lose_scheduler(self, now: float, why: BaseException) -> None:
        """Every worker is gone with it; the jobs sent there are queued again (their temps removed)."""
        self.lost_since = now
        self.next_connect = now
        log.error("cluster.scheduler_lost", scheduler=self.address, error=f"{type(why).__name__}: {why}")
        for address in list(self.hosts):
            self._gone(address)
        self.checking.clear()
        for sent in self.sent.values():
            remove_job_temps(sent.pending.job.token, self.temp_roots)
            self.queued.appendleft(sent.pending)
            log.info(
                "job.requeued",
                src=str(sent.pending.job.src),
                worker=sent.worker,
                error="the scheduler was lost while it ran",
            )
        self.sent.clear()
        self.size(0, 0)
        self._count_empty(now)

    def problem(self) -> str | None:
        """Lost scheduler, or no worker for NO_WORKERS_SECONDS: nothing can run, and the daemon says so
        (no running count in the text: live.json is rewritten when it changes)."""
        if self.lost_since is not None:
            return f"no workers: the dask scheduler at {self.address} cannot be reached"
        if self.empty_since is not None and self.clock() - self.empty_since >= NO_WORKERS_SECONDS:
            return (
                f"no workers: the dask scheduler at {self.address} has had no hotfolder worker for "
                f"{NO_WORKERS_SECONDS:.0f} s or more (is `hotfolder worker` running?)"
            )
        return None

    def _gone(self, address: str) -> None:
        if self.hosts.pop(address, None) is not None:
            log.warning("cluster.worker_left", worker=address)
        self.departed.setdefault(address, self.clock())

    def _requeue_stranded(self) -> None:
        """Jobs sent to a worker that left before it took them: queued again, first, uncounted."""
        now = self.clock()
        for future, sent in list(self.sent.items()):
            left = self.departed.get(sent.worker)
            if left is None or now - left < REQUEUE_AFTER_SECONDS or future.done():
                continue
            future.cancel()
            del self.sent[future]
            self.queued.appendleft(sent.pending)
            log.info(
                "job.requeued",
                src=str(sent.pending.job.src),
                worker=sent.worker,
                error="its worker left before it started",
            )

    def _admit(self, address: str, info: dict[str, Any], future: distributed.Future, facts: Any) -> None:
        """Accept a worker that runs what this daemon runs and sees the storage where expected;
        else refuse it (logged, and retired from the cluster)."""
        if future.status != "finished" or not isinstance(facts, dict):
            error = facts[1] if isinstance(facts, tuple) and len(facts) == 3 else facts
            facts = {"versions": {}, "probes": {}, "error": f"{type(error).__name__}: {error}"}
        differ = {
            k: f"{facts['versions'].get(k)} (daemon: {v})"
            for k, v in self.expected.items()
            if facts["versions"].get(k) != v
        }
        blind = [p for p, ok in facts["probes"].items() if not ok]
        if differ or blind or "error" in facts:
            self.refused.add(address)
            reasons = [f"{k} {v}" for k, v in differ.items()]
            reasons += [f"cannot read {p} (mount or path_map?)" for p in blind]
            why = "; ".join(reasons + ([facts["error"]] if "error" in facts else []))
            log.error("cluster.worker_refused", worker=address, error=why)
            threading.Thread(target=self._retire, args=(address,), daemon=True).start()
            return
        heavy = info.get("resources", {}).get(HEAVY, 0) > 0
        self.hosts[address] = _Worker(address, int(info.get("nthreads", 1)), heavy)
        log.info(
            "cluster.worker_joined",
            worker=address,
            name=info.get("name"),
            heavy=heavy,
            nthreads=info.get("nthreads"),
            pid=facts["pid"],
        )

    def _retire(self, address: str) -> None:
        with contextlib.suppress(Exception):  # it may be gone already; either way it gets no job
            self.client.retire_workers([address], close_workers=True)

    # Jobs ----------------------------------------------------------------------------------------

    def running(self) -> list[Pending]:
        return [s.pending for s in self.sent.values()]

    def _free(self, *, heavy: bool) -> _Worker | None:
        """A worker with a free thread: the heavy lane's for a heavy job; for a light one, a light worker
        first, so the heavy lane stays free for the jobs only it can run."""
        free = [w for w in self.hosts.values() if w.running < w.slots and (w.heavy or not heavy)]
        return min(free, key=lambda w: (w.heavy, w.running), default=None)

    def start(self, prepare: Callable[[Job], Job]) -> None:
        """Place queued jobs, oldest first, on free worker threads; a heavy job waits for a heavy worker."""
        self._refresh()
        for pending in list(self.queued):
            worker = self._free(heavy=pending.heavy)
            if worker is None:
                if not pending.heavy or not any(w.running < w.slots for w in self.hosts.values()):
                    return
                continue  # light jobs pass a heavy one that waits for its lane
            self.queued.remove(pending)
            job = prepare(pending.job)
            self.serial += 1
            key = f"hotfolder-{job.token}-{self.serial}"
            sent = remap(job, mapper(self.cluster.path_map))
            future = self.client.submit(
                run_remote,
                sent,
                replace(self.context, key=key),
                key=key,
                workers=[worker.address],
                allow_other_workers=False,
                resources={HEAVY: 1} if pending.heavy else None,
                pure=False,
            )
            self.results.add(future)
            self._tell_when_done(future)
            worker.running += 1
            log.debug("job.sent", src=str(job.src), worker=worker.address, key=key, heavy=pending.heavy)
            self.sent[future] = _Sent(
                replace(pending, job=job, submitted=self.clock()), worker.address, future
            )

    def collect(self, timeout: float | None) -> list[tuple[Job, Outcome]]:
        """The jobs whose results arrived within `timeout` seconds (None: up to a second; callers loop)."""
        self._refresh()
        self._stop_stuck()
        self._requeue_stranded()
        finished, self.late = self.late, []
        if not self.sent:
            return finished
        if timeout != 0:
            self._wait_for_a_result(min(timeout or REFRESH_SECONDS, REFRESH_SECONDS))
        ready = self.results.next_batch(block=False) if self.results.has_ready() else []
        for future, result in ready:
            sent = self.sent.pop(future, None)
            if sent is None:
                continue  # cancelled here (job_timeout, requeued): already handled
            if sent.worker in self.hosts:
                self.hosts[sent.worker].running -= 1
            finished.append((sent.pending.job, self._outcome(sent, result)))
            future.release()
        return finished

    def _wait_for_a_result(self, limit: float) -> None:
        """Until a result has arrived (fetched by the client's thread), at most `limit` seconds. Woken the
        moment one lands: a worker idles while its result waits here, and with 0.3 s jobs a 50 ms poll
        cost 15% of the throughput (tests/bench/bench.py cluster)."""
        condition = getattr(self.results, "thread_condition", None)  # as_completed's own wake-up
        if condition is None:  # another dask: wait for a task to end, then poll for its result
            computing = [f for f in self.sent if not f.done()]
            with contextlib.suppress(FuturesTimeout, TimeoutError):
                distributed.wait(computing or list(self.sent), timeout=limit, return_when="FIRST_COMPLETED")
            return
        with condition:
            if not self.results.has_ready():
                condition.wait(limit)

    def _outcome(self, sent: _Sent, result: Any) -> Outcome:
        pending = sent.pending
        if sent.future.status == "finished" and isinstance(result, Outcome):
            # Latency on the daemon's clock: workers' clocks may be off by seconds.
            began = datetime.fromtimestamp(time.time() - result.ms / 1000, UTC)
            _remove_other_runs(pending.job.token, result)
            return replace(result, started_at=began.isoformat(timespec="microseconds"))
        error = result[1] if isinstance(result, tuple) and len(result) == 3 else result
        if isinstance(error, KilledWorker):
            self._gone(sent.worker)  # dead: no job goes there before the worker list says so too
            return self.worker_died(
                pending,
                f"the worker {sent.worker} died running it (killed, out of "
                f"memory, or its host went away): {error}",
            )
        # A lost connection, a task that could not be unpickled: not the input's fault.
        remove_job_temps(pending.job.token, self.temp_roots)
        why = f"the cluster failed it: {type(error).__name__}: {error}"
        return Outcome(
            pending.job.src, Result.RETRY, identity=pending.job.seen, retry=RetryReason.TRANSIENT, error=why
        )

    def _stop_stuck(self) -> None:
        """A job past job_timeout: its future is cancelled and only its worker restarted."""
        limit = self.job_timeout
        if not limit:
            return
        now = self.clock()
        for future, sent in list(self.sent.items()):
            if now - sent.pending.submitted <= limit:
                continue
            log.error(
                "job.timeout",
                src=str(sent.pending.job.src),
                worker=sent.worker,
                error=f"still running after {limit:g} s; its worker is restarted",
                ms=round((now - sent.pending.submitted) * 1000, 1),
            )
            future.cancel()
            del self.sent[future]
            self._gone(sent.worker)  # it comes back under a new address and is checked again
            threading.Thread(
                target=self._restart, args=(sent.worker, sent.pending.job.token), daemon=True
            ).start()
            self.late.append((sent.pending.job, self.timed_out(sent.pending)))

    def _restart(self, address: str, token: str) -> None:
        with contextlib.suppress(Exception):  # a worker without a nanny cannot be restarted; it is dropped
            self.client.restart_workers([address], timeout=60, raise_for_error=False)
        remove_job_temps(token, self.temp_roots)  # what it wrote before it was stopped

    def shutdown(self, *, abandon: bool) -> None:
        """Cancel what is still running (abandon) and close the connection; the workers stay up."""
        if abandon:
            if self.lost_since is None:
                with contextlib.suppress(Exception):  # cancelled or not, its temps go and it is redone
                    self.client.cancel(list(self.sent))
            for sent in self.sent.values():
                remove_job_temps(sent.pending.job.token, self.temp_roots)
        for path, _ in self.probes:
            path.unlink(missing_ok=True)
        # Bounded: with the scheduler gone, an unbounded close waited ~50 s, past stop_timeout.
        with contextlib.suppress(Exception):
            self.client.close(timeout=CLOSE_TIMEOUT_S)
        if self.local is not None:
            self.local.close(timeout=CLOSE_TIMEOUT_S)


def _remove_other_runs(token: str, outcome: Outcome) -> None:
    """dask may have run this job twice (a result lost with its worker): the other run's temp files lie
    beside this one's, with the same job token; only this run's are committed."""
    keep = {s.temp for s in outcome.outputs} | {outcome.disposal.staged}
    mark = f"{tempnames.TEMP_MARK}{token}"
    for folder in {p.parent for p in keep if p is not None}:
        with contextlib.suppress(OSError):
            for path in folder.iterdir():
                if mark in path.name and tempnames.is_temp_name(path.name) and path not in keep:
                    path.unlink(missing_ok=True)


def _host(address: str) -> str:
    return address.split("://", 1)[1].rsplit(":", 1)[0]


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])
