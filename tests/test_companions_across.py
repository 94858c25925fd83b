"""Companion groups moved to another filesystem (issue 28, case 3): the archive is a tmpfs mounted in a
mount namespace that a holder process keeps alive, so a daemon killed -9 mid-group and the next one both
see it, as on a server whose archive is another disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import rawpy

from conftest import DaemonProcess, camera, write_config
from test_companions import GROUP_RULES

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nsenter") is None, reason="needs root, unshare and nsenter"
)

# The camera group of test_companions, moved into the archive, with a short wait.
RULES = GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"').replace(
    "wait = 3", "wait = 0.3"
)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out after {seconds} s waiting for {what}"
        time.sleep(0.05)


class Site:
    """inbox on the test's disk, outbox on a tmpfs in a namespace of its own; daemons run inside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "outbox").mkdir()
        boot = f"mount -t tmpfs -o size=64m archive {root / 'outbox'} && exec sleep 600"
        self.holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", boot])
        self.inside = ["nsenter", "-t", str(self.holder.pid), "-m"]
        _until(lambda: self.run("mountpoint", "-q", str(root / "outbox")).returncode == 0, 10, "the tmpfs")
        self.logs: list[Path] = []
        self.daemons: list[subprocess.Popen[str]] = []

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.inside, *argv], capture_output=True, text=True, check=False)

    def daemon(self, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], Path]:
        """The daemon inside the namespace, with a log of its own for each start."""
        log = self.root / f"daemon-{len(self.logs)}.jsonl"
        self.logs.append(log)
        started = DaemonProcess(self.root, env=env, prefix=(*self.inside, f"--wd={self.root}"), log=log)
        self.daemons.append(started.proc)
        return started.proc, log

    def archive(self) -> dict[str, str]:
        """name -> SHA-256 of what the archive holds, seen from inside."""
        listing = self.run("sh", "-c", f"cd {self.root / 'outbox' / 'archive'} && sha256sum * 2>/dev/null")
        return {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in listing.stdout.splitlines()}

    def close(self) -> None:
        for proc in self.daemons:  # one a failed test left running (a hung stop) is not left behind
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        self.holder.kill()
        self.holder.wait(timeout=30)


def events(log: Path, name: str) -> list[dict[str, object]]:
    return [
        e
        for e in (json.loads(x) for x in log.read_text().splitlines() if x.startswith("{"))
        if e["event"] == name
    ]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = Site(tmp_path)
    try:
        yield made
    finally:
        made.close()


def _group(inbox: Path) -> dict[str, str]:
    """A RAW, its sidecar and its JPEG twin; each file's SHA-256."""
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy(camera("canon_eos_6d.dng"), inbox / "IMG_0001.dng")
    shutil.copy(camera("canon_eos_6d.xmp"), inbox / "IMG_0001.xmp")
    with rawpy.imread(str(camera("canon_eos_6d.dng"))) as raw:
        (inbox / "IMG_0001.jpg").write_bytes(raw.extract_thumb().data)
    return {p.name: _sha(p) for p in inbox.iterdir()}


def test_kill_9_between_companions_moved_to_another_filesystem(site: Site) -> None:
    """The daemon kills itself after the first companion was copied across and unlinked; the next start
    recognises that member as moved by its SHA-256 and size (a copy has another inode), moves the rest,
    and the group ends complete in the archive: nothing in the inbox, no orphan, nothing doubled."""
    sha = _group(site.root / "inbox")
    write_config(site.root, RULES)
    first, _ = site.daemon({"HOTFOLDER_TEST_KILL_AT": "between-companions:1"})
    first.wait(timeout=120)
    assert first.returncode == -signal.SIGKILL
    assert len(site.archive()) == 2 and len(list((site.root / "inbox").iterdir())) == 1  # split by the kill
    second, log = site.daemon()
    try:
        _until(
            lambda: bool(events(log, "intent.finished")) or bool(events(log, "commit.incomplete")),
            60,
            "the intent finished",
        )
        assert not events(log, "commit.incomplete"), events(log, "commit.incomplete")
        _until(lambda: not list((site.root / "inbox").iterdir()), 30, "the inbox emptied")
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert site.archive() == sha
    assert not events(log, "companion.orphan")
    status = site.run(
        sys.executable, "-m", "hotfolder", "status", "--config", str(site.root / "hotfolder.toml")
    )
    assert "0 orphans" in status.stdout and "total: done 1" in status.stdout, status.stdout + status.stderr


def test_a_companion_deleted_during_a_commit_across_filesystems_is_kept_as_gone(site: Site) -> None:
    """A sidecar removed by the user between the picture's copy and its own (the commit paused there): the
    picture is done at once, the sidecar `companion.kept` "no longer at its path", `status` says done
    (it said "nothing processed yet" while the commit retried for 13 minutes)."""
    sha = _group(site.root / "inbox")
    write_config(site.root, RULES)
    flag = site.root / "paused"
    daemon, log = site.daemon(
        {"HOTFOLDER_TEST_PAUSE_AT": "between-companions:1", "HOTFOLDER_TEST_PAUSE_FILE": str(flag)}
    )
    try:
        _until(flag.exists, 120, "the commit to pause between two companions")
        left = sorted(p.name for p in (site.root / "inbox").iterdir())
        assert len(left) == 1
        (site.root / "inbox" / left[0]).unlink()  # the user deletes the member not moved yet
        flag.unlink()
        _until(lambda: bool(events(log, "job.done")), 60, "job.done")
        kept = events(log, "companion.kept")
        assert kept and "no longer at its path" in str(kept[0]["error"]), kept
        assert not events(log, "commit.incomplete")
        status = site.run(
            sys.executable, "-m", "hotfolder", "status", "--config", str(site.root / "hotfolder.toml")
        )
        assert "total: done 1" in status.stdout, status.stdout + status.stderr
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    archived = site.archive()
    assert {k: v for k, v in sha.items() if k != left[0]} == archived
