"""`hotfolder serve` beside a real daemon: the page, /metrics, thumbnails, Retry through the daemon, and
what it refuses (paths, other ledger ids, forged forms, remote clients without the token)."""

from __future__ import annotations

import http.client
import io
import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    ROOT,
    DaemonProcess,
    ServeProcess,
    corpus,
    free_port,
    run_cli,
    write_config,
)

GOOD = ("canon_eos_7d.jpg", "dscn0010.jpg", "hopper.bmp")


@dataclass
class Site:
    """A daemon that processed real corpus files (one of them broken), and serve beside it."""

    root: Path
    daemon: DaemonProcess
    serve: ServeProcess

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """A raw GET (the path sent exactly as given: no client-side normalising of `..`)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.serve.port, timeout=10)
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def post(
        self, path: str, form: dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.serve.port, timeout=20)
        body = urllib.parse.urlencode(form)
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        )
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    def rows(self) -> dict[str, tuple[int, str]]:
        """The ledger as the daemon wrote it: source path -> (ledger id, status)."""
        with sqlite3.connect(f"file:{self.root / 'state' / 'ledger.sqlite3'}?mode=ro", uri=True) as db:
            return {p: (int(i), s) for i, p, s in db.execute("SELECT rowid, path, status FROM inputs")}

    def csrf(self) -> str:
        page = self.get("/")[2].decode()
        return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def _start(
    tmp_path: Path,
    daemons: list[DaemonProcess],
    servers: list[ServeProcess],
    extra: str = "",
    serve_args: tuple[str, ...] = (),
) -> Site:
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text(), extra="settle = 0.3\n" + extra)
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    inbox = tmp_path / "inbox"
    for name in GOOD:
        shutil.copy(corpus(name), inbox / name)
    shutil.copy(corpus("broken.png"), inbox / "broken.png")
    for name in GOOD:
        daemon.wait_event("job.done", src=inbox / name)
    daemon.wait_event("job.quarantined", src=inbox / "broken.png")
    serve = ServeProcess(tmp_path, *serve_args)
    servers.append(serve)
    serve.ready()
    return Site(tmp_path, daemon, serve)


@pytest.fixture
def site(tmp_path: Path, daemons: list[DaemonProcess], servers: list[ServeProcess]) -> Iterator[Site]:
    yield _start(tmp_path, daemons, servers)


def test_page_shows_the_jobs_the_quarantine_and_the_plot(site: Site) -> None:
    status, headers, body = site.get("/")
    page = body.decode()
    assert status == 200
    for name in GOOD:
        assert str(site.root / "inbox" / name) in page
    assert "corrupt PNG" in page  # the quarantined input's reason
    assert '<form method="post" action="/retry">' in page
    assert "<svg" in page and 'class="done"' in page  # the 24-hour plot, drawn, not a table
    assert "<script" not in page  # it works without JavaScript
    links = re.findall(r'(?:src|href|action)="([^"]*)"', page)
    assert links and all(link.startswith("/") for link in links)  # nothing from another origin
    assert "default-src 'none'" in headers["content-security-policy"]
    ids = site.rows()
    for name in GOOD:
        entry, state = ids[str(site.root / "inbox" / name)]
        assert state == "done"
        code, thumb_headers, data = site.get(f"/thumb/{entry}")
        assert code == 200 and thumb_headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(data)) as im:
            assert max(im.size) <= 320 and im.format == "JPEG"


def _settled_metrics(site: Site) -> tuple[int, dict[str, str], bytes]:
    """/metrics once live.json says nothing is in flight (it is rewritten up to 0.5 s after a job ends)."""
    deadline = time.monotonic() + 10
    while True:
        status, headers, body = site.get("/metrics")
        if b"\nhotfolder_in_flight 0.0" in body or time.monotonic() > deadline:
            return status, headers, body
        time.sleep(0.1)


def test_metrics_parse_with_prometheus_clients_own_parser(site: Site) -> None:
    status, headers, body = _settled_metrics(site)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families and all(name.startswith("hotfolder_") for name in families)
    jobs = {(s.labels["status"], s.labels["rule"]): s.value for s in families["hotfolder_jobs"].samples}
    assert jobs[("done", "default")] == len(GOOD)
    assert jobs[("quarantined", "default")] == 1
    assert families["hotfolder_quarantined"].samples[0].value == 1
    seconds = {s.name: s for s in families["hotfolder_job_seconds"].samples if "le" not in s.labels}
    assert seconds["hotfolder_job_seconds_count"].value == len(GOOD)
    assert 0 < seconds["hotfolder_job_seconds_sum"].value < 60
    assert families["hotfolder_daemon_up"].samples[0].value == 1
    assert families["hotfolder_in_flight"].samples[0].value == 0
    assert families["hotfolder_queue_depth"].samples[0].value == 0
    (watch,) = families["hotfolder_watch_up"].samples
    assert watch.labels == {"watch": "inbox"} and watch.value == 1
    beat = families["hotfolder_daemon_heartbeat_timestamp_seconds"].samples[0].value
    assert beat > 1.7e9
    # After the daemon stops, the ledger's values stay and the live ones say so.
    site.daemon.stop()
    families = {f.name: f for f in text_string_to_metric_families(site.get("/metrics")[2].decode())}
    assert families["hotfolder_daemon_up"].samples[0].value == 0
    assert families["hotfolder_quarantined"].samples[0].value == 1


def test_retry_is_handed_to_the_daemon(site: Site) -> None:
    broken = site.root / "inbox" / "broken.png"
    entry, _ = site.rows()[str(broken)]
    status, _ = site.post("/retry", {"id": str(entry), "csrf": site.csrf()})
    assert status == 303
    site.daemon.wait_event("retry.requested", dst=broken)
    # The daemon did what `hotfolder retry` does: the file came back and was looked at again.
    site.daemon.wait(lambda: len(site.daemon.named("job.quarantined")) == 2, what="broken.png again")
    assert (site.root / "quarantine" / "broken.png").exists()


def test_paths_and_other_ledger_ids_are_refused(site: Site) -> None:
    rows = site.rows()
    done, _ = rows[str(site.root / "inbox" / GOOD[0])]
    parked, _ = rows[str(site.root / "inbox" / "broken.png")]
    for path in (
        "/../../etc/passwd",
        "/output/../../etc/passwd",
        "/thumb/..%2F..%2Fetc%2Fpasswd",
        f"/output/{done}/../../../../etc/passwd",
        "/output/%2e%2e/%2e%2e/etc/passwd",
        f"/thumb/{parked}",  # a quarantined input is never decoded
        f"/output/{parked}/0",
        f"/quarantined/{done}",  # another ledger id than the kind asked
        f"/output/{done}/9",
        "/thumb/999999",
        "/quarantined/999999",
        "/thumb/-1",
        # ids SQLite cannot hold (past 2^63 - 1): 404 like any absent id, never a 500
        f"/thumb/{2**63}",
        f"/output/{2**63}/0",
        f"/quarantined/{2**63}",
        f"/thumb/{10**40}",
        f"/output/{done}/{2**64}",
        f"/quarantined/{2**63 - 1}",
    ):
        status, _, body = site.get(path)
        assert status == 404, path
        assert b"root:" not in body
    # An output replaced by a link to a file outside output_root: refused, not followed.
    first = json.loads(
        sqlite3.connect(site.root / "state" / "ledger.sqlite3")
        .execute("SELECT outputs FROM inputs WHERE rowid = ?", (done,))
        .fetchone()[0]
    )[0]
    Path(first).unlink()
    Path(first).symlink_to("/etc/passwd")
    status, _, body = site.get(f"/output/{done}/0")
    assert status == 404 and b"root:" not in body
    # The quarantined input itself is a download, never shown inline.
    status, headers, body = site.get(f"/quarantined/{parked}")
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"].startswith("attachment")
    assert body == (corpus("broken.png")).read_bytes()


def test_forged_retries_change_nothing(site: Site) -> None:
    broken = site.root / "inbox" / "broken.png"
    entry, _ = site.rows()[str(broken)]
    csrf = site.csrf()
    for form, headers in (
        ({"id": str(entry)}, {}),  # no token
        ({"id": str(entry), "csrf": "0" * 64}, {}),  # a wrong one
        ({"id": str(entry), "csrf": csrf}, {"Origin": "http://evil.example"}),
    ):
        status, _ = site.post("/retry", form, headers)
        assert status == 403, (form, headers)
    status, _, _ = site.get("/", {"Host": "evil.example"})  # DNS rebinding onto the loopback page
    assert status == 400
    page = site.get("/?retried=" + urllib.parse.quote("1 <b>call 555-0100 to unlock</b>"))[2]
    assert b"555-0100" not in page  # a link cannot put its own words on the page
    assert site.rows()[str(broken)] == (entry, "quarantined")
    assert (site.root / "quarantine" / "broken.png").exists() and not broken.exists()
    assert not site.daemon.named("retry.requested")


def test_another_address_needs_the_token(
    tmp_path: Path, daemons: list[DaemonProcess], servers: list[ServeProcess]
) -> None:
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text())
    refused = run_cli("serve", "--listen", f"0.0.0.0:{free_port()}", cwd=tmp_path, timeout=30)
    assert refused.returncode == 2 and "--token-file" in refused.stderr
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-" * 4 + "\n")
    token_file.chmod(0o644)
    wide = f"0.0.0.0:{free_port()}"
    loose = run_cli("serve", "--listen", wide, "--token-file", str(token_file), cwd=tmp_path, timeout=30)
    assert loose.returncode == 2 and "chmod 600" in loose.stderr
    token_file.chmod(0o600)
    token = token_file.read_text().strip()
    port = free_port()
    serve = ServeProcess(tmp_path, "--token-file", str(token_file), listen=f"0.0.0.0:{port}")
    servers.append(serve)
    serve.ready()
    site = Site(tmp_path, None, serve)  # type: ignore[arg-type]
    for path in ("/", "/metrics", "/thumb/1", "/quarantined/1"):
        status, _, body = site.get(path)
        assert status == 401 and b"hotfolder_" not in body, path
    status, headers, _ = site.get("/", {"Accept": "text/html"})
    assert status == 303 and headers["location"] == "/login"
    assert site.post("/retry", {"id": "1", "csrf": "x"})[0] == 401
    assert site.get("/metrics", {"Authorization": f"Bearer {token}"})[0] == 200
    assert site.get("/metrics", {"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
    assert site.post("/login", {"token": "nope"})[0] == 401
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "POST",
        "/login",
        body=urllib.parse.urlencode({"token": token}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    r = conn.getresponse()
    r.read()
    cookie = r.getheader("set-cookie") or ""
    assert r.status == 303 and "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert token not in cookie  # the cookie is derived from the token, not the token
    status, _, body = site.get("/", {"Cookie": cookie.split(";", 1)[0]})
    assert status == 200 and b"hotfolder" in body


def test_a_unix_socket_is_for_its_owner_and_group(tmp_path: Path, servers: list[ServeProcess]) -> None:
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text())
    sock = tmp_path / "serve.sock"
    serve = ServeProcess(tmp_path, listen=f"unix:{sock}")
    servers.append(serve)

    def answers() -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock))
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return s.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    deadline = time.monotonic() + 30
    while not answers():
        assert time.monotonic() < deadline and serve.proc.poll() is None, (
            "serve on a Unix socket never answered"
        )
        time.sleep(0.05)
    assert sock.stat().st_mode & 0o777 == 0o660


@pytest.mark.parametrize("listen", ["nonsense", "127.0.0.1:99999", "unix:", "host:"])
def test_a_bad_listen_address_is_a_clear_error(tmp_path: Path, listen: str) -> None:
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text())
    result = run_cli("serve", "--listen", listen, cwd=tmp_path, timeout=30)
    assert result.returncode == 2 and "--listen" in result.stderr and "Traceback" not in result.stderr


def test_a_damaged_ledger_is_said_not_a_server_error(tmp_path: Path, servers: list[ServeProcess]) -> None:
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text())
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "ledger.sqlite3").write_bytes(b"not a database, a disk that lost a page " * 100)
    serve = ServeProcess(tmp_path)
    servers.append(serve)
    serve.ready()
    site = Site(tmp_path, None, serve)  # type: ignore[arg-type]
    status, _, body = site.get("/")
    assert status == 200 and b"cannot be read" in body
    status, _, body = site.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert status == 200 and families["hotfolder_ledger_readable"].samples[0].value == 0
    assert families["hotfolder_daemon_up"].samples[0].value == 0
    assert site.get("/thumb/1")[0] == 404 and site.get("/quarantined/1")[0] == 404


def test_the_quarantine_is_paged_and_found_by_id(tmp_path: Path, servers: list[ServeProcess]) -> None:
    """450 quarantined inputs (a ledger the daemon wrote, grown by rows like its own): 100 a page,
    newest first, the heading gives the total, links reach the last page; a Retry or download finds one
    by its id (the status index), and a bad page number is page 1."""
    from hotfolder.commit.ledger import Ledger  # noqa: PLC0415
    from hotfolder.commit.records import Record  # noqa: PLC0415
    from hotfolder.core.identity import FileIdentity  # noqa: PLC0415

    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text())
    (tmp_path / "quarantine").mkdir()
    ledger = Ledger(tmp_path / "state")
    for n in range(450):
        parked = tmp_path / "quarantine" / f"IMG_{n:04d}.jpg"
        parked.write_bytes(b"broken %d" % n)
        identity = FileIdentity.at(parked)
        assert identity is not None
        ledger.record(
            Record(
                path=tmp_path / "inbox" / parked.name,
                identity=identity,
                status="quarantined",
                error=f"InputError: broken {n}",
                quarantined_to=str(parked),
            )
        )
    plan = ledger._db.execute(
        "EXPLAIN QUERY PLAN " + Ledger._QUARANTINED + " AND rowid > 0 ORDER BY rowid DESC LIMIT 100"
    ).fetchall()
    ledger.close()
    assert "SCAN inputs" not in str(plan), plan
    serve = ServeProcess(tmp_path)
    servers.append(serve)
    serve.ready()
    site = Site(tmp_path, None, serve)  # type: ignore[arg-type]
    status, _, body = site.get("/")
    page = body.decode()
    assert status == 200 and "Quarantine (450)" in page
    assert page.count('class="quarantined"') == 100
    assert "IMG_0449.jpg" in page and "IMG_0349.jpg" not in page  # newest first
    assert 'href="/?page=5#quarantine"' in page
    last = site.get("/?page=5")[2].decode()
    assert last.count('class="quarantined"') == 50 and "IMG_0000.jpg" in last
    assert site.get("/?page=999999999999")[2].decode().count('class="quarantined"') == 50  # the last
    assert "IMG_0449.jpg" in site.get("/?page=x")[2].decode()
    status, _, data = site.get("/quarantined/3")
    assert status == 200 and data == b"broken 2"


def _hold_half_sent(port: int, n: int) -> list[socket.socket]:
    """`n` clients that each send a request's first header lines and never finish them (slow loris)."""
    held = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(True)
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        except OSError:
            s.close()
            continue
        held.append(s)
    return held


def _answered_within(base: str, path: str, seconds: float) -> int:
    began = time.monotonic()
    status = urllib.request.urlopen(base + path, timeout=seconds).status
    assert time.monotonic() - began < seconds
    return int(status)


@pytest.mark.slow
def test_slow_loris_clients_do_not_take_the_page_down(tmp_path: Path) -> None:
    """Issue 28, case 16: serve under soft and hard limits of 1024 descriptors, 1,100 clients holding
    half-sent requests: `/` and `/metrics` still answer 200 within 5 s (the oldest half-open connections
    make room), and the half-open ones are closed once their headers are 10 s late."""
    import resource  # noqa: PLC0415

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.skip(f"this test needs 1,100 client sockets and more (hard limit {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text())
    port = free_port()
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "daemon")}
    limited = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))  # noqa: E731 - systemd's default soft
    log = (tmp_path / "serve.log").open("w")
    argv = [sys.executable, "-m", "hotfolder", "serve", "--log-format", "json", "--listen"]
    argv.append(f"127.0.0.1:{port}")
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=limited,  # noqa: PLW1509
    )
    held: list[socket.socket] = []
    try:
        ServeProcess.ready(_Bare(proc, f"http://127.0.0.1:{port}"))  # type: ignore[arg-type]
        held = _hold_half_sent(port, 1100)
        assert len(held) == 1100
        assert _answered_within(f"http://127.0.0.1:{port}", "/", 5) == 200
        assert _answered_within(f"http://127.0.0.1:{port}", "/metrics", 5) == 200
        more = _hold_half_sent(port, 200)  # and again, after the page was served
        held += more
        assert _answered_within(f"http://127.0.0.1:{port}", "/metrics", 5) == 200
        # Each half-open client is closed by serve: made room for, or its headers 10 s late.
        deadline = time.monotonic() + 30
        open_ones = list(held)
        while open_ones and time.monotonic() < deadline:
            still = []
            for s in open_ones:
                s.settimeout(0.01)
                try:
                    if s.recv(1) != b"":
                        still.append(s)
                except TimeoutError:
                    still.append(s)
                except OSError:
                    pass  # reset: closed by serve
            open_ones = still
            time.sleep(0.5)
        assert not open_ones, f"{len(open_ones)} half-sent requests still held after 30 s"
        assert proc.poll() is None
    finally:
        for s in held:
            s.close()
        proc.terminate()
        proc.wait(timeout=30)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@dataclass
class _Bare:
    """What ServeProcess.ready() reads of a serve started by hand."""

    proc: subprocess.Popen[str]
    base: str
