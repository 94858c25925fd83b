"""Shared fixtures: the corpus beside the repo, a thread-leak guard, a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

import pytest

from hotfolder.commit.committer import Committed, Written
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.staged import Outcome
from hotfolder.core.status import Result, Status
from hotfolder.decide.job import Job
from hotfolder.run.job import run_job
from hotfolder.run.recorder import Recorder
from hotfolder.run.timetable import Timetable
from hotfolder.settings.config import Config
from hotfolder.settings.outputs import Output, parse_output
from hotfolder.settings.rules import Rule

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
# CI installs every tool and keeps ../shared beside the clone: there a missing one is a failure, not a skip.
IN_CI = os.environ.get("CI", "") not in ("", "0", "false")
NO_SHARED = (
    "needs ../shared (the public test images: corpus/, camera/, photos/) beside the repository, as CI has it"
)


def unavailable(why: str) -> NoReturn:
    """Skip a test whose material or tool this machine lacks; under CI=1 fail it instead."""
    if IN_CI:
        pytest.fail(f"{why} (CI=1: CI must provide it)", pytrace=False)
    pytest.skip(why)


def tool(name: str, package: str) -> str:
    """The path of a command-line tool a test needs; skips (fails in CI) naming the package without it."""
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed (apt-get install {package})")
    return found


class Clock:
    """A clock the test advances (engine, daemon, settler take it): waiting for time without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def shared(*parts: str) -> Path:
    """A file or folder of ../shared (read-only); skips without ../shared (fails under CI=1)."""
    if not CORPUS.is_dir():
        unavailable(NO_SHARED)
    path = SHARED.joinpath(*parts)
    assert path.exists(), f"missing: {path} (../shared is there, but not this)"
    return path


def corpus(name: str) -> Path:
    """A file of ../shared/corpus."""
    return shared("corpus", name)


def camera(name: str = "") -> Path:
    """A file of ../shared/camera (RAW files, sidecars, a Live Photo pair), or the folder."""
    return shared("camera", name) if name else shared("camera")


def photos() -> list[Path]:
    """The eight 12.5 MP phone photos of ../shared/photos, in name order."""
    return sorted(shared("photos").glob("*.jpg"))


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    """Fail a test that leaves threads running (observers, scanners)."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before
        and t.is_alive()
        and not t.name.startswith("QueueFeeder")
        # libvips' own worker threads, seen by Python only because pyvips logs a warning from one
        and not isinstance(t, threading._DummyThread)
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


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def pool_workers(daemon_pid: int) -> list[int]:
    """The daemon's pool workers: the children of its fork server (run/prefork.py), which is a child
    of the daemon; multiprocessing's resource tracker, its other child, runs no job."""
    found = []
    for child in _children(daemon_pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.forkserver" in cmdline:
            found += _children(child)
    return found


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


@dataclass(frozen=True)
class Processed:
    """One job as the daemon ends it: staged by the worker code, then committed or quarantined."""

    status: str
    outcome: Outcome
    written: tuple[Written, ...] = ()
    quarantined_to: Path | None = None
    original: str | None = None

    @property
    def error(self) -> str | None:
        return self.outcome.error

    @property
    def rule(self) -> str | None:
        return self.outcome.rule

    @property
    def format(self) -> str | None:
        return self.outcome.format

    @property
    def notes(self) -> tuple[tuple[str, dict[str, object]], ...]:
        return self.outcome.notes


def process_job(job: Job, *, state: Path | None = None, quarantine: Path | None = None) -> Processed:
    """run_job in this process, then the daemon's own Recorder: its commit (duplicates found as the
    daemon finds them), or its quarantine (without the settle wait and the retries)."""
    state = state or job.output_root.parent / "state"
    quarantine = quarantine or job.output_root.parent / "quarantine"
    outcome = run_job(job)
    if outcome.result is Result.BROKEN and outcome.identity is not None and outcome.identity.size == 0:
        return Processed("empty", outcome)  # not an arrival yet: never quarantined
    if outcome.result not in (Result.STAGED, Result.DUPLICATE, Result.BROKEN):
        return Processed(str(outcome.result), outcome)
    config = Config(
        source=None,
        rule_files=(),
        rules=job.rules,
        output_root=job.output_root,
        state_dir=state,
        quarantine=quarantine,
        workers=1,
        watches=(),
    )
    ledger = Ledger(state)
    try:
        recorder = Recorder(config, ledger, Timetable(Clock()))
        if outcome.result is not Result.BROKEN:
            handled = recorder.commit(job, outcome)
            if isinstance(handled, Committed):
                status = "duplicate" if handled.record.status == Status.DUPLICATE else "done"
                return Processed(status, outcome, handled.written, original=handled.disposed.summary)
            assert isinstance(handled, Outcome), "a test's commit waited for the state disk"
            outcome = handled  # its commit failed before anything was visible
        assert outcome.identity is not None
        assert recorder.quarantine(job, outcome), "the input changed under the test"
        (parked,) = [q for q in ledger.quarantined() if q.path == job.src]
        return Processed("quarantined", replace(outcome, result=Result.BROKEN), quarantined_to=parked.parked)
    finally:
        ledger.close()


def run_outputs(tmp_path: Path, src: Path, *outputs: Output, name: str | None = None) -> Processed:
    """Copy a file into tmp_path/in and run one job over it with the given outputs."""
    inbox = tmp_path / "in"
    inbox.mkdir(exist_ok=True)
    dst = inbox / (name or src.name)
    shutil.copy(src, dst)
    rule = Rule(name="test", file=None, outputs=tuple(outputs))
    return process_job(Job(src=dst, relpath=dst.name, rules=(rule,), output_root=tmp_path / "out"))


def exiftool(path: Path) -> dict[str, object]:
    """All tags exiftool sees, keyed 'Family0:Family1:Name' with numeric values; skips without exiftool."""
    tool("exiftool", "libimage-exiftool-perl")
    out = subprocess.run(
        ["exiftool", "-j", "-a", "-G0:1", "-n", str(path)], capture_output=True, text=True, check=True
    ).stdout
    data: dict[str, object] = json.loads(out)[0]
    return data


class DaemonProcess:
    """The real daemon as a subprocess, its JSON log in a file; waits are for events, never sleeps."""

    def __init__(
        self,
        cwd: Path,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
        log: Path | None = None,
    ) -> None:
        """`prefix`: a command the daemon runs under (unshare, nsenter, a shell setting up a mount);
        `log`: a log file several starts append to (by default one of its own)."""
        self.cwd = cwd
        self.log = log or cwd / f"daemon-{os.getpid()}-{id(self)}.jsonl"
        full = {**os.environ, "PYTHONPATH": str(ROOT / "daemon"), **(env or {})}
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", "hotfolder", "run", "--log-format", "json", *args],
                cwd=cwd,
                env=full,
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
            )

    def events(self) -> list[dict[str, object]]:
        """Every event logged so far."""
        found = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue  # the last line may be half written
        return found

    def named(self, event: str) -> list[dict[str, object]]:
        return [e for e in self.events() if e["event"] == event]

    def wait(self, check: object, seconds: float = 60, *, what: str = "") -> None:
        """Until check() is true; fails at once, with the daemon's stderr, if the daemon exits."""
        assert callable(check)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():
                return
            if self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) while waiting for {what}: {err}"
                )
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or check}; last events: {self.events()[-5:]}")

    def wait_event(self, event: str, seconds: float = 60, **fields: object) -> dict[str, object]:
        """The first event of this name whose fields include `fields` (values compared as text)."""
        found: list[dict[str, object]] = []

        def seen() -> bool:
            found[:] = [
                e for e in self.named(event) if all(str(e.get(k)) == str(v) for k, v in fields.items())
            ]
            return bool(found)

        self.wait(seen, seconds, what=f"{event} {fields}")
        return found[0]

    def started(self) -> DaemonProcess:
        self.wait_event("daemon.started")
        return self

    def stop(self, *, expect: int = 0) -> list[dict[str, object]]:
        """SIGTERM, then the whole log; the exit code must be `expect`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=90)
        assert self.proc.returncode == expect, err
        return self.events()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=60)


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons a test starts are killed at its end, whatever happened."""
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.kill()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (/proc/PID/stat), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick)."""
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """`hotfolder serve` as a subprocess; `ready()` waits until it answers."""

    def __init__(self, cwd: Path, *args: str, listen: str | None = None) -> None:
        self.port = free_port()
        if listen is not None and not listen.startswith("unix:"):
            self.port = int(listen.rsplit(":", 1)[1])
        self.listen = listen or f"127.0.0.1:{self.port}"
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"serve-{id(self)}.jsonl"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hotfolder",
                    "serve",
                    "--log-format",
                    "json",
                    "--listen",
                    self.listen,
                    *args,
                ],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
            )

    def ready(self, seconds: float = 30, headers: dict[str, str] | None = None) -> ServeProcess:
        """Until the page answers at all (any status); fails with serve's stderr if it exits."""
        import urllib.error  # noqa: PLC0415
        import urllib.request  # noqa: PLC0415

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited ({self.proc.returncode}): {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                urllib.request.urlopen(
                    urllib.request.Request(self.base + "/metrics", headers=headers or {}), timeout=2
                )
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("serve did not answer")

    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=30)


@pytest.fixture
def servers() -> Iterator[list[ServeProcess]]:
    """`serve` processes a test starts are stopped at its end."""
    started: list[ServeProcess] = []
    yield started
    for s in started:
        s.stop()
