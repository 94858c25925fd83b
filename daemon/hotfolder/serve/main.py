"""`hotfolder serve`: uvicorn runs the page's application; the notifications' watcher runs beside it."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import uvicorn

from hotfolder import logs
from hotfolder.serve import alerts, guard
from hotfolder.serve.app import build, open_ledger
from hotfolder.serve.listen import Listen, ListenError, Secrets, parse_listen, read_token
from hotfolder.settings.config import Config

# Connections waiting to be accepted: a burst of clients (1,100 at once in the slow-loris test) must not
# overflow the kernel's queue, or a new client waits for SYN retransmits (1 s, 3 s, ...).
BACKLOG: Final = 2048


def apprise_missing(config: Config) -> str | None:
    """Why `notify` cannot be honoured here, or None."""
    if config.notify and importlib.util.find_spec("apprise") is None:
        return (
            "notify is set but apprise is not installed: pip install 'hotfolder[notify]' "
            "(serve runs without notifications meanwhile)"
        )
    return None


def serve(config: Config, listen_text: str, token_file: Path | None) -> int:
    """Serve the page until SIGTERM or SIGINT; returns the exit code (ListenError: 2)."""
    log = logs.get()
    listen: Listen = parse_listen(listen_text)
    token = read_token(token_file, listen)
    secrets = Secrets(token, os.urandom(32))
    missing = apprise_missing(config)
    if missing:
        log.warning("notify.unavailable", error=missing)

    @contextlib.asynccontextmanager
    async def notifications() -> AsyncIterator[None]:
        watcher = None
        if config.notify and not missing:
            opener = functools.partial(open_ledger, config.state_dir)
            watcher = alerts.Watcher(config.state_dir, opener, alerts.apprise_sender(config.notify))
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()

    app = build(config, listen, secrets, lifespan=notifications)
    was, soft = guard.raise_descriptor_limit()
    guard.GuardedH11.cap = guard.connection_cap(soft)
    sock = _bind(listen)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            proxy_headers=False,
            http=guard.GuardedH11,
            backlog=BACKLOG,
        )
    )
    log.info(
        "serve.started",
        pid=os.getpid(),
        dst=str(listen),
        token=token is not None,
        state_dir=str(config.state_dir),
        notify=len(config.notify) if not missing else 0,
        descriptors=soft,
        descriptors_were=was,
        max_connections=guard.GuardedH11.cap,
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if listen.unix is not None:
            listen.unix.unlink(missing_ok=True)
    log.info("serve.stopped", dst=str(listen))
    return 0


def _bind(listen: Listen) -> socket.socket:
    """The listening socket, bound here so a taken port is our clear error, not a server's traceback."""
    try:
        if listen.unix is None:
            family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
            return socket.create_server((listen.host, listen.port), family=family, backlog=BACKLOG)
        return _unix_socket(listen.unix)
    except OSError as exc:
        raise ListenError(f"--listen {listen}: cannot listen there: {exc.strerror or exc}") from None


def _unix_socket(path: Path) -> socket.socket:
    """A listening Unix socket for the owner and group only (uvicorn's own would be 0666: any local user)."""
    if path.is_socket():
        path.unlink()  # a stale one of ours; anything else there is not replaced (bind refuses)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(BACKLOG)
    return sock
