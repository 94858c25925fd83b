"""The real daemon as a subprocess: files dropped in come out processed; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import exifread
import pytest
from PIL import Image

from conftest import DaemonProcess, corpus


def exif_of(path: Path) -> dict[str, str]:
    with path.open("rb") as fp:
        return {k: str(v) for k, v in exifread.process_file(fp, details=False).items()}


def test_daemon_processes_arrivals_and_stops_on_sigterm(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """Copy images into inbox/: outputs appear with EXIF, a broken one is quarantined, SIGTERM exits 0."""
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("pentax_k10d.jpg"), tmp_path / "inbox" / "before_start.jpg")  # startup scan
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.wait((tmp_path / "outbox/web/before_start.jpg").exists, what="the start-up scan's output")
    shutil.copy(corpus("canon_eos_7d.jpg"), tmp_path / "inbox" / "canon.jpg")
    (tmp_path / "inbox" / "deep").mkdir()
    shutil.copy(corpus("truncated_jpeg.jpg"), tmp_path / "inbox" / "deep" / "bad.jpg")
    (tmp_path / "inbox" / "clip.mov").write_bytes(b"\x00\x00\x00\x18ftypqt  " + b"\x00" * 100)
    png, jpg = tmp_path / "outbox/archive/canon.png", tmp_path / "outbox/web/canon.jpg"
    daemon.wait(
        lambda: png.exists() and jpg.exists() and (tmp_path / "quarantine/deep/bad.jpg.json").exists(),
        what="both outputs and the quarantine note",
    )
    assert daemon.proc.poll() is None, "the daemon must keep running after a broken file"
    src = exif_of(corpus("canon_eos_7d.jpg"))
    for out in (png, jpg):
        with Image.open(out) as im:
            im.load()
        got = exif_of(out)
        for tag in ("EXIF DateTimeOriginal", "Image Make", "Image Model"):
            assert got[tag] == src[tag]
    note = json.loads((tmp_path / "quarantine/deep/bad.jpg.json").read_text())
    assert "truncated" in note["error"]
    assert (tmp_path / "inbox" / "clip.mov").exists()
    events = daemon.stop()
    names = [e["event"] for e in events]
    assert "daemon.started" in names and names[-1] == "daemon.stopped"
    written = [e for e in events if e["event"] == "output.written"]
    keys = {"src", "dst", "rule", "format", "bytes_in", "bytes_out", "ms", "level", "timestamp"}
    assert keys <= written[0].keys()
    assert any(e["event"] == "file.unmatched" and e["src"].endswith("clip.mov") for e in events)
    assert not [p for p in tmp_path.rglob("*") if ".hf-" in p.name], "temp files left behind"


def test_restart_does_not_reprocess(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """A file already handled is skipped by the next start (the ledger remembers it)."""
    (tmp_path / "inbox").mkdir()
    src = tmp_path / "inbox" / "a.jpg"
    shutil.copy(corpus("pentax_k10d.jpg"), src)
    first = DaemonProcess(tmp_path)
    daemons.append(first)
    first.wait_event("job.done", src=src)
    assert [e["event"] for e in first.stop()].count("job.done") == 1
    second = DaemonProcess(tmp_path, "--log-level", "debug")
    daemons.append(second)
    second.wait_event("file.skipped", src=src)  # the start-up scan found it, the ledger knew it
    events = second.stop()
    assert [e["event"] for e in events].count("job.done") == 0
    assert events[-1]["event"] == "daemon.stopped" and events[-1]["skipped"] == 1
    assert sorted(p.name for p in (tmp_path / "outbox/web").iterdir()) == ["a.jpg"]


def test_second_daemon_on_same_state_refuses(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """Two daemons on one state folder: the second exits 3 with a clear message."""
    (tmp_path / "inbox").mkdir()
    first = DaemonProcess(tmp_path)
    daemons.append(first)
    first.started()
    second = DaemonProcess(tmp_path)
    daemons.append(second)
    _, err = second.proc.communicate(timeout=60)
    assert second.proc.returncode == 3
    assert "in use" in err
    first.stop()


def test_reload_with_broken_rules_keeps_the_old_ones(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """A broken rule file while running: logged, old rules keep working; a fixed one takes over."""
    (tmp_path / "inbox").mkdir()
    rules = tmp_path / "rules" / "main.toml"
    rules.parent.mkdir()
    rules.write_text('[[rule]]\nname = "old"\n[[rule.output]]\nformat = "png"\npath = "old/{stem}.png"\n')
    (tmp_path / "hotfolder.toml").write_text('rules = ["rules/*.toml"]\n[[watch]]\npath = "inbox"\n')
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    rules.write_text(rules.read_text().replace('format = "png"', 'format = "pngg"'))
    daemon.wait_event("rules.reload_failed")  # seen by the rule-file poll, no signal needed
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "a.bmp")
    daemon.wait((tmp_path / "outbox/old/a.png").exists, what="the old rule's output")
    rules.write_text(rules.read_text().replace('"pngg"', '"png"').replace("old/", "new/"))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_event("rules.reloaded")
    shutil.copy(corpus("hopper_gray.jpg"), tmp_path / "inbox" / "b.jpg")
    daemon.wait((tmp_path / "outbox/new/b.png").exists, what="the new rule's output")
    assert daemon.proc.poll() is None
    events = daemon.stop()
    failed = [e for e in events if e["event"] == "rules.reload_failed"]
    assert failed and "pngg" in failed[0]["error"]
    assert any(e["event"] == "rules.reloaded" for e in events)


def test_a_state_folder_deleted_under_the_daemon_stops_it(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """Issue 28, case 6: the state folder removed while the daemon runs: within 10 s it stops with
    `state.lost` and exit 2 (no restart), so a second daemon that takes a new lock there is the only one;
    the same when the folder is swapped for another (the lock file is then another file)."""
    (tmp_path / "inbox").mkdir()
    for swap in (False, True):
        first = DaemonProcess(tmp_path)
        daemons.append(first)
        first.started()
        state = tmp_path / ".hotfolder"
        if swap:
            state.rename(tmp_path / "state.old")
            state.mkdir()  # the same files, not the same ones
            for f in ("lock", "ledger.sqlite3"):
                shutil.copy(tmp_path / "state.old" / f, state / f)
        else:
            shutil.rmtree(state)
        began = time.monotonic()
        lost = first.wait_event("state.lost", 15)
        assert "no file is processed twice" in str(lost["error"])
        assert first.proc.wait(timeout=30) == 2
        assert time.monotonic() - began < 10 + 5
        second = DaemonProcess(tmp_path)
        daemons.append(second)
        second.started()
        name = "dscn0010.jpg" if swap else "hopper.bmp"  # not a duplicate of the round before
        shutil.copy(corpus(name), tmp_path / "inbox" / name)
        second.wait_event("job.done", src=tmp_path / "inbox" / name)
        assert not first.named("job.done")
        second.stop()


def test_signals_arriving_while_the_daemon_logs_never_hang_it(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """A storm of SIGHUPs (each one a reload, each reload logged) then SIGTERM: the daemon stops, exit 0.
    Its signal handler used to log from inside whatever the main thread was doing: caught while that
    thread held the log's write lock, it waited on it forever (CI: 1 run in 8 hung at stop)."""
    (tmp_path / "inbox").mkdir()
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    storm_ends = time.monotonic() + 3
    while time.monotonic() < storm_ends and daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGHUP)
    assert daemon.proc.poll() is None
    daemon.wait_event("rules.reloaded")
    daemon.proc.send_signal(signal.SIGTERM)
    try:
        daemon.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the daemon hung after a storm of signals; last events: {daemon.events()[-3:]}")
    events = daemon.stop()
    assert any(e["event"] == "daemon.signal" and e["signal"] == "SIGTERM" for e in events)
    assert events[-1]["event"] == "daemon.stopped"
