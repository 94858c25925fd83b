"""Connections that never send a whole request cannot take the page down (slow loris).

uvicorn times out a keep-alive connection between requests, but not one that is still sending its
headers: ~1,000 clients each holding a half-sent request used every descriptor of a serve started with
systemd's default soft limit of 1024, and the page stopped answering. Three measures, each general:

- the soft descriptor limit is raised to the hard one at start (the unit sets `LimitNOFILE=`);
- a request's headers must be complete within HEADER_SECONDS of the connection opening (or of the
  previous response on a kept-alive connection), else the connection is closed;
- at most `cap` connections are kept, well under the descriptor limit: past it, the oldest connection
  that is not being answered is closed to make room, so a new client (the person at the page, the
  Prometheus scrape) is always served, never refused with a 503 or left in the accept queue.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any, ClassVar, Final

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS: Final = 10.0
# Descriptors kept free beyond the connections: the listening socket, the ledger and live.json opened
# per request, thumbnails, the notifications' sockets, Python's own (about 40 were open when idle).
RESERVE: Final = 128
_FLOOR: Final = 64


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one; (soft before, soft now)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft, soft
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(soft_limit: int) -> int:
    """How many connections serve keeps open at most under this descriptor limit."""
    return max(_FLOOR, soft_limit - RESERVE)


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline for complete headers and a cap on open connections."""

    cap: ClassVar[int] = 1024 - RESERVE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._opened = 0.0
        self._requests = 0
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._opened = self.loop.time()
        self._arm()
        if len(self.connections) > self.cap:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:
            self._requests += 1  # a request's headers arrived whole

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request on this kept-alive connection gets the same deadline

    def _busy(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(HEADER_SECONDS, self._expire, self._requests)

    def _expire(self, requests: int) -> None:
        if self._requests == requests and not self._busy() and not self.transport.is_closing():
            self.transport.close()

    def _make_room(self) -> None:
        idle = [c for c in self.connections if isinstance(c, GuardedH11) and c is not self and not c._busy()]
        for victim in sorted(idle, key=lambda c: c._opened)[: len(self.connections) - self.cap]:
            victim.transport.close()
