"""SQLite state in state_dir: every input's story, the commit intents, {seq} counters, and the lock.

The daemon (the coordinator) is the only writer: workers never open the state folder. Readers
(`status`, monitoring, a status page) may open it read-only at any time (WAL mode).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from hotfolder.commit import outbox
from hotfolder.commit.plan import Plan, PlanError
from hotfolder.commit.records import Entry, Intent, Quarantined, Record
from hotfolder.commit.tables import HISTORY_DAYS, migrate
from hotfolder.core.identity import FileIdentity, no_longer
from hotfolder.core.status import Status
from hotfolder.errors import LedgerCorruptError, StateUnwritableError
from hotfolder.names import from_bytes, is_clean, raw
from hotfolder.settings.events import Sink

LEDGER_NAME: Final = "ledger.sqlite3"
# Statuses that end an input's story: a restart skips these when the file is unchanged.
FINAL: Final = (
    Status.DONE,
    Status.QUARANTINED,
    Status.UNMATCHED,
    Status.DUPLICATE,
    Status.EMPTY,
    Status.ORPHAN,
)
# Outcomes of a job, kept in the history as they happen (the plot's throughput and failures).
_HISTORY: Final = (Status.DONE, Status.QUARANTINED, Status.FAILED, Status.DUPLICATE)
# Verdicts reached by the rules: a rules change offers those files again.
_BY_RULES: Final = (Status.UNMATCHED, Status.ORPHAN)

# SQLite's primary result codes for a damaged file (extended codes keep these in the low byte).
_SQLITE_CORRUPT: Final = 11
_SQLITE_NOTADB: Final = 26
_SQLITE_CANTOPEN: Final = 14
# The disk under the ledger, not the file: full, failing (EIO), or remounted read-only. Survived: the
# daemon stops taking work and retries, instead of a traceback and a ledger that disagrees with outbox.
_SQLITE_UNWRITABLE: Final = {13: "disk full", 10: "I/O error", 8: "read-only"}
# The largest rowid: a larger int cannot be bound at all (OverflowError), so no such row exists.
_MAX_ROWID: Final = 2**63 - 1
# The same-size candidates a job carries to its worker (a duplicate found there skips its render). Every
# one used to go: 2,000 scans of one size made each job read and pickle up to 2,000 rows, 26% of the
# main loop's samples in the 2,000-file burst (py-spy); 64 still cost 0.45 ms a job (cProfile). Files of one
# size are mostly uncompressed scans, whose rescans differ anyway.
TWINS: Final = 16


def is_corruption(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is damaged (not merely busy or misused)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


class _Connection(sqlite3.Connection):
    """A connection that stores text SQLite's driver cannot encode (a file name that is not UTF-8, as a
    str with surrogate escapes) as its exact bytes, and gives it back as the same str: such a name used
    to raise UnicodeEncodeError at the first lookup and stop the daemon at every start."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return super().execute(sql, tuple(_bindable(v) for v in parameters))


def _bindable(value: Any) -> Any:
    # A BLOB of the raw bytes: `path = ?` with the same name bound the same way still matches.
    return raw(value) if isinstance(value, str) and not is_clean(value) else value


def _row(_cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> tuple[Any, ...]:
    # No column of ours holds a BLOB of its own: bytes are always text stored by _bindable.
    return tuple(from_bytes(v) if isinstance(v, bytes) else v for v in row)


def connect(target: str | Path, **options: Any) -> sqlite3.Connection:
    """A connection to a ledger file that carries names that are not UTF-8 without loss."""
    db = sqlite3.connect(
        target, factory=_Connection, check_same_thread=False, isolation_level=None, timeout=30, **options
    )
    db.row_factory = _row
    return db


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Ledger:
    """Remembers every input's identity and outcome; safe to call from several threads."""

    def __init__(self, state_dir: Path, *, readonly: bool = False) -> None:
        self.path = state_dir / LEDGER_NAME
        self._mutex = threading.Lock()
        self.sinks: tuple[Sink, ...] = ()  # [[event]]: announced in the transaction that records a job
        self.on_announce: Callable[[], None] = lambda: None  # the sender's wake-up
        with self._guard():
            if readonly:
                self._db = self._read_only()
                return
            state_dir.mkdir(parents=True, exist_ok=True)
            self._db = connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            migrate(self._db, state_dir)
            st = self.path.stat()
            self._file = (st.st_dev, st.st_ino)
            cutoff = (datetime.now(UTC) - timedelta(days=HISTORY_DAYS)).isoformat(timespec="seconds")
            with contextlib.suppress(sqlite3.OperationalError):  # a full disk: trimmed at a later start
                self._db.execute("DELETE FROM history WHERE at < ?", (cutoff,))
            # A page damaged where nothing reads it yet would surface in the middle of a run.
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise LedgerCorruptError(self.path, f"integrity check: {check}")

    def _read_only(self) -> sqlite3.Connection:
        """A reader's connection. On a read-only mount (`serve`'s unit) a WAL ledger opens only while its
        -shm file exists; once the daemon has stopped and removed it (no -wal left: everything is in
        the file), the file is read as immutable instead."""
        uri = f"file:{self.path}?mode=ro"
        for attempt in (uri, uri + "&immutable=1"):
            db = connect(attempt, uri=True)
            try:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError as exc:
                db.close()
                code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
                wal = self.path.with_name(self.path.name + "-wal")
                if code == _SQLITE_CANTOPEN and not wal.exists() and attempt == uri:
                    continue
                raise
            return db
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite's "this file is damaged" and "this disk cannot be written" into errors a user can
        act on (decided by SQLite's result code, never its message)."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                raise LedgerCorruptError(self.path, str(exc)) from None
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code in _SQLITE_UNWRITABLE:
                raise StateUnwritableError(self.path, f"{_SQLITE_UNWRITABLE[code]}: {exc}") from None
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._mutex, self._guard():
            yield self._db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._locked() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                # A COMMIT that failed (a full disk) may have rolled back already: nothing left to undo.
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise

    # What is known of one file ----------------------------------------------------------------

    def is_handled(self, path: Path, identity: FileIdentity, *, rules_fp: str | None = None) -> bool:
        """Whether this very file (same path and identity) already reached a final state.

        An 'unmatched' verdict holds only for the rule set it was reached with: after a rules
        change the file is offered again.
        """
        with self._locked() as db:
            row = db.execute(
                "SELECT dev, ino, size, mtime_ns, status, rules_fp FROM inputs WHERE path = ?", (str(path),)
            ).fetchone()
        if row is None or FileIdentity(*row[:4]) != identity or row[4] not in FINAL:
            return False
        return row[4] not in _BY_RULES or rules_fp is None or row[5] == rules_fp

    def own_outputs(self, path: Path, sha256: str) -> frozenset[str]:
        """The outputs this very input (same path, same bytes) was done with before: a run that makes
        them again (--force, a new release's encoders) replaces them rather than numbering a twin."""
        with self._locked() as db:
            row = db.execute(
                f"SELECT outputs FROM inputs WHERE path = ? AND sha256 = ? AND status = '{Status.DONE}'",  # noqa: S608 - an enum constant
                (str(path), sha256),
            ).fetchone()
        return frozenset(json.loads(row[0])) if row else frozenset()

    def source_of(self, output: Path) -> tuple[Path, str] | None:
        """The input (path, SHA-256) a done row lists this output for (`restore` checks it)."""
        with self._locked() as db:
            row = db.execute(
                f"SELECT path, sha256 FROM inputs WHERE instr(outputs, ?) > 0 AND status = '{Status.DONE}' "  # noqa: S608 - an enum constant
                "AND sha256 IS NOT NULL LIMIT 1",
                (json.dumps(str(output)),),
            ).fetchone()
        return (Path(row[0]), str(row[1])) if row else None

    def knows_output(self, output: Path) -> bool:
        """Whether any row lists this output (a scan of the outputs column: asked only when a name is
        taken by a file of another encoder that looks like this input's own)."""
        with self._locked() as db:
            row = db.execute(
                "SELECT 1 FROM inputs WHERE instr(outputs, ?) > 0 LIMIT 1", (json.dumps(str(output)),)
            ).fetchone()
        return row is not None

    def twins(self, size: int, path: Path) -> tuple[tuple[str, str, str], ...]:
        """(sha256, chain, path) of the latest inputs done with this size under other names (at most
        TWINS): candidates a worker may skip rendering for; the commit's `done_twin` is the real check."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT sha256, coalesce(chain, rule, ''), path FROM inputs"  # noqa: S608 - an enum constant, literal so SQLite uses the partial index
                f" WHERE size = ? AND status = '{Status.DONE}' AND path != ? AND sha256 IS NOT NULL"
                " ORDER BY rowid DESC LIMIT ?",
                (size, str(path), TWINS),
            ).fetchall()
        return tuple((str(s), str(c), str(p)) for s, c, p in rows)

    def done_twin(self, sha256: str, chain: str, path: Path) -> Path | None:
        """Another input already done with exactly these bytes by the same rule chain."""
        with self._locked() as db:
            row = db.execute(
                # INDEXED BY: with no statistics SQLite took inputs_status (schema 8) and read every done
                # row, 0.19 ms a job at 2,000 rows, growing with the ledger; by content it is one lookup.
                "SELECT path FROM inputs INDEXED BY inputs_sha256"  # noqa: S608 - an enum constant, literal so SQLite uses the partial index
                f" WHERE sha256 = ? AND status = '{Status.DONE}' AND path != ?"
                " AND coalesce(chain, rule, '') = ? LIMIT 1",
                (sha256, str(path), chain),
            ).fetchone()
        return Path(row[0]) if row else None

    def next_seq(self, rule: str) -> int:
        """Count one more for a rule's {seq} (kept across restarts)."""
        with self._transaction() as db:
            db.execute("INSERT INTO seq VALUES (?, 0) ON CONFLICT(rule) DO NOTHING", (rule,))
            (n,) = db.execute("UPDATE seq SET n = n + 1 WHERE rule = ? RETURNING n", (rule,)).fetchone()
        return int(n)

    # Writing what happened -----------------------------------------------------------------------

    def record(self, record: Record, *, happened: bool = True) -> None:
        """Store what happened to one input (replacing what was known of that path); `happened`: now, so the
        history counts it and the sinks hear of it (not a row salvaged by `ledger rebuild`)."""
        with self._transaction() as db:
            self._write(db, record, happened=happened)
            said = outbox.announce(db, self.sinks, record, None, time.time()) if happened else 0
        if said:
            self.on_announce()

    @staticmethod
    def _write(db: sqlite3.Connection, r: Record, *, happened: bool = True) -> None:
        now = _now()
        i = r.identity
        db.execute(
            """INSERT INTO inputs (path, dev, ino, size, mtime_ns, sha256, rule, status, outputs, error,
                   updated, watch, attempts, first_seen, quarantined_to, original, orientation, chain,
                   rules_fp, note, companions, ms)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT(path) DO UPDATE SET dev=excluded.dev, ino=excluded.ino, size=excluded.size,
                   mtime_ns=excluded.mtime_ns, sha256=excluded.sha256, rule=excluded.rule,
                   status=excluded.status, outputs=excluded.outputs, error=excluded.error,
                   updated=excluded.updated, watch=excluded.watch, attempts=excluded.attempts,
                   quarantined_to=excluded.quarantined_to, original=excluded.original,
                   orientation=excluded.orientation, chain=excluded.chain, rules_fp=excluded.rules_fp,
                   note=excluded.note, companions=excluded.companions, ms=excluded.ms""",
            (
                str(r.path),
                i.dev,
                i.ino,
                i.size,
                i.mtime_ns,
                r.sha256,
                r.rule,
                r.status,
                json.dumps(list(r.outputs)),
                r.error,
                now,
                r.watch,
                r.attempts,
                now,
                r.quarantined_to,
                r.original,
                r.orientation,
                r.chain,
                r.rules_fp,
                r.note,
                json.dumps([c.to_json() for c in r.companions]),
                r.ms,
            ),
        )
        if happened and r.status in _HISTORY:
            db.execute("INSERT INTO history VALUES (?,?,?,?,?)", (now, r.status, r.watch, r.rule, r.ms))

    # Intents -------------------------------------------------------------------------------------

    def open_intent(self, identity: FileIdentity, sha256: str, token: str, plan: Plan, record: Record) -> int:
        """Write down a commit before its first rename; returns its id."""
        i = identity
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO intents (path, dev, ino, size, mtime_ns, sha256, token, plan, record, opened)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    str(record.path),
                    i.dev,
                    i.ino,
                    i.size,
                    i.mtime_ns,
                    sha256,
                    token,
                    json.dumps(plan.to_json()),
                    json.dumps(record.to_json()),
                    _now(),
                ),
            )
            assert cursor.lastrowid is not None
            return int(cursor.lastrowid)

    def update_intent(self, intent_id: int, plan: Plan) -> None:
        """Record a destination that changed on the way (a name taken meanwhile by someone else)."""
        with self._transaction() as db:
            db.execute("UPDATE intents SET plan = ? WHERE id = ?", (json.dumps(plan.to_json()), intent_id))

    def close_intent(self, intent_id: int, record: Record | None, plan: Plan | None = None) -> None:
        """The commit is complete (or abandoned before anything was visible): write its row and its
        announcements (what `plan` made; without it, the plan the intent holds), drop it."""
        said = 0
        with self._transaction() as db:
            if record is not None:
                self._write(db, record)
                if self.sinks:
                    if plan is None:
                        row = db.execute("SELECT plan FROM intents WHERE id = ?", (intent_id,)).fetchone()
                        plan = Plan.from_json(json.loads(row[0])) if row is not None else None
                    said = outbox.announce(db, self.sinks, record, plan, time.time())
            db.execute("DELETE FROM intents WHERE id = ?", (intent_id,))
        if said:
            self.on_announce()

    # The events outbox (commit/outbox.py) ---------------------------------------------------------

    def announce_to(self, sinks: tuple[Sink, ...]) -> None:
        """Announce every job recorded from now on to these sinks."""
        with self._transaction() as db:
            outbox.register(db, sinks)
        self.sinks = sinks

    def outbox_pending(self, sink: str, limit: int) -> list[outbox.Pending]:
        """A sink's oldest undelivered rows."""
        with self._locked() as db:
            return outbox.pending(db, sink, limit)

    def outbox_delivered(self, rows: list[outbox.Pending]) -> None:
        """A sink accepted these rows: deleted in one transaction (a batch that grew meanwhile stays,
        to be sent again)."""
        with self._transaction() as db:
            for row in rows:
                outbox.delivered(db, row)

    def outbox_failing(self, sink: str, error: str) -> None:
        """A sink could not take its rows: remembered for status, the page and /metrics."""
        with self._transaction() as db:
            outbox.failing(db, sink, error, time.time())

    def restore_outbox(self, rows: list[tuple[object, ...]]) -> None:
        """`ledger rebuild`: the undelivered events salvaged from the damaged ledger, kept."""
        with self._transaction() as db:
            outbox.restore(db, rows)

    def sink_states(self) -> list[outbox.SinkState]:
        """Every sink's pending, delivered and dropped counts and its failure, if any."""
        with self._locked() as db:
            return outbox.states(db)

    def intents(self) -> list[Intent]:
        """Every commit that was started and not finished (a crash, or a failure after a rename)."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT id, path, dev, ino, size, mtime_ns, sha256, token, plan, record"
                " FROM intents ORDER BY id"
            ).fetchall()
        try:
            return [self._intent(r) for r in rows]
        except PlanError as exc:
            raise LedgerCorruptError(self.path, str(exc)) from None

    @staticmethod
    def _intent(r: tuple[Any, ...]) -> Intent:
        return Intent(
            id=int(r[0]),
            path=Path(r[1]),
            identity=FileIdentity(*r[2:6]),
            sha256=str(r[6]),
            token=str(r[7]),
            plan=Plan.from_json(json.loads(r[8])),
            record=Record.from_json(json.loads(r[9])),
        )

    # Reading for people and monitors -------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """How many inputs are in each status."""
        with self._locked() as db:
            return dict(db.execute("SELECT status, count(*) FROM inputs GROUP BY status").fetchall())

    def groups(self) -> int:
        """How many done inputs took companions along."""
        with self._locked() as db:
            row = db.execute(
                "SELECT count(*) FROM inputs WHERE status = 'done' AND companions != '[]'"
            ).fetchone()
        return int(row[0])

    def done_in(self, folder: Path) -> list[tuple[Path, str, str]]:
        """(path, original, updated) of the inputs done (or found duplicate, their original
        disposed of all the same) from this folder, newest first:
        where a late companion looks for its picture."""
        low, high = f"{folder}/", f"{folder}0"  # '0' follows '/': every path directly or deeper below
        # Names that are not UTF-8 are stored as BLOBs, which sort after all text: their own range.
        blow, bhigh = raw(folder) + b"/", raw(folder) + b"0"
        with self._locked() as db:
            rows = db.execute(
                "SELECT path, original, updated FROM inputs"
                " WHERE ((path >= ? AND path < ?) OR (path >= ? AND path < ?))"
                # `+status`: the two path ranges, not every done row through inputs_status (schema 8)
                " AND +status IN ('done', 'duplicate') ORDER BY updated DESC",
                (low, high, blow, bhigh),
            ).fetchall()
        return [(Path(p), str(o or ""), str(u)) for p, o, u in rows if Path(p).parent == folder]

    def summary(self) -> list[tuple[str, str, int]]:
        """(watch, status, count) over the whole ledger."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT coalesce(watch, '-'), status, count(*) FROM inputs GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall()
        return [(str(w), str(s), int(n)) for w, s, n in rows]

    # Literal status, so SQLite reads the status index (schema 8), newest or oldest first by rowid.
    _IN_QUARANTINE = f" FROM inputs WHERE status = '{Status.QUARANTINED}' AND quarantined_to IS NOT NULL"
    _QUARANTINED = "SELECT path, quarantined_to, note, rowid, error, watch, rule, updated" + _IN_QUARANTINE

    @staticmethod
    def _quarantined(row: tuple[Any, ...]) -> Quarantined:
        a, b, n, i, e, w, r, u = row
        return Quarantined(
            Path(a), Path(b), Path(n) if n else None, id=int(i), error=e, watch=w, rule=r, updated=str(u)
        )

    def quarantined(
        self, *, after: int = 0, limit: int = -1, offset: int = 0, newest: bool = False
    ) -> list[Quarantined]:
        """Quarantined inputs (with a ledger id above `after`): each one's original path, where it is now,
        its note and its reason; oldest first, or `newest` first, `limit` of them from `offset`."""
        order = "DESC" if newest else "ASC"
        with self._locked() as db:
            rows = db.execute(
                self._QUARANTINED + f" AND rowid > ? ORDER BY rowid {order} LIMIT ? OFFSET ?",
                (after, limit, offset),
            ).fetchall()
        return [self._quarantined(r) for r in rows]

    def quarantined_count(self) -> int:
        """How many inputs are in quarantine."""
        with self._locked() as db:
            return int(db.execute("SELECT count(*)" + self._IN_QUARANTINE).fetchone()[0])

    def quarantined_entry(self, entry_id: int) -> Quarantined | None:
        """One quarantined input by its ledger id (an id SQLite cannot hold is simply not there)."""
        if not 0 < entry_id <= _MAX_ROWID:
            return None
        with self._locked() as db:
            row = db.execute(self._QUARANTINED + " AND rowid = ?", (entry_id,)).fetchone()
        return None if row is None else self._quarantined(row)

    _ENTRY = "SELECT rowid, path, status, watch, rule, outputs, error, updated, ms, size FROM inputs"

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> Entry:
        return Entry(
            id=int(row[0]),
            path=Path(row[1]),
            status=str(row[2]),
            watch=row[3],
            rule=row[4],
            outputs=tuple(json.loads(row[5])),
            error=row[6],
            updated=str(row[7]),
            ms=row[8],
            bytes_in=int(row[9]),
        )

    def entry(self, entry_id: int) -> Entry | None:
        """One input by its ledger id, or None (also for an id SQLite cannot hold: past 2^63 - 1)."""
        if not 0 < entry_id <= _MAX_ROWID:
            return None
        with self._locked() as db:
            row = db.execute(self._ENTRY + " WHERE rowid = ?", (entry_id,)).fetchone()
        return None if row is None else self._entry(row)

    def recent(self, limit: int) -> list[Entry]:
        """The last `limit` inputs something happened to, newest first (known files skipped aside)."""
        with self._locked() as db:
            rows = db.execute(self._ENTRY + " ORDER BY updated DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
        return [self._entry(r) for r in rows]

    def hourly(self, since: str) -> list[tuple[str, str, int]]:
        """(hour 'YYYY-MM-DDTHH', status, count) of the jobs that ended at or after `since` (ISO)."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT substr(at, 1, 13), status, count(*) FROM history WHERE at >= ?"
                " GROUP BY 1, 2 ORDER BY 1",
                (since,),
            ).fetchall()
        return [(str(h), str(s), int(n)) for h, s, n in rows]

    def by_rule(self) -> list[tuple[str, str, int]]:
        """(status, rule, count) over the whole ledger ('' for inputs no rule took)."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT status, coalesce(rule, ''), count(*) FROM inputs GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall()
        return [(str(s), str(r), int(n)) for s, r, n in rows]

    def durations(self, bounds: tuple[float, ...]) -> tuple[list[int], int, float]:
        """The done jobs' seconds as cumulative bucket counts (one per bound, then +Inf), and their sum."""
        cases = ", ".join(f"sum(ms <= {float(b) * 1000!r})" for b in bounds)
        with self._locked() as db:
            row = db.execute(
                f"SELECT {cases}, count(*), coalesce(sum(ms), 0) FROM inputs"  # noqa: S608 - bounds are our floats
                f" WHERE status = '{Status.DONE}' AND ms IS NOT NULL"
            ).fetchone()
        return [int(n or 0) for n in row[: len(bounds)]], int(row[-2]), float(row[-1]) / 1000

    def mark(self, path: Path, status: Status) -> None:
        """Set one input's status (retry re-queues a quarantined input)."""
        with self._locked() as db:
            db.execute(
                "UPDATE inputs SET status = ?, quarantined_to = NULL, note = NULL WHERE path = ?",
                (status, str(path)),
            )

    def lost(self) -> str | None:
        """How the ledger file at its path stopped being the one written to (deleted or replaced), or None."""
        return no_longer(self.path, self._file, "ledger")

    def close(self) -> None:
        with self._mutex:
            self._db.close()
