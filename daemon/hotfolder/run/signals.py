"""Signals delivered to a thread of the daemon's own, never handled inside whatever the main thread was doing.

A Python signal handler runs in the main thread between two of its bytecodes. The daemon's used to log: caught
while the main thread held the log's write lock (it was logging `daemon.started`), it waited for that lock
forever and SIGTERM never stopped it (1 CI run in 8 of test_companions_across); a storm of SIGHUPs nested
handlers ~1000 deep and killed it with RecursionError. Here the handler does nothing: CPython's own C handler
writes each signal's number to a pipe (`signal.set_wakeup_fd`, what asyncio uses) and a thread reads it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

# One read takes what a storm left in the pipe: each signal is handled once per read, with its count.
_READ_BYTES = 4096


def _noted(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: nothing, the signal is already in the pipe (CPython wrote it there)."""


class SignalThread:
    """While open, `signals` go to `handle(signal, times)` on the thread "hf-signals".
    Opened and closed in the main thread (Python's rule for signal handlers)."""

    def __init__(
        self, signals: Iterable[signal.Signals], handle: Callable[[signal.Signals, int], None]
    ) -> None:
        self._handle = handle
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # set_wakeup_fd's demand: a full pipe drops, never blocks
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous: dict[int, Any] = {int(sig): signal.signal(sig, _noted) for sig in signals}
        self._thread = threading.Thread(target=self._serve, name="hf-signals", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while chunk := os.read(self._read, _READ_BYTES):  # b"" once close() closed the write end
            for number, times in Counter(chunk).items():
                # The pipe hears every signal that has a Python handler (SIGINT's default one too).
                if number in self._previous:
                    self._handle(signal.Signals(number), times)

    def close(self) -> None:
        """Restore the handlers and wake-up fd found at the start; signals already received are handled."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._write)
        # Bounded: a handler stuck on a log nobody reads must not keep the daemon from exiting.
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            os.close(self._read)
