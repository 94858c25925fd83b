"""Telling systemd how things stand: the STATUS line, and WATCHDOG=1 only while every part is alive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from hotfolder import logs
from hotfolder.core.status import Tally
from hotfolder.run.notify import Notifier

log = logs.get()

STATUS_SECONDS: Final = 2.0  # how often systemd's STATUS= line may change
STUCK_GRACE_SECONDS: Final = (
    60.0  # past job_timeout plus this, the pool could not be mended: let systemd restart
)


def status_line(counts: dict[str, int], pending: int, retrying: list[str]) -> str:
    """The one line `systemctl status` shows."""
    text = (
        f"pending {pending}, done {counts[Tally.DONE]}, failed {counts[Tally.FAILED]}, "
        f"quarantined {counts[Tally.QUARANTINED]} since start"
    )
    if retrying:
        text += "; retrying root " + ", ".join(sorted(retrying))
    return text


class Heartbeat:
    """STATUS when it changes (at most every few seconds), WATCHDOG=1 at half the interval if vital."""

    def __init__(self, notifier: Notifier, *, clock: Callable[[], float]) -> None:
        self.notifier = notifier
        self.clock = clock
        self._next_status = 0.0
        self._next_ping = 0.0
        self._last_status = ""
        self._withheld: str | None = None

    def beat(self, status: Callable[[], str], vitals: Callable[[], str | None]) -> None:
        """Send what is due: `status()` if it changed, a watchdog ping unless `vitals()` names a fault."""
        if not self.notifier.enabled:
            return
        now = self.clock()
        if now >= self._next_status:
            self._next_status = now + STATUS_SECONDS
            line = status()
            if line != self._last_status:
                self._last_status = line
                self.notifier.send(status=line)
        interval = self.notifier.watchdog_s
        if interval is None or now < self._next_ping:
            return
        self._next_ping = now + interval / 2
        reason = vitals()
        if reason is None:
            self.notifier.send(watchdog=1)
            self._withheld = None
        elif reason != self._withheld:
            self._withheld = reason
            log.error("watchdog.withheld", error=reason)
