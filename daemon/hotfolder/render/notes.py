"""Warnings met while producing outputs, returned to the daemon to log (workers do not log)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Notes:
    """Warnings met while producing outputs, returned to the daemon to log (workers do not log)."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def warn(self, event: str, **fields: Any) -> None:
        self.items.append((event, fields))
