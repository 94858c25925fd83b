"""The events outbox in the ledger: rows written in the transaction that records a job, read and
deleted by the sender once a sink accepted them; bounded per sink, every drop counted."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final

from hotfolder.commit.events import Announcement, announcements, merged
from hotfolder.commit.plan import Plan
from hotfolder.commit.records import Record
from hotfolder.settings.events import Sink

_ROW: Final = "SELECT id, sink, event_id, body, created, updated, count, version, batch FROM outbox"


@dataclass(frozen=True)
class Pending:
    """One outbox row as the sender reads it."""

    id: int
    sink: str
    event_id: str
    body: str
    created: float
    updated: float
    count: int
    version: int
    batch: bool


@dataclass(frozen=True)
class SinkState:
    """What `status`, the page and /metrics say of one sink."""

    sink: str
    pending: int
    delivered: int
    dropped: int
    failing_since: float | None
    last_error: str | None


def register(db: sqlite3.Connection, sinks: tuple[Sink, ...]) -> None:
    """A row of counters for every configured sink (kept for sinks no longer configured: their
    pending rows wait until the sink is back)."""
    db.executemany("INSERT OR IGNORE INTO sinks (sink) VALUES (?)", [(s.name,) for s in sinks])


def announce(
    db: sqlite3.Connection, sinks: tuple[Sink, ...], record: Record, plan: Plan | None, now: float
) -> int:
    """Write the record's announcements (inside the caller's transaction); returns how many rows."""
    said = announcements(sinks, record, plan, now=now)
    by_name = {s.name: s for s in sinks}
    for a in said:
        if a.batch:
            _add_to_batch(db, a, now)
        else:
            _add(db, a, by_name[a.sink].max_pending, now)
    return len(said)


def _add_to_batch(db: sqlite3.Connection, a: Announcement, now: float) -> None:
    row = db.execute("SELECT id, body FROM outbox WHERE sink = ? AND batch = 1", (a.sink,)).fetchone()
    if row is None:
        db.execute(
            "INSERT INTO outbox (sink, event_id, body, created, updated, batch) VALUES (?,?,?,?,?,1)",
            (a.sink, a.event_id, merged(None, a), now, now),
        )
        db.execute("UPDATE sinks SET pending = pending + 1 WHERE sink = ?", (a.sink,))
        return
    db.execute(
        "UPDATE outbox SET body = ?, updated = ?, count = count + 1, version = version + 1 WHERE id = ?",
        (merged(row[1], a), now, row[0]),
    )


def _add(db: sqlite3.Connection, a: Announcement, cap: int, now: float) -> None:
    db.execute(
        "INSERT INTO outbox (sink, event_id, body, created, updated) VALUES (?,?,?,?,?)",
        (a.sink, a.event_id, a.body, now, now),
    )
    db.execute("INSERT OR IGNORE INTO sinks (sink) VALUES (?)", (a.sink,))
    pending = db.execute(
        "UPDATE sinks SET pending = pending + 1 WHERE sink = ? RETURNING pending", (a.sink,)
    ).fetchone()[0]
    if pending > cap:
        # The oldest go: a sink down for days must not fill the state disk (the pipeline never waits).
        gone = db.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE sink = ? AND batch = 0 "
            "ORDER BY id LIMIT ?)",
            (a.sink, pending - cap),
        ).rowcount
        db.execute(
            "UPDATE sinks SET pending = pending - ?, dropped = dropped + ? WHERE sink = ?",
            (gone, gone, a.sink),
        )


def pending(db: sqlite3.Connection, sink: str, limit: int) -> list[Pending]:
    """The sink's oldest rows, in the order they were written."""
    rows = db.execute(f"{_ROW} WHERE sink = ? ORDER BY id LIMIT ?", (sink, limit)).fetchall()
    return [
        Pending(
            id=r[0],
            sink=r[1],
            event_id=r[2],
            body=r[3],
            created=r[4],
            updated=r[5],
            count=r[6],
            version=r[7],
            batch=bool(r[8]),
        )
        for r in rows
    ]


def delivered(db: sqlite3.Connection, row: Pending) -> bool:
    """The sink accepted this row: gone (unless a batch gained jobs while it was sent: it goes again)."""
    gone = db.execute("DELETE FROM outbox WHERE id = ? AND version = ?", (row.id, row.version)).rowcount
    db.execute(
        "UPDATE sinks SET pending = pending - ?, delivered = delivered + ?, failing_since = NULL, "
        "last_error = NULL WHERE sink = ?",
        (gone, row.count if gone else 0, row.sink),
    )
    return bool(gone)


def failing(db: sqlite3.Connection, sink: str, error: str, now: float) -> None:
    """The sink refused or could not be reached: since when, and the last reason."""
    db.execute(
        "UPDATE sinks SET failing_since = COALESCE(failing_since, ?), last_error = ? WHERE sink = ?",
        (now, error, sink),
    )


def states(db: sqlite3.Connection) -> list[SinkState]:
    """Every sink's counters; [] for a ledger of a release before events."""
    try:
        rows = db.execute(
            "SELECT sink, pending, delivered, dropped, failing_since, last_error FROM sinks ORDER BY sink"
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    return [SinkState(*r) for r in rows]


_COLUMNS: Final = ("sink", "event_id", "body", "created", "updated", "count", "version", "batch")


def salvage(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    """The outbox rows a damaged ledger still gives (`ledger rebuild`); [] when none can be read."""
    found: dict[object, tuple[object, ...]] = {}
    for order in ("ASC", "DESC"):
        try:
            for row in db.execute(f"SELECT id, {', '.join(_COLUMNS)} FROM outbox ORDER BY id {order}"):  # noqa: S608 - fixed names
                found.setdefault(row[0], row[1:])
        except sqlite3.Error:
            continue
    return [found[k] for k in sorted(found, key=lambda k: int(k) if isinstance(k, int) else 0)]


def restore(db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    """Put salvaged rows back, in their order, and count them pending again."""
    for row in rows:
        db.execute(f"INSERT INTO outbox ({', '.join(_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?)", row)  # noqa: S608
        db.execute("INSERT OR IGNORE INTO sinks (sink) VALUES (?)", (row[0],))
        db.execute("UPDATE sinks SET pending = pending + 1 WHERE sink = ?", (row[0],))
