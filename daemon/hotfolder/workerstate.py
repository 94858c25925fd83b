"""The state a worker touches directly: {seq} counters and the content-hash lookup.

Workers never write the daemon's records (the daemon does, from each job's outcome); these
are the two places where a job needs the state folder while it runs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

SEQ_SCHEMA: Final = "CREATE TABLE IF NOT EXISTS seq (rule TEXT PRIMARY KEY, n INTEGER NOT NULL)"
CLAIMS_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS claims (sha256 TEXT NOT NULL, output TEXT NOT NULL, path TEXT NOT NULL,"
    " PRIMARY KEY (sha256, output))"
)


def _connect(state_dir: Path) -> sqlite3.Connection:
    state_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(state_dir / "ledger.sqlite3", timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(CLAIMS_SCHEMA)
    return db


def claimed(state_dir: Path, sha256: str, output: str) -> Path | None:
    """The name this input's output took (or was about to take) in an earlier, interrupted run."""
    db = _connect(state_dir)
    try:
        row = db.execute(
            "SELECT path FROM claims WHERE sha256 = ? AND output = ?", (sha256, output)
        ).fetchone()
    finally:
        db.close()
    return Path(row[0]) if row else None


def claim(state_dir: Path, sha256: str, output: str, path: Path) -> None:
    """Record the name an output is about to take, before the rename that takes it (crash-safe)."""
    db = _connect(state_dir)
    try:
        db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", (sha256, output, str(path)))
    finally:
        db.close()


def done_with_hash(state_dir: Path, sha256: str, path: Path) -> Path | None:
    """Another input already done with exactly these bytes (read from a worker)."""
    db_path = state_dir / "ledger.sqlite3"
    if not db_path.exists():
        return None
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute(
            "SELECT path FROM inputs WHERE sha256 = ? AND status = 'done' AND path != ? LIMIT 1",
            (sha256, str(path)),
        ).fetchone()
    except sqlite3.OperationalError:
        return None  # an old ledger before the first migration ran: nothing to compare with
    finally:
        db.close()
    return Path(row[0]) if row else None


def next_seq(state_dir: Path, rule: str) -> int:
    """Count one more for a rule's {seq}; in SQLite so it survives restarts and is safe across workers."""
    state_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(state_dir / "ledger.sqlite3", timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(SEQ_SCHEMA)
        db.execute("BEGIN IMMEDIATE")  # one writer at a time: no two workers get the same number
        db.execute("INSERT INTO seq VALUES (?, 0) ON CONFLICT(rule) DO NOTHING", (rule,))
        (n,) = db.execute("UPDATE seq SET n = n + 1 WHERE rule = ? RETURNING n", (rule,)).fetchone()
        db.execute("COMMIT")
        return int(n)
    finally:
        db.close()
