"""The daemon as a systemd service: notify protocol, watchdog vitals, reload of watches and logging,
a stuck worker. Real subprocesses, a real datagram socket standing in for systemd."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from conftest import Clock, DaemonProcess, corpus, cpu_seconds, photos, pool_workers, write_config
from hotfolder.commit.ledger import Ledger
from hotfolder.run.daemon import Daemon
from hotfolder.run.engine import Engine
from hotfolder.run.notify import Notifier
from hotfolder.run.supervise import SUPERVISE_SECONDS
from hotfolder.settings.config import load_config

PNG_RULE = '[[rule]]\nname = "png"\n[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n'


class FakeSystemd:
    """A datagram socket bound where NOTIFY_SOCKET points, collecting what the daemon says."""

    def __init__(self) -> None:
        self.name = f"@hotfolder-test-{os.getpid()}-{time.monotonic_ns()}"  # abstract: no path limits
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def pump(self, seconds: float = 0.0) -> None:
        end = time.monotonic() + seconds
        while True:
            try:
                raw = self.sock.recv(4096).decode()
                fields = dict(line.split("=", 1) for line in raw.splitlines())
                self.messages.append((time.monotonic(), fields))
            except TimeoutError:
                if time.monotonic() >= end:
                    return

    def wait(self, key: str, value: str | None = None, seconds: float = 60) -> dict[str, str]:
        seen = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump()
            for _, m in self.messages[seen:]:
                if key in m and (value is None or value in m[key]):
                    return m
            seen = len(self.messages)
        raise AssertionError(f"no {key}={value} from the daemon; got {self.messages[-5:]}")

    def count(self, key: str) -> int:
        return sum(1 for _, m in self.messages if key in m)


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    fake = FakeSystemd()
    yield fake
    fake.sock.close()


def test_notifier_without_socket_or_for_another_pid_does_nothing() -> None:
    assert not Notifier({}).enabled and Notifier({}).send(ready=1) is False
    other = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_s is None  # meant for pid 1, not for us
    mine = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_s == 4.0
    assert mine.send(ready=1) is False  # nobody listens at @x: the daemon carries on
    mine.close()
    other.close()


def test_ready_status_watchdog_reload_and_stopping(tmp_path: Path, systemd: FakeSystemd) -> None:
    """READY=1 before a 120-file backlog is done, STATUS= with counts, WATCHDOG=1 every half interval,
    RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM."""
    write_config(tmp_path, PNG_RULE)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with Image.open(corpus("hopper.bmp")) as hopper:
        for i in range(120):  # distinct bytes, or all but one would be duplicates
            hopper.rotate(i * 3).save(inbox / f"h{i:03d}.bmp")
    daemon = DaemonProcess(tmp_path, env={"NOTIFY_SOCKET": systemd.name, "WATCHDOG_USEC": "1000000"})
    proc = daemon.proc
    try:
        ready = systemd.wait("READY", "1")
        done_at_ready = len(list((tmp_path / "outbox").glob("*.png")))
        assert done_at_ready < 120, "READY must not wait for the backlog"
        assert "pending" in ready["STATUS"] and ready["MAINPID"] == str(proc.pid)
        systemd.wait("STATUS", "done 120")
        pings = systemd.count("WATCHDOG")
        systemd.pump(3.0)
        assert systemd.count("WATCHDOG") - pings >= 4, "1 s watchdog: a ping every 0.5 s"
        proc.send_signal(signal.SIGHUP)
        systemd.wait("RELOADING", "1")
        assert systemd.wait("READY", "1")
    finally:
        events = daemon.stop()
    systemd.wait("STOPPING", "1")  # sent before the daemon exited: already in the socket
    assert systemd.count("STOPPING") == 1
    assert sum(1 for e in events if e["event"] == "job.done") == 120
    assert any(e["event"] == "rules.reloaded" for e in events)


def test_vitals_name_a_dead_observer_but_not_an_offline_root(tmp_path: Path) -> None:
    """The watchdog is fed only while every observer is alive; a root being retried is no fault.
    The daemon's parts share one injected clock: supervision's turns come by advancing it."""
    write_config(tmp_path, PNG_RULE)
    config = load_config(cwd=tmp_path)
    clock = Clock()
    daemon = Daemon(config, cwd=tmp_path, clock=clock)
    ledger = Ledger(config.state_dir)
    engine = Engine(config, ledger, clock=clock)
    (watch,) = config.watches
    try:
        daemon.watches.arm(watch)
        assert daemon.vitals(engine) is None
        daemon.watches.stop()
        daemon.watches.join()
        assert daemon.vitals(engine) is None, "supervision has not had its turn yet"
        clock.now += SUPERVISE_SECONDS
        assert daemon.vitals(engine) == "observer of watch 'inbox' is dead"
        shutil.rmtree(watch.path)  # the root goes offline (an unmounted disk): supervision cannot mend it
        daemon.watches.supervise()
        assert watch.name in daemon.watches.rearm and daemon.vitals(engine) is None
        watch.path.mkdir()  # back: re-armed at the next turn past its backoff
        clock.now += SUPERVISE_SECONDS
        daemon.watches.supervise()
        assert watch.name not in daemon.watches.rearm and daemon.vitals(engine) is None
    finally:
        daemon.watches.stop()
        daemon.watches.join()
        engine.shutdown(abandon=False)
        ledger.close()


def test_stuck_worker_is_stopped_and_its_input_quarantined(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """A worker frozen mid-job (SIGSTOP) past job_timeout: the pool is replaced, the input quarantined
    with the reason, and the next file is processed as usual."""
    write_config(tmp_path, PNG_RULE, extra="job_timeout = 3\n")
    (tmp_path / "inbox").mkdir()
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "warm.bmp")  # spawns the workers
    daemon.wait_event("job.done", src=tmp_path / "inbox" / "warm.bmp")
    workers = pool_workers(daemon.proc.pid)
    assert workers, "the warm-up job started at least one worker"
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "frozen.bmp")
    daemon.wait_event("job.quarantined", src=tmp_path / "inbox" / "frozen.bmp")
    sidecar = tmp_path / "quarantine" / "frozen.bmp.json"
    assert "job_timeout = 3 s" in json.loads(sidecar.read_text())["error"]
    shutil.copy(corpus("hopper_gray.jpg"), tmp_path / "inbox" / "after.jpg")
    daemon.wait_event("job.done", src=tmp_path / "inbox" / "after.jpg")
    events = daemon.stop()
    names = [e["event"] for e in events]
    assert "job.timeout" in names and "pool.restarted" in names
    assert not (tmp_path / "outbox" / "frozen.png").exists()


def test_sighup_reloads_watch_list_and_log_level(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """A watch added and the log level raised by SIGHUP take effect; a changed worker count is
    logged as needing a restart; a broken config keeps the old watches."""
    config = write_config(tmp_path, PNG_RULE)
    (tmp_path / "inbox").mkdir()
    (tmp_path / "scans").mkdir()
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    text = config.read_text().replace("workers = 2", "workers = 1")
    config.write_text(text + '\n[[watch]]\npath = "scans"\n' + 'log_level = "warning"\n')
    # log_level after a table header belongs to the table: that is an unknown watch key.
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_event("rules.reload_failed")
    assert not [e for e in daemon.named("watch.armed") if e["watch"] == "scans"], (
        "a broken config was applied"
    )
    shutil.copy(corpus("hopper.bmp"), tmp_path / "scans" / "early.bmp")
    config.write_text('log_level = "warning"\n' + text + '\n[[watch]]\npath = "scans"\n')
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait((tmp_path / "outbox" / "early.png").exists)  # the reload's scan finds it (no info event now)
    shutil.copy(corpus("hopper_gray.jpg"), tmp_path / "scans" / "late.jpg")
    daemon.wait((tmp_path / "outbox" / "late.png").exists)
    events = daemon.stop()
    names = [e["event"] for e in events]
    assert "rules.reload_failed" in names
    assert any(e["event"] == "config.needs_restart" and e["key"] == "workers" for e in events)
    after = names[names.index("config.needs_restart") :]
    assert "job.done" not in after and "daemon.stopped" not in after, "info events after level=warning"
    assert all(e["level"] in {"warning", "error"} for e in events[names.index("config.needs_restart") :])
    assert all("T" in str(e["timestamp"]) for e in events)  # ISO 8601


def test_a_small_file_is_not_stuck_behind_heif_encodes(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """Three 12.5 MP HEIF jobs, then a small PNG job: the heavy lane holds one worker's worth, so the
    small output appears before the first HEIF is even done."""
    rules = (
        '[[rule]]\nname = "heavy"\n[rule.match]\nglob = ["heavy/*"]\n'
        # x265's fastest preset still takes seconds on 12.5 MP, against ~0.2 s for the small PNG: the
        # order is the subject, and the three heavy jobs' tail no longer costs the suite 25 s.
        '[[rule.output]]\nformat = "heif"\npreset = "ultrafast"\npath = "{stem}.heic"\n'
        '[[rule]]\nname = "small"\n[rule.match]\nglob = ["small/*"]\n'
        '[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n'
    )
    write_config(tmp_path, rules)
    heavy = photos()[:3]
    assert len(heavy) == 3
    (tmp_path / "inbox" / "heavy").mkdir(parents=True)
    (tmp_path / "inbox" / "small").mkdir()
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    for photo in heavy:  # closed after writing: each an arrival at once, in this order (FIFO)
        shutil.copy(photo, tmp_path / "inbox" / "heavy" / photo.name)
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "small" / "hopper.bmp")
    daemon.wait_event("job.done", src=tmp_path / "inbox" / "small" / "hopper.bmp")
    first = daemon.named("job.done")[0]
    assert str(first["src"]).endswith("hopper.bmp"), "the small job waited behind a HEIF encode"
    daemon.wait(lambda: len(daemon.named("job.done")) == 4, 180, what="the three HEIF jobs")
    daemon.stop()


def test_a_crashed_worker_costs_one_attempt_not_the_daemon(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """SIGKILL a worker in the middle of a job (as the OOM killer would): the pool is replaced, the job
    is retried and its outputs appear; the daemon keeps running."""
    rules = (
        '[[rule]]\nname = "slow"\n[[rule.output]]\nformat = "heif"\nlossless = true\npath = "{stem}.heic"\n'
    )
    write_config(tmp_path, rules)
    (tmp_path / "inbox").mkdir()
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    # A 6 MP crop of a phone photo: its lossless HEIF encode still takes seconds (the kill lands inside
    # it), and the retry's encode half of the 12.5 MP one's.
    with Image.open(photos()[0]) as photo:
        photo.crop((0, 0, 3000, 2000)).save(
            tmp_path / "big.jpg", quality=92, exif=photo.info.get("exif", b"")
        )
    shutil.move(tmp_path / "big.jpg", tmp_path / "inbox" / "big.jpg")
    # Inside the (long) lossless encode: a worker has spent more CPU than its start-up takes.
    daemon.wait(
        lambda: any(cpu_seconds(pid) > 1.5 for pid in pool_workers(daemon.proc.pid)), what="a busy worker"
    )
    for pid in pool_workers(daemon.proc.pid):
        os.kill(pid, signal.SIGKILL)
    daemon.wait_event("job.done", 240, src=tmp_path / "inbox" / "big.jpg")
    assert daemon.proc.poll() is None
    events = daemon.stop()
    names = [e["event"] for e in events]
    assert "pool.restarted" in names
    retry = next(e for e in events if e["event"] == "job.retry")
    assert "worker process died" in str(retry["error"]) and retry["attempt"] == 1
    assert names.count("job.done") == 1 and not (tmp_path / "quarantine").exists()
