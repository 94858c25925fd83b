"""Temp files of jobs that never reached their commit: removed at start, and when a worker dies."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from hotfolder import logs
from hotfolder.commit.ledger import Ledger
from hotfolder.core import tempnames
from hotfolder.core.tempnames import TEMP_MARK, is_temp_name
from hotfolder.settings.config import Config

log = logs.get()


def remove_job_temps(token: str, roots: Iterable[Path]) -> int:
    """Remove the temp files of one job (a worker that died or timed out), found by its token."""
    mark = f"{tempnames.TEMP_MARK}{token}"
    removed = 0
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                if tempnames.is_temp_name(name) and mark in name:
                    with contextlib.suppress(FileNotFoundError):
                        (Path(dirpath) / name).unlink()
                        removed += 1
    return removed


def open_tokens(ledger: Ledger) -> frozenset[str]:
    """The tokens of commits still open: their staged files are not leftovers."""
    return frozenset(i.token for i in ledger.intents())


def remove_leftover_temps(config: Config, *, keep: frozenset[str] = frozenset()) -> int:
    """Temp files left by a killed run are incomplete by definition: remove them before starting
    (except those of a commit that is still open: it needs them to finish)."""
    removed = 0
    marks = [f"{TEMP_MARK}{token}" for token in keep]
    for root in (config.output_root, config.quarantine):
        for dirpath, _, names in os.walk(root):
            for name in names:
                if is_temp_name(name) and not any(m in name for m in marks):
                    (Path(dirpath) / name).unlink(missing_ok=True)
                    removed += 1
    if removed:
        log.warning("startup.temps_removed", files=removed, error="left by an interrupted run")
    return removed
