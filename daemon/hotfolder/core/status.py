"""The names of what can happen to an input: one owner for the words the ledger, logs and counters use."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """An input's status as the ledger stores it (its values are the ledger's column values)."""

    DONE = "done"
    QUARANTINED = "quarantined"
    UNMATCHED = "unmatched"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    EMPTY = "empty"
    REQUEUED = "requeued"
    ORPHAN = "orphan"  # a companion-shaped file (a sidecar, a video) with no picture: left where it is


class Result(StrEnum):
    """What a worker's job came back with, before the daemon commits or records it."""

    STAGED = "staged"  # every output written, synced and verified beside its final name
    UNMATCHED = "unmatched"
    DUPLICATE = "duplicate"  # the same bytes were already done by the same rule chain
    BROKEN = "broken"  # a permanent problem with the input: quarantined once it holds still
    RETRY = "retry"  # try again later (see RetryReason)
    GONE = "gone"  # the file disappeared before it could be read


class RetryReason(StrEnum):
    """Why a job is tried again: a file still being written, or a failure outside the file."""

    DEFERRED = "deferred"  # the source changed while it was read: look again once it holds still
    TRANSIENT = "transient"  # disk full, a share gone, EACCES while a writer holds it: back off


class Tally(StrEnum):
    """What a run counts (the `daemon.stopped` event, `process`' summary, systemd's status line)."""

    DONE = Status.DONE.value
    QUARANTINED = Status.QUARANTINED.value
    UNMATCHED = Status.UNMATCHED.value
    DUPLICATE = Status.DUPLICATE.value
    FAILED = Status.FAILED.value
    SKIPPED = "skipped"  # known and unchanged: not looked at again
    RETRIED = "retried"
    EMPTY = Status.EMPTY.value
    ORPHAN = Status.ORPHAN.value
