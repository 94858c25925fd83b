"""A real watchdog observer on a temp folder: arrivals are recorded on close and on move-in."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotfolder.arrive.ignore import Ignore
from hotfolder.arrive.queue import Arrival, ReadyQueue
from hotfolder.arrive.scan import scan
from hotfolder.arrive.watch import start_observer
from hotfolder.settings.watches import Watch


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, ReadyQueue]]:
    root = tmp_path / "inbox"
    ready = ReadyQueue()
    observer = start_observer(Watch(path=root, name="inbox"), ready)
    try:
        yield root, ready
    finally:
        observer.stop()
        observer.join(timeout=5)


def drain(ready: ReadyQueue, seconds: float = 2.0) -> list[Arrival]:
    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        item = ready.pop(timeout=0.1)
        if item is not None:
            got.append(item)
    return got


def test_file_is_ready_only_after_close(watched: tuple[Path, ReadyQueue]) -> None:
    """A file being written is only tentative (must settle) until it is closed."""
    root, ready = watched
    fp = (root / "a.jpg").open("wb")
    fp.write(b"x" * 10000)
    fp.flush()
    assert [(a.path, a.settle) for a in drain(ready, 0.5)] == [(root / "a.jpg", True)]
    fp.close()
    assert [(a.path, a.settle) for a in drain(ready, 1.0)] == [(root / "a.jpg", False)]


def test_rename_into_place_is_an_arrival(watched: tuple[Path, ReadyQueue], tmp_path: Path) -> None:
    """A file moved into the root (rsync style temp then rename) arrives under its final name."""
    root, ready = watched
    outside = tmp_path / "x.part"
    outside.write_bytes(b"data")
    drain(ready, 0.3)
    outside.rename(root / "b.jpg")
    assert [(a.path, a.settle) for a in drain(ready, 1.0)] == [(root / "b.jpg", False)]


def test_folder_moved_in_is_reported_as_folder(watched: tuple[Path, ReadyQueue], tmp_path: Path) -> None:
    """A whole folder moved in is one arrival to scan."""
    root, ready = watched
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "1.jpg").write_bytes(b"1")
    folder.rename(root / "batch")
    got = drain(ready, 1.0)
    assert (root / "batch", True) in [(a.path, a.is_folder) for a in got]


def test_queue_deduplicates_paths() -> None:
    """A path reported twice while it waits is dispatched once."""
    ready = ReadyQueue()
    w = Watch(path=Path("/r"), name="r")
    ready.put(Arrival(w, Path("/r/a")))
    ready.put(Arrival(w, Path("/r/a")))
    assert len(ready) == 1


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("photo.jpg.part", id="browser_part"),
        pytest.param("photo.jpg.crdownload", id="chrome"),
        pytest.param(".photo.jpg.a1B2c3", id="rsync_temp"),
        pytest.param("._photo.jpg", id="apple_double"),
        pytest.param(".DS_Store", id="ds_store"),
        pytest.param("Thumbs.db", id="thumbs"),
        pytest.param(".syncthing.photo.jpg.tmp", id="syncthing"),
        pytest.param(".photo.png.hf-1a2b3c4d.tmp", id="our_temp"),
    ],
)
def test_ignored_names(name: str) -> None:
    """Uploader, sync-tool and OS temp names are never inputs."""
    assert Ignore()(name)


def test_scan_lists_regular_files_sorted_without_ignored(tmp_path: Path) -> None:
    """The startup scan finds files in subfolders, skips ignored names and symlinks."""
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.jpg", "sub/c.png", "x.part"):
        (tmp_path / name).write_bytes(b"1")
    (tmp_path / "link.jpg").symlink_to(tmp_path / "a.jpg")
    found = [p.relative_to(tmp_path).as_posix() for p in scan(tmp_path, recursive=True, ignore=Ignore())]
    assert found == ["a.jpg", "b.jpg", "sub/c.png"]


def test_a_wake_ends_the_dispatchers_wait_and_keeps_arrivals(tmp_path: Path) -> None:
    """wake() (a job finished) returns a waiting pop at once, and the next pop if none waits yet; an
    arrival queued meanwhile is still handed out, once."""
    ready = ReadyQueue()
    threading.Timer(0.05, ready.wake).start()
    started = time.monotonic()
    assert ready.pop(timeout=60) is None
    assert time.monotonic() - started < 30, "pop waited out its timeout: the wake was not heard"
    ready.wake()  # nobody waits: the next pop returns at once
    started = time.monotonic()
    assert ready.pop(timeout=60) is None and time.monotonic() - started < 30
    arrival = Arrival(Watch(path=tmp_path, name="in"), tmp_path / "a.jpg")
    ready.put(arrival)
    ready.wake()
    assert ready.pop(timeout=60) == arrival
    assert ready.pop(timeout=0.01) is None
