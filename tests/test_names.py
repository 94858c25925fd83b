"""File names that are not UTF-8 (issue 28, case 9): processed, logged readably, stored exactly."""

from __future__ import annotations

import base64
import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from conftest import DaemonProcess, ServeProcess, corpus, run_cli, write_config
from hotfolder import names
from hotfolder.commit.ledger import Ledger

LATIN1 = b"caf\xe9 \xe0 la cr\xe8me.jpg"  # what an old SMB client or a Windows ZIP writes: not UTF-8
BROKEN = b"r\xe9sum\xe9 cass\xe9.jpg"

RULES = """\
[[rule]]
name = "photos"
[rule.match]
formats = ["jpeg"]
[[rule.output]]
format = "jpeg"
path = "web/{stem}.jpg"
"""


def _drop(folder: Path, name: bytes, data: bytes) -> Path:
    path = Path(os.fsdecode(os.fsencode(folder) + b"/" + name))
    path.write_bytes(data)
    return path


def test_helpers_give_a_name_back_exactly() -> None:
    """Readable for people, exact for machines: the base64 beside a readable name round-trips."""
    text = os.fsdecode(LATIN1)
    assert names.readable(text) == "caf\\xe9 \\xe0 la cr\\xe8me.jpg"
    fields = names.portable({"src": text, "rule": "photos"})
    assert fields["src"] == names.readable(text)
    assert base64.b64decode(fields["src_bytes"]) == LATIN1
    assert names.exact_text(fields, "src") == text
    assert names.cut(os.fsdecode(b"\xe9" * 10 + "é".encode()), 11) == os.fsdecode(b"\xe9" * 10)


def test_the_ledger_keeps_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    """A row for such a name is written, found by its path and read back as the very same str."""
    from hotfolder.commit.records import Record  # noqa: PLC0415
    from hotfolder.core.identity import FileIdentity  # noqa: PLC0415

    folder = tmp_path / "inbox"
    folder.mkdir()
    path = _drop(folder, LATIN1, b"x")
    identity = FileIdentity.at(path)
    assert identity is not None
    ledger = Ledger(tmp_path / "state")
    ledger.record(Record(path=path, identity=identity, status="done", error=f"same content as {path}"))
    assert ledger.is_handled(path, identity)
    assert [p for p, *_ in ledger.done_in(folder)] == [path]
    (entry,) = ledger.recent(5)
    assert entry.path == path and os.fsencode(entry.path) == os.fsencode(folder) + b"/" + LATIN1
    assert entry.error == f"same content as {path}"
    ledger.close()


def test_the_daemon_processes_and_quarantines_such_names(
    tmp_path: Path, daemons: list[DaemonProcess], servers: list[ServeProcess]
) -> None:
    """Present at start: one done, one quarantined with a readable note; logs, status, page and metrics
    carry the names; the daemon stops cleanly (it used to die at every start on the first lookup)."""
    write_config(tmp_path, RULES)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    good = _drop(inbox, LATIN1, corpus("apple_iphone_4.jpg").read_bytes())
    bad = _drop(inbox, BROKEN, corpus("apple_iphone_4.jpg").read_bytes()[:20000])
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    done = daemon.wait_event("job.done")
    assert done["src"] == names.readable(good)
    assert base64.b64decode(str(done["src_bytes"])) == os.fsencode(good)
    quarantined = daemon.wait_event("job.quarantined")
    assert base64.b64decode(str(quarantined["src_bytes"])) == os.fsencode(bad)
    web = os.fsencode(tmp_path / "outbox" / "web") + b"/caf\xe9 \xe0 la cr\xe8me.jpg"
    assert Path(os.fsdecode(web)).is_file()
    parked = Path(os.fsdecode(os.fsencode(tmp_path / "quarantine") + b"/" + BROKEN))
    assert parked.read_bytes() == corpus("apple_iphone_4.jpg").read_bytes()[:20000]
    note = json.loads(Path(str(parked) + ".json").read_text(encoding="utf-8"))
    assert note["src"] == names.readable(bad) and base64.b64decode(note["src_bytes"]) == os.fsencode(bad)

    serve = ServeProcess(tmp_path)
    servers.append(serve)
    serve.ready()
    page = urllib.request.urlopen(serve.base + "/", timeout=10).read().decode("utf-8")
    assert "r\\xe9sum\\xe9 cass\\xe9.jpg" in page and "caf\\xe9 \\xe0 la cr\\xe8me.jpg" in page
    assert urllib.request.urlopen(serve.base + "/metrics", timeout=10).status == 200
    daemon.stop()

    status = run_cli("status", cwd=tmp_path)
    assert status.returncode == 1 and "quarantined" in status.stdout, status.stderr
    assert "Traceback" not in status.stderr
    ledger = Ledger(tmp_path / "state", readonly=True)
    assert {os.fsencode(e.path) for e in ledger.recent(10)} == {os.fsencode(good), os.fsencode(bad)}
    ledger.close()

    # Retry names the file as the shell gives it (surrogate-escaped argv): back in the inbox, exactly.
    retried = run_cli("retry", str(bad), cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert bad.read_bytes() == corpus("apple_iphone_4.jpg").read_bytes()[:20000]


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_process_logs_such_names_in_either_format(tmp_path: Path, fmt: str) -> None:
    """`process` on a pipe in both log formats: exit 0, no traceback, the name readable in the log."""
    write_config(tmp_path, RULES)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _drop(inbox, LATIN1, corpus("apple_iphone_4.jpg").read_bytes())
    shutil.copy(corpus("apple_iphone_4.jpg"), inbox / "plain.jpg")  # the same bytes: a duplicate of it
    result = run_cli("process", "--log-format", fmt, "inbox", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = result.stdout.replace("\\\\", "\\")  # JSON doubles the backslash of \xe9
    assert "caf\\xe9 \\xe0 la cr\\xe8me" in shown
    assert "Traceback" not in result.stderr
