"""The stability rule for files with no close event: ready once size and mtime hold still."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hotfolder.arrive.queue import Arrival
from hotfolder.arrive.settle import Settler
from hotfolder.settings.watches import Watch


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_file_is_ready_after_holding_still(tmp_path: Path) -> None:
    """Unchanged across two looks a quiet period apart: ready; still growing: not yet."""
    clock = Clock()
    settler = Settler(quiet=1.0, clock=clock)
    f = tmp_path / "a.jpg"
    f.write_bytes(b"1")
    settler.track(Arrival(Watch(tmp_path, "t"), f))
    assert settler.due() == []
    clock.now = 1.5
    with f.open("ab") as fp:
        fp.write(b"more")
    assert settler.due() == []  # it changed: the quiet period starts again
    clock.now = 2.0
    assert settler.due() == []
    clock.now = 2.6
    assert [a.path for a in settler.due()] == [f]
    assert len(settler) == 0


def test_vanished_file_is_forgotten(tmp_path: Path) -> None:
    """A pending file that disappears leaves the tracker without becoming ready."""
    clock = Clock()
    settler = Settler(quiet=1.0, clock=clock)
    f = tmp_path / "a.jpg"
    f.write_bytes(b"1")
    settler.track(Arrival(Watch(tmp_path, "t"), f))
    f.unlink()
    clock.now = 5
    assert settler.due() == [] and len(settler) == 0


def test_close_event_makes_tracking_unnecessary(tmp_path: Path) -> None:
    """forget() drops a file that became ready through a close event."""
    settler = Settler(quiet=1.0, clock=Clock())
    f = tmp_path / "a.jpg"
    f.write_bytes(b"1")
    settler.track(Arrival(Watch(tmp_path, "t"), f))
    settler.forget(f)
    assert len(settler) == 0


def test_a_file_that_held_still_before_the_first_look_is_ready_at_once(tmp_path: Path) -> None:
    """A photo already waiting when the daemon starts: unchanged (mtime and ctime) for the quiet
    period is ready at the first look; one whose mtime a copy tool set back (cp -p, rsync) but whose
    ctime is fresh waits as any other."""
    waiting, copied = tmp_path / "waiting.jpg", tmp_path / "copied.jpg"
    waiting.write_bytes(b"1")
    copied.write_bytes(b"1")
    os.utime(copied, (time.time() - 3600, time.time() - 3600))  # an old mtime, restored by the copy
    # The wall clock 5 s ahead: everything written now looks 5 s old, except a ctime made after it.
    later = time.time() + 5
    settler = Settler(quiet=1.0, clock=Clock(), wall=lambda: later)
    assert settler.track(Arrival(Watch(tmp_path, "t"), waiting)) is True
    assert len(settler) == 0
    settler = Settler(quiet=1.0, clock=Clock())  # the real wall clock: copied's ctime is a moment ago
    assert settler.track(Arrival(Watch(tmp_path, "t"), copied)) is False
    assert len(settler) == 1
