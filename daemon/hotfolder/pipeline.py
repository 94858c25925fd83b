"""One job end to end, in a worker: read once, match, decode once, every output, verify, commit.

A job is plain picklable data and run_job is a plain function, so any concurrent.futures.Executor
(a process pool here, dask.distributed's executor elsewhere) can run it. Workers never log: what
happened comes back in the Outcome, and the daemon logs and records it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from . import atomic, encode, imaging, metadata
from .errors import EncodeError, HotfolderError, InputError, is_transient
from .formats import HEAD_BYTES, claimed_format, sniff
from .match import Content, Decision, Facts, decide
from .metadata import Metadata
from .outputs import Output
from .rules import Rule
from .template import Template, Value, When, camera, render
from .workerstate import claim, claimed, done_with_hash, next_seq


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to handle one input; plain data so that it pickles."""

    src: Path
    relpath: str  # below the watch root (or the folder given to `process`), '/'-separated
    rules: tuple[Rule, ...]
    output_root: Path
    quarantine: Path
    watch: str | None = None
    watch_path: Path | None = None
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS
    state_dir: Path | None = None  # holds {seq} counters; None: {seq} is unavailable
    file_mode: int | None = None  # mode of outputs; None: the umask decides
    gid: int | None = None  # group of outputs, so shared folders stay usable
    seen: tuple[int, int] | None = None  # (size, mtime_ns) when the dispatcher looked
    force: bool = False  # process even byte-identical copies of inputs already done


@dataclass(frozen=True)
class Written:
    dst: Path
    format: str
    bytes_out: int
    action: str  # written | identical | skipped | overwritten
    rule: str = ""
    ms: float = 0.0  # transform, encode and verify of this output

    @property
    def new(self) -> bool:
        return self.action in {"written", "overwritten"}


@dataclass(frozen=True)
class Outcome:
    src: Path
    status: str  # done | unmatched | quarantined | gone | duplicate | retry (transient: try again later)
    rule: str | None = None
    format: str | None = None
    bytes_in: int = 0
    sha256: str | None = None
    written: tuple[Written, ...] = ()
    quarantined_to: Path | None = None
    original: str | None = None  # what happened to the original: kept, deleted, or where it moved
    orientation: int | None = None  # provenance: the stored orientation the outputs had applied
    error: str | None = None
    ms: float = 0.0
    notes: tuple[tuple[str, dict[str, Any]], ...] = ()
    started_at: str | None = None  # wall clock when a worker began it (latency, from the logs alone)


@dataclass
class _Work:
    staged: list[tuple[Rule, Output, atomic.Staged]] = field(default_factory=list)
    resized: dict[int, Image.Image] = field(default_factory=dict)  # max_edge -> shrunk source
    notes: imaging.Notes = field(default_factory=imaging.Notes)


def content_facts(data: bytes, mtime: float | None, opened: Image.Image | None = None) -> Content | None:
    """Size, camera and date from the image header (no pixels decoded); None if it cannot be read.
    `opened`: the same bytes already opened by imaging.identify (the header is parsed once per job)."""
    try:
        im = opened if opened is not None else imaging.identify(data)
        ex = im.getexif()
    except (InputError, OSError, ValueError, SyntaxError):
        return None
    sub = ex.get_ifd(metadata.TAG_EXIF_IFD)
    width, height = im.size
    if im.format not in {"HEIF", "AVIF", "TIFF"} and ex.get(metadata.TAG_ORIENTATION) in (5, 6, 7, 8):
        width, height = height, width
    taken, subsec = _taken(sub, mtime)
    return Content(
        width=width,
        height=height,
        make=_text(ex.get(0x010F)),
        model=_text(ex.get(0x0110)),
        has_exif=len(ex) > 0,
        has_gps=bool(ex.get_ifd(metadata.TAG_GPS_IFD)),
        taken=taken,
        subsec=subsec,
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return (value.strip("\x00 ") or None) if isinstance(value, str) else None


def _taken(sub: Any, mtime: float | None) -> tuple[datetime | None, str]:
    """DateTimeOriginal (+ SubSecTimeOriginal), then CreateDate, then the file's mtime."""
    for tag, subsec in ((0x9003, 0x9291), (0x9004, 0x9292)):
        raw = _text(sub.get(tag))
        if raw:
            try:
                return datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S"), (
                    _text(sub.get(subsec)) or ""
                ).strip()
            except ValueError:
                continue
    # Local time, as cameras write it: no time zone is implied anywhere in EXIF dates.
    return (datetime.fromtimestamp(mtime) if mtime is not None else None), ""


def template_values(
    job: Job, rule: Rule, content: Content | None, digest: str | None = None
) -> dict[str, Value]:
    """Every template field for one input and rule ({seq} is filled only when a template uses it)."""
    rel = PurePosixPath(job.relpath)
    values: dict[str, Value] = {
        "stem": rel.stem,
        "ext": rel.suffix.lower().lstrip(".") or None,
        "name": rel.name,
        "relpath": str(rel.with_suffix("")) if rel.suffix else str(rel),
        "reldir": str(rel.parent) if str(rel.parent) != "." else None,
        "watch": job.watch,
        "rule": rule.name,
        "hash8": digest[:8] if digest else None,
    }
    if content is not None:
        values.update(
            make=content.make,
            model=content.model,
            camera=camera(content.make, content.model),
            width=str(content.width),
            height=str(content.height),
            taken=When(content.taken, content.subsec) if content.taken else None,
        )
    return values


def output_path(template: Template, output_root: Path, values: dict[str, Value]) -> Path:
    """Where an output lands: the rendered template, always under output_root.

    render() refuses '..' and absolute parts; links are dealt with where files are written:
    atomic.make_folder refuses a linked folder, and a link at the name itself is replaced or
    skipped by the rename, never written through.
    """
    return output_root / render(template, values)


def examine(data: bytes, relpath: str, rules: tuple[Rule, ...], *, facts: Facts | None = None,
            mtime: float | None = None) -> Decision:  # fmt: skip
    """Decide which rules take a file from its bytes and path.

    Content the decoders do not recognise still counts as the format its name claims: a
    zero-byte `.heic` is a broken image to quarantine, while a `.mov` is simply not ours.
    """
    base = facts or Facts(relpath=relpath, size=len(data))
    fmt = sniff(data[:HEAD_BYTES], relpath) or claimed_format(relpath)
    content = base.content or (content_facts(data, mtime) if fmt else None)
    return decide(rules, replace(base, relpath=relpath, format=fmt, content=content))


def _read(
    job: Job, started: float
) -> Outcome | tuple[bytes, os.stat_result, Facts, tuple[Rule, ...], Image.Image | None]:
    """Read the input once and decide; an Outcome when there is nothing more to do."""
    try:
        with job.src.open("rb") as fp:
            st = os.fstat(fp.fileno())
            head = fp.read(HEAD_BYTES)
            facts = Facts(relpath=job.relpath, watch=job.watch, size=st.st_size,
                          watch_path=str(job.watch_path) if job.watch_path else None)  # fmt: skip
            fmt = sniff(head, job.relpath) or claimed_format(job.relpath)
            if not decide(job.rules, replace(facts, format=fmt), partial=True).rules:
                return Outcome(job.src, "unmatched", bytes_in=st.st_size, ms=_ms(started))
            data = head + fp.read()
    except FileNotFoundError:
        return Outcome(job.src, "gone", ms=_ms(started))
    except OSError as exc:
        # A share gone, a disk error, or a file its writer still holds without read permission:
        # not the file's fault (yet). Retried with backoff, quarantined past the cap.
        if is_transient(exc) or exc.errno in (errno.EACCES, errno.EPERM):
            return Outcome(job.src, "retry", error=f"{type(exc).__name__}: {exc}", ms=_ms(started))
        raise
    try:
        with warnings.catch_warnings():
            # Past max_image_pixels: decode() refuses it with the limit in the message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened: Image.Image | None = imaging.identify(data, max_pixels=job.max_pixels)
    except InputError:
        opened = None  # decode() says why, when a rule wants the pixels
    content = content_facts(data, st.st_mtime, opened)
    if content is None:
        opened = None  # it failed part way (a truncated file): decode() opens afresh and says why
    facts = replace(facts, content=content)
    chain = examine(data, job.relpath, job.rules, facts=facts).rules
    if not chain:
        return Outcome(job.src, "unmatched", bytes_in=len(data), ms=_ms(started))
    return data, st, facts, chain, opened


def run_job(job: Job) -> Outcome:
    """Handle one input completely; never raises for a bad input (it is quarantined instead)."""
    started = time.perf_counter()
    began = datetime.now(UTC).isoformat(timespec="microseconds")
    got = _read(job, started)
    if isinstance(got, Outcome):
        return replace(got, started_at=began)
    data, st, facts, chain, opened = got
    digest = hashlib.sha256(data).hexdigest()
    names = "+".join(r.name for r in chain)
    base = Outcome(job.src, "quarantined", rule=names, bytes_in=len(data), sha256=digest, started_at=began)
    twin = done_with_hash(job.state_dir, digest, job.src) if job.state_dir and not job.force else None
    if twin is not None:
        # The same bytes were already processed under another name: no outputs again, but the
        # original still follows the rule's policy (a re-imported card is cleaned up too).
        original = _dispose_original(job, chain, facts.content, digest)
        return replace(
            base, status="duplicate", error=f"same content as {twin}", original=original, ms=_ms(started)
        )
    work = _Work()
    try:
        # Decoder warnings (odd TIFF tags, ...) become structured notes instead of stray stderr text.
        # Filters are kept as set, so DecompressionBombWarning still raises.
        with warnings.catch_warnings(record=True) as seen:
            source = None
            if any(o.format != "copy" for r in chain for o in r.outputs):
                source = imaging.decode(
                    data, max_pixels=job.max_pixels, edge=_largest_edge(chain), opened=opened
                )
                base = replace(base, format=source.format, orientation=source.orientation)
                for loss in source.losses:
                    work.notes.warn("auxiliary.dropped", error=loss)
            written = _produce(
                job, chain, data, content=facts.content, digest=digest, source=source, work=work, st=st
            )
            original = _dispose_original(job, chain, facts.content, digest)
        for w in seen:
            work.notes.warn("decoder.warning", error=f"{w.category.__name__}: {w.message}")
        return replace(base, status="done", written=written, original=original, ms=_ms(started),
                       notes=tuple(work.notes.items))  # fmt: skip
    except InputError as exc:
        error = f"{type(exc).__name__}: {exc}"
        if _still_changing(job, st):
            # A file still being written is not broken yet: try again once it holds still.
            return replace(base, status="retry", error=f"source still changing: {error}", ms=_ms(started))
    except HotfolderError as exc:
        error = f"{type(exc).__name__}: {exc}"
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
        if is_transient(exc):
            # Disk full, share gone, I/O hiccup: nothing is wrong with the input; wait and retry.
            return replace(base, status="retry", error=error, ms=_ms(started), notes=tuple(work.notes.items))
        work.notes.warn("job.crashed", error=error, traceback=traceback.format_exc(limit=8))
    # The one broad boundary per job: whatever went wrong, the input is parked and the daemon goes on.
    except Exception as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
        work.notes.warn("job.crashed", error=error, traceback=traceback.format_exc(limit=8))
    finally:
        for _, _, staged in work.staged:
            atomic.discard(staged)
    moved = quarantine(job, names, error)
    return replace(base, quarantined_to=moved, error=error, ms=_ms(started), notes=tuple(work.notes.items))


def _produce(
    job: Job, chain: tuple[Rule, ...], data: bytes, *, content: Content | None, digest: str,
    source: imaging.Source | None, work: _Work, st: os.stat_result,
) -> tuple[Written, ...]:  # fmt: skip
    """Stage and verify every output of every rule, then commit them all; if any fails, none is."""
    spent: list[float] = []
    for rule in chain:
        values = template_values(job, rule, content, digest)
        for output in rule.outputs:
            t0 = time.perf_counter()
            if "seq" in output.path.fields:
                values["seq"] = str(next_seq(job.state_dir, rule.name)) if job.state_dir else None
            final = output_path(output.path, job.output_root, values)
            atomic.make_folder(final.parent, job.output_root)
            if output.format == "copy" or source is None:
                staged = atomic.stage(final, lambda fp: fp.write(data))
                work.staged.append((rule, output, staged))
                if hashlib.sha256(staged.temp.read_bytes()).hexdigest() != digest:
                    raise EncodeError(f"copy {staged.temp} does not match the source")
            else:
                rendered = imaging.render(source, output, work.notes, work.resized)
                rendered.meta = output_metadata(source, rendered, output, work.notes)
                staged = atomic.stage(final, partial(encode.encode, rendered, output, notes=work.notes))
                work.staged.append((rule, output, staged))
                encode.verify(staged.temp.read_bytes(), rendered, output)
            _finish_file(staged.temp, job, st)
            spent.append(_ms(t0))
    written: list[Written] = []
    try:
        for index, ((rule, output, staged), ms) in enumerate(zip(work.staged, spent, strict=True)):
            dst, action = _commit(job, digest, f"{rule.name}#{index}", staged, output)
            written.append(Written(dst=dst, format=output.format, bytes_out=staged.size, action=action,
                                   rule=rule.name, ms=ms))  # fmt: skip
    except OSError as exc:
        for w in written:
            if w.action == "written":
                w.dst.unlink(missing_ok=True)
        raise EncodeError(f"could not put outputs in place: {exc}") from exc
    work.staged.clear()
    return tuple(written)


def _largest_edge(chain: tuple[Rule, ...]) -> int | None:
    """The longest edge any encoded output of the chain needs; None when one wants full size."""
    edges = [o.max_edge for r in chain for o in r.outputs if o.format != "copy"]
    return None if not edges or None in edges else max(e for e in edges if e is not None)


def _still_changing(job: Job, st: os.stat_result) -> bool:
    """Whether the source differs from what was read, or from what the dispatcher saw."""
    try:
        now = job.src.stat()
    except OSError:
        return False
    read = (st.st_size, st.st_mtime_ns)
    return (now.st_size, now.st_mtime_ns) != read or (job.seen is not None and job.seen != read)


def _commit(job: Job, digest: str, key: str, staged: atomic.Staged, output: Output) -> tuple[Path, str]:
    """Put one output in place. Its name is claimed in the ledger before the rename, so a job
    redone after a crash writes to the same name again instead of taking a new counter."""
    if job.state_dir is None:
        return atomic.commit(staged, policy=output.on_conflict, counter_format=output.counter_format)
    prior = claimed(job.state_dir, digest, key)
    if prior is not None and prior.parent == staged.final.parent:
        # Ours from the interrupted run (complete or never written): the same bytes go there again.
        mine = atomic.Staged(temp=staged.temp, final=prior, size=staged.size)
        return atomic.commit(mine, policy="overwrite")
    state = job.state_dir
    return atomic.commit(staged, policy=output.on_conflict, counter_format=output.counter_format,
                         before_rename=lambda name: claim(state, digest, key, name))  # fmt: skip


def _finish_file(temp: Path, job: Job, st: os.stat_result) -> None:
    """Outputs get the source's mtime, and the configured mode and group (before they are visible)."""
    os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
    if job.file_mode is not None:
        temp.chmod(job.file_mode)
    if job.gid is not None:
        os.chown(temp, -1, job.gid)


def _dispose_original(job: Job, chain: tuple[Rule, ...], content: Content | None, digest: str) -> str:
    """keep, delete or move the original, only now that every output is written, synced and verified."""
    rule = next((r for r in chain if r.original != "keep"), None)
    if rule is None:
        return "kept"
    if rule.original == "delete":
        job.src.unlink()
        atomic.fsync_dir(job.src.parent)
        return "deleted"
    assert rule.original_path is not None
    dest = output_path(rule.original_path, job.output_root, template_values(job, rule, content, digest))
    atomic.make_folder(dest.parent, job.output_root)
    return str(atomic.move_into(job.src, dest))


def output_metadata(
    source: imaging.Source, rendered: imaging.Rendered, output: Output, notes: imaging.Notes
) -> Metadata:
    """Exactly the EXIF, XMP, IPTC and ICC this output's options allow, as they must read on its pixels.

    Orientation is set to 1 wherever the pixels are upright (never applied twice); dimensions
    follow the pixels; a thumbnail that no longer shows the pixels is removed; GPS goes when
    asked, from EXIF and XMP alike.
    """
    meta = rendered.meta
    applied = output.orientation == "upright" or source.orientation == 1
    stored = source.image.size
    expected = stored[::-1] if applied and source.orientation >= 5 else stored
    resized = rendered.size != expected
    turned = applied and source.orientation != 1
    drop_gps = output.gps == "strip"
    exif = None
    if output.exif == "keep" and meta.exif:
        args: dict[str, Any] = {
            "size": rendered.size,
            "orientation": 1 if applied else None,
            "drop_gps": drop_gps,
            # Pillow's AVIF writer turns an Orientation tag into irot and re-serialises EXIF.
            "drop_orientation": applied and output.format == "avif",
        }
        try:
            exif = metadata.patch(meta.exif, drop_thumbnail=resized or turned, **args)
        except metadata.ExifStructureError as exc:
            notes.warn("metadata.reserialised", item="exif", format=output.format, error=str(exc))
            exif = metadata.reserialise(meta.exif, **args)
    xmp = None
    if output.xmp == "keep" and meta.xmp:
        try:
            xmp = metadata.edit_xmp(meta.xmp, drop_orientation=applied, drop_gps=drop_gps)
        except (ValueError, SyntaxError) as exc:
            notes.warn("metadata.dropped", item="xmp", format=output.format,
                       error=f"XMP could not be parsed to remove orientation/GPS: {exc}")  # fmt: skip
    keep_iptc = output.iptc == "keep"
    return Metadata(
        exif=exif,
        icc=meta.icc,
        xmp=xmp,
        photoshop=meta.photoshop if keep_iptc else None,
        iptc=meta.iptc if keep_iptc else None,
        nclx=meta.nclx,
    )


def quarantine(job: Job, rule: str | None, error: str, *, attempts: int = 1) -> Path | None:
    """Move the input into the quarantine folder with a JSON sidecar saying why; None if it is gone."""
    dest = job.quarantine / job.relpath
    try:
        atomic.make_folder(dest.parent, job.quarantine)
        moved = atomic.move_into(job.src, dest)
    except FileNotFoundError:
        return None
    note = {
        "src": str(job.src),
        "quarantined_to": str(moved),
        "rule": rule,
        "watch": job.watch,
        "error_class": error.split(":", 1)[0],
        "error": error,
        "attempts": attempts,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic.write_bytes(moved.with_name(moved.name + ".json"), json.dumps(note, indent=2).encode() + b"\n")
    return moved


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
