"""Faults, made real: a full disk in a private mount namespace, a source still being written,
temp files left by a killed run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT, DaemonProcess, corpus, cpu_seconds, output, pool_workers
from hotfolder.commit.cleanup import remove_leftover_temps
from hotfolder.core.identity import FileIdentity
from hotfolder.core.status import Result, RetryReason
from hotfolder.decide.job import Job
from hotfolder.run.job import run_job
from hotfolder.settings.config import load_config
from hotfolder.settings.rules import Rule


def test_truncated_file_still_growing_is_retried_not_quarantined(tmp_path: Path) -> None:
    """A file that differs from what the dispatcher saw is still arriving: deferred, not broken."""
    src = tmp_path / "in" / "photo.jpg"
    src.parent.mkdir()
    data = corpus("canon_eos_7d.jpg").read_bytes()
    src.write_bytes(data[: len(data) // 4])
    seen = FileIdentity.at(src)
    with src.open("ab") as fp:
        fp.write(data[len(data) // 4 : len(data) // 2])
    rule = Rule("r", None, outputs=(output(format="png"),))
    outcome = run_job(
        Job(src=src, relpath="photo.jpg", rules=(rule,), output_root=tmp_path / "out", seen=seen)
    )
    assert (outcome.result, outcome.retry) == (Result.RETRY, RetryReason.DEFERRED)
    assert src.exists() and not (tmp_path / "out").exists()
    stable = Job(
        src=src, relpath="photo.jpg", rules=(rule,), output_root=tmp_path / "out", seen=FileIdentity.at(src)
    )
    assert run_job(stable).result is Result.BROKEN  # once it holds still, a broken file is broken


def test_leftover_temps_are_removed_at_start(tmp_path: Path) -> None:
    """Temp files of an interrupted run are deleted by the next start, real outputs are not."""
    config = load_config(None, cwd=tmp_path)
    (config.output_root / "web").mkdir(parents=True)
    (config.output_root / "web" / ".a.jpg.hf-1a2b3c4d.tmp").write_bytes(b"partial")
    (config.output_root / "web" / "a.jpg").write_bytes(b"whole")
    assert remove_leftover_temps(config) == 1
    assert [p.name for p in (config.output_root / "web").iterdir()] == ["a.jpg"]


ORCHESTRATOR = """
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
tmp, corpus_file = Path(sys.argv[1]), sys.argv[2]
outbox = tmp / "outbox"
outbox.mkdir()
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(outbox)], check=True)
(tmp / "inbox").mkdir()
env = dict(os.environ, PYTHONPATH=sys.argv[3])
log = open(tmp / "log.json", "w")
command = [sys.executable, "-m", "hotfolder", "run", "--log-format", "json"]
daemon = subprocess.Popen(command, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
def events():
    return [json.loads(l) for l in (tmp / "log.json").read_text().splitlines() if l.startswith("{")]
def wait(check, seconds=60):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.2)
    return False
result = {}
wait(lambda: any(e["event"] == "daemon.started" for e in events()))
shutil.copy(corpus_file, tmp / "inbox" / "photo.jpg")
result["retried"] = wait(lambda: any(e["event"] == "job.retry" for e in events()))
result["during"] = sorted(str(p.relative_to(outbox)) for p in outbox.rglob("*") if p.is_file())
subprocess.run(["mount", "-o", "remount,size=64m", str(outbox)], check=True)
result["completed"] = wait(lambda: any(e["event"] == "job.done" for e in events()))
result["after"] = sorted(str(p.relative_to(outbox)) for p in outbox.rglob("*") if p.is_file())
result["source_kept"] = (tmp / "inbox" / "photo.jpg").exists()
daemon.send_signal(signal.SIGTERM)
result["exit"] = daemon.wait(timeout=60)
result["retries"] = [e.get("error", "") for e in events() if e["event"] == "job.retry"]
print(json.dumps(result))
"""


@pytest.mark.slow
def test_full_disk_waits_and_completes_once_space_returns(tmp_path: Path) -> None:
    """A 160 KB tmpfs as output: ENOSPC is retried with backoff, nothing partial is left, and the
    job completes once the filesystem grows; the original is never touched."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"the kernel forbids user namespaces here: {probe.stderr.decode().strip()}")
    script = tmp_path / "orchestrate.py"
    script.write_text(textwrap.dedent(ORCHESTRATOR))
    work = tmp_path / "work"
    work.mkdir()
    command = [
        "unshare",
        "-Urm",
        sys.executable,
        str(script),
        str(work),
        str(corpus("canon_eos_7d.jpg")),
        str(ROOT / "daemon"),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["retried"], result
    assert "No space left on device" in result["retries"][0]
    assert all(".hf-" not in p for p in result["during"]), result["during"]  # no temp, no partial output
    assert result["completed"] and result["exit"] == 0 and result["source_kept"]
    assert result["after"] == ["archive/photo.png", "web/photo.jpg"]


@pytest.mark.slow
def test_sigterm_abandons_a_long_job_cleanly_and_it_is_redone(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """stop_timeout = 1: a lossless 12 MP HEIF still encoding is abandoned; exit 0, no temp, no
    output, the input in place; the next start does the job."""
    (tmp_path / "inbox").mkdir()
    (tmp_path / "rules.toml").write_text(
        '[[rule]]\nname = "slow"\n[[rule.output]]\nformat = "heif"\nlossless = true\npath = "{stem}.heic"\n'
    )
    (tmp_path / "hotfolder.toml").write_text(
        'rules = ["rules.toml"]\nstop_timeout = 1\n[[watch]]\npath = "inbox"\n'
    )
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    shutil.copy(corpus("pug.heic"), tmp_path / "inbox" / "pug.heic")
    # Inside the encode (it takes far longer): a worker has spent more CPU than its start-up takes.
    daemon.wait(
        lambda: any(cpu_seconds(p) > 1.5 for p in pool_workers(daemon.proc.pid)), what="a busy worker"
    )
    started = time.monotonic()
    events = [e["event"] for e in daemon.stop()]  # SIGTERM; exit 0
    assert time.monotonic() - started < 15
    assert "daemon.abandoned" in events and "job.done" not in events
    assert not [p for p in tmp_path.rglob("*") if ".hf-" in p.name]
    assert not (tmp_path / "outbox" / "pug.heic").exists() and (tmp_path / "inbox" / "pug.heic").exists()
    rerun = DaemonProcess(tmp_path)
    daemons.append(rerun)
    rerun.wait_event("job.done", 180)
    rerun.stop()
    assert (tmp_path / "outbox" / "pug.heic").exists()


@pytest.mark.slow
def test_unreadable_file_as_nobody_is_retried_then_processed(tmp_path: Path) -> None:
    """The daemon runs as nobody (setpriv), so EACCES is real: a file its writer still holds
    unreadable is retried, not quarantined, and processed once it becomes readable."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root to switch to nobody with setpriv")
    home = Path("/tmp") / f"hotfolder-nobody-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    (home / "inbox").mkdir(parents=True)
    os.chmod(home, 0o777)  # noqa: PTH101 - nobody must write state, outputs and quarantine here
    os.chmod(home / "inbox", 0o777)  # noqa: PTH101
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    # The test venv's interpreter may live under /root (mode 700), which nobody cannot enter;
    # the system's interpreter of the same version with the venv's packages runs the same code.
    interpreter, paths = sys.executable, [str(ROOT / "daemon")]
    spawn_probe = (
        "import concurrent.futures as f, multiprocessing as m; "
        "f.ProcessPoolExecutor(1, mp_context=m.get_context('spawn')).submit(abs, 1).result()"
    )
    probe = subprocess.run(
        [*as_nobody, interpreter, "-c", spawn_probe], capture_output=True, cwd=home, check=False
    )
    if probe.returncode:
        interpreter = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
        paths.append(sysconfig.get_paths()["purelib"])
        if not Path(interpreter).exists():
            pytest.skip("no Python interpreter here that the nobody user may run")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "HOME": str(home)}
    command = [*as_nobody, interpreter, "-m", "hotfolder", "run", "--log-format", "json"]
    proc = subprocess.Popen(
        command, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(2)
        locked = home / "inbox" / "locked.bmp"
        # Created unreadable (root writes through mode 000): nobody gets EACCES from the start.
        fd = os.open(locked, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o000)
        os.write(fd, corpus("hopper.bmp").read_bytes())
        os.close(fd)
        time.sleep(4)
        assert not (home / "quarantine").exists()
        locked.chmod(0o644)
        deadline = time.monotonic() + 60
        while not (home / "outbox" / "archive" / "locked.png").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    try:
        assert proc.returncode == 0, err[-1500:]
        events = [json.loads(line) for line in out.splitlines()]
        retries = [e for e in events if e["event"] == "job.retry"]
        assert retries and "Permission denied" in str(retries[0]["error"])
        assert (home / "outbox" / "archive" / "locked.png").exists()
    finally:
        shutil.rmtree(home, ignore_errors=True)
