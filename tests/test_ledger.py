"""The ledger: exactly once across runs, duplicates by content, status, retry, migrations."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import piexif
import pytest
from PIL import Image

from conftest import ROOT, corpus, run_cli
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.records import Record
from hotfolder.commit.tables import SCHEMA_VERSION
from hotfolder.core.fsinfo import filesystem_type, is_network_fs
from hotfolder.core.identity import FileIdentity


def outputs(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_process_skips_what_is_done_unless_forced(tmp_path: Path) -> None:
    """A second `process` does nothing; --force does it again, and identical outputs add no file."""
    folder = tmp_path / "cards"
    folder.mkdir()
    shutil.copy(corpus("hopper.bmp"), folder / "h.bmp")
    assert run_cli("process", str(folder), cwd=tmp_path).returncode == 0
    first = outputs(tmp_path / "outbox")
    again = run_cli("process", str(folder), cwd=tmp_path)
    assert "skipped 1" in again.stderr and "done 0" in again.stderr
    forced = run_cli("process", "--force", str(folder), cwd=tmp_path)
    assert "done 1" in forced.stderr
    assert outputs(tmp_path / "outbox") == first == ["archive/h.png", "web/h.jpg"]


def test_byte_identical_copy_under_another_name_is_skipped_once(tmp_path: Path) -> None:
    """The same bytes under a new name: one duplicate event, no second set of outputs."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(corpus("hopper.bmp"), a / "first.bmp")
    shutil.copy(corpus("hopper.bmp"), b / "copy.bmp")
    run_cli("process", str(a), cwd=tmp_path)
    result = run_cli("process", "--log-format", "json", str(b), cwd=tmp_path)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    dups = [e for e in events if e["event"] == "file.duplicate"]
    assert len(dups) == 1 and "first.bmp" in dups[0]["error"]
    assert outputs(tmp_path / "outbox") == ["archive/first.png", "web/first.jpg"]


def test_edited_source_is_processed_as_new(tmp_path: Path) -> None:
    """New content under an old name (and old identity gone) is processed again."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(corpus("hopper.bmp"), folder / "x.bmp")
    run_cli("process", str(folder), cwd=tmp_path)
    (folder / "x.bmp").unlink()
    shutil.copy(corpus("pentax_k10d.jpg"), folder / "x.bmp")
    result = run_cli("process", str(folder), cwd=tmp_path)
    assert "done 1" in result.stderr
    assert "archive/x-1.png" in outputs(
        tmp_path / "outbox"
    )  # different content: a new name, nothing replaced


def test_status_and_retry(tmp_path: Path) -> None:
    """status exits 1 while something is quarantined; retry puts it back where it came from."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(corpus("truncated_jpeg.jpg"), folder / "bad.jpg")
    shutil.copy(corpus("hopper.bmp"), folder / "good.bmp")
    assert run_cli("process", str(folder), cwd=tmp_path).returncode == 1
    status = run_cli("status", cwd=tmp_path)
    assert status.returncode == 1
    assert "quarantined  1" in status.stdout and "done         1" in status.stdout
    retry = run_cli("retry", "--all", cwd=tmp_path)
    assert retry.returncode == 0 and (folder / "bad.jpg").exists()
    assert not (tmp_path / "quarantine" / "bad.jpg").exists()
    assert run_cli("status", cwd=tmp_path).returncode == 0


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    """--dry-run names the rule per file and creates no output or state."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(corpus("hopper.bmp"), folder / "h.bmp")
    (folder / "notes.txt").write_text("hi")
    result = run_cli("process", "--dry-run", str(folder), cwd=tmp_path)
    assert result.returncode == 0
    assert "h.bmp: default" in result.stdout and "notes.txt: no rule" in result.stdout
    assert not (tmp_path / "outbox").exists()


def test_old_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    """A version-1 ledger gains the new columns and keeps its rows."""
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    db.executescript(
        "CREATE TABLE inputs (path TEXT PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL,"
        " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT, rule TEXT, status TEXT NOT NULL,"
        " outputs TEXT NOT NULL DEFAULT '[]', error TEXT, updated TEXT NOT NULL);"
        "INSERT INTO inputs VALUES ('/x', 1, 2, 3, 4, 'ab', 'r', 'done', '[]', NULL, 'then');"
        "PRAGMA user_version=1;"
    )
    db.close()
    ledger = Ledger(tmp_path)
    assert ledger.is_handled(Path("/x"), FileIdentity(1, 2, 3, 4))
    ledger.record(
        Record(Path("/y"), FileIdentity(5, 6, 7, 8), "quarantined", error="x", watch="inbox", attempts=3)
    )
    assert ("inbox", "quarantined", 1) in ledger.summary()
    ledger.close()
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("SELECT attempts FROM inputs WHERE path = '/y'").fetchone()[0] == 3


def test_network_filesystems_are_recognised(tmp_path: Path) -> None:
    """state_dir on nfs/cifs/fuse is refused; the local test folder is not one of them."""
    assert all(is_network_fs(k) for k in ("nfs4", "cifs", "fuse.sshfs", "9p"))
    assert not is_network_fs(filesystem_type(tmp_path))
    assert filesystem_type(Path("/proc/self")) == "proc"


def test_dry_run_judges_paths_like_process(tmp_path: Path) -> None:
    """--dry-run sees the path below the given folder (so folder globs match) and the ignore list."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rule]]\nname = "scans"\n[rule.match]\nglob = "scans/*.bmp"\n'
        '[[rule.output]]\nformat = "png"\npath = "{relpath}.png"\n'
    )
    (tmp_path / "hotfolder.toml").write_text(
        'rules = ["rules.toml"]\nignore = ["*.skip.bmp"]\n[[watch]]\npath = "inbox"\n'
    )
    folder = tmp_path / "in"
    (folder / "scans").mkdir(parents=True)
    shutil.copy(corpus("hopper.bmp"), folder / "scans" / "page.bmp")
    shutil.copy(corpus("hopper.bmp"), folder / "scans" / "draft.skip.bmp")
    result = run_cli("process", "--dry-run", str(folder), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "page.bmp: scans" in result.stdout and "draft.skip.bmp" not in result.stdout


READ_ON_RO_MOUNT = """
import sys
from pathlib import Path
from hotfolder.commit.ledger import Ledger
ledger = Ledger(Path(sys.argv[1]), readonly=True)
print(ledger.counts())
"""


def test_a_reader_opens_the_ledger_on_a_read_only_mount(tmp_path: Path) -> None:
    """serve's unit sees state_dir read-only: while the daemon runs (-shm there) and after it stopped."""
    state = tmp_path / "state"
    writer = Ledger(state)
    writer.record(Record(tmp_path / "a.jpg", FileIdentity(1, 2, 3, 4), "done"))

    def read() -> subprocess.CompletedProcess[str]:
        script = f"mount --bind -o ro {state} {state} && {sys.executable} -c '{READ_ON_RO_MOUNT}' {state}"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
        return subprocess.run(
            ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, check=False
        )

    running = read()
    if "mount" in running.stderr and running.returncode != 0 and "Traceback" not in running.stderr:
        pytest.skip(f"no mount namespace here: {running.stderr.strip()}")
    assert running.returncode == 0 and "'done': 1" in running.stdout, running.stderr
    writer.close()  # the daemon stopped: -wal and -shm are gone
    assert not (state / "ledger.sqlite3-shm").exists()
    stopped = read()
    assert stopped.returncode == 0 and "'done': 1" in stopped.stdout, stopped.stderr


def test_the_history_keeps_a_failure_a_retry_mended(tmp_path: Path) -> None:
    """An input's row keeps its latest state; the history (the page's 24-hour plot) keeps each outcome."""
    ledger = Ledger(tmp_path / "state")
    try:
        src, identity = tmp_path / "a.jpg", FileIdentity(1, 2, 3, 4)
        ledger.record(Record(src, identity, "quarantined", rule="r", watch="w"))
        ledger.record(Record(src, identity, "done", rule="r", watch="w", ms=120.0))
        ledger.record(Record(tmp_path / "b.jpg", identity, "done"), happened=False)  # salvaged by a rebuild
        ledger.record(Record(tmp_path / "c.txt", identity, "unmatched"))  # not a job
        rows = ledger.hourly("2000-01-01T00:00:00")
        assert sorted((s, n) for _, s, n in rows) == [("done", 1), ("quarantined", 1)]
        assert ledger.counts() == {"done": 2, "unmatched": 1}
    finally:
        ledger.close()


def _an_earlier_ledger(folder: Path, version: int, rows: str) -> None:
    """A ledger as the release at schema `version` wrote it: its own migrations, then these rows."""
    from hotfolder.commit import tables  # noqa: PLC0415

    db = sqlite3.connect(folder / "ledger.sqlite3")
    for number, step in enumerate(tables._MIGRATIONS[:version]):
        db.executescript(f"BEGIN; {step} PRAGMA user_version={number + 1}; COMMIT;")
    db.executescript(rows)
    db.close()


def test_the_previous_releases_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    """A schema-7 ledger as 884bc71 wrote it (its own migrations, its rows): opened by this release it
    gains the status index, keeps every row, and takes a name that is not UTF-8 beside them."""
    _an_earlier_ledger(
        tmp_path,
        7,
        "INSERT INTO inputs (path, dev, ino, size, mtime_ns, sha256, rule, status, updated, quarantined_to)"
        " VALUES ('/in/a.jpg', 1, 2, 3, 4, 'ab', 'r', 'done', '2026-12-01T00:00:00+00:00', NULL),"
        " ('/in/b.jpg', 1, 3, 3, 4, 'cd', 'r', 'quarantined', '2026-12-01T00:00:01+00:00', '/q/b.jpg');",
    )
    ledger = Ledger(tmp_path)
    assert ledger.is_handled(Path("/in/a.jpg"), FileIdentity(1, 2, 3, 4))
    assert ledger.quarantined_count() == 1 and ledger.quarantined_entry(2) is not None
    latin1 = Path(os.fsdecode(b"/in/caf\xe9.jpg"))
    ledger.record(Record(latin1, FileIdentity(1, 4, 3, 4), "done"))
    assert ledger.is_handled(latin1, FileIdentity(1, 4, 3, 4))
    ledger.close()
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("SELECT count(*) FROM inputs").fetchone()[0] == 3
    assert "inputs_status" in {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    # Stored as the exact bytes: any SQLite client gives the name back.
    assert (
        db.execute("SELECT path FROM inputs WHERE typeof(path) = 'blob'").fetchone()[0] == b"/in/caf\xe9.jpg"
    )


def test_a_forced_run_replaces_its_own_earlier_outputs_never_a_twin(tmp_path: Path) -> None:
    """Issue 29, upgrade: outputs a previous release wrote with other bytes (an older encoder: here the
    same file with a byte changed) are recognised as this input's own by its done row (same path, same
    bytes) and replaced by `process --force`, never given a `-1` twin; an edited source under the same
    name is a new input and gets the twin."""
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "h.bmp")
    assert run_cli("process", "inbox", cwd=tmp_path).returncode == 0
    web = tmp_path / "outbox" / "web" / "h.jpg"
    older = web.read_bytes()[:-2] + b"\x00\xff\xd9"  # what another encoder might have written
    web.write_bytes(older)
    forced = run_cli("process", "--force", "--log-format", "json", "inbox", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in web.parent.iterdir()) == ["h.jpg"] and web.read_bytes() != older
    assert '"output.overwritten"' in forced.stdout
    with Image.open(tmp_path / "inbox" / "h.bmp") as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "inbox" / "h.bmp")  # edited
    assert run_cli("process", "inbox", cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in web.parent.iterdir()) == ["h-1.jpg", "h.jpg"]


def _as_an_older_release_wrote(out: Path, source: Path) -> bytes:
    """Rewrite an output as another encoder would (other bytes, the same picture), with the mtime every
    release gives an output: its source's."""
    with Image.open(out) as im:
        im.load()
        if im.format == "JPEG":
            im.save(out, quality=70, subsampling=2)
        else:
            im.save(out, compress_level=1)
    st = source.stat()
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
    return out.read_bytes()


def test_a_rebuilt_ledger_that_lost_the_rows_still_replaces_an_older_release_s_outputs(
    tmp_path: Path,
) -> None:
    """Issue 29, upgrade: the ledger is damaged beyond salvage and rebuilt empty; the next run of a
    release whose encoders write other bytes finds the earlier outputs (its source's mtime, the same
    format, size and picture) and replaces them: no `-1` twin beside either."""
    (tmp_path / "inbox").mkdir()
    src = tmp_path / "inbox" / "h.bmp"
    shutil.copy(corpus("hopper.bmp"), src)
    assert run_cli("process", "inbox", cwd=tmp_path).returncode == 0
    older = {
        p: _as_an_older_release_wrote(tmp_path / "outbox" / p, src) for p in ("web/h.jpg", "archive/h.png")
    }
    ledger = tmp_path / ".hotfolder" / "ledger.sqlite3"
    assert ledger.exists()
    ledger.write_bytes(b"not a database any more" * 200)
    assert run_cli("ledger", "rebuild", cwd=tmp_path).returncode == 0
    again = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert outputs(tmp_path / "outbox") == ["archive/h.png", "web/h.jpg"]
    assert all((tmp_path / "outbox" / p).read_bytes() != b for p, b in older.items())
    assert again.stdout.count('"output.overwritten"') == 2


@pytest.mark.parametrize("name", ["dscn0010.jpg", "canon_eos_7d.jpg", "sony_dsc-hx5v_2.jpg"])
def test_a_rebuilt_ledger_recognises_web_copies_the_release_before_privacy_wrote(
    tmp_path: Path, name: str
) -> None:
    """Issue 33, upgrade: the release before private web copies wrote the same pixels with the camera's
    whole EXIF (MakerNote, serials). Its ledger lost and rebuilt, the next run finds those web copies as
    this input's own (the same picture judged from a decode at no less than 256 px, not at 1/8 scale,
    which differed by 1.7 on dscn0010's very pixels) and replaces them: no `-1` twin."""
    (tmp_path / "inbox").mkdir()
    src = tmp_path / "inbox" / name
    shutil.copy(corpus(name), src)
    assert run_cli("process", "inbox", cwd=tmp_path).returncode == 0
    web = tmp_path / "outbox" / "web" / (src.stem + ".jpg")
    piexif.insert(piexif.dump(piexif.load(str(src))), str(web))  # the same JPEG data, the old EXIF
    st = src.stat()
    os.utime(web, ns=(st.st_atime_ns, st.st_mtime_ns))
    shutil.rmtree(tmp_path / ".hotfolder")
    assert run_cli("ledger", "rebuild", cwd=tmp_path).returncode == 0
    again = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in web.parent.iterdir()) == [web.name]
    assert again.stdout.count('"output.overwritten"') == 1, again.stdout


def test_an_output_of_another_input_or_another_picture_is_never_replaced(tmp_path: Path) -> None:
    """The same checks never take another input's output: a PNG of the same pixels under the same stem
    and with the same mtime is another input the ledger knows the output of (twinned), and a different
    picture under the same name with the same mtime is not the same picture (twinned)."""
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "a" / "h.bmp")
    with Image.open(corpus("hopper.bmp")) as im:
        im.save(tmp_path / "b" / "h.png")
        im.transpose(Image.Transpose.ROTATE_180).save(tmp_path / "c" / "h.bmp")
    st = (tmp_path / "a" / "h.bmp").stat()
    for other in (tmp_path / "b" / "h.png", tmp_path / "c" / "h.bmp"):
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    web = tmp_path / "outbox" / "web"
    assert run_cli("process", "a", cwd=tmp_path).returncode == 0
    first = (web / "h.jpg").read_bytes()
    assert run_cli("process", "b", cwd=tmp_path).returncode == 0
    assert (
        sorted(p.name for p in web.iterdir()) == ["h-1.jpg", "h.jpg"]
        and (web / "h.jpg").read_bytes() == first
    )
    (tmp_path / ".hotfolder" / "ledger.sqlite3").unlink()  # the ledger's word gone: the picture still differs
    assert run_cli("process", "c", cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in web.iterdir()) == ["h-1.jpg", "h-2.jpg", "h.jpg"]
    assert (web / "h.jpg").read_bytes() == first


def test_the_release_before_events_has_its_ledger_migrated_and_announces(tmp_path: Path) -> None:
    """Issue 34, upgrade: a schema-8 ledger (the release before events) gains the outbox in place, keeps
    its rows, and a job recorded after the upgrade is announced in the same transaction as its row."""
    from hotfolder.settings.events import parse_events  # noqa: PLC0415

    _an_earlier_ledger(
        tmp_path,
        8,
        "INSERT INTO inputs (path, dev, ino, size, mtime_ns, sha256, rule, status, updated)"
        " VALUES ('/in/a.jpg', 1, 2, 3, 4, 'ab', 'r', 'done', '2026-12-01T00:00:00+00:00');",
    )
    ledger = Ledger(tmp_path)
    try:
        assert ledger.is_handled(Path("/in/a.jpg"), FileIdentity(1, 2, 3, 4))
        sinks = parse_events([{"name": "s", "url": "http://127.0.0.1/x"}], tmp_path, "", print, frozenset())
        ledger.announce_to(sinks)
        ledger.record(Record(Path("/in/b.jpg"), FileIdentity(1, 5, 3, 4), "done", sha256="cd", rule="r"))
        ledger.record(Record(Path("/in/c.txt"), FileIdentity(1, 6, 3, 4), "unmatched"))  # not announced
        (state,) = ledger.sink_states()
        assert (state.sink, state.pending) == ("s", 1)
    finally:
        ledger.close()
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 9
    (body,) = db.execute("SELECT body FROM outbox").fetchone()
    assert json.loads(body)["source"]["path"] == "/in/b.jpg"


def test_the_twins_a_job_carries_stay_few_however_many_inputs_share_its_size(tmp_path: Path) -> None:
    """A scanner's uncompressed pages all have one size: a job carries the latest TWINS candidates, not
    every input done with that size (each job used to carry them all: a 2,000-page burst spent a quarter
    of the daemon's main loop reading and pickling them)."""
    from hotfolder.commit.ledger import TWINS  # noqa: PLC0415

    ledger = Ledger(tmp_path / "state")
    try:
        for i in range(TWINS * 3):
            src = tmp_path / f"page{i:04d}.tif"
            ledger.record(Record(src, FileIdentity(1, i, 4096, i), "done", sha256=f"{i:064x}", rule="scan"))
        twins = ledger.twins(4096, tmp_path / "new.tif")
        assert len(twins) == TWINS
        assert twins[0] == (f"{TWINS * 3 - 1:064x}", "scan", str(tmp_path / f"page{TWINS * 3 - 1:04d}.tif"))
        assert ledger.twins(4096, tmp_path / "page0000.tif")[-1][2] != str(tmp_path / "page0000.tif")
    finally:
        ledger.close()


def test_a_copy_of_an_early_page_among_many_of_one_size_is_still_a_duplicate(tmp_path: Path) -> None:
    """Beyond the candidates a job carries, the commit's own check by content still finds the twin."""
    from hotfolder.commit.ledger import TWINS  # noqa: PLC0415

    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(TWINS + 8):  # uncompressed BMPs: one size for all, distinct bytes
        Image.new("RGB", (8, 8), (i % 256, i // 256, 7)).save(pages / f"p{i:03d}.bmp")
    assert len({p.stat().st_size for p in pages.iterdir()}) == 1
    assert f"done {TWINS + 8}" in run_cli("process", str(pages), cwd=tmp_path).stderr
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(pages / "p000.bmp", again / "rescan.bmp")
    result = run_cli("process", "--log-format", "json", str(again), cwd=tmp_path)
    dups = [json.loads(x) for x in result.stdout.splitlines() if '"file.duplicate"' in x]
    assert len(dups) == 1 and "p000.bmp" in dups[0]["error"]
    assert not any("rescan" in p for p in outputs(tmp_path / "outbox"))


def test_every_lookup_a_job_makes_is_an_index_search_not_a_walk_over_the_ledger(tmp_path: Path) -> None:
    """What the daemon asks the ledger for every job stays one index search as the ledger grows: SQLite's
    own plan of each statement (traced as it ran) reads no table end to end and no status-wide index
    (done_twin used to read every done row through inputs_status: 0.19 ms a job at 2,000 rows)."""
    ledger = Ledger(tmp_path / "state")
    try:
        for i in range(300):
            src = tmp_path / "card" / f"IMG_{i:04d}.JPG"
            ledger.record(
                Record(src, FileIdentity(1, i, 5000 + i % 7, i), "done", sha256=f"{i:064x}", rule="r")
            )
        ran: list[str] = []
        ledger._db.set_trace_callback(ran.append)  # observing the statements, not replacing them
        src, identity = tmp_path / "card" / "IMG_0007.JPG", FileIdentity(1, 7, 5000, 7)
        ledger.is_handled(src, identity)
        ledger.own_outputs(src, f"{7:064x}")
        ledger.twins(5000, tmp_path / "card" / "new.jpg")
        ledger.done_twin(f"{7:064x}", "r", tmp_path / "card" / "new.jpg")
        ledger.done_in(tmp_path / "card")
        ledger._db.set_trace_callback(None)
    finally:
        ledger.close()
    selects = [s for s in ran if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 5
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    try:
        for sql in selects:
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            assert not [step for step in plan if step.startswith("SCAN inputs") or "inputs_status" in step], (
                sql,
                plan,
            )
    finally:
        db.close()
