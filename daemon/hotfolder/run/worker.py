"""A local pool worker's own side: its start and its one entry point. Light on purpose: the daemon
imports this module to name these functions to the pool; what a job runs is already imported in the
worker (warm.py, through the fork server)."""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from hotfolder.commit.staged import Outcome
    from hotfolder.decide.job import Job

_PR_SET_PDEATHSIG: Final = 1


def init(preload: tuple[str, ...] = ()) -> None:
    """A worker's start: die with its parent, ignore the terminal's Ctrl-C, load the decoders wanted."""
    # Ctrl-C reaches the whole process group; the daemon decides when workers stop, not the terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # If the daemon dies (even kill -9), the fork server ends and its workers die with it instead of
    # writing on as orphans.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # The server died while this worker was starting (no signal will come): its orphan now has pid 1 or
    # a subreaper (tini, systemd) for parent. The server's pid comes with the fork (run/warm.py).
    server = getattr(sys.modules.get("hotfolder.run.warm"), "SERVER", None)
    if os.getppid() != (server or os.getppid()):
        os._exit(1)
    from hotfolder.decide.sniff import register_codecs  # noqa: PLC0415 - done in the fork server already

    register_codecs()
    # Decoders a rule will need, loaded while the worker starts rather than on its first job (LibRaw:
    # 0.2 s here); they start threads, so they are loaded here and never in the fork server.
    for module in preload:
        importlib.import_module(module)


def run(job: Job) -> Outcome:
    """Run one job (run_job) in this worker."""
    from hotfolder.run.job import run_job  # noqa: PLC0415 - imported in the fork server already

    return run_job(job)


def ready() -> None:
    """A worker's first call, made when the pool starts: libvips (every resize and most writers use it)
    loaded and initialised before a job waits for it (~50 ms here)."""
    import pyvips  # noqa: PLC0415 - starts libvips' threads: in the worker, never in the fork server

    pyvips.Image.black(1, 1).avg()
