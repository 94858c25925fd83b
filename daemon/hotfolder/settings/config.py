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

from hotfolder.core.formats import DEFAULT_MAX_PIXELS
from hotfolder.errors import ConfigError, Problem
from hotfolder.settings.cluster import Cluster, key_line, parse_cluster
from hotfolder.settings.companions import apple_edit_renames
from hotfolder.settings.events import Sink, network_warning, parse_events
from hotfolder.settings.levels import LOG_FORMATS, LOG_LEVELS
from hotfolder.settings.outputs import HdrProbe, no_probe
from hotfolder.settings.rules import Rule, load_rules
from hotfolder.settings.watches import WATCH_MODES, Watch, check_folders, parse_watches, unknown_watches

CONFIG_NAME: Final = "hotfolder.toml"
DEFAULT_RESCAN_INTERVAL: Final = 3600.0  # a safety net for events lost anyway; 0 turns it off
DEFAULT_STOP_TIMEOUT: Final = 30.0  # well inside systemd's default TimeoutStopSec (90 s)
# A job still running after this long is stuck (a codec in a loop): its worker is stopped and the input
# quarantined. Generous: a 100 MP lossless HEIF on a slow NAS takes minutes, not half an hour.
DEFAULT_JOB_TIMEOUT: Final = 1800.0
_URL: Final = re.compile(r"[A-Za-z][\w+.-]*://.")  # scheme://something: the shape of an apprise URL
DEFAULT_SETTLE: Final = 1.0  # a file must hold still this long (arrivals, and broken files before quarantine)

# The embedded default that `make run` uses: every path relative to the current folder.
EMBEDDED: Final[Mapping[str, Any]] = {
    "output_root": "outbox",
    "state_dir": ".hotfolder",
    "quarantine": "quarantine",
    "watch": [{"path": "inbox", "recursive": True}],
}

_KEYS: Final = frozenset(
    {
        "rules",
        "output_root",
        "state_dir",
        "quarantine",
        "workers",
        "watch",
        "max_image_pixels",
        "file_mode",
        "group",
        "ignore",
        "rescan_interval",
        "stop_timeout",
        "job_timeout",
        "log_level",
        "log_format",
        "settle",
        "cluster",
        "notify",
        "event",
    }
)


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
    cluster: Cluster | None = None  # None: jobs run on the local process pool
    notify: tuple[str, ...] = ()  # apprise URLs `hotfolder serve` sends alerts to
    events: tuple[Sink, ...] = ()  # [[event]]: where finished jobs are announced (run/events.py)
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


def load_config(
    explicit: Path | None = None, *, cwd: Path | None = None, hdr_probe: HdrProbe = no_probe
) -> Config:
    """Find, parse and validate the config and every rule file; raise ConfigError with all problems.
    `hdr_probe`: render/capabilities.py's, from the commands that start or check the daemon."""
    cwd = (cwd or Path.cwd()).resolve()
    path = find_config(explicit, cwd)
    if path is None:
        return _build(None, dict(EMBEDDED), cwd, hdr_probe, "")
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
    return _build(path.resolve(), doc, path.resolve().parent, hdr_probe, text)


# The few settings people change first, from the environment (a container's `-e`, compose's
# `environment:`): each wins over the config file's key, and a bad value is an error naming the variable.
ENVIRONMENT: Final = {
    "HOTFOLDER_WORKERS": "workers",
    "HOTFOLDER_LOG_FORMAT": "log_format",
    "HOTFOLDER_WATCH_MODE": "mode",  # every [[watch]]'s mode: poll where inotify sees nothing
}


def _from_environment(
    doc: dict[str, Any], environ: Mapping[str, str], problems: list[Problem]
) -> dict[str, Any]:
    """The config document with the HOTFOLDER_* variables that are set written over it."""
    doc = dict(doc)
    where = Path("<environment>")
    allowed = {"log_format": LOG_FORMATS, "mode": WATCH_MODES}
    for name, key in ENVIRONMENT.items():
        value = environ.get(name, "").strip()
        if not value:
            continue
        if key == "workers" and (not value.isdigit() or int(value) < 1):
            problems.append(Problem(where, f"must be a whole number >= 1, not {value!r}", key=name))
        elif key in allowed and value not in allowed[key]:
            problems.append(
                Problem(where, f"must be one of {', '.join(allowed[key])}, not {value!r}", key=name)
            )
        elif key == "mode":
            watches = doc.get("watch", [])
            if isinstance(watches, list):
                doc["watch"] = [{**w, "mode": value} if isinstance(w, Mapping) else w for w in watches]
        else:
            doc[key] = int(value) if key == "workers" else value
    return doc


def _build(source: Path | None, doc: dict[str, Any], base: Path, hdr_probe: HdrProbe, text: str) -> Config:
    problems: list[Problem] = []
    warnings: list[Problem] = []
    doc = _from_environment(doc, os.environ, problems)

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

    scalars = _scalars(doc, problem, warning)
    cluster = parse_cluster(
        doc.get("cluster"), base, text, lambda m, k, n: problems.append(Problem(source, m, key=k, line=n))
    )
    if cluster is not None and "workers" in doc:
        problems.append(
            Problem(
                source,
                "not with [cluster]: the cluster's workers are the capacity "
                "(`hotfolder worker ADDRESS --nworkers N` on each host)",
                key="workers",
                line=key_line(text, "", "workers"),
            )
        )
    watches = parse_watches(doc.get("watch", []), base, problem)
    rule_sources = _rule_sources(source, doc, base, problem)

    check_folders(
        watches, {"output_root": output_root, "quarantine": quarantine, "state_dir": state_dir}, problem
    )
    rules: tuple[Rule, ...] = ()
    try:
        rules = load_rules(rule_sources, hdr_probe)
    except ConfigError as exc:
        problems.extend(exc.problems)
    problems.extend(unknown_watches(rules, watches))
    warnings.extend(apple_edit_renames(rules))
    events = parse_events(
        doc.get("event"),
        base,
        text,
        lambda m, k, n: problems.append(Problem(source, m, key=k, line=n)),
        frozenset(r.name for r in rules),
    )
    unit = network_warning(events)
    if unit is not None:
        warnings.append(Problem(source, unit, key="event"))
    if problems:
        raise ConfigError(problems)
    return Config(
        source=source,
        rule_files=tuple(p for p, _ in rule_sources if p is not None),
        rules=rules,
        output_root=output_root,
        state_dir=state_dir,
        quarantine=quarantine,
        watches=watches,
        cluster=cluster,
        events=events,
        warnings=tuple(warnings),
        **scalars,
    )


def _scalars(doc: Mapping[str, Any], problem: Any, warning: Any) -> dict[str, Any]:
    """The settings that are one value each, checked, as Config's keyword arguments."""
    rescan, settle = _intervals(doc, problem, warning)
    return {
        "workers": _workers(doc, problem, warning),
        "max_image_pixels": _whole(
            doc, "max_image_pixels", DEFAULT_MAX_PIXELS, "a whole number of pixels >= 1", problem
        ),
        "ignore": _ignore(doc, problem),
        "rescan_interval": float(rescan),
        "settle": float(settle),
        "stop_timeout": _seconds(doc, "stop_timeout", DEFAULT_STOP_TIMEOUT, problem),
        "job_timeout": _seconds(doc, "job_timeout", DEFAULT_JOB_TIMEOUT, problem),
        "log_level": _choice(doc, "log_level", "info", LOG_LEVELS, problem),
        "log_format": _choice(doc, "log_format", "auto", LOG_FORMATS, problem),
        "file_mode": _file_mode(doc.get("file_mode"), problem),
        "gid": _group(doc.get("group"), problem),
        "notify": _notify(doc, problem),
    }


def _notify(doc: Mapping[str, Any], problem: Any) -> tuple[str, ...]:
    """Apprise URLs (scheme://...); what each scheme means is apprise's (checked by `check`)."""
    raw = doc.get("notify", [])
    if isinstance(raw, list) and all(isinstance(u, str) and _URL.match(u) for u in raw):
        return tuple(raw)
    problem(f'must be a list of notification URLs such as ["ntfy://host/topic"], not {raw!r}', "notify")
    return ()


def _whole(doc: Mapping[str, Any], key: str, default: int, what: str, problem: Any) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problem(f"must be {what}, not {value!r}", key)
        return default
    return value


def _workers(doc: Mapping[str, Any], problem: Any, warning: Any) -> int:
    workers = _whole(doc, "workers", default_workers(), "a whole number >= 1", problem)
    if workers > 4 * default_workers():
        warning(
            f"{workers} workers for {default_workers()} CPUs: each worker holds a decoded image in "
            "memory, and more than 4 per CPU only adds memory and contention",
            "workers",
        )
    return workers


def _ignore(doc: Mapping[str, Any], problem: Any) -> tuple[str, ...]:
    if "ignore" not in doc:
        return ()
    raw = doc["ignore"]
    if isinstance(raw, list) and all(isinstance(p, str) and p for p in raw):
        return tuple(raw)
    problem(f"must be a list of name patterns, not {raw!r}", "ignore")
    return ()


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
