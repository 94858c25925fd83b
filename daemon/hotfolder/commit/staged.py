"""What a worker hands back: outputs staged and verified, and what becomes of the original."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hotfolder.core.identity import FileIdentity
from hotfolder.core.status import Result, RetryReason


@dataclass(frozen=True)
class StagedOutput:
    """One output written, synced and verified in a temp file beside the name it will take."""

    temp: Path
    final: Path  # may hold SEQ_MARK, which the daemon fills in
    rule: str
    format: str
    size: int
    sha256: str
    on_conflict: str
    counter_format: str
    ms: float = 0.0
    # Names this output may take that hold an earlier encoder's output of this very source (the source's
    # mtime, the same format, size and picture), as the worker found them: replaced if still so.
    earlier: tuple[tuple[Path, FileIdentity], ...] = ()


@dataclass(frozen=True)
class Disposal:
    """What becomes of the original once the outputs are in place."""

    policy: str  # keep | delete | move
    rule: str | None = None
    dest: Path | None = None  # move: its name under output_root (may hold SEQ_MARK)
    staged: Path | None = None  # move to another filesystem: a verified copy beside dest
    why: str | None = None  # keep: why the rule's delete or move is not done (said as original.kept)


@dataclass(frozen=True)
class Companion:
    """A file that travels with the picture (a sidecar, its RAW+JPEG twin, its Live Photo video), as read."""

    path: Path
    identity: FileIdentity
    sha256: str
    read_ns: int
    role: str  # sidecar | twin | video
    suffix: str  # what follows the picture's stem in its name, kept when the group is renamed
    replaces: str = ""  # a pattern twin: the end of the picture's stem its suffix takes the place of


@dataclass(frozen=True)
class Outcome:
    """What a worker's job came back with."""

    src: Path
    result: Result
    identity: FileIdentity | None = None  # of the file that was read (fstat of the open descriptor)
    read_ns: int = 0  # wall clock when it was read
    rule: str | None = None
    chain: str | None = None
    format: str | None = None
    bytes_in: int = 0
    sha256: str | None = None
    outputs: tuple[StagedOutput, ...] = ()
    disposal: Disposal = Disposal("keep")
    orientation: int | None = None  # provenance: the stored orientation the outputs had applied
    error_class: str | None = None  # one of hotfolder's own error names
    error: str | None = None
    retry: RetryReason | None = None
    twin: Path | None = None  # duplicate: the input done with the same bytes
    ms: float = 0.0
    notes: tuple[tuple[str, dict[str, object]], ...] = ()
    started_at: str | None = None  # wall clock when a worker began it (latency, from the logs alone)
    companions: tuple[Companion, ...] = ()  # the group's other files, disposed of with the original
    made: tuple[Path, ...] = ()  # output folders the worker created to stage in, outermost first
