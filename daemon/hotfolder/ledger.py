"""SQLite state in state_dir: what was seen and done, and the single-instance lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from .errors import LockHeldError
from .pipeline import Outcome

SCHEMA_VERSION: Final = 1
_SEQ_SCHEMA: Final = "CREATE TABLE IF NOT EXISTS seq (rule TEXT PRIMARY KEY, n INTEGER NOT NULL)"
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS inputs (
    path      TEXT PRIMARY KEY,
    dev       INTEGER NOT NULL,
    ino       INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    sha256    TEXT,
    rule      TEXT,
    status    TEXT NOT NULL,
    outputs   TEXT NOT NULL DEFAULT '[]',
    error     TEXT,
    updated   TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Identity:
    """The fast identity of a file: it changes when the file is replaced or edited."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Lock:
    """An exclusive flock on state_dir/lock; the descriptor is close-on-exec, so no child holds it."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(self._fd)
            raise LockHeldError(
                f"state folder {state_dir} is in use by hotfolder (pid {holder}); one daemon per state_dir"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class Ledger:
    """Remembers every input's identity and outcome; safe to call from several threads."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            state_dir / "ledger.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._mutex = threading.Lock()
        with self._mutex:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def is_handled(self, path: Path, identity: Identity) -> bool:
        """Whether this very file (same path and identity) was already done, quarantined or skipped."""
        with self._mutex:
            row = self._db.execute(
                "SELECT dev, ino, size, mtime_ns FROM inputs WHERE path = ?", (str(path),)
            ).fetchone()
        return row is not None and Identity(*row) == identity

    def record(self, outcome: Outcome, identity: Identity) -> None:
        """Store what happened to one input (replacing what was known of that path)."""
        outputs = json.dumps([str(w.dst) for w in outcome.written])
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._mutex:
            self._db.execute(
                "INSERT OR REPLACE INTO inputs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (str(outcome.src), identity.dev, identity.ino, identity.size, identity.mtime_ns,
                 outcome.sha256, outcome.rule, outcome.status, outputs, outcome.error, now),
            )  # fmt: skip

    def counts(self) -> dict[str, int]:
        """How many inputs are in each status."""
        with self._mutex:
            return dict(self._db.execute("SELECT status, count(*) FROM inputs GROUP BY status").fetchall())

    def close(self) -> None:
        with self._mutex:
            self._db.close()


def next_seq(state_dir: Path, rule: str) -> int:
    """Count one more for a rule's {seq}; in SQLite so it survives restarts and is safe across workers."""
    state_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(state_dir / "ledger.sqlite3", timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SEQ_SCHEMA)
        db.execute("BEGIN IMMEDIATE")  # one writer at a time: no two workers get the same number
        db.execute("INSERT INTO seq VALUES (?, 0) ON CONFLICT(rule) DO NOTHING", (rule,))
        (n,) = db.execute("UPDATE seq SET n = n + 1 WHERE rule = ? RETURNING n", (rule,)).fetchone()
        db.execute("COMMIT")
        return int(n)
    finally:
        db.close()
