"""A job on a cluster worker: the same run_job, in the daemon's terms of paths, time zone and file identity.

The daemon sends a job with its own paths; a worker that mounts the storage elsewhere gets them
mapped (path_map), and what comes back is mapped again. A file's identity holds the device number,
which differs between hosts mounting one share (the inode does not: NFS and CephFS give the server's),
so identities are translated too, or every job would look "changed while it was read".
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final, TypeVar

from hotfolder import __version__
from hotfolder.commit.committer import discard
from hotfolder.commit.staged import Outcome
from hotfolder.core.identity import FileIdentity
from hotfolder.core.status import Result, RetryReason
from hotfolder.decide.job import Job

T = TypeVar("T")
Pairs = tuple[tuple[PurePosixPath, PurePosixPath], ...]

# What makes the same job give the same bytes: a worker running anything else is refused.
VERSIONED: Final = ("Pillow", "pillow-heif", "pyvips", "rawpy", "numpy", "piexif")


def remap(value: T, leaf: Callable[[Any], Any]) -> T:
    """`value` with `leaf` applied to every Path and FileIdentity inside it (dataclasses and tuples walked);
    parts that do not change are the same objects."""
    if isinstance(value, Path | FileIdentity):
        return leaf(value)  # type: ignore[no-any-return]
    if isinstance(value, tuple):
        items = tuple(remap(v, leaf) for v in value)
        same = all(a is b for a, b in zip(items, value, strict=True))
        return value if same else items  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            if not f.init:
                continue
            old = getattr(value, f.name)
            new = remap(old, leaf)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value


def mapper(pairs: Pairs, *, back: bool = False) -> Callable[[Any], Any]:
    """A leaf function for remap(): a path below a mapped prefix moved to the other side's prefix."""
    table = [(b, a) for a, b in pairs] if back else list(pairs)

    def leaf(value: Any) -> Any:
        if not isinstance(value, Path):
            return value
        for src, dst in table:
            if value.is_relative_to(src):
                return Path(dst) / value.relative_to(src)
        return value

    return leaf


@dataclass(frozen=True)
class Context:
    """What a job needs from the daemon's side besides itself."""

    key: str  # the dask key: whether the job is still wanted is asked by it
    tz: str | None  # the daemon's time zone, for {taken}'s mtime fallback
    pairs: Pairs = ()  # the path map, daemon path -> worker path
    expect: tuple[tuple[str, str], ...] = ()  # the daemon's versions(): a worker that differs runs nothing


def versions() -> dict[str, str]:
    """hotfolder's and the codecs' versions, and the libvips actually loaded."""
    import pyvips  # noqa: PLC0415 - loaded where images are made, and on the daemon only when asked

    found = {
        "hotfolder": __version__,
        "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
    }
    for dist in VERSIONED:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "absent"
    return found


@functools.cache
def _versions() -> dict[str, str]:
    return versions()


def worker_facts(probes: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Run on each worker as it joins: its versions, its pid, and whether it reads each probe file
    (path as the worker sees it, content expected) with the right content."""
    seen = {}
    for path, content in probes:
        try:
            seen[path] = Path(path).read_text(encoding="ascii") == content
        except (OSError, UnicodeDecodeError):
            seen[path] = False
    return {"versions": versions(), "probes": seen, "pid": os.getpid()}


def _still_wanted(key: str) -> bool:
    """Whether this worker still runs `key` for someone (not cancelled, released or forgotten)."""
    from distributed import get_worker  # noqa: PLC0415 - only ever called inside a dask worker

    try:
        task = get_worker().state.tasks.get(key)
    except ValueError:  # not in a worker: run directly (tests, a LocalCluster in threads)
        return True
    return task is not None and task.state in ("executing", "long-running")


def _use_zone(tz: str | None) -> None:
    if tz and os.environ.get("TZ") != tz:
        os.environ["TZ"] = tz
        time.tzset()


def run_remote(job: Job, context: Context) -> Outcome:
    """run_job on a worker: paths, time zone and identities in the daemon's terms, and stopped (its temp
    files removed) when the daemon gave up on it meanwhile."""
    from hotfolder.run.job import run_job  # noqa: PLC0415 - keeps `hotfolder worker` start-up light

    mine = _versions()
    differ = [f"{k} {mine.get(k)} (daemon: {v})" for k, v in context.expect if mine.get(k) != v]
    if differ:
        # Checked when the worker joined too; this guards the moments before that check came back.
        return Outcome(
            job.src,
            Result.RETRY,
            identity=job.seen,
            retry=RetryReason.DEFERRED,
            error=f"a worker with other versions refused it: {', '.join(differ)}",
        )
    _use_zone(context.tz)
    local = remap(job, mapper(context.pairs))
    seen = job.seen
    here = FileIdentity.at(local.src)
    same = (
        seen is not None
        and here is not None
        and (seen.ino, seen.size, seen.mtime_ns) == (here.ino, here.size, here.mtime_ns)
    )
    if same:
        assert seen is not None and here is not None
        local = dataclasses.replace(local, seen=here)
    outcome = run_job(local, wanted=lambda: _still_wanted(context.key))
    if outcome.result is Result.STAGED and not _still_wanted(context.key):
        discard(outcome)
        return Outcome(job.src, Result.GONE, error="cancelled by the daemon")
    back = mapper(context.pairs, back=True)
    worker_dev, daemon_dev = (here.dev, seen.dev) if same and here and seen else (0, 0)

    def leaf(value: Any) -> Any:
        if isinstance(value, FileIdentity):
            return dataclasses.replace(value, dev=daemon_dev) if value.dev == worker_dev else value
        return back(value)

    return remap(outcome, leaf)
