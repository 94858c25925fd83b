"""Putting a quarantined input back where it came from: what `hotfolder retry` and the status page's
Retry button do (the daemon then sees a moved-in file and processes it)."""

from __future__ import annotations

from pathlib import Path

from hotfolder.commit.dispose import put_back
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.records import Quarantined
from hotfolder.core.status import Status
from hotfolder.errors import HotfolderError


class NotInQuarantineError(HotfolderError):
    """The ledger says quarantined, but the parked file is gone (moved or deleted by hand)."""


def requeue(ledger: Ledger, entry: Quarantined) -> Path:
    """Move the parked file back to its path (numbered if that is taken), drop its note, mark it requeued."""
    if not entry.parked.exists():
        raise NotInQuarantineError(f"{entry.parked} is no longer in quarantine")
    entry.path.parent.mkdir(parents=True, exist_ok=True)
    back = put_back(entry.parked, entry.path)  # a moved-in file: the daemon picks it up
    if entry.note is not None:
        entry.note.unlink(missing_ok=True)
    ledger.mark(entry.path, Status.REQUEUED)
    return back
