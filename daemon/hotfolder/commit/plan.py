"""The intent's plan: everything a commit will do, written to the ledger before its first rename.

A typed, versioned record with one owner (this module). A restart reads it back to finish a commit a
crash interrupted, so `from_json` also reads the unversioned plans of ledgers written before it
existed (same keys, no "version"), and refuses anything else with PlanError (the ledger reports it as
a damaged ledger, naming its file), never a KeyError.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from hotfolder.core.identity import FileIdentity

PLAN_VERSION: Final = 1


class PlanError(ValueError):
    """A plan that cannot be read back: Ledger.intents reports it as a damaged ledger."""


class Fields:
    """Typed reads of one JSON object the ledger keeps (a plan, a record); a missing or mistyped value
    is a damaged ledger (PlanError, reported with the ledger's file)."""

    def __init__(self, data: object, what: str) -> None:
        if not isinstance(data, dict):
            raise PlanError(f"an open intent's {what} is not an object")
        self.data: dict[object, object] = data
        self.what = what

    def _get(self, key: str, kind: type | tuple[type, ...], default: object = ...) -> object:
        value = self.data.get(key, default)
        if value is ... or not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise PlanError(f"an open intent's {self.what} has no valid {key!r}")
        return value

    def text(self, key: str) -> str:
        value = self._get(key, str)
        assert isinstance(value, str)
        return value

    def text_or_none(self, key: str) -> str | None:
        value = self._get(key, (str, type(None)), None)
        assert value is None or isinstance(value, str)
        return value

    def integer(self, key: str, default: int | None = None) -> int:
        value = self._get(key, int, ... if default is None else default)
        assert isinstance(value, int)
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key, (int, float), default)
        assert isinstance(value, int | float)
        return float(value)

    def integer_or_none(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise PlanError(f"an open intent's {self.what} has no valid {key!r}")
        return value

    def number_or_none(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, int | float):
            raise PlanError(f"an open intent's {self.what} has no valid {key!r}")
        return None if value is None else float(value)

    def items(self, key: str) -> list[object]:
        value = self._get(key, list, [])
        assert isinstance(value, list)
        return value


@dataclass(frozen=True)
class PlannedOutput:
    """One output: its staged temp file, the name it takes and what happens there."""

    temp: Path
    final: Path
    action: str  # written | identical | skipped | overwritten
    format: str
    rule: str
    size: int
    sha256: str
    ms: float
    policy: str  # the output's on_conflict
    counter_format: str

    def to_json(self) -> dict[str, object]:
        """The ledger's JSON of it."""
        return {**asdict(self), "temp": str(self.temp), "final": str(self.final)}

    @classmethod
    def from_json(cls, data: object) -> PlannedOutput:
        """Read back; raises PlanError when damaged."""
        f = Fields(data, "output")
        return cls(
            temp=Path(f.text("temp")),
            final=Path(f.text("final")),
            action=f.text("action"),
            format=f.text("format"),
            rule=f.text("rule"),
            size=f.integer("size"),
            sha256=f.text("sha256"),
            ms=f.number("ms", 0.0),
            policy=f.text("policy"),
            counter_format=f.text("counter_format"),
        )


@dataclass(frozen=True)
class PlannedDisposal:
    """What becomes of the original: kept, deleted, or moved to `dest` (via `staged`, a copy made by
    the worker when `dest` is on another filesystem)."""

    policy: str  # keep | delete | move
    dest: Path | None = None
    staged: Path | None = None
    why: str | None = None  # keep instead of the rule's delete or move: why

    def to_json(self) -> dict[str, object]:
        """The ledger's JSON of it."""
        data: dict[str, object] = {"policy": self.policy}
        if self.why is not None:
            data["why"] = self.why
        if self.policy == "move":
            data.update(dest=str(self.dest), staged=str(self.staged) if self.staged else None)
        return data

    @classmethod
    def from_json(cls, data: object) -> PlannedDisposal:
        """Read back; raises PlanError when damaged."""
        f = Fields(data, "disposal")
        policy = f.text("policy")
        if policy != "move":
            return cls(policy, why=f.text_or_none("why"))
        staged = f.text_or_none("staged")
        return cls(policy, Path(f.text("dest")), Path(staged) if staged else None)


@dataclass(frozen=True)
class PlannedCompanion:
    """A companion read with the picture: exactly that file is disposed of after it."""

    src: Path
    identity: FileIdentity
    sha256: str
    read_ns: int
    role: str
    suffix: str
    dest: Path | None  # a move: beside the picture's planned name
    replaces: str = ""  # a pattern twin (commit/group.py companion_name)

    def to_json(self) -> dict[str, object]:
        """The ledger's JSON of it (`replaces` only when set: the previous release reads the rest)."""
        data: dict[str, object] = {
            **asdict(self),
            "src": str(self.src),
            "dest": str(self.dest) if self.dest else None,
        }
        if not self.replaces:
            del data["replaces"]
        return data

    @classmethod
    def from_json(cls, data: object) -> PlannedCompanion:
        """Read back; raises PlanError when damaged."""
        f = Fields(data, "companion")
        i = Fields(f.data.get("identity"), "companion's identity")
        dest = f.text_or_none("dest")
        return cls(
            src=Path(f.text("src")),
            identity=FileIdentity(
                i.integer("dev"), i.integer("ino"), i.integer("size"), i.integer("mtime_ns")
            ),
            sha256=f.text("sha256"),
            read_ns=f.integer("read_ns"),
            role=f.text("role"),
            suffix=f.text("suffix"),
            dest=Path(dest) if dest else None,
            replaces=f.text_or_none("replaces") or "",
        )


@dataclass(frozen=True)
class Plan:
    """Every destination of one commit, in the order they are made."""

    token: str
    read_ns: int
    outputs: tuple[PlannedOutput, ...]
    disposal: PlannedDisposal
    companions: tuple[PlannedCompanion, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        """The ledger's JSON of it, versioned."""
        return {
            "version": PLAN_VERSION,
            "token": self.token,
            "read_ns": self.read_ns,
            "outputs": [o.to_json() for o in self.outputs],
            "disposal": self.disposal.to_json(),
            "companions": [c.to_json() for c in self.companions],
        }

    @classmethod
    def from_json(cls, data: object) -> Plan:
        """Read back a plan of this or an earlier release; raises PlanError when damaged."""
        f = Fields(data, "plan")
        version = f.integer("version", 0)
        if version > PLAN_VERSION:
            raise PlanError(
                f"an open intent was written by a newer hotfolder (plan version {version}): "
                "finish it with that release"
            )
        return cls(
            token=f.text("token"),
            read_ns=f.integer("read_ns", 0),
            outputs=tuple(PlannedOutput.from_json(o) for o in f.items("outputs")),
            disposal=PlannedDisposal.from_json(f.data.get("disposal")),
            companions=tuple(PlannedCompanion.from_json(c) for c in f.items("companions")),
        )
