"""Never lose an original, round two: each defect a hostile new user found, with the real daemon
or the real CLI on real files. Races are made exact by pausing or killing the daemon at a named
point of its commit (HOTFOLDER_TEST_PAUSE_AT / HOTFOLDER_TEST_KILL_AT), never by sleeping."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, DaemonProcess, corpus, pool_workers, run_cli, shared, write_config
from hotfolder.commit.faults import KILL_AT_ENV, PAUSE_AT_ENV, PAUSE_FILE_ENV

PNG = '[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n'


def rule(policy: str = "keep", extra: str = "", outputs: str = PNG, match: str = "") -> str:
    text = f'[[rule]]\nname = "r"\noriginal = "{policy}"\n{extra}\n'
    if match:
        text += f"[rule.match]\n{match}\n"
    return text + outputs


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pixels(path: Path) -> bytes:
    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


def ledger_rows(tmp_path: Path) -> list[tuple[str, str, str | None]]:
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    try:
        return db.execute("SELECT path, status, original FROM inputs ORDER BY path").fetchall()
    finally:
        db.close()


def open_intents(tmp_path: Path) -> int:
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    try:
        return int(db.execute("SELECT count(*) FROM intents").fetchone()[0])
    finally:
        db.close()


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".hf-" in p.name] if root.exists() else []


def paused(
    tmp_path: Path, daemons: list[DaemonProcess], text: str, point: str = "after-renames"
) -> tuple[DaemonProcess, Path]:
    """A daemon that stops, the first time, at `point` of its commit until the flag file is removed."""
    write_config(tmp_path, text)
    (tmp_path / "inbox").mkdir(exist_ok=True)
    flag = tmp_path / "paused"
    d = DaemonProcess(tmp_path, env={PAUSE_AT_ENV: point, PAUSE_FILE_ENV: str(flag)})
    daemons.append(d)
    return d.started(), flag


# 1. The original is disposed of by identity, not by path ------------------------------------------


@pytest.mark.parametrize("policy", ["delete", "move"])
def test_a_newer_file_renamed_onto_the_name_is_never_disposed_of_unread(
    tmp_path: Path, daemons: list[DaemonProcess], policy: str
) -> None:
    """An uploader renames `.IMG_1.jpg.part` onto IMG_1.jpg while the first version is committed: the
    newer file is neither deleted nor filed unconverted; it is a new arrival, converted in its turn."""
    extra = 'original_path = "done/{name}"' if policy == "move" else ""
    d, flag = paused(tmp_path, daemons, rule(policy, extra))
    target = tmp_path / "inbox" / "IMG_1.jpg"
    shutil.copy(corpus("canon_eos_7d.jpg"), target)
    d.wait(flag.exists, what="the first commit to pause after its renames")
    part = tmp_path / "inbox" / ".IMG_1.jpg.part"
    shutil.copy(corpus("pentax_k10d.jpg"), part)
    part.rename(target)
    flag.unlink()
    kept = d.wait_event("original.kept")
    assert "no longer the one that was read" in str(kept["error"])
    d.wait(lambda: len(d.named("job.done")) == 2 and not target.exists(), what="the newer file done too")
    d.stop()
    first, second = tmp_path / "outbox" / "IMG_1.png", tmp_path / "outbox" / "IMG_1-1.png"
    assert pixels(first) == pixels(corpus("canon_eos_7d.jpg"))
    assert pixels(second) == pixels(corpus("pentax_k10d.jpg"))
    if policy == "move":
        # The rename replaced the first version (the uploader's doing; its outputs keep it): done/
        # holds the newer one, filed only after its own outputs were written.
        filed = sorted((tmp_path / "outbox" / "done").iterdir())
        assert [sha(p) for p in filed] == [sha(corpus("pentax_k10d.jpg"))]


def test_a_file_rewritten_in_place_is_kept_and_processed_as_new(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """The same inode rewritten (an editor saving over it) while its first version is committed."""
    d, flag = paused(tmp_path, daemons, rule("delete"))
    target = tmp_path / "inbox" / "scan.png"
    Image.new("RGB", (40, 30), "red").save(target)
    d.wait(flag.exists, what="the commit to pause")
    inode = target.stat().st_ino
    with target.open("r+b") as fp:  # same inode, new content
        buf = fp.read()
        fp.seek(0)
        fp.truncate()
        Image.new("RGB", (40, 30), "blue").save(fp, "PNG")
    assert target.stat().st_ino == inode and target.read_bytes() != buf
    flag.unlink()
    d.wait_event("original.kept")
    d.wait(lambda: len(d.named("job.done")) == 2 and not target.exists(), what="the new version done")
    d.stop()
    colours = sorted(Image.open(p).getpixel((0, 0)) for p in (tmp_path / "outbox").glob("scan*.png"))
    assert colours == [(0, 0, 255), (255, 0, 0)]


@pytest.mark.parametrize("folder", ["outbox", "quarantine", "state"])
def test_process_refuses_inputs_inside_its_own_folders(tmp_path: Path, folder: str) -> None:
    """`process` on a file inside output_root, quarantine or state_dir: exit 2 naming the path."""
    write_config(
        tmp_path,
        rule("delete", outputs=PNG.replace('"{stem}.png"', '"{stem}.png"\non_conflict = "overwrite"')),
    )
    (tmp_path / folder).mkdir()
    inside = tmp_path / folder / "x.png"
    Image.new("RGB", (8, 8), "green").save(inside)
    before = inside.read_bytes()
    result = run_cli("process", str(inside), cwd=tmp_path)
    assert (
        result.returncode == 2
        and str(inside) in result.stderr
        and "never takes its own files" in result.stderr
    )
    assert inside.read_bytes() == before


# 2. An appending writer ------------------------------------------------------------------------


@pytest.mark.parametrize("pause", [0.15, 0.6])
def test_a_file_written_in_appends_is_processed_once_whole(
    tmp_path: Path, daemons: list[DaemonProcess], pause: float
) -> None:
    """Open, append, close, N times (FTP APPE, chunked uploads): no fragment is ever quarantined; the
    complete picture is processed once."""
    write_config(tmp_path, rule())
    (tmp_path / "inbox").mkdir()
    d = DaemonProcess(tmp_path)
    daemons.append(d)
    d.started()
    data = corpus("landscape_1.jpg").read_bytes()
    target = tmp_path / "inbox" / "upload.jpg"
    rounds = 6
    step = len(data) // rounds + 1
    for i in range(rounds):
        with target.open("ab") as fp:
            fp.write(data[i * step : (i + 1) * step])
        time.sleep(pause)  # the writer's own pace between rounds, not a wait for the daemon
    d.wait_event("job.done", src=str(target))
    events = d.stop()
    assert not (tmp_path / "quarantine").exists() or not any((tmp_path / "quarantine").rglob("*"))
    assert [e["event"] for e in events].count("job.done") == 1
    assert pixels(tmp_path / "outbox" / "upload.png") == pixels(corpus("landscape_1.jpg"))


# 3. Links given to `process` -------------------------------------------------------------------


def test_process_refuses_a_symbolic_link_and_never_touches_its_target(tmp_path: Path) -> None:
    """`process LINK` with delete: exit 2, "is a symbolic link"; the target stays, nothing is written."""
    write_config(tmp_path, rule("delete"))
    target = tmp_path / "elsewhere" / "photo.jpg"
    target.parent.mkdir()
    shutil.copy(corpus("canon_eos_7d.jpg"), target)
    link = tmp_path / "link.jpg"
    link.symlink_to(target)
    result = run_cli("process", str(link), cwd=tmp_path)
    assert result.returncode == 2 and "is a symbolic link" in result.stderr
    assert sha(target) == sha(corpus("canon_eos_7d.jpg")) and not (tmp_path / "outbox").exists()


# 4, 5. Duplicates ------------------------------------------------------------------------------


def test_identical_files_arriving_together_are_processed_once_under_their_own_name(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """Four identical copies moved in at once: one done, three duplicates, one set of outputs named
    after the input that was done, nothing overwritten."""
    web = PNG + '[[rule.output]]\nformat = "jpeg"\npath = "web/{stem}.jpg"\nmax_edge = 200\n'
    write_config(tmp_path, rule(outputs=web))
    (tmp_path / "inbox").mkdir()
    staging = tmp_path / "staging"
    staging.mkdir()
    for i in range(1, 5):
        shutil.copy(corpus("olympus_pen_e-p3.jpg"), staging / f"dup_{i}.jpg")
    d = DaemonProcess(tmp_path)
    daemons.append(d)
    d.started()
    for i in range(1, 5):
        (staging / f"dup_{i}.jpg").rename(tmp_path / "inbox" / f"dup_{i}.jpg")
    d.wait(lambda: len(d.named("job.done")) + len(d.named("file.duplicate")) == 4, what="four verdicts")
    events = d.stop()
    (done,) = [e for e in events if e["event"] == "job.done"]
    stem = Path(str(done["src"])).stem
    outputs = sorted(
        p.relative_to(tmp_path / "outbox").as_posix() for p in (tmp_path / "outbox").rglob("*.*")
    )
    assert outputs == [f"{stem}.png", f"web/{stem}.jpg"]
    assert len([e for e in events if e["event"] == "file.duplicate"]) == 3
    assert not [e for e in events if e["event"] == "output.overwritten"]


def test_a_duplicate_for_another_rule_chain_is_processed_by_that_rule(tmp_path: Path) -> None:
    """The same photo in to-print/ (TIFF rule), then in to-web/ (JPEG rule): both outputs exist,
    and `explain` says so beforehand."""
    write_config(
        tmp_path,
        '[[rule]]\nname = "print"\n[rule.match]\nglob = "to-print/**"\n'
        '[[rule.output]]\nformat = "tiff"\npath = "print/{stem}.tif"\n'
        '[[rule]]\nname = "web"\n[rule.match]\nglob = "to-web/**"\n'
        '[[rule.output]]\nformat = "jpeg"\npath = "web/{stem}.jpg"\n',
    )
    for sub in ("to-print", "to-web"):
        (tmp_path / "inbox" / sub).mkdir(parents=True)
        shutil.copy(corpus("canon_eos_7d.jpg"), tmp_path / "inbox" / sub / "photo.jpg")
    assert (
        run_cli("process", str(tmp_path / "inbox" / "to-print" / "photo.jpg"), cwd=tmp_path).returncode == 0
    )
    explained = run_cli("explain", str(tmp_path / "inbox" / "to-web" / "photo.jpg"), cwd=tmp_path)
    assert "rule 'web': MATCH" in explained.stdout and "web/photo.jpg" in explained.stdout
    result = run_cli(
        "process", "--log-format", "json", str(tmp_path / "inbox" / "to-web" / "photo.jpg"), cwd=tmp_path
    )
    assert result.returncode == 0 and "file.duplicate" not in result.stdout
    assert (tmp_path / "outbox" / "print" / "photo.tif").exists() and (
        tmp_path / "outbox" / "web" / "photo.jpg"
    ).exists()


# 6. Every name first; failures after the commit ------------------------------------------------


def test_an_original_path_that_cannot_render_fails_before_anything_is_visible(tmp_path: Path) -> None:
    """original_path needs {make}, the file has no EXIF: quarantined, no output appears."""
    write_config(tmp_path, rule("move", 'original_path = "done/{make}/{name}"'))
    (tmp_path / "in").mkdir()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "in" / "h.bmp")
    result = run_cli("process", str(tmp_path / "in"), cwd=tmp_path)
    assert result.returncode == 1
    note = json.loads((tmp_path / "quarantine" / "h.bmp.json").read_text())
    assert "{make}" in note["error"] and note["error_class"] == "MissingFieldError"
    assert not list((tmp_path / "outbox").rglob("*.png")) if (tmp_path / "outbox").exists() else True


def test_a_source_moved_away_during_the_commit_keeps_the_outputs_and_says_so(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """Under delete, someone moves the source away after the outputs are renamed: the outputs stay and
    are recorded, the job is done with the original kept and why (original.kept), nothing quarantined."""
    d, flag = paused(tmp_path, daemons, rule("delete"))
    src = tmp_path / "inbox" / "x.jpg"
    shutil.copy(corpus("canon_eos_7d.jpg"), src)
    d.wait(flag.exists, what="the commit to pause")
    src.rename(tmp_path / "moved-away.jpg")
    flag.unlink()
    kept = d.wait_event("original.kept", src=str(src))
    assert "no longer at its path" in str(kept["error"])
    d.wait_event("job.done", src=str(src))
    d.stop()
    assert (tmp_path / "outbox" / "x.png").exists() and not (tmp_path / "quarantine").exists()
    assert ledger_rows(tmp_path)[0][1] == "done"


# 7. {reldir} at the watch root -----------------------------------------------------------------


def test_reldir_at_the_root_renders_as_nothing(tmp_path: Path) -> None:
    """web/{reldir}/{stem}.jpg: a top-level file lands in web/, a nested one in web/sub/."""
    write_config(
        tmp_path, rule(outputs='[[rule.output]]\nformat = "jpeg"\npath = "web/{reldir}/{stem}.jpg"\n')
    )
    assert run_cli("check", cwd=tmp_path).returncode == 0
    (tmp_path / "inbox" / "sub").mkdir(parents=True)
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "top.bmp")
    shutil.copy(corpus("pentax_k10d.jpg"), tmp_path / "inbox" / "sub" / "nested.jpg")
    assert run_cli("process", str(tmp_path / "inbox"), cwd=tmp_path).returncode == 0
    assert (tmp_path / "outbox" / "web" / "top.jpg").exists()
    assert (tmp_path / "outbox" / "web" / "sub" / "nested.jpg").exists()


# 8. Unmatched files after a rules change --------------------------------------------------------


def test_unmatched_files_are_offered_again_after_a_rules_change(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """A JPEG no rule took is taken once the rules are fixed: by a reload, by a restart, by `process`."""
    png_only = rule(match='formats = ["png"]')
    write_config(tmp_path, png_only)
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("canon_eos_7d.jpg"), tmp_path / "inbox" / "a.jpg")
    d = DaemonProcess(tmp_path)
    daemons.append(d)
    d.started().wait_event("file.unmatched", src=str(tmp_path / "inbox" / "a.jpg"))
    (tmp_path / "rules" / "main.toml").write_text(rule(match='formats = ["png", "jpeg"]'))
    d.wait_event("job.done", src=str(tmp_path / "inbox" / "a.jpg"))  # by the reload
    d.stop()
    # A restart with changed rules, and `process`, look again at what was unmatched too.
    (tmp_path / "rules" / "main.toml").write_text(png_only)
    shutil.copy(corpus("pentax_k10d.jpg"), tmp_path / "inbox" / "b.jpg")
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "c.bmp")
    first = DaemonProcess(tmp_path)
    daemons.append(first)
    first.started().wait_event("file.unmatched", src=str(tmp_path / "inbox" / "b.jpg"))
    first.wait_event("file.unmatched", src=str(tmp_path / "inbox" / "c.bmp"))
    first.stop()
    (tmp_path / "rules" / "main.toml").write_text(rule(match='formats = ["png", "jpeg"]'))
    again = DaemonProcess(tmp_path)
    daemons.append(again)
    again.started().wait_event("job.done", src=str(tmp_path / "inbox" / "b.jpg"))
    again.stop()
    (tmp_path / "rules" / "main.toml").write_text(rule(match='formats = ["png", "jpeg", "bmp"]'))
    assert "done 1" in run_cli("process", str(tmp_path / "inbox" / "c.bmp"), cwd=tmp_path).stderr


# 9. Unicode ------------------------------------------------------------------------------------


def test_utf8_exif_text_is_read_as_utf8_and_globs_are_normalised(tmp_path: Path) -> None:
    """UTF-8 Make/Model make the folders they say (not Latin-1 mojibake), exif.Make globs match them,
    and a macOS (NFD) folder name matches an NFC glob."""
    write_config(
        tmp_path,
        rule(
            match='exif.Make = "Ünïcode*"\nglob = ["été/**"]',
            outputs='[[rule.output]]\nformat = "png"\npath = "{make}/{model}/{stem}.png"\n',
        ),
    )
    nfd = unicodedata.normalize("NFD", "été")
    folder = tmp_path / "in" / nfd
    folder.mkdir(parents=True)
    ex = Image.Exif()
    ex[0x010F] = "Ünïcode Kamera".encode()
    ex[0x0110] = "日本".encode()
    Image.new("RGB", (16, 16), "teal").save(folder / "p.jpg", exif=ex.tobytes())
    result = run_cli("process", str(tmp_path / "in"), cwd=tmp_path)
    assert result.returncode == 0 and "done 1" in result.stderr, result.stderr
    assert (tmp_path / "outbox" / "Ünïcode Kamera" / "日本" / "p.png").exists()


# 10. Long names --------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [251, 255])
def test_a_quarantined_file_with_a_long_name_gets_its_note(tmp_path: Path, length: int) -> None:
    """A 251-255 byte name: the note's name is shortened, the ledger knows it, retry finds the file."""
    write_config(tmp_path, rule())
    (tmp_path / "in").mkdir()
    name = "p" * (length - 4) + ".jpg"
    bad = tmp_path / "in" / name
    shutil.copy(corpus("truncated_jpeg.jpg"), bad)
    assert run_cli("process", str(tmp_path / "in"), cwd=tmp_path).returncode == 1
    notes = list((tmp_path / "quarantine").glob("*.json"))
    assert len(notes) == 1 and len(notes[0].name.encode()) <= 255
    assert json.loads(notes[0].read_text())["quarantined_to"] == str(tmp_path / "quarantine" / name)
    status = run_cli("status", cwd=tmp_path)
    assert status.returncode == 1 and "quarantined  1" in status.stdout
    retry = run_cli("retry", "--all", cwd=tmp_path)
    assert retry.returncode == 0 and bad.exists() and not notes[0].exists()


# 11. Huge files, FIFOs, devices ----------------------------------------------------------------


def _sparse(path: Path, head: bytes, size: int) -> Path:
    with path.open("wb") as fp:
        fp.write(head)
        fp.truncate(size)  # sparse: 1.5 GB that cost no disk
    return path


@pytest.mark.parametrize(
    ("head", "says"),
    [
        pytest.param(b"\xff\xd8\xff", "no marker", id="zeros_after_soi"),
        pytest.param(None, "far more than a 100x72 JPEG", id="valid_header_then_zeros"),
    ],
)
def test_a_huge_file_that_only_starts_like_an_image_is_refused_unread(
    tmp_path: Path, head: bytes | None, says: str
) -> None:
    """1.5 GB of zeros after a JPEG start: refused from its header, without reading it whole; explain
    says it would be refused."""
    write_config(tmp_path, rule())
    (tmp_path / "in").mkdir()
    start = head if head is not None else corpus("pentax_k10d.jpg").read_bytes()[:-2]
    big = _sparse(tmp_path / "in" / "huge.jpg", start, 1_500_000_000)
    explained = run_cli("explain", str(big), cwd=tmp_path)
    assert "it would be quarantined" in explained.stdout and says in explained.stdout, explained.stdout
    # Peak memory of `process` and its workers, measured by a parent that runs only that command.
    measure = (
        "import resource, subprocess, sys; "
        "code = subprocess.run([sys.executable, '-m', 'hotfolder', 'process', sys.argv[1]]).returncode; "
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    run = subprocess.run(
        [sys.executable, "-c", measure, str(tmp_path / "in")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    code, peak_kb = map(int, run.stdout.splitlines()[-1].split())
    assert code == 1
    note = json.loads((tmp_path / "quarantine" / "huge.jpg.json").read_text())
    assert says in note["error"]
    assert peak_kb < 300_000, f"peak RSS {peak_kb} KB: the file must never be read whole"


def test_explain_and_process_refuse_fifos_and_devices_at_once(tmp_path: Path) -> None:
    """A FIFO would hang a reader, /dev/zero would grow without bound: both refused, exit 2."""
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    for args in (("explain", str(fifo)), ("process", str(fifo)), ("explain", "/dev/zero")):
        result = run_cli(*args, cwd=tmp_path, timeout=20)
        assert result.returncode == 2, (args, result.stderr)
        assert "FIFO" in result.stderr or "character device" in result.stderr


# 12. A corrupt ledger --------------------------------------------------------------------------


def test_a_corrupt_ledger_is_named_with_its_remedy_and_exit_2(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """run and status say what is wrong and how to recover, exit 2 (systemd does not restart), no
    traceback; `ledger rebuild` makes it usable again, keeping the quarantine."""
    write_config(tmp_path, rule())
    (tmp_path / "in").mkdir()
    shutil.copy(corpus("truncated_jpeg.jpg"), tmp_path / "in" / "bad.jpg")
    run_cli("process", str(tmp_path / "in"), cwd=tmp_path)
    ledger = tmp_path / "state" / "ledger.sqlite3"
    ledger.write_bytes(b"this is not a database " * 400)
    for args in (("run",), ("status",)):
        result = run_cli(*args, cwd=tmp_path, timeout=30)
        assert result.returncode == 2, result.stderr
        assert "damaged" in result.stderr and "ledger rebuild" in result.stderr
        assert "Traceback" not in result.stderr
    rebuilt = run_cli("ledger", "rebuild", cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "quarantined  1" in run_cli("status", cwd=tmp_path).stdout
    assert list(tmp_path.glob("state/ledger.sqlite3.damaged-*"))


def test_a_ledger_damaged_while_running_stops_the_daemon_with_exit_2(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    write_config(tmp_path, rule())
    (tmp_path / "inbox").mkdir()
    d = DaemonProcess(tmp_path)
    daemons.append(d)
    d.started()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "one.bmp")
    d.wait_event("job.done")
    ledger = tmp_path / "state" / "ledger.sqlite3"
    ledger.write_bytes(os.urandom(ledger.stat().st_size))
    for name in ("ledger.sqlite3-wal", "ledger.sqlite3-shm"):
        path = tmp_path / "state" / name
        if path.exists():
            path.write_bytes(os.urandom(path.stat().st_size))
    shutil.copy(corpus("pentax_k10d.jpg"), tmp_path / "inbox" / "two.jpg")
    d.wait(lambda: d.proc.poll() is not None, what="the daemon to stop")
    _, err = d.proc.communicate(timeout=30)
    assert d.proc.returncode == 2 and "Traceback" not in err
    assert d.named("ledger.corrupt") and "ledger rebuild" in str(d.named("ledger.corrupt")[0]["error"])


# 13. A dead job's temps ------------------------------------------------------------------------


def _heavy_rule() -> str:
    return rule(outputs='[[rule.output]]\nformat = "heif"\nlossless = true\npath = "{stem}.heic"\n')


@pytest.mark.parametrize("fault", ["timeout", "crash"])
def test_a_dead_jobs_temps_are_removed_when_its_failure_is_handled(
    tmp_path: Path, daemons: list[DaemonProcess], fault: str
) -> None:
    """A worker stopped past job_timeout, or killed mid-encode: its .name.hf-XXXX.tmp is gone as soon as
    the daemon has handled the failure, not only at the next start."""
    write_config(tmp_path, _heavy_rule(), extra="job_timeout = 3\n" if fault == "timeout" else "")
    (tmp_path / "inbox").mkdir()
    d = DaemonProcess(tmp_path)
    daemons.append(d)
    d.started()
    with Image.open(shared("photos", "Ultra_HDR_Samples_Originals_01.jpg")) as im:
        im.save(tmp_path / "big.png")
    (tmp_path / "big.png").rename(tmp_path / "inbox" / "big.png")
    d.wait(lambda: bool(temps(tmp_path / "outbox")), what="a temp file of the encode")
    dead = temps(tmp_path / "outbox")
    workers = pool_workers(d.proc.pid)
    if fault == "timeout":
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        d.wait_event("job.quarantined")
    else:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        d.wait_event("pool.restarted")
        d.wait_event("job.retry")
    assert not [t for t in dead if t.exists()], "the dead job's temp files are still there"
    d.kill()


# 14. kill -9 inside the commit ------------------------------------------------------------------


@pytest.mark.parametrize("point", ["after-intent", "after-renames", "after-disposal"])
@pytest.mark.parametrize("policy", ["delete", "move"])
def test_kill_9_inside_the_commit_is_finished_at_the_next_start(
    tmp_path: Path, daemons: list[DaemonProcess], point: str, policy: str
) -> None:
    """Killed after the intent, after the renames or after the disposal: the next start finishes the
    intent (intent.finished): one row done, the outputs once, the original disposed of once."""
    extra = 'original_path = "done/{name}"' if policy == "move" else ""
    write_config(tmp_path, rule(policy, extra))
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("canon_eos_7d.jpg"), tmp_path / "inbox" / "c.jpg")
    doomed = DaemonProcess(tmp_path, env={KILL_AT_ENV: point})
    daemons.append(doomed)
    doomed.wait(lambda: doomed.proc.poll() is not None, what=f"the kill at {point}")
    assert doomed.proc.returncode == -signal.SIGKILL
    assert open_intents(tmp_path) == 1
    again = DaemonProcess(tmp_path)
    daemons.append(again)
    finished = again.started().wait_event("intent.finished")
    again.stop()
    assert finished["src"] == str(tmp_path / "inbox" / "c.jpg")
    assert ledger_rows(tmp_path) == [
        (
            str(tmp_path / "inbox" / "c.jpg"),
            "done",
            "deleted" if policy == "delete" else str(tmp_path / "outbox" / "done" / "c.jpg"),
        )
    ]
    assert sorted(p.name for p in (tmp_path / "outbox").rglob("*") if p.is_file()) == (
        ["c.png"] if policy == "delete" else ["c.jpg", "c.png"]
    )
    assert not (tmp_path / "inbox" / "c.jpg").exists() and open_intents(tmp_path) == 0
    assert not temps(tmp_path)


# 15. A cross-filesystem move whose unlink fails -------------------------------------------------


def test_a_cross_filesystem_move_whose_unlink_fails_reports_it_and_never_copies_twice(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """Outputs on tmpfs, the inbox immutable (unlink refused even to root): the error named is the
    unlink's; once it may, the daemon unlinks the source only: one copy in done/, no done/x-1.jpg."""
    shm = Path("/dev/shm") / f"hotfolder-{os.getpid()}-{time.monotonic_ns()}"
    shm.mkdir()
    try:
        write_config(tmp_path, rule("move", 'original_path = "done/{name}"'))
        config = (
            (tmp_path / "hotfolder.toml")
            .read_text()
            .replace('output_root = "outbox"', f'output_root = "{shm}"')
        )
        (tmp_path / "hotfolder.toml").write_text(config)
        (tmp_path / "inbox").mkdir()
        src = tmp_path / "inbox" / "x.jpg"
        shutil.copy(corpus("canon_eos_7d.jpg"), src)
        if subprocess.run(
            ["chattr", "+i", str(tmp_path / "inbox")], capture_output=True, check=False
        ).returncode:
            pytest.skip("chattr +i is not available on this filesystem")
        try:
            d = DaemonProcess(tmp_path)
            daemons.append(d)
            failed = d.started().wait_event("commit.incomplete")
            assert str(src) in str(failed["error"]) and "Operation not permitted" in str(failed["error"])
            d.stop()
        finally:
            subprocess.run(["chattr", "-i", str(tmp_path / "inbox")], check=True)
        again = DaemonProcess(tmp_path)
        daemons.append(again)
        again.started().wait_event("intent.finished")
        again.stop()
        assert not src.exists()
        assert sorted(p.name for p in (shm / "done").iterdir()) == ["x.jpg"]
        assert sha(shm / "done" / "x.jpg") == sha(corpus("canon_eos_7d.jpg"))
    finally:
        shutil.rmtree(shm, ignore_errors=True)


# 16. Empty files -------------------------------------------------------------------------------


def test_a_touched_file_is_not_an_arrival_until_it_has_content(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """`touch` then content a moment later: processed once it holds still, never quarantined."""
    write_config(tmp_path, rule())
    (tmp_path / "inbox").mkdir()
    d = DaemonProcess(tmp_path)
    daemons.append(d)
    d.started()
    target = tmp_path / "inbox" / "later.jpg"
    target.touch()
    time.sleep(1.5)  # the writer's pause before it writes: a real uploader's gap, not a wait for the daemon
    assert not (tmp_path / "quarantine").exists()
    shutil.copy(corpus("canon_eos_7d.jpg"), target)
    d.wait_event("job.done", src=str(target))
    d.stop()
    assert not (tmp_path / "quarantine").exists()


# 17. check -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "extra", "says"),
    [
        pytest.param(
            rule(match='watch = "nosuchwatch"'),
            "",
            "rules/main.toml:6: rule 'r': key 'match.watch'",
            id="watch",
        ),
        pytest.param(
            rule(outputs='[[rule.output]]\nformat = "png"\npath = "{taken:%Q}/{stem}.png"\n'),
            "",
            "%Q",
            id="date",
        ),
    ],
)
def test_check_refuses_what_cannot_work(tmp_path: Path, rules: str, extra: str, says: str) -> None:
    write_config(tmp_path, rules, extra)
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2 and says in result.stderr, result.stderr


def test_check_refuses_a_watch_that_is_a_file(tmp_path: Path) -> None:
    write_config(tmp_path, rule())
    (tmp_path / "inbox").write_text("a file, not a folder")
    result = run_cli("check", cwd=tmp_path)
    assert (
        result.returncode == 2 and "key 'watch[0].path'" in result.stderr and "not a folder" in result.stderr
    )


def test_check_warns_of_what_is_legal_but_unwise(tmp_path: Path) -> None:
    write_config(tmp_path, rule(), extra="rescan_interval = 0.001\n")
    config = tmp_path / "hotfolder.toml"
    config.write_text(config.read_text().replace("workers = 2", "workers = 100000"))
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        "warning:" in result.stderr
        and "key 'workers'" in result.stderr
        and "key 'rescan_interval'" in result.stderr
    )


# 18. The command line --------------------------------------------------------------------------


def test_retry_errors_for_what_is_not_in_quarantine(tmp_path: Path) -> None:
    write_config(tmp_path, rule())
    (tmp_path / "in").mkdir()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "in" / "ok.bmp")
    run_cli("process", str(tmp_path / "in"), cwd=tmp_path)
    result = run_cli("retry", str(tmp_path / "in" / "ok.bmp"), cwd=tmp_path)
    assert result.returncode == 2 and "is not a quarantined input" in result.stderr
    result = run_cli("retry", "--all", "extra", cwd=tmp_path)
    assert result.returncode == 2 and "takes no paths" in result.stderr


def test_explain_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`explain ... | head -c 1`: no BrokenPipe traceback."""
    command = f"{sys.executable} -m hotfolder explain {corpus('canon_eos_7d.jpg')} | head -c 1"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    run = subprocess.run(
        command, shell=True, cwd=tmp_path, capture_output=True, text=True, env=env, check=False
    )
    assert run.stdout == "f" and "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr


def test_a_bomb_is_refused_in_the_words_of_max_image_pixels(tmp_path: Path) -> None:
    write_config(tmp_path, rule(), extra="max_image_pixels = 10000\n")
    (tmp_path / "in").mkdir()
    Image.new("RGB", (200, 200), "navy").save(tmp_path / "in" / "big.png")  # 40,000 pixels: 4x the limit
    assert run_cli("process", str(tmp_path / "in"), cwd=tmp_path).returncode == 1
    note = json.loads((tmp_path / "quarantine" / "big.png.json").read_text())
    assert "max_image_pixels (10,000)" in note["error"] and "2 *" not in note["error"]


# Issue 29: a commit that fails before its first rename ------------------------------------------


def test_a_commit_that_fails_before_its_first_rename_leaves_output_root_as_it_was(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """The worker stages a PNG in output_root and a JPEG in web/2026/, folders it makes; the commit then
    finds a plain file where the {seq} folder must go (it writes through no non-folder). The input is
    quarantined and output_root holds exactly what it held: no temp, no empty web/, no open intent."""
    outputs = (
        '[[rule.output]]\nformat = "png"\npath = "batch-{seq}/{stem}.png"\n'
        '[[rule.output]]\nformat = "jpeg"\npath = "web/2026/{stem}.jpg"\n'
    )
    write_config(tmp_path, rule("keep", outputs=outputs))
    (tmp_path / "inbox").mkdir()
    (tmp_path / "outbox").mkdir()
    (tmp_path / "outbox" / "batch-1").write_text("a note the user keeps here\n")
    before = sorted(p.relative_to(tmp_path / "outbox") for p in (tmp_path / "outbox").rglob("*"))
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "h.bmp")
    d = DaemonProcess(tmp_path)
    daemons.append(d)
    parked = d.started().wait_event("job.quarantined")
    d.stop()
    assert "batch-1" in str(parked["error"]) and "not a folder" in str(parked["error"])
    assert sorted(p.relative_to(tmp_path / "outbox") for p in (tmp_path / "outbox").rglob("*")) == before
    assert open_intents(tmp_path) == 0


def test_copies_arriving_together_leave_one_folder(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """Issue 29: four byte-identical copies land at once, each output in a folder of its own name. Two
    workers stage copies side by side; the commit finds all but one duplicates. Only the first's folder
    is left in output_root, no empty folder for the others and no temp."""
    write_config(tmp_path, rule("keep", outputs=PNG.replace('"{stem}.png"', '"{stem}/{stem}.png"')))
    (tmp_path / "inbox").mkdir()
    d = DaemonProcess(tmp_path)
    daemons.append(d)
    d.started()
    # Written beside the inbox and moved in: a name in the inbox (even a dotted one) may be taken as an
    # input while the others are still copied (it was, under load: five jobs for four copies).
    (tmp_path / "staging").mkdir()
    for n in range(4):
        shutil.copy(corpus("hopper.bmp"), tmp_path / "staging" / f"c{n}.bmp")
    for n in range(4):
        (tmp_path / "staging" / f"c{n}.bmp").rename(tmp_path / "inbox" / f"c{n}.bmp")
    d.wait(lambda: len(d.named("job.done")) + len(d.named("file.duplicate")) == 4, what="four copies")
    d.stop()
    (done,) = d.named("job.done")
    stem = Path(str(done["src"])).stem
    assert sorted(str(p.relative_to(tmp_path / "outbox")) for p in (tmp_path / "outbox").rglob("*")) == [
        stem,
        f"{stem}/{stem}.png",
    ]
