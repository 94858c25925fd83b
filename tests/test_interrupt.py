"""Ctrl-C on `hotfolder process`: the first lets the jobs in flight finish and be committed, a second
abandons them; never a traceback, never a temp file left, the next run does the rest. Signals are sent
while the command is paused inside a commit (HOTFOLDER_TEST_PAUSE_AT), the instant a KeyboardInterrupt
used to break."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import ROOT, corpus, run_cli, write_config

PNG = '[[rule]]\nname = "png"\n[[rule.output]]\nformat = "png"\noptimize = true\npath = "png/{stem}.png"\n'


def _noise(path: Path, seed: int, size: tuple[int, int] = (2000, 1500)) -> None:
    """A picture of noise, each seed another (copies would be duplicates). At 3 MP (the default) an
    optimised PNG of it takes ~1 s, long enough to be in flight."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


class Run:
    """`process` paused in its first commit, just after the intent is written, until `flag` is removed;
    its JSON log in a file, so a test can wait for what it logged."""

    def __init__(self, folder: Path) -> None:
        self.flag = folder / "paused"
        self.log = folder / "process.jsonl"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "daemon"),
            "HOTFOLDER_TEST_PAUSE_AT": "after-intent",
            "HOTFOLDER_TEST_PAUSE_FILE": str(self.flag),
        }
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hotfolder", "process", "--log-format", "json", "inbox"],
                cwd=folder,
                env=env,
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
            )
        self.until(self.flag.exists)

    def until(self, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not check():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.proc.communicate()
            time.sleep(0.01)

    def interrupt(self, times: int) -> None:
        """Ctrl-C `times` times, each once the last one was heard (two sent at once arrive as one)."""
        for n in range(1, times + 1):
            self.proc.send_signal(signal.SIGINT)
            self.until(lambda n=n: len(self.events("process.signal")) >= n)  # type: ignore[misc]

    def events(self, name: str) -> list[dict[str, object]]:
        return _events(self.log.read_text(), name)

    def end(self) -> str:
        """Its stderr, once it exited."""
        _, err = self.proc.communicate(timeout=120)
        return err


def _events(stdout: str, name: str) -> list[dict[str, object]]:
    lines = [x for x in stdout.splitlines() if x.startswith("{") and x.endswith("}")]  # the last may be half
    return [e for e in (json.loads(x) for x in lines) if e["event"] == name]


def _left_behind(folder: Path) -> list[str]:
    """Temp files anywhere below the outbox."""
    return [str(p) for p in (folder / "outbox").rglob("*") if p.name.startswith(".") and ".hf-" in p.name]


def _done(folder: Path) -> str:
    status = run_cli("status", cwd=folder)
    return status.stdout.splitlines()[-1]


def test_a_ctrl_c_lets_the_jobs_in_flight_finish_and_the_next_run_does_the_rest(tmp_path: Path) -> None:
    write_config(tmp_path, PNG.replace("optimize = true\n", ""))
    (tmp_path / "inbox").mkdir()
    for i in range(12):
        _noise(tmp_path / "inbox" / f"h{i:02d}.png", i, (200, 150))
    run = Run(tmp_path)
    run.interrupt(1)  # while the first commit waits between its intent and its renames
    run.flag.unlink()
    err = run.end()
    assert run.proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted (SIGINT)" in err, err
    (stopped,) = run.events("process.interrupted")
    outputs = sorted(p.name for p in (tmp_path / "outbox" / "png").iterdir() if not p.name.startswith("."))
    assert (
        stopped["abandoned"] == 0 and 1 <= len(outputs) < 12 and stopped["unprocessed"] == 12 - len(outputs)
    )
    assert _left_behind(tmp_path) == []
    assert _done(tmp_path) == f"total: done {len(outputs)}"  # every output recorded, nothing else
    assert len(list((tmp_path / "inbox").iterdir())) == 12  # originals untouched
    again = run_cli("process", "inbox", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "outbox" / "png").glob("*.png"))) == 12
    assert _done(tmp_path) == "total: done 12"


def test_a_second_ctrl_c_abandons_the_jobs_in_flight_and_removes_their_temp_files(tmp_path: Path) -> None:
    write_config(tmp_path, PNG)
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "a.bmp")  # small: committed first
    for i in range(3):
        _noise(tmp_path / "inbox" / f"n{i}.png", i)
    run = Run(tmp_path)
    run.interrupt(2)
    run.flag.unlink()
    err = run.end()
    assert run.proc.returncode == 130, err
    assert "Traceback" not in err, err
    (stopped,) = run.events("process.interrupted")
    assert stopped["abandoned"] == 2, stopped  # two noise jobs were running, the third never started
    assert [e["error"] for e in run.events("process.signal")][-1] == "abandoning the jobs in flight"
    assert [p.name for p in (tmp_path / "outbox" / "png").iterdir()] == ["a.png"]
    assert _left_behind(tmp_path) == []
    assert _done(tmp_path) == "total: done 1"
    again = run_cli("process", "inbox", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert _done(tmp_path) == "total: done 4"


def test_two_ctrl_c_during_a_single_inputs_commit_end_it_and_the_next_run_finishes_that_commit(
    tmp_path: Path,
) -> None:
    """One input runs in the command's own process, where nothing can abandon its job: a second Ctrl-C
    ends the process there, as a kill would; the commit's intent is finished by the next run."""
    write_config(tmp_path, PNG.replace("optimize = true\n", ""))
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "a.bmp")
    run = Run(tmp_path)  # the flag stays: the process never goes on from the pause
    run.interrupt(2)
    err = run.end()
    assert run.proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert run.events("process.signal")[-1]["error"] == "stopped at once; the next run redoes its job"
    again = run_cli("process", "inbox", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert [p.name for p in (tmp_path / "outbox" / "png").iterdir()] == ["a.png"]
    assert _left_behind(tmp_path) == []
    assert _done(tmp_path) == "total: done 1"
