"""The event a finished job announces (the document of schema event-1.json), and what each sink's outbox
row holds: one event per job, or for a batch sink one summary row that each job updates.

Pure functions: the ledger writes their results in the transaction that records the job.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from hotfolder.commit.plan import Plan
from hotfolder.commit.records import Record
from hotfolder.settings.events import Sink

SCHEMA: Final = "https://hotfolder.dev/schemas/event-1.json"
BATCH_FOLDERS: Final = 50  # the output folders a batch summary lists (a card's folders; more are counted)


@dataclass(frozen=True)
class Announcement:
    """One outbox row to write for one sink."""

    sink: str
    event_id: str
    body: str  # compact JSON
    batch: bool


def _text(path: Path | str) -> str:
    """A path as JSON carries it: its bytes that are not UTF-8 as \\udcXX escapes (json.dumps writes
    them escaped), never an error."""
    return os.fsdecode(path) if isinstance(path, bytes) else str(path)


def event_id(kind: str, record: Record) -> str:
    """The id a receiver drops repeats by: the same job's announcement always has the same id."""
    i = record.identity
    said = f"{kind}\0{_text(record.path)}\0{i.dev}\0{i.ino}\0{i.size}\0{i.mtime_ns}\0{record.sha256}"
    return hashlib.sha256(said.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def document(record: Record, plan: Plan | None, *, now: float) -> dict[str, Any]:
    """The event of one recorded job (its kind is its status: done, quarantined, duplicate, failed)."""
    kind = record.status
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "id": event_id(kind, record),
        "kind": kind,
        "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "rule": record.rule,
        "watch": record.watch,
        "source": {"path": _text(record.path), "sha256": record.sha256, "bytes": record.identity.size},
        "outputs": [
            {
                "path": _text(o.final),
                "format": o.format,
                "bytes": o.size,
                "sha256": o.sha256,
                "action": o.action,
            }
            for o in (plan.outputs if plan is not None else ())
            if o.action != "skipped"
        ],
        "original": record.original,
        "companions": [
            {"path": c.src, "role": c.role, "result": c.result, "where": c.where} for c in record.companions
        ],
    }
    if kind in ("quarantined", "failed"):
        doc["reason"] = record.error
        doc["quarantined_to"] = record.quarantined_to
    return doc


def encode(doc: Mapping[str, Any]) -> str:
    """One line of compact JSON (MQTT's payload, an HTTP body)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True)


def announcements(
    sinks: tuple[Sink, ...], record: Record, plan: Plan | None, *, now: float
) -> list[Announcement]:
    """The outbox rows this record makes: one per sink that hears of it."""
    found: list[Announcement] = []
    doc: dict[str, Any] | None = None
    for sink in sinks:
        if not sink.hears(record.status, record.rule):
            continue
        doc = doc or document(record, plan, now=now)
        found.append(Announcement(sink.name, doc["id"], encode(doc), batch=sink.batch is not None))
    return found


def merged(summary: str | None, entry: Announcement) -> str:
    """A batch sink's summary with one more job in it: how many, since when, by which rules and kinds,
    and the output folders written (those a library rescans), at most BATCH_FOLDERS of them."""
    doc = json.loads(entry.body)
    base: dict[str, Any] = (
        json.loads(summary)
        if summary
        else {
            "schema": SCHEMA,
            "id": doc["id"],
            "kind": "batch",
            "first": doc["time"],
            "count": 0,
            "kinds": {},
            "rules": [],
            "folders": [],
            "more_folders": 0,
        }
    )
    base["count"] += 1
    base["last"] = doc["time"]
    base["kinds"][doc["kind"]] = base["kinds"].get(doc["kind"], 0) + 1
    if doc["rule"] and doc["rule"] not in base["rules"]:
        base["rules"].append(doc["rule"])
    for out in doc["outputs"]:
        folder = str(Path(out["path"]).parent)
        if folder in base["folders"]:
            continue
        if len(base["folders"]) < BATCH_FOLDERS:
            base["folders"].append(folder)
        else:
            base["more_folders"] += 1
    return encode(base)
