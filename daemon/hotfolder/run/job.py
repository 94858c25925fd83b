"""One job in a worker: read the input once, decide, name every output, decode once, stage and verify.

A worker never makes anything visible and never touches the state folder: it writes each output
to a synced temp file beside its final name (named with the job's token), verifies it, and returns
what it staged. The daemon then commits (names, intent, renames, the original, the ledger), so
every visible change happens in one process, in one order (commit.py). A job is plain picklable
data and run_job a plain function, so any concurrent.futures.Executor can run it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
import struct
import time
import traceback
import unicodedata
import warnings
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, Final

from PIL import Image

from hotfolder.commit import atomic
from hotfolder.core.formats import HEAD_BYTES, INPUT_FORMATS, claimed_format
from hotfolder.core.identity import FileIdentity, kind_of
from hotfolder.core.resolution import Resolution
from hotfolder.core.status import Result, RetryReason
from hotfolder.core.template import Template, Value, When, camera, render, render_text
from hotfolder.decide.match import Content, Decision, Facts, decide
from hotfolder.decide.probe import probe
from hotfolder.decide.sniff import sniff
from hotfolder.errors import HotfolderError, InputError, is_transient
from hotfolder.render import encode, imaging, metadata, stamp
from hotfolder.render.metadata import Metadata
from hotfolder.settings.outputs import Output
from hotfolder.settings.rules import Rule

# {seq} is counted by the daemon when it commits (no gaps for inputs that fail): a worker renders
# names with this mark, and the daemon puts the number in.
SEQ_MARK: Final = "\ue000seq\ue001"


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to handle one input; plain data so that it pickles."""

    src: Path
    relpath: str  # below the watch root (or the folder given to `process`), '/'-separated
    rules: tuple[Rule, ...]
    output_root: Path
    watch: str | None = None
    watch_path: Path | None = None
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS
    file_mode: int | None = None  # mode of outputs; None: the umask decides
    gid: int | None = None  # group of outputs, so shared folders stay usable
    seen: FileIdentity | None = None  # what the dispatcher saw (a change since means: still arriving)
    force: bool = False  # process even byte-identical copies of inputs already done
    twins: tuple[tuple[str, str, str], ...] = ()  # (sha256, chain, path) of done inputs of this size
    token: str = field(default_factory=lambda: secrets.token_hex(4))  # names this job's temp files


@dataclass(frozen=True)
class StagedOutput:
    """One output written, synced and verified in a temp file beside the name it will take."""

    temp: Path
    final: Path  # may hold SEQ_MARK, which the daemon fills in
    rule: str
    format: str
    size: int
    sha256: str
    on_conflict: str
    counter_format: str
    ms: float = 0.0


@dataclass(frozen=True)
class Disposal:
    """What becomes of the original once the outputs are in place."""

    policy: str  # keep | delete | move
    rule: str | None = None
    dest: Path | None = None  # move: its name under output_root (may hold SEQ_MARK)
    staged: Path | None = None  # move to another filesystem: a verified copy beside dest


@dataclass(frozen=True)
class Outcome:
    """What a worker's job came back with."""

    src: Path
    result: Result
    identity: FileIdentity | None = None  # of the file that was read (fstat of the open descriptor)
    read_ns: int = 0  # wall clock when it was read
    rule: str | None = None
    chain: str | None = None
    format: str | None = None
    bytes_in: int = 0
    sha256: str | None = None
    outputs: tuple[StagedOutput, ...] = ()
    disposal: Disposal = Disposal("keep")
    orientation: int | None = None  # provenance: the stored orientation the outputs had applied
    error_class: str | None = None  # one of hotfolder's own error names
    error: str | None = None
    retry: RetryReason | None = None
    twin: Path | None = None  # duplicate: the input done with the same bytes
    ms: float = 0.0
    notes: tuple[tuple[str, dict[str, Any]], ...] = ()
    started_at: str | None = None  # wall clock when a worker began it (latency, from the logs alone)


@dataclass
class _Work:
    base: Outcome
    staged: list[StagedOutput] = field(default_factory=list)
    copy: Path | None = None
    resized: dict[int, Image.Image] = field(default_factory=dict)  # max_edge -> shrunk source
    notes: imaging.Notes = field(default_factory=imaging.Notes)

    def discard(self) -> None:
        for s in self.staged:
            s.temp.unlink(missing_ok=True)
        if self.copy is not None:
            self.copy.unlink(missing_ok=True)


# Facts from the header ---------------------------------------------------------------------------


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
        make=exif_text(ex.get(0x010F)),
        model=exif_text(ex.get(0x0110)),
        has_exif=len(ex) > 0,
        has_gps=bool(ex.get_ifd(metadata.TAG_GPS_IFD)),
        taken=taken,
        subsec=subsec,
    )


def exif_text(value: Any) -> str | None:
    """An EXIF text value as the camera meant it: UTF-8 when the bytes are valid UTF-8, else Latin-1.

    Pillow decodes ASCII-typed tags as Latin-1, so a UTF-8 Make ('Ünïcode Kamera') came out as
    'Ã\x9cnÃ¯code Kamera'; the Latin-1 round trip gives back the bytes the camera wrote.
    """
    if isinstance(value, str):
        value = value.encode("latin-1", "replace")
    if not isinstance(value, bytes):
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    return unicodedata.normalize("NFC", text.strip("\x00 ")) or None


def _taken(sub: Any, mtime: float | None) -> tuple[datetime | None, str]:
    """DateTimeOriginal (+ SubSecTimeOriginal), then CreateDate, then the file's mtime."""
    for tag, subsec in ((0x9003, 0x9291), (0x9004, 0x9292)):
        raw = exif_text(sub.get(tag))
        if raw:
            try:
                return datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S"), (
                    exif_text(sub.get(subsec)) or ""
                ).strip()
            except ValueError:
                continue
    # Local time, as cameras write it: no time zone is implied anywhere in EXIF dates.
    return (datetime.fromtimestamp(mtime) if mtime is not None else None), ""


def template_values(
    job: Job, rule: Rule, content: Content | None, digest: str | None = None
) -> dict[str, Value]:
    """Every template field for one input and rule ({seq} is the daemon's: a mark here)."""
    rel = PurePosixPath(job.relpath)
    values: dict[str, Value] = {
        "stem": rel.stem,
        "ext": rel.suffix.lower().lstrip(".") or None,
        "name": rel.name,
        "relpath": str(rel.with_suffix("")) if rel.suffix else str(rel),
        "reldir": str(rel.parent) if str(rel.parent) != "." else "",  # at the root: nothing
        "watch": job.watch,
        "rule": rule.name,
        "hash8": digest[:8] if digest else None,
        "seq": SEQ_MARK,
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


def chain_key(chain: tuple[Rule, ...]) -> str:
    """A rule chain's fingerprint: the same bytes through the same chain give the same outputs."""
    names = "+".join(r.name for r in chain)
    made = repr(tuple((r.name, r.outputs, r.original, r.original_path) for r in chain))
    return f"{names}#{hashlib.sha1(made.encode(), usedforsecurity=False).hexdigest()[:12]}"


# Reading ------------------------------------------------------------------------------------------


class NotRegularError(HotfolderError):
    """The path is a link, a FIFO, a device or a folder: never read, never disposed of."""


def open_regular(path: Path) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without following a link or blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularError(f"{path} is a symbolic link; links are never processed") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularError(f"{path} is {kind_of(st)}, not a regular file")
    return fd, st


def read_all(fd: int, size: int) -> bytes:
    """The whole file, by positioned reads (the descriptor's offset is never relied on)."""
    chunks, pos = [], 0
    while pos < size:
        chunk = os.pread(fd, min(size - pos, 8 << 20), pos)
        if not chunk:
            break
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


def sniffed(fd: int, relpath: str) -> tuple[str | None, bool]:
    """(our format name, whether the content itself says so) from the first bytes of a file."""
    head = os.pread(fd, HEAD_BYTES, 0)
    by_content = sniff(head, relpath)
    return by_content or claimed_format(relpath), by_content is not None


def read_bounded(fd: int, st: os.stat_result, fmt: str | None, *, by_content: bool, max_pixels: int) -> bytes:
    """The whole file, once its header says it is an image of a plausible length (probe.py)."""
    if fmt is not None and fmt in INPUT_FORMATS and by_content:
        probe(fd, st.st_size, fmt, max_pixels=max_pixels)
    elif fmt is not None and fmt in INPUT_FORMATS:
        raise InputError(f"content is not a recognisable image (its name says {fmt.upper()})")
    return read_all(fd, st.st_size)


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


@dataclass(frozen=True)
class Inspection:
    """What `explain` and `process --dry-run` learn of a file, by the same reads a worker makes."""

    facts: Facts
    decision: Decision
    data: bytes | None = None  # None: refused before it was read (the reason is in `refusal`)
    refusal: str | None = None


def inspect_file(path: Path, relpath: str, rules: tuple[Rule, ...], *, max_pixels: int,
                 watch: str | None = None, watch_path: Path | None = None) -> Inspection:  # fmt: skip
    """Decide which rules take a file, reading it as a worker would (bounded, never a FIFO or a link)."""
    fd, st = open_regular(path)
    try:
        fmt, by_content = sniffed(fd, relpath)
        facts = Facts(relpath=relpath, watch=watch, watch_path=str(watch_path) if watch_path else None,
                      size=st.st_size, format=fmt)  # fmt: skip
        if st.st_size == 0:
            return Inspection(
                facts, decide(rules, facts, partial=True), refusal="the file is empty (0 bytes)"
            )
        try:
            data = read_bounded(fd, st, fmt, by_content=by_content, max_pixels=max_pixels)
        except InputError as exc:
            return Inspection(facts, decide(rules, facts, partial=True), refusal=str(exc))
    finally:
        os.close(fd)
    try:
        opened = imaging.identify(data, max_pixels=max_pixels)  # the config's limit, as `run` applies it
    except InputError as exc:
        return Inspection(facts, decide(rules, facts, partial=True), data=data, refusal=str(exc))
    facts = replace(facts, content=content_facts(data, st.st_mtime, opened))
    return Inspection(facts, examine(data, relpath, rules, facts=facts), data=data)


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
    with warnings.catch_warnings():
        # Past max_image_pixels: decode() refuses it with the limit in the message.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            opened: Image.Image | None = imaging.identify(data, max_pixels=job.max_pixels)
        except InputError:
            opened = None  # decode() says why, when a rule wants the pixels
    content = content_facts(data, st.st_mtime, opened)
    if content is None:
        opened = None  # it failed part way (a truncated file): decode() opens afresh and says why
    facts = replace(facts, content=content)
    chain = examine(data, job.relpath, job.rules, facts=facts).rules
    if not chain:
        return replace(base, result=Result.UNMATCHED)
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
    source = None
    if any(o.format != "copy" for _, o, _, _ in names):
        source = imaging.decode(data, max_pixels=job.max_pixels, edge=_largest_edge(chain), opened=opened)
        base = work.base = replace(base, format=source.format, orientation=source.orientation)
        for loss in source.losses:
            work.notes.warn("auxiliary.dropped", error=loss)
        for damage in source.damaged:
            work.notes.warn("metadata.damaged", item=damage.split(" ", 1)[0], error=damage)
    for index, (rule, output, final, stamped) in enumerate(names):
        t0 = time.perf_counter()
        folder = _staging_folder(final, job.output_root)
        atomic.make_folder(folder, job.output_root)
        temp = atomic.temp_path(folder / final.name.replace(SEQ_MARK, "seq"), token=f"{job.token}{index:02x}")
        if output.format == "copy" or source is None:
            staged = atomic.stage_at(temp, lambda fp: fp.write(data))
            written = staged.temp.read_bytes()
            if hashlib.sha256(written).hexdigest() != digest:
                raise atomic.StagingError(f"copy {staged.temp} does not match the source")
        else:
            rendered = imaging.render(source, output, work.notes, work.resized)
            rendered.meta = output_metadata(source, rendered, output, work.notes, stamped)
            staged = atomic.stage_at(temp, partial(encode.encode, rendered, output, notes=work.notes))
            written = staged.temp.read_bytes()
            encode.verify(written, rendered, output)
        _finish_file(staged.temp, job, st)
        work.staged.append(StagedOutput(temp=staged.temp, final=final, rule=rule.name, format=output.format,
                                        size=staged.size, sha256=hashlib.sha256(written).hexdigest(),
                                        on_conflict=output.on_conflict, counter_format=output.counter_format,
                                        ms=_ms(t0)))  # fmt: skip
    if disposal.policy == "move":
        disposal = _stage_move(job, disposal, data, digest, work)
    return replace(base, outputs=tuple(work.staged), disposal=disposal)


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
    temp = atomic.temp_path(folder / disposal.dest.name.replace(SEQ_MARK, "seq"), token=f"{job.token}ff")
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


def output_metadata(
    source: imaging.Source,
    rendered: imaging.Rendered,
    output: Output,
    notes: imaging.Notes,
    stamped: stamp.Stamped | None = None,
) -> Metadata:
    """Exactly the EXIF, XMP, IPTC, ICC and resolution this output's options allow, as they must read
    on its pixels, with its stamp written over the source's values for those fields.

    Orientation is set to 1 wherever the pixels are upright (never applied twice); dimensions and
    resolution follow the pixels; a thumbnail that no longer shows the pixels is removed; GPS goes
    when asked, from EXIF and XMP alike. A block that cannot be edited is dropped and said so.
    """
    meta = rendered.meta
    applied = output.orientation == "upright" or source.orientation == 1
    stored = source.image.size
    expected = stored[::-1] if applied and source.orientation >= 5 else stored
    resized = rendered.size != expected
    turned = applied and source.orientation != 1
    drop_gps = output.gps == "strip"
    resolution = _output_resolution(
        meta.resolution, output, expected, rendered.size, swap=turned and source.orientation >= 5
    )
    exif = None
    if output.exif == "keep" and meta.exif:
        exif = _output_exif(meta.exif, output, notes, size=rendered.size, orientation=1 if applied else None,
                            drop_gps=drop_gps, drop_thumbnail=resized or turned, resolution=resolution,
                            drop_orientation=applied and output.format == "avif")  # fmt: skip
    xmp = None
    if output.xmp == "keep" and meta.xmp:
        try:
            xmp = metadata.edit_xmp(meta.xmp, drop_orientation=applied, drop_gps=drop_gps)
        except (ValueError, SyntaxError) as exc:
            why = f"XMP cannot be parsed (so orientation and GPS cannot be removed from it): {exc}; dropped"
            notes.warn("metadata.damaged", item="xmp", format=output.format, error=why)
    keep_iptc = output.iptc == "keep"
    photoshop, iptc = (meta.photoshop, meta.iptc) if keep_iptc else (None, None)
    if stamped:
        exif = stamp.exif(exif, stamped)
        xmp = stamp.xmp(xmp, stamped)
        if output.format in ("jpeg", "tiff") and any(f in stamped for f in stamp.IPTC_FIELDS):
            records = stamp.iptc(iptc or stamp.records_in(photoshop), stamped, notes)
            photoshop, iptc = (
                (stamp.replace_iptc_resource(photoshop, records), None) if photoshop else (None, records)
            )
    layers = meta.layers
    if layers is not None and (output.format != "tiff" or resized or turned or meta.icc != source.meta.icc):
        why = ("Photoshop layers describe the source's pixels exactly; they are kept only in a TIFF of the "
               "same pixels")  # fmt: skip
        notes.warn("layers.dropped", format=output.format, error=why)
        layers = None
    return Metadata(exif=exif, icc=meta.icc, xmp=xmp, photoshop=photoshop, iptc=iptc, nclx=meta.nclx,
                    resolution=resolution, layers=layers, extra_samples=meta.extra_samples)  # fmt: skip


def _output_exif(raw: bytes, output: Output, notes: imaging.Notes, **args: Any) -> bytes | None:
    """The source's EXIF patched in place, else rebuilt (logged), else dropped (logged)."""
    drop_thumbnail = args.pop("drop_thumbnail")
    try:
        return metadata.patch(raw, drop_thumbnail=drop_thumbnail, **args)
    except metadata.ExifStructureError as exc:
        notes.warn("metadata.reserialised", item="exif", format=output.format, error=str(exc))
    try:
        return metadata.reserialise(raw, **args)
    except (ValueError, SyntaxError, struct.error, TypeError, KeyError) as exc:
        notes.warn("metadata.damaged", item="exif", format=output.format,
                   error=f"the EXIF block cannot be read or rebuilt ({exc}); dropped")  # fmt: skip
        return None


def _output_resolution(source: Resolution | None, output: Output, upright: tuple[int, int],
                       size: tuple[int, int], *, swap: bool) -> Resolution | None:  # fmt: skip
    """The output's print resolution: `dpi` if set, else the source's, following a turn and a resize."""
    if output.dpi is not None:
        return Resolution(float(output.dpi), float(output.dpi))
    if source is None:
        return None
    turned = source.swapped() if swap else source
    if size == upright:
        return turned
    return turned.scaled(size[0] / upright[0], size[1] / upright[1])


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
