"""Workers ready before they are needed: a fork server, started first thing by `run` and `process`,
imports once what a job runs; each worker is then a fork of it.

Measured here (2 cores, 12 MP photo): a spawned worker started a fresh interpreter and imported the
whole CLI again, ~350 ms each before its first job; a fork of the server takes ~5 ms, and the server's
own start overlaps the command's imports on the other core. Forking is safe only from a process that
has no threads: the daemon has observer threads, so workers are never forked from it, and the server
imports nothing that starts one (libvips and LibRaw are loaded by the workers: worker.py).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

# The server imports this module and with it every module a job runs.
PRELOAD: Final = "hotfolder.run.warm"
# One thread per codec in a worker: the pool already keeps every core busy (and numpy's OpenBLAS would
# start its thread pool at import, in the server, before it forks).
ONE_THREAD: Final = {"VIPS_CONCURRENCY": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
# glibc's malloc gives a block over 128 kB its own mmap and unmaps it when freed, raising that bound only
# as such blocks are freed: a worker's first two jobs faulted in 16,400 and 11,200 pages for the same
# 12 MP photo (the third 270) and took 150-180 and 130-145 ms against ~105. Fixed bounds keep a job's
# buffers in the heap for the next: 15,450 then ~370 faults, 135-145 then ~107 ms. Blocks over 64 MB (a
# full-size 24 MP decode) still get their own mapping, and free heap above 128 MB goes back to the system.
MALLOC: Final = "glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=134217728"
# The pid of the process that starts the server: the server checks its parent against it, not against
# pid 1 (the daemon is pid 1 itself in a container without an init, where that check ended the server
# at once and the daemon with an EOFError).
PARENT_ENV: Final = "HOTFOLDER_FORKSERVER_PARENT"


def context() -> BaseContext:
    """The multiprocessing context of the local pool: the fork server, with what a job runs preloaded."""
    import multiprocessing  # noqa: PLC0415 - only for a pool (~10 ms): `process` of one input has none

    for key, value in {**ONE_THREAD, "GLIBC_TUNABLES": MALLOC}.items():
        os.environ.setdefault(key, value)  # inherited by the server when it starts (a user's own wins)
    os.environ[PARENT_ENV] = str(os.getpid())
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD])
    return ctx


def start() -> None:
    """Start the fork server now (it imports while the caller goes on), not when the first job comes."""
    from multiprocessing import forkserver  # noqa: PLC0415

    context()
    forkserver.ensure_running()


def stop() -> None:
    """Stop the fork server if one was started (nothing will be run locally: a cluster does the work)."""
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is None:  # never imported, so never started: `process` of one input (~10 ms to import)
        return
    # The stdlib has no public way to stop it.
    forkserver._forkserver._stop()
