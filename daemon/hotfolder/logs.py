"""structlog configuration: JSON lines when stdout is not a terminal (systemd), console otherwise."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from types import ModuleType
from typing import Any, Final, TextIO

from hotfolder import names

# What structlog imports if it can, for no use here (see _structlog).
_HIDDEN: Final = ("rich", "colorama") if sys.platform != "win32" else ("rich",)
_imported: ModuleType | None = None  # structlog, once its import has finished
_importing: Final = threading.Lock()  # one import, whichever thread logs (or preloads) first
_wanted: tuple[str, str, TextIO | None] | None = None  # configure()'s, until structlog is there
_applying: Final = threading.Lock()


def preload() -> None:
    """Import structlog on another thread now, for a process about to wait in C code (libvips) before
    it logs: `process` of one input, whose job left the other core idle while structlog's 185 M
    instructions (~40 ms, asyncio most of them) waited until its first event."""
    if _imported is None and not _importing.locked():
        threading.Thread(target=_structlog, name="hf-logs-import", daemon=True).start()


def _structlog() -> ModuleType:
    """structlog, imported on first use: a worker that never logs (its notes travel in its outcome)
    never loads it, ~90 ms of every fork server's start. Off a terminal it is imported without rich,
    which structlog loads for tracebacks only a terminal shows (65 ms more); rich is importable again
    afterwards (the terminal's progress bar uses it). Never with colorama, which structlog loads only
    to colour a Windows console (4-5 ms where it is installed). Safe from any thread: the first caller
    imports, the others wait for it (a module being imported is in sys.modules half made)."""
    global _imported  # noqa: PLW0603 - one import per process
    if _imported is not None:
        return _imported
    with _importing:
        if _imported is None:
            hidden = [m for m in _HIDDEN if m not in sys.modules]
            if "rich" in hidden and (sys.stdout.isatty() or sys.stderr.isatty()):
                hidden.remove("rich")
            for name in hidden:
                sys.modules[name] = None  # type: ignore[assignment]  # the documented way to fail an import
            try:
                import structlog  # noqa: PLC0415

                _imported = structlog
            finally:
                for name in hidden:
                    del sys.modules[name]
        return _imported


def configure(*, fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog (every event carries ISO time and level): at once if it is loaded, else when
    the first event is logged, so a command that logs nothing yet has not paid for importing it."""
    global _wanted  # noqa: PLW0603 - the process's logging is process-wide by nature
    with _applying:
        _wanted = (fmt, level, stream)
    if _imported is not None or ("structlog" in sys.modules and not _importing.locked()):
        _ready()  # loaded (here, or by whoever imported it first: a test's capture_logs)


def _ready() -> ModuleType:
    """structlog, with the configuration last asked for applied."""
    global _wanted  # noqa: PLW0603
    structlog = _structlog()
    with _applying:
        if _wanted is not None:
            _apply(structlog, *_wanted)
            _wanted = None
    return structlog


def _apply(structlog: ModuleType, fmt: str, level: str, stream: TextIO | None) -> None:
    out = stream or sys.stdout
    as_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            readable_names,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        # One write per event, so lines from concurrent writers never interleave.
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def readable_names(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """A name that is not UTF-8 is logged readably (`caf\\xe9.jpg`) with its exact bytes beside it as
    `<key>_bytes` (base64): such a str cannot be written to a UTF-8 stream and used to stop the daemon."""
    return names.portable(event)


class _Logger:
    """The project logger: structlog's, fetched at the first call (a lazy proxy that follows every
    reconfigure, as structlog's own does)."""

    _real: Any = None

    def __getattr__(self, name: str) -> Any:
        if _Logger._real is None or _wanted is not None:
            _Logger._real = _ready().get_logger("hotfolder")
        return getattr(_Logger._real, name)


_LOGGER: Final = _Logger()


def get() -> Any:
    """The project logger."""
    return _LOGGER
