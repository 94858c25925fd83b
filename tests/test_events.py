"""Events: every finished job announced at least once to a real MQTT broker (Debian's mosquitto, a real
mosquitto_sub) and to a real HTTP receiver that is down at first, stopped and restarted, the daemon
killed with -9 between a job's commit and its batch: every job announced, each output's SHA-256 true,
the rescan batched, the API key in no log, no status output and no ledger dump."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import ROOT, DaemonProcess, ServeProcess, corpus, free_port, run_cli, tool, write_config
from hotfolder.commit.faults import PAUSE_AT_ENV, PAUSE_FILE_ENV
from hotfolder.settings.events import network_warning, parse_events

SCHEMA = json.loads((ROOT / "docs" / "schemas" / "event-1.json").read_text())
API_KEY = "sk-4f1c3a6e-hotfolder-test-key-93b1"
PICTURES = ("dscn0010.jpg", "canon_eos_7d.jpg", "hopper.bmp", "apple_iphone_4.jpg")


class Receiver:
    """An HTTP server on 127.0.0.1 that records what it is sent; it can be down, started, stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.got: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._cond:
                    receiver.got.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                    receiver._cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait(self, check: Any, seconds: float = 90, what: str = "") -> None:
        deadline = time.monotonic() + seconds
        with self._cond:
            while not check(self.got):
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {what}: got {[r['path'] for r in self.got]}"
                self._cond.wait(min(left, 0.5))

    def on(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.got if r["path"] == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.stop()


class Broker:
    """Debian's mosquitto on 127.0.0.1 and a mosquitto_sub on a topic (subscribed before it returns)."""

    def __init__(self, folder: Path) -> None:
        mosquitto = tool("mosquitto", "mosquitto")
        self.sub_bin = tool("mosquitto_sub", "mosquitto-clients")
        self.port = free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.proc = subprocess.Popen([mosquitto, "-c", str(conf)], stderr=subprocess.PIPE, text=True)
        self.subs: list[subprocess.Popen[str]] = []
        self.lines: list[str] = []

    def subscribe(self, topic: str) -> None:
        deadline = time.monotonic() + 30
        while True:  # the broker listens once its port takes a connection
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
                assert time.monotonic() < deadline, "mosquitto did not start listening"
                time.sleep(0.05)
        sub = subprocess.Popen(
            # stdbuf: its debug lines (SUBACK) are otherwise held in a pipe's buffer
            [
                "stdbuf",
                "-oL",
                self.sub_bin,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-t",
                topic,
                "-q",
                "1",
                "-d",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert sub.stdout is not None
        line = sub.stdout.readline()
        while line and "SUBACK" not in line:  # subscribed: nothing published from now on is missed
            line = sub.stdout.readline()
        assert line, "mosquitto_sub ended before it subscribed"
        self.subs.append(sub)
        threading.Thread(target=self._read, args=(sub,), daemon=True).start()

    def _read(self, sub: subprocess.Popen[str]) -> None:
        assert sub.stdout is not None
        for line in sub.stdout:
            if line.startswith("{"):
                self.lines.append(line)

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]

    def close(self) -> None:
        for p in (*self.subs, self.proc):
            p.kill()
            p.wait()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    yield b
    b.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_event(event: dict[str, Any]) -> None:
    """The event is what its schema says, and every hash in it is the file's."""
    jsonschema.validate(event, SCHEMA)
    assert event["outputs"], event
    for out in event["outputs"]:
        assert _sha(Path(out["path"])) == out["sha256"], out
        assert Path(out["path"]).stat().st_size == out["bytes"]


def _key_file(folder: Path) -> Path:
    key = folder / "secrets" / "library-key"
    key.parent.mkdir()
    key.write_text(API_KEY + "\n")
    key.chmod(0o600)
    return key


def _one_picture_and_a_sink(folder: Path, url: str, extra: str = "") -> None:
    """An inbox holding hopper.bmp, a rule making a JPEG of it, and one [[event]] sink "jobs" at `url`."""
    (folder / "inbox").mkdir()
    shutil.copy(corpus("hopper.bmp"), folder / "inbox" / "h.bmp")
    write_config(
        folder,
        '[[rule]]\nname = "web"\n[[rule.output]]\nformat = "jpeg"\npath = "{stem}.jpg"\n',
        extra=f'{extra}[[event]]\nname = "jobs"\nurl = "{url}"\n',
    )


def test_every_job_is_announced_on_mqtt_with_the_outputs_true(
    tmp_path: Path, broker: Broker, daemons: list[DaemonProcess]
) -> None:
    """A running daemon with an MQTT sink: one QoS 1 message per job to a real subscriber, each valid
    against the schema, each output's SHA-256 the file's, ids distinct; a quarantined file is told too."""
    broker.subscribe("photos/#")
    (tmp_path / "inbox").mkdir()
    write_config(
        tmp_path,
        '[[rule]]\nname = "web"\n[[rule.output]]\nformat = "jpeg"\npath = "web/{stem}.jpg"\nmax_edge = 512\n',
        extra=f'[[event]]\nname = "ha"\nurl = "mqtt://127.0.0.1:{broker.port}/photos/new"\n'
        'on = ["done", "quarantined"]\n',
    )
    d = DaemonProcess(tmp_path)
    daemons.append(d)
    d.started()
    for name in PICTURES:
        shutil.copy(corpus(name), tmp_path / "inbox" / name)
    (tmp_path / "inbox" / "broken.jpg").write_bytes(corpus("dscn0010.jpg").read_bytes()[:5000])
    deadline = time.monotonic() + 90
    while len(broker.messages()) < len(PICTURES) + 1:
        assert time.monotonic() < deadline, (broker.messages(), d.events()[-5:])
        time.sleep(0.1)
    got = broker.messages()
    done = [e for e in got if e["kind"] == "done"]
    assert sorted(Path(e["source"]["path"]).name for e in done) == sorted(PICTURES)
    for e in done:
        _check_event(e)
        assert e["source"]["sha256"] == _sha(corpus(Path(e["source"]["path"]).name))
    (bad,) = [e for e in got if e["kind"] == "quarantined"]
    jsonschema.validate(bad, SCHEMA)
    assert bad["reason"] and Path(bad["quarantined_to"]).exists()
    assert len({e["id"] for e in got}) == len(got)
    # The two threads events add are named for `top -H` (and the benchmark's CPU per thread).
    threads = {t.joinpath("comm").read_text().strip() for t in Path(f"/proc/{d.proc.pid}/task").iterdir()}
    assert {"hf-events", "hf-events-mqtt"} <= threads, threads
    d.stop()


def test_a_receiver_down_then_up_and_a_kill_9_lose_nothing_and_the_key_stays_secret(
    tmp_path: Path, receiver: Receiver, daemons: list[DaemonProcess]
) -> None:
    """Per-job and batch sinks on an HTTP receiver that is down for the first burst: every job arrives
    once it is up, the burst as one batched rescan. Then the daemon is killed with -9 after a second
    burst's commits and before its batch is sent: the restarted daemon sends it. The API key reached
    the receiver and is in no log, no `status` output, no ledger dump."""
    (tmp_path / "inbox").mkdir()
    key = _key_file(tmp_path)
    base = f"http://127.0.0.1:{receiver.port}"
    write_config(
        tmp_path,
        '[[rule]]\nname = "web"\n[[rule.output]]\nformat = "jpeg"\npath = "web/{stem}.jpg"\nmax_edge = 512\n',
        extra=(
            f'[[event]]\nname = "jobs"\nurl = "{base}/jobs"\nheaders = {{ "x-api-key" = "@{key}" }}\n'
            f'[[event]]\nname = "library"\nurl = "{base}/rescan"\nheaders = {{ "x-api-key" = "@{key}" }}\n'
            'batch = 3\nbody = ""\n'
        ),
    )
    log = tmp_path / "daemon.jsonl"
    d = DaemonProcess(tmp_path, log=log)
    daemons.append(d)
    d.started()
    first = PICTURES[:2]
    for name in first:
        shutil.copy(corpus(name), tmp_path / "inbox" / name)
    d.wait(lambda: len(d.named("job.done")) == len(first), what="the first burst")
    d.wait_event("event.failed", sink="jobs")  # the receiver is down
    receiver.start()
    receiver.wait(
        lambda got: len([r for r in got if r["path"] == "/jobs"]) >= len(first), what="the per-job events"
    )
    receiver.wait(lambda got: any(r["path"] == "/rescan" for r in got), what="the rescan")
    assert len(receiver.on("/rescan")) == 1  # one rescan for the burst, not one per photo

    # A second burst; the daemon dies between the commits and the batch (3 s of quiet not yet over).
    second = PICTURES[2:]
    for name in second:
        shutil.copy(corpus(name), tmp_path / "inbox" / name)
    d.wait(lambda: len(d.named("job.done")) == len(PICTURES), what="the second burst")
    d.kill()
    assert len(receiver.on("/rescan")) == 1, "the batch went before its quiet period"
    d2 = DaemonProcess(tmp_path, log=log)
    daemons.append(d2)
    receiver.wait(
        lambda got: len([r for r in got if r["path"] == "/rescan"]) == 2, what="the batch after the kill"
    )
    receiver.wait(
        lambda got: len({json.loads(r["body"])["id"] for r in got if r["path"] == "/jobs"}) == len(PICTURES),
        what="every job",
    )

    # The receiver stopped and restarted under the running daemon: the job done meanwhile arrives.
    d2.started()
    receiver.stop()
    failed_before = len(d2.named("event.failed"))
    shutil.copy(corpus("pentax_k10d.jpg"), tmp_path / "inbox" / "pentax_k10d.jpg")
    d2.wait(lambda: len(d2.named("event.failed")) > failed_before, what="a failure while it is stopped")
    receiver.start()
    receiver.wait(
        lambda got: any(
            json.loads(r["body"])["source"]["path"].endswith("pentax_k10d.jpg")
            for r in got
            if r["path"] == "/jobs"
        ),
        what="the job done while the receiver was stopped",
    )
    receiver.wait(lambda got: len([r for r in got if r["path"] == "/rescan"]) == 3, what="its rescan")
    events = [json.loads(r["body"]) for r in receiver.on("/jobs")]
    assert sorted({Path(e["source"]["path"]).name for e in events}) == sorted((*PICTURES, "pentax_k10d.jpg"))
    for e in events:
        _check_event(e)
    assert all(r["headers"].get("x-api-key") == API_KEY for r in receiver.got)
    assert all(r["body"] == b"" for r in receiver.on("/rescan"))

    status = run_cli("status", cwd=tmp_path)
    assert "event sink jobs: 0 pending" in status.stdout, status.stdout
    assert "event sink library: 0 pending" in status.stdout, status.stdout
    d2.stop()
    dump = "\n".join(sqlite3.connect(tmp_path / "state" / "ledger.sqlite3").iterdump())
    for text, where in (
        (log.read_text(), "the log"),
        (status.stdout + status.stderr, "status"),
        (dump, "the ledger"),
    ):
        assert API_KEY not in text, f"the API key is in {where}"


def test_process_delivers_before_it_exits_or_keeps_the_rest_for_the_daemon(
    tmp_path: Path, receiver: Receiver
) -> None:
    """`hotfolder process` with the receiver down exits within its bound, the event kept in the ledger
    (event.pending); a later run with the receiver up delivers both, a batch at once."""
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "h.bmp")
    base = f"http://127.0.0.1:{receiver.port}"
    write_config(
        tmp_path,
        '[[rule]]\nname = "web"\n[[rule.output]]\nformat = "jpeg"\npath = "{stem}.jpg"\n',
        extra=f'stop_timeout = 3\n[[event]]\nname = "jobs"\nurl = "{base}/jobs"\n'
        f'[[event]]\nname = "library"\nurl = "{base}/rescan"\nbatch = 60\n',
    )
    started = time.monotonic()
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    assert '"event.pending"' in done.stdout
    rows = (
        sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
        .execute("SELECT count(*) FROM outbox")
        .fetchone()[0]
    )
    assert rows == 2
    receiver.start()
    shutil.copy(corpus("dscn0010.jpg"), tmp_path / "inbox" / "d.jpg")
    again = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert '"event.pending"' not in again.stdout
    assert len(receiver.on("/jobs")) == 2  # the one kept, and the new one
    (batch,) = receiver.on("/rescan")
    summary = json.loads(batch["body"])
    jsonschema.validate(summary, SCHEMA)
    assert summary["count"] == 2 and summary["kind"] == "batch"


def test_an_output_renamed_at_commit_is_announced_under_the_name_it_took(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Someone takes an output's name between staging and the commit's rename: the output goes to the
    next free name, and the event gives that name and its hash (the plan the commit ended with)."""
    receiver.start()
    _one_picture_and_a_sink(tmp_path, f"http://127.0.0.1:{receiver.port}/jobs")
    flag = tmp_path / "paused"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon"), PAUSE_AT_ENV: "after-intent"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotfolder", "process", "inbox"],
        cwd=tmp_path,
        env={**env, PAUSE_FILE_ENV: str(flag)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not flag.exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the commit did not pause"
        time.sleep(0.05)
    (tmp_path / "outbox").mkdir(exist_ok=True)
    (tmp_path / "outbox" / "h.jpg").write_bytes(b"someone else's file")
    flag.unlink()
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    (got,) = receiver.on("/jobs")
    event = json.loads(got["body"])
    _check_event(event)
    (out,) = event["outputs"]
    assert Path(out["path"]).name == "h-1.jpg"
    assert (tmp_path / "outbox" / "h.jpg").read_bytes() == b"someone else's file"


def test_a_full_outbox_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    """max_pending = 2 on a sink that is down: of 4 jobs the 2 oldest events are dropped, counted in
    the log, `status` and the ledger; the 2 newest wait."""
    (tmp_path / "inbox").mkdir()
    for name in PICTURES:
        shutil.copy(corpus(name), tmp_path / "inbox" / name)
    write_config(
        tmp_path,
        '[[rule]]\nname = "web"\n[[rule.output]]\nformat = "jpeg"\npath = "{stem}.jpg"\nmax_edge = 256\n',
        extra=f'stop_timeout = 1\n[[event]]\nname = "jobs"\nurl = "http://127.0.0.1:{free_port()}/x"\n'
        "max_pending = 2\n",
    )
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    status = run_cli("status", cwd=tmp_path)
    assert "event sink jobs: 2 pending, 0 delivered, 2 dropped; FAILING" in status.stdout, status.stdout
    assert '"event.dropped"' in done.stdout
    assert status.returncode == 0  # failing for minutes: a receiver's restart, not yet a problem
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    with db:
        db.execute("UPDATE sinks SET failing_since = failing_since - 7200")  # as if two hours ago
    db.close()
    later = run_cli("status", cwd=tmp_path)
    assert later.returncode == 1 and "FAILING for 120 min" in later.stdout, later.stdout
    serve = ServeProcess(tmp_path)
    try:
        serve.ready()
        metrics = urllib.request.urlopen(serve.base + "/metrics", timeout=10).read().decode()
        page = urllib.request.urlopen(serve.base + "/", timeout=10).read().decode()
    finally:
        serve.stop()
    for line in (
        'hotfolder_events_pending{sink="jobs"} 2.0',
        'hotfolder_events_dropped_total{sink="jobs"} 2.0',
        'hotfolder_events_delivered_total{sink="jobs"} 0.0',
    ):
        assert line in metrics, metrics
    assert re.search(r'hotfolder_events_failing_seconds\{sink="jobs"\} 72\d\d', metrics), metrics
    assert 'id="event-sinks"' in page and "failing for 120 min" in page
    bodies = [
        json.loads(b)
        for (b,) in sqlite3.connect(tmp_path / "state" / "ledger.sqlite3").execute(
            "SELECT body FROM outbox ORDER BY id"
        )
    ]
    assert len(bodies) == 2


def test_ledger_rebuild_keeps_the_events_not_yet_delivered(tmp_path: Path) -> None:
    _one_picture_and_a_sink(tmp_path, f"http://127.0.0.1:{free_port()}/x", "stop_timeout = 1\n")
    assert run_cli("process", "inbox", cwd=tmp_path).returncode == 0
    ledger = tmp_path / "state" / "ledger.sqlite3"
    db = sqlite3.connect(ledger)
    before = db.execute("SELECT event_id, body FROM outbox").fetchall()
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'history_at'").fetchone()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    assert len(before) == 1
    data = bytearray(ledger.read_bytes())
    start = (root - 1) * page_size
    data[start : start + page_size] = os.urandom(page_size)  # an index page damaged: the check fails
    ledger.write_bytes(bytes(data))
    rebuilt = run_cli("ledger", "rebuild", cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "1 undelivered event(s) kept" in rebuilt.stdout, rebuilt.stdout
    after = sqlite3.connect(ledger).execute("SELECT event_id, body FROM outbox").fetchall()
    assert after == before
    status = run_cli("status", cwd=tmp_path)
    assert "event sink jobs: 1 pending" in status.stdout, status.stdout


@pytest.mark.parametrize(
    ("event", "key", "said"),
    [
        ('url = "ftp://host/x"', "event.url", "unknown scheme 'ftp'"),
        ('url = "http://host/x"\nheaders = { "x-api-key" = "@missing-key" }', "event.headers", "cannot read"),
        (
            'url = "http://host/x"\nheaders = { "x-api-key" = "@open-key" }',
            "event.headers",
            "readable by every user",
        ),
        ('url = "http://host/x"\nbatch = 600', "event.batch", "from 1 to 60"),
        ('url = "http://host/x"\nrules = ["nope"]', "event.rules", "no rule is named 'nope'"),
        ('url = "mqtt://user:pw@host/t"', "event.url", "holds a password"),
        ('url = "mqtt://host/t"\npassword = "plain"', "event.password", "read from a file"),
        ('url = "http://host/x"\nwhat = 1', "event.what", "unknown key"),
    ],
)
def test_check_refuses_a_bad_event_naming_the_key_and_line(
    tmp_path: Path, event: str, key: str, said: str
) -> None:
    (tmp_path / "open-key").write_text(API_KEY)
    (tmp_path / "open-key").chmod(0o644)
    write_config(
        tmp_path,
        '[[rule]]\nname = "web"\n[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n',
        extra=f'[[event]]\nname = "s"\n{event}\n',
    )
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    text = done.stdout + done.stderr
    assert said in text and key in text, text
    assert re.search(r"hotfolder\.toml:\d+: ", text), text
    assert API_KEY not in text


def test_check_warns_when_the_installed_unit_has_no_network(tmp_path: Path) -> None:
    """With hotfolder.service installed and no drop-in opening its network, a configured sink is a
    warning naming events.conf; with the shipped events.conf beside it, none."""
    problems: list[str] = []
    sinks = parse_events(
        [{"name": "s", "url": "http://127.0.0.1/x"}],
        tmp_path,
        "",
        lambda m, k, n: problems.append(m),
        frozenset(),
    )
    assert sinks and not problems
    units = tmp_path / "system"
    (units / "hotfolder.service.d").mkdir(parents=True)
    shutil.copy(ROOT / "systemd" / "hotfolder.service", units)
    said = network_warning(sinks, (units,))
    assert said is not None and "the unit has no network" in said and "events.conf" in said
    shutil.copy(ROOT / "systemd" / "hotfolder.service.d" / "events.conf", units / "hotfolder.service.d")
    assert network_warning(sinks, (units,)) is None
    assert network_warning((), (units,)) is None


def test_explain_says_which_sinks_hear_of_a_file(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "h.bmp")
    write_config(
        tmp_path,
        '[[rule]]\nname = "web"\n[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n',
        extra='[[event]]\nname = "ha"\nurl = "mqtt://127.0.0.1:1883/photos"\n'
        '[[event]]\nname = "lib"\nurl = "http://127.0.0.1/scan"\nbatch = 20\n'
        '[[event]]\nname = "bad-only"\nurl = "http://127.0.0.1/bad"\non = ["quarantined"]\n',
    )
    done = run_cli("explain", "inbox/h.bmp", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "events: done announced to 'ha': MQTT topic 'photos' on 127.0.0.1:1883, QoS 1" in done.stdout
    assert (
        "events: done announced to 'lib': POST http://127.0.0.1/scan, batched (20 s of quiet)" in done.stdout
    )
    assert "bad-only" not in done.stdout


def test_the_events_drop_in_verifies_and_opens_only_inet(tmp_path: Path) -> None:
    """systemd-analyze: the unit with events.conf verifies clean; its exposure (printed with the one
    without it) stays under 1.5, with Internet sockets and no netlink or packet sockets."""
    from test_systemd import ANALYZE, analyze, installed_copy  # noqa: PLC0415

    if ANALYZE is None:
        pytest.skip("systemd-analyze is not installed")
    folder = installed_copy(tmp_path, relax_home=False)
    bare = analyze(folder, "security", "--offline=yes", "--no-pager", "hotfolder.service").stdout
    shutil.copy(ROOT / "systemd" / "hotfolder.service.d" / "events.conf", folder / "hotfolder.service.d")
    verified = analyze(folder, "verify", "hotfolder.service")
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    opened = analyze(folder, "security", "--offline=yes", "--no-pager", "hotfolder.service").stdout
    levels = [
        float(re.search(r"Overall exposure level for hotfolder.service: ([\d.]+)", t).group(1))
        for t in (bare, opened)
    ]  # type: ignore[union-attr]
    print(f"exposure without events.conf {levels[0]}, with it {levels[1]}")
    assert levels[0] <= 0.5 < levels[1] <= 1.5
    assert re.search(r"✓ RestrictAddressFamilies=~AF_NETLINK", opened)
    assert re.search(r"✓ RestrictAddressFamilies=~AF_PACKET", opened)
