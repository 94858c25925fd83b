"""Motion photos: the video Google's and Samsung's phones append after the picture, extracted beside an
output byte for byte (or without its location where the output strips GPS), committed with the picture,
judged by ffmpeg, ffprobe and exiftool. The motion photos are laid out by the test as each spec says,
from a camera JPEG of the corpus and a clip ffmpeg makes."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from conftest import (
    Processed,
    corpus,
    exiftool,
    output,
    process_job,
    run_cli,
    run_outputs,
    tool,
    write_config,
)
from hotfolder.decide.job import Job
from hotfolder.decide.motion import motion_video
from hotfolder.settings.rules import Rule

LOCATION = "+48.8584+002.2945/"


def _clip(tmp_path: Path, how: str = "loci") -> bytes:
    """A 1 s H.264 clip with a location as a phone's video has one: 3GPP `loci` (ffmpeg's mp4), an
    `mdta` key (Apple's and Android's), or QuickTime `©xyz` (ffmpeg's mov)."""
    ffmpeg = tool("ffmpeg", "ffmpeg")
    out = tmp_path / f"clip-{how}.{'mov' if how == 'xyz' else 'mp4'}"
    meta = {
        "loci": ["-metadata", f"location={LOCATION}"],
        "keys": [
            "-movflags",
            "use_metadata_tags",
            "-metadata",
            f"com.apple.quicktime.location.ISO6709={LOCATION}",
        ],
        "xyz": ["-metadata", f"location={LOCATION}"],
        "none": [],
    }[how]
    subprocess.run(
        [
            *(ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=10:duration=1"),
            *("-c:v", "libx264", "-pix_fmt", "yuv420p", *meta, str(out)),
        ],
        check=True,
    )
    return out.read_bytes()


def _picture(xmp: bytes | None = None) -> bytes:
    """A camera's JPEG (EXIF with GPS kept), with the motion photo's XMP when it has one."""
    buf = io.BytesIO()
    with Image.open(corpus("canon_eos_7d.jpg")) as im:
        small = im.resize((320, 213))
        options: dict[str, object] = {"exif": im.info["exif"]}
        if xmp is not None:
            options["xmp"] = xmp
        small.save(buf, "JPEG", quality=90, **options)
    return buf.getvalue()


def _xmp(fields: str, body: str = "") -> bytes:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:GCamera="http://ns.google.com/photos/1.0/camera/"'
        ' xmlns:Container="http://ns.google.com/photos/1.0/container/"'
        ' xmlns:Item="http://ns.google.com/photos/1.0/container/item/"'
        f' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4" {fields}>{body}'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


def motion_photo(layout: str, video: bytes, *, claimed: int | None = None) -> bytes:
    """A motion photo as the phone lays it out. Google's MotionPhoto: a Container:Directory (Primary,
    then the MotionPhoto item with its Item:Length) and the video at the end of the file; MicroVideo:
    GCamera:MicroVideoOffset, the video's distance from the end; Samsung: `MotionPhoto_Data`, the video,
    then the SEF trailer. `claimed`: the length the XMP says (a damaged file)."""
    length = len(video) if claimed is None else claimed
    if layout == "google":
        directory = (
            "<Container:Directory><rdf:Seq>"
            '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary"'
            ' Item:Length="0" Item:Padding="0"/></rdf:li>'
            '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4"'
            f' Item:Semantic="MotionPhoto" Item:Length="{length}"/></rdf:li>'
            "</rdf:Seq></Container:Directory>"
        )
        fields = (
            'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1" '
            'GCamera:MotionPhotoPresentationTimestampUs="0"'
        )
        return _picture(_xmp(fields, directory)) + video
    if layout == "microvideo":
        fields = f'GCamera:MicroVideo="1" GCamera:MicroVideoVersion="1" GCamera:MicroVideoOffset="{length}"'
        return _picture(_xmp(fields)) + video
    assert layout == "samsung"
    sef = b"\x00\x00\x30\x0a\x10\x00\x00\x00MotionPhoto_Data" + b"SEFH" + bytes(12) + b"\x20\x00\x00\x00SEFT"
    return _picture() + b"MotionPhoto_Data" + video + sef


def _job(
    tmp_path: Path, data: bytes, *outputs: object, original: str = "keep", name: str = "PXL_1.jpg"
) -> Job:
    inbox = tmp_path / "in"
    inbox.mkdir(exist_ok=True)
    src = inbox / name
    src.write_bytes(data)
    rule = Rule(name="phone", file=None, outputs=tuple(outputs), original=original)  # type: ignore[arg-type]
    return Job(src=src, relpath=name, rules=(rule,), output_root=tmp_path / "out")


def _frames(path: Path) -> list[str]:
    """ffmpeg's MD5 of every decoded frame: the same pictures, whatever the container's bytes."""
    ffmpeg = tool("ffmpeg", "ffmpeg")
    done = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr == "", done.stderr
    return [line.rsplit(",", 1)[1].strip() for line in done.stdout.splitlines() if not line.startswith("#")]


def _gps(path: Path) -> list[str]:
    return [k for k in exiftool(path) if "GPS" in k.split(":")[-1]]


@pytest.mark.parametrize("layout", ["google", "microvideo", "samsung"])
def test_each_layouts_video_is_extracted_byte_for_byte_beside_an_archive(tmp_path: Path, layout: str) -> None:
    """An archival PNG with motion = "extract": the video beside it is the phone's bytes (its location
    kept, as the archive keeps GPS), whole for ffprobe; the PNG's XMP no longer says motion photo (it
    carries no video), and keeps the rest (the rating)."""
    video = _clip(tmp_path)
    data = motion_photo(layout, video)
    found = motion_video(data)
    assert found is not None and found.problem is None, found
    assert (found.start, found.end) == (data.index(video), data.index(video) + len(video))
    done = process_job(_job(tmp_path, data, output(format="png", motion="extract")))
    assert done.status == "done", done.error
    written = {w.dst.name: w.dst for w in done.written}
    assert sorted(written) == ["PXL_1.mp4", "PXL_1.png"]
    assert written["PXL_1.mp4"].read_bytes() == video
    assert _gps(written["PXL_1.mp4"])  # an archive keeps where the video was taken
    meta = exiftool(written["PXL_1.png"])
    said = [
        k
        for k in meta
        if k.startswith("XMP") and any(w in k for w in ("MotionPhoto", "MicroVideo", "Directory"))
    ]
    assert said == [], said
    if layout != "samsung":  # a Samsung trailer needs no XMP
        assert meta.get("XMP:XMP-xmp:Rating") == 4
    assert not any(n == "auxiliary.dropped" for n, _ in done.notes)


def _web_copy(tmp_path: Path, layout: str, video: bytes, fmt: str, path: str) -> Processed:
    """A motion photo of this layout through one web output that extracts its video; done."""
    job = _job(
        tmp_path, motion_photo(layout, video), output(format=fmt, profile="web", path=path, motion="extract")
    )
    done = process_job(job)
    assert done.status == "done", done.error
    return done


@pytest.mark.parametrize("how", ["loci", "keys", "xyz"])
def test_a_web_copys_video_carries_no_location_and_plays_the_same_frames(tmp_path: Path, how: str) -> None:
    """The web profile strips GPS, so the extracted video's location goes too (each place a phone puts
    it): exiftool finds no GPS in it, ffmpeg decodes every frame identical to the phone's video, and
    the log says it is no longer the phone's bytes."""
    video = _clip(tmp_path, how)
    (tmp_path / "phone.mp4").write_bytes(video)
    assert _gps(tmp_path / "phone.mp4"), "the clip must carry a location for this test to mean anything"
    done = _web_copy(tmp_path, "google", video, "jpeg", "{stem}.jpg")
    (extracted,) = [w.dst for w in done.written if w.dst.suffix in (".mp4", ".mov")]
    assert _gps(extracted) == []
    assert len(extracted.read_bytes()) == len(video) and extracted.read_bytes() != video
    assert _frames(extracted) == _frames(tmp_path / "phone.mp4")
    assert [n for n, _ in done.notes].count("motion.location_removed") == 1


def test_a_video_without_a_location_stays_byte_for_byte_on_a_web_copy(tmp_path: Path) -> None:
    video = _clip(tmp_path, "none")
    done = _web_copy(tmp_path, "samsung", video, "webp", "w/{stem}.webp")
    assert (tmp_path / "out" / "w" / "PXL_1.mp4").read_bytes() == video
    assert not any(n == "motion.location_removed" for n, _ in done.notes)


def test_motion_path_names_the_video_and_a_copy_keeps_the_whole_file(tmp_path: Path) -> None:
    video = _clip(tmp_path)
    data = motion_photo("google", video)
    done = process_job(
        _job(
            tmp_path,
            data,
            output(format="copy", path="c/{name}", motion="extract", motion_path="v/{stem}-motion.mp4"),
        )
    )
    assert done.status == "done", done.error
    assert (tmp_path / "out" / "c" / "PXL_1.jpg").read_bytes() == data
    assert (tmp_path / "out" / "v" / "PXL_1-motion.mp4").read_bytes() == video


@pytest.mark.parametrize("damage", ["claims-more", "claims-less", "cut"])
def test_a_video_that_cannot_be_extracted_keeps_the_original(tmp_path: Path, damage: str) -> None:
    """The XMP's length does not hold the MP4's boxes, or the video was cut short: the picture is still
    made, the video is not guessed at, and a rule's delete keeps the original (its video is nowhere else)."""
    video = _clip(tmp_path)
    if damage == "cut":
        data = motion_photo("google", video)[:-200]
    else:
        data = motion_photo("google", video, claimed=len(video) + (300 if damage == "claims-more" else -300))
    job = _job(tmp_path, data, output(format="png", motion="extract"), original="delete")
    done = process_job(job)
    assert done.status == "done", done.error
    assert [w.dst.name for w in done.written] == ["PXL_1.png"]
    assert job.src.read_bytes() == data
    assert any(n == "motion.unreadable" for n, _ in done.notes)
    assert any(n == "original.kept" for n, _ in done.notes) or "kept" in (done.original or "")


def test_a_deleted_motion_photo_goes_only_with_its_video_beside(tmp_path: Path) -> None:
    video = _clip(tmp_path)
    job = _job(
        tmp_path, motion_photo("microvideo", video), output(format="png", motion="extract"), original="delete"
    )
    done = process_job(job)
    assert done.status == "done", done.error
    assert not job.src.exists()
    assert (tmp_path / "out" / "PXL_1.mp4").read_bytes() == video


def test_the_video_and_the_picture_are_committed_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The video fails its check: the picture is not committed either (one job, one intent), the input
    is quarantined whole and nothing is left in the output folder."""
    monkeypatch.setenv("HOTFOLDER_TEST_FAIL_AT", "verify-video")
    data = motion_photo("google", _clip(tmp_path))
    done = process_job(_job(tmp_path, data, output(format="png", motion="extract")))
    assert done.status == "quarantined"
    assert done.quarantined_to is not None and done.quarantined_to.read_bytes() == data
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").rglob("*")) == []


def test_a_re_encode_without_extract_says_the_video_is_dropped(tmp_path: Path) -> None:
    video = _clip(tmp_path)
    done = run_outputs(tmp_path, _write(tmp_path, motion_photo("google", video)), output(format="png"))
    assert done.status == "done", done.error
    assert [w.dst.name for w in done.written] == ["PXL_1.png"]
    assert any(n == "auxiliary.dropped" and "motion photo" in str(f.get("error")) for n, f in done.notes)


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "PXL_1.jpg"
    path.write_bytes(data)
    return path


def test_check_refuses_a_motion_path_without_extract_or_a_video_name(tmp_path: Path) -> None:
    for extra, said in (
        ('motion_path = "{stem}.mp4"', 'needs motion = "extract"'),
        ('motion = "extract"\nmotion_path = "{stem}.avi"', "must end in .mp4 or .mov"),
        ('motion = "keep"', "motion"),
    ):
        write_config(
            tmp_path,
            f'[[rule]]\nname = "phone"\n[[rule.output]]\nformat = "png"\npath = "{{stem}}.png"\n{extra}\n',
        )
        done = run_cli("check", cwd=tmp_path)
        assert done.returncode != 0
        assert said in done.stderr + done.stdout, done.stderr + done.stdout
        assert "main.toml" in done.stderr + done.stdout


def test_explain_shows_the_parts_and_where_the_video_goes(tmp_path: Path) -> None:
    video = _clip(tmp_path)
    (tmp_path / "inbox").mkdir()
    data = motion_photo("google", video)
    (tmp_path / "inbox" / "PXL_1.jpg").write_bytes(data)
    write_config(
        tmp_path,
        '[[rule]]\nname = "phone"\noriginal = "delete"\n'
        '[[rule.output]]\nformat = "jpeg"\nprofile = "web"\npath = "web/{stem}.jpg"\nmotion = "extract"\n'
        '[[rule.output]]\nformat = "png"\npath = "png/{stem}.png"\n',
    )
    done = run_cli("explain", "inbox/PXL_1.jpg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    start = data.index(video)
    assert (
        f"motion photo (Google MotionPhoto): picture bytes 0-{start:,}, video bytes {start:,}-{len(data):,}"
        in done.stdout
    )
    assert hashlib.sha256(video).hexdigest() in done.stdout
    assert "the video's location: loci" in done.stdout
    assert "extracted to" in done.stdout and "web/PXL_1.mp4, without its location" in done.stdout
    assert 'dropped (motion = "extract" writes it beside)' in done.stdout


def test_the_daemon_process_command_extracts_and_logs(tmp_path: Path) -> None:
    """`hotfolder process` end to end: the picture and its video written, the log line per output."""
    video = _clip(tmp_path)
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "PXL_1.jpg").write_bytes(motion_photo("samsung", video))
    write_config(
        tmp_path,
        '[[rule]]\nname = "phone"\n[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n'
        'motion = "extract"\n',
    )
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    dsts = sorted(Path(e["dst"]).name for e in events if e.get("event") == "output.written")
    assert dsts == ["PXL_1.mp4", "PXL_1.png"], [e.get("event") for e in events]
    assert (tmp_path / "outbox" / "PXL_1.mp4").read_bytes() == video
    shutil.rmtree(tmp_path / "outbox")
