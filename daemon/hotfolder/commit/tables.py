"""The ledger's tables and their migrations: one place owns the schema (inputs, intents, counters,
and the groups and cluster state later features add), migrated in place at open."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from hotfolder.errors import LockHeldError

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
    # 4: the commit intents (written before the first rename, so a crash is finished, never
    # redone); {seq} counters and duplicates by content per rule chain, kept by the daemon only
    # (workers used to open this file); the quarantine note's path; the rule set an 'unmatched'
    # verdict was reached with (a rules change re-offers those files).
    """
    ALTER TABLE inputs ADD COLUMN chain TEXT;
    ALTER TABLE inputs ADD COLUMN rules_fp TEXT;
    ALTER TABLE inputs ADD COLUMN note TEXT;
    CREATE INDEX IF NOT EXISTS inputs_size ON inputs (size) WHERE status = 'done';
    CREATE TABLE IF NOT EXISTS seq (rule TEXT PRIMARY KEY, n INTEGER NOT NULL);
    DROP TABLE IF EXISTS claims;
    CREATE TABLE IF NOT EXISTS intents (
        id        INTEGER PRIMARY KEY,
        path      TEXT NOT NULL,
        dev       INTEGER NOT NULL,
        ino       INTEGER NOT NULL,
        size      INTEGER NOT NULL,
        mtime_ns  INTEGER NOT NULL,
        sha256    TEXT NOT NULL,
        token     TEXT NOT NULL,
        plan      TEXT NOT NULL,
        record    TEXT NOT NULL,
        opened    TEXT NOT NULL
    );
    """,
    # 5: a done picture's companions and what became of each (groups, and late companions' way).
    """
    ALTER TABLE inputs ADD COLUMN companions TEXT NOT NULL DEFAULT '[]';
    """,
    # 6: how long each job took (the status page's job-seconds histogram), and the index the page's
    # "last 100 jobs" and 24-hour plot read by.
    """
    ALTER TABLE inputs ADD COLUMN ms REAL;
    CREATE INDEX IF NOT EXISTS inputs_updated ON inputs (updated);
    """,
    # 7: every job's outcome as it happened (an input's row keeps only its latest): the 24-hour plot
    # counts a failure that a retry later mended, and a file done twice. Kept HISTORY_DAYS.
    """
    CREATE TABLE IF NOT EXISTS history (
        at        TEXT NOT NULL,
        status    TEXT NOT NULL,
        watch     TEXT,
        rule      TEXT,
        ms        REAL
    );
    CREATE INDEX IF NOT EXISTS history_at ON history (at);
    """,
    # 8: inputs by status (rowid order within one): the page lists 100 quarantined inputs of 50,000 and
    # finds one by id without reading every row. Names that are not UTF-8 need no change of schema: they
    # are stored as BLOBs of their exact bytes (ledger.py), and this release reads the rows before it.
    """
    CREATE INDEX IF NOT EXISTS inputs_status ON inputs (status);
    """,
    # 9: the events outbox ([[event]] sinks): a row per announcement still to deliver, written in the
    # transaction that records its job, deleted once the sink accepted it (a batch sink: one row,
    # `count` jobs, `version` bumped by each). Per sink: what was delivered and dropped, and since when
    # it fails.
    """
    CREATE TABLE IF NOT EXISTS outbox (
        id        INTEGER PRIMARY KEY,
        sink      TEXT NOT NULL,
        event_id  TEXT NOT NULL,
        body      TEXT NOT NULL,
        created   REAL NOT NULL,
        updated   REAL NOT NULL,
        count     INTEGER NOT NULL DEFAULT 1,
        version   INTEGER NOT NULL DEFAULT 1,
        batch     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS outbox_sink ON outbox (sink, id);
    CREATE TABLE IF NOT EXISTS sinks (
        sink          TEXT PRIMARY KEY,
        pending       INTEGER NOT NULL DEFAULT 0,
        delivered     INTEGER NOT NULL DEFAULT 0,
        dropped       INTEGER NOT NULL DEFAULT 0,
        failing_since REAL,
        last_error    TEXT
    );
    """,
)
HISTORY_DAYS: Final = 8  # the plot shows 24 hours; a week more for whoever queries the ledger
SCHEMA_VERSION: Final = len(_MIGRATIONS)


def migrate(db: sqlite3.Connection, where: Path) -> None:
    """Bring an open ledger to SCHEMA_VERSION, one transaction per step; refuse a newer one."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise LockHeldError(f"ledger in {where} has schema {version}, newer than this hotfolder")
    for number in range(version, SCHEMA_VERSION):
        db.executescript(f"BEGIN; {_MIGRATIONS[number]} PRAGMA user_version={number + 1}; COMMIT;")
