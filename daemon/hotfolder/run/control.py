"""The daemon's side of the control socket: a thread accepts and reads requests, the main loop answers
them (so a retry happens in the same thread and order as every other ledger write)."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from hotfolder import logs
from hotfolder.commit import control
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.requeue import NotInQuarantineError, requeue

log = logs.get()

READ_SECONDS: Final = 2.0  # a client that sends nothing this long is dropped


class ControlServer:
    """Accepts connections on state_dir/control.sock; `answer` handles what arrived, from the main loop."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(control.address(state_dir))
        self._sock = control.bind(state_dir)
        self._requests: queue.Queue[tuple[socket.socket, bytes]] = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._accept, name="control", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed: the daemon is stopping
            conn.settimeout(READ_SECONDS)
            try:
                data = control.receive(conn)
                self._requests.put_nowait((conn, data))
            except (OSError, queue.Full):
                conn.close()

    def answer(self, handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Answer every request that arrived (never blocks)."""
        while True:
            try:
                conn, data = self._requests.get_nowait()
            except queue.Empty:
                return
            with conn:
                try:
                    reply = handle(control.decode(data))
                except ValueError:
                    reply = {"ok": False, "error": "not a JSON object"}
                with contextlib.suppress(OSError):
                    conn.sendall(control.encode(reply))

    def close(self) -> None:
        """Stop accepting and remove the socket."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self.path.unlink(missing_ok=True)


def retry_by_id(ledger: Ledger, request: Mapping[str, object]) -> dict[str, object]:
    """{"retry": id}: what `hotfolder retry` does, for the quarantined input with this ledger id."""
    wanted = request.get("retry")
    if isinstance(wanted, bool) or not isinstance(wanted, int):
        return {"ok": False, "error": 'a request is {"retry": <ledger id>}'}
    entry = ledger.quarantined_entry(wanted)
    if entry is None:
        return {"ok": False, "error": f"ledger id {wanted} is not a quarantined input"}
    try:
        back = requeue(ledger, entry)
    except (NotInQuarantineError, OSError) as exc:
        log.error("retry.failed", src=str(entry.parked), error=str(exc))  # noqa: TRY400 - expected: no traceback
        return {"ok": False, "error": str(exc)}
    log.info("retry.requested", src=str(entry.parked), dst=str(back), rule=entry.rule, via="control")
    return {"ok": True, "src": str(entry.path), "dst": str(back)}
