"""hotfolder's own exceptions: a small hierarchy whose messages a user can act on."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# errno values that say "not now" rather than "never": such a job is retried with backoff.
TRANSIENT_ERRNOS: Final = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.EBUSY,
        errno.EAGAIN,
        errno.ENOMEM,
        errno.ESTALE,
        errno.ENOTCONN,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.ETIMEDOUT,
        errno.ENETDOWN,
        errno.ENETUNREACH,
    }
)


def is_transient(exc: BaseException) -> bool:
    """Whether an OS error may go away by itself (disk full, share gone, I/O hiccup)."""
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


# A usage mistake (a path `process` will not take, `retry` without names): what argparse exits with too.
EXIT_USAGE: Final = 2


@dataclass(frozen=True)
class Problem:
    """One configuration mistake, located as precisely as the parser knows."""

    file: Path | None
    message: str
    rule: str | None = None
    key: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = str(self.file) if self.file else "<embedded default>"
        if self.line is not None:
            where += f":{self.line}"
        parts = [where]
        if self.rule is not None:
            parts.append(f"rule {self.rule!r}")
        if self.key is not None:
            parts.append(f"key {self.key!r}")
        return ": ".join([*parts, self.message])


class HotfolderError(Exception):
    """Base of every error hotfolder raises on purpose."""

    exit_code = 1


class ConfigError(HotfolderError):
    """The configuration or a rule file is invalid; carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class LockHeldError(HotfolderError):
    """Another hotfolder process owns this state folder."""

    exit_code = 3


class InputError(HotfolderError):
    """A permanent problem with one input file (not an image, truncated, too large)."""


class EncodeError(HotfolderError):
    """An output could not be produced or failed verification."""


class UnsafePathError(HotfolderError):
    """An output or quarantine folder is a symlink (or not a folder): nothing is written through it."""


class LedgerCorruptError(HotfolderError):
    """The ledger file is damaged: say so, and how to recover, instead of a traceback."""

    event = "ledger.corrupt"  # logged when it stops the daemon
    exit_code = 2  # the unit does not restart on 2: a restart cannot mend a damaged file

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        super().__init__(
            f"the ledger {path} is damaged ({detail}); nothing more was written to it. To recover: stop "
            f"hotfolder and run `hotfolder ledger rebuild` (it moves the damaged file aside and rebuilds "
            f"the ledger from what it can still read and from the quarantine notes), or move {path.name} "
            "aside by hand and start again (files already processed are then recognised by their outputs)"
        )


class StateLostError(HotfolderError):
    """The state folder (its lock, its ledger) was deleted or replaced under the running daemon."""

    event = "state.lost"  # logged when it stops the daemon
    exit_code = 2  # not restarted: a second daemon may hold the new lock, and the history is gone

    def __init__(self, state_dir: Path, detail: str) -> None:
        super().__init__(
            f"the state folder {state_dir} was {detail} while hotfolder ran: it stopped at once so that no "
            "file is processed twice (another daemon could take a new lock there) and nothing is recorded "
            "in a ledger nobody can read. Jobs in flight were abandoned; their inputs are where they were. "
            "If the folder was removed on purpose, start hotfolder again: it makes a new one"
        )


class StateUnwritableError(HotfolderError):
    """The state folder's disk is full, failing or read-only: the ledger cannot record anything now."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        super().__init__(
            f"state disk full or failing: the ledger {path} cannot be written ({detail}); new work waits "
            "and nothing is lost: free space on that disk (or make it writable) and hotfolder goes on "
            "by itself"
        )


class NotRegularError(HotfolderError):
    """The path is a link, a FIFO, a device or a folder: never read, never disposed of."""


class AbandonedError(HotfolderError):
    """A job stopped on a cluster worker because the daemon no longer waits for it."""


class PoolError(HotfolderError):
    """The local worker pool cannot start (its fork server ended while starting)."""


class StorageError(HotfolderError):
    """A folder's filesystem cannot do what never losing a file needs (a no-clobber rename or hard link)."""

    exit_code = 2
