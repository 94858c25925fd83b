"""Notifications: apprise's json:// to an endpoint the test runs on 127.0.0.1, sent by `serve` for a
burst of quarantines (one message saying how many); the rate limit and the daemon's own troubles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, DaemonProcess, ServeProcess, corpus, run_cli, write_config
from hotfolder.commit import live
from hotfolder.serve import alerts
from hotfolder.serve.app import open_ledger


class Endpoint:
    """A JSON webhook on 127.0.0.1: every POSTed body, parsed."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        got = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n: int, seconds: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while len(self.received) < n:
            assert time.monotonic() < deadline, f"{len(self.received)} message(s), expected {n}"
            time.sleep(0.05)
        return self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.close()


def _watched(
    tmp_path: Path,
    daemons: list[DaemonProcess],
    servers: list[ServeProcess],
    endpoint: Endpoint,
    extra: str = "",
) -> tuple[DaemonProcess, ServeProcess]:
    """A daemon with `notify` set to the endpoint, and serve beside it, both answering."""
    write_config(
        tmp_path,
        (ROOT / "rules" / "default.toml").read_text(),
        extra=f'settle = 0.3\nnotify = ["{endpoint.url}"]\n' + extra,
    )
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    serve = ServeProcess(tmp_path)
    servers.append(serve)
    serve.ready()
    return daemon, serve


def test_a_burst_of_broken_files_is_one_message_saying_how_many(
    tmp_path: Path, daemons: list[DaemonProcess], servers: list[ServeProcess], endpoint: Endpoint
) -> None:
    daemon, serve = _watched(tmp_path, daemons, servers, endpoint)
    assert "notify: json://" in run_cli("check", cwd=tmp_path).stdout
    burst = 12
    for i in range(burst):
        shutil.copy(corpus("broken.png"), tmp_path / "inbox" / f"scan-{i:02d}.png")
    daemon.wait(lambda: len(daemon.named("job.quarantined")) == burst, what="the burst quarantined")
    (message,) = endpoint.wait(1)
    assert message["title"] == f"hotfolder: {burst} file(s) quarantined"
    assert "scan-0" in message["message"] and "corrupt PNG" in message["message"]
    assert f"and {burst - alerts.LISTED} more" in message["message"]
    deadline = time.monotonic() + 10
    while not (sent := [e for e in serve.events() if e["event"] == "notify.sent"]):
        assert time.monotonic() < deadline, "serve did not log the message it sent"
        time.sleep(0.05)
    assert len(sent) == 1 and sent[0]["kind"] == "quarantine"


def test_at_most_one_message_per_minute_per_kind() -> None:
    g = alerts.Gatherer()
    g.add(alerts.Kind.QUARANTINE, "a.png: broken", now=0.0)
    assert g.due(1.0) == []  # still gathering
    (first,) = g.due(alerts.GATHER_QUIET)
    assert first.title == "1 file(s) quarantined"
    for i in range(200):
        g.add(alerts.Kind.QUARANTINE, f"b{i}.png: broken", now=10.0 + i * 0.1)
    g.add(alerts.Kind.WATCH_LOST, "watch 'cards' lost", now=10.0)
    due = g.due(40.0)
    assert [m.kind for m in due] == [alerts.Kind.WATCH_LOST]  # another kind has its own minute
    assert g.due(alerts.MIN_INTERVAL - 0.1) == []
    (second,) = g.due(alerts.GATHER_QUIET + alerts.MIN_INTERVAL)
    assert second.title == "200 file(s) quarantined" and "and 195 more" in second.body


def test_a_lost_watch_and_a_failed_or_silent_daemon_are_told(tmp_path: Path) -> None:
    """The watcher over a real live.json (apprise's sending itself is the test above, in serve)."""
    state = tmp_path / "state"
    state.mkdir()
    sent: list[alerts.Message] = []

    def record(m: alerts.Message) -> bool:
        sent.append(m)
        return True

    watcher = alerts.Watcher(state, lambda: open_ledger(state), record)
    now = time.time()
    lost = live.WatchHealth("cards", "/media/card", up=False, lost_since=now - 30)
    live.write(state, live.Live(pid=7, started=now - 100, heartbeat=now, state="running", watches=(lost,)))
    watcher.poll(0.0)
    watcher.poll(alerts.GATHER_QUIET + 1)
    assert sent == []  # lost for 30 s: a remount, not news
    lost = live.WatchHealth("cards", "/media/card", up=False, lost_since=now - 61)
    failed = "LedgerCorruptError: ledger.sqlite3 is damaged"
    live.write(
        state,
        live.Live(pid=7, started=now - 100, heartbeat=now, state="failed", watches=(lost,), error=failed),
    )
    watcher.poll(100.0)
    watcher.poll(100.0 + alerts.GATHER_QUIET)
    assert sorted(m.kind for m in sent) == [alerts.Kind.DAEMON, alerts.Kind.WATCH_LOST]
    assert any(failed in m.body for m in sent)
    # A daemon killed without a word: its heartbeat goes stale.
    live.write(state, live.Live(pid=8, started=now, heartbeat=now - live.STALE_SECONDS - 5, state="running"))
    watcher.poll(300.0)
    watcher.poll(300.0 + alerts.GATHER_QUIET)
    assert "said nothing" in sent[-1].body and sent[-1].kind == alerts.Kind.DAEMON


BLOCK_APPRISE = """
import sys
sys.modules["apprise"] = None  # as if not installed: find_spec says None, import raises ImportError
from hotfolder.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_check_says_when_notify_is_set_without_apprise(tmp_path: Path) -> None:
    """apprise is an extra: without it `check` says what to install, and names a URL it cannot read."""

    write_config(
        tmp_path, (ROOT / "rules" / "default.toml").read_text(), extra='notify = ["ntfy://ntfy.sh/x"]\n'
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_APPRISE, "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0 and "pip install 'hotfolder[notify]'" in result.stderr, result.stderr
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text(), extra='notify = ["nosuch://x"]\n')
    bad = run_cli("check", cwd=tmp_path)
    assert bad.returncode == 2 and "does not understand 'nosuch://x'" in bad.stderr
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text(), extra='notify = "ntfy://x"\n')
    wrong = run_cli("check", cwd=tmp_path)
    assert wrong.returncode == 2 and "notify" in wrong.stderr


@pytest.mark.slow
def test_a_lost_watch_and_a_killed_daemon_reach_the_endpoint(
    tmp_path: Path, daemons: list[DaemonProcess], servers: list[ServeProcess], endpoint: Endpoint
) -> None:
    """End to end, on the real clocks: a card folder gone for more than a minute, then the daemon
    killed with SIGKILL (it can say nothing: its heartbeat goes stale)."""
    (tmp_path / "cards").mkdir()
    daemon, _ = _watched(tmp_path, daemons, servers, endpoint, extra='[[watch]]\npath = "cards"\n')
    shutil.rmtree(tmp_path / "cards")  # the card reader unplugged
    daemon.wait_event("watch.lost", watch="cards")
    (lost,) = endpoint.wait(1, seconds=alerts.WATCH_LOST_AFTER + 30)
    assert lost["title"] == "hotfolder: 1 watch(es) lost" and "'cards'" in lost["message"]
    daemon.kill()
    silent = endpoint.wait(2, seconds=live.STALE_SECONDS + 30)[1]
    assert silent["title"] == "hotfolder: the daemon stopped" and "said nothing" in silent["message"]
