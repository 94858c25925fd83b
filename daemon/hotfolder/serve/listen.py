"""Where `serve` listens and who may ask it: loopback or a Unix socket by default; any other address only
with a token (a bearer header, or the login form's HttpOnly cookie)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hotfolder.errors import HotfolderError

DEFAULT_LISTEN: Final = "127.0.0.1:8765"
MIN_TOKEN_CHARS: Final = 16  # a shorter secret is guessable over a LAN at a few thousand tries a second


class ListenError(HotfolderError):
    """An address `serve` cannot or must not listen on as given."""

    exit_code = 2


@dataclass(frozen=True)
class Listen:
    """A TCP host and port, or a Unix socket path."""

    host: str = "127.0.0.1"
    port: int = 8765
    unix: Path | None = None

    @property
    def local(self) -> bool:
        """Reachable from this machine only: a Unix socket, or a loopback address."""
        if self.unix is not None:
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    def __str__(self) -> str:
        if self.unix is not None:
            return f"unix:{self.unix}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """`HOST:PORT`, `[IPV6]:PORT` or `unix:PATH`."""
    if text.startswith("unix:"):
        if not text[5:]:
            raise ListenError("--listen unix: needs a socket path, e.g. unix:/run/hotfolder/serve.sock")
        return Listen(unix=Path(text[5:]).absolute())
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ListenError(f"--listen {text!r}: give HOST:PORT (e.g. 127.0.0.1:8765) or unix:PATH")
    return Listen(host=host, port=int(port))


def read_token(path: Path | None, listen: Listen) -> str | None:
    """The token from --token-file; refused when missing on a non-local address, or too short."""
    if path is None:
        if not listen.local:
            raise ListenError(
                f"--listen {listen} is reachable from other machines: give --token-file PATH "
                "(a secret of at least 16 characters), or listen on 127.0.0.1 or unix:PATH"
            )
        return None
    try:
        st = path.stat()
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ListenError(f"--token-file {path}: cannot read it: {exc}") from None
    if len(token) < MIN_TOKEN_CHARS:
        raise ListenError(
            f"--token-file {path}: the token has {len(token)} characters; use at least "
            f"{MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 24 > {path}`)"
        )
    if st.st_mode & stat.S_IROTH:
        raise ListenError(f"--token-file {path} is readable by every user: chmod 600 it")
    return token


class Secrets:
    """The login token (if any) and this process's CSRF key: what a request must prove."""

    def __init__(self, token: str | None, key: bytes) -> None:
        self.token = token
        self._key = key

    def _mac(self, what: str) -> str:
        return hmac.new(self._key, what.encode(), hashlib.sha256).hexdigest()

    @property
    def csrf(self) -> str:
        """The token the Retry form carries (not in any cookie: a cross-site page cannot read it)."""
        return self._mac("csrf")

    @property
    def session(self) -> str | None:
        """The login cookie's value: derived from the token, so the token itself is never stored."""
        return None if self.token is None else self._mac("session:" + self.token)

    def csrf_ok(self, given: str) -> bool:
        """Whether a form's CSRF token is this process's."""
        return hmac.compare_digest(given.encode(), self.csrf.encode())

    def token_ok(self, given: str) -> bool:
        """Whether a bearer token or a login form's token is the configured one."""
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def session_ok(self, given: str) -> bool:
        """Whether a login cookie is one this process set."""
        session = self.session
        return session is not None and hmac.compare_digest(given.encode(), session.encode())
