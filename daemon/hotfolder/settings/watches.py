"""The watched folders: each one's path, name and mode, checked against the output, quarantine and
state folders and against the watches rules name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hotfolder.errors import Problem
from hotfolder.settings.rules import Rule

# 10 s: polling 10,000 files costs 0.98% of a core here (7.8% at watchdog's 1 s default).
DEFAULT_POLL_INTERVAL: Final = 10.0
_WATCH_KEYS: Final = frozenset({"path", "recursive", "name", "mode", "poll_interval"})


WATCH_MODES: Final = ("auto", "native", "poll")


@dataclass(frozen=True)
class Watch:
    path: Path
    name: str
    recursive: bool = True
    mode: str = "auto"  # auto | native | poll; auto polls network and FUSE filesystems
    poll_interval: float = DEFAULT_POLL_INTERVAL


def check_folders(watches: tuple[Watch, ...], folders: Mapping[str, Path], problem: Any) -> None:
    """Watched folders must be folders, and never hold (or lie in) the output, quarantine or state."""
    for i, watch in enumerate(watches):
        if watch.path.exists() and not watch.path.is_dir():
            problem(f"{watch.path} is not a folder", f"watch[{i}].path")
        for key, inside in folders.items():
            if inside == watch.path or inside.is_relative_to(watch.path):
                problem(f"{inside} lies inside the watched folder {watch.path}: outputs would loop", key)
            elif watch.path.is_relative_to(inside):
                problem(f"the watched folder {watch.path} lies inside {inside}", key)


def unknown_watches(rules: tuple[Rule, ...], watches: tuple[Watch, ...]) -> list[Problem]:
    """A rule's `watch` must name a watch (a config without watches is for `process` only)."""
    problems = []
    for rule in rules if watches else ():
        wanted = rule.match.watch
        if wanted is not None and not any(wanted in (w.name, str(w.path)) for w in watches):
            known = ", ".join(repr(w.name) for w in watches)
            problems.append(
                Problem(
                    rule.file,
                    f"no watch is named {wanted!r} (watches: {known})",
                    rule.name,
                    "match.watch",
                    rule.lines.get("match.watch"),
                )
            )
    return problems


def parse_watches(raw: Any, base: Path, problem: Any) -> tuple[Watch, ...]:
    if not isinstance(raw, list):
        problem("must be a list of [[watch]] tables", "watch")
        return ()
    watches = []
    names: set[str] = set()
    for i, entry in enumerate(raw):
        key = f"watch[{i}]"
        if not isinstance(entry, dict):
            problem("must be a [[watch]] table", key)
            continue
        for unknown in sorted(entry.keys() - _WATCH_KEYS):
            problem(f"unknown key; watch keys are {', '.join(sorted(_WATCH_KEYS))}", f"{key}.{unknown}")
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            problem("needs a folder 'path'", f"{key}.path")
            continue
        recursive = entry.get("recursive", True)
        if not isinstance(recursive, bool):
            problem(f"must be true or false, not {recursive!r}", f"{key}.recursive")
            recursive = True
        resolved = (base / Path(path).expanduser()).resolve()
        name = entry.get("name", resolved.name)
        if not isinstance(name, str) or not name:
            problem(f"must be a non-empty text, not {name!r}", f"{key}.name")
            name = resolved.name
        if name in names:
            problem(f"two watches are named {name!r}", f"{key}.name")
        names.add(name)
        mode = entry.get("mode", "auto")
        if mode not in WATCH_MODES:
            problem(f"must be one of {', '.join(WATCH_MODES)}, not {mode!r}", f"{key}.mode")
            mode = "auto"
        interval = entry.get("poll_interval", DEFAULT_POLL_INTERVAL)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            problem(f"must be a number of seconds > 0, not {interval!r}", f"{key}.poll_interval")
            interval = DEFAULT_POLL_INTERVAL
        watches.append(
            Watch(path=resolved, name=name, recursive=recursive, mode=mode, poll_interval=float(interval))
        )
    return tuple(watches)
