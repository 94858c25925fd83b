"""The daemon config file → frozen settings; relative paths resolved, unknown keys rejected."""

from __future__ import annotations

import glob
import grp
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from hotfolder.errors import ConfigError, Problem
from hotfolder.settings.rules import Rule, load_rules

DEFAULT_MAX_PIXELS: Final = 250_000_000  # admits real 200 MP phone photos; refuses the 4 Gpx bombs
CONFIG_NAME: Final = "hotfolder.toml"
# 10 s: polling 10,000 files costs 0.98% of a core here (7.8% at watchdog's 1 s default).
DEFAULT_POLL_INTERVAL: Final = 10.0
DEFAULT_RESCAN_INTERVAL: Final = 3600.0  # a safety net for events lost anyway; 0 turns it off
DEFAULT_STOP_TIMEOUT: Final = 30.0  # well inside systemd's default TimeoutStopSec (90 s)
# A job still running after this long is stuck (a codec in a loop): its worker is stopped and the input
# quarantined. Generous: a 100 MP lossless HEIF on a slow NAS takes minutes, not half an hour.
DEFAULT_JOB_TIMEOUT: Final = 1800.0
DEFAULT_SETTLE: Final = 1.0  # a file must hold still this long (arrivals, and broken files before quarantine)
LOG_FORMATS: Final = ("auto", "json", "console")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")

# The embedded default that `make run` uses: every path relative to the current folder.
EMBEDDED: Final[Mapping[str, Any]] = {
    "output_root": "outbox",
    "state_dir": ".hotfolder",
    "quarantine": "quarantine",
    "watch": [{"path": "inbox", "recursive": True}],
}

_KEYS: Final = frozenset(
    {"rules", "output_root", "state_dir", "quarantine", "workers", "watch", "max_image_pixels", "file_mode",
     "group", "ignore", "rescan_interval", "stop_timeout", "job_timeout", "log_level", "log_format", "settle"}
)  # fmt: skip
_WATCH_KEYS: Final = frozenset({"path", "recursive", "name", "mode", "poll_interval"})
WATCH_MODES: Final = ("auto", "native", "poll")


@dataclass(frozen=True)
class Watch:
    path: Path
    name: str
    recursive: bool = True
    mode: str = "auto"  # auto | native | poll; auto polls network and FUSE filesystems
    poll_interval: float = DEFAULT_POLL_INTERVAL


@dataclass(frozen=True)
class Config:
    """Everything `run`, `process`, `check` and `explain` need, validated once."""

    source: Path | None  # None: the embedded default
    rule_files: tuple[Path, ...]
    rules: tuple[Rule, ...]
    output_root: Path
    state_dir: Path
    quarantine: Path
    workers: int
    watches: tuple[Watch, ...]
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    file_mode: int | None = None  # outputs' mode; None: the umask decides
    gid: int | None = None  # outputs' group
    ignore: tuple[str, ...] = ()  # name patterns never processed, beyond the built-in list
    rescan_interval: float = DEFAULT_RESCAN_INTERVAL
    stop_timeout: float = DEFAULT_STOP_TIMEOUT  # SIGTERM lets running jobs finish this long
    job_timeout: float = DEFAULT_JOB_TIMEOUT  # 0: never
    log_level: str = "info"
    log_format: str = "auto"  # auto: JSON lines unless stdout is a terminal
    settle: float = DEFAULT_SETTLE
    warnings: tuple[Problem, ...] = ()  # legal but probably not meant: `check` prints them, `run` logs them


def default_rules_path() -> Path:
    """The shipped default rule file inside the installed package."""
    return Path(str(resources.files("hotfolder").joinpath("default.toml")))


def default_workers() -> int:
    """The CPUs this process may use (affinity and cgroup-pinned sets are respected)."""
    return max(1, len(os.sched_getaffinity(0)))


def find_config(explicit: Path | None, cwd: Path) -> Path | None:
    """--config, else ./hotfolder.toml, else None (the embedded default)."""
    if explicit is not None:
        return explicit
    candidate = cwd / CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_config(explicit: Path | None = None, *, cwd: Path | None = None) -> Config:
    """Find, parse and validate the config and every rule file; raise ConfigError with all problems."""
    cwd = (cwd or Path.cwd()).resolve()
    path = find_config(explicit, cwd)
    if path is None:
        return _build(None, dict(EMBEDDED), cwd)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(path, f"cannot read config: {exc.strerror or exc}")]) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise ConfigError(
            [Problem(path, f"TOML syntax error: {exc}", line=int(line.group(1)) if line else None)]
        ) from None
    return _build(path.resolve(), doc, path.resolve().parent)


def _build(source: Path | None, doc: dict[str, Any], base: Path) -> Config:
    problems: list[Problem] = []
    warnings: list[Problem] = []

    def problem(message: str, key: str) -> None:
        problems.append(Problem(source, message, key=key))

    def warning(message: str, key: str) -> None:
        warnings.append(Problem(source, message, key=key))

    for key in sorted(doc.keys() - _KEYS):
        problem(f"unknown key; config keys are {', '.join(sorted(_KEYS))}", key)

    def folder(key: str, default: str) -> Path:
        value = doc.get(key, default)
        if not isinstance(value, str) or not value:
            problem(f"must be a folder path, not {value!r}", key)
            value = default
        return (base / Path(value).expanduser()).resolve()

    output_root = folder("output_root", "outbox")
    state_dir = folder("state_dir", ".hotfolder")
    quarantine = folder("quarantine", "quarantine")

    workers = doc.get("workers", default_workers())
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        problem(f"must be a whole number >= 1, not {workers!r}", "workers")
        workers = 1
    elif workers > 4 * default_workers():
        warning(f"{workers} workers for {default_workers()} CPUs: each worker holds a decoded image in "
                "memory, and more than 4 per CPU only adds memory and contention", "workers")  # fmt: skip

    max_pixels = doc.get("max_image_pixels", DEFAULT_MAX_PIXELS)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        problem(f"must be a whole number of pixels >= 1, not {max_pixels!r}", "max_image_pixels")
        max_pixels = DEFAULT_MAX_PIXELS

    ignore: tuple[str, ...] = ()
    if "ignore" in doc:
        raw_ignore = doc["ignore"]
        if isinstance(raw_ignore, list) and all(isinstance(p, str) and p for p in raw_ignore):
            ignore = tuple(raw_ignore)
        else:
            problem(f"must be a list of name patterns, not {raw_ignore!r}", "ignore")
    rescan, settle = _intervals(doc, problem, warning)
    stop_timeout = _seconds(doc, "stop_timeout", DEFAULT_STOP_TIMEOUT, problem)
    job_timeout = _seconds(doc, "job_timeout", DEFAULT_JOB_TIMEOUT, problem)
    log_level = _choice(doc, "log_level", "info", LOG_LEVELS, problem)
    log_format = _choice(doc, "log_format", "auto", LOG_FORMATS, problem)
    file_mode = _file_mode(doc.get("file_mode"), problem)
    gid = _group(doc.get("group"), problem)

    watches = _watches(doc.get("watch", []), base, problem)
    rule_sources = _rule_sources(source, doc, base, problem)

    _check_folders(watches, {"output_root": output_root, "quarantine": quarantine, "state_dir": state_dir},
                   problem)  # fmt: skip
    rules: tuple[Rule, ...] = ()
    try:
        rules = load_rules(rule_sources)
    except ConfigError as exc:
        problems.extend(exc.problems)
    problems.extend(_unknown_watches(rules, watches))
    if problems:
        raise ConfigError(problems)
    return Config(
        source=source,
        rule_files=tuple(p for p, _ in rule_sources if p is not None),
        rules=rules,
        output_root=output_root,
        state_dir=state_dir,
        quarantine=quarantine,
        workers=workers,
        watches=watches,
        max_image_pixels=max_pixels,
        file_mode=file_mode,
        gid=gid,
        ignore=ignore,
        rescan_interval=float(rescan),
        stop_timeout=stop_timeout,
        job_timeout=job_timeout,
        log_level=log_level,
        log_format=log_format,
        settle=float(settle),
        warnings=tuple(warnings),
    )


def _check_folders(watches: tuple[Watch, ...], folders: Mapping[str, Path], problem: Any) -> None:
    """Watched folders must be folders, and never hold (or lie in) the output, quarantine or state."""
    for i, watch in enumerate(watches):
        if watch.path.exists() and not watch.path.is_dir():
            problem(f"{watch.path} is not a folder", f"watch[{i}].path")
        for key, inside in folders.items():
            if inside == watch.path or inside.is_relative_to(watch.path):
                problem(f"{inside} lies inside the watched folder {watch.path}: outputs would loop", key)
            elif watch.path.is_relative_to(inside):
                problem(f"the watched folder {watch.path} lies inside {inside}", key)


def _unknown_watches(rules: tuple[Rule, ...], watches: tuple[Watch, ...]) -> list[Problem]:
    """A rule's `watch` must name a watch (a config without watches is for `process` only)."""
    problems = []
    for rule in rules if watches else ():
        wanted = rule.match.watch
        if wanted is not None and not any(wanted in (w.name, str(w.path)) for w in watches):
            known = ", ".join(repr(w.name) for w in watches)
            problems.append(Problem(rule.file, f"no watch is named {wanted!r} (watches: {known})", rule.name,
                                    "match.watch", rule.lines.get("match.watch")))  # fmt: skip
    return problems


def _intervals(doc: Mapping[str, Any], problem: Any, warning: Any) -> tuple[float, float]:
    """rescan_interval and settle: seconds, with a warning for a rescan far more often than useful."""
    rescan = doc.get("rescan_interval", DEFAULT_RESCAN_INTERVAL)
    if isinstance(rescan, bool) or not isinstance(rescan, int | float) or rescan < 0:
        problem(f"must be seconds >= 0 (0: off), not {rescan!r}", "rescan_interval")
        rescan = DEFAULT_RESCAN_INTERVAL
    elif 0 < rescan < 60:
        warning(
            f"a full rescan every {rescan:g} s walks every watched folder that often; the watchers "
            "already see changes, the rescan is only a safety net (default 3600 s)",
            "rescan_interval",
        )
    settle = doc.get("settle", DEFAULT_SETTLE)
    if isinstance(settle, bool) or not isinstance(settle, int | float) or not 0 < settle <= 600:
        problem(f"must be seconds, more than 0 and at most 600, not {settle!r}", "settle")
        settle = DEFAULT_SETTLE
    return float(rescan), float(settle)


def _seconds(doc: Mapping[str, Any], key: str, default: float, problem: Any) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        problem(f"must be seconds >= 0, not {value!r}", key)
        return default
    return float(value)


def _choice(doc: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...], problem: Any) -> str:
    value = doc.get(key, default)
    if value not in allowed:
        problem(f"must be one of {', '.join(allowed)}, not {value!r}", key)
        return default
    return str(value)


def _file_mode(value: Any, problem: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
        return int(value, 8)
    problem(f'must be an octal mode in quotes, like "0664", not {value!r}', "file_mode")
    return None


def _group(value: Any, problem: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value:
        try:
            return grp.getgrnam(value).gr_gid
        except KeyError:
            problem(f"no such group {value!r} on this machine", "group")
            return None
    problem(f"must be a group name or number, not {value!r}", "group")
    return None


def _watches(raw: Any, base: Path, problem: Any) -> tuple[Watch, ...]:
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


def _rule_sources(
    source: Path | None, doc: dict[str, Any], base: Path, problem: Any
) -> list[tuple[Path | None, str]]:
    entries = doc.get("rules")
    if entries is None:
        # The embedded default, or a config that names no rules: the shipped default rules.
        entries = [str(default_rules_path())]
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        problem(f"must be a list of rule file paths or globs, not {entries!r}", "rules")
        return []
    files: list[Path] = []
    for entry in entries:
        pattern = str(base / Path(entry).expanduser())
        if glob.has_magic(entry):
            found = sorted(Path(p) for p in glob.glob(pattern))  # noqa: PTH207 - patterns may be absolute
            if not found:
                problem(f"{entry!r} matches no rule file", "rules")
        else:
            found = [Path(pattern)]  # a plain path: it must exist (checked below, with its own message)
        for f in found:
            if not f.is_file():
                problem(f"rule file {f} does not exist", "rules")
            elif f.resolve() not in files:
                files.append(f.resolve())
    out: list[tuple[Path | None, str]] = []
    for f in files:
        try:
            out.append((f, f.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems_msg = f"cannot read rule file: {exc}"
            problem(problems_msg, "rules")
    return out
