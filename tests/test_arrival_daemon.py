"""Arrival with the real daemon: slow writers, uploader renames, folders moved in, polling roots,
roots that vanish and come back, inotify limits. Slow ones run in CI (make test-slow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, DaemonProcess, corpus


def config(tmp_path: Path, watch_extra: str = "", extra: str = "") -> None:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    (tmp_path / "hotfolder.toml").write_text(f'{extra}\n[[watch]]\npath = "inbox"\n{watch_extra}\n')


def done(tmp_path: Path, stem: str) -> bool:
    return (tmp_path / "outbox" / "archive" / f"{stem}.png").exists()


@pytest.mark.slow
def test_slow_writer_is_processed_once_and_complete(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """A 20 MB image written in chunks over 3 s: one job, after the last byte, with every pixel."""
    config(tmp_path)
    big = tmp_path / "big.bmp"
    Image.effect_noise((2600, 2600), 60).convert("RGB").save(big)  # ~20 MB, incompressible
    data = big.read_bytes()
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    with (tmp_path / "inbox" / "big.bmp").open("wb") as fp:
        for i in range(0, len(data), len(data) // 30):
            fp.write(data[i : i + len(data) // 30])
            fp.flush()
            time.sleep(0.1)  # the writer's own pace: a slow upload, not a wait for the daemon
    daemon.wait_event("job.done", 120, src=tmp_path / "inbox" / "big.bmp")
    got = daemon.stop()
    assert [e["event"] for e in got].count("job.done") == 1
    assert not any(e["event"] == "job.quarantined" for e in got)
    with Image.open(tmp_path / "outbox/archive/big.png") as out, Image.open(big) as ref:
        assert out.tobytes() == ref.tobytes()


def test_uploader_renames_count_as_arrivals(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """rsync's .name.XXXXXX and a browser's .part are ignored until renamed to the real name."""
    config(tmp_path)
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    inbox = tmp_path / "inbox"
    shutil.copy(corpus("hopper.bmp"), inbox / ".rsynced.bmp.a1B2c3")
    shutil.copy(corpus("pentax_k10d.jpg"), inbox / "download.jpg.part")
    # A real file after them: once it is done, the events of the two before it were handled too.
    shutil.copy(corpus("hopper_gray.jpg"), inbox / "marker.jpg")
    daemon.wait_event("job.done", src=inbox / "marker.jpg")
    assert sorted(p.name for p in (tmp_path / "outbox" / "archive").iterdir()) == ["marker.png"]
    (inbox / ".rsynced.bmp.a1B2c3").rename(inbox / "rsynced.bmp")
    (inbox / "download.jpg.part").rename(inbox / "download.jpg")
    daemon.wait_event("job.done", src=inbox / "download.jpg")
    daemon.wait_event("job.done", src=inbox / "rsynced.bmp")
    got = daemon.stop()
    assert [e["event"] for e in got].count("job.done") == 3
    assert done(tmp_path, "rsynced") and done(tmp_path, "download")


@pytest.mark.slow
def test_folder_moved_in_with_fifty_files(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """A whole folder moved into the root: all 50 files processed, each once."""
    config(tmp_path)
    batch = tmp_path / "batch"
    batch.mkdir()
    for i in range(50):  # distinct content: byte-identical copies would be skipped as duplicates
        Image.new("RGB", (64, 48), (i * 5, 255 - i * 5, 7)).save(batch / f"f{i:02d}.png")
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    batch.rename(tmp_path / "inbox" / "batch")
    daemon.wait(lambda: len(daemon.named("job.done")) >= 50, 180, what="50 jobs done")
    finished = [e for e in daemon.stop() if e["event"] == "job.done"]
    assert len(finished) == 50 and len({e["src"] for e in finished}) == 50
    assert len(list((tmp_path / "outbox" / "archive" / "batch").glob("*.png"))) == 50


def test_polling_root_processes_files(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """mode = poll: no inotify at all, files are found by polling and must hold still to be ready."""
    config(tmp_path, 'mode = "poll"\npoll_interval = 0.5')
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "polled.bmp")
    daemon.wait_event("job.done", src=tmp_path / "inbox" / "polled.bmp")
    got = daemon.stop()
    assert any(e["event"] == "watch.mode" and e["mode"] == "poll" for e in got)
    assert done(tmp_path, "polled")


def test_vanished_root_is_rearmed_and_rescanned(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """The watched folder disappears (unmounted share) and comes back: logged, re-armed, rescanned."""
    config(tmp_path)
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    shutil.rmtree(tmp_path / "inbox")
    daemon.wait_event("watch.lost")
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "back.bmp")
    daemon.wait_event("watch.rearmed")
    daemon.wait_event("job.done", src=tmp_path / "inbox" / "back.bmp")
    assert done(tmp_path, "back")
    daemon.stop()


INOTIFY_LIMIT = """
import subprocess, sys
from pathlib import Path
Path("/proc/sys/user/max_inotify_watches").write_text("2\\n")
import signal, time
daemon = subprocess.Popen([sys.executable, "-m", "hotfolder", "run", "--log-format", "json"], cwd=sys.argv[1])
time.sleep(int(sys.argv[2]))
daemon.send_signal(signal.SIGTERM)
sys.exit(daemon.wait(timeout=60))
"""


@pytest.mark.slow
def test_inotify_limit_falls_back_to_polling(tmp_path: Path) -> None:
    """With max_inotify_watches = 2 (own user namespace), the recursive root is polled and still works."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-Ur", "true"], check=False).returncode:
        pytest.skip("the kernel forbids user namespaces here")
    config(tmp_path, "poll_interval = 0.5")
    for sub in ("a", "b", "c"):
        (tmp_path / "inbox" / sub).mkdir()
    script = tmp_path / "limit.py"
    script.write_text(textwrap.dedent(INOTIFY_LIMIT))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    proc = subprocess.Popen(
        ["unshare", "-Ur", sys.executable, str(script), str(tmp_path), "15"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def feed() -> None:
        time.sleep(6)
        shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "b" / "limited.bmp")

    threading.Thread(target=feed, daemon=True).start()
    out, err = proc.communicate(timeout=120)
    got = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    limits = [e for e in got if e["event"] == "watch.inotify_limit"]
    assert limits and "max_user_watches" in str(limits[0]["error"]), err[-1500:]
    assert any(e["event"] == "watch.mode" for e in got)
    assert (tmp_path / "outbox" / "archive" / "b" / "limited.png").exists()


def test_a_root_replaced_under_the_daemon_is_seen_and_rearmed(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """Issue 28, case 5: `mv inbox inbox.2024 && mkdir inbox` while the daemon runs (its observer still
    watches the old folder, alive and well): `watch.lost` within the supervisor's seconds, re-armed, and
    a file put in the new folder is processed (the daemon went deaf, saying "watched")."""
    config(tmp_path)
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    (tmp_path / "inbox").rename(tmp_path / "inbox.2024")
    (tmp_path / "inbox").mkdir()
    lost = daemon.wait_event("watch.lost", 15)
    assert "replaced" in str(lost["error"])
    daemon.wait_event("watch.rearmed", 15)
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "after.bmp")
    daemon.wait_event("job.done", 30, src=tmp_path / "inbox" / "after.bmp")
    live = json.loads((tmp_path / ".hotfolder" / "live.json").read_text())
    assert [w["up"] for w in live["watches"]] == [True]
    daemon.stop()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nsenter") is None, reason="needs root and nsenter")
def test_a_filesystem_mounted_on_the_root_after_start_is_watched(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """A share mounted on the watched folder after the daemon started (a boot-order mistake): seen as
    another filesystem, re-armed on it, and a file written to the share is processed. The daemon runs
    in a mount namespace of its own, where the test mounts a tmpfs on its inbox."""
    config(tmp_path)
    daemon = DaemonProcess(tmp_path, prefix=("unshare", "-m", "--propagation", "private"))
    daemons.append(daemon)
    daemon.started()
    inside = ["nsenter", "-t", str(daemon.proc.pid), "-m"]  # unshare execs the daemon: the same pid
    subprocess.run(
        [*inside, "mount", "-t", "tmpfs", "-o", "size=16m", "share", str(tmp_path / "inbox")], check=True
    )
    daemon.wait_event("watch.rearmed", 15)
    assert "another filesystem" in str(daemon.named("watch.lost")[0]["error"])
    share = str(tmp_path / "inbox" / "share.bmp")
    subprocess.run([*inside, "cp", str(corpus("hopper.bmp")), share], check=True)
    daemon.wait_event("job.done", 30)
    daemon.stop()
