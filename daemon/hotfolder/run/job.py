"""One job in a worker: read the input once, decide, name every output, decode once, stage and verify.

A worker never makes anything visible and never touches the state folder: it writes each output
to a synced temp file beside its final name (named with the job's token), verifies it, and returns
what it staged. The daemon then commits (names, intent, renames, the original, the ledger), so
every visible change happens in one process, in one order (commit/committer.py). A job is plain picklable
data and run_job a plain function, so any concurrent.futures.Executor can run it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from PIL import Image

from hotfolder.commit import atomic
from hotfolder.commit.staged import Disposal, Outcome, StagedOutput
from hotfolder.core import tempnames
from hotfolder.core.formats import RAW
from hotfolder.core.identity import FileIdentity
from hotfolder.core.status import Result, RetryReason
from hotfolder.core.template import render_text
from hotfolder.decide.facts import content_facts, raw_facts
from hotfolder.decide.header import identify
from hotfolder.decide.inspect import examine
from hotfolder.decide.job import Job
from hotfolder.decide.match import Content, Facts, decide
from hotfolder.decide.naming import SEQ_MARK, chain_key, output_path, template_values
from hotfolder.decide.raw import RawHeader
from hotfolder.decide.raw import inspect as inspect_raw
from hotfolder.decide.read import open_regular, read_bounded, sniffed
from hotfolder.decide.sniff import raw_name
from hotfolder.errors import HotfolderError, InputError, NotRegularError, is_transient
from hotfolder.render import stamp
from hotfolder.render.decode import Source, decode
from hotfolder.render.develop import Developed, develop
from hotfolder.render.encode import encode
from hotfolder.render.notes import Notes
from hotfolder.render.policy import output_metadata
from hotfolder.render.transform import render as render_output
from hotfolder.render.verify import verify
from hotfolder.settings.outputs import Output
from hotfolder.settings.rules import Rule


@dataclass
class _Work:
    base: Outcome
    staged: list[StagedOutput] = field(default_factory=list)
    copy: Path | None = None
    resized: dict[int, Image.Image] = field(default_factory=dict)  # max_edge -> shrunk source
    notes: Notes = field(default_factory=Notes)

    def discard(self) -> None:
        for s in self.staged:
            s.temp.unlink(missing_ok=True)
        if self.copy is not None:
            self.copy.unlink(missing_ok=True)


# The job ------------------------------------------------------------------------------------------


def run_job(job: Job) -> Outcome:
    """Handle one input up to its staged outputs; never raises for a bad input (it comes back BROKEN)."""
    started = time.perf_counter()
    began = datetime.now(UTC).isoformat(timespec="microseconds")
    work = _Work(base=Outcome(job.src, Result.BROKEN))
    try:
        with warnings.catch_warnings(record=True) as seen:
            outcome = _run(job, work)
        for w in seen:
            work.notes.warn("decoder.warning", error=f"{w.category.__name__}: {w.message}")
    except NotRegularError as exc:
        outcome = Outcome(job.src, Result.GONE, error=str(exc))
    except FileNotFoundError:
        outcome = Outcome(job.src, Result.GONE)
    except HotfolderError as exc:
        outcome = _broken(work.base, type(exc).__name__, str(exc))
    except OSError as exc:
        if is_transient(exc) or exc.errno in (errno.EACCES, errno.EPERM):
            # A share gone, a disk error, or a file its writer still holds without read permission:
            # not the file's fault (yet). Retried with backoff, quarantined past the cap.
            outcome = replace(work.base, result=Result.RETRY, retry=RetryReason.TRANSIENT,
                              error=f"{exc.strerror or exc} ({exc.filename or job.src})")  # fmt: skip
        else:
            why = f"cannot read or write {exc.filename or job.src}: {exc.strerror or exc}"
            outcome = _broken(work.base, "InputError", why)
    # The one broad boundary per job: whatever went wrong, the input is parked and the daemon goes on.
    except Exception as exc:  # noqa: BLE001
        work.notes.warn("job.crashed", error=f"{type(exc).__name__}: {exc}",
                        traceback=traceback.format_exc(limit=8))  # fmt: skip
        why = (f"internal error ({exc}); the job.crashed log event has the details; the input is kept in "
               "quarantine, please report this with its note")  # fmt: skip
        outcome = _broken(work.base, "EncodeError", why)
    if outcome.result is not Result.STAGED:
        work.discard()
    return replace(outcome, ms=_ms(started), started_at=began, notes=tuple(work.notes.items) + outcome.notes)


def _broken(base: Outcome, error_class: str, error: str) -> Outcome:
    return replace(base, result=Result.BROKEN, error_class=error_class, error=f"{error_class}: {error}")


def _run(job: Job, work: _Work) -> Outcome:
    fd, st = open_regular(job.src)
    try:
        identity = FileIdentity.of(st)
        work.base = replace(work.base, identity=identity, bytes_in=st.st_size)
        fmt, by_content = sniffed(fd, job.relpath)
        if fmt != RAW and raw_name(job.relpath):
            said = f"named as camera RAW, but its content is {str(fmt).upper()}: handled as what it is"
            work.notes.warn("file.misnamed", error=said)
        facts = Facts(relpath=job.relpath, watch=job.watch, size=st.st_size, format=fmt,
                      watch_path=str(job.watch_path) if job.watch_path else None)  # fmt: skip
        maybe = decide(job.rules, facts, partial=True).rules
        if not maybe:
            return Outcome(job.src, Result.UNMATCHED, identity=identity, bytes_in=st.st_size)
        work.base = replace(work.base, rule="+".join(r.name for r in maybe))
        if st.st_size == 0:
            return Outcome(job.src, Result.BROKEN, identity=identity, error_class="InputError",
                           error="InputError: the file is empty (0 bytes)")  # fmt: skip
        read_ns = time.time_ns()
        data = read_bounded(fd, st, fmt, by_content=by_content, max_pixels=job.max_pixels)
        after = FileIdentity.of(os.fstat(fd))
    finally:
        os.close(fd)
    if after != identity or (job.seen is not None and job.seen != identity):
        return Outcome(job.src, Result.RETRY, identity=identity, retry=RetryReason.DEFERRED,
                       error="the file changed while it was read")  # fmt: skip
    work.base = replace(work.base, read_ns=read_ns)
    return _stage(job, data, facts, st, work)


def _stage(job: Job, data: bytes, facts: Facts, st: os.stat_result, work: _Work) -> Outcome:
    base = replace(work.base, result=Result.STAGED)
    opened: Image.Image | None = None
    header: RawHeader | None = None
    unusable: InputError | None = None  # a broken RAW: quarantined only if a RAW rule takes it
    if facts.format == RAW:
        try:
            header = inspect_raw(data, max_pixels=job.max_pixels)
        except InputError as exc:
            unusable = exc
        content = raw_facts(header, st.st_mtime) if header is not None else None
    else:
        with warnings.catch_warnings():
            # Past max_image_pixels: decode() refuses it with the limit in the message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                opened = identify(data, max_pixels=job.max_pixels)
            except InputError:
                opened = None  # decode() says why, when a rule wants the pixels
        content = content_facts(data, st.st_mtime, opened)
        if content is None:
            opened = None  # it failed part way (a truncated file): decode() opens afresh and says why
    facts = replace(facts, content=content)
    chain = examine(data, job.relpath, job.rules, facts=facts).rules
    if not chain:
        return replace(base, result=Result.UNMATCHED)
    if unusable is not None:
        raise unusable
    digest = hashlib.sha256(data).hexdigest()
    key = chain_key(chain)
    base = work.base = replace(base, rule="+".join(r.name for r in chain), chain=key, sha256=digest)
    # Every name first: a template that cannot render fails the job before anything is written.
    names = _names(job, chain, content, digest)
    disposal = _disposal(job, chain, content, digest)
    twin = next((Path(p) for sha, c, p in job.twins if sha == digest and c == key), None)
    if twin is not None and not job.force:
        # The same bytes were already done by this chain: no outputs again, but the original
        # still follows the rule's policy (a re-imported card is cleaned up too).
        if disposal.policy == "move":
            disposal = _stage_move(job, disposal, data, digest, work)
        return replace(base, result=Result.DUPLICATE, disposal=disposal, twin=twin)
    sources = _sources(job, data, (header, opened), chain=chain, names=names, work=work)
    if header is not None:
        base = work.base = replace(base, format=RAW, orientation=header.orientation)
    elif isinstance(sources, Source):
        base = work.base = replace(base, format=sources.format, orientation=sources.orientation)
    for index, name in enumerate(names):
        work.staged.append(
            _stage_output(
                job,
                work,
                data=data,
                digest=digest,
                st=st,
                source=_source_for(sources, name[1], work),
                index=index,
                name=name,
            )
        )
    if disposal.policy == "move":
        disposal = _stage_move(job, disposal, data, digest, work)
    return replace(base, outputs=tuple(work.staged), disposal=disposal)


def _sources(job: Job, data: bytes, parsed: tuple[RawHeader | None, Image.Image | None], *,
             chain: tuple[Rule, ...], names: list[tuple[Rule, Output, Path, stamp.Stamped]],
             work: _Work) -> Source | Developed | None:  # fmt: skip
    """The decoded source every encoded output shares; for a RAW, its developed previews and renders.
    `parsed`: the RAW's header, or the image already opened by identify()."""
    outputs = [o for _, o, _, _ in names if o.format != "copy"]
    if not outputs:
        return None
    header, opened = parsed
    if header is not None:
        return develop(data, header, outputs, max_pixels=job.max_pixels)
    source = decode(data, max_pixels=job.max_pixels, edge=_largest_edge(chain), opened=opened)
    for loss in source.losses:
        work.notes.warn("auxiliary.dropped", error=loss)
    for damage in source.damaged:
        work.notes.warn("metadata.damaged", item=damage.split(" ", 1)[0], error=damage)
    return source


def _source_for(sources: Source | Developed | None, output: Output, work: _Work) -> Source | None:
    if sources is None or output.format == "copy":
        return None
    return sources.source(output, work.notes) if isinstance(sources, Developed) else sources


def _stage_output(job: Job, work: _Work, *, data: bytes, digest: str, st: os.stat_result,
                  source: Source | None, index: int,
                  name: tuple[Rule, Output, Path, stamp.Stamped]) -> StagedOutput:  # fmt: skip
    """One output written to its temp file beside its final name, synced and verified."""
    rule, output, final, stamped = name
    t0 = time.perf_counter()
    folder = _staging_folder(final, job.output_root)
    atomic.make_folder(folder, job.output_root)
    temp = tempnames.temp_path(folder / final.name.replace(SEQ_MARK, "seq"), token=f"{job.token}{index:02x}")
    if output.format == "copy" or source is None:
        staged = atomic.stage_at(temp, lambda fp: fp.write(data))
        written = staged.temp.read_bytes()
        if hashlib.sha256(written).hexdigest() != digest:
            raise atomic.StagingError(f"copy {staged.temp} does not match the source")
    else:
        rendered = render_output(source, output, work.notes, work.resized)
        rendered.meta = output_metadata(source, rendered, output, work.notes, stamped)
        staged = atomic.stage_at(temp, partial(encode, rendered, output, notes=work.notes))
        written = staged.temp.read_bytes()
        verify(written, rendered, output)
    _finish_file(staged.temp, job, st)
    return StagedOutput(temp=staged.temp, final=final, rule=rule.name, format=output.format, size=staged.size,
                        sha256=hashlib.sha256(written).hexdigest(), on_conflict=output.on_conflict,
                        counter_format=output.counter_format, ms=_ms(t0))  # fmt: skip


def _names(
    job: Job, chain: tuple[Rule, ...], content: Content | None, digest: str
) -> list[tuple[Rule, Output, Path, stamp.Stamped]]:
    """Every output's name and stamp, rendered before anything is decoded or written."""
    names: list[tuple[Rule, Output, Path, stamp.Stamped]] = []
    for rule in chain:
        values = template_values(job, rule, content, digest)
        for output in rule.outputs:
            stamped: dict[str, str | tuple[str, ...]] = {}
            for key, templates in output.stamp:
                if isinstance(templates, tuple):
                    stamped[key] = tuple(render_text(t, values) for t in templates)
                else:
                    stamped[key] = render_text(templates, values)
            names.append((rule, output, output_path(output.path, job.output_root, values), stamped))
    return names


def _disposal(job: Job, chain: tuple[Rule, ...], content: Content | None, digest: str) -> Disposal:
    rule = next((r for r in chain if r.original != "keep"), None)
    if rule is None:
        return Disposal("keep")
    if rule.original == "delete":
        return Disposal("delete", rule=rule.name)
    assert rule.original_path is not None
    dest = output_path(rule.original_path, job.output_root, template_values(job, rule, content, digest))
    return Disposal("move", rule=rule.name, dest=dest)


def _staging_folder(final: Path, root: Path) -> Path:
    """The folder a temp file is written in: the final one, or the nearest one above a {seq} folder."""
    folder = final.parent
    while SEQ_MARK in str(folder.relative_to(root)):
        folder = folder.parent
    return folder


def _stage_move(job: Job, disposal: Disposal, data: bytes, digest: str, work: _Work) -> Disposal:
    """A move to another filesystem is a copy: made and verified here, renamed into place by the daemon."""
    assert disposal.dest is not None
    folder = _staging_folder(disposal.dest, job.output_root)
    atomic.make_folder(folder, job.output_root)
    if folder.stat().st_dev == job.src.parent.stat().st_dev:
        return disposal  # a rename, done by the daemon
    temp = tempnames.temp_path(folder / disposal.dest.name.replace(SEQ_MARK, "seq"), token=f"{job.token}ff")
    staged = atomic.stage_at(temp, lambda fp: fp.write(data))
    work.copy = staged.temp
    if hashlib.sha256(staged.temp.read_bytes()).hexdigest() != digest:
        raise atomic.StagingError(f"copy of the original {staged.temp} does not match it")
    return replace(disposal, staged=staged.temp)


def _largest_edge(chain: tuple[Rule, ...]) -> int | None:
    """The longest edge any encoded output of the chain needs; None when one wants full size."""
    edges = [o.max_edge for r in chain for o in r.outputs if o.format != "copy"]
    return None if not edges or None in edges else max(e for e in edges if e is not None)


def _finish_file(temp: Path, job: Job, st: os.stat_result) -> None:
    """Outputs get the source's mtime, and the configured mode and group (before they are visible)."""
    os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
    if job.file_mode is not None:
        temp.chmod(job.file_mode)
    if job.gid is not None:
        os.chown(temp, -1, job.gid)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
