"""The daemon driving a real dask.distributed cluster on 127.0.0.1: a `dask scheduler`, two `hotfolder
worker` processes (one in a mount namespace where the state folder is an empty read-only tmpfs, so a
worker touching it fails loudly), the daemon as the client. Faults: kill -9 a worker mid-job, SIGSTOP one
past job_timeout, kill -9 the daemon mid-run; every input still ends exactly once."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, DaemonProcess, corpus, photos
from hotfolder.core.tempnames import is_temp_name
from synthdng import write_dng

pytestmark = pytest.mark.slow

RULES = """
[[rule]]
name = "heif"
match.glob = ["heif/*"]
[[rule.output]]
format = "heif"
path = "heif/{stem}.heic"

[[rule]]
name = "raw"
match.glob = ["raw/*"]
match.formats = ["raw"]
[[rule.output]]
format = "jpeg"
max_edge = 640
raw = "render"
path = "raw/{stem}.jpg"

[[rule]]
name = "all"
[[rule.output]]
format = "jpeg"
max_edge = 1024
on_conflict = "counter"
path = "web/{seq}-{stem}.jpg"
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(check: object, seconds: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'daemon'}:{ROOT / 'tests'}"}


class Cluster:
    """A scheduler and two one-thread worker hosts: `heavy` (the heavy lane) and `light` (fenced off)."""

    def __init__(self, base: Path, state: Path) -> None:
        self.port = _port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.logs = base / "cluster-logs"
        self.logs.mkdir()
        dask = Path(sys.executable).with_name("dask")
        self.procs = [
            self._start(
                "scheduler",
                [str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
            )
        ]
        _until(lambda: _listening(self.port), 60, "the scheduler to listen")
        worker = [
            sys.executable,
            "-m",
            "hotfolder",
            "worker",
            self.address,
            "--nworkers",
            "1",
            "--allow-insecure",
        ]
        self.procs.append(self._start("heavy", [*worker, "--heavy", "1", "--name", "heavy"]))
        # The other host's view: the state folder is an empty, read-only mount there.
        fence = f'mount -t tmpfs -o ro,size=4k none {state} && exec "$@"'
        fenced = ["unshare", "-m", "--propagation", "private", "sh", "-c", fence, "sh"]
        self.procs.append(self._start("light", [*fenced, *worker, "--heavy", "0", "--name", "light"]))

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{name}.log").open("wb")
        # umask 0: folders one worker makes must be writable by the other (another user on a real site).
        return subprocess.Popen(
            argv,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.umask(0),  # noqa: PLW1509
        )

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _fencing_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], check=False)
    return probe.returncode == 0


@pytest.fixture
def site() -> Iterator[tuple[Path, Cluster]]:
    if not _fencing_works():
        pytest.skip("needs root and unshare(1) for the fenced worker")
    base = Path(os.path.realpath(__import__("tempfile").mkdtemp(prefix="hf-cluster-")))
    base.chmod(0o755)
    state = base / "state"
    state.mkdir(mode=0o700)
    (base / "rules").mkdir()
    (base / "rules" / "main.toml").write_text(RULES)
    (base / "hotfolder.toml").write_text(
        'rules = ["rules/*.toml"]\noutput_root = "outbox"\nstate_dir = "state"\nquarantine = "quarantine"\n'
        'job_timeout = 25\nsettle = 0.3\n\n[[watch]]\npath = "inbox"\n\n'
    )
    cluster = Cluster(base, state)
    with (base / "hotfolder.toml").open("a") as f:
        f.write(f'[cluster]\nscheduler = "{cluster.address}"\nallow_insecure = true\n')
    try:
        yield base, cluster
    finally:
        cluster.close()
        if not os.environ.get("HF_KEEP"):  # HF_KEEP=1: leave the folders and logs to look at
            shutil.rmtree(base, ignore_errors=True)


def _inputs(
    folder: Path, batch: str, *, phones: slice, heif: int, raw: int, small: int, seed: int, raw_from: int = 1
) -> list[Path]:
    """Distinct inputs: 12 MP phone photos, HEIF jobs, RAW renders and small images."""
    made: list[Path] = []
    staging = folder / f"staging-{batch}"
    for sub in ("photos", "heif", "raw", "small"):
        (staging / sub).mkdir(parents=True)
    for photo in photos()[phones]:  # each photo once: a second copy is a duplicate
        made.append(staging / "photos" / f"{batch}-{photo.name}")
        shutil.copyfile(photo, made[-1])
    rng = np.random.default_rng(seed)
    for i in range(heif):
        made.append(staging / "heif" / f"{batch}-h{i}.png")
        Image.fromarray(rng.integers(0, 255, (320, 480, 3), dtype=np.uint8)).save(made[-1])
    for i in range(raw):
        made.append(staging / "raw" / f"{batch}-r{i}.dng")
        write_dng(made[-1], corpus(f"landscape_{raw_from + i}.jpg"), size=(600, 400))
    for i in range(small):
        made.append(staging / "small" / f"{batch}-s{i}.jpg")
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(made[-1], quality=90)
    return made


def _drop(made: list[Path], inbox: Path) -> list[Path]:
    """Move the inputs in whole (rename), as a sync tool does; returns their inbox paths."""
    dropped = []
    for path in made:
        dest = inbox / path.parent.name / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.rename(dest)
        dropped.append(dest)
    return dropped


def _expected(src: Path) -> str:
    kind = src.parent.name
    return {"heif": f"heif/{src.stem}.heic", "raw": f"raw/{src.stem}.jpg"}.get(kind, f"web/*-{src.stem}.jpg")


def _check_outputs(outbox: Path, inputs: list[Path]) -> None:
    """Exactly the expected outputs, each once; no counter names; {seq} unique; no temp files."""
    files = [p for p in outbox.rglob("*") if p.is_file()]
    # The daemon's probe file lies in the output folder while a (re)joining worker is checked.
    files = [p for p in files if not p.name.startswith(".hotfolder-probe.")]
    temps = [p for p in files if is_temp_name(p.name)]
    assert not temps, f"temp files left: {temps}"
    names = sorted(p.relative_to(outbox).as_posix() for p in files)
    web = [n for n in names if n.startswith("web/")]
    assert len(names) == len(inputs), names
    for src in inputs:
        pattern = _expected(src)
        hits = [n for n in names if Path(n).match(pattern)]
        assert len(hits) == 1, (src, hits)
    assert not [n for n in names if re.search(r"-1\.(jpg|heic)$", n)], names
    seqs = [int(Path(n).name.split("-", 1)[0]) for n in web]
    assert len(set(seqs)) == len(seqs), f"{{seq}} repeated: {sorted(seqs)}"


def _workers(daemon: DaemonProcess) -> dict[str, dict[str, object]]:
    return {str(e["worker"]): e for e in daemon.named("cluster.worker_joined")}


def _ledger_attempts(daemon: DaemonProcess) -> Counter[str]:
    return Counter(str(e["src"]) for e in daemon.named("job.sent"))


@pytest.mark.timeout(1200)
def test_cluster_exactly_once_under_faults(site: tuple[Path, Cluster]) -> None:
    base, _ = site
    inbox, outbox = base / "inbox", base / "outbox"
    inbox.mkdir(mode=0o777)
    outbox.mkdir(mode=0o777)
    inbox.chmod(0o777)
    outbox.chmod(0o777)
    daemon = DaemonProcess(base, "--config", str(base / "hotfolder.toml"), "--log-level", "debug")
    try:
        daemon.started()
        daemon.wait(lambda: len(_workers(daemon)) >= 2, 120, what="both workers to be verified")
        joined = _workers(daemon)
        heavy = {a for a, e in joined.items() if e["heavy"]}
        light = next(a for a, e in joined.items() if e["name"] == "light-0")
        assert {str(e["name"]) for e in joined.values()} == {"heavy-0", "light-0"}

        # 1. kill -9 a worker mid-job: 40 inputs, one with 2 attempts, every other with 1.
        first = _drop(_inputs(base, "a", phones=slice(0, 4), heif=6, raw=4, small=26, seed=1), inbox)
        assert len(first) == 40
        daemon.wait_event("job.sent", 120, worker=light)
        os.kill(int(joined[light]["pid"]), signal.SIGKILL)
        victim = str(daemon.wait_event("job.retry", 120)["src"])
        assert victim in {str(e["src"]) for e in daemon.named("job.sent") if e["worker"] == light}
        daemon.wait(lambda: len(daemon.named("job.done")) >= 40, 600, what="40 jobs done")
        _check_outputs(outbox, first)
        retried = daemon.named("job.retry")
        assert [str(e["src"]) for e in retried] == [victim], retried
        attempts = _ledger_attempts(daemon)
        assert attempts[victim] == 2
        assert all(n == 1 for src, n in attempts.items() if src != victim), attempts
        assert len(attempts) == 40
        lanes = {str(e["src"]): str(e["worker"]) for e in daemon.named("job.sent") if e["heavy"]}
        assert len(lanes) == 10  # 6 HEIF + 4 RAW
        assert set(lanes.values()) <= heavy, "a heavy job ran on a worker without the heavy resource"
        assert not daemon.named("cluster.worker_refused")

        # 2. SIGSTOP a worker past job_timeout: only it is restarted, its job quarantined, the rest done.
        daemon.wait(lambda: len(_workers(daemon)) >= 3, 120, what="the killed worker back, verified again")
        light = next(a for a, e in _workers(daemon).items() if e["name"] == "light-0" and a != light)
        before = len(daemon.named("job.sent"))
        second = _drop(_inputs(base, "b", phones=slice(4, 6), heif=0, raw=0, small=6, seed=2), inbox)
        daemon.wait(
            lambda: any(e["worker"] == light for e in daemon.named("job.sent")[before:]),
            120,
            what="a job on the light worker",
        )
        stopped = int(_workers(daemon)[light]["pid"])
        os.kill(stopped, signal.SIGSTOP)
        stuck = str(daemon.wait_event("job.timeout", 120, worker=light)["src"])
        assert len(daemon.named("job.timeout")) == 1
        daemon.wait(
            lambda: len(daemon.named("job.done")) >= 40 + len(second) - 1, 300, what="the others done"
        )
        daemon.wait_event("job.quarantined", 60, src=stuck)
        left = [str(e["worker"]) for e in daemon.named("cluster.worker_left")]
        assert not set(left) & heavy, "the heavy worker was restarted too"
        daemon.wait(lambda: len(_workers(daemon)) >= 4, 120, what="the stopped worker restarted")
        with pytest.raises(ProcessLookupError):
            os.kill(stopped, 0)  # the stopped process itself is gone, not just forgotten

        # 3. kill -9 the daemon mid-run and start it again: still exactly once.
        third = _drop(
            _inputs(base, "c", phones=slice(6, 8), heif=2, raw=1, small=5, seed=3, raw_from=5), inbox
        )
        done_before = len(daemon.named("job.done"))
        daemon.wait(lambda: len(daemon.named("job.done")) >= done_before + 2, 300, what="two of batch c")
        daemon.proc.kill()
        daemon.proc.wait()
    finally:
        daemon.kill()
    again = DaemonProcess(base, "--config", str(base / "hotfolder.toml"), "--log-level", "debug")
    try:
        again.started()
        remaining = [p for p in third if p.exists()]
        assert remaining
        everything = [*first, *[p for p in second if str(p) != stuck], *third]
        _until(lambda: _count_outputs(outbox) >= len(everything), 300, "every input's outputs")
        again.wait(lambda: not _busy(again), 120, what="the restarted daemon idle")
    finally:
        again.stop()
    _check_outputs(outbox, everything)
    argv = [sys.executable, "-m", "hotfolder", "status", "--config", str(base / "hotfolder.toml")]
    status = subprocess.run(argv, env=_env(), capture_output=True, text=True, check=False)
    print(status.stdout)
    assert status.returncode == 1, status  # the stopped worker's job is quarantined: a failure to see


def _count_outputs(outbox: Path) -> int:
    return sum(1 for p in outbox.rglob("*") if p.is_file() and not is_temp_name(p.name))


def _busy(daemon: DaemonProcess) -> bool:
    sent = Counter(str(e["src"]) for e in daemon.named("job.sent"))
    finished = Counter(str(e["src"]) for e in daemon.named("job.done"))
    return any(sent[s] > finished[s] for s in sent)


def _listeners(pid: int) -> set[str]:
    """The addresses every process of this tree listens on (TCP)."""
    import psutil  # noqa: PLC0415 - distributed's own dependency

    found = set()
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        with __import__("contextlib").suppress(psutil.Error):
            found |= {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    return found


def test_a_plain_tcp_worker_needs_the_flag_and_listens_where_the_scheduler_is(tmp_path: Path) -> None:
    """Issue 28, case 2: `hotfolder worker tcp://...` is a usage error (exit 2) without --allow-insecure;
    with it, every listener of its nanny and worker is on 127.0.0.1 (a loopback scheduler), none on
    0.0.0.0 or [::]."""
    port = _port()
    refused = subprocess.run(
        [sys.executable, "-m", "hotfolder", "worker", f"tcp://127.0.0.1:{port}"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2 and "--allow-insecure" in refused.stderr
    assert "Traceback" not in refused.stderr
    log = (tmp_path / "cluster.log").open("wb")
    scheduler = _scheduler(port, log)
    worker = None
    try:
        _until(lambda: _listening(port), 60, "the scheduler to listen")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hotfolder",
                "worker",
                f"tcp://127.0.0.1:{port}",
                "--nworkers",
                "2",
                "--allow-insecure",
            ],
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        assert worker is not None
        running = worker
        _until(lambda: len(_listeners(running.pid)) > 0 and len(_workers_of(port)) == 2, 90, "two workers")
        assert _listeners(running.pid) == {"127.0.0.1"}
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=60)


def _scheduler(port: int, log: Any) -> subprocess.Popen[bytes]:
    """`dask scheduler` on 127.0.0.1:`port`, no dashboard (it has no login)."""
    dask = Path(sys.executable).with_name("dask")
    argv = [str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    return subprocess.Popen(argv, env=_env(), stdout=log, stderr=subprocess.STDOUT)


def _workers_of(port: int) -> list[str]:
    """The workers a scheduler on 127.0.0.1:`port` knows (dask's own client asks it)."""
    import distributed  # noqa: PLC0415

    with distributed.Client(f"tcp://127.0.0.1:{port}", timeout="10s", set_as_default=False) as client:
        return list(client.scheduler_info(n_workers=-1)["workers"])


def test_no_workers_is_said_and_a_lost_scheduler_brings_the_worker_down_loudly(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """Issue 28, case 11: the worker killed -> the daemon says "no workers" (event, live.json, /metrics'
    problems) after 30 s, and clears it when a worker comes back; the scheduler killed -> `hotfolder
    worker` exits non-zero (so Restart=on-failure brings it back), the daemon says it cannot reach the
    scheduler and, on SIGTERM, stops within its stop_timeout (it crashed on a KeyError, or took 50 s)."""
    import json  # noqa: PLC0415

    port = _port()
    log = (tmp_path / "cluster.log").open("wb")
    scheduler = _scheduler(port, log)
    worker_argv = [
        sys.executable,
        "-m",
        "hotfolder",
        "worker",
        f"tcp://127.0.0.1:{port}",
        "--nworkers",
        "1",
        "--allow-insecure",
    ]
    procs = [scheduler]
    try:
        _until(lambda: _listening(port), 60, "the scheduler to listen")
        first = subprocess.Popen(
            worker_argv, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        procs.append(first)
        (tmp_path / "inbox").mkdir()
        (tmp_path / "hotfolder.toml").write_text(
            'output_root = "outbox"\nstate_dir = "state"\nquarantine = "quarantine"\nstop_timeout = 10\n'
            f'[cluster]\nscheduler = "tcp://127.0.0.1:{port}"\nallow_insecure = true\n'
            '[[watch]]\npath = "inbox"\n'
        )
        daemon = DaemonProcess(tmp_path)
        daemons.append(daemon)
        daemon.wait_event("cluster.worker_joined", 90)
        os.killpg(first.pid, signal.SIGKILL)  # the whole host's workers, nanny and all
        first.wait(timeout=30)
        problem = daemon.wait_event("daemon.problem", 120)
        assert "no hotfolder worker" in str(problem["error"])
        live = json.loads((tmp_path / "state" / "live.json").read_text())
        assert any("no workers" in p for p in live["problems"])

        second = subprocess.Popen(worker_argv, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        procs.append(second)
        daemon.wait_event("daemon.problem_cleared", 120)
        shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "hopper.bmp")
        daemon.wait_event("job.done", 120)

        scheduler.kill()
        scheduler.wait(timeout=30)
        assert second.wait(timeout=120) == 3  # not 0: the unit's Restart=on-failure starts it again
        said = lambda: any("cannot be reached" in str(e["error"]) for e in daemon.named("daemon.problem"))  # noqa: E731
        daemon.wait(said, 120, what="the scheduler said lost")
        shutil.copy(corpus("dscn0010.jpg"), tmp_path / "inbox" / "waits.jpg")  # queued, never lost
        began = time.monotonic()
        daemon.stop()
        assert time.monotonic() - began < 10 + 5, "stop_timeout is 10 s"
        assert (tmp_path / "inbox" / "waits.jpg").is_file()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
