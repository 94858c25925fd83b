"""`hotfolder process`: the daemon's engine once over the files and folders given, then a summary."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from hotfolder import logs
from hotfolder.arrive.ignore import Ignore
from hotfolder.arrive.scan import scan
from hotfolder.commit.cleanup import open_tokens, remove_leftover_temps
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.lock import Lock
from hotfolder.run.engine import Engine
from hotfolder.settings.config import Config
from hotfolder.settings.watches import Watch


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
        settle_all(engine)
    finally:
        engine.shutdown(abandon=False)
        ledger.close()
        lock.release()
    return engine.counts


def summary(counts: dict[str, Any]) -> str:
    """One line for a terminal: how many inputs ended in each state."""
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def settle_all(engine: Engine, sleep: Callable[[float], None] = time.sleep) -> None:
    """Run until nothing is pending (files settling, retries, failures holding still)."""
    while engine.pending():
        engine.tick()
        if not engine.pool:
            wait_s = engine.next_due()
            if wait_s:
                sleep(min(wait_s, 0.5))
        else:
            engine.collect(timeout=0.05)
