"""Companion files: a picture's sidecars, its RAW+JPEG twin and its Live Photo video travel with it."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import rawpy
from PIL import Image

from conftest import DaemonProcess, camera, exiftool, run_cli, write_config
from hotfolder.decide import companions as pairing
from hotfolder.errors import ConfigError
from hotfolder.settings.companions import Companions
from hotfolder.settings.rules import load_rules

LISTING = [
    "IMG_1.CR2",
    "IMG_1.cr2.XMP",
    "IMG_1.xmp",
    "IMG_1.JPG",
    "IMG_1.MOV",
    "lone.xmp",
    "MVI_2.MOV",
    "MVI_2.THM",
    "IMG_9_HEVC.MOV",
    "IMG_9.HEIC",
    "IMG_9.aae",
    "holiday.png",
]

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
    assert members == {
        "IMG_1.cr2.XMP": ("sidecar", ".cr2.XMP"),
        "IMG_1.xmp": ("sidecar", ".xmp"),
        "IMG_1.JPG": ("twin", ".JPG"),
        "IMG_1.MOV": ("video", ".MOV"),
    }
    holders = {n: pairing.holder(n, LISTING, spec) for n in LISTING}
    assert holders["IMG_1.JPG"] == holders["IMG_1.xmp"] == holders["IMG_1.cr2.XMP"] == "IMG_1.CR2"
    assert holders["IMG_9_HEVC.MOV"] == holders["IMG_9.aae"] == "IMG_9.HEIC"
    assert holders["IMG_1.CR2"] is holders["holiday.png"] is holders["lone.xmp"] is None
    assert pairing.looks_like_companion("lone.xmp", spec)
    assert not pairing.looks_like_companion("holiday.png", spec)
    separate = Companions(raw_jpeg="separate")
    assert pairing.holder("IMG_1.JPG", LISTING, separate) is None  # Lightroom's "treat as separate photos"
    # Two pictures of one stem: the {stem} sidecar belongs to exactly one (the RAW), {name} to its own.
    assert pairing.holder("IMG_1.xmp", LISTING, separate) == "IMG_1.CR2"
    jpeg_group = {m.name for m in pairing.group_of("IMG_1.JPG", LISTING, separate)}
    raw_group = {m.name for m in pairing.group_of("IMG_1.CR2", LISTING, separate)}
    assert "IMG_1.xmp" not in jpeg_group and "IMG_1.xmp" in raw_group
    # ... unless the sidecar says it is the JPEG's (Lightroom's photoshop:SidecarForExtension).
    assert pairing.sidecar_for(b'<x photoshop:SidecarForExtension="JPG"/>') == "JPG"
    assert pairing.holder("IMG_1.xmp", LISTING, separate, claims="JPG") == "IMG_1.JPG"
    assert "IMG_1.xmp" in {m.name for m in pairing.group_of("IMG_1.JPG", LISTING, separate, "JPG")}
    jpeg_first = Companions(primary="jpeg")
    assert pairing.holder("IMG_1.CR2", LISTING, jpeg_first) == "IMG_1.JPG"


def test_a_live_photo_video_joins_only_when_the_identifiers_agree() -> None:
    """train.jpg's MakerNote and train.mov's QuickTime metadata carry the same content identifier;
    another identifier, or a video without one taken minutes apart, is not its Live Photo."""
    still = Image.open(camera("train.jpg")).getexif().get_ifd(0x8769).get(0x927C)
    still_id = pairing.apple_content_id(still)
    tags = pairing.quicktime_tags((camera("train.mov")).read_bytes())
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
    shutil.copy(camera("canon_eos_6d.dng"), inbox / "IMG_0001.dng")
    shutil.copy(camera("canon_eos_6d.xmp"), inbox / "IMG_0001.XMP")
    with rawpy.imread(str(camera("canon_eos_6d.dng"))) as raw:
        (inbox / "IMG_0001.jpg").write_bytes(raw.extract_thumb().data)
    shutil.copy(camera("train.jpg"), inbox / "train.jpg")
    shutil.copy(camera("train.mov"), inbox / "train.mov")
    shutil.copy(camera("iphone_7.xmp"), inbox / "lonely.xmp")
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
        shutil.copy(camera("canon_eos_6d.dng"), staging / "IMG_0001.dng")
        shutil.copy(camera("canon_eos_6d.xmp"), staging / "IMG_0001.dng.xmp")
        shutil.copy(camera("canon_eos_6d.xmp"), staging / "IMG_0001.xmp")
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


SIDECAR = """<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>
<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>
 <rdf:Description rdf:about='' xmlns:xmp='http://ns.adobe.com/xap/1.0/' xmp:Rating='4'
  xmlns:crs='http://ns.adobe.com/camera-raw-settings/1.0/' crs:Exposure2012='+1.50'
  xmlns:exif='http://ns.adobe.com/exif/1.0/' exif:GPSLatitude='52,12.58N'
  xmlns:photoshop='http://ns.adobe.com/photoshop/1.0/' photoshop:City='Ely'>
  <dc:title xmlns:dc='http://purl.org/dc/elements/1.1/'><rdf:Alt>
   <rdf:li xml:lang='x-default'>Fen at dawn</rdf:li></rdf:Alt></dc:title>
  <dc:subject xmlns:dc='http://purl.org/dc/elements/1.1/'><rdf:Bag><rdf:li>fen</rdf:li><rdf:li>dawn</rdf:li>
   </rdf:Bag></dc:subject>
  <dc:creator xmlns:dc='http://purl.org/dc/elements/1.1/'><rdf:Seq><rdf:li>Sidecar Author</rdf:li></rdf:Seq>
   </dc:creator>
 </rdf:Description>
</rdf:RDF></x:xmpmeta><?xpacket end='w'?>"""


def test_outputs_merge_the_sidecars_descriptive_xmp_and_nothing_else(tmp_path: Path) -> None:
    """Judged by exiftool: the web JPEG carries the sidecar's title, keywords and rating over the
    picture's own XMP, not its Camera Raw settings nor its location (GPS, nor the sidecar's city: a
    place name goes with GPS on a web output); `sidecar_xmp = "ignore"` leaves
    it out; a stamp wins over the sidecar; the sidecar itself is moved unchanged."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(camera("iphone_7.heic"), inbox / "IMG_7.HEIC")  # its own XMP and EXIF
    (inbox / "IMG_7.HEIC.xmp").write_text(SIDECAR)  # {name}.xmp: this very file's
    (inbox / "IMG_7.xmp").write_text(SIDECAR.replace("Fen at dawn", "the stem's sidecar"))
    sha = {p.name: _sha(p) for p in inbox.iterdir()}
    rules = GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"')
    rules = rules.replace("max_edge = 256\n", 'max_edge = 256\nxmp = "keep"\n')  # the web profile strips XMP
    rules += (
        '[[rule.output]]\nformat = "jpeg"\nxmp = "keep"\nsidecar_xmp = "ignore"\n'
        'path = "plain/{stem}.jpg"\n[[rule.output]]\nformat = "jpeg"\nxmp = "keep"\n'
        'stamp = { artist = "Stamp Wins" }\npath = "stamped/{stem}.jpg"\n'
    )
    write_config(tmp_path, rules)
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    web = exiftool(tmp_path / "outbox" / "web" / "IMG_7.jpg")
    assert web["XMP:XMP-dc:Title"] == "Fen at dawn"  # {name}.xmp before {stem}.xmp
    assert web["XMP:XMP-dc:Subject"] == ["fen", "dawn"] and web["XMP:XMP-xmp:Rating"] == 4
    assert "XMP:XMP-photoshop:City" not in web and web["XMP:XMP-dc:Creator"] == "Sidecar Author"
    assert not any(k.startswith("XMP:XMP-crs") for k in web)
    assert "XMP:XMP-exif:GPSLatitude" not in web
    plain = exiftool(tmp_path / "outbox" / "plain" / "IMG_7.jpg")
    assert "XMP:XMP-dc:Subject" not in plain and "XMP:XMP-xmp:Rating" not in plain
    stamped = exiftool(tmp_path / "outbox" / "stamped" / "IMG_7.jpg")
    assert stamped["XMP:XMP-dc:Creator"] == "Stamp Wins" and stamped["XMP:XMP-dc:Subject"] == ["fen", "dawn"]
    archive = tmp_path / "outbox" / "archive"  # {ext} is lower case; each companion keeps its suffix
    assert {p.name: _sha(p) for p in archive.iterdir()} == {
        k.replace(".HEIC", ".heic", k == "IMG_7.HEIC"): v for k, v in sha.items()
    }


def test_a_late_sidecar_follows_its_moved_picture_within_late_and_not_after(tmp_path: Path) -> None:
    """The running daemon moved IMG_0001.dng to the archive; its sidecar arriving afterwards follows
    it there (found through the ledger). A second picture's sidecar arriving "an hour" later (the
    ledger's clock set back an hour, past late = 600) stays, companion.orphan with the reason; so
    does the sidecar of a picture that was deleted (hotfolder deletes only what it read in a group)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rules = GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"')
    write_config(tmp_path, rules.replace("wait = 3", "wait = 3\nlate = 600"))
    daemon = DaemonProcess(tmp_path).started()
    try:
        for n, name in enumerate(("IMG_0001.dng", "IMG_0002.dng")):  # different bytes: not duplicates
            (tmp_path / name).write_bytes((camera("canon_eos_6d.dng")).read_bytes() + b"\x00" * n)
            (tmp_path / name).rename(inbox / name)
        daemon.wait(lambda: len(daemon.named("job.done")) == 2, what="both pictures done")
        with sqlite3.connect(tmp_path / "state" / "ledger.sqlite3") as db:  # IMG_0002 was done an hour ago
            db.execute(
                "UPDATE inputs SET updated = ? WHERE path LIKE '%IMG_0002.dng'",
                ((datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds"),),
            )
        shutil.copy(camera("canon_eos_6d.xmp"), tmp_path / "IMG_0001.xmp")
        (tmp_path / "IMG_0001.xmp").rename(inbox / "IMG_0001.xmp")
        moved = daemon.wait_event("companion.moved", late=True)
        shutil.copy(camera("canon_eos_6d.xmp"), tmp_path / "IMG_0002.xmp")
        (tmp_path / "IMG_0002.xmp").rename(inbox / "IMG_0002.xmp")
        orphan = daemon.wait_event("companion.orphan")
    finally:
        daemon.proc.terminate()
        daemon.proc.wait(timeout=30)
    archive = tmp_path / "outbox" / "archive"
    assert moved["dst"] == str(archive / "IMG_0001.xmp") and _sha(archive / "IMG_0001.xmp") == _sha(
        camera("canon_eos_6d.xmp")
    )
    assert "IMG_0002.dng was moved" in str(orphan["error"]) and "late = 600" in str(orphan["error"])
    assert [p.name for p in inbox.iterdir()] == ["IMG_0002.xmp"]
    status = run_cli("status", cwd=tmp_path)
    assert "groups: 0 pictures done with their companions, 1 orphans" in status.stdout


def test_a_quarantined_pictures_companions_stay_and_its_note_names_them(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "IMG_5.jpg").write_bytes((camera("IMG_4120.JPG")).read_bytes()[:20000])  # truncated
    (inbox / "IMG_5.xmp").write_text(SIDECAR)
    (inbox / "IMG_5.AAE").write_bytes((camera("IMG_4120.AAE")).read_bytes())
    write_config(tmp_path, GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"'))
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode != 0 and "quarantined 1" in done.stderr
    note = json.loads((tmp_path / "quarantine" / "IMG_5.jpg.json").read_text())
    assert note["companions"] == [str(inbox / "IMG_5.AAE"), str(inbox / "IMG_5.xmp")]
    assert sorted(p.name for p in inbox.iterdir()) == ["IMG_5.AAE", "IMG_5.xmp"]  # never quarantined
    back = run_cli("retry", "--all", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert sorted(p.name for p in inbox.iterdir()) == [
        "IMG_5.AAE",
        "IMG_5.jpg",
        "IMG_5.xmp",
    ]  # together again


def test_group_and_paired_name_outputs_and_explain_shows_the_group(tmp_path: Path) -> None:
    """{group} and {paired} in a path; explain names the primary, each member and why it belongs, and
    says a companion is never processed on its own."""
    _camera_folder(tmp_path / "inbox")
    rules = GROUP_RULES.format(policy="keep", where="").replace("web/{stem}.jpg", "web/{group}-{paired}.jpg")
    write_config(tmp_path, rules)
    shown = run_cli("explain", "inbox/IMG_0001.dng", cwd=tmp_path).stdout
    assert "group 'IMG_0001': IMG_0001.dng is the primary" in shown
    assert "IMG_0001.XMP (sidecar" in shown and "IMG_0001.jpg (twin" in shown
    assert "web/IMG_0001-true.jpg" in shown
    live = run_cli("explain", "inbox/train.jpg", cwd=tmp_path).stdout
    assert "train.mov (video" in live and "content identifiers agree" in live
    held = run_cli("explain", "inbox/IMG_0001.jpg", cwd=tmp_path).stdout
    assert "a companion of IMG_0001.dng: never processed on its own" in held
    done = run_cli("process", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    made = sorted(p.name for p in (tmp_path / "outbox" / "web").iterdir())
    assert made == ["IMG_0001-true.jpg", "train-true.jpg"]


def test_check_warns_when_a_rule_would_rename_an_apple_edit_set(tmp_path: Path) -> None:
    renaming = GROUP_RULES.format(
        policy="move", where='original_path = "archive/{taken:%Y%m%d}-{hash8}.{ext}"'
    )
    write_config(tmp_path, renaming)
    said = run_cli("check", cwd=tmp_path)
    assert said.returncode == 0 and "Apple Photos" in said.stderr and "original_path" in said.stderr
    write_config(tmp_path, GROUP_RULES.format(policy="move", where='original_path = "archive/{name}"'))
    assert "Apple Photos" not in run_cli("check", cwd=tmp_path).stderr


def test_a_copy_output_with_companions_takes_the_group_along_on_its_own_stem(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    sha = _camera_folder(inbox)
    rules = GROUP_RULES.format(policy="keep", where="") + (
        '[[rule.output]]\nformat = "copy"\nwith_companions = true\npath = "backup/{taken:%Y}-{stem}.{ext}"\n'
    )
    write_config(tmp_path, rules)
    done = run_cli("process", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    backup = {p.name: _sha(p) for p in (tmp_path / "outbox" / "backup").iterdir()}
    assert backup == {
        "2019-IMG_0001.dng": sha["IMG_0001.dng"],
        "2019-IMG_0001.XMP": sha["IMG_0001.XMP"],
        "2019-IMG_0001.jpg": sha["IMG_0001.jpg"],
        "2021-train.jpg": sha["train.jpg"],
        "2021-train.mov": sha["train.mov"],
    }
    assert sorted(p.name for p in inbox.iterdir()) == sorted(sha)  # keep: every original stays


def test_a_motion_photos_video_is_said_dropped_by_a_re_encode(tmp_path: Path) -> None:
    """A Google motion photo (MotionPhoto in XMP, the video appended): the web JPEG drops the video and
    says so; a copy output keeps the file whole."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description rdf:about="" xmlns:GCamera="http://ns.google.com/photos/1.0/camera/"'
        b' GCamera:MotionPhoto="1"/></rdf:RDF></x:xmpmeta>'
    )
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buf, "JPEG", xmp=xmp)
    picture = buf.getvalue() + (camera("train.mov")).read_bytes()[:4096]  # the appended video
    (inbox / "PXL_1.jpg").write_bytes(picture)
    rules = (
        GROUP_RULES.format(policy="keep", where="") + '[[rule.output]]\nformat = "copy"\npath = "c/{name}"\n'
    )
    write_config(tmp_path, rules)
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert any('"auxiliary.dropped"' in line and "motion photo" in line for line in done.stdout.splitlines())
    assert (tmp_path / "outbox" / "c" / "PXL_1.jpg").read_bytes() == picture


def _picture_beside_a_download(tmp_path: Path, stem: str, *, wait: float) -> DaemonProcess:
    """The running daemon (settle 0.5 s, a move rule with this `wait`), and a DNG moved into its inbox
    while a same-stem sidecar is still downloading there (`<stem>.xmp.part`, unfinished)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rules = GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"')
    write_config(tmp_path, rules.replace("wait = 3", f"wait = {wait}"), extra="settle = 0.5\n")
    daemon = DaemonProcess(tmp_path).started()
    (inbox / f"{stem}.xmp.part").write_bytes((camera("canon_eos_6d.xmp")).read_bytes()[:100])
    shutil.copy(camera("canon_eos_6d.dng"), tmp_path / f"{stem}.dng")
    (tmp_path / f"{stem}.dng").rename(inbox / f"{stem}.dng")
    return daemon


def test_a_sidecar_written_just_after_its_picture_moves_with_it_in_one_commit(tmp_path: Path) -> None:
    """The running daemon (settle 0.5 s): the picture lands while a same-stem sidecar is still being
    downloaded (IMG_0003.xmp.part). The picture waits for its stem to be quiet (group.waiting), past
    its own settle, so the finished sidecar goes in the picture's own commit, not as a late one."""
    inbox = tmp_path / "inbox"
    daemon = _picture_beside_a_download(tmp_path, "IMG_0003", wait=20)
    try:
        daemon.wait_event("group.waiting", src=inbox / "IMG_0003.dng")
        assert not daemon.named("job.done")  # held past its settle while the download runs
        (inbox / "IMG_0003.xmp.part").write_bytes((camera("canon_eos_6d.xmp")).read_bytes())
        (inbox / "IMG_0003.xmp.part").rename(inbox / "IMG_0003.xmp")
        moved = daemon.wait_event("companion.moved")
        done = daemon.wait_event("job.done")
    finally:
        daemon.proc.terminate()
        daemon.proc.wait(timeout=30)
    assert "late" not in moved and moved["picture"] == str(inbox / "IMG_0003.dng")
    assert done["original"] == str(tmp_path / "outbox" / "archive" / "IMG_0003.dng")
    archived = sorted(p.name for p in (tmp_path / "outbox" / "archive").iterdir())
    assert archived == ["IMG_0003.dng", "IMG_0003.xmp"]


def test_a_picture_waits_at_most_wait_for_a_stem_that_never_goes_quiet(tmp_path: Path) -> None:
    """A same-stem download that never finishes: the picture goes after `wait` with what is there,
    and the unfinished file is left alone."""
    inbox = tmp_path / "inbox"
    daemon = _picture_beside_a_download(tmp_path, "IMG_0004", wait=1.5)
    try:
        waiting = daemon.wait_event("group.waiting")
        done = daemon.wait_event("job.done")
    finally:
        daemon.proc.terminate()
        daemon.proc.wait(timeout=30)
    waited = datetime.fromisoformat(str(done["timestamp"])) - datetime.fromisoformat(
        str(waiting["timestamp"])
    )
    assert timedelta(seconds=1.2) <= waited <= timedelta(seconds=10)  # waited its `wait`, then went
    assert [p.name for p in inbox.iterdir()] == ["IMG_0004.xmp.part"]


def test_a_video_that_is_not_the_pictures_live_photo_never_follows_it(tmp_path: Path) -> None:
    """IMG_0009.mov beside a DNG: its QuickTime identifier has no match in the DNG, so it is not
    joined when the DNG is moved; looked at again later, it stays (a video never follows by name)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(camera("canon_eos_6d.dng"), inbox / "IMG_0009.dng")
    shutil.copy(camera("train.mov"), inbox / "IMG_0009.mov")
    write_config(tmp_path, GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"'))
    first = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert '"companion.unpaired"' in first.stdout
    again = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert '"companion.orphan"' in again.stdout and "Live Photo identifiers" in again.stdout
    assert [p.name for p in inbox.iterdir()] == ["IMG_0009.mov"]
    assert [p.name for p in (tmp_path / "outbox" / "archive").iterdir()] == ["IMG_0009.dng"]


def test_sidecars_that_differ_only_in_case_both_travel(tmp_path: Path) -> None:
    """Issue 28, case 8: `IMG_2.xmp` and `IMG_2.XMP` (and `IMG_2.Xmp`) beside the picture are all its
    companions: each moves with it keeping its own name, none is left in the inbox, `status` counts
    no orphan (one used to stay behind with no event)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(camera("colorchart.dng"), inbox / "IMG_2.dng")
    sidecars = {"IMG_2.xmp": b"lower", "IMG_2.XMP": b"upper", "IMG_2.Xmp": b"mixed"}
    for name, data in sidecars.items():
        (inbox / name).write_bytes((camera("canon_eos_6d.xmp")).read_bytes() + b"<!-- " + data + b" -->")
    write_config(tmp_path, GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"'))
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    archive = tmp_path / "outbox" / "archive"
    assert sorted(p.name for p in archive.iterdir()) == sorted(["IMG_2.dng", *sidecars])
    for name, data in sidecars.items():
        assert (archive / name).read_bytes().endswith(b"<!-- " + data + b" -->")
    assert not list(inbox.iterdir())
    assert done.stdout.count('"companion.moved"') == 3
    status = run_cli("status", cwd=tmp_path)
    assert "0 orphans" in status.stdout, status.stdout


def test_a_jpeg_beside_a_raw_that_no_rule_takes_is_processed(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """Issue 28, case 4: rules for JPEGs only, with companions: a JPEG beside a same-stem RAW is no twin
    of a picture nothing will process; the running daemon makes its output (it was held for ever, with
    only a debug event) and `explain` says it goes on its own. A RAW rule added makes it a twin again."""
    rules = GROUP_RULES.format(policy="keep", where="").replace('"raw", "jpeg", "heif", "png"', '"jpeg"')
    write_config(tmp_path, rules)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    daemon = DaemonProcess(tmp_path).started()
    daemons.append(daemon)
    staging = tmp_path / "staging"
    staging.mkdir()
    shutil.copy(camera("colorchart.dng"), staging / "IMG_1.dng")
    shutil.copy(camera("train.jpg"), staging / "IMG_1.jpg")
    for p in staging.iterdir():
        p.rename(inbox / p.name)
    daemon.wait_event("job.done", src=inbox / "IMG_1.jpg")
    assert (tmp_path / "outbox" / "web" / "IMG_1.jpg").is_file()
    daemon.stop()
    said = run_cli("explain", str(inbox / "IMG_1.jpg"), cwd=tmp_path).stdout
    assert "which no rule takes" in said and "a companion of" not in said, said
    write_config(tmp_path, GROUP_RULES.format(policy="keep", where=""))
    said = run_cli("explain", str(inbox / "IMG_1.jpg"), cwd=tmp_path).stdout
    assert "a companion of IMG_1.dng" in said, said


def test_a_pixel_raw_and_jpeg_pair_by_their_names_and_move_together(tmp_path: Path) -> None:
    """A Pixel writes PXL_<time>.RAW-01.COVER.jpg beside PXL_<time>.RAW-02.ORIGINAL.dng: different stems,
    paired by the default twin patterns. Through a move rule the DNG is the picture (its web JPEG made
    once), the COVER JPEG travels with it under its own name, both byte for byte."""
    spec = Companions()
    base = "PXL_20240103_111111111"
    listing = [f"{base}.RAW-01.COVER.jpg", f"{base}.RAW-02.ORIGINAL.dng", "PXL_20240103_222222222.jpg"]
    assert pairing.holder(listing[0], listing, spec) == listing[1]
    (member,) = pairing.group_of(listing[1], listing, spec)
    assert (member.name, member.role) == (listing[0], "twin")
    assert pairing.holder(listing[2], listing, spec) is None
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    dng, cover = inbox / listing[1], inbox / listing[0]
    shutil.copy(camera("canon_eos_6d.dng"), dng)
    with rawpy.imread(str(camera("canon_eos_6d.dng"))) as raw:
        cover.write_bytes(bytes(raw.extract_thumb().data))
    sha = {p.name: _sha(p) for p in inbox.iterdir()}
    write_config(tmp_path, GROUP_RULES.format(policy="move", where='original_path = "archive/{name}"'))
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    archive = tmp_path / "outbox" / "archive"
    assert {p.name: _sha(p) for p in archive.iterdir()} == sha
    assert [p.name for p in (tmp_path / "outbox" / "web").iterdir()] == [f"{base}.RAW-02.ORIGINAL.jpg"]
    assert not list(inbox.iterdir())
