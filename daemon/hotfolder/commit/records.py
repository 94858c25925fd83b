"""The ledger's rows as values: an input's record, an open commit intent, a quarantined input."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from hotfolder.commit.plan import Fields, Plan, PlanError
from hotfolder.core.identity import FileIdentity


@dataclass(frozen=True)
class CompanionNote:
    """What became of one companion, as its picture's row keeps it."""

    src: str
    role: str
    result: str  # kept | deleted | moved
    where: str | None = None
    why: str | None = None

    def to_json(self) -> dict[str, object]:
        """The ledger's JSON of it."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> CompanionNote:
        """Read back; raises PlanError when damaged."""
        f = Fields(data, "companion")
        return cls(
            f.text("src"), f.text("role"), f.text("result"), f.text_or_none("where"), f.text_or_none("why")
        )


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
    companions: tuple[CompanionNote, ...] = ()
    ms: float | None = None  # the job's time in the worker (decode, render, verify), when it ran one

    def to_json(self) -> dict[str, object]:
        """The JSON an open intent keeps of the row it will write."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["identity"] = list(self.identity.as_tuple())
        data["outputs"] = list(self.outputs)
        data["companions"] = [c.to_json() for c in self.companions]
        return data

    @classmethod
    def from_json(cls, data: object) -> Record:
        """Read back; raises PlanError when damaged."""
        f = Fields(data, "record")
        identity = f.items("identity")
        if len(identity) != 4 or not all(isinstance(v, int) for v in identity):
            raise PlanError("an open intent's record has no valid 'identity'")
        outputs = f.items("outputs")
        if not all(isinstance(o, str) for o in outputs):
            raise PlanError("an open intent's record has no valid 'outputs'")
        return cls(
            path=Path(f.text("path")),
            identity=FileIdentity(*(int(str(v)) for v in identity)),
            status=f.text("status"),
            sha256=f.text_or_none("sha256"),
            rule=f.text_or_none("rule"),
            chain=f.text_or_none("chain"),
            outputs=tuple(str(o) for o in outputs),
            error=f.text_or_none("error"),
            watch=f.text_or_none("watch"),
            attempts=f.integer("attempts", 1),
            quarantined_to=f.text_or_none("quarantined_to"),
            note=f.text_or_none("note"),
            original=f.text_or_none("original"),
            orientation=f.integer_or_none("orientation"),
            rules_fp=f.text_or_none("rules_fp"),
            companions=tuple(CompanionNote.from_json(c) for c in f.items("companions")),
            ms=f.number_or_none("ms"),
        )


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
