"""The sender: a thread in the daemon that delivers the events outbox to each [[event]] sink.

Rows are written by the ledger in the transaction that records a job; this thread reads them after
the commit, sends them in order (MQTT QoS 1 through paho-mqtt, HTTP through urllib), and deletes each
once the sink accepted it (a PUBACK, a 2xx). A sink that is down or answers an error is retried with
backoff, at most MAX_BACKOFF apart; its rows wait in the ledger (a restart, a kill -9 lose nothing).
The pipeline never waits for it. Logs name the sink, never a header's value or a password.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from hotfolder import logs
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.outbox import Pending
from hotfolder.errors import HotfolderError
from hotfolder.settings.config import Config
from hotfolder.settings.events import MAX_BATCH, Secret, Sink

log = logs.get()
MAX_BACKOFF: Final = 60.0  # seconds between tries of a sink that is down (the bound)
TIMEOUT: Final = 10.0  # one delivery: a connect, a PUBACK, an HTTP answer
IDLE: Final = 5.0  # the longest the thread sleeps with nothing due (a commit wakes it at once)
ROWS: Final = 200  # rows read per sink per round
# After a wake-up, the thread waits this long for more jobs before it sends: a burst of 150 jobs/s
# is then sent 50 at a time, one transaction deleting them, instead of a round, a transaction and a
# round trip per job (which cost the 2,000-file burst 27% of its throughput: docs/performance.md).
LINGER: Final = 0.3
DROPS_EVERY: Final = 5.0  # seconds between looks at the dropped counters
# The names `top -H`, ps and the benchmark see for the two threads events add (Linux keeps 15 bytes).
SENDER_THREAD: Final = "hf-events"
CLIENT_THREAD: Final = "hf-events-mqtt"
_PR_SET_NAME: Final = 15


def _name_this_thread(name: str) -> None:
    """Give the calling thread a name the system shows (Python 3.11's own names stay inside Python)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, name.encode()[:15])


class DeliveryError(HotfolderError):
    """A sink did not take an event: unreachable, refused, or no acknowledgement in time."""


class Channel(Protocol):
    def send_all(self, bodies: list[bytes], *, document: bool) -> tuple[int, DeliveryError | None]: ...
    def close(self) -> None: ...


class Http:
    """An HTTP(S) endpoint: one request per row; a 2xx answer is acceptance."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.url = f"{sink.scheme}://{_host(sink.host)}:{sink.port}{sink.path}"

    def send(self, body: bytes, *, document: bool) -> None:
        """Send one body; raise DeliveryError unless the server answered 2xx."""
        # Loaded here, by a daemon with an HTTP sink only: urllib.request (http.client, ssl, email) is
        # 11.5 ms of every command's start otherwise (python -X importtime).
        import urllib.error  # noqa: PLC0415
        import urllib.request  # noqa: PLC0415

        headers = {k: v.value if isinstance(v, Secret) else v for k, v in self.sink.headers}
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json" if document or _is_json(body) else "text/plain"
        headers.setdefault("User-Agent", "hotfolder")
        request = urllib.request.Request(  # noqa: S310 - the scheme is http(s), checked at load
            self.url,
            data=None if self.sink.method == "GET" else body,
            method=self.sink.method,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310
                answer.read(65536)
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"the server answered {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise DeliveryError(f"cannot reach it: {exc.reason}") from None
        except (TimeoutError, OSError) as exc:
            raise DeliveryError(f"cannot reach it: {exc}") from None

    def send_all(self, bodies: list[bytes], *, document: bool) -> tuple[int, DeliveryError | None]:
        """Send in order until one fails: how many were accepted, and the failure."""
        for n, body in enumerate(bodies):
            try:
                self.send(body, document=document)
            except DeliveryError as exc:
                return n, exc
        return len(bodies), None

    def close(self) -> None:
        """Nothing held between requests."""


class Mqtt:
    """An MQTT topic: one QoS 1 message per row; the broker's PUBACK is acceptance."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._client: Any = None

    def _connected(self) -> Any:
        if self._client is not None and self._client.is_connected():
            return self._client
        self.close()
        import paho.mqtt.client as mqtt  # noqa: PLC0415 - only a daemon with an MQTT sink loads it
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"hotfolder-{self.sink.name}-{os.getpid()}",
            protocol=mqtt.MQTTv311,
        )
        if self.sink.username is not None:
            client.username_pw_set(
                self.sink.username, self.sink.password.value if self.sink.password else None
            )
        if self.sink.scheme == "mqtts":
            client.tls_set()
        done = threading.Event()
        answer: list[Any] = []

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            _name_this_thread(CLIENT_THREAD)  # paho's network thread runs this callback
            answer.append(reason)
            done.set()

        client.on_connect = on_connect
        try:
            client.connect(self.sink.host, self.sink.port, keepalive=60)
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"cannot reach the broker: {exc}") from None
        client.loop_start()
        if not done.wait(TIMEOUT) or answer[0].is_failure:
            client.loop_stop()
            with contextlib.suppress(OSError):
                client.disconnect()
            said = f"refused: {answer[0]}" if answer else "no answer"
            raise DeliveryError(f"the broker did not accept the connection ({said})")
        self._client = client
        return client

    def send_all(self, bodies: list[bytes], *, document: bool) -> tuple[int, DeliveryError | None]:
        """Publish every message at QoS 1 at once (paho keeps up to 20 in flight), then wait for their
        PUBACKs in order: how many the broker took, counted up to the first it did not."""
        del document
        try:
            client = self._connected()
        except DeliveryError as exc:
            return 0, exc
        sent = [client.publish(self.sink.path, body, qos=1) for body in bodies]
        deadline = time.monotonic() + TIMEOUT + len(bodies) * 0.05
        for n, info in enumerate(sent):
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                self.close()
                return n, DeliveryError(f"the broker did not take the message: {exc}")
            if not info.is_published():
                self.close()
                return n, DeliveryError(f"no PUBACK from the broker within {TIMEOUT:g} s")
        return len(sent), None

    def close(self) -> None:
        """Disconnect (the next send connects again)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.disconnect()
            client.loop_stop()


class _Backoff:
    def __init__(self) -> None:
        self.tries = 0
        self.at = 0.0  # when the sink may be tried again

    def failed(self, now: float) -> float:
        self.tries += 1
        delay = min(MAX_BACKOFF, 2.0 ** (self.tries - 1))
        self.at = now + delay
        return delay


class Sender:
    """Delivers the outbox in a thread of its own; `wake()` after a commit, `stop()` at shutdown."""

    def __init__(
        self,
        ledger: Ledger,
        sinks: tuple[Sink, ...],
        *,
        clock: Callable[[], float] = time.time,
        channel: Callable[[Sink], Channel] | None = None,
    ) -> None:
        self.ledger = ledger
        self.sinks = sinks
        self.clock = clock
        self._channels = {s.name: (channel or _channel_for)(s) for s in sinks}
        self._backoff = {s.name: _Backoff() for s in sinks}
        self._dropped = {s.sink: s.dropped for s in ledger.sink_states()}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hotfolder-events", daemon=True)

    def start(self) -> None:
        """Start delivering (what an earlier run left in the outbox goes first)."""
        self.ledger.on_announce = self.wake
        self._thread.start()

    def wake(self) -> None:
        """Something was written to the outbox: look now."""
        self._wake.set()

    def flush(self, timeout: float) -> int:
        """Deliver what can be delivered within `timeout` seconds (a batch goes at once, a sink that is
        down is tried again on its backoff); returns how many rows are left in the outbox (they go with
        the daemon's next start)."""
        self._flushing = True
        self.wake()
        deadline = time.monotonic() + timeout
        while True:
            left = sum(s.pending for s in self.ledger.sink_states() if s.sink in self._channels)
            if not left or time.monotonic() >= deadline:
                return left
            self._stop.wait(0.1)  # the sender works; this only looks again

    def stop(self) -> None:
        """Stop the thread and close the connections; undelivered rows stay in the outbox."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(TIMEOUT + 5)
        with contextlib.suppress(HotfolderError):
            self._say_drops()  # the last ones, said before the command or the daemon ends
        for channel in self._channels.values():
            channel.close()

    _flushing = False

    def _run(self) -> None:
        _name_this_thread(SENDER_THREAD)
        while not self._stop.is_set():
            try:
                wait = self._round()
            except HotfolderError as exc:  # the ledger (a full state disk): the rows wait there
                log.warning("event.outbox_unreadable", error=str(exc))
                wait = MAX_BACKOFF
            if self._wake.wait(wait) and not self._flushing:
                self._stop.wait(LINGER)  # more jobs are likely on their way: send them together
            self._wake.clear()

    def _round(self) -> float:
        """Send what is due for every sink; returns how long until something else is due."""
        wait = IDLE
        for sink in self.sinks:
            if self._stop.is_set():
                return 0
            wait = min(wait, self._deliver(sink))
        if time.monotonic() >= self._drops_at:
            self._drops_at = time.monotonic() + DROPS_EVERY
            self._say_drops()
        return wait

    _drops_at = 0.0

    def _deliver(self, sink: Sink) -> float:
        now = self.clock()
        backoff = self._backoff[sink.name]
        if now < backoff.at:
            return backoff.at - now
        rows = self.ledger.outbox_pending(sink.name, ROWS)
        due = [r for r in rows if self._batch_due(sink, r, now) == 0]
        if len(due) < len(rows):
            later = min(self._batch_due(sink, r, now) for r in rows if r not in due)
        else:
            later = 0.0 if len(rows) == ROWS else IDLE
        if not due or self._stop.is_set():
            return later
        accepted, failure = self._channels[sink.name].send_all(
            [self._body(sink, r) for r in due], document=sink.body is None
        )
        if accepted:
            backoff.tries = 0
            self.ledger.outbox_delivered(due[:accepted])
            log.debug("event.sent", sink=sink.name, rows=accepted, jobs=sum(r.count for r in due[:accepted]))
        if failure is not None:
            delay = backoff.failed(self.clock())
            self.ledger.outbox_failing(sink.name, str(failure))
            log.warning(
                "event.failed",
                sink=sink.name,
                error=f"{failure}; tried again in {delay:g} s",
                pending=len(rows) - accepted,
            )
            return delay
        return later

    def _batch_due(self, sink: Sink, row: Pending, now: float) -> float:
        """0 when a batch row may go (quiet for `batch` seconds, MAX_BATCH since its first job, or the
        command is flushing before it exits); else how long until it may."""
        if not row.batch or sink.batch is None or self._flushing:
            return 0
        return max(0.0, min(row.updated + sink.batch - now, row.created + MAX_BATCH - now))

    @staticmethod
    def _body(sink: Sink, row: Pending) -> bytes:
        return (sink.body if sink.body is not None else row.body).encode("utf-8")

    def _say_drops(self) -> None:
        for state in self.ledger.sink_states():
            before = self._dropped.get(state.sink, 0)
            if state.dropped > before:
                log.error(
                    "event.dropped",
                    sink=state.sink,
                    count=state.dropped - before,
                    error="the outbox for this sink is full (max_pending): the oldest events were dropped",
                )
            self._dropped[state.sink] = state.dropped


def start_sender(ledger: Ledger, config: Config) -> Sender | None:
    """The sender of the config's [[event]] sinks, started (None without any)."""
    if not config.events:
        return None
    ledger.announce_to(config.events)
    sender = Sender(ledger, config.events)
    sender.start()
    return sender


def _channel_for(sink: Sink) -> Channel:
    return Mqtt(sink) if sink.mqtt else Http(sink)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
