"""The job: everything a worker needs to handle one input, as plain picklable data."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hotfolder.core.formats import DEFAULT_MAX_PIXELS
from hotfolder.core.identity import FileIdentity
from hotfolder.settings.rules import Rule
from hotfolder.settings.watches import Watch


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to handle one input; plain data so that it pickles."""

    src: Path
    relpath: str  # below the watch root (or the folder given to `process`), '/'-separated
    rules: tuple[Rule, ...]
    output_root: Path
    watch: Watch | None = None  # the watch it arrived in; None for a file given to `process` alone
    max_pixels: int = DEFAULT_MAX_PIXELS
    file_mode: int | None = None  # mode of outputs; None: the umask decides
    gid: int | None = None  # group of outputs, so shared folders stay usable
    seen: FileIdentity | None = None  # what the dispatcher saw (a change since means: still arriving)
    force: bool = False  # process even byte-identical copies of inputs already done
    twins: tuple[tuple[str, str, str], ...] = ()  # (sha256, chain, path) of done inputs of this size
    token: str = field(default_factory=lambda: os.urandom(4).hex())  # names this job's temp files

    @property
    def watch_name(self) -> str | None:
        """The watch's name, as events, notes and the ledger say it."""
        return self.watch.name if self.watch else None

    @property
    def root(self) -> Path:
        """The folder `relpath` is below: the watch's, or the file's own."""
        return self.watch.path if self.watch else self.src.parent
