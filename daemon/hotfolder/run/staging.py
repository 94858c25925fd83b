"""Staging in a worker: each output written to a synced temp file beside its final name and verified,
and the copy of an original that moves to another filesystem; nothing is made visible here."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import IO

from PIL import Image

from hotfolder.commit import atomic, faults
from hotfolder.commit.staged import Disposal, Outcome, StagedOutput
from hotfolder.core import tempnames
from hotfolder.core.identity import FileIdentity
from hotfolder.decide import jxl
from hotfolder.decide.job import Job
from hotfolder.decide.motion import Motion
from hotfolder.decide.naming import SEQ_MARK
from hotfolder.errors import AbandonedError, EncodeError, InputError
from hotfolder.render import stamp
from hotfolder.render.encode import encode
from hotfolder.render.motion import Video, check_video
from hotfolder.render.notes import Notes
from hotfolder.render.policy import Origin, images_metadata, output_metadata
from hotfolder.render.source import Source
from hotfolder.render.transform import Rendered
from hotfolder.render.transform import render as render_output
from hotfolder.render.verify import same_picture, verify
from hotfolder.settings.outputs import DEFAULT_JXL_EFFORT, Output
from hotfolder.settings.rules import Rule


@dataclass
class Work:
    base: Outcome
    staged: list[StagedOutput] = field(default_factory=list)
    copy: Path | None = None
    resized: dict[int, Image.Image] = field(default_factory=dict)  # max_edge -> shrunk source
    notes: Notes = field(default_factory=Notes)
    sidecar: bytes | None = None  # the group's XMP sidecar, merged into outputs that ask for it
    merged: dict[int, Source] = field(default_factory=dict)  # id(source) -> it with the sidecar merged
    wanted: Callable[[], bool] = lambda: True  # False: the job was cancelled where it was submitted
    # Temp names carry the job's token (every sweep finds them by it) and this run's: a cluster may run
    # one job twice (a result lost with its worker), and the second run must not meet the first's files.
    run: str = field(default_factory=lambda: secrets.token_hex(2))
    made: list[Path] = field(default_factory=list)  # output folders this job created (removed if it fails)
    # A JPEG source's jxl outputs: True for each that is a transcode (rebuilds the original byte for
    # byte), False for each written from pixels. The original may go only if one of them rebuilds it.
    jxl_rebuilds: list[bool] = field(default_factory=list)
    jxl_why: list[str] = field(default_factory=list)  # why each pixel-encoded one is not a transcode

    def still_wanted(self) -> None:
        """Stop here if nobody waits for this job any more (an orphan of a cluster's retry)."""
        if not self.wanted():
            raise AbandonedError("cancelled by the daemon that submitted it (it ran elsewhere again)")

    def discard(self) -> None:
        """A failed job leaves nothing in output_root: its temp files, then the folders it made."""
        for s in self.staged:
            s.temp.unlink(missing_ok=True)
        if self.copy is not None:
            self.copy.unlink(missing_ok=True)
        atomic.remove_made(self.made)


def stage_output(
    job: Job,
    work: Work,
    *,
    data: bytes,
    digest: str,
    st: os.stat_result,
    source: Source | None,
    index: int,
    name: tuple[Rule, Output, Path, stamp.Stamped],
) -> StagedOutput:
    """One output written to its temp file beside its final name, synced and verified."""
    rule, output, final, stamped = name
    t0 = time.perf_counter()
    folder = _staging_folder(final, job.output_root)
    temp = tempnames.temp_path(
        folder / final.name.replace(SEQ_MARK, "seq"), token=f"{job.token}{work.run}{index:02x}"
    )
    earlier: tuple[tuple[Path, FileIdentity], ...] = ()
    carried = _transcoded(output, source, data, digest, work) or _rebuilt(output, source, data, work)
    if carried is not None or output.format == "copy" or source is None:
        # Bytes made before the temp file: a JPEG's transcode, the JPEG a JPEG XL gives back, or a copy.
        payload = carried if carried is not None else data
        staged, written = _stage_bytes(
            payload, folder=folder, temp=temp, job=job, work=work, st=st, output=output, digest=digest
        )
    else:
        rendered = render_output(source, output, work.notes, work.resized)
        origin = Origin(job.src.name, digest)
        rendered = replace(
            rendered,
            meta=output_metadata(source, rendered, output, work.notes, stamped=stamped, origin=origin),
        )
        rendered = replace(
            rendered, images_meta=images_metadata(source, rendered, output, work.notes, stamped)
        )
        staged = _stage_in(folder, temp, partial(encode, rendered, output, notes=work.notes), job, work)
        with atomic.removed_on_error(staged.temp):
            written = staged.temp.read_bytes()
            verify(written, rendered, output)
            if faults.failing("verify"):
                raise EncodeError(f"the written {output.format} failed its verification (injected by a test)")
            _finish_file(staged.temp, job, st)
            earlier = _earlier_outputs(final, output, st, rendered)
    return StagedOutput(
        temp=staged.temp,
        final=final,
        rule=rule.name,
        format=output.format,
        size=staged.size,
        sha256=hashlib.sha256(written).hexdigest(),
        on_conflict=output.on_conflict,
        counter_format=output.counter_format,
        ms=elapsed_ms(t0),
        earlier=earlier,
    )


def stage_video(
    job: Job,
    work: Work,
    *,
    video: Video,
    motion: Motion,
    st: os.stat_result,
    name: tuple[Rule, Output, Path, stamp.Stamped],
) -> StagedOutput:
    """A motion photo's video, extracted beside its picture: staged, read back and checked like any
    output, so the commit makes it visible with the picture, under the same intent."""
    rule, output, final, _ = name
    t0 = time.perf_counter()
    folder = _staging_folder(final, job.output_root)
    temp = tempnames.temp_path(
        folder / final.name.replace(SEQ_MARK, "seq"), token=f"{job.token}{work.run}{len(work.staged):02x}"
    )
    staged = _stage_in(folder, temp, lambda fp: fp.write(video.data), job, work)
    with atomic.removed_on_error(staged.temp):
        written = staged.temp.read_bytes()
        check_video(written, video, motion)
        if faults.failing("verify-video"):
            raise EncodeError("the extracted video failed its check (injected by a test)")
        _finish_file(staged.temp, job, st)
    return StagedOutput(
        temp=staged.temp,
        final=final,
        rule=rule.name,
        format=motion.suffix[1:],
        size=staged.size,
        sha256=hashlib.sha256(written).hexdigest(),
        on_conflict=output.on_conflict,
        counter_format=output.counter_format,
        ms=elapsed_ms(t0),
    )


def _stage_bytes(
    payload: bytes,
    *,
    folder: Path,
    temp: Path,
    job: Job,
    work: Work,
    st: os.stat_result,
    output: Output,
    digest: str,
) -> tuple[atomic.Staged, bytes]:
    """Write bytes made already, read them back and check them: a transcoded JPEG XL must rebuild the
    original (SHA-256), a JPEG given back by a JPEG XL must be those bytes, a copy the source's."""
    staged = _stage_in(folder, temp, lambda fp: fp.write(payload), job, work)
    with atomic.removed_on_error(staged.temp):
        written = staged.temp.read_bytes()
        if output.format == "jxl":
            try:
                rebuilt = jxl.rebuild(written)
            except InputError as exc:
                raise EncodeError(f"the written jxl does not decode again: {exc}") from None
            if hashlib.sha256(rebuilt).hexdigest() != digest or faults.failing("verify"):
                raise EncodeError("the written jxl does not rebuild the original JPEG byte for byte")
        elif output.format == "jpeg":
            if written != payload or faults.failing("verify"):
                raise EncodeError("the written JPEG is not the one the JPEG XL rebuilds")
        elif hashlib.sha256(written).hexdigest() != digest:
            raise atomic.StagingError(f"copy {staged.temp} does not match the source")
        _finish_file(staged.temp, job, st)
    return staged, written


def _transcoded(output: Output, source: Source | None, data: bytes, digest: str, work: Work) -> bytes | None:
    """A jxl output of a JPEG source as a transcode of the JPEG's own coefficients, with its SHA-256 in
    the container (`hotfolder restore` checks it); None when it is written from pixels instead, said."""
    if output.format != "jxl" or source is None or source.format != "jpeg":
        return None
    why = output.transcode_blocker()
    if why is None:
        if work.sidecar is not None and output.sidecar_xmp == "merge":
            work.notes.warn(
                "metadata.dropped",
                item="xmp sidecar",
                format="jxl",
                error="not merged into a transcoded JPEG (its rebuild must be the original): it stays beside",
            )
        try:
            encoded = jxl.transcode(
                data,
                effort=output.effort or DEFAULT_JXL_EFFORT["transcode"],
                boxes=(jxl.Box(jxl.HASH_BOX, digest.encode()),),
            )
        except EncodeError as exc:
            why = (
                f"libjxl cannot transcode this JPEG ({exc}; CMYK, arithmetic-coded and 12-bit JPEGs are not)"
            )
        else:
            work.jxl_rebuilds.append(True)
            return encoded
    work.jxl_rebuilds.append(False)
    work.jxl_why.append(why)
    work.notes.warn("jxl.pixels", format="jxl", error=f"written from pixels, not a transcode: {why}")
    return None


def _rebuilt(output: Output, source: Source | None, data: bytes, work: Work) -> bytes | None:
    """A jpeg output of a JPEG XL that holds a JPEG's reconstruction data: that JPEG, byte for byte (its
    SHA-256 checked against the one hotfolder recorded in the archive, when it did), rather than a
    re-encode of its pixels. None when the output asks for changes, or the JPEG XL holds no JPEG."""
    if output.format != "jpeg" or source is None or source.format != "jxl" or not jxl.rebuildable(data):
        return None
    why = output.transcode_blocker()
    if why is not None:
        work.notes.warn("jxl.reencoded", format="jpeg", error=f"not the JPEG it holds: {why}")
        return None
    try:
        jpeg = jxl.rebuild(data)
    except InputError as exc:
        raise EncodeError(str(exc)) from None
    recorded = jxl.recorded_sha256(data)
    if recorded is not None and hashlib.sha256(jpeg).hexdigest() != recorded:
        raise EncodeError("the JPEG rebuilt from this JPEG XL is not the one it archived (SHA-256 differs)")
    return jpeg


def _earlier_outputs(
    final: Path, output: Output, st: os.stat_result, rendered: Rendered
) -> tuple[tuple[Path, FileIdentity], ...]:
    """The names this output may take that already hold this source's output as another encoder wrote
    it (a previous release, whose ledger row may be lost): every output is given its source's mtime, so
    the same mtime to the nanosecond, the same format and size and the same picture say so. Looked at
    only where a name is taken, as the commit will look (in order, up to the first free name)."""
    if output.on_conflict != "skip_identical" or SEQ_MARK in str(final):
        return ()
    found = []
    for n in range(100):
        candidate = tempnames.numbered(final, n, output.counter_format)
        if not (candidate.exists() or candidate.is_symlink()):
            break  # free: the commit stops here
        identity = FileIdentity.at(candidate)
        if identity is None:
            continue  # not a regular file: never replaced
        if identity.mtime_ns == st.st_mtime_ns and same_picture(candidate, rendered, output):
            found.append((candidate, identity))
    return tuple(found)


def _stage_in(
    folder: Path, temp: Path, write: Callable[[IO[bytes]], object], job: Job, work: Work
) -> atomic.Staged:
    """Make the folder and stage the temp file in it. A folder that vanishes in between (another job
    that failed removed the empty folder it had made) is made again: three tries, then the error."""
    for attempt in range(3):
        work.made += atomic.make_folder(folder, job.output_root)
        try:
            return atomic.stage_at(temp, write)
        except FileNotFoundError:
            if folder.is_dir() or attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _staging_folder(final: Path, root: Path) -> Path:
    """The folder a temp file is written in: the final one, or the nearest one above a {seq} folder."""
    folder = final.parent
    while SEQ_MARK in str(folder.relative_to(root)):
        folder = folder.parent
    return folder


def stage_move(job: Job, disposal: Disposal, data: bytes, digest: str, work: Work) -> Disposal:
    """A move to another filesystem is a copy: made and verified here, renamed into place by the daemon."""
    assert disposal.dest is not None
    folder = _staging_folder(disposal.dest, job.output_root)
    work.made += atomic.make_folder(folder, job.output_root)
    if folder.stat().st_dev == job.src.parent.stat().st_dev:
        return disposal  # a rename, done by the daemon
    temp = tempnames.temp_path(
        folder / disposal.dest.name.replace(SEQ_MARK, "seq"), token=f"{job.token}{work.run}ff"
    )
    staged = _stage_in(folder, temp, lambda fp: fp.write(data), job, work)
    work.copy = staged.temp
    if hashlib.sha256(staged.temp.read_bytes()).hexdigest() != digest:
        raise atomic.StagingError(f"copy of the original {staged.temp} does not match it")
    return replace(disposal, staged=staged.temp)


def _finish_file(temp: Path, job: Job, st: os.stat_result) -> None:
    """Outputs get the source's mtime, and the configured mode and group (before they are visible)."""
    os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
    if job.file_mode is not None:
        temp.chmod(job.file_mode)
    if job.gid is not None:
        os.chown(temp, -1, job.gid)


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
