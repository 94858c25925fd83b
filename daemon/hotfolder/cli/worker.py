"""`hotfolder worker ADDRESS`: dask's own nanny and worker processes on a worker host, set up as hotfolder
needs them (one thread each, codecs preloaded, K of N in the heavy lane); stopped by SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Final

from hotfolder.settings.cluster import HEAVY_RESOURCE as HEAVY
from hotfolder.settings.cluster import WORKER_ENV

# Exit codes: a usage error, and the scheduler lost (non-zero, so `Restart=on-failure` brings the
# worker back; it used to exit 0 and stay down while the daemon waited for workers for ever).
EXIT_USAGE: Final = 2
EXIT_SCHEDULER_LOST: Final = 3
# How long a worker waits for an unreachable scheduler (at start, or to reconnect) before giving up.
DEATH_TIMEOUT_S: Final = 60


def listen_host(address: str, listen: str | None) -> str:
    """The address the workers' own listeners bind to: `listen` if given, else the local address that
    reaches the scheduler (127.0.0.1 for a loopback scheduler), never every interface: a dask worker
    runs any pickled function sent to it."""
    if listen:
        return listen
    host, port = address.split("://", 1)[-1].rsplit(":", 1)
    family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host.strip("[]"), int(port)))  # no packet: only the route is looked up
        return str(probe.getsockname()[0])


def worker(
    address: str,
    *,
    nworkers: int,
    heavy: int | None,
    tls: tuple[Path, Path, Path] | None,
    name: str | None = None,
    listen: str | None = None,
) -> int:
    """Run `nworkers` one-thread dask workers until stopped; returns the exit code (EXIT_SCHEDULER_LOST
    when they ended because the scheduler went away, not because they were told to stop)."""
    os.environ.update(WORKER_ENV)
    heavy = max(1, nworkers // 2) if heavy is None else min(heavy, nworkers)
    try:
        host = listen_host(address, listen)
    except (OSError, ValueError) as exc:  # a name that does not resolve (yet: DNS at boot), no route
        print(
            f"hotfolder: worker: no address of this host reaches the scheduler {address}: {exc}; exiting "
            f"{EXIT_SCHEDULER_LOST} so that the service manager tries again",
            file=sys.stderr,
        )
        return EXIT_SCHEDULER_LOST
    told = asyncio.run(_serve(address, nworkers, heavy, tls, name=name or socket.gethostname(), host=host))
    if told:
        return 0
    print(
        f"hotfolder: worker: the scheduler at {address} went away or cannot be reached; exiting "
        f"{EXIT_SCHEDULER_LOST} so that the service manager starts this worker again",
        file=sys.stderr,
    )
    return EXIT_SCHEDULER_LOST


async def _serve(
    address: str, nworkers: int, heavy: int, tls: tuple[Path, Path, Path] | None, *, name: str, host: str
) -> bool:
    """True when stopped by a signal; False when the workers ended on their own (the scheduler is gone)."""
    from distributed import Nanny, Security  # noqa: PLC0415 - dask loads only where it runs

    sec = None
    if tls is not None:
        ca, cert, key = (str(p) for p in tls)
        sec = Security(
            tls_ca_file=ca,
            tls_worker_cert=cert,
            tls_worker_key=key,
            tls_client_cert=cert,
            tls_client_key=key,
            require_encryption=True,
        )
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
            host=host,  # the nanny's and its worker's listeners: never 0.0.0.0 and [::]
            death_timeout=DEATH_TIMEOUT_S,
        )
        for i in range(nworkers)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.gather(*(n.start() for n in nannies))
    except (OSError, TimeoutError):
        await asyncio.gather(*(n.close(timeout=30) for n in nannies), return_exceptions=True)
        return stop.is_set()
    # Any one nanny ending on its own means the scheduler dropped this host: end them all, say so.
    finished = [asyncio.ensure_future(n.finished()) for n in nannies]
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([*finished, stopping], return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*(n.close(timeout=30) for n in nannies), return_exceptions=True)
    for waiting in (*finished, stopping):
        waiting.cancel()
    return stop.is_set()
