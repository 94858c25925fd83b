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
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path, PurePath

from PIL import Image

from hotfolder.commit.staged import Companion, Disposal, Outcome
from hotfolder.core.formats import RAW
from hotfolder.core.identity import FileIdentity
from hotfolder.core.status import Result, RetryReason
from hotfolder.core.template import render_text
from hotfolder.decide.companions import TWIN, VIDEO
from hotfolder.decide.examine import candidate, examine_bytes
from hotfolder.decide.job import Job
from hotfolder.decide.match import Content, Facts
from hotfolder.decide.motion import Motion, motion_video
from hotfolder.decide.naming import chain_key, output_path, template_values
from hotfolder.decide.raw import RawHeader
from hotfolder.decide.read import open_regular, read_bounded
from hotfolder.errors import HotfolderError, NotRegularError, is_transient
from hotfolder.render import stamp
from hotfolder.render.decode import decode
from hotfolder.render.develop import Developed, develop
from hotfolder.render.motion import video_for
from hotfolder.render.source import Source
from hotfolder.run.group import read_group, sidecar_xmp, with_sidecar
from hotfolder.run.staging import Work, elapsed_ms, stage_move, stage_output, stage_video
from hotfolder.settings.outputs import Output
from hotfolder.settings.rules import Rule

# The job ------------------------------------------------------------------------------------------


def run_job(job: Job, wanted: Callable[[], bool] = lambda: True) -> Outcome:
    """Handle one input up to its staged outputs; never raises for a bad input (it comes back BROKEN).
    `wanted`: asked before each output; False (the job was cancelled elsewhere) stops it, staging nothing."""
    started = time.perf_counter()
    began = datetime.now(UTC).isoformat(timespec="microseconds")
    work = Work(base=Outcome(job.src, Result.BROKEN), wanted=wanted)
    try:
        with warnings.catch_warnings(record=True) as seen:
            outcome = _run(job, work)
        for w in seen:
            work.notes.warn("decoder.warning", error=f"{w.category.__name__}: {w.message}")
    except NotRegularError as exc:
        outcome = Outcome(job.src, Result.GONE, error=str(exc))
    except FileNotFoundError as exc:
        if FileIdentity.at(job.src) is None:
            outcome = Outcome(job.src, Result.GONE)  # the input went: nothing to do
        else:
            # Something on the way out vanished (an output folder another job removed as it failed):
            # not this file's fault, and never "gone": retried.
            outcome = replace(
                work.base,
                result=Result.RETRY,
                retry=RetryReason.TRANSIENT,
                error=f"{exc.strerror or exc} ({exc.filename})",
            )
    except HotfolderError as exc:
        outcome = _broken(work.base, type(exc).__name__, str(exc))
    except OSError as exc:
        if is_transient(exc) or exc.errno in (errno.EACCES, errno.EPERM):
            # A share gone, a disk error, or a file its writer still holds without read permission:
            # not the file's fault (yet). Retried with backoff, quarantined past the cap.
            outcome = replace(
                work.base,
                result=Result.RETRY,
                retry=RetryReason.TRANSIENT,
                error=f"{exc.strerror or exc} ({exc.filename or job.src})",
            )
        else:
            why = f"cannot read or write {exc.filename or job.src}: {exc.strerror or exc}"
            outcome = _broken(work.base, "InputError", why)
    # The one broad boundary per job: whatever went wrong, the input is parked and the daemon goes on.
    except Exception as exc:  # noqa: BLE001
        work.notes.warn(
            "job.crashed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8)
        )
        why = (
            f"internal error ({exc}); the job.crashed log event has the details; the input is kept in "
            "quarantine, please report this with its note"
        )
        outcome = _broken(work.base, "EncodeError", why)
    if outcome.result is not Result.STAGED:
        work.discard()
    return replace(
        outcome, ms=elapsed_ms(started), started_at=began, notes=tuple(work.notes.items) + outcome.notes
    )


def _broken(base: Outcome, error_class: str, error: str) -> Outcome:
    return replace(base, result=Result.BROKEN, error_class=error_class, error=f"{error_class}: {error}")


def _run(job: Job, work: Work) -> Outcome:
    fd, st = open_regular(job.src)
    try:
        identity = FileIdentity.of(st)
        work.base = replace(work.base, identity=identity, bytes_in=st.st_size)
        found = candidate(fd, st, job.relpath, job.rules, watch=job.watch)
        if found.misnamed is not None:
            work.notes.warn("file.misnamed", error=found.misnamed)
        maybe = found.decision.rules
        if not maybe:
            return Outcome(job.src, Result.UNMATCHED, identity=identity, bytes_in=st.st_size)
        work.base = replace(work.base, rule="+".join(r.name for r in maybe))
        if st.st_size == 0:
            return Outcome(
                job.src,
                Result.BROKEN,
                identity=identity,
                error_class="InputError",
                error="InputError: the file is empty (0 bytes)",
            )
        read_ns = time.time_ns()
        data = read_bounded(fd, st, found.found, max_pixels=job.max_pixels)
        after = FileIdentity.of(os.fstat(fd))
    finally:
        os.close(fd)
    if after != identity or (job.seen is not None and job.seen != identity):
        return Outcome(
            job.src,
            Result.RETRY,
            identity=identity,
            retry=RetryReason.DEFERRED,
            error="the file changed while it was read",
        )
    work.base = replace(work.base, read_ns=read_ns)
    return _stage(job, data, found.facts, st, work)


def _stage(job: Job, data: bytes, facts: Facts, st: os.stat_result, work: Work) -> Outcome:
    base = replace(work.base, result=Result.STAGED)
    seen = examine_bytes(data, facts, job.rules, mtime=st.st_mtime, max_pixels=job.max_pixels)
    content, header, opened = seen.facts.content, seen.raw, seen.opened
    chain = seen.decision.rules
    if not chain:
        return replace(base, result=Result.UNMATCHED)
    if header is None and facts.format == RAW and seen.unusable is not None and seen.needs_pixels:
        raise seen.unusable  # a RAW that cannot be developed; copying it needs only its bytes (a new camera)
    digest = hashlib.sha256(data).hexdigest()
    key = chain_key(chain)
    base = work.base = replace(base, rule="+".join(r.name for r in chain), chain=key, sha256=digest)
    companions = read_group(job, chain, data, content, work.notes)
    base = work.base = replace(base, companions=companions)
    work.sidecar = sidecar_xmp(job.src, companions, work.notes)
    paired = any(c.role in (TWIN, VIDEO) for c in companions)
    # Every name first: a template that cannot render fails the job before anything is written.
    names = _names(job, chain, content, digest, paired=paired)
    motion = motion_video(data) if header is None else None
    videos = _video_names(job, names, content, digest, motion, paired=paired)
    disposal = _disposal(job, chain, content, digest, paired=paired)
    twin = next((Path(p) for sha, c, p in job.twins if sha == digest and c == key), None)
    if twin is not None and not job.force:
        # The same bytes were already done by this chain: no outputs again, but the original
        # still follows the rule's policy (a re-imported card is cleaned up too).
        if disposal.policy == "move":
            disposal = stage_move(job, disposal, data, digest, work)
        return replace(base, result=Result.DUPLICATE, disposal=disposal, twin=twin)
    sources = _sources(job, data, (header, opened), chain=chain, names=names, work=work)
    if header is not None:
        base = work.base = replace(base, format=RAW, orientation=header.orientation)
    elif isinstance(sources, Source):
        base = work.base = replace(base, format=sources.format, orientation=sources.orientation)
    for index, name in enumerate(names):
        work.still_wanted()
        work.staged.append(
            stage_output(
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
    for name in names:
        if name[1].format == "copy" and name[1].with_companions:
            _stage_companions(job, work, companions, name)
    kept = _stage_videos(job, work, data, st, motion=motion, videos=videos, names=names)
    work.still_wanted()
    if disposal.policy != "keep" and kept is not None:
        disposal = Disposal("keep", rule=disposal.rule, why=kept)
    if disposal.policy != "keep" and work.jxl_rebuilds and not any(work.jxl_rebuilds):
        # A JPEG archived as JPEG XL goes only if its archive gives it back byte for byte.
        why = f"no jxl output rebuilds this JPEG byte for byte: {work.jxl_why[0]}"
        disposal = Disposal("keep", rule=disposal.rule, why=why)
    if disposal.policy == "move":
        disposal = stage_move(job, disposal, data, digest, work)
    return replace(base, outputs=tuple(work.staged), disposal=disposal, made=tuple(work.made))


def _video_names(
    job: Job,
    names: list[tuple[Rule, Output, Path, stamp.Stamped]],
    content: Content | None,
    digest: str,
    motion: Motion | None,
    *,
    paired: bool,
) -> list[tuple[Rule, Output, Path, stamp.Stamped]]:
    """Where each output that extracts a motion photo's video writes it: its `motion_path`, else the
    picture's name with the video's extension. Rendered with the pictures' names, before anything."""
    if motion is None:
        return []
    found: list[tuple[Rule, Output, Path, stamp.Stamped]] = []
    for rule, output, final, _ in names:
        if output.motion != "extract":
            continue
        if output.motion_path is None:
            path = final.parent / (PurePath(final.name).stem + motion.suffix)
        else:
            values = template_values(job, rule, content, digest, paired=paired)
            path = output_path(output.motion_path, job.output_root, values)
        found.append((rule, output, path, {}))
    return found


def _stage_videos(
    job: Job,
    work: Work,
    data: bytes,
    st: os.stat_result,
    *,
    motion: Motion | None,
    videos: list[tuple[Rule, Output, Path, stamp.Stamped]],
    names: list[tuple[Rule, Output, Path, stamp.Stamped]],
) -> str | None:
    """A motion photo's video staged beside each output that extracts it; said when no output keeps
    it. Returns why the original must stay (its video was asked for but cannot be taken), or None."""
    if motion is None:
        return None
    if not videos:
        if any(o.format != "copy" for _, o, _, _ in names):
            why = f'{motion.layout} motion photo: its video is dropped by a re-encode (motion = "extract" '
            work.notes.warn("auxiliary.dropped", error=why + "writes it beside, a copy output keeps it)")
        return None
    if motion.problem is not None:
        why = f"{motion.layout} motion photo: its video cannot be extracted: {motion.problem}"
        work.notes.warn("motion.unreadable", error=why)
        return why
    for name in videos:
        work.still_wanted()
        video = video_for(data, motion, name[1])
        if video.removed:
            work.notes.warn(
                "motion.location_removed",
                dst=str(name[2]),
                error=f"the video's location ({', '.join(video.removed)}) removed as the output strips GPS; "
                "the video is no longer the phone's bytes",
            )
        work.staged.append(stage_video(job, work, video=video, motion=motion, st=st, name=name))
    return None


def _stage_companions(
    job: Job, work: Work, companions: tuple[Companion, ...], name: tuple[Rule, Output, Path, stamp.Stamped]
) -> None:
    """A copy output's group: each companion copied beside it, on its stem with its own suffix."""
    rule, output, final, _ = name
    for c in companions:
        data = c.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != c.sha256:
            work.notes.warn("companion.skipped", error=f"{c.path.name} changed after it was read; not copied")
            continue
        beside = final.parent / (PurePath(final.name).stem + c.suffix)
        work.staged.append(
            stage_output(
                job,
                work,
                data=data,
                digest=c.sha256,
                st=c.path.stat(),
                source=None,
                index=len(work.staged),
                name=(rule, output, beside, {}),
            )
        )


def _sources(
    job: Job,
    data: bytes,
    parsed: tuple[RawHeader | None, Image.Image | None],
    *,
    chain: tuple[Rule, ...],
    names: list[tuple[Rule, Output, Path, stamp.Stamped]],
    work: Work,
) -> Source | Developed | None:
    """The decoded source every encoded output shares; for a RAW, its developed previews and renders.
    `parsed`: the RAW's header, or the image already opened by identify()."""
    outputs = [o for _, o, _, _ in names if o.format != "copy"]
    if not outputs:
        return None
    header, opened = parsed
    if header is not None:
        return develop(data, header, outputs, max_pixels=job.max_pixels)
    edge = _largest_edge(chain)
    source = decode(
        data,
        max_pixels=job.max_pixels,
        edge=edge,
        # Every output `edge` or at most half of it: none is made from a smaller image than before.
        exact=all(o.max_edge == edge or 2 * (o.max_edge or 0) <= (edge or 0) for o in outputs),
        gain_map=any(o.gain_map == "keep" for o in outputs),
        srgb=all(o.icc == "srgb" and o.gain_map != "keep" for o in outputs),
        opened=opened,
    )
    for loss in source.losses:
        work.notes.warn("auxiliary.dropped", error=loss)
    for damage in source.damaged:
        work.notes.warn("metadata.damaged", item=damage.split(" ", 1)[0], error=damage)
    if source.meta.icc_dropped is not None:
        work.notes.warn("colour.assumed_srgb", error=f"{source.meta.icc_dropped}: converted as sRGB")
    return source


def _source_for(sources: Source | Developed | None, output: Output, work: Work) -> Source | None:
    if sources is None or output.format == "copy":
        return None
    source = sources.source(output, work.notes) if isinstance(sources, Developed) else sources
    if work.sidecar is None or output.sidecar_xmp != "merge":
        return source
    if id(source) not in work.merged:
        work.merged[id(source)] = with_sidecar(source, work.sidecar, work.notes)
    return work.merged[id(source)]


def _names(
    job: Job, chain: tuple[Rule, ...], content: Content | None, digest: str, *, paired: bool
) -> list[tuple[Rule, Output, Path, stamp.Stamped]]:
    """Every output's name and stamp, rendered before anything is decoded or written."""
    names: list[tuple[Rule, Output, Path, stamp.Stamped]] = []
    for rule in chain:
        values = template_values(job, rule, content, digest, paired=paired)
        for output in rule.outputs:
            stamped: dict[str, str | tuple[str, ...]] = {}
            for key, templates in output.stamp:
                if isinstance(templates, tuple):
                    stamped[key] = tuple(render_text(t, values) for t in templates)
                else:
                    stamped[key] = render_text(templates, values)
            names.append((rule, output, output_path(output.path, job.output_root, values), stamped))
    return names


def _disposal(
    job: Job, chain: tuple[Rule, ...], content: Content | None, digest: str, *, paired: bool
) -> Disposal:
    rule = next((r for r in chain if r.original != "keep"), None)
    if rule is None:
        return Disposal("keep")
    if rule.original == "delete":
        return Disposal("delete", rule=rule.name)
    assert rule.original_path is not None
    dest = output_path(
        rule.original_path, job.output_root, template_values(job, rule, content, digest, paired=paired)
    )
    return Disposal("move", rule=rule.name, dest=dest)


def _largest_edge(chain: tuple[Rule, ...]) -> int | None:
    """The longest edge any encoded output of the chain needs; None when one wants full size."""
    edges = [o.max_edge for r in chain for o in r.outputs if o.format != "copy"]
    return None if not edges or None in edges else max(e for e in edges if e is not None)
