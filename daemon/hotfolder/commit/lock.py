"""The state folder's lock: one daemon (or `process`) per state folder, refused on network filesystems."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from hotfolder.core.fsinfo import filesystem_type, is_network_fs
from hotfolder.core.identity import no_longer
from hotfolder.errors import ConfigError, LockHeldError, Problem


class Lock:
    """An exclusive flock on state_dir/lock; the descriptor is close-on-exec, so no child holds it."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        kind = filesystem_type(state_dir)
        if is_network_fs(kind):
            why = f"state_dir {state_dir} is on a {kind} filesystem, where SQLite locking is unreliable"
            raise ConfigError([Problem(None, why + "; put it on a local disk", key="state_dir")])
        self.path = state_dir / "lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(self._fd)
            raise LockHeldError(
                f"state folder {state_dir} is in use by hotfolder (pid {holder}); one daemon per state_dir"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def lost(self) -> str | None:
        """How the lock file was lost (deleted with its folder, or replaced), or None while it is ours: a
        second daemon could otherwise take a new lock at the same path and process every file again."""
        held = os.fstat(self._fd)
        return no_longer(self.path, (held.st_dev, held.st_ino), "lock file")

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
