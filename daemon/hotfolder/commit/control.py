"""The daemon's control socket (state_dir/control.sock): one JSON request per connection, one JSON
answer. `hotfolder serve` asks the daemon to retry a quarantined input through it, so the one writer of
the ledger and the quarantine stays the daemon. One owner for the socket's name and its wire format."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Final

CONTROL_NAME: Final = "control.sock"
MAX_MESSAGE: Final = 4096  # a request is a verb and an id: anything longer is not ours
ANSWER_SECONDS: Final = 10.0  # the daemon answers at its next loop (0.5 s idle; a full pool may take longer)
_SUN_PATH_MAX: Final = 107  # sockaddr_un.sun_path is 108 bytes with its NUL


def address(state_dir: Path) -> str:
    """The socket's path, reached through /proc/self/fd when it is longer than sun_path holds.

    Returns a path string; for a long one the caller must keep `state_dir` open (see `bindable`)."""
    return str(state_dir / CONTROL_NAME)


def _connectable(path: str) -> tuple[str, int | None]:
    """A path short enough for sun_path: itself, or its folder opened and named by /proc/self/fd."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return path, None
    folder, name = os.path.split(path)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{name}", fd


def bind(state_dir: Path) -> socket.socket:
    """A listening socket at state_dir/control.sock (a stale one from a crash is replaced)."""
    path = address(state_dir)
    Path(path).unlink(missing_ok=True)  # only the state lock's holder binds, so it is ours
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    where, fd = _connectable(path)
    try:
        sock.bind(where)
    finally:
        if fd is not None:
            os.close(fd)
    Path(path).chmod(0o660)  # the daemon's user and group (serve runs as one of them)
    sock.listen(8)
    return sock


def encode(message: Mapping[str, object]) -> bytes:
    """One message on the wire: a JSON object and a newline."""
    return json.dumps(message).encode() + b"\n"


def decode(data: bytes) -> dict[str, object]:
    """The JSON object of one message; ValueError when it is not one."""
    value = json.loads(data.decode())
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def receive(conn: socket.socket) -> bytes:
    """Read one newline-ended message (at most MAX_MESSAGE bytes)."""
    data = b""
    while not data.endswith(b"\n") and len(data) < MAX_MESSAGE:
        chunk = conn.recv(MAX_MESSAGE - len(data))
        if not chunk:
            break
        data += chunk
    return data


def ask(
    state_dir: Path, message: Mapping[str, object], *, timeout: float = ANSWER_SECONDS
) -> dict[str, object]:
    """Send one request to the running daemon and return its answer; OSError when none is listening."""
    where, fd = _connectable(address(state_dir))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(timeout)
            sock.connect(where)
            sock.sendall(encode(message))
            answer = receive(sock)
    finally:
        if fd is not None:
            os.close(fd)
    try:
        return decode(answer)
    except ValueError:
        raise ConnectionError(f"the daemon's answer was not understood: {answer[:80]!r}") from None
