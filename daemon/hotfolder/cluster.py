"""dask's preload for hotfolder workers: `dask worker ADDRESS --nthreads 1 --preload hotfolder.cluster`
(what `hotfolder worker` does for each of its workers): one libvips and one OpenMP thread, codecs
registered and LibRaw loaded before the first job."""

from __future__ import annotations

import importlib
import os
from typing import Any

from hotfolder.settings.cluster import WORKER_ENV


def dask_setup(worker: Any) -> None:
    """Called by dask in each worker process as it starts."""
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)
    from hotfolder.decide.sniff import register_codecs  # noqa: PLC0415 - after the environment above

    register_codecs()
    for module in ("pyvips", "rawpy"):  # LibRaw: 0.2 s on the first RAW job otherwise
        importlib.import_module(module)
    if getattr(worker.state, "nthreads", 1) != 1:
        # One job per thread would run encoders side by side in one process, sharing its memory limit.
        worker.log_event("hotfolder", {"warning": "start workers with --nthreads 1 (hotfolder worker does)"})
