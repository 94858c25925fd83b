"""Reload: config and rules read again on SIGHUP or when a file changed; an invalid set leaves the
old one running, and settings that need a restart say so."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from hotfolder import logs
from hotfolder.errors import ConfigError
from hotfolder.render.capabilities import hdr_problem
from hotfolder.settings.config import Config, load_config

log = logs.get()

RULE_POLL_SECONDS: Final = 1.0  # how often rule files are checked for changes
_RESTART_ONLY: Final = ("state_dir", "workers", "output_root", "quarantine", "cluster")


def _stamps(config: Config) -> dict[Path, int]:
    stamps = {}
    for path in (*config.rule_files, *([config.source] if config.source else [])):
        try:
            stamps[path] = path.stat().st_mtime_ns
        except OSError:
            stamps[path] = -1
    return stamps


class Reloader:
    """Watches the config's files on the daemon's clock and loads them again when asked or changed."""

    def __init__(
        self, config: Config, *, cwd: Path, overrides: dict[str, Any], clock: Callable[[], float]
    ) -> None:
        self.config = config
        self.cwd = cwd
        self.overrides = overrides  # command-line settings that outrank the config file
        self.clock = clock
        self.wanted = False  # SIGHUP
        self._stamps = _stamps(config)
        self._last_look = clock()

    def due(self) -> bool:
        """Whether a reload is asked for (SIGHUP) or a config or rule file changed."""
        now = self.clock()
        if not self.wanted and now - self._last_look < RULE_POLL_SECONDS:
            return False
        self._last_look = now
        stamps = _stamps(self.config)
        if not self.wanted and stamps == self._stamps:
            return False
        self.wanted, self._stamps = False, stamps
        return True

    def load(self) -> Config | None:
        """The config read again, with what only a restart may change kept; None if it is invalid."""
        try:
            fresh = load_config(self.config.source, cwd=self.cwd, hdr_probe=hdr_problem)
        except ConfigError as exc:
            # A configuration mistake, not a crash: the problems are the message, no traceback.
            failed = {"error": str(exc), "problems": len(exc.problems), "keeping": "old rules"}
            log.error("rules.reload_failed", **failed)  # noqa: TRY400
            return None
        for key in _RESTART_ONLY:
            if getattr(fresh, key) != getattr(self.config, key):
                log.warning("config.needs_restart", key=key, error="changed; takes effect after a restart")
        kept = {key: getattr(self.config, key) for key in _RESTART_ONLY}
        self.config = replace(fresh, **kept, **self.overrides)
        return self.config
