"""The commit, in the daemon: every visible change a job makes happens here, in this order.

1. Names: each staged output gets its final name ({seq} is counted now, `on_conflict` decided by
   looking at what is there), and so does the original's destination.
2. Intent: the input's identity and SHA-256 and every destination, written to the ledger.
3. Renames: each output into place, then one fsync per folder.
4. The original: deleted, moved or kept; exactly the file that was read (dispose.py); then its
   companions, the same way, beside it (group.py).
5. Done: the ledger row written and the intent closed, in one transaction.

A failure before the first rename leaves nothing visible (the temps are removed). After it, the
intent stays open and is finished, never redone: at the next start, or by the retry.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, replace
from pathlib import Path

from hotfolder.commit import atomic, dispose, group
from hotfolder.commit.dispose import Disposed, Read
from hotfolder.commit.faults import checkpoint
from hotfolder.commit.group import CompanionDisposed
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.plan import Plan, PlannedDisposal, PlannedOutput
from hotfolder.commit.records import Intent, Record
from hotfolder.commit.staged import Outcome, StagedOutput
from hotfolder.core import tempnames
from hotfolder.core.digest import file_sha256
from hotfolder.core.identity import FileIdentity
from hotfolder.core.status import Result
from hotfolder.decide.job import Job
from hotfolder.decide.naming import SEQ_MARK
from hotfolder.errors import HotfolderError, StateUnwritableError


@dataclass(frozen=True)
class Written:
    """An output as it ended: where, what happened there, and how long it took to make."""

    dst: Path
    format: str
    bytes_out: int
    action: str  # written | identical | skipped | overwritten
    rule: str = ""
    ms: float = 0.0


@dataclass(frozen=True)
class Committed:
    """A finished commit: the ledger row, each output, and what became of the original."""

    record: Record
    written: tuple[Written, ...]
    disposed: Disposed
    companions: tuple[CompanionDisposed, ...] = ()


class CommitIncompleteError(HotfolderError):
    """Outputs are in place but the commit could not be finished; its intent stays open for a retry."""

    def __init__(self, intent_id: int, cause: OSError | HotfolderError) -> None:
        self.intent_id = intent_id
        if isinstance(cause, OSError):
            super().__init__(
                f"outputs are in place, but {cause.filename or 'a file'}: {cause.strerror or cause}"
            )
        else:
            super().__init__(f"outputs are in place, but {cause}")


def _choose(
    out: StagedOutput, final: Path, taken: set[Path], ours: frozenset[str] = frozenset()
) -> tuple[Path, str]:
    """The name an output takes and what happens there, by looking at what the name holds now. A name
    holding this very input's own earlier output (`ours`: from its done row, same path and bytes) is
    replaced: a forced run, or a release whose encoder writes other bytes, makes no `-1` twin beside it."""
    if out.on_conflict == "overwrite":
        there = final.exists() or final.is_symlink() or final in taken
        return final, "overwritten" if there else "written"
    for n in range(10_000):
        candidate = tempnames.numbered(final, n, out.counter_format)
        occupied = candidate in taken or candidate.exists() or candidate.is_symlink()
        if not occupied:
            return candidate, "written"
        if out.on_conflict == "skip":
            return candidate, "skipped"
        if (
            out.on_conflict == "skip_identical"
            and candidate not in taken
            and candidate.is_file()
            and not candidate.is_symlink()
            and candidate.stat().st_size == out.size
            and file_sha256(candidate) == out.sha256
        ):
            return candidate, "identical"
        if (
            out.on_conflict == "skip_identical"
            and str(candidate) in ours
            and candidate not in taken
            and candidate.is_file()
            and not candidate.is_symlink()
        ):
            return candidate, "overwritten"
    raise FileExistsError(errno.EEXIST, "no free name", str(final))


class Committer:
    """Commits what workers staged, and finishes what an interrupted commit left open."""

    def __init__(self, ledger: Ledger, *, output_root: Path) -> None:
        self.ledger = ledger
        self.output_root = output_root

    # A fresh commit ----------------------------------------------------------------------------

    def commit(self, job: Job, outcome: Outcome, record: Record) -> Committed:
        """Commit one staged (or duplicate) outcome; `record` is its ledger row, without the outputs.
        A failure before the first rename leaves output_root as it was: the staged files and the folders
        the worker made for them are removed (a full state disk keeps them: the commit waits)."""
        try:
            return self._commit(job, outcome, record)
        except (CommitIncompleteError, StateUnwritableError):
            raise
        except (OSError, HotfolderError):
            discard(outcome)
            raise

    def _commit(self, job: Job, outcome: Outcome, record: Record) -> Committed:
        assert outcome.identity is not None and outcome.sha256 is not None
        seqs: dict[str, int] = {}

        def numbered_seq(path: Path | None, rule: str | None) -> Path | None:
            if path is None or SEQ_MARK not in str(path):
                return path
            assert rule is not None
            if rule not in seqs:
                seqs[rule] = self.ledger.next_seq(rule)
            return Path(str(path).replace(SEQ_MARK, str(seqs[rule])))

        outputs = []
        taken: set[Path] = set()
        ours = self.ledger.own_outputs(job.src, outcome.sha256)
        for out in outcome.outputs:
            final = numbered_seq(out.final, out.rule)
            assert final is not None
            name, action = _choose(out, final, taken, ours | self._earlier(out))
            taken.add(name)
            outputs.append(
                PlannedOutput(
                    temp=out.temp,
                    final=name,
                    action=action,
                    format=out.format,
                    rule=out.rule,
                    size=out.size,
                    sha256=out.sha256,
                    ms=out.ms,
                    policy=out.on_conflict,
                    counter_format=out.counter_format,
                )
            )
        d = outcome.disposal
        disposal = PlannedDisposal(d.policy, why=d.why)
        picture_dest = None
        if d.policy == "move":
            dest = numbered_seq(d.dest, d.rule)
            assert dest is not None
            picture_dest = group.group_dest(dest, outcome.companions, taken)
            disposal = PlannedDisposal(d.policy, picture_dest, d.staged)
        plan = Plan(
            token=job.token,
            read_ns=outcome.read_ns,
            outputs=tuple(outputs),
            disposal=disposal,
            companions=group.plan(outcome.companions, picture_dest),
        )
        intent = self.ledger.open_intent(outcome.identity, outcome.sha256, job.token, plan, record)
        checkpoint("after-intent")
        return self._finish(intent, outcome.identity, outcome.sha256, record, plan, fresh=True)

    def _earlier(self, out: StagedOutput) -> frozenset[str]:
        """The names holding this source's own output by an earlier encoder (a previous release) that
        the ledger has no word on (its row was lost: a rebuilt ledger): replaced rather than twinned.
        Only while the file is exactly what the worker judged, and never one the ledger gives another."""
        return frozenset(
            str(path)
            for path, seen in out.earlier
            if (now := FileIdentity.at(path)) is not None
            and (now.ino, now.size, now.mtime_ns) == (seen.ino, seen.size, seen.mtime_ns)
            and not self.ledger.knows_output(path)
        )

    # Finishing (a fresh commit, a retry, or a restart) ------------------------------------------

    def finish(self, intent: Intent) -> Committed:
        """Complete an intent left open by a crash or a failure after its first rename."""
        return self._finish(
            intent.id, intent.identity, intent.sha256, intent.record, intent.plan, fresh=False
        )

    def _finish(
        self,
        intent: int,
        identity: FileIdentity,
        sha256: str,
        record: Record,
        plan: Plan,
        *,
        fresh: bool,
    ) -> Committed:
        read = Read(record.path, identity, sha256, plan.read_ns)
        renamed = False
        try:
            written, plan = self._place_outputs(intent, plan, fresh=fresh)
            renamed = True
            checkpoint("after-renames")
            disposed = self._dispose(read, plan, fresh=fresh)
            companions = group.dispose_all(
                plan.companions, disposed, token=plan.token, root=self.output_root, fresh=fresh
            )
            checkpoint("after-disposal")
        except (OSError, HotfolderError) as exc:
            if isinstance(exc, StateUnwritableError):
                raise
            if fresh and not renamed:
                self.ledger.close_intent(intent, None)  # nothing is visible: `commit` discards the rest
                raise
            raise CommitIncompleteError(intent, exc) from exc
        outputs = tuple(str(w.dst) for w in written)
        done = replace(
            record,
            outputs=outputs,
            original=disposed.summary,
            companions=tuple(c.summary() for c in companions),
        )
        self.ledger.close_intent(intent, done, plan)
        return Committed(done, tuple(written), disposed, companions)

    def _place_outputs(self, intent: int, plan: Plan, *, fresh: bool) -> tuple[list[Written], Plan]:
        """Rename every staged output into place; what was written, and the plan with the names taken."""
        written, folders, placed = [], set(), []
        for out in plan.outputs:
            final = out.final
            if out.action in ("identical", "skipped"):
                out.temp.unlink(missing_ok=True)
            elif out.temp.exists():
                atomic.make_folder(final.parent, self.output_root)
                if out.action == "overwritten":
                    out.temp.replace(final)
                else:
                    final = self._rename_free(out)
                folders.add(final.parent)
            elif not fresh and final.exists():
                pass  # renamed before the interruption
            else:
                raise FileNotFoundError(
                    errno.ENOENT, "the staged output vanished before its rename", str(out.temp)
                )
            placed.append(replace(out, final=final))
            written.append(
                Written(
                    dst=final,
                    format=out.format,
                    bytes_out=out.size,
                    action=out.action,
                    rule=out.rule,
                    ms=out.ms,
                )
            )
        if any(p.final != o.final for p, o in zip(placed, plan.outputs, strict=True)):
            plan = replace(plan, outputs=tuple(placed))
            self.ledger.update_intent(intent, plan)
        for folder in folders:
            atomic.fsync_dir(folder)
        return written, plan

    def _rename_free(self, out: PlannedOutput) -> Path:
        """Rename into its final name; if someone took it since it was chosen, the next name the policy
        allows."""
        try:
            atomic.rename_noreplace(out.temp, out.final)
        except FileExistsError:
            if file_sha256(out.final) == out.sha256:
                out.temp.unlink()  # the same bytes: this output is already there (a redo after a crash)
                return out.final
            staged = StagedOutput(
                out.temp,
                out.final,
                out.rule,
                out.format,
                out.size,
                out.sha256,
                out.policy,
                out.counter_format,
            )
            name, action = _choose(staged, out.final, set())
            if action != "written":
                out.temp.unlink()
                return name
            atomic.rename_noreplace(out.temp, name)
            return name
        return out.final

    def _dispose(self, read: Read, plan: Plan, *, fresh: bool) -> Disposed:
        d = plan.disposal
        if d.policy == "keep":
            return Disposed("kept", why=d.why)
        if d.policy == "delete":
            hidden = dispose.hidden_name(read, plan.token)
            if not fresh and FileIdentity.at(hidden) is not None:
                return dispose.finish_delete(read, hidden)
            if not fresh and FileIdentity.at(read.path) is None:
                return Disposed("deleted")  # deleted before the interruption
            return dispose.delete(read, plan.token)
        assert d.dest is not None
        dest = d.dest
        if d.staged is not None:
            if d.staged.exists():
                dest = dispose.place_copy(d.staged, dest, self.output_root)
            elif fresh or file_sha256(dest) != read.sha256:
                raise FileNotFoundError(errno.ENOENT, "the copy of the original vanished", str(d.staged))
            # The copy is in place: only the unlink of the source remains (never a second copy).
            return dispose.unlink_copied(read, dest)
        if not fresh and FileIdentity.at(dest) == read.identity:
            return Disposed("moved", where=dest)  # moved before the interruption
        return dispose.move(read, dest, self.output_root)


def duplicate_of(ledger: Ledger, outcome: Outcome, job: Job) -> Path | None:
    """The input already done with this one's bytes by the same chain, unless forced."""
    if job.force or outcome.sha256 is None or outcome.chain is None:
        return None
    return ledger.done_twin(outcome.sha256, outcome.chain, job.src)


def as_duplicate(outcome: Outcome, twin: Path) -> Outcome:
    """The outcome of a job whose bytes turned out to be done already: no outputs, the original per policy."""
    for out in outcome.outputs:
        out.temp.unlink(missing_ok=True)
    atomic.remove_made(list(outcome.made))  # those still empty: a move's folder keeps its staged copy
    return replace(outcome, result=Result.DUPLICATE, outputs=(), twin=twin)


def discard(outcome: Outcome) -> None:
    """A staged outcome that will not be committed: its temp files, its staged copy of the original, then
    the folders the worker made for them (each only while empty), so output_root is as it was."""
    for out in outcome.outputs:
        out.temp.unlink(missing_ok=True)
    if outcome.disposal.staged is not None:
        outcome.disposal.staged.unlink(missing_ok=True)
    atomic.remove_made(list(outcome.made))
