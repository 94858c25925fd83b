"""`hotfolder status` and `retry`: the ledger read (and quarantined inputs put back), no codec loaded."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Final

from hotfolder.commit.ledger import LEDGER_NAME, Ledger
from hotfolder.commit.outbox import SinkState
from hotfolder.commit.requeue import NotInQuarantineError, requeue
from hotfolder.core.status import Status
from hotfolder.errors import EXIT_USAGE
from hotfolder.settings.config import Config


def _open_ledger(config: Config) -> Ledger | None:
    if not (config.state_dir / LEDGER_NAME).exists():
        return None
    return Ledger(config.state_dir, readonly=True)


# A sink failing this long is a problem to act on (status exits 1); shorter is a receiver's restart.
SINK_FAILING_S: Final = 3600


def status(config: Config) -> int:
    ledger = _open_ledger(config)
    rows, totals, groups, sinks = [], {}, 0, []
    if ledger is not None:
        try:
            rows = ledger.summary()
            totals = ledger.counts()
            groups = ledger.groups()
            sinks = ledger.sink_states()
        finally:
            ledger.close()
    print(f"ledger: {config.state_dir / LEDGER_NAME}")
    for watch, status, n in rows:
        print(f"  {watch:20s} {status:12s} {n}")
    print("total: " + (", ".join(f"{s} {n}" for s, n in sorted(totals.items())) or "nothing processed yet"))
    if groups or totals.get(Status.ORPHAN):
        print(f"groups: {groups} pictures done with their companions, {totals.get(Status.ORPHAN, 0)} orphans")
    stuck = _print_sinks(sinks, time.time())
    return 1 if totals.get(Status.QUARANTINED) or totals.get(Status.FAILED) or stuck else 0


def _print_sinks(sinks: list[SinkState], now: float) -> bool:
    """Each [[event]] sink's outbox; True when one has been failing for over SINK_FAILING_S."""
    stuck = False
    for s in sinks:
        line = f"event sink {s.sink}: {s.pending} pending, {s.delivered} delivered, {s.dropped} dropped"
        if s.failing_since is not None:
            minutes = (now - s.failing_since) / 60
            stuck = stuck or now - s.failing_since > SINK_FAILING_S
            line += f"; FAILING for {minutes:.0f} min: {s.last_error}"
        print(line)
    return stuck


def retry(config: Config, paths: list[Path], *, every: bool) -> int:
    if every and paths:
        print("hotfolder: retry --all takes no paths (name files, or use --all alone)", file=sys.stderr)
        return EXIT_USAGE
    if not paths and not every:
        print("hotfolder: name quarantined files, or --all", file=sys.stderr)
        return EXIT_USAGE
    if not (config.state_dir / LEDGER_NAME).exists():
        print(f"hotfolder: nothing is quarantined (no ledger in {config.state_dir})", file=sys.stderr)
        return EXIT_USAGE if paths else 0
    ledger = Ledger(config.state_dir)
    moved, problems = 0, 0
    try:
        entries = ledger.quarantined()
        wanted = {p.absolute(): p for p in paths}
        found = set()
        for entry in entries:
            names = {entry.path, entry.parked, *([entry.note] if entry.note else [])}
            hits = [given for resolved, given in wanted.items() if resolved in names]
            if not every and not hits:
                continue
            found.update(hits)
            try:
                back = requeue(ledger, entry)
            except NotInQuarantineError as exc:
                print(f"hotfolder: {exc}", file=sys.stderr)
                problems += 1
                continue
            print(f"{entry.parked} -> {back}")
            moved += 1
    finally:
        ledger.close()
    for given in paths:
        if given not in found:
            print(f"hotfolder: {given} is not a quarantined input (see `hotfolder status`)", file=sys.stderr)
            problems += 1
    print(f"{moved} input(s) put back", file=sys.stderr)
    return EXIT_USAGE if problems else 0
