"""The daemon's live values in state_dir/live.json, rewritten whole (temp file + rename) every few
seconds: what the ledger cannot know (pending, in flight, each watch's health, the last heartbeat), for
`hotfolder serve` and anyone else who reads it. One owner for its name and its fields."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

LIVE_NAME: Final = "live.json"
WRITE_SECONDS: Final = 0.5  # how often the daemon looks whether it changed (and a terminal's line does)
# Unchanged, it is rewritten this often all the same: the heartbeat (an idle daemon writes 8,640 small
# files a day instead of 172,800 at every look).
HEARTBEAT_SECONDS: Final = 10.0
# A daemon that has not rewritten the file for this long is not alive (at least every HEARTBEAT_SECONDS).
STALE_SECONDS: Final = 30.0


@dataclass(frozen=True)
class WatchHealth:
    """One watch as the daemon sees it: watched now, or lost since a wall-clock time."""

    name: str
    path: str
    up: bool
    lost_since: float | None = None  # time.time() when it was found lost


@dataclass(frozen=True)
class Live:
    """A snapshot of the running daemon."""

    pid: int
    started: float  # wall clock, seconds
    heartbeat: float  # wall clock when this snapshot was written
    state: str  # running, stopping, stopped, failed
    pending: int = 0  # everything not finished: queued, settling, waiting to retry, in flight
    queued: int = 0  # arrivals waiting for the dispatcher plus jobs waiting for a worker
    in_flight: tuple[tuple[str, float], ...] = ()  # (source, seconds running)
    counts: dict[str, int] = field(default_factory=dict)  # this run's tallies
    watches: tuple[WatchHealth, ...] = ()
    error: str | None = None  # why it stopped, when it stopped on an error
    problems: tuple[str, ...] = ()  # why it cannot go on now, while it waits (no workers, state disk full)

    def alive(self, now: float | None = None) -> bool:
        """Running, and the snapshot is fresh."""
        now = time.time() if now is None else now
        return self.state in ("running", "stopping") and now - self.heartbeat < STALE_SECONDS


# live.json is allocated this large once and rewritten in place: on a full state disk (the very moment the
# page must say "state disk full") a temp file and a rename need a new block, an in-place write does not.
# A snapshot is ~1 KB (4 KB with 40 jobs in flight); the blanks after the JSON are valid JSON whitespace.
LIVE_BYTES: Final = 64 << 10


def write(state_dir: Path, live: Live) -> None:
    """Rewrite live.json in place, in one write, padded with blanks to its allocated size; not synced (a
    status that a crash loses is rewritten at the next start)."""
    data = json.dumps(asdict(live)).encode()
    fd = os.open(state_dir / LIVE_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(fd).st_size
        room = max(size, LIVE_BYTES, len(data))
        if size < room:
            with contextlib.suppress(OSError):  # a filesystem without fallocate: the write allocates
                os.posix_fallocate(fd, 0, room)
        os.pwrite(fd, data + b" " * (room - len(data)), 0)
    finally:
        os.close(fd)


def read(state_dir: Path) -> Live | None:
    """The last snapshot, or None when there is none (never started here) or it is unreadable."""
    data: dict[str, Any] | None = None
    for _ in range(3):  # a read that met a rewrite half done (in place, one write): read it again
        try:
            data = json.loads((state_dir / LIVE_NAME).read_text(encoding="utf-8"))
            break
        except ValueError:
            time.sleep(0.01)
        except OSError:
            return None
    if data is None:
        return None
    with contextlib.suppress(TypeError, KeyError, ValueError):
        data["watches"] = tuple(WatchHealth(**w) for w in data.get("watches", ()))
        data["in_flight"] = tuple((str(s), float(t)) for s, t in data.get("in_flight", ()))
        data["problems"] = tuple(str(p) for p in data.get("problems", ()))
        return Live(**data)
    return None
