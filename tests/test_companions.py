"""Companion files: a picture's sidecars, its RAW+JPEG twin and its Live Photo video travel with it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import rawpy
from PIL import Image

from conftest import ROOT, DaemonProcess, run_cli, write_config
from hotfolder.decide import companions as pairing
from hotfolder.errors import ConfigError
from hotfolder.settings.companions import Companions
from hotfolder.settings.rules import load_rules

CAMERA = ROOT.parent / "shared" / "camera"
LISTING = ["IMG_1.CR2", "IMG_1.cr2.XMP", "IMG_1.xmp", "IMG_1.JPG", "IMG_1.MOV", "lone.xmp", "MVI_2.MOV",
           "MVI_2.THM", "IMG_9_HEVC.MOV", "IMG_9.HEIC", "IMG_9.aae", "holiday.png"]  # fmt: skip

GROUP_RULES = """
[[rule]]
name = "camera"
original = "{policy}"
{where}
[rule.match]
glob = ["**/*"]
formats = ["raw", "jpeg", "heif", "png"]
[rule.companions]
wait = 3
[[rule.output]]
format = "jpeg"
max_edge = 256
path = "web/{{stem}}.jpg"
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_groups_are_found_by_name_case_insensitively_with_each_companion_keeping_its_suffix() -> None:
    """{name}.xmp and {stem}.xmp both belong to the RAW, so does its JPEG twin and its .MOV candidate;
    any case matches; a THM beside a video, a lone sidecar and a plain picture belong to no picture."""
    spec = Companions()
    members = {m.name: (m.role, m.suffix) for m in pairing.group_of("IMG_1.CR2", LISTING, spec)}
    assert members == {"IMG_1.cr2.XMP": ("sidecar", ".cr2.XMP"), "IMG_1.xmp": ("sidecar", ".xmp"),
                       "IMG_1.JPG": ("twin", ".JPG"), "IMG_1.MOV": ("video", ".MOV")}  # fmt: skip
    holders = {n: pairing.holder(n, LISTING, spec) for n in LISTING}
    assert holders["IMG_1.JPG"] == holders["IMG_1.xmp"] == holders["IMG_1.cr2.XMP"] == "IMG_1.CR2"
    assert holders["IMG_9_HEVC.MOV"] == holders["IMG_9.aae"] == "IMG_9.HEIC"
    assert holders["IMG_1.CR2"] is holders["holiday.png"] is holders["lone.xmp"] is None
    assert pairing.looks_like_companion("lone.xmp", spec)
    assert not pairing.looks_like_companion("holiday.png", spec)
    separate = Companions(raw_jpeg="separate")
    assert pairing.holder("IMG_1.JPG", LISTING, separate) is None  # Lightroom's "treat as separate photos"
    jpeg_first = Companions(primary="jpeg")
    assert pairing.holder("IMG_1.CR2", LISTING, jpeg_first) == "IMG_1.JPG"


def test_a_live_photo_video_joins_only_when_the_identifiers_agree() -> None:
    """train.jpg's MakerNote and train.mov's QuickTime metadata carry the same content identifier;
    another identifier, or a video without one taken minutes apart, is not its Live Photo."""
    still = Image.open(CAMERA / "train.jpg").getexif().get_ifd(0x8769).get(0x927C)
    still_id = pairing.apple_content_id(still)
    tags = pairing.quicktime_tags((CAMERA / "train.mov").read_bytes())
    assert still_id and still_id == pairing.video_content_id(tags) == "E905E6C6-C747-4805-942F-9904A0281F02"
    assert pairing.live_pair(still_id, None, tags)[0]
    assert not pairing.live_pair("0000-OTHER", None, tags)[0]
    taken = pairing.video_taken(tags)
    assert taken is not None
    no_id = {k: v for k, v in tags.items() if b"identifier" not in k}
    assert pairing.live_pair(None, taken.replace(tzinfo=None), no_id)[0]  # local times, 0 s apart
    far = taken.replace(tzinfo=None, minute=(taken.minute + 5) % 60)
    assert not pairing.live_pair(None, far, no_id)[0]


def test_an_unknown_companions_key_is_an_error_naming_file_rule_key_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(GROUP_RULES.format(policy="keep", where="").replace("wait = 3", "wait = 3\nwiat = 4"))
    with pytest.raises(ConfigError) as caught:
        load_rules([rules])
    line = rules.read_text().splitlines().index("wiat = 4") + 1
    said = f"rules.toml:{line}: rule 'camera': key 'wiat': unknown key in [rule.companions]"
    assert said in str(caught.value)


def _camera_folder(inbox: Path) -> dict[str, str]:
    """A RAW with its {stem}.xmp sidecar and its JPEG twin (the DNG's own preview), an iPhone Live Photo
    pair, an orphan sidecar; returns each file's SHA-256."""
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy(CAMERA / "canon_eos_6d.dng", inbox / "IMG_0001.dng")
    shutil.copy(CAMERA / "canon_eos_6d.xmp", inbox / "IMG_0001.XMP")
    with rawpy.imread(str(CAMERA / "canon_eos_6d.dng")) as raw:
        (inbox / "IMG_0001.jpg").write_bytes(raw.extract_thumb().data)
    shutil.copy(CAMERA / "train.jpg", inbox / "train.jpg")
    shutil.copy(CAMERA / "train.mov", inbox / "train.mov")
    shutil.copy(CAMERA / "iphone_7.xmp", inbox / "lonely.xmp")
    return {p.name: _sha(p) for p in inbox.iterdir()}


def test_process_moves_each_group_together_and_makes_outputs_only_from_pictures(tmp_path: Path) -> None:
    """`process` with original = "move": the RAW, its sidecar and its JPEG twin go together into the
    archive, the Live Photo still with its video; the JPEG twin makes no output of its own; the
    orphan sidecar stays, logged companion.orphan. Bytes unchanged."""
    sha = _camera_folder(tmp_path / "inbox")
    write_config(tmp_path, GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"'))
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    archive = tmp_path / "outbox" / "archive"
    moved = {p.name: _sha(p) for p in archive.iterdir()}
    assert moved == {k: v for k, v in sha.items() if k != "lonely.xmp"}
    assert sorted(p.name for p in (tmp_path / "outbox" / "web").iterdir()) == ["IMG_0001.jpg", "train.jpg"]
    assert [p.name for p in (tmp_path / "inbox").iterdir()] == ["lonely.xmp"]
    events = [line for line in done.stdout.splitlines() if '"companion.' in line]
    assert sum('"companion.moved"' in e for e in events) == 3
    assert any('"companion.orphan"' in e and "lonely.xmp" in e for e in events)
    assert not any('"job.done"' in line and "IMG_0001.jpg" in line for line in done.stdout.splitlines())


def test_without_a_companions_table_sidecars_stay_behind_as_today(tmp_path: Path) -> None:
    _camera_folder(tmp_path / "inbox")
    rules = GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"')
    write_config(tmp_path, rules.replace("[rule.companions]\nwait = 3\n", ""))
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    left = sorted(p.name for p in (tmp_path / "inbox").iterdir())
    assert left == ["IMG_0001.XMP", "lonely.xmp", "train.mov"]
    assert "companion." not in done.stdout


def test_a_deleted_picture_takes_its_companions_and_a_renamed_group_keeps_each_suffix(tmp_path: Path) -> None:
    """The running daemon: a RAW with a darktable-style {name}.xmp, a {stem}.xmp and a twin, named into a
    folder where the picture's name is free but its sidecar's is not: the whole group takes the next
    number. Then, with original = "delete", a second group is deleted with its picture."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_config(tmp_path, GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"'))
    (tmp_path / "outbox" / "archive").mkdir(parents=True)
    (tmp_path / "outbox" / "archive" / "IMG_0001.xmp").write_text("someone else's")
    daemon = DaemonProcess(tmp_path).started()
    try:
        staging = tmp_path / "staging"
        staging.mkdir()
        shutil.copy(CAMERA / "canon_eos_6d.dng", staging / "IMG_0001.dng")
        shutil.copy(CAMERA / "canon_eos_6d.xmp", staging / "IMG_0001.dng.xmp")
        shutil.copy(CAMERA / "canon_eos_6d.xmp", staging / "IMG_0001.xmp")
        for p in staging.iterdir():
            p.rename(inbox / p.name)
        daemon.wait_event("job.done")
        daemon.wait(lambda: len(daemon.named("companion.moved")) == 2, what="two companions moved")
    finally:
        daemon.proc.terminate()
        daemon.proc.wait(timeout=30)
    archive = sorted(p.name for p in (tmp_path / "outbox" / "archive").iterdir())
    assert archive == ["IMG_0001-1.dng", "IMG_0001-1.dng.xmp", "IMG_0001-1.xmp", "IMG_0001.xmp"]
    assert (tmp_path / "outbox" / "archive" / "IMG_0001.xmp").read_text() == "someone else's"
    assert not list(inbox.iterdir())


def test_delete_takes_the_companions_the_worker_read(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    _camera_folder(inbox)
    write_config(tmp_path, GROUP_RULES.format(policy="delete", where=""))
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in inbox.iterdir()) == ["lonely.xmp"]
    assert done.stdout.count('"companion.deleted"') == 3


def test_kill_9_between_two_companions_is_finished_at_the_next_start(tmp_path: Path) -> None:
    """The daemon kills itself after the first of two companions moved; at the next start the intent is
    finished: the group ends complete in the archive, nothing left in the inbox, nothing doubled."""
    inbox = tmp_path / "inbox"
    _camera_folder(inbox)
    (inbox / "train.jpg").unlink()
    (inbox / "train.mov").unlink()
    (inbox / "lonely.xmp").unlink()
    sha = {p.name: _sha(p) for p in inbox.iterdir()}
    write_config(tmp_path, GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"'))
    first = DaemonProcess(tmp_path, env={"HOTFOLDER_TEST_KILL_AT": "between-companions:1"})
    first.proc.wait(timeout=120)
    assert first.proc.returncode == -9
    archive = tmp_path / "outbox" / "archive"
    assert len(list(inbox.iterdir())) == 1 and len(list(archive.iterdir())) == 2  # split by the kill
    second = DaemonProcess(tmp_path).started()
    try:
        second.wait_event("companion.moved")
    finally:
        second.proc.terminate()
        second.proc.wait(timeout=30)
    assert {p.name: _sha(p) for p in archive.iterdir()} == sha
    assert not list(inbox.iterdir())
    assert len(list((tmp_path / "outbox" / "web").iterdir())) == 1
