"""The state folder's disk full under the running daemon (issue 28, case 10): survived, said loudly,
resumed once space returns, nothing lost or recorded twice. Real filesystems: the daemon runs in a mount
namespace of its own where its state folder is a 1 MB tmpfs, which the test fills and empties."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT, DaemonProcess, corpus, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nsenter") is None, reason="needs root and nsenter"),
]

PICTURES = ("canon_eos_7d.jpg", "dscn0010.jpg", "hopper.bmp", "pentax_k10d.jpg", "apple_iphone_4.jpg")


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out after {seconds} s waiting for {what}"
        time.sleep(0.1)


def test_a_full_state_disk_is_survived_said_and_resumed(tmp_path: Path) -> None:
    """Fill the state tmpfs, drop five pictures: `state.unwritable`, the page and /metrics say "state
    disk full" (live.json is rewritten in place on the full disk), no new work starts, the daemon stays
    up; delete the filler: within 60 s every picture is done exactly once and `status` says so, and
    each is announced to the [[event]] receiver once its row could be written (issue 34)."""
    from test_events import Receiver  # noqa: PLC0415

    receiver = Receiver(free_port()).start()
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / "inbox").mkdir()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "web.toml").write_text(
        '[[rule]]\nname = "web"\n[[rule.output]]\nformat = "jpeg"\nmax_edge = 512\npath = "web/{stem}.jpg"\n'
    )
    config = tmp_path / "hotfolder.toml"
    config.write_text(
        'rules = ["rules/*.toml"]\noutput_root = "outbox"\nstate_dir = "state"\nquarantine = "quarantine"\n'
        'settle = 0.3\n[[watch]]\npath = "inbox"\n'
        f'[[event]]\nname = "jobs"\nurl = "http://127.0.0.1:{receiver.port}/jobs"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}  # for the status command run inside
    log = tmp_path / "daemon.jsonl"
    boot = f'mount -t tmpfs -o size=1m hf-state {state} && exec "$@"'
    started = DaemonProcess(
        tmp_path, prefix=("unshare", "-m", "--propagation", "private", "sh", "-c", boot, "sh"), log=log
    )
    daemon = started.proc
    inside = ["nsenter", "-t", str(daemon.pid), "-m"]

    def events(name: str) -> list[dict[str, object]]:
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
        return [e for e in lines if e["event"] == name]

    serve = None
    try:
        _until(lambda: bool(events("daemon.started")), 30, "the daemon")
        subprocess.run(
            [*inside, "sh", "-c", f"dd if=/dev/zero of={state}/filler bs=4k 2>/dev/null; true"], check=True
        )
        for name in PICTURES:
            shutil.copy(corpus(name), tmp_path / "inbox" / name)
        _until(lambda: bool(events("state.unwritable")), 60, "state.unwritable")
        assert "state disk full" in str(events("state.unwritable")[0]["error"])
        assert not events("state.writable")
        assert daemon.poll() is None
        port = free_port()
        serve = subprocess.Popen(
            [
                *inside,
                sys.executable,
                "-m",
                "hotfolder",
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--config",
                str(config),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        page: list[str] = []

        def said() -> bool:
            try:
                page[:] = [urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()]
            except OSError as exc:
                page[:] = [str(exc)]
                return False
            return "state disk full" in page[0]

        try:
            _until(said, 30, "the page to say state disk full")
        finally:
            (tmp_path / "page.html").write_text(page[0] if page else "")
            seen = subprocess.run(
                [*inside, "sh", "-c", f"ls -la {state}; head -c 300 {state}/live.json"],
                capture_output=True,
                text=True,
                check=False,
            )
            (tmp_path / "inside.txt").write_text(seen.stdout + seen.stderr)
        assert "not answering" not in page[0]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "\nhotfolder_daemon_problems 1.0" in metrics and "\nhotfolder_daemon_up 1.0" in metrics
        done_while_full = len(events("job.done"))
        subprocess.run([*inside, "rm", f"{state}/filler"], check=True)
        began = time.monotonic()
        _until(lambda: bool(events("state.writable")), 60, "state.writable")
        _until(lambda: len(events("job.done")) == len(PICTURES), 60, "every picture done")
        assert time.monotonic() - began < 60 + 10
        web = sorted(p.name for p in (tmp_path / "outbox" / "web").iterdir())
        assert web == sorted(f"{Path(n).stem}.jpg" for n in PICTURES), web  # once each, no -1 copies
        asked = [*inside, sys.executable, "-m", "hotfolder", "status", "--config", str(config)]
        status = subprocess.run(asked, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
        assert f"total: done {len(PICTURES)}" in status.stdout, status.stdout + status.stderr
        assert done_while_full < len(PICTURES)
        assert not events("job.crashed") and daemon.poll() is None
        assert len(events("state.unwritable")) == 1, "said once, not at each try of the full disk"
        receiver.wait(lambda got: len(got) >= len(PICTURES), what="an event per picture")
        told = [json.loads(r["body"]) for r in receiver.got]
        assert sorted(Path(e["source"]["path"]).name for e in told) == sorted(PICTURES)
    finally:
        receiver.stop()
        if serve is not None:
            serve.terminate()
            serve.wait(timeout=30)
        daemon.terminate()
        assert daemon.wait(timeout=60) == 0
