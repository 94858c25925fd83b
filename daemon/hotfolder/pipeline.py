"""One job end to end, in a worker: read once, match, decode once, every output, verify, commit.

A job is plain picklable data and run_job is a plain function, so any concurrent.futures.Executor
(a process pool here, dask.distributed's executor elsewhere) can run it. Workers never log: what
happened comes back in the Outcome, and the daemon logs and records it.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from . import atomic, encode, imaging, metadata
from .errors import EncodeError, HotfolderError, InputError
from .formats import HEAD_BYTES, claimed_format, sniff
from .match import Decision, Facts, decide
from .metadata import Metadata
from .outputs import Output
from .rules import Rule
from .template import render


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to handle one input; plain data so that it pickles."""

    src: Path
    relpath: str  # below the watch root (or the folder given to `process`), '/'-separated
    rules: tuple[Rule, ...]
    output_root: Path
    quarantine: Path
    watch: str | None = None
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class Written:
    dst: Path
    format: str
    bytes_out: int
    new: bool  # False: identical content was already there
    ms: float = 0.0  # transform, encode and verify of this output


@dataclass(frozen=True)
class Outcome:
    src: Path
    status: str  # done | unmatched | quarantined | gone
    rule: str | None = None
    format: str | None = None
    bytes_in: int = 0
    sha256: str | None = None
    written: tuple[Written, ...] = ()
    quarantined_to: Path | None = None
    error: str | None = None
    ms: float = 0.0
    notes: tuple[tuple[str, dict[str, Any]], ...] = ()


@dataclass
class _Work:
    staged: list[tuple[Output, atomic.Staged]] = field(default_factory=list)
    notes: imaging.Notes = field(default_factory=imaging.Notes)


def template_values(relpath: str) -> dict[str, str | None]:
    """The path fields every template can use, from the path below the watch root."""
    rel = PurePosixPath(relpath)
    return {
        "stem": rel.stem,
        "ext": rel.suffix.lower().lstrip(".") or None,
        "name": rel.name,
        "relpath": str(rel.with_suffix("")) if rel.suffix else str(rel),
    }


def output_path(output: Output, output_root: Path, relpath: str) -> Path:
    """Where an output lands: the rendered template, always under output_root."""
    rel = render(output.path, template_values(relpath))
    final = output_root / rel
    if not final.is_relative_to(output_root):  # render() already refuses '..'; this is the last guard
        raise InputError(f"output path {final} is outside output_root {output_root}")
    return final


def examine(head: bytes, relpath: str, rules: tuple[Rule, ...]) -> Decision:
    """Decide which rule takes a file from its first bytes and its path (no decoding).

    Content the decoders do not recognise still counts as the format its name claims: a
    zero-byte `.heic` is a broken image to quarantine, while a `.mov` is simply not ours.
    """
    fmt = sniff(head, relpath) or claimed_format(relpath)
    return decide(rules, Facts(relpath=relpath, format=fmt))


def run_job(job: Job) -> Outcome:
    """Handle one input completely; never raises for a bad input (it is quarantined instead)."""
    started = time.perf_counter()
    try:
        with job.src.open("rb") as fp:
            head = fp.read(HEAD_BYTES)
            rule = examine(head, job.relpath, job.rules).rule
            if rule is None:
                return Outcome(job.src, "unmatched", bytes_in=len(head), ms=_ms(started))
            data = head + fp.read()
    except FileNotFoundError:
        return Outcome(job.src, "gone", ms=_ms(started))
    digest = hashlib.sha256(data).hexdigest()
    base = Outcome(job.src, "quarantined", rule=rule.name, bytes_in=len(data), sha256=digest)
    work = _Work()
    try:
        # Decoder warnings (odd TIFF tags, ...) become structured notes instead of stray stderr text.
        # Filters are kept as set, so DecompressionBombWarning still raises.
        with warnings.catch_warnings(record=True) as seen:
            source = None
            if any(o.format != "copy" for o in rule.outputs):
                source = imaging.decode(data, max_pixels=job.max_pixels)
                base = replace(base, format=source.format)
                for loss in source.losses:
                    work.notes.warn("auxiliary.dropped", error=loss)
            written = _produce(job, rule, data, source, work)
        for w in seen:
            work.notes.warn("decoder.warning", error=f"{w.category.__name__}: {w.message}")
        return replace(base, status="done", written=written, ms=_ms(started), notes=tuple(work.notes.items))
    except HotfolderError as exc:
        error = f"{type(exc).__name__}: {exc}"
    # The one broad boundary per job: whatever went wrong, the input is parked and the daemon goes on.
    except Exception as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
        work.notes.warn("job.crashed", error=error, traceback=traceback.format_exc(limit=8))
    finally:
        for _, staged in work.staged:
            atomic.discard(staged)
    moved = quarantine(job, rule.name, error)
    return replace(base, quarantined_to=moved, error=error, ms=_ms(started), notes=tuple(work.notes.items))


def _produce(
    job: Job, rule: Rule, data: bytes, source: imaging.Source | None, work: _Work
) -> tuple[Written, ...]:
    """Stage and verify every output, then commit them all; if any fails, none is committed."""
    spent: list[float] = []
    for output in rule.outputs:
        t0 = time.perf_counter()
        final = output_path(output, job.output_root, job.relpath)
        if output.format == "copy" or source is None:
            staged = atomic.stage(final, lambda fp: fp.write(data))
            work.staged.append((output, staged))
            if hashlib.sha256(staged.temp.read_bytes()).digest() != hashlib.sha256(data).digest():
                raise EncodeError(f"copy {staged.temp} does not match the source")
        else:
            rendered = imaging.render(source, output, work.notes)
            rendered.meta = output_metadata(source, rendered, output, work.notes)
            staged = atomic.stage(final, partial(encode.encode, rendered, output, notes=work.notes))
            work.staged.append((output, staged))
            encode.verify(staged.temp.read_bytes(), rendered, output)
        spent.append(_ms(t0))
    written: list[Written] = []
    try:
        for (output, staged), ms in zip(work.staged, spent, strict=True):
            dst, new = atomic.commit(staged)
            written.append(Written(dst=dst, format=output.format, bytes_out=staged.size, new=new, ms=ms))
    except OSError as exc:
        for w in written:
            if w.new:
                w.dst.unlink(missing_ok=True)
        raise EncodeError(f"could not put outputs in place: {exc}") from exc
    work.staged.clear()
    return tuple(written)


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


def quarantine(job: Job, rule: str | None, error: str) -> Path | None:
    """Move the input into the quarantine folder with a JSON sidecar saying why; None if it is gone."""
    try:
        moved = atomic.move_into(job.src, job.quarantine / job.relpath)
    except FileNotFoundError:
        return None
    note = {
        "src": str(job.src),
        "quarantined_to": str(moved),
        "rule": rule,
        "watch": job.watch,
        "error": error,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic.write_bytes(moved.with_name(moved.name + ".json"), json.dumps(note, indent=2).encode() + b"\n")
    return moved


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
