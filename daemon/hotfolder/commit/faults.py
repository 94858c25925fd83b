"""Fault injection for tests: named points in a commit where the real daemon kills or pauses itself.

Honoured only when a test sets the environment variables; a mock could not show what a kill -9
at that instant leaves behind.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Final

# Tests only: "after-intent", "after-renames", "after-disposal" (in a commit) or "recovered" (at start,
# once interrupted commits are finished), optionally ":N" for the N-th time.
# KILL_AT: the daemon kills itself with SIGKILL there (fault injection into the real process, not
# a mock). PAUSE_AT: it creates PAUSE_FILE and waits until the test removes it (a race made exact).
KILL_AT_ENV: Final = "HOTFOLDER_TEST_KILL_AT"


PAUSE_AT_ENV: Final = "HOTFOLDER_TEST_PAUSE_AT"


PAUSE_FILE_ENV: Final = "HOTFOLDER_TEST_PAUSE_FILE"


# Tests only: "verify" makes a staged output fail its verification (a real encode, then the failure a
# writer that changed the picture would cause), for the paths that must clean up after one.
FAIL_AT_ENV: Final = "HOTFOLDER_TEST_FAIL_AT"


_reached: dict[str, int] = {}


def _due(env: str, name: str) -> bool:
    wanted = os.environ.get(env)
    if not wanted:
        return False
    point, _, nth = wanted.partition(":")
    if point != name:
        return False
    key = f"{env}:{name}"
    _reached[key] = _reached.get(key, 0) + 1
    return _reached[key] == int(nth or 1) or (env == KILL_AT_ENV and _reached[key] > int(nth or 1))


def checkpoint(name: str) -> None:
    """A named point in the commit where a test may have the process killed or paused."""
    if _due(KILL_AT_ENV, name):
        os.kill(os.getpid(), signal.SIGKILL)
    if _due(PAUSE_AT_ENV, name):
        flag = Path(os.environ[PAUSE_FILE_ENV])
        flag.write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while flag.exists() and time.monotonic() < deadline:
            time.sleep(0.01)


def failing(name: str) -> bool:
    """Whether a test asked the step `name` to fail here (FAIL_AT_ENV)."""
    return _due(FAIL_AT_ENV, name)
