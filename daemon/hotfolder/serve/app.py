"""The status page's web application (Starlette): the page, /metrics, thumbnails and files by ledger id,
Retry handed to the daemon, and the token login when one is configured."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hotfolder import names
from hotfolder.commit import control, live
from hotfolder.commit.ledger import LEDGER_NAME, Ledger
from hotfolder.core.status import Status
from hotfolder.errors import LedgerCorruptError
from hotfolder.serve import metrics, plot
from hotfolder.serve.files import TYPES, chunks, open_below
from hotfolder.serve.listen import Listen, Secrets
from hotfolder.serve.thumbs import Thumbnails, source_of
from hotfolder.settings.config import Config

RECENT: Final = 100
# Quarantined inputs on one page: 50,000 of them made a 29 MB page rebuilt every 10 s.
PER_PAGE: Final = 100
COOKIE: Final = "hotfolder_session"
# No script at all, nothing from another origin: the page is HTML, inline CSS and its own images.
HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on the Retry POST.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_OPEN: Final = ("/login",)  # reachable without the token (the form that takes it)
_NEEDS_TOKEN: Final = "a token is needed: Authorization: Bearer TOKEN, or log in at /login\n"  # noqa: S105 - a message, not a secret
Lifespan = Callable[[], contextlib.AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Site:
    """What the handlers share: the config, the secrets, the thumbnail cache."""

    config: Config
    secrets: Secrets
    thumbs: Thumbnails

    def ledger(self) -> Ledger | None:
        """The ledger, read-only, or None when there is none yet."""
        return open_ledger(self.config.state_dir)


def open_ledger(state_dir: Path) -> Ledger | None:
    """The ledger, read-only, or None when there is none yet (opened per request: a rebuilt or replaced
    ledger is simply read)."""
    if not (state_dir / LEDGER_NAME).exists():
        return None
    return Ledger(state_dir, readonly=True)


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("hotfolder.serve", "."), autoescape=select_autoescape(["html"]), finalize=_shown
    )
    env.filters["since"] = _ago
    return env


def _shown(value: Any) -> Any:
    """What a page shows of a value: a name that is not UTF-8 readably (it cannot be sent as UTF-8)."""
    return (
        names.readable(value) if isinstance(value, str | Path) and not names.is_clean(str(value)) else value
    )


def _ago(iso: str) -> str:
    try:
        seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    except ValueError:
        return iso
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


class Guard:
    """ASGI middleware: security headers on every answer; with a token, every path but the login needs
    it (bearer header or the session cookie)."""

    def __init__(self, app: ASGIApp, secrets: Secrets) -> None:
        self.app = app
        self.secrets = secrets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.decode().lower() for k, _ in headers}
                headers += [
                    (k.lower().encode(), v.encode()) for k, v in HEADERS.items() if k.lower() not in present
                ]
                message = {**message, "headers": headers}
            await send(message)

        request = Request(scope)
        if self.secrets.token is not None and scope["path"] not in _OPEN and not self._allowed(request):
            wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
            refusal: Response = (
                RedirectResponse("/login", status_code=303)
                if wants_page
                else PlainTextResponse(_NEEDS_TOKEN, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            )
            await refusal(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)

    def _allowed(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and self.secrets.token_ok(auth[7:].strip()):
            return True
        return self.secrets.session_ok(request.cookies.get(COOKIE, ""))


def build(config: Config, listen: Listen, secrets: Secrets, lifespan: Lifespan | None = None) -> Starlette:
    """The application for this config; `lifespan` runs beside it (the notifications)."""
    site = Site(config, secrets, Thumbnails(config.output_root))
    env = _env()
    page = env.get_template("page.html")
    login_page = env.get_template("login.html")
    scrape = metrics.registry(config.state_dir, site.ledger)

    def html(template: Any, status: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(template.render(**values), status_code=status)

    def index(request: Request) -> Response:
        notice = request.query_params.get("retried")
        asked = request.query_params.get("page", "1")
        values = _page_values(site, page=int(asked) if asked.isdigit() and len(asked) <= 18 else 1)
        if notice is not None and notice.isdigit():  # a number only: no text of a link's choosing
            values["notice"] = (
                f"Retry of ledger id {notice} handed to the daemon: it will process the file again."
            )
        return html(page, **values)

    def metrics_text(_request: Request) -> Response:
        return Response(generate_latest(scrape), media_type=CONTENT_TYPE_LATEST)

    def thumb(request: Request) -> Response:
        entry = _done_entry(site, request.path_params["id"])
        data = site.thumbs.get(entry.outputs) if entry is not None else None
        if data is None:
            return PlainTextResponse("no thumbnail for this ledger id\n", status_code=404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    def output(request: Request) -> Response:
        entry = _done_entry(site, request.path_params["id"])
        n = request.path_params["n"]
        if entry is None or not 0 <= n < len(entry.outputs):
            return PlainTextResponse("no such output\n", status_code=404)
        opened = open_below(Path(entry.outputs[n]), config.output_root)
        if opened is None:
            return PlainTextResponse("that output is no longer there\n", status_code=404)
        return _download(opened, TYPES.get(opened.path.suffix.lower(), "application/octet-stream"))

    def parked(request: Request) -> Response:
        entry = _quarantined(site, request.path_params["id"])
        opened = open_below(entry.parked, config.quarantine) if entry is not None else None
        if opened is None:
            return PlainTextResponse("not in quarantine\n", status_code=404)
        return _download(opened, "application/octet-stream")  # never shown inline: it may be hostile

    async def retry(request: Request) -> Response:
        form = await request.form()
        given, raw_id = str(form.get("csrf", "")), str(form.get("id", ""))
        if not secrets.csrf_ok(given) or not _same_origin(request):
            return PlainTextResponse("refused: the form's CSRF token is missing or wrong\n", status_code=403)
        if not raw_id.isdigit():
            return PlainTextResponse("refused: id must be a ledger id\n", status_code=400)
        if _quarantined(site, int(raw_id)) is None:
            return PlainTextResponse(f"ledger id {raw_id} is not a quarantined input\n", status_code=404)
        try:
            answer = control.ask(config.state_dir, {"retry": int(raw_id)})
        except OSError as exc:
            return html(
                page,
                status=503,
                **_page_values(site),
                notice=f"The daemon is not answering ({exc.strerror or exc}): is `hotfolder run` "
                "running? `hotfolder retry` does the same from a shell.",
            )
        if not answer.get("ok"):
            return html(page, status=409, **_page_values(site), notice=f"Not retried: {answer.get('error')}")
        return RedirectResponse(f"/?retried={quote(raw_id)}", status_code=303)

    def login_form(_request: Request) -> Response:
        return html(login_page)

    async def login(request: Request) -> Response:
        form = await request.form()
        if not secrets.token_ok(str(form.get("token", ""))) or not _same_origin(request):
            return html(login_page, status=401, error="That is not the token.")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            secrets.session or "",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=30 * 86400,
        )
        return response

    routes = [
        Route("/", index),
        Route("/metrics", metrics_text),
        Route("/thumb/{id:int}", thumb),
        Route("/output/{id:int}/{n:int}", output),
        Route("/quarantined/{id:int}", parked),
        Route("/retry", retry, methods=["POST"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
    ]
    middleware = [Middleware(Guard, secrets=secrets)]
    if listen.unix is None and listen.local:
        # Loopback without a token: a page elsewhere must not reach it by DNS rebinding.
        hosts = ["127.0.0.1", "localhost", "::1", "[::1]", listen.host]
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=hosts))
    return Starlette(routes=routes, middleware=middleware, lifespan=_lifespan(lifespan))


def _lifespan(
    inner: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def span(_app: Starlette) -> AsyncIterator[None]:
        if inner is None:
            yield
            return
        async with inner():
            yield

    return span


def _same_origin(request: Request) -> bool:
    """A browser's Origin, when it sends one, names this very host (a second check beside the token)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.split("://", 1)[-1] == request.headers.get("host", "")


def _download(opened: Any, media_type: str) -> Response:
    name = quote(names.readable(opened.path.name))  # a header is UTF-8 here: a Latin-1 name shown as \xNN
    headers = {
        "Content-Length": str(opened.size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
    }
    return StreamingResponse(chunks(opened), media_type=media_type, headers=headers)


def _read(site: Site, read: Callable[[Ledger], Any]) -> Any:
    """`read` over the ledger, or None when there is none yet or it cannot be read now (the page says
    why; a thumbnail or a download is simply not there)."""
    try:
        ledger = site.ledger()
        if ledger is None:
            return None
        try:
            return read(ledger)
        finally:
            ledger.close()
    except (sqlite3.Error, LedgerCorruptError):
        return None


def _done_entry(site: Site, entry_id: int) -> Any:
    entry = _read(site, lambda ledger: ledger.entry(entry_id))
    return entry if entry is not None and entry.status == Status.DONE else None


def _quarantined(site: Site, entry_id: int) -> Any:
    return _read(site, lambda ledger: ledger.quarantined_entry(entry_id))


def _page_values(site: Site, *, page: int = 1) -> dict[str, Any]:
    """Everything the page shows, read now; `page` of the quarantine (PER_PAGE each, newest first)."""
    snapshot = live.read(site.config.state_dir)
    values: dict[str, Any] = {
        "live": snapshot,
        "alive": snapshot is not None and snapshot.alive(),
        "csrf": site.secrets.csrf,
        "now": datetime.now(UTC),
        "error": None,
        "summary": [],
        "recent": [],
        "quarantined": [],
        "watches": {},
        "in_quarantine": 0,
        "sinks": [],
        "page": 1,
        "pages": 1,
        "state_dir": site.config.state_dir,
        "source": site.config.source,
    }
    if snapshot is not None:
        values["heartbeat_ago"] = f"{max(time.time() - snapshot.heartbeat, 0):.0f} s ago"
    try:
        ledger = site.ledger()
        if ledger is None:
            values["error"] = f"no ledger yet in {site.config.state_dir}: the daemon has not run here"
            values["plot"] = Markup(plot.svg(plot.hours([], datetime.now(UTC))))  # noqa: S704 - numbers only
            return values
        try:
            summary = ledger.summary()
            recent = ledger.recent(RECENT)
            in_quarantine = ledger.quarantined_count()
            values["sinks"] = ledger.sink_states()
            values["now"] = time.time()
            pages = max(1, -(-in_quarantine // PER_PAGE))
            page = min(max(page, 1), pages)
            quarantined = ledger.quarantined(newest=True, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
            hourly = ledger.hourly(
                (datetime.now(UTC) - timedelta(hours=plot.HOURS)).isoformat(timespec="seconds")
            )
        finally:
            ledger.close()
    except (sqlite3.Error, LedgerCorruptError) as exc:
        values["error"] = f"the ledger cannot be read: {exc}"
        summary, recent, quarantined, hourly = [], [], [], []
        in_quarantine, pages, page = 0, 1, 1
    watches: dict[str, dict[str, int]] = {}
    for watch, status, n in summary:
        watches.setdefault(watch, {})[status] = n
    values.update(
        summary=summary,
        watches=watches,
        quarantined=quarantined,
        in_quarantine=in_quarantine,
        page=page,
        pages=pages,
        recent=[(e, source_of(e.outputs) is not None) for e in recent],
        statuses=sorted({s for _, s, _ in summary}),
    )
    values["plot"] = Markup(plot.svg(plot.hours(hourly, datetime.now(UTC))))  # noqa: S704 - numbers and our labels
    return values
