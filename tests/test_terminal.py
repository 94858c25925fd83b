"""What a person sees on a terminal (a real tmux pane, read with capture-pane): `process`' live bar and
`run`'s status line under the log; and nothing of either when stdout is a pipe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, corpus, run_cli, write_config

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    not TMUX and not os.environ.get("CI"), reason="needs tmux (.ci/run installs it)"
)


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[str]:
    name = f"hf-{os.getpid()}-{tmp_path.name}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], check=False, capture_output=True)


def _photos(folder: Path, n: int) -> None:
    """n distinct 6 MP photos (distinct bytes: none is a duplicate of another)."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(corpus("dscn0010.jpg")) as im:
        big = im.convert("RGB").resize((3000, 2000))
    for i in range(n):
        big.rotate(i * 0.5).save(folder / f"IMG_{i:04d}.jpg", quality=90)


def _start(name: str, cwd: Path, command: str) -> None:
    env = f"PYTHONPATH={ROOT / 'daemon'}"
    shell = f"cd {cwd} && env {env} {sys.executable} -m hotfolder {command}; echo EXIT=$?; sleep 600"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "180", "-y", "40", shell], check=True)


def _screen(name: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", name], check=True, capture_output=True, text=True
    ).stdout


def _until(name: str, seen: object, seconds: float = 120) -> str:
    assert callable(seen)
    deadline = time.monotonic() + seconds
    while True:
        screen = _screen(name)
        if seen(screen):
            return screen
        assert time.monotonic() < deadline, f"never seen; the pane shows:\n{screen}"
        time.sleep(0.1)


def test_process_shows_a_live_bar_under_its_log(tmp_path: Path, pane: str) -> None:
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text())
    _photos(tmp_path / "batch", 16)
    _start(pane, tmp_path, "process batch")
    # Mid-way: files done of all, the current file, throughput and time left, under the log lines.
    middle = _until(
        pane,
        lambda s: "/16" in s and "files/s" in s and "left" in s and " 0/16" not in s and "16/16" not in s,
    )
    bar = next(line for line in middle.splitlines() if "/16" in line)
    assert "process" in bar and "IMG_" in bar, bar
    above = middle.split(bar)[0]
    assert "job.done" in above  # the log scrolls above the bar
    end = _until(pane, lambda s: "EXIT=" in s)
    assert "EXIT=0" in end and "16/16" in end and "done 16" in end


def test_run_shows_a_status_line_under_its_log(tmp_path: Path, pane: str) -> None:
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text(), extra="settle = 0.3\n")
    _start(pane, tmp_path, "run")
    _until(pane, lambda s: "pending 0" in s and "in flight 0" in s and "done 0" in s)
    _photos(tmp_path / "inbox", 3)
    shutil.copy(corpus("broken.png"), tmp_path / "inbox" / "broken.png")
    screen = _until(pane, lambda s: "done 3" in s and "quarantined 1" in s)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert "pending" in lines[-1] and "in flight" in lines[-1]  # the status stays under the log
    assert any("job.done" in line for line in lines[:-1])
    subprocess.run(["tmux", "send-keys", "-t", pane, "C-c"], check=True)
    assert "EXIT=0" in _until(pane, lambda s: "EXIT=" in s, seconds=90)


def test_no_bar_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text())
    _photos(tmp_path / "batch", 3)
    result = run_cli("process", "batch", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(json.loads(line)["event"] for line in lines)  # JSON lines only
    assert "━" not in result.stdout + result.stderr and "files/s" not in result.stdout + result.stderr
