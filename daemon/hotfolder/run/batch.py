"""`hotfolder process`: the daemon's engine once over the files and folders given, then a summary."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from hotfolder import logs
from hotfolder.arrive.ignore import Ignore
from hotfolder.arrive.scan import scan
from hotfolder.commit.cleanup import open_tokens, remove_leftover_temps
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.lock import Lock
from hotfolder.core.status import Tally
from hotfolder.errors import HotfolderError, StateUnwritableError
from hotfolder.run.engine import Engine
from hotfolder.run.events import Sender, start_sender
from hotfolder.settings.config import Config
from hotfolder.settings.watches import Watch

log = logs.get()
EVENTS_WAIT: Final = 15.0  # seconds `process` waits for its events to be delivered before it exits


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


class View(Protocol):
    """Whoever shows a batch's progress (the terminal's bar)."""

    def begin(self, total: int) -> None: ...
    def update(self, done: int, current: str | None) -> None: ...


def ended(counts: dict[str, int]) -> int:
    """How many inputs reached their end in a run (every tally but retries)."""
    return sum(n for tally, n in counts.items() if tally != Tally.RETRIED)


def current(engine: Engine) -> str | None:
    """The file a worker took last, if any runs."""
    running = engine.pool.running()
    return str(max(running, key=lambda p: p.submitted).job.src.name) if running else None


@dataclass(frozen=True)
class Interrupt:
    """How a user stops `process` (Ctrl-C): `stop` once, no new job starts and those in flight finish
    and are committed (for up to stop_timeout); `now` as well (a second Ctrl-C), they are abandoned."""

    stop: threading.Event = field(default_factory=threading.Event)
    now: threading.Event = field(default_factory=threading.Event)
    # Set while the batch runs its one job in this process (run/inline.py): nothing can abandon a call
    # in progress, so a second Ctrl-C can only end the process (its temp file goes at the next run).
    in_process: threading.Event = field(default_factory=threading.Event)


def process_paths(
    config: Config,
    paths: Iterable[Path],
    *,
    force: bool = True,
    view: View | None = None,
    interrupt: Interrupt | None = None,
) -> dict[str, int]:
    """`hotfolder process`: the same pipeline once over files and folders; returns outcome counts."""
    asked = interrupt or Interrupt()
    inputs = list(given_inputs(config, paths))  # all of them first: the bar needs the total
    lock = Lock(config.state_dir)
    ledger = Ledger(config.state_dir)
    # One input (or none) runs in this process: a pool's start and stop cost more than its job.
    engine = Engine(config, ledger, batch=True, inline=len(inputs) <= 1, hold=asked.stop.is_set)
    if len(inputs) <= 1:
        asked.in_process.set()

    def tell() -> None:
        if view is not None:
            view.update(ended(engine.counts), current(engine))

    engine.on_wait = tell
    sender = start_sender(ledger, config)
    try:
        engine.finish_open_intents()
        remove_leftover_temps(config, keep=open_tokens(ledger))
        if view is not None:
            view.begin(len(inputs))
        for watch, path in inputs:
            if asked.stop.is_set():
                break
            engine.offer(watch, path, watch.path, force=force)
            tell()
        settle_all(engine, on_turn=tell, stop=asked.stop)
        if engine.paused:
            _resume_or_say(engine)
    finally:
        if asked.stop.is_set():
            left = engine.wind_down(engine.clock() + config.stop_timeout, give_up=asked.now.is_set)
            tell()  # the bar shows what the jobs that finished meanwhile did
            log.warning(
                "process.interrupted",
                abandoned=left,
                unprocessed=len(inputs) - ended(engine.counts),
                error="stopped before the end: the inputs not processed are untouched; run it again",
            )
        else:
            engine.shutdown(abandon=False)
        if sender is not None:
            _deliver_before_exit(sender, config)
        ledger.close()
        lock.release()
    return engine.counts


def _deliver_before_exit(sender: Sender, config: Config) -> None:
    """`process` delivers its events before it exits, for a bounded time; what is left stays in the
    outbox and goes with the daemon's next start (said)."""
    wait = min(EVENTS_WAIT, config.stop_timeout)
    left = sender.flush(wait)
    sender.stop()
    if left:
        log.warning(
            "event.pending",
            count=left,
            error=f"not delivered within {wait:g} s; kept in the outbox for the daemon's next start",
        )


def _resume_or_say(engine: Engine) -> None:
    """The state disk filled during the run: one more try, else a clear error (exit 1) naming what waits;
    the inputs are untouched and the uncommitted outputs are removed as leftovers by the next run."""
    again = engine.recorder.resume()
    if again is not None:
        for job, outcome in again:
            engine.handle(job, outcome)
        settle_all(engine)
    if engine.paused:
        waiting = len(engine.recorder.waiting_commits) + len(engine.recorder.waiting_records)
        raise StateUnwritableError(
            engine.ledger.path,
            f"{waiting} result(s) not recorded; run `hotfolder process` again once there "
            "is space: their inputs were not touched",
        )


def summary(counts: dict[str, Any]) -> str:
    """One line for a terminal: how many inputs ended in each state."""
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def settle_all(
    engine: Engine,
    sleep: Callable[[float], None] = time.sleep,
    on_turn: Callable[[], None] = lambda: None,
    stop: threading.Event | None = None,
) -> None:
    """Run until nothing is pending (files settling, retries, failures holding still), or until `stop`."""
    while engine.pending() and not (stop is not None and stop.is_set()):
        on_turn()
        problem = engine.pool.problem()
        if problem is not None:  # a cluster without workers: `process` says so and ends, never waits mute
            raise HotfolderError(f"{problem}; {engine.pending()} input(s) not processed")
        engine.tick()
        if not engine.pool:
            wait_s = engine.next_due()
            if wait_s:
                sleep(min(wait_s, 0.5))
        else:
            engine.collect(timeout=0.05)
    on_turn()
