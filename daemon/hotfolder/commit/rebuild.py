"""`hotfolder ledger rebuild`: set a damaged ledger aside and rebuild it from what can still be read.

Rows are salvaged from the damaged file (SQLite reads the pages that are intact), and every
quarantine note adds its input back as quarantined, so `status` and `retry` see them again. Inputs
whose rows were lost are simply looked at again at the next start; their outputs are already there:
with `skip_identical` (the default) the same bytes are found identical, and an output an earlier
release wrote with other bytes is recognised (its source's mtime, format, size and picture) and
replaced, so nothing is written twice.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

from hotfolder import names
from hotfolder.commit import outbox
from hotfolder.commit.ledger import LEDGER_NAME, Ledger, connect
from hotfolder.commit.lock import Lock
from hotfolder.commit.records import Record
from hotfolder.core.identity import FileIdentity
from hotfolder.core.status import Status
from hotfolder.errors import LedgerCorruptError
from hotfolder.settings.config import Config

_COLUMNS = (
    "path",
    "dev",
    "ino",
    "size",
    "mtime_ns",
    "sha256",
    "rule",
    "status",
    "outputs",
    "error",
    "watch",
    "attempts",
    "quarantined_to",
    "original",
    "orientation",
    "chain",
    "rules_fp",
    "note",
)


# A salvaged row: SQLite gives back text, integers, reals, BLOBs (paths that are not UTF-8) and NULL.
Row = dict[str, str | int | float | bytes | None]


def _salvage(damaged: Path) -> list[Row]:
    """The rows of `inputs` SQLite can still read, from both ends of the table."""
    rows: dict[str, Row] = {}
    try:
        db = connect(f"file:{damaged}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        columns = [c for c in _COLUMNS if _has_column(db, c)]
        for order in ("ASC", "DESC"):
            with contextlib.suppress(sqlite3.Error):
                for values in db.execute(f"SELECT {', '.join(columns)} FROM inputs ORDER BY rowid {order}"):  # noqa: S608 - fixed names
                    row = dict(zip(columns, values, strict=True))
                    rows.setdefault(str(row["path"]), row)
    finally:
        db.close()
    return list(rows.values())


def _salvage_events(damaged: Path) -> list[tuple[object, ...]]:
    """The events not yet delivered that the damaged ledger still holds."""
    try:
        db = connect(f"file:{damaged}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        return outbox.salvage(db)
    finally:
        db.close()


def _has_column(db: sqlite3.Connection, name: str) -> bool:
    try:
        return any(r[1] == name for r in db.execute("PRAGMA table_info(inputs)"))
    except sqlite3.Error:
        return name in _COLUMNS[:10]


def _text(value: str | int | float | bytes | None) -> str | None:
    """A TEXT column (a BLOB where a name is not UTF-8), or None."""
    if isinstance(value, bytes):
        return names.from_bytes(value)
    return None if value is None else str(value)


def _integer(value: str | int | float | bytes | None) -> int:
    if not isinstance(value, int):
        raise TypeError(value)
    return value


def _record(row: Row) -> Record | None:
    try:
        path = _text(row["path"])
        outputs = json.loads(_text(row.get("outputs")) or "[]")
        if path is None or not isinstance(outputs, list):
            return None
        identity = FileIdentity(*(_integer(row[k]) for k in ("dev", "ino", "size", "mtime_ns")))
        orientation = row.get("orientation")
        return Record(
            path=Path(path),
            identity=identity,
            status=str(row["status"]),
            sha256=_text(row.get("sha256")),
            rule=_text(row.get("rule")),
            chain=_text(row.get("chain")),
            outputs=tuple(str(o) for o in outputs),
            error=_text(row.get("error")),
            watch=_text(row.get("watch")),
            attempts=_integer(row.get("attempts") or 1),
            quarantined_to=_text(row.get("quarantined_to")),
            note=_text(row.get("note")),
            original=_text(row.get("original")),
            orientation=orientation if isinstance(orientation, int) else None,
            rules_fp=_text(row.get("rules_fp")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _from_notes(quarantine: Path) -> list[Record]:
    """One quarantined row per note whose file is still in quarantine."""
    found = []
    for note in sorted(quarantine.rglob("*.json")) if quarantine.is_dir() else []:
        try:
            body = json.loads(note.read_text(encoding="utf-8"))
            parked = Path(names.exact_text(body, "quarantined_to"))
            identity = FileIdentity.at(parked)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if identity is None:
            continue
        found.append(
            Record(
                path=Path(names.exact_text(body, "src")),
                identity=identity,
                status=Status.QUARANTINED,
                rule=body.get("rule"),
                watch=body.get("watch"),
                attempts=int(body.get("attempts") or 1),
                error=names.exact_text(body, "error") if "error" in body else None,
                quarantined_to=str(parked),
                note=str(note),
            )
        )
    return found


def _healthy(config: Config) -> bool:
    try:
        Ledger(config.state_dir).close()
    except LedgerCorruptError:
        return False
    return True


def rebuild(config: Config) -> int:
    """Set the ledger aside if it is damaged, and rebuild it; exit code 0."""
    lock = Lock(config.state_dir)  # the daemon must be stopped: exit 3 otherwise
    try:
        path = config.state_dir / LEDGER_NAME
        if path.exists() and _healthy(config):
            print(f"{path} is readable and passes SQLite's integrity check: nothing to rebuild")
            return 0
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        damaged = path.with_name(f"{LEDGER_NAME}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                path.with_name(path.name + suffix).rename(damaged.with_name(damaged.name + suffix))
        salvaged = [r for r in map(_record, _salvage(damaged)) if r is not None] if damaged.exists() else []
        events = _salvage_events(damaged) if damaged.exists() else []
        from_notes = _from_notes(config.quarantine)
        ledger = Ledger(config.state_dir)
        try:
            for record in salvaged:
                ledger.record(record, happened=False)
            known = {r.path for r in salvaged if r.status == Status.QUARANTINED}
            for record in from_notes:
                if record.path not in known:
                    ledger.record(record, happened=False)
            ledger.restore_outbox(events)
        finally:
            ledger.close()
        print(
            f"rebuilt {path}: {len(salvaged)} row(s) salvaged, {len(from_notes)} quarantine note(s) read, "
            f"{len(events)} undelivered event(s) kept"
        )
        if damaged.exists():
            print(f"the damaged ledger is kept at {damaged}", file=sys.stderr)
        print(
            "inputs whose rows were lost are looked at again at the next start; their outputs are found "
            "(identical, or an earlier release's of the same picture, replaced) and nothing is written twice "
            "(with on_conflict = 'skip_identical')",
            file=sys.stderr,
        )
        return 0
    finally:
        lock.release()
