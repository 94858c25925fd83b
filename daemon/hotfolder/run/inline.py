"""An executor that runs each job in this process as it is submitted: `hotfolder process` of one input.

A pool costs a one-shot command more than one job's work: the fork server's start, the worker's fork
and first imports, the pool's shutdown (measured in `make bench`, row 3). One job has nothing to run
beside it, so it runs here, with every core libvips wants. What it gives up is a pool's isolation: no
job_timeout (nothing can stop a call in this process) and a codec crash ends the command (its exit code
says so; the input is untouched, as nothing was committed). Ctrl-C stops the job where it is, as a
crash would: its temp file is swept by the next run (commit/cleanup.py), nothing was made visible.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import ParamSpec, TypeVar

from hotfolder import logs

P = ParamSpec("P")
T = TypeVar("T")


class Inline(Executor):
    """Runs the call at submit and returns its finished future."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run `fn` now; its result or its exception is in the returned future."""
        future: Future[T] = Future()
        # The job waits in libvips most of its time and logs nothing itself: the logging library is
        # imported meanwhile, on the core the job leaves idle, not after it.
        logs.preload()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed back in the future, as a pool does
            future.set_exception(exc)
        return future

    def __repr__(self) -> str:
        return "Inline()"


def inline_executor() -> Executor:
    """The Inline executor, with the image codecs registered as a worker's start registers them."""
    from hotfolder.decide.sniff import register_codecs  # noqa: PLC0415
    from hotfolder.run import worker  # noqa: PLC0415

    register_codecs()
    # What the job runs, imported before it starts (as a pool's worker has it): the other core then
    # imports the logging library while the job waits in libvips, not while it imports (submit).
    import hotfolder.run.job  # noqa: F401, PLC0415

    worker.ready()
    return Inline()
