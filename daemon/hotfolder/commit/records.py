"""The ledger's rows as values: an input's record, an open commit intent, a quarantined input."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hotfolder.commit.plan import Plan
from hotfolder.core.identity import FileIdentity


@dataclass(frozen=True)
class Record:
    """One input's row: what happened to it, as `status` and monitoring read it."""

    path: Path
    identity: FileIdentity
    status: str
    sha256: str | None = None
    rule: str | None = None
    chain: str | None = None  # the rule chain's fingerprint: duplicates by content are per chain
    outputs: tuple[str, ...] = ()
    error: str | None = None
    watch: str | None = None
    attempts: int = 1
    quarantined_to: str | None = None
    note: str | None = None
    original: str | None = None  # kept, deleted, or where it moved (and why it was kept)
    orientation: int | None = None
    rules_fp: str | None = None
    companions: tuple[dict[str, Any], ...] = ()  # each companion: src, role, what became of it, where
    ms: float | None = None  # the job's time in the worker (decode, render, verify), when it ran one

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["identity"] = list(self.identity.as_tuple())
        data["outputs"] = list(self.outputs)
        data["companions"] = list(self.companions)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        values = dict(data)
        values["path"] = Path(values["path"])
        values["identity"] = FileIdentity(*values["identity"])
        values["outputs"] = tuple(values["outputs"])
        values["companions"] = tuple(values.get("companions", ()))
        return cls(**values)


@dataclass(frozen=True)
class Intent:
    """A commit that was started: the input read, every destination, and the row to write when done."""

    id: int
    path: Path
    identity: FileIdentity
    sha256: str
    token: str
    plan: Plan
    record: Record


@dataclass(frozen=True)
class Quarantined:
    """A quarantined input: where it came from, where it is, and its note."""

    path: Path
    parked: Path
    note: Path | None = field(default=None)
    id: int = 0  # the ledger id (a row's rowid: what the status page names it by)
    error: str | None = None
    watch: str | None = None
    rule: str | None = None
    updated: str = ""


@dataclass(frozen=True)
class Entry:
    """One ledger row as a reader shows it: its id, what happened, and where the outputs are."""

    id: int
    path: Path
    status: str
    watch: str | None
    rule: str | None
    outputs: tuple[str, ...]
    error: str | None
    updated: str
    ms: float | None
    bytes_in: int
