"""What the engine does with an outcome that is final: commit it, quarantine the input, or record
it, and log each with the same keys. One owner for the counters a run reports."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from hotfolder import logs
from hotfolder.commit import dispose, group
from hotfolder.commit.committer import CommitIncompleteError, Committed, Committer, as_duplicate, duplicate_of
from hotfolder.commit.dispose import Disposed, Read
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.records import Intent, Record
from hotfolder.commit.staged import Outcome
from hotfolder.core.identity import FileIdentity
from hotfolder.core.status import Result, RetryReason, Status, Tally
from hotfolder.decide.job import Job
from hotfolder.errors import HotfolderError, StateUnwritableError, is_transient
from hotfolder.run.group import members_of
from hotfolder.run.timetable import Timetable
from hotfolder.settings.companions import Companions
from hotfolder.settings.config import Config

log = logs.get()

RETRY_BASE_SECONDS: Final = 2.0  # transient failures wait 2, 4, 8, ... seconds
RETRY_CAP_SECONDS: Final = 300.0  # ... but never more than 5 minutes between attempts
RETRY_MAX_ATTEMPTS: Final = 10  # then the input is quarantined with the last error

# What the user can do about each of hotfolder's own errors, written into every quarantine note.
HINTS: Final = {
    "InputError": "the file itself cannot be used (truncated, corrupt, too large, or not what its name "
    "says); replace it, or fix the limit named above, then run `hotfolder retry PATH`",
    "MissingFieldError": "an output path needs a value this file does not have; give the template a "
    "fallback such as {model|'unknown'}, then run `hotfolder retry PATH`",
    "EncodeError": "an output could not be written or did not verify; the reason above says which; after "
    "fixing the rule or the disk, run `hotfolder retry PATH`",
    "UnsafePathError": "an output or quarantine folder is a link or not a folder; hotfolder never writes "
    "through links: replace it with a real folder, then run `hotfolder retry PATH`",
}


def backoff(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: doubling from RETRY_BASE_SECONDS, capped."""
    return min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2.0 ** (attempts - 1))


def quarantine_note(job: Job, outcome: Outcome, attempts: int) -> dict[str, Any]:
    """The note beside a quarantined input: which of our errors, why, and what to do about it."""
    error_class = outcome.error_class or "InputError"
    note: dict[str, Any] = {
        "src": str(job.src),
        "rule": outcome.rule,
        "watch": job.watch_name,
        "error_class": error_class,
        "error": outcome.error,
        "hint": HINTS.get(error_class, HINTS["InputError"]),
        "attempts": attempts,
    }
    group = members_of(job.src, job.rules)
    if group:
        # They stay where they are, held for their picture: `hotfolder retry` brings the group together.
        note["companions"] = [str(job.src.parent / m) for m in group]
    return note


class Recorder:
    """Commits, quarantines and records, on the daemon's main thread; counts what it did."""

    def __init__(self, config: Config, ledger: Ledger, timetable: Timetable) -> None:
        self.config = config
        self.ledger = ledger
        self.timetable = timetable
        self.committer = Committer(ledger, output_root=config.output_root)
        self.counts: dict[str, int] = dict.fromkeys(Tally, 0)
        # Failed attempts so far, per input path and per open intent id: written only here.
        self.attempts: dict[Path | int, int] = {}
        # While the state disk cannot be written (full, failing, read-only): why, and what waits for it.
        # Nothing is retried until `resume` finds the ledger writable again, in the order it happened.
        self.unwritable: str | None = None
        self.episode = False  # from the first failure until everything that waited is written
        self.waiting_records: list[Record] = []
        self.waiting_commits: list[tuple[Job, Outcome]] = []

    def count(self, what: Tally) -> None:
        """One more of `what` in this run's counters."""
        self.counts[what] += 1

    def record(self, record: Record) -> None:
        """A verdict without outputs (unmatched, empty, failed); kept to write later while the state disk
        cannot be written."""
        if self.unwritable is not None:
            self.waiting_records.append(record)
            return
        try:
            self.ledger.record(record)
        except StateUnwritableError as exc:
            self.waiting_records.append(record)
            self.state_unwritable(exc)

    def state_unwritable(self, exc: StateUnwritableError) -> None:
        """Say it once, loudly; from now on new work waits (the engine asks `unwritable`)."""
        if not self.episode:
            log.error("state.unwritable", dst=str(self.config.state_dir), error=str(exc))
        self.episode = True
        self.unwritable = str(exc)

    def resume(self) -> list[tuple[Job, Outcome]] | None:
        """Write what waited, in order, once the ledger takes writes again: the rows, then the commits
        whose intent was written (finished, never redone). Returns the commits that never reached their
        intent, to be committed afresh; None (nothing lost) while the ledger still cannot be written."""
        try:
            while self.waiting_records:
                self.ledger.record(self.waiting_records[0])
                self.waiting_records.pop(0)
            opened = self.ledger.intents()
        except StateUnwritableError as exc:
            self.unwritable = str(exc)
            return None
        self.unwritable = None
        for intent in opened:
            self.finish(intent)
            if self.unwritable is not None:
                return None
        finished = {i.token for i in opened}
        again = [(job, outcome) for job, outcome in self.waiting_commits if job.token not in finished]
        self.waiting_commits.clear()
        return again

    def recovered(self) -> None:
        """Everything that waited is written: said once, the end of the episode."""
        if self.episode and self.unwritable is None:
            self.episode = False
            log.info("state.writable", dst=str(self.config.state_dir))

    def orphan(
        self, path: Path, spec: Companions, identity: FileIdentity, *, watch: str | None, rules_fp: str
    ) -> None:
        """A companion-shaped file without its picture: it follows a picture moved within `late`,
        else it stays where it is (never quarantined)."""
        try:
            disposed, picture = group.late(
                path, spec, self.ledger, self.config.output_root, now=datetime.now(UTC)
            )
        except OSError as exc:
            disposed, picture = Disposed("kept", why=f"cannot follow its picture: {exc.strerror or exc}"), ""
        if disposed.result == "moved":
            log.info("companion.moved", src=str(path), dst=str(disposed.where), picture=picture, late=True)
            return
        log.info("companion.orphan", src=str(path), picture=picture or None, error=disposed.why)
        self.record(Record(path, identity, Status.ORPHAN, watch=watch, rules_fp=rules_fp, error=disposed.why))
        self.count(Tally.ORPHAN)

    # Commits ------------------------------------------------------------------------------------

    def commit(self, job: Job, outcome: Outcome) -> Committed | Outcome | None:
        """Commit staged outputs (or a duplicate's verdict): what was committed; None when it waits
        (the state disk) or is finished later (an open intent); otherwise the outcome to handle instead:
        a retry, or a broken input."""
        if outcome.result is Result.STAGED and (twin := duplicate_of(self.ledger, outcome, job)) is not None:
            outcome = as_duplicate(outcome, twin)  # identical files arriving together: one is done
        duplicate = outcome.result is Result.DUPLICATE
        assert outcome.identity is not None
        record = Record(
            path=job.src,
            identity=outcome.identity,
            status=Status.DUPLICATE if duplicate else Status.DONE,
            sha256=outcome.sha256,
            rule=outcome.rule,
            chain=outcome.chain,
            watch=job.watch_name,
            attempts=self.attempts.pop(job.src, 0) + 1,
            orientation=outcome.orientation,
            error=f"same content as {outcome.twin}" if duplicate and outcome.twin else None,
            ms=outcome.ms or None,
        )
        if self.unwritable is not None:
            self.waiting_commits.append((job, outcome))  # its staged files wait with it
            return None
        try:
            committed = self.committer.commit(job, outcome, record)
        except StateUnwritableError as exc:
            # Before its intent: nothing visible, committed afresh later. After it: finished by `resume`.
            self.waiting_commits.append((job, outcome))
            self.state_unwritable(exc)
            return None
        except CommitIncompleteError as exc:
            self._incomplete(exc, job.src)
            return None
        except OSError as exc:  # before the first rename: nothing is visible
            if is_transient(exc):
                return replace(
                    outcome,
                    result=Result.RETRY,
                    retry=RetryReason.TRANSIENT,
                    error=f"{exc.strerror or exc} ({exc.filename})",
                )
            return replace(
                outcome,
                result=Result.BROKEN,
                error_class="EncodeError",
                error=f"EncodeError: cannot put outputs in place: {exc}",
            )
        except HotfolderError as exc:
            return replace(
                outcome,
                result=Result.BROKEN,
                error_class=type(exc).__name__,
                error=f"{type(exc).__name__}: {exc}",
            )
        self._log_committed(committed, outcome, fresh=True)
        return committed

    def _log_committed(self, committed: Committed, outcome: Outcome | None, *, fresh: bool) -> None:
        record, src = committed.record, str(committed.record.path)
        for w in committed.written:
            log.info(
                f"output.{w.action}",
                src=src,
                dst=str(w.dst),
                rule=w.rule,
                format=w.format,
                bytes_in=record.identity.size,
                bytes_out=w.bytes_out,
                ms=w.ms,
            )
        disposed = committed.disposed
        if disposed.why is not None:
            log.warning(
                "original.kept",
                src=src,
                rule=record.rule,
                error=disposed.why,
                dst=str(disposed.where) if disposed.where else None,
            )
        for c in committed.companions:
            where = str(c.disposed.where) if c.disposed.where else None
            log.info(
                f"companion.{c.disposed.result}",
                src=str(c.src),
                dst=where,
                rule=record.rule,
                picture=src,
                role=c.role,
                error=c.disposed.why,
            )
        if not fresh:
            log.info("intent.finished", src=src, rule=record.rule, original=disposed.summary)
        if record.status == Status.DUPLICATE:
            log.info(
                "file.duplicate", src=src, rule=record.rule, error=record.error, original=disposed.summary
            )
            self.count(Tally.DUPLICATE)
            return
        job: dict[str, Any] = {"format": None, "ms": None, "started_at": None}  # an intent finished at start
        if outcome is not None:
            job = {"format": outcome.format, "ms": outcome.ms, "started_at": outcome.started_at}
        log.info(
            "job.done",
            src=src,
            rule=record.rule,
            bytes_in=record.identity.size,
            original=disposed.summary,
            **job,
        )
        self.count(Tally.DONE)

    def _incomplete(self, exc: CommitIncompleteError, src: Path) -> None:
        """Outputs are in place, the rest failed: finish the intent later."""
        attempts = self.attempts.get(exc.intent_id, 0) + 1
        self.attempts[exc.intent_id] = attempts
        delay = backoff(attempts)
        log.error("commit.incomplete", src=str(src), error=str(exc), attempt=attempts, retry_in_s=delay)
        self.timetable.later(delay, intent=exc.intent_id)

    def finish_intent(self, intent_id: int) -> None:
        """Finish the open intent with this id, if it is still open."""
        intent = next((i for i in self.ledger.intents() if i.id == intent_id), None)
        if intent is not None:
            self.finish(intent)

    def finish(self, intent: Intent) -> None:
        """Complete an intent left open (at start, or as a retry); past the cap, the original is kept."""
        if self.unwritable is not None:
            return  # `resume` finishes every open intent
        try:
            committed = self.committer.finish(intent)
        except StateUnwritableError as exc:
            self.state_unwritable(exc)
            return
        except CommitIncompleteError as exc:
            if self.attempts.get(intent.id, 0) + 1 < RETRY_MAX_ATTEMPTS:
                self._incomplete(exc, intent.path)
                return
            why = f"could not be disposed of after {RETRY_MAX_ATTEMPTS} attempts: {exc}"
            record = replace(intent.record, original=f"kept: {why}")
            try:
                self.ledger.close_intent(intent.id, record)
            except StateUnwritableError as unwritable:
                self.state_unwritable(unwritable)
                return
            committed = Committed(record, (), Disposed("kept", why=why))
        self.attempts.pop(intent.id, None)
        self._log_committed(committed, None, fresh=False)

    def failed_attempt(self, src: Path) -> int | None:
        """Count a transient failure of `src`: the number of this attempt when another one is allowed,
        None when it was the last (the quarantine that follows counts it)."""
        attempts = self.attempts.get(src, 0) + 1
        if attempts >= RETRY_MAX_ATTEMPTS:
            return None
        self.attempts[src] = attempts
        return attempts

    # Quarantine ---------------------------------------------------------------------------------

    def quarantine(self, job: Job, outcome: Outcome) -> bool:
        """Park a broken input with a note; False when it turned out not to be the file that was read
        (the caller offers it again)."""
        assert outcome.identity is not None
        attempts = self.attempts.pop(job.src, 0) + 1
        read = Read(job.src, outcome.identity, outcome.sha256, outcome.read_ns)
        note = quarantine_note(job, outcome, attempts)
        try:
            result = dispose.quarantine(
                read, self.config.quarantine / job.relpath, self.config.quarantine, note
            )
        except (OSError, HotfolderError) as exc:
            why = f"could not quarantine: {exc}; {outcome.error}"
            log.error("job.failed", src=str(job.src), error=why)  # noqa: TRY400 - expected: no traceback
            error = f"{outcome.error}; not quarantined: {exc}"
            self.record(
                Record(
                    job.src,
                    outcome.identity,
                    Status.FAILED,
                    rule=outcome.rule,
                    watch=job.watch_name,
                    attempts=attempts,
                    error=error,
                )
            )
            self.count(Tally.FAILED)
            return True
        if isinstance(result, Disposed):
            log.info("job.deferred", src=str(job.src), error=f"{result.why}; {outcome.error}")
            return False
        parked, note_file = result
        self.record(
            Record(
                job.src,
                outcome.identity,
                Status.QUARANTINED,
                sha256=outcome.sha256,
                rule=outcome.rule,
                watch=job.watch_name,
                attempts=attempts,
                error=outcome.error,
                quarantined_to=str(parked),
                note=str(note_file),
                ms=outcome.ms or None,
            )
        )
        log.error(
            "job.quarantined",
            src=str(job.src),
            dst=str(parked),
            rule=outcome.rule,
            error=outcome.error,
            ms=outcome.ms,
        )
        self.count(Tally.QUARANTINED)
        return True

    def empty(self, path: Path, identity: FileIdentity, watch: str, waited: float | None) -> None:
        """An empty file left alone (at once in `process`, after `waited` seconds in the daemon)."""
        self.record(Record(path, identity, Status.EMPTY, watch=watch))
        said = f"0 bytes for {waited:g} s" if waited is not None else "0 bytes"
        log.warning("file.empty", src=str(path), error=f"{said}: left alone, not quarantined")
        self.count(Tally.EMPTY)
