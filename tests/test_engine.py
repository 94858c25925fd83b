"""The engine with an injected clock: what waits for time (empty files, broken files holding still)
is decided by advancing the clock, not by sleeping. Real files, a real ledger, real workers."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from conftest import Clock, corpus, write_config
from hotfolder.commit.ledger import Ledger
from hotfolder.run.engine import EMPTY_WAIT_SECONDS, Engine
from hotfolder.settings.config import Config, load_config

RULE = '[[rule]]\nname = "r"\n[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n'


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Engine, Config, Clock]]:
    config = load_config(write_config(tmp_path, RULE), cwd=tmp_path)
    config.watches[0].path.mkdir()
    ledger = Ledger(config.state_dir)
    clock = Clock()
    made = Engine(config, ledger, clock=clock)
    yield made, config, clock
    made.shutdown(abandon=False)
    ledger.close()


def test_an_empty_file_is_looked_at_for_a_minute_then_left_alone(
    engine: tuple[Engine, Config, Clock],
) -> None:
    """`touch`: not an arrival; after 60 s of nothing, one file.empty and a ledger row, never quarantine."""
    eng, config, clock = engine
    watch = config.watches[0]
    touched = watch.path / "touched.jpg"
    touched.touch()
    with capture_logs() as logs:
        eng.offer(watch, touched, watch.path)
        clock.now += EMPTY_WAIT_SECONDS - 1
        eng.tick()
        assert eng.pending() == 1 and not [e for e in logs if e["event"] == "file.empty"]
        clock.now += 2
        eng.tick()
        eng.offer(watch, touched, watch.path)  # a rescan: known, skipped
    assert [e["event"] for e in logs].count("file.empty") == 1
    assert eng.pending() == 0 and eng.counts["skipped"] == 1 and touched.exists()
    assert eng.ledger.counts() == {"empty": 1}
    assert not config.quarantine.exists()


def test_an_empty_file_that_gets_content_is_processed_once_it_holds_still(
    engine: tuple[Engine, Config, Clock],
) -> None:
    eng, config, clock = engine
    watch = config.watches[0]
    target = watch.path / "later.bmp"
    target.touch()
    eng.offer(watch, target, watch.path)
    clock.now += 5
    eng.tick()
    shutil.copy(corpus("hopper.bmp"), target)
    eng.tick()  # content seen: now it must hold still for `settle`
    assert not eng.pool
    clock.now += config.settle + 0.1
    eng.tick()
    eng.tick()  # the second look finds it unchanged: offered
    assert eng.pool
    eng.drain()
    assert (config.output_root / "later.png").exists() and eng.counts["done"] == 1


def test_a_broken_fresh_file_is_quarantined_only_after_two_looks(
    engine: tuple[Engine, Config, Clock], tmp_path: Path
) -> None:
    """Read just after its last write and broken: it waits `settle` on the engine clock, then goes."""
    eng, config, clock = engine
    watch = config.watches[0]
    # Workers started first: a spawn slower than `settle` (a loaded machine) would make the first look
    # already the second one, and this test is about the file, not about how fast a pool starts.
    good = watch.path / "good.bmp"
    shutil.copy(corpus("hopper.bmp"), good)
    eng.offer(watch, good, watch.path)
    eng.drain()
    bad = watch.path / "bad.jpg"
    shutil.copy(corpus("truncated_jpeg.jpg"), bad)
    eng.offer(watch, bad, watch.path)
    eng.drain()
    assert bad.exists() and eng.pending() == 1  # held, not quarantined yet
    clock.now += config.settle
    eng.tick()
    assert not bad.exists() and (config.quarantine / "bad.jpg").exists() and eng.counts["quarantined"] == 1


def test_a_finished_job_says_so_at_once_from_the_pool(tmp_path: Path) -> None:
    """The pool calls on_finish as each job ends, from its own thread, before anyone collects: the
    daemon's loop is woken by it to commit (it looked only every 50 ms, 25 ms of every job's latency)."""
    config = load_config(write_config(tmp_path, RULE), cwd=tmp_path)
    watch = config.watches[0]
    watch.path.mkdir()
    shutil.copy(corpus("hopper.bmp"), watch.path / "a.bmp")
    ledger = Ledger(config.state_dir)
    finished = threading.Event()
    eng = Engine(config, ledger, clock=Clock(), on_finish=finished.set)
    try:
        eng.offer(watch, watch.path / "a.bmp", watch.path)
        eng.tick()
        assert eng.pool.running(), "the job was not started"
        assert finished.wait(60), "the pool never said the job finished"
        assert eng.pool.running(), "nothing collected it yet: the call came from the pool itself"
        eng.drain()
        assert eng.counts["done"] == 1
    finally:
        eng.shutdown(abandon=False)
        ledger.close()
