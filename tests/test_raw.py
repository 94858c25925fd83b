"""Camera RAW: real camera files from ../shared/camera, synthetic DNGs written here (a real photo's
pixels as a Bayer mosaic, with orientation variants), the real pipeline through `hotfolder process`,
exiftool as the judge of what EXIF the outputs carry."""

from __future__ import annotations

import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import (
    ROOT,
    DaemonProcess,
    camera,
    corpus,
    exiftool,
    output,
    photos,
    run_cli,
    shared,
    write_config,
)
from hotfolder.decide.containers import block_tags, container_of, exif_blocks, extent_problem
from hotfolder.decide.raw import inspect
from hotfolder.render.develop import develop
from hotfolder.render.notes import Notes
from synthdng import write_dng


def photo() -> Path:
    """The first phone photo of ../shared/photos: the scene the synthetic DNGs are made of."""
    return photos()[0]


RAW_RULE = (
    '[[rule]]\nname = "raw"\n[rule.match]\nformats = ["raw"]\n'
    '[[rule.output]]\nformat = "jpeg"\nmax_edge = 2048\npath = "web/{stem}.jpg"\n'
    '[[rule.output]]\nformat = "tiff"\npath = "archive/{stem}.tif"\n'
)


def process(tmp_path: Path, rules: str, *files: Path, extra: str = "") -> dict[str, dict[str, object]]:
    """Run `hotfolder process` over the files put in inbox/; the last event per input, by file name."""
    write_config(tmp_path, rules, extra=extra)
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    for f in files:
        shutil.copy(f, inbox / f.name)
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    events: dict[str, dict[str, object]] = {}
    for line in done.stdout.splitlines():
        event = json.loads(line)
        if event["event"] in ("job.done", "job.quarantined", "file.unmatched", "file.misnamed"):
            events.setdefault(Path(str(event["src"])).name, {})[str(event["event"])] = event
    return events


def synthetic(tmp_path: Path, name: str, orientation: int = 1, size: tuple[int, int] = (600, 400)) -> Path:
    return write_dng(tmp_path / name, photo(), orientation=orientation, size=size)


def test_every_camera_file_ends_as_the_readme_says(tmp_path: Path) -> None:
    """Two complete DNGs are developed, with their camera's EXIF; the pruned CR3, the truncated NEF
    (whose 6000x4000 preview is intact) and the CRW without image data are quarantined, each with why."""
    names = [
        "colorchart.dng",
        "canon_eos_6d.dng",
        "canon_r6_pruned.cr3",
        "d7100_truncated.nef",
        "powershot_s40_header.crw",
    ]
    events = process(tmp_path, RAW_RULE, *(camera(n) for n in names))
    for name, model in (("colorchart", "Canon EOS Kiss X4"), ("canon_eos_6d", "Canon EOS 6D")):
        assert "job.done" in events[f"{name}.dng"], events[f"{name}.dng"]
        web, tif = tmp_path / "outbox/web" / f"{name}.jpg", tmp_path / "outbox/archive" / f"{name}.tif"
        for out in (web, tif):
            tags = exiftool(out)
            assert tags["EXIF:IFD0:Make"] == "Canon" and tags["EXIF:IFD0:Model"] == model
            assert tags["EXIF:IFD0:Orientation"] == 1
            for storage in ("EXIF:IFD0:StripOffsets", "EXIF:IFD0:DNGVersion", "EXIF:IFD0:CFAPattern2"):
                assert storage not in tags or (out.suffix == ".tif" and storage == "EXIF:IFD0:StripOffsets")
        assert exiftool(tif)["EXIF:IFD0:BitsPerSample"] == "16 16 16"
        assert (tmp_path / "inbox" / f"{name}.dng").exists(), "the RAW itself is kept"
    six_d = exiftool(tmp_path / "outbox/archive/canon_eos_6d.tif")
    assert (
        six_d["EXIF:ExifIFD:ISO"] == 1000 and six_d["EXIF:ExifIFD:DateTimeOriginal"] == "2019:06:06 07:29:51"
    )
    assert six_d["XMP:XMP-aux:Lens"] == "EF24-105mm f/4L IS USM", "the RAW's XMP travels"
    assert not [k for k in six_d if k.startswith("XMP:XMP-crs:")], "Camera Raw settings were not applied"
    reasons = {
        "canon_r6_pruned.cr3": "no image data",
        "d7100_truncated.nef": "truncated: its image data runs to byte 28,842,901",
        "powershot_s40_header.crw": "this CRW holds no image data",
    }
    for name, why in reasons.items():
        note = json.loads((tmp_path / "quarantine" / f"{name}.json").read_text())
        assert why in note["error"], note
        assert not list((tmp_path / "outbox").rglob(f"{Path(name).stem}.*")), "no output from half a RAW"


@pytest.mark.parametrize(("orientation", "size"), [(1, (600, 400)), (6, (400, 600)), (8, (400, 600))])
def test_a_synthetic_dng_comes_out_upright_with_its_exif(
    tmp_path: Path, orientation: int, size: tuple[int, int]
) -> None:
    """The mosaic of a real photo, stored with Orientation 1, 6 or 8: every output is upright, the
    right size, close to the photo turned the same way, Orientation 1, and carries the camera's EXIF."""
    dng = synthetic(tmp_path, f"o{orientation}.dng", orientation)
    process(tmp_path, RAW_RULE.replace('format = "tiff"', 'format = "png"').replace(".tif", ".png"), dng)
    turn = {1: None, 6: Image.Transpose.ROTATE_270, 8: Image.Transpose.ROTATE_90}[orientation]
    with Image.open(photo()) as scene:
        ref = scene.convert("RGB").resize((600, 400), Image.Resampling.BILINEAR)
    ref = ref.transpose(turn) if turn is not None else ref
    for out in (
        tmp_path / "outbox/web" / f"o{orientation}.jpg",
        tmp_path / "outbox/archive" / f"o{orientation}.png",
    ):
        with Image.open(out) as im:
            assert im.size == size
            got = np.asarray(im.convert("RGB")).astype(int)
        assert np.abs(got - np.asarray(ref).astype(int)).mean() < 6, f"{out.name} is not the photo, upright"
        tags = exiftool(out)
        assert tags["EXIF:IFD0:Orientation"] == 1 and tags["EXIF:IFD0:Make"] == "Hotfolder"
        assert tags["EXIF:ExifIFD:DateTimeOriginal"] == "2024:05:17 14:03:22"
        assert str(tags["EXIF:ExifIFD:SubSecTimeOriginal"]) == "42"
        assert tags["EXIF:ExifIFD:OffsetTimeOriginal"] == "+02:00"
        assert tags["EXIF:ExifIFD:LensModel"] == "Synthetic 35mm F1.4"
        # The camera's serial number stays in the archive only: a web copy never carries it (issue 33).
        assert tags.get("EXIF:ExifIFD:SerialNumber") == ("SN-0042" if out.suffix == ".png" else None)
        assert tags["EXIF:ExifIFD:FNumber"] == 5.6 and tags["EXIF:ExifIFD:ISO"] == 200
        assert (tags["EXIF:ExifIFD:ExifImageWidth"], tags["EXIF:ExifIFD:ExifImageHeight"]) == size
    with Image.open(tmp_path / "outbox/archive" / f"o{orientation}.png") as png:
        assert png.mode == "RGB" and exiftool(png.filename)["PNG:BitDepth"] == 16  # type: ignore[arg-type]


def test_rendering_the_same_raw_twice_gives_identical_bytes(tmp_path: Path) -> None:
    """Camera white balance, no auto-brightening, one thread: equal inputs, equal outputs."""
    first = synthetic(tmp_path, "a.dng", 6)
    second = tmp_path / "b.dng"
    shutil.copy(first, second)
    (tmp_path / "b.dng").write_bytes(first.read_bytes() + b"\0")  # other bytes, the same picture
    # Without provenance: the archive's XMP names its own source (another name, another SHA-256).
    rules = RAW_RULE.replace("[[rule.output]]\n", '[[rule.output]]\nprovenance = "strip"\n')
    process(tmp_path, rules, first, second)
    for sub, ext in (("web", "jpg"), ("archive", "tif")):
        a, b = (tmp_path / "outbox" / sub / f"{n}.{ext}" for n in ("a", "b"))
        assert a.read_bytes() == b.read_bytes(), f"{sub}: two renders of one RAW differ"


def _with_orientation(src: Path, dst: Path, orientation: int) -> Path:
    """A copy of a little-endian TIFF-based RAW with IFD0's Orientation patched (a RAW header field)."""
    data = bytearray(src.read_bytes())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack_from("<H", data, entry)[0] == 0x0112:
            struct.pack_into("<H", data, entry + 8, orientation)
    dst.write_bytes(bytes(data))
    return dst


def test_preview_or_render_per_output_and_the_preview_turned_once(tmp_path: Path) -> None:
    """canon_eos_6d.dng (1224x816, preview 1024x683), its Orientation patched to 6: a 1000 px web
    output uses the preview (auto), a full-size one renders; both come out portrait, neither turned twice."""
    dng = _with_orientation(camera("canon_eos_6d.dng"), tmp_path / "turned.dng", 6)
    rules = (
        '[[rule]]\nname = "raw"\n[rule.match]\nformats = ["raw"]\n'
        '[[rule.output]]\nformat = "jpeg"\nmax_edge = 1000\npath = "small/{stem}.jpg"\n'
        '[[rule.output]]\nformat = "jpeg"\npath = "full/{stem}.jpg"\n'
        '[[rule.output]]\nformat = "webp"\nraw = "render"\nmax_edge = 1000\npath = "rendered/{stem}.webp"\n'
    )
    explained = (write_config(tmp_path, rules), run_cli("explain", str(dng), cwd=tmp_path))[1]
    assert "from the RAW's embedded preview: the camera's preview (1024 px) is as large" in explained.stdout
    assert "from the RAW's LibRaw render: the camera's preview (1024 px) is smaller" in explained.stdout
    assert 'from the RAW\'s LibRaw render: raw = "render"' in explained.stdout
    process(tmp_path, rules, dng)
    sizes = {}
    for folder, ext in (("small", "jpg"), ("full", "jpg"), ("rendered", "webp")):
        with Image.open(tmp_path / "outbox" / folder / f"turned.{ext}") as im:
            sizes[folder] = im.size
    assert sizes == {"small": (667, 1000), "full": (816, 1224), "rendered": (667, 1000)}
    with (
        Image.open(tmp_path / "outbox/small/turned.jpg") as a,
        Image.open(tmp_path / "outbox/rendered/turned.webp") as b,
    ):
        diff = np.abs(np.asarray(a.convert("L")).astype(int) - np.asarray(b.convert("L")).astype(int)).mean()
    assert diff < 40, "the preview and the render show the same picture the same way up"


def test_raw_colour_is_said_by_the_profile_and_web_outputs_end_in_srgb(tmp_path: Path) -> None:
    rules = (
        '[[rule]]\nname = "raw"\n[rule.match]\nformats = ["raw"]\n'
        '[[rule.output]]\nformat = "tiff"\nraw_colour = "adobe"\npath = "adobe/{stem}.tif"\n'
        '[[rule.output]]\nformat = "png"\nraw_colour = "prophoto"\npath = "pro/{stem}.png"\n'
        '[[rule.output]]\nformat = "jpeg"\nraw = "render"\nraw_colour = "adobe"\npath = "web/{stem}.jpg"\n'
    )
    process(tmp_path, rules, synthetic(tmp_path, "c.dng"))
    described = {
        name: str(exiftool(tmp_path / "outbox" / name).get("ICC_Profile:ProfileDescription"))
        for name in ("adobe/c.tif", "pro/c.png", "web/c.jpg")
    }
    assert "Adobe RGB (1998)" in described["adobe/c.tif"] and "ProPhoto" in described["pro/c.png"]
    assert "sRGB" in described["web/c.jpg"], "a web output with icc = srgb ends in sRGB"


def test_templates_and_match_conditions_read_the_raw_header(tmp_path: Path) -> None:
    """{taken}, {camera} and exif.Model work on a RAW from its header, without decoding it."""
    rules = (
        '[[rule]]\nname = "other"\n[rule.match]\nformats = ["raw"]\nexif.Model = ["Other*"]\n'
        '[[rule.output]]\nformat = "jpeg"\npath = "other/{stem}.jpg"\n'
        '[[rule]]\nname = "mine"\n[rule.match]\nformats = ["raw"]\nexif.Model = ["Synthetic*"]\n'
        'min_pixels = 200000\n[[rule.output]]\nformat = "jpeg"\npath = "{taken:%Y/%m}/{camera}/{stem}.jpg"\n'
    )
    events = process(tmp_path, rules, synthetic(tmp_path, "t.dng"))
    assert events["t.dng"]["job.done"]["rule"] == "mine"
    assert (tmp_path / "outbox/2024/05/Hotfolder Synthetic DNG/t.jpg").exists()


def test_rules_that_do_not_name_raw_never_take_it(tmp_path: Path) -> None:
    """A rule that deletes what it takes, without formats = ["raw"]: the RAW is not touched."""
    rules = (
        '[[rule]]\nname = "all"\noriginal = "delete"\n[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n'
    )
    events = process(tmp_path, rules, synthetic(tmp_path, "keep.dng"))
    assert "file.unmatched" in events["keep.dng"] and (tmp_path / "inbox/keep.dng").exists()


def test_a_nef_that_is_really_a_jpeg_is_a_jpeg(tmp_path: Path) -> None:
    rules = RAW_RULE + '[[rule]]\nname = "jpeg"\n[[rule.output]]\nformat = "png"\npath = "jpeg/{stem}.png"\n'
    fake = tmp_path / "DSC_0001.NEF"
    shutil.copy(corpus("pentax_k10d.jpg"), fake)
    events = process(tmp_path, rules, fake)
    assert "named as camera RAW, but its content is JPEG" in str(
        events["DSC_0001.NEF"]["file.misnamed"]["error"]
    )
    assert "job.done" in events["DSC_0001.NEF"] and (tmp_path / "outbox/jpeg/DSC_0001.png").exists()
    assert not (tmp_path / "outbox/web").exists(), "the RAW rule did not take a JPEG"


def test_a_file_named_raw_that_libraw_cannot_read_is_a_broken_raw(tmp_path: Path) -> None:
    junk = tmp_path / "IMG_0001.CR2"
    junk.write_bytes(b"\x01\x02" * 5000)
    events = process(tmp_path, RAW_RULE, junk)
    assert "job.quarantined" in events["IMG_0001.CR2"]
    note = json.loads((tmp_path / "quarantine/IMG_0001.CR2.json").read_text())
    assert "RAW" in note["error"] or "raw" in note["error"]


def test_max_image_pixels_is_checked_from_the_raw_header(tmp_path: Path) -> None:
    events = process(tmp_path, RAW_RULE, synthetic(tmp_path, "big.dng"), extra="max_image_pixels = 100000\n")
    assert "job.quarantined" in events["big.dng"]
    note = json.loads((tmp_path / "quarantine/big.dng.json").read_text())
    assert "600x400 = 240,000 pixels exceeds max_image_pixels (100,000)" in note["error"]


def test_a_preview_as_an_archive_is_a_load_error(tmp_path: Path) -> None:
    write_config(tmp_path, RAW_RULE.replace('format = "tiff"', 'format = "tiff"\nraw = "preview"'))
    checked = run_cli("check", cwd=tmp_path)
    assert checked.returncode == 2 and "output.raw" in checked.stderr and "archival" in checked.stderr


def test_the_default_rules_give_a_raw_an_upright_web_jpeg_and_keep_it(tmp_path: Path) -> None:
    """No hotfolder.toml: the embedded default (what `make run` uses)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    dng = synthetic(inbox, "IMG_0042.DNG", 6)
    before = dng.read_bytes()
    done = run_cli("process", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    web = tmp_path / "outbox/web/IMG_0042.dng.jpg"
    with Image.open(web) as im:
        assert im.size == (400, 600)
    assert exiftool(web)["EXIF:IFD0:Model"] == "Synthetic DNG" and exiftool(web)["EXIF:IFD0:Orientation"] == 1
    assert dng.read_bytes() == before and not (tmp_path / "outbox/archive").exists()


def test_one_half_size_render_serves_every_output_that_fits_in_half_the_sensor(tmp_path: Path) -> None:
    """Outputs of at most half the sensor's long edge: LibRaw demosaics at half size, once for all."""
    data = synthetic(tmp_path, "h.dng", size=(1200, 800)).read_bytes()
    header = inspect(data, max_pixels=10**9)
    small = [
        output(format="jpeg", max_edge=600, raw="render"),
        output(format="webp", max_edge=400, raw="render"),
    ]
    developed = develop(data, header, small, max_pixels=10**9)
    assert developed.half
    notes = Notes()
    first, second = (developed.source(o, notes) for o in small)
    assert first is second and first.image.size == (600, 400), "one half-size render for both"
    full = develop(data, header, [*small, output(format="png", path="{stem}.png")], max_pixels=10**9)
    assert not full.half, "an archival output needs the full sensor"


def _tiff_block(tags: dict[int, object], sub: dict[int, object] | None = None) -> bytes:
    ex = Image.Exif()
    for tag, value in tags.items():
        ex[tag] = value
    if sub:
        ex[0x8769] = sub
    return ex.tobytes()[6:]  # without the JPEG APP1 prefix, as RAW containers store TIFF blocks


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def test_each_container_gives_its_exif_and_says_whether_its_data_is_inside() -> None:
    """CRW (the real S40 header: exiftool's Make/Model/DateTimeOriginal), and RAF and CR3 headers
    built here: where their EXIF lies, and truncated or pruned data found from the container."""
    crw = (camera("powershot_s40_header.crw")).read_bytes()
    judge = exiftool(camera("powershot_s40_header.crw"))
    ex = Image.Exif()
    ex.load(exif_blocks(crw, "ciff")[0] or b"")
    assert (ex[0x010F], ex[0x0110]) == (judge["MakerNotes:CanonRaw:Make"], judge["MakerNotes:CanonRaw:Model"])
    assert ex.get_ifd(0x8769)[0x9003] == judge["MakerNotes:CanonRaw:DateTimeOriginal"]
    assert "holds no image data" in str(extent_problem(crw, "ciff"))

    jpeg = io.BytesIO()
    app1 = b"Exif\0\0" + _tiff_block({0x010F: "FUJIFILM", 0x0110: "X-T5"})
    Image.new("RGB", (64, 48)).save(jpeg, "JPEG", exif=app1)
    head = b"FUJIFILMCCD-RAW 0201FF383501".ljust(84, b"\0")
    raf = bytearray(
        head + struct.pack(">6I", 108, len(jpeg.getvalue()), 0, 0, 108 + len(jpeg.getvalue()), 4096)
    )
    raf += jpeg.getvalue() + bytes(4096)
    assert container_of(bytes(raf)) == "raf" and extent_problem(bytes(raf), "raf") is None
    ex = Image.Exif()
    ex.load(exif_blocks(bytes(raf), "raf")[0] or b"")
    assert ex[0x0110] == "X-T5"
    assert "truncated" in str(extent_problem(bytes(raf[:-100]), "raf"))

    uuid = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
    cmt1 = _box(b"CMT1", _tiff_block({0x010F: "Canon", 0x0110: "Canon EOS R6"}))
    cmt2 = _box(b"CMT2", _tiff_block({0x9003: "2021:03:04 05:06:07"}))
    head = _box(b"ftyp", b"crx " + bytes(4)) + _box(b"moov", _box(b"uuid", uuid + cmt1 + cmt2))
    cr3 = head + _box(b"mdat", bytes(1000))
    assert container_of(cr3) == "cr3" and extent_problem(cr3, "cr3") is None
    ifd0, sub, _gps = exif_blocks(cr3, "cr3")
    ex = Image.Exif()
    ex.load(ifd0 or b"")
    assert ex[0x0110] == "Canon EOS R6" and block_tags(sub)[0x9003] == "2021:03:04 05:06:07"
    assert "no image data" in str(extent_problem(head, "cr3"))
    assert "truncated" in str(extent_problem(cr3[:-10], "cr3"))


def test_every_file_of_the_camera_folder_under_the_default_rules(tmp_path: Path) -> None:
    """`make run`'s rules over the whole camera folder: RAWs developed or quarantined with why,
    pictures processed, videos, sidecars and edit lists left where they are, untouched."""
    inbox = tmp_path / "inbox"
    shutil.copytree(camera(), inbox, ignore=shutil.ignore_patterns("MANIFEST.tsv", "README.md"))
    before = {p.name: p.read_bytes() for p in inbox.iterdir()}
    done = run_cli("process", "--log-format", "json", "inbox", cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # three broken RAWs are quarantined
    ended: dict[str, str] = {}
    for line in done.stdout.splitlines():
        event = json.loads(line)
        if event["event"] in ("job.done", "job.quarantined", "file.unmatched"):
            ended[Path(str(event["src"])).name] = str(event["event"])
    quarantined = {"canon_r6_pruned.cr3", "d7100_truncated.nef", "powershot_s40_header.crw"}
    left = {"train.mov", "canon_eos_6d.xmp", "iphone_7.xmp", "IMG_4120.AAE"}
    assert {n for n, e in ended.items() if e == "job.quarantined"} == quarantined
    assert {n for n, e in ended.items() if e == "file.unmatched"} == left
    assert {n for n, e in ended.items() if e == "job.done"} == set(before) - quarantined - left
    for name in ("colorchart.dng", "canon_eos_6d.dng"):
        assert exiftool(tmp_path / "outbox/web" / f"{Path(name).stem}.dng.jpg")["EXIF:IFD0:Make"] == "Canon"
    for name, data in before.items():
        if name not in quarantined:
            assert (inbox / name).read_bytes() == data, f"{name} was changed"


def test_a_raw_dropped_into_the_running_default_daemon(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """What `make run` does: the real daemon on the embedded default, a RAW copied into ./inbox."""
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    dng = synthetic(tmp_path, "DSC_0007.DNG", 8)
    shutil.copy(dng, tmp_path / "inbox" / dng.name)
    done = daemon.wait_event("job.done", src=tmp_path / "inbox" / dng.name)
    assert done["rule"] == "camera-raw"
    daemon.stop()
    web = tmp_path / "outbox/web/DSC_0007.dng.jpg"
    with Image.open(web) as im:
        assert im.size == (400, 600)
    assert exiftool(web)["EXIF:IFD0:Orientation"] == 1
    assert (tmp_path / "inbox" / dng.name).read_bytes() == dng.read_bytes()


TIFF_DELETE = (
    '[[rule]]\nname = "tiffs"\noriginal = "delete"\n[rule.match]\nformats = ["tiff"]\n'
    '[[rule.output]]\nformat = "png"\npath = "tiff/{stem}.png"\n'
)


@pytest.mark.parametrize(
    ("source", "name"),
    [
        pytest.param("d7100_truncated.nef", "DSC_0042.tif", id="nef_renamed_tif"),
        pytest.param("d7100_truncated.nef", "scan.TIFF", id="nef_renamed_TIFF"),
        pytest.param("colorchart.dng", "IMG_0007.mef", id="dng_under_an_unlisted_raw_extension"),
        pytest.param(None, "frame.tif", id="synthetic_dng_renamed_tif"),
    ],
)
def test_a_raw_whose_name_does_not_say_raw_is_a_raw(tmp_path: Path, source: str | None, name: str) -> None:
    """Issue 28, case 1: a TIFF-container RAW under a TIFF name (or an extension hotfolder does not list)
    is recognised by its IFDs: `file.misnamed`, no TIFF rule takes it, `original = "delete"` deletes
    nothing, and its byte-identical copy is not deleted as a duplicate either."""
    made = tmp_path / "made"
    made.mkdir()
    raw = made / name
    if source is None:
        write_dng(raw, photo(), size=(600, 400))
    else:
        shutil.copy(camera(source), raw)
    twin = made / f"copy-of-{name}"
    shutil.copy(raw, twin)
    original = raw.read_bytes()
    events = process(tmp_path, TIFF_DELETE, raw, twin)
    said = str(events[name]["file.misnamed"]["error"])
    assert "camera RAW" in said and "only a RAW rule takes it" in said
    assert "job.done" not in events[name] and "file.unmatched" in events[name]
    assert (tmp_path / "inbox" / name).read_bytes() == original
    assert (tmp_path / "inbox" / twin.name).read_bytes() == original
    assert not (tmp_path / "outbox").exists() or not any((tmp_path / "outbox").rglob("*.png"))
    explained = run_cli("explain", str(tmp_path / "inbox" / name), cwd=tmp_path)
    assert "misnamed: its content is camera RAW" in explained.stdout, explained.stdout


def test_plain_tiffs_are_still_tiffs(tmp_path: Path) -> None:
    """The RAW test does not take a real TIFF (8 and 16 bits, several pages) for a RAW."""
    corpus = shared("corpus")
    files = [corpus / n for n in ("hopper_lzw.tif", "tiff_16bit_rgb.tiff", "multipage.tif")]
    events = process(tmp_path, TIFF_DELETE, *files)
    for f in files:
        assert "job.done" in events[f.name] and "file.misnamed" not in events[f.name], events[f.name]


def _padded(path: Path, size: int) -> Path:
    """The file grown to `size` bytes by a hole of zeros (sparse: no disk is used)."""
    with path.open("r+b") as f:
        f.truncate(size)
    return path


def _peak_rss_kb(argv: list[str], cwd: Path) -> tuple[int, str]:
    """Run a command under /usr/bin/time -v; (its peak RSS in KB, its stdout and stderr)."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    done = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "hotfolder", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    peak = next(int(line.split(":")[1]) for line in done.stderr.splitlines() if "Maximum resident" in line)
    return peak, done.stdout + done.stderr


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs GNU time (Debian's time package)")
def test_a_raw_padded_to_gigabytes_is_refused_from_its_header(tmp_path: Path) -> None:
    """Issue 28, cases 13 and 14: a real DNG padded with zeros to 2 GB, beside a 1.5 GB XMP sidecar:
    `explain` stays under 500 MB RSS and says why; `process` refuses it from its header (quarantined,
    nothing read whole) and stays under 1 GB RSS; the sidecar is never read."""
    write_config(tmp_path, RAW_RULE + "[rule.companions]\nwait = 0\n")  # the default sidecars: {stem}.xmp
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    raw = inbox / "IMG_0001.dng"
    shutil.copy(camera("colorchart.dng"), raw)
    _padded(raw, 2 << 30)
    sidecar = inbox / "IMG_0001.xmp"
    sidecar.write_bytes((camera("canon_eos_6d.xmp")).read_bytes())
    _padded(sidecar, 1536 << 20)
    peak, said = _peak_rss_kb(["explain", str(raw)], tmp_path)
    assert peak < 500_000, f"explain peaked at {peak} KB"
    assert "far more than this camera RAW can hold" in said, said
    peak, said = _peak_rss_kb(["process", "--log-format", "json", "inbox"], tmp_path)
    assert peak < 1_000_000, f"process peaked at {peak} KB"
    assert (tmp_path / "quarantine" / "IMG_0001.dng").stat().st_size == 2 << 30
    note = json.loads((tmp_path / "quarantine" / "IMG_0001.dng.json").read_text())
    assert "far more than this camera RAW can hold" in note["error"]


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs GNU time (Debian's time package)")
def test_a_huge_xmp_sidecar_is_not_read_and_still_travels(tmp_path: Path) -> None:
    """Issue 28, case 14: a 1.5 GB XMP sidecar beside a small JPEG: `metadata.damaged` names it, the
    picture is done, the sidecar moves with it byte for byte, and `process` stays under 1 GB RSS (it read
    the sidecar whole: 1.57 GB)."""
    rules = (
        '[[rule]]\nname = "photos"\noriginal = "move"\noriginal_path = "done/{stem}.{ext}"\n'
        '[rule.match]\nformats = ["jpeg"]\n[rule.companions]\nwait = 0\n'
        '[[rule.output]]\nformat = "jpeg"\npath = "web/{stem}.jpg"\n'
    )
    write_config(tmp_path, rules)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(corpus("pentax_k10d.jpg"), inbox / "IMG_0002.jpg")
    sidecar = inbox / "IMG_0002.xmp"
    sidecar.write_bytes((camera("canon_eos_6d.xmp")).read_bytes())
    _padded(sidecar, 1536 << 20)
    peak, said = _peak_rss_kb(["process", "--log-format", "json", "inbox"], tmp_path)
    assert peak < 1_000_000, f"process peaked at {peak} KB"
    events = [json.loads(line) for line in said.splitlines() if line.startswith("{")]
    damaged = [e for e in events if e["event"] == "metadata.damaged"]
    assert damaged and "past the 16 MB an XMP sidecar may have" in str(damaged[0]["error"])
    assert any(e["event"] == "job.done" for e in events)
    moved = next((tmp_path / "outbox").rglob("IMG_0002.xmp"))
    assert moved.stat().st_size == 1536 << 20 and not sidecar.exists()
