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

from .errors import ConfigError, LockHeldError, Problem
from .fsinfo import filesystem_type, is_network_fs
from .pipeline import Outcome
from .workerstate import SEQ_SCHEMA

SCHEMA_VERSION: Final = 3
# Each entry brings the schema from version i to i + 1; a ledger is migrated in place at open.
_MIGRATIONS: Final = (
    """
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
    """,
    """
    ALTER TABLE inputs ADD COLUMN watch TEXT;
    ALTER TABLE inputs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE inputs ADD COLUMN first_seen TEXT;
    ALTER TABLE inputs ADD COLUMN quarantined_to TEXT;
    ALTER TABLE inputs ADD COLUMN original TEXT;
    CREATE INDEX IF NOT EXISTS inputs_sha256 ON inputs (sha256) WHERE status = 'done';
    """,
    """
    ALTER TABLE inputs ADD COLUMN orientation INTEGER;
    """,
)
# Statuses that end an input's story: a restart skips these when the file is unchanged.
FINAL: Final = ("done", "quarantined", "unmatched", "duplicate")


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
        kind = filesystem_type(state_dir)
        if is_network_fs(kind):
            why = f"state_dir {state_dir} is on a {kind} filesystem, where SQLite locking is unreliable"
            raise ConfigError([Problem(None, why + "; put it on a local disk", key="state_dir")])
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
            state_dir / "ledger.sqlite3", check_same_thread=False, isolation_level=None, timeout=30
        )
        self._mutex = threading.Lock()
        with self._mutex:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise LockHeldError(f"ledger in {state_dir} has schema {version}, newer than this hotfolder")
            for step in _MIGRATIONS[version:]:
                self._db.executescript(
                    f"BEGIN; {step} PRAGMA user_version={_MIGRATIONS.index(step) + 1}; COMMIT;"
                )
            self._db.execute(SEQ_SCHEMA)

    def is_handled(self, path: Path, identity: Identity) -> bool:
        """Whether this very file (same path and identity) already reached a final state."""
        with self._mutex:
            row = self._db.execute(
                "SELECT dev, ino, size, mtime_ns, status FROM inputs WHERE path = ?", (str(path),)
            ).fetchone()
        return row is not None and Identity(*row[:4]) == identity and row[4] in FINAL

    def record(
        self, outcome: Outcome, identity: Identity, *, watch: str | None = None, attempts: int = 0
    ) -> None:
        """Store what happened to one input (replacing what was known of that path)."""
        outputs = json.dumps([str(w.dst) for w in outcome.written])
        now = datetime.now(UTC).isoformat(timespec="seconds")
        moved = str(outcome.quarantined_to) if outcome.quarantined_to else None
        with self._mutex:
            self._db.execute(
                """INSERT INTO inputs (path, dev, ino, size, mtime_ns, sha256, rule, status, outputs, error,
                       updated, watch, attempts, first_seen, quarantined_to, original, orientation)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(path) DO UPDATE SET dev=excluded.dev, ino=excluded.ino, size=excluded.size,
                       mtime_ns=excluded.mtime_ns, sha256=excluded.sha256, rule=excluded.rule,
                       status=excluded.status, outputs=excluded.outputs, error=excluded.error,
                       updated=excluded.updated, watch=excluded.watch, attempts=excluded.attempts,
                       quarantined_to=excluded.quarantined_to, original=excluded.original,
                       orientation=excluded.orientation""",
                (str(outcome.src), identity.dev, identity.ino, identity.size, identity.mtime_ns,
                 outcome.sha256, outcome.rule, outcome.status, outputs, outcome.error, now, watch, attempts,
                 now, moved, outcome.original, outcome.orientation),
            )  # fmt: skip

    def counts(self) -> dict[str, int]:
        """How many inputs are in each status."""
        with self._mutex:
            return dict(self._db.execute("SELECT status, count(*) FROM inputs GROUP BY status").fetchall())

    def summary(self) -> list[tuple[str, str, int]]:
        """(watch, status, count) over the whole ledger."""
        with self._mutex:
            rows = self._db.execute(
                "SELECT coalesce(watch, '-'), status, count(*) FROM inputs GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall()
        return [(str(w), str(s), int(n)) for w, s, n in rows]

    def quarantined(self) -> list[tuple[Path, Path]]:
        """(original path, where it is now) for every quarantined input."""
        with self._mutex:
            rows = self._db.execute(
                "SELECT path, quarantined_to FROM inputs"
                " WHERE status = 'quarantined' AND quarantined_to IS NOT NULL"
            ).fetchall()
        return [(Path(a), Path(b)) for a, b in rows]

    def mark(self, path: Path, status: str) -> None:
        """Set one input's status (retry re-queues a quarantined input)."""
        with self._mutex:
            self._db.execute(
                "UPDATE inputs SET status = ?, quarantined_to = NULL WHERE path = ?", (status, str(path))
            )

    def close(self) -> None:
        with self._mutex:
            self._db.close()
