"""The `[cluster]` table: where the dask scheduler is, how to reach it safely, and where the workers see
the storage; absent, jobs run on the local process pool."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

LOCAL: Final = "local"  # scheduler = "local": the daemon starts one itself
_SCHEMES: Final = ("tcp://", "tls://")
_KEYS: Final = frozenset(
    {"scheduler", "listen", "tls_ca", "tls_cert", "tls_key", "allow_insecure", "path_map"}
)
DEFAULT_LISTEN: Final = "tls://0.0.0.0:8786"
# A worker process runs one job on one thread, as in the local pool: libvips and LibRaw's OpenMP get one
# thread too (set before they load).
WORKER_ENV: Final = {"VIPS_CONCURRENCY": "1", "OMP_NUM_THREADS": "1"}
HEAVY_RESOURCE: Final = "heavy"  # the dask resource of workers in the heavy lane (`hotfolder worker --heavy`)


@dataclass(frozen=True)
class Cluster:
    """A dask.distributed cluster that runs the jobs; the daemon stays the only one that commits."""

    scheduler: str  # an address (tcp:// or tls://), or LOCAL
    listen: str | None = None  # LOCAL: where the scheduler the daemon starts listens
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_insecure: bool = False
    # (daemon's path, worker's path) pairs, longest first, for workers that mount the storage elsewhere
    path_map: tuple[tuple[PurePosixPath, PurePosixPath], ...] = ()

    @property
    def tls(self) -> bool:
        """Whether the connection is mutual TLS."""
        return self.tls_cert is not None

    @property
    def address(self) -> str:
        """The address the scheduler listens on (the configured one, or the local one's)."""
        return (self.listen or DEFAULT_LISTEN) if self.scheduler == LOCAL else self.scheduler


Problem = Callable[[str, str, int | None], None]  # (message, key, line)


def key_line(text: str, table: str, key: str) -> int | None:
    """1-based line of `key` inside `[table]` ("": the top level) of a TOML text, when written plainly."""
    inside = table == ""
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped.split("#", 1)[0].strip() == f"[{table}]"
        elif inside and re.match(rf"{re.escape(key)}\s*=", stripped):
            return n
    return None


def parse_cluster(raw: Any, base: Path, text: str, problem: Problem) -> Cluster | None:
    """The `[cluster]` table checked: the scheduler's address, TLS files that exist, a path map."""
    if raw is None:
        return None

    def bad(message: str, key: str) -> None:
        problem(message, f"cluster.{key}", key_line(text, "cluster", key))

    if not isinstance(raw, Mapping):
        problem("must be a table: [cluster] with scheduler = ...", "cluster", key_line(text, "", "cluster"))
        return None
    for key in sorted(raw.keys() - _KEYS):
        bad(f"unknown key; [cluster] keys are {', '.join(sorted(_KEYS))}", key)
    scheduler = raw.get("scheduler")
    if scheduler != LOCAL and not (isinstance(scheduler, str) and scheduler.startswith(_SCHEMES)):
        bad(f'must be "local" or an address like "tls://10.0.0.5:8786", not {scheduler!r}', "scheduler")
        return None
    listen = raw.get("listen")
    if listen is not None and (
        scheduler != LOCAL or not isinstance(listen, str) or not listen.startswith(_SCHEMES)
    ):
        bad(f'only with scheduler = "local": an address like "tls://0.0.0.0:8786", not {listen!r}', "listen")
    files = {k: _file(raw.get(k), base, k, bad) for k in ("tls_ca", "tls_cert", "tls_key")}
    insecure = raw.get("allow_insecure", False)
    if not isinstance(insecure, bool):
        bad(f"must be true or false, not {insecure!r}", "allow_insecure")
        insecure = False
    cluster = Cluster(
        scheduler=scheduler,
        listen=listen if isinstance(listen, str) else None,
        allow_insecure=insecure,
        path_map=_path_map(raw.get("path_map", {}), bad),
        **files,
    )
    given = [k for k, v in files.items() if v is not None]
    if given and len(given) != 3:
        missing = sorted(set(files) - set(given))
        bad(f"mutual TLS needs tls_ca, tls_cert and tls_key; missing {', '.join(missing)}", missing[0])
    tls = cluster.address.startswith("tls://")
    if tls and not cluster.tls:
        bad("a tls:// address needs tls_ca, tls_cert and tls_key (mutual TLS)", "scheduler")
    if not tls and not insecure:
        bad(
            "plain tcp:// lets anyone on the network run code on the workers and read every picture; "
            "use tls:// with tls_ca, tls_cert and tls_key, or set allow_insecure = true on a trusted "
            "network",
            "scheduler",
        )
    return cluster


def _file(value: Any, base: Path, key: str, bad: Callable[[str, str], None]) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        bad(f"must be a file path, not {value!r}", key)
        return None
    path = (base / Path(value).expanduser()).resolve()
    if not path.is_file():
        bad(f"{path} does not exist", key)
    return path


def _path_map(value: Any, bad: Callable[[str, str], None]) -> tuple[tuple[PurePosixPath, PurePosixPath], ...]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and k.startswith("/") and v.startswith("/")
        for k, v in value.items()
    ):
        bad(
            f'must be a table of absolute paths, like {{ "/srv/photos" = "/mnt/photos" }}, not {value!r}',
            "path_map",
        )
        return ()
    pairs = [(PurePosixPath(k), PurePosixPath(v)) for k, v in value.items()]
    # The longest prefix wins: /srv/photos/raw may be mounted apart from /srv/photos.
    return tuple(sorted(pairs, key=lambda p: len(p[0].parts), reverse=True))
