"""Shared fixtures: the corpus beside the repo, a thread-leak guard, a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotfolder.outputs import Output, parse_output
from hotfolder.pipeline import Job, Outcome, run_job
from hotfolder.rules import Rule

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"


def corpus(name: str) -> Path:
    """A file of ../shared/corpus (read-only); fails loudly if the corpus is not beside the repo."""
    path = CORPUS / name
    assert path.is_file(), f"corpus file missing: {path} (CI keeps ../shared beside the repo)"
    return path


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    """Fail a test that leaves threads running (observers, scanners)."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.name.startswith("QueueFeeder")
    ]
    for t in leaked:
        t.join(timeout=2)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads leaked: {still}"


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m hotfolder ...` as a real subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    return subprocess.run(
        [sys.executable, "-m", "hotfolder", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_config(folder: Path, rules_text: str, extra: str = "") -> Path:
    """A hotfolder.toml in `folder` with one rule file; returns the config path."""
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "rules" / "main.toml").write_text(rules_text)
    config = folder / "hotfolder.toml"
    config.write_text(
        'rules = ["rules/*.toml"]\noutput_root = "outbox"\nstate_dir = "state"\n'
        'quarantine = "quarantine"\nworkers = 2\n' + extra + '\n[[watch]]\npath = "inbox"\n'
    )
    return config


def output(**options: object) -> Output:
    """An Output as a rule file would give it (profile defaults applied); fails on a bad option."""
    raw = {"path": "{stem}." + str(options.get("format", "png")), **options}
    problems: list[str] = []
    made = parse_output(raw, lambda _key: None, lambda msg, key, _line: problems.append(f"{key}: {msg}"))
    assert made is not None and isinstance(made, Output), problems
    return made


def run_outputs(tmp_path: Path, src: Path, *outputs: Output, name: str | None = None) -> Outcome:
    """Copy a file into tmp_path/in and run one job over it with the given outputs."""
    inbox = tmp_path / "in"
    inbox.mkdir(exist_ok=True)
    dst = inbox / (name or src.name)
    shutil.copy(src, dst)
    rule = Rule(name="test", file=None, outputs=tuple(outputs))
    return run_job(Job(src=dst, relpath=dst.name, rules=(rule,), output_root=tmp_path / "out",
                       quarantine=tmp_path / "quarantine"))  # fmt: skip


def exiftool(path: Path) -> dict[str, object]:
    """All tags exiftool sees, keyed 'Family0:Family1:Name' with numeric values; skips without exiftool."""
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is not installed (apt-get install libimage-exiftool-perl)")
    out = subprocess.run(["exiftool", "-j", "-a", "-G0:1", "-n", str(path)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    data: dict[str, object] = json.loads(out)[0]
    return data
