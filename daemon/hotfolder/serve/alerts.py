"""Notifications (apprise): a quarantine, a watch lost for more than a minute, the daemon stopping on an
error or going silent. At most one message per minute per kind; a burst is gathered into one message
("200 files quarantined")."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from hotfolder import logs, names
from hotfolder.commit import live
from hotfolder.commit.ledger import Ledger

log = logs.get()

MIN_INTERVAL: Final = 60.0  # seconds between two messages of one kind
GATHER_QUIET: Final = 5.0  # a burst ends when nothing new came this long ...
GATHER_MAX: Final = 60.0  # ... or this long after its first event
WATCH_LOST_AFTER: Final = 60.0  # a watch lost for less is a remount, not news
POLL_SECONDS: Final = 2.0
LISTED: Final = 5  # a message names this many inputs, then says how many more


class Kind(StrEnum):
    """What a message is about (one rate limit each)."""

    QUARANTINE = "quarantine"
    WATCH_LOST = "watch_lost"
    DAEMON = "daemon"
    PROBLEM = "problem"


@dataclass
class _Burst:
    lines: list[str] = field(default_factory=list)
    first: float = 0.0
    last: float = 0.0


@dataclass(frozen=True)
class Message:
    """One notification: its kind, title and body."""

    kind: Kind
    title: str
    body: str


_TITLES: Final = {
    Kind.QUARANTINE: "{n} file(s) quarantined",
    Kind.WATCH_LOST: "{n} watch(es) lost",
    Kind.DAEMON: "the daemon stopped",
    Kind.PROBLEM: "the daemon cannot go on",
}


class Gatherer:
    """Events in, messages out: bursts gathered, one message per kind per MIN_INTERVAL. Pure: the clock is
    given to each call."""

    def __init__(self) -> None:
        self._bursts: dict[Kind, _Burst] = {}
        self._sent: dict[Kind, float] = {}

    def add(self, kind: Kind, line: str, now: float) -> None:
        """One event of `kind`, described by `line`."""
        burst = self._bursts.setdefault(kind, _Burst(first=now))
        burst.lines.append(line)
        burst.last = now

    def due(self, now: float) -> list[Message]:
        """The messages to send now."""
        out = []
        for kind, burst in list(self._bursts.items()):
            gathered = now - burst.last >= GATHER_QUIET or now - burst.first >= GATHER_MAX
            if not gathered or now - self._sent.get(kind, -MIN_INTERVAL) < MIN_INTERVAL:
                continue
            del self._bursts[kind]
            self._sent[kind] = now
            n = len(burst.lines)
            more = f"\n... and {n - LISTED} more" if n > LISTED else ""
            out.append(Message(kind, _TITLES[kind].format(n=n), "\n".join(burst.lines[:LISTED]) + more))
        return out


class Watcher:
    """Reads the ledger and live.json every POLL_SECONDS for new events; sends what the gatherer lets out."""

    def __init__(
        self,
        state_dir: Path,
        open_ledger: Callable[[], Ledger | None],
        send: Callable[[Message], bool],
    ) -> None:
        self.state_dir = state_dir
        self.open_ledger = open_ledger
        self.send = send
        self.gatherer = Gatherer()
        self._last_id = self._newest_quarantined()  # only what is quarantined from now on is news
        self._told: set[tuple[str, float]] = set()  # (watch, lost since) and (daemon pid, started)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)

    def _newest_quarantined(self) -> int:
        ledger = self.open_ledger()
        if ledger is None:
            return 0
        try:
            return max((q.id for q in ledger.quarantined()), default=0)
        finally:
            ledger.close()

    def start(self) -> None:
        """Poll in a thread until `stop`."""
        self._thread.start()

    def stop(self) -> None:
        """End the thread (a message being sent is finished first)."""
        self._stop.set()
        self._thread.join(timeout=30)

    def poll(self, now: float) -> None:
        """Look for new events once and send what is due."""
        ledger = self.open_ledger()
        if ledger is not None:
            try:
                for q in ledger.quarantined(after=self._last_id):
                    self._last_id = max(self._last_id, q.id)
                    self.gatherer.add(Kind.QUARANTINE, names.readable(f"{q.path.name}: {q.error}"), now)
            finally:
                ledger.close()
        snapshot = live.read(self.state_dir)
        if snapshot is not None:
            self._daemon(snapshot, now)
        for message in self.gatherer.due(now):
            if self.send(message):
                log.info("notify.sent", kind=message.kind, title=message.title)
            else:
                log.error(
                    "notify.failed",
                    kind=message.kind,
                    title=message.title,
                    error="no notification service accepted the message",
                )

    def _daemon(self, snapshot: live.Live, now: float) -> None:
        wall = time.time()
        for w in snapshot.watches:
            if w.lost_since is not None and wall - w.lost_since >= WATCH_LOST_AFTER:
                key = (w.name, w.lost_since)
                if key not in self._told:
                    self._told.add(key)
                    where = names.readable(w.path)
                    self.gatherer.add(
                        Kind.WATCH_LOST,
                        f"watch {w.name!r} ({where}) lost for {wall - w.lost_since:.0f} s",
                        now,
                    )
        for problem in snapshot.problems if snapshot.alive(wall) else ():
            said = (f"problem {problem}", snapshot.started)
            if said not in self._told:  # once per problem per daemon run
                self._told.add(said)
                self.gatherer.add(Kind.PROBLEM, problem, now)
        key = (f"pid {snapshot.pid}", snapshot.started)
        if key in self._told:
            return
        if snapshot.state == "failed":
            self._told.add(key)
            self.gatherer.add(Kind.DAEMON, f"stopped on an error: {snapshot.error}", now)
        elif snapshot.state in ("running", "stopping") and not snapshot.alive(wall):
            self._told.add(key)
            self.gatherer.add(
                Kind.DAEMON,
                f"pid {snapshot.pid} has said nothing for "
                f"{wall - snapshot.heartbeat:.0f} s (killed, or stuck)",
                now,
            )

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.poll(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - a bad poll must not end notifications for good
                log.error("notify.poll_failed", error=f"{type(exc).__name__}: {exc}")  # noqa: TRY400


def apprise_sender(urls: tuple[str, ...]) -> Callable[[Message], bool]:
    """A sender to every URL through apprise (imported here: an optional dependency)."""
    import apprise  # noqa: PLC0415

    hub = apprise.Apprise()
    for url in urls:
        hub.add(url)

    def send(message: Message) -> bool:
        return bool(hub.notify(title=f"hotfolder: {message.title}", body=message.body))

    return send
