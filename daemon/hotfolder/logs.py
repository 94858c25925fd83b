"""structlog configuration: JSON lines when stdout is not a terminal (systemd), console otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

from hotfolder import names


def _import_structlog() -> None:
    """Import structlog; off a terminal without rich, which structlog imports for tracebacks that only a
    terminal shows: 65 ms of the ~0.4 s a one-photo `hotfolder process` takes here. rich is importable
    again afterwards (the progress bar on a terminal uses it)."""
    if "rich" in sys.modules or sys.stdout.isatty() or sys.stderr.isatty():
        import structlog  # noqa: PLC0415

        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # the documented way to make an import fail
    try:
        import structlog  # noqa: F401, PLC0415
    finally:
        del sys.modules["rich"]


_import_structlog()
import structlog  # noqa: E402 - after _import_structlog() has chosen how


def configure(*, fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog once per process; every event carries ISO time and level."""
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


def get() -> Any:
    """The project logger."""
    return structlog.get_logger("hotfolder")
