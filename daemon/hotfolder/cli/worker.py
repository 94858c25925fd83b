"""`hotfolder worker ADDRESS`: dask's own nanny and worker processes on a worker host, set up as hotfolder
needs them (one thread each, codecs preloaded, K of N in the heavy lane); stopped by SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

from hotfolder.settings.cluster import HEAVY_RESOURCE as HEAVY
from hotfolder.settings.cluster import WORKER_ENV


def worker(address: str, *, nworkers: int, heavy: int | None, tls: tuple[Path, Path, Path] | None,
           name: str | None = None) -> int:  # fmt: skip
    """Run `nworkers` one-thread dask workers until stopped; returns the exit code."""
    os.environ.update(WORKER_ENV)
    heavy = max(1, nworkers // 2) if heavy is None else min(heavy, nworkers)
    asyncio.run(_serve(address, nworkers, heavy, tls, name or socket.gethostname()))
    return 0


async def _serve(address: str, nworkers: int, heavy: int, tls: tuple[Path, Path, Path] | None,
                 name: str) -> None:  # fmt: skip
    from distributed import Nanny, Security  # noqa: PLC0415 - dask loads only where it runs

    sec = None
    if tls is not None:
        ca, cert, key = (str(p) for p in tls)
        sec = Security(tls_ca_file=ca, tls_worker_cert=cert, tls_worker_key=key, tls_client_cert=cert,
                       tls_client_key=key, require_encryption=True)  # fmt: skip
    nannies = [
        Nanny(
            address,
            nthreads=1,
            resources={HEAVY: 1} if i < heavy else None,
            security=sec,
            preload=["hotfolder.cluster"],
            env=dict(WORKER_ENV),
            name=f"{name}-{i}",
            dashboard_address=None,
        )
        for i in range(nworkers)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*(n.start() for n in nannies))
    finished = asyncio.ensure_future(asyncio.gather(*(n.finished() for n in nannies)))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([finished, stopping], return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*(n.close(timeout=30) for n in nannies), return_exceptions=True)
