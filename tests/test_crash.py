"""Crash safety and load, with the real daemon: kill -9 at random moments while files flow, and a
2,000-file burst. Slow: run by `make test-slow` (and so by CI)."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import DaemonProcess, shared

pytestmark = pytest.mark.slow


def spawn(cwd: Path, log: Path, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The daemon, started again and again into one log (the kill loops read it whole)."""
    return DaemonProcess(cwd, env=extra, log=log).proc


def make_images(folder: Path, n: int, size: tuple[int, int] = (96, 64)) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        p = folder / f"img{i:04d}.png"
        Image.new("RGB", size, (i % 256, (i // 256) * 40 % 256, 99)).save(p)
        paths.append(p)
    return paths


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total / 1024


def processes_in(folder: Path) -> list[int]:
    """PIDs whose working directory is `folder` (a daemon or worker left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cwd").readlink() == folder:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class Reader(threading.Thread):
    """Polls every output name while the daemon runs: a partial file must never be visible."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.stop, self.checked, self.bad = root, threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            for p in list(self.root.rglob("*")) if self.root.exists() else []:
                if not p.is_file() or ".hf-" in p.name:
                    continue
                try:
                    with Image.open(p) as im:
                        im.load()
                    self.checked += 1
                except FileNotFoundError:
                    continue
                except Exception as exc:
                    self.bad.append(f"{p}: {exc}")
            time.sleep(0.05)


def test_kill_9_loop_leaves_no_partial_output_and_no_duplicate(tmp_path: Path) -> None:
    """20 kills at random moments while 300 files flow: every input ends with exactly its two
    outputs, every output decodes, no temp file, no orphan worker, one ledger row per input, and
    no partial file was ever visible under an output name."""
    rng = random.Random(20261121)
    sources = make_images(tmp_path / "staging", 300)
    (tmp_path / "inbox").mkdir()
    log = tmp_path / "daemon.log"
    reader = Reader(tmp_path / "outbox")
    reader.start()

    def feed() -> None:
        for src in sources:
            (tmp_path / "inbox" / src.name).write_bytes(src.read_bytes())
            time.sleep(0.04)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    kills = 0
    proc = spawn(tmp_path, log)
    while kills < 20:
        time.sleep(rng.uniform(0.3, 1.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        proc = spawn(tmp_path, log)
    feeder.join()
    deadline = time.monotonic() + 300
    archive, web = tmp_path / "outbox" / "archive", tmp_path / "outbox" / "web"
    while time.monotonic() < deadline:
        if (
            archive.exists()
            and web.exists()
            and len(list(archive.iterdir())) >= 300
            and len(list(web.iterdir())) >= 300
        ):
            break
        time.sleep(0.5)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    reader.stop.set()
    reader.join(timeout=10)
    time.sleep(1)
    names = sorted(p.stem for p in sources)
    assert sorted(p.name for p in archive.iterdir()) == [
        f"{n}.png" for n in names
    ]  # none twice, none missing
    assert sorted(p.name for p in web.iterdir()) == [f"{n}.jpg" for n in names]
    for p in (*archive.iterdir(), *web.iterdir()):
        with Image.open(p) as im:
            im.load()
    assert not [p for p in tmp_path.rglob("*") if ".hf-" in p.name], "temp files left"
    assert not reader.bad, reader.bad[:5]
    assert not processes_in(tmp_path), "a daemon or worker outlived the test"
    db = sqlite3.connect(tmp_path / ".hotfolder" / "ledger.sqlite3")
    rows = db.execute("SELECT path, status FROM inputs").fetchall()
    assert len(rows) == 300 and {s for _, s in rows} == {"done"}
    reads = reader.checked
    print(
        f"\nkill -9 loop: {len(sources)} files, {kills} kills, {reads} reads of outputs while running, "
        "0 partial"
    )


MOVE_RULES = """\
[[rule]]
name = "move"
original = "move"
original_path = "done/{name}"
[[rule.output]]
format = "png"
path = "archive/{stem}.png"
[[rule.output]]
format = "jpeg"
max_edge = 48
path = "web/{stem}.jpg"
"""


def agreement(root: Path, sha_of: dict[str, str]) -> int:
    """Ledger, outputs and originals tell the same story; returns how many inputs are done.

    No commit is left open; every done row's outputs exist and its original is in done/ with the
    bytes that were read; every visible output and every filed original belongs to a done row."""
    db = sqlite3.connect(root / "state" / "ledger.sqlite3")
    try:
        assert db.execute("SELECT count(*) FROM intents").fetchone()[0] == 0, "a commit left open"
        rows = db.execute("SELECT path, status, outputs, original FROM inputs").fetchall()
    finally:
        db.close()
    outputs, filed = set(), set()
    for path, status, written, original in rows:
        assert status == "done", (path, status, original)
        for out in json.loads(written):
            assert Path(out).is_file(), f"recorded output missing: {out}"
            outputs.add(out)
        assert Path(original).is_file() and not Path(path).exists(), (path, original)
        assert hashlib.sha256(Path(original).read_bytes()).hexdigest() == sha_of[Path(path).name]
        filed.add(original)
    visible = {str(p) for p in (root / "outbox").rglob("*") if p.is_file() and ".hf-" not in p.name}
    assert visible == outputs | filed, sorted(visible ^ (outputs | filed))[:5]
    return len(rows)


def test_kill_9_inside_commits_keeps_ledger_outputs_and_originals_in_agreement(tmp_path: Path) -> None:
    """Originals moved: 16 kills, half at random moments, half at a named point of a commit (after
    the intent, after the renames, after the disposal of the original, before the ledger write). After
    every restart, and at the end, the ledger, the outputs and the originals agree."""
    rng = random.Random(20261201)
    sources = make_images(tmp_path / "staging", 150)
    sha_of = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sources}
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.toml").write_text(MOVE_RULES)
    (tmp_path / "hotfolder.toml").write_text(
        'rules = ["rules/*.toml"]\noutput_root = "outbox"\nstate_dir = "state"\nworkers = 2\n'
        '[[watch]]\npath = "inbox"\n'
    )
    (tmp_path / "inbox").mkdir()
    log = tmp_path / "daemon.log"

    def feed() -> None:
        for src in sources:
            (tmp_path / "inbox" / src.name).write_bytes(src.read_bytes())
            time.sleep(0.12)  # arrivals through most of the 16 starts: a named point needs a commit to come

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    points = ["after-intent", "after-renames", "after-disposal"]
    faults = 0
    for kill in range(16):
        flag = tmp_path / "recovered"
        env = {"HOTFOLDER_TEST_PAUSE_AT": "recovered", "HOTFOLDER_TEST_PAUSE_FILE": str(flag)}
        if kill % 2:
            env["HOTFOLDER_TEST_KILL_AT"] = f"{points[kill % 3]}:{rng.randint(1, 6)}"
        proc = spawn(tmp_path, log, env)
        deadline = time.monotonic() + 60
        while not flag.exists():  # paused once the interrupted commits are finished, before any new one
            if proc.poll() is not None:
                break
            assert time.monotonic() < deadline, "the daemon never finished its recovery"
            time.sleep(0.02)
        if proc.returncode is not None:
            # Finishing a commit the last kill interrupted passes the same named points: a kill there
            # is the injected fault, during the recovery itself; the next start finishes it again.
            assert "HOTFOLDER_TEST_KILL_AT" in env and proc.returncode == -signal.SIGKILL, "died at start"
            faults += 1
            continue
        agreement(tmp_path, sha_of)
        flag.unlink()
        if "HOTFOLDER_TEST_KILL_AT" in env:
            try:
                proc.wait(timeout=30)  # it kills itself at the named point
                faults += 1
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            time.sleep(rng.uniform(0.2, 1.0))
            proc.kill()
            proc.wait()
    feeder.join()
    started = log.read_text(errors="replace").count('"daemon.started"')
    proc = spawn(tmp_path, log)
    deadline = time.monotonic() + 300
    # Started first (its SIGTERM handler installed): the inbox may be empty already.
    while log.read_text(errors="replace").count('"daemon.started"') == started:
        assert proc.poll() is None and time.monotonic() < deadline, "the last start did not come up"
        time.sleep(0.05)
    while list((tmp_path / "inbox").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    assert agreement(tmp_path, sha_of) == 150
    assert sorted(p.name for p in (tmp_path / "outbox" / "done").iterdir()) == sorted(sha_of)
    assert len(list((tmp_path / "outbox" / "archive").iterdir())) == 150
    assert not [p for p in tmp_path.rglob("*") if ".hf-" in p.name], "temp files left"
    assert faults >= 6, f"only {faults} kills at a named point"
    finished = log.read_text().count('"intent.finished"')
    print(
        f"\nkill -9 inside commits: 150 files, 16 kills ({faults} at a named point), "
        f"{finished} intents finished"
    )


def test_burst_of_2000_files(tmp_path: Path) -> None:
    """2,000 files dropped at once: all processed, none twice; peak memory of the process tree bounded."""
    (tmp_path / "inbox").mkdir()
    staging = make_images(tmp_path / "staging", 2000, size=(48, 32))
    log = tmp_path / "daemon.log"
    proc = spawn(tmp_path, log)
    time.sleep(2)
    started = time.monotonic()
    for src in staging:
        src.rename(tmp_path / "inbox" / src.name)
    peak = 0.0
    archive = tmp_path / "outbox" / "archive"
    while time.monotonic() - started < 600:
        peak = max(peak, tree_rss_mb(proc.pid))
        if archive.exists() and len(list(archive.iterdir())) >= 2000:
            break
        time.sleep(0.5)
    seconds = time.monotonic() - started
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    done = [e["src"] for e in events if e["event"] == "job.done"]
    assert len(done) == 2000 and len(set(done)) == 2000
    assert len(list(archive.iterdir())) == 2000
    print(
        f"\nburst: 2000 files in {seconds:.1f} s ({2000 / seconds:.0f} files/s), "
        f"peak RSS of the tree {peak:.0f} MB"
    )
    assert peak < 1500


def test_broken_corpus_files_are_quarantined_while_good_ones_flow(tmp_path: Path) -> None:
    """Every image of the corpus dropped at once: each broken one quarantined with a reason,
    every good one done, the daemon alive throughout."""
    (tmp_path / "inbox").mkdir()
    proc = spawn(tmp_path, tmp_path / "daemon.log")
    time.sleep(2)
    everything = [p for p in shared("corpus").iterdir() if p.suffix not in {".md", ".tsv"}]
    for p in everything:
        shutil.copy(p, tmp_path / "inbox" / p.name)
    # A zero-byte file is not an arrival: it is looked at for a minute, never quarantined.
    images = [p for p in everything if p.stat().st_size]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        events = [
            json.loads(x) for x in (tmp_path / "daemon.log").read_text().splitlines() if x.startswith("{")
        ]
        ended = {e["src"] for e in events if e["event"] in {"job.done", "job.quarantined", "file.duplicate"}}
        if len(ended) >= len(images):
            break
        assert proc.poll() is None, "the daemon died"
        time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    quarantined = {Path(e["src"]).name: e["error"] for e in events if e["event"] == "job.quarantined"}
    broken = {
        "truncated_jpeg.jpg",
        "truncated_image.png",
        "ultrahdr.jpg",
        "broken.png",
        "corrupted.hif",
        "decompression_bomb.gif",
        "65536-uint32-limit.png",
        "png_decompression_dos.png",
        "monkey12.jpg",
    }
    assert set(quarantined) == broken
    for name in broken:
        note = json.loads((tmp_path / "quarantine" / f"{name}.json").read_text())
        assert note["error"] and note["error_class"] == "InputError"
    done = {Path(e["src"]).name for e in events if e["event"] in {"job.done", "file.duplicate"}}
    assert done == {p.name for p in images} - broken
    assert (tmp_path / "inbox" / "empty.heic").exists()
