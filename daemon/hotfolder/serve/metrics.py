"""/metrics: Prometheus families read at each scrape, the daemon's live values from live.json and the
rest from the ledger; every name starts with hotfolder_."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from hotfolder.commit import live
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.outbox import SinkState
from hotfolder.core.status import Status
from hotfolder.errors import LedgerCorruptError

# Job seconds: a web JPEG takes ~0.1-0.5 s, a 12 MP archival set 1-3 s, a 100 MP TIFF or AVIF minutes.
BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class HotfolderCollector(Collector):
    """Reads the ledger (read-only) and live.json at every scrape; holds nothing between scrapes."""

    def __init__(self, state_dir: Path, open_ledger: Callable[[], Ledger | None]) -> None:
        self.state_dir = state_dir
        self.open_ledger = open_ledger  # the page's own opener

    def collect(self) -> Iterator[Metric]:
        """The families of one scrape."""
        yield from self._ledger()
        yield from self._live()

    def _ledger(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "hotfolder_jobs", "Inputs in the ledger by status and rule", labels=["status", "rule"]
        )
        quarantined = GaugeMetricFamily("hotfolder_quarantined", "Inputs in quarantine now")
        seconds = HistogramMetricFamily("hotfolder_job_seconds", "Time a done job took in its worker")
        readable = GaugeMetricFamily("hotfolder_ledger_readable", "1 when serve could read the ledger")
        try:
            ledger = self.open_ledger()
            if ledger is None:
                readable.add_metric([], 0)
                yield from (readable, jobs, quarantined)
                return
            try:
                rows = ledger.by_rule()
                cumulative, count, total = ledger.durations(BUCKETS)
                sinks = ledger.sink_states()
            finally:
                ledger.close()
        except (sqlite3.Error, LedgerCorruptError):
            readable.add_metric([], 0)  # damaged or being replaced: the live values still follow
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        for status, rule, n in rows:
            jobs.add_metric([status, rule], n)
        quarantined.add_metric([], sum(n for s, _, n in rows if s == Status.QUARANTINED))
        buckets = [(repr(b), c) for b, c in zip(BUCKETS, cumulative, strict=True)] + [("+Inf", count)]
        seconds.add_metric([], buckets, total)
        yield from (jobs, quarantined, seconds)
        yield from _sinks(sinks, time.time())

    def _live(self) -> Iterator[Metric]:
        snapshot = live.read(self.state_dir)
        up = GaugeMetricFamily("hotfolder_daemon_up", "1 while the daemon runs and its heartbeat is fresh")
        beat = GaugeMetricFamily(
            "hotfolder_daemon_heartbeat_timestamp_seconds",
            "When the daemon last wrote its live values (Unix time)",
        )
        up.add_metric([], 1 if snapshot is not None and snapshot.alive(time.time()) else 0)
        yield up
        if snapshot is None:
            return
        beat.add_metric([], snapshot.heartbeat)
        yield beat
        for name, text, value in (
            ("hotfolder_queue_depth", "Arrivals and jobs waiting for a worker", snapshot.queued),
            (
                "hotfolder_pending",
                "Files not finished yet (queued, settling, retrying, in flight)",
                snapshot.pending,
            ),
            ("hotfolder_in_flight", "Jobs running on a worker now", len(snapshot.in_flight)),
            (
                "hotfolder_daemon_problems",
                "Conditions the daemon waits on and cannot mend (no workers, state disk full); alert on > 0",
                len(snapshot.problems) if snapshot.alive(time.time()) else 0,
            ),
        ):
            family = GaugeMetricFamily(name, text)
            family.add_metric([], value)
            yield family
        watch = GaugeMetricFamily(
            "hotfolder_watch_up", "1 while a watch's folder is watched", labels=["watch"]
        )
        for w in snapshot.watches:
            watch.add_metric([w.name], 1 if w.up else 0)
        yield watch
        outcomes = CounterMetricFamily(
            "hotfolder_daemon_outcomes", "What the daemon did since it started", labels=["outcome"]
        )
        for outcome, n in sorted(snapshot.counts.items()):
            outcomes.add_metric([outcome], n)
        yield outcomes


def _sinks(sinks: list[SinkState], now: float) -> Iterator[Metric]:
    """The events outbox per [[event]] sink: pending now, delivered and dropped so far, failing."""
    pending = GaugeMetricFamily("hotfolder_events_pending", "Events waiting in the outbox", labels=["sink"])
    delivered = CounterMetricFamily("hotfolder_events_delivered", "Events a sink accepted", labels=["sink"])
    dropped = CounterMetricFamily(
        "hotfolder_events_dropped",
        "Events dropped as the sink's outbox was full (max_pending)",
        labels=["sink"],
    )
    failing = GaugeMetricFamily(
        "hotfolder_events_failing_seconds",
        "How long the sink has been failing (0: it is not)",
        labels=["sink"],
    )
    for s in sinks:
        pending.add_metric([s.sink], s.pending)
        delivered.add_metric([s.sink], s.delivered)
        dropped.add_metric([s.sink], s.dropped)
        failing.add_metric([s.sink], 0 if s.failing_since is None else max(0.0, now - s.failing_since))
    yield from (pending, delivered, dropped, failing)


def registry(state_dir: Path, open_ledger: Callable[[], Ledger | None]) -> CollectorRegistry:
    """A registry of hotfolder's families only (not this serve process's own)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(HotfolderCollector(state_dir, open_ledger))
    return reg
