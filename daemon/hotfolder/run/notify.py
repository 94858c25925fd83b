"""systemd's notify protocol (sd_notify(3)): READY, STATUS, WATCHDOG and STOPPING over NOTIFY_SOCKET.

A few lines over a datagram socket, so the daemon needs neither libsystemd nor systemd at run time;
without NOTIFY_SOCKET every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    """Sends state lines to the service manager named by $NOTIFY_SOCKET, if any."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        # '@' names a socket in the abstract namespace (systemd's own convention).
        self.address = "\0" + raw[1:] if raw.startswith("@") else raw
        self.watchdog_s = _watchdog_seconds(env)
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: object) -> bool:
        """Send KEY=value lines (keys upper-cased); False when there is no manager or it is gone."""
        if self._sock is None:
            return False
        message = "\n".join(f"{k.upper()}={v}" for k, v in fields.items())
        try:
            self._sock.sendto(message.encode(), socket.MSG_DONTWAIT, self.address)
        except OSError:
            # The manager went away or its queue is full: never block the daemon for a status line.
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """The watchdog interval systemd asked for, when it is meant for this process."""
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        seconds = int(usec) / 1e6
    except ValueError:
        return None
    return seconds if seconds > 0 else None
