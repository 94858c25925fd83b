"""`[[event]]` tables: where finished jobs are announced (an MQTT topic, an HTTP endpoint), checked at load.

Secrets (an API key in a header, an MQTT password) are never written in the config: a value
`"@/path"` is read from that file at load, its surrounding whitespace stripped, and a file that other
users may read is refused (as `serve` refuses such a token file). A Secret never prints its value.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

# What a sink may be told of: a job's final state as the ledger records it.
KINDS: Final = ("done", "quarantined", "duplicate", "failed")
SCHEMES: Final = ("mqtt", "mqtts", "http", "https")
METHODS: Final = ("POST", "PUT", "GET")
MAX_BATCH: Final = 60.0  # seconds of quiet a batch waits for at most (also its cap from the first job)
DEFAULT_MAX_PENDING: Final = 100_000  # per-job rows kept for a sink that is down; ~1 KB each in the ledger
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_HEADER: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_KEYS: Final = frozenset(
    {
        "name",
        "on",
        "rules",
        "url",
        "method",
        "headers",
        "batch",
        "body",
        "max_pending",
        "username",
        "password",
    }
)
_DEFAULT_PORTS: Final = {"mqtt": 1883, "mqtts": 8883, "http": 80, "https": 443}


@dataclass(frozen=True)
class Secret:
    """A value read from a file at load; its repr and str name the file, never the value."""

    value: str
    source: Path

    def __repr__(self) -> str:
        return f"<secret from {self.source}>"

    __str__ = __repr__


@dataclass(frozen=True)
class Sink:
    """One `[[event]]`: which jobs it hears of, and where they are delivered."""

    name: str
    url: str  # as written, or which file holds it (a password in it is refused); safe to print
    scheme: str
    host: str
    port: int
    path: str  # the MQTT topic, or the HTTP path with its query
    on: tuple[str, ...] = ("done",)
    rules: tuple[str, ...] = ()  # () = every rule
    method: str = "POST"
    headers: tuple[tuple[str, str | Secret], ...] = ()
    batch: float | None = None  # HTTP: seconds of quiet that gather jobs into one request
    body: str | None = None  # HTTP: a fixed request body (a library's rescan call) instead of the event
    max_pending: int = DEFAULT_MAX_PENDING
    username: str | None = None
    password: Secret | None = None

    @property
    def mqtt(self) -> bool:
        """Whether this sink is an MQTT topic (else an HTTP endpoint)."""
        return self.scheme in ("mqtt", "mqtts")

    def hears(self, kind: str, rule: str | None) -> bool:
        """Whether a job of this kind, by this rule (a chain: "a+b"), is announced here."""
        if kind not in self.on:
            return False
        return not self.rules or (rule is not None and any(r in self.rules for r in rule.split("+")))


Problem = Callable[[str, str, int | None], None]


def parse_events(
    raw: Any, base: Path, text: str, problem: Problem, rule_names: frozenset[str]
) -> tuple[Sink, ...]:
    """Every `[[event]]` table checked; each problem reported with its key and line."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, Mapping) for t in raw):
        problem("must be tables: [[event]] with name and url", "event", _table_line(text, 0))
        return ()
    sinks: list[Sink] = []
    names: set[str] = set()
    for index, table in enumerate(raw):
        said: list[str] = []

        def bad(message: str, key: str, index: int = index, said: list[str] = said) -> None:
            said.append(key)
            problem(message, f"event.{key}", _line(text, index, key))

        sink = _parse_one(table, base, bad, rule_names)
        if said or sink is None:
            continue
        if sink.name in names:
            problem(
                f"a second [[event]] named {sink.name!r}: names must differ",
                "event.name",
                _line(text, index, "name"),
            )
            continue
        names.add(sink.name)
        sinks.append(sink)
    return tuple(sinks)


def _parse_one(
    table: Mapping[str, Any], base: Path, bad: Callable[[str, str], None], rule_names: frozenset[str]
) -> Sink | None:
    """One table as a Sink, or None when `bad` was told of a problem."""
    for key in sorted(table.keys() - _KEYS):
        bad(f"unknown key; [[event]] keys are {', '.join(sorted(_KEYS))}", key)
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        bad(f"needs a name of letters, digits, '-', '_' or '.', not {name!r}", "name")
    url = table.get("url")
    if isinstance(url, str) and url.startswith("@"):
        # A URL that is itself a secret (Home Assistant's webhook id is its only credential).
        secret = _secret(url, base, lambda m: bad(m, "url"))
        parts = _url(secret.value, bad) if secret is not None else None
        url = f"<the url in {secret.source}>" if secret is not None else url
    else:
        parts = _url(url, bad)
    on = table.get("on", ["done"])
    if not isinstance(on, list) or not on or not all(k in KINDS for k in on):
        bad(f"must be a list of {', '.join(KINDS)}, not {on!r}", "on")
    rules = table.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        bad(f"must be a list of rule names, not {rules!r}", "rules")
        rules = []
    for r in rules:
        if r not in rule_names:
            bad(f"no rule is named {r!r}; rules: {', '.join(sorted(rule_names)) or 'none'}", "rules")
    mqtt = parts is not None and parts[0] in ("mqtt", "mqtts")
    http_only = {"method", "headers", "batch", "body"} & table.keys()
    mqtt_only = {"username", "password"} & table.keys()
    for key in sorted(http_only if mqtt else mqtt_only if parts is not None else set()):
        bad(f"is for {'http(s)' if mqtt else 'mqtt(s)'} sinks, not {parts[0] if parts else ''}", key)
    method = table.get("method", "POST")
    if method not in METHODS:
        bad(f"must be one of {', '.join(METHODS)}, not {method!r}", "method")
    headers = _headers(table.get("headers", {}), base, bad)
    batch = table.get("batch")
    if batch is not None and (
        isinstance(batch, bool) or not isinstance(batch, int | float) or not 1 <= batch <= MAX_BATCH
    ):
        bad(f"must be seconds from 1 to {MAX_BATCH:g}, not {batch!r}", "batch")
    body = table.get("body")
    if body is not None and not isinstance(body, str):
        bad(f"must be a text (the request body), not {body!r}", "body")
    pending = table.get("max_pending", DEFAULT_MAX_PENDING)
    if isinstance(pending, bool) or not isinstance(pending, int) or pending < 1:
        bad(f"must be a whole number >= 1, not {pending!r}", "max_pending")
    username = table.get("username")
    if username is not None and not isinstance(username, str):
        bad(f"must be a text, not {username!r}", "username")
    password = None
    if "password" in table:
        password = _secret(table["password"], base, lambda m: bad(m, "password"))
    if parts is None:
        return None
    scheme, host, port, path = parts
    return Sink(
        name=str(name),
        url=str(url),
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        on=tuple(dict.fromkeys(on)),
        rules=tuple(rules),
        method=str(method),
        headers=headers,
        batch=float(batch) if batch is not None else None,
        body=body,
        max_pending=int(pending),
        username=username,
        password=password,
    )


def _url(url: Any, bad: Callable[[str, str], None]) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, topic or path) of a sink's URL."""
    if not isinstance(url, str):
        bad(f"needs a url (mqtt://host:1883/topic or https://host/path), not {url!r}", "url")
        return None
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        bad(f"unknown scheme {parts.scheme!r}: use {', '.join(s + '://' for s in SCHEMES)}", "url")
        return None
    if parts.password is not None:
        bad('holds a password: give it from a file (password = "@/path" or a header "@/path")', "url")
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        bad(f"has no valid port: {url!r}", "url")
        return None
    if not parts.hostname:
        bad(f"names no host: {url!r}", "url")
        return None
    if parts.scheme.startswith("mqtt"):
        topic = unquote(parts.path.lstrip("/"))
        if not topic or any(c in topic for c in "+#\0"):
            bad(
                f"needs a topic without wildcards after the host: mqtt://host:1883/photos/new, not {url!r}",
                "url",
            )
            return None
        return parts.scheme, parts.hostname, port, topic
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def _headers(raw: Any, base: Path, bad: Callable[[str, str], None]) -> tuple[tuple[str, str | Secret], ...]:
    if not isinstance(raw, Mapping):
        bad(
            f'must be a table of header names and values, e.g. {{ "x-api-key" = "@/etc/key" }}, not {raw!r}',
            "headers",
        )
        return ()
    found: list[tuple[str, str | Secret]] = []
    for key, value in raw.items():
        if not _HEADER.fullmatch(str(key)):
            bad(f"{key!r} is not a header name", "headers")
            continue
        if not isinstance(value, str):
            bad(f"header {key!r} must be a text, not {value!r}", "headers")
            continue
        if value.startswith("@"):

            def said(message: str, key: str = str(key)) -> None:
                bad(f"header {key!r}: {message}", "headers")

            secret = _secret(value, base, said)
            if secret is not None:
                found.append((str(key), secret))
        elif "\n" in value or "\r" in value:
            bad(f"header {key!r} holds a line break", "headers")
        else:
            found.append((str(key), value))
    return tuple(found)


def _secret(value: Any, base: Path, bad: Callable[[str], None]) -> Secret | None:
    """A "@/path" value read from its file: whitespace around it stripped, refused if others may read it."""
    if not isinstance(value, str) or not value.startswith("@") or len(value) < 2:
        bad('must be read from a file: "@/path/to/file" (a secret never sits in the config)')
        return None
    path = (base / Path(value[1:]).expanduser()).resolve()
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        bad(f"cannot read {path}: {reason}")
        return None
    if st.st_mode & stat.S_IROTH:
        bad(f"{path} is readable by every user: chmod 600 it (or 640 with the daemon's group)")
        return None
    if not text or "\n" in text or "\r" in text:
        bad(f"{path} must hold one line (the secret), not {'nothing' if not text else 'several lines'}")
        return None
    return Secret(text, path)


# Where systemd finds an installed unit and its drop-ins (the admin's, then the packages').
UNIT_DIRS: Final = (
    Path("/etc/systemd/system"),
    Path("/usr/local/lib/systemd/system"),
    Path("/lib/systemd/system"),
)


def network_warning(sinks: tuple[Sink, ...], unit_dirs: tuple[Path, ...] = UNIT_DIRS) -> str | None:
    """Why the installed hotfolder.service cannot reach these sinks (its PrivateNetwork=yes, no
    drop-in opening it), or None: no sink, no installed unit, or a drop-in that opens the network."""
    if not sinks:
        return None
    units = [d for d in unit_dirs if (d / "hotfolder.service").is_file()]
    if not units:
        return None
    for folder in unit_dirs:
        for conf in sorted((folder / "hotfolder.service.d").glob("*.conf")):
            try:
                text = conf.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if re.search(r"^\s*PrivateNetwork\s*=\s*(no|false|0)\s*$", text, re.MULTILINE):
                return None
    return (
        f"[[event]] sinks are configured but the unit has no network ({units[0]}/hotfolder.service has "
        "PrivateNetwork=yes and no drop-in opens it): install systemd/hotfolder.service.d/events.conf "
        "and list the sinks' addresses in its IPAddressAllow="
    )


def _table_line(text: str, index: int) -> int | None:
    """1-based line of the index-th `[[event]]` header."""
    seen = -1
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip().split("#", 1)[0].strip() == "[[event]]":
            seen += 1
            if seen == index:
                return n
    return None


def _line(text: str, index: int, key: str) -> int | None:
    """1-based line of `key` in the index-th `[[event]]` table (its header's line when not found)."""
    start = _table_line(text, index)
    if start is None:
        return None
    lines = text.splitlines()
    for n in range(start, len(lines)):
        stripped = lines[n].strip()
        if stripped.startswith("["):
            break
        if re.match(rf"{re.escape(key)}\s*=", stripped):
            return n + 1
    return start
