"""JPEG XL: camera JPEGs archived so that they rebuild byte for byte, everything else lossless, web
copies lossy; judged by libjxl through imagecodecs (not hotfolder's own code) and by exiftool."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import imagecodecs
import numpy as np
import piexif
import pytest
import pyvips
from PIL import Image

from conftest import DaemonProcess, corpus, exiftool, output, photos, run_outputs, write_config
from hotfolder.settings.outputs import parse_output

CAMERA_JPEGS = (
    *("apple_iphone_4.jpg", "canon_eos_7d.jpg", "dscn0010.jpg", "fujifilm_finepixs1pro_1.jpg"),
    *("olympus_pen_e-p3.jpg", "panasonic_dmc-lc70_lumix.jpg", "pentax_k10d.jpg", "sony_dsc-hx5v_2.jpg"),
)
ARCHIVE = (
    '[[rule]]\nname = "archive"\noriginal = "delete"\n[[rule.output]]\nformat = "jxl"\npath = "{stem}.jxl"\n'
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_daemon_deletes_camera_jpegs_only_once_their_jxl_rebuilds_them(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """original = "delete" with an archival JPEG XL: every camera JPEG leaves the inbox only after its
    archive rebuilds it byte for byte (libjxl's own rebuild, here through imagecodecs); a CMYK JPEG,
    which libjxl cannot transcode, is archived from its pixels and stays, with the reason logged; and
    exiftool reads Make, Model and DateTimeOriginal from each archive as from the JPEG."""
    write_config(tmp_path, ARCHIVE)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    sources = [corpus(n) for n in CAMERA_JPEGS] + photos()[:2]
    for src in [*sources, corpus("pil_sample_cmyk.jpg")]:
        shutil.copy(src, inbox / src.name)
    for src in sources:
        done = daemon.wait_event("job.done", 180, src=inbox / src.name)
        assert done["original"] == "deleted", done
        assert not (inbox / src.name).exists()
        archive = tmp_path / "outbox" / (src.stem + ".jxl")
        written = archive.read_bytes()
        assert sha(bytes(imagecodecs.jpegxl_decode_jpeg(written, numthreads=1))) == sha(src.read_bytes()), (
            src.name
        )
        assert len(written) < src.stat().st_size, src.name
    kept = daemon.wait_event("original.kept", 120, src=inbox / "pil_sample_cmyk.jpg")
    assert "no jxl output rebuilds this JPEG" in str(kept["error"]) and "CMYK" in str(kept["error"])
    assert (inbox / "pil_sample_cmyk.jpg").read_bytes() == corpus("pil_sample_cmyk.jpg").read_bytes()
    assert imagecodecs.jpegxl_decode((tmp_path / "outbox" / "pil_sample_cmyk.jxl").read_bytes()).shape[2] == 3
    daemon.stop()
    for src in sources:
        theirs = exiftool(src)
        ours = exiftool(tmp_path / "outbox" / (src.stem + ".jxl"))
        for tag in ("IFD0:Make", "IFD0:Model", "ExifIFD:DateTimeOriginal"):
            said = [v for k, v in theirs.items() if k.endswith(tag)]
            if said:
                assert [v for k, v in ours.items() if k.endswith(tag)] == said, (src.name, tag)


def _pixels16(bands: int) -> np.ndarray:
    rng = np.random.default_rng(bands)
    return rng.integers(0, 65536, size=(96, 130, bands), dtype=np.uint16)


@pytest.mark.parametrize(("kind", "bands"), [("png", 3), ("png", 4), ("tif", 3), ("tif", 4)])
def test_16_bit_png_and_tiff_become_jxl_equal_sample_for_sample(
    tmp_path: Path, kind: str, bands: int
) -> None:
    """16-bit RGB and RGBA stay 16-bit, every sample equal, judged by imagecodecs' decoder against
    the samples written into the source."""
    pixels = _pixels16(bands)
    src = tmp_path / f"deep.{kind}"
    image = pyvips.Image.new_from_memory(pixels.tobytes(), 130, 96, bands, "ushort").copy(
        interpretation="rgb16"
    )
    image.write_to_file(str(src))
    done = run_outputs(tmp_path, src, output(format="jxl"))
    assert done.status == "done", done.error
    (written,) = done.written
    got = imagecodecs.jpegxl_decode(written.dst.read_bytes())
    assert got.dtype == np.uint16 and got.shape == pixels.shape
    assert np.array_equal(got, pixels)


def test_a_wide_gamut_profile_is_kept_in_the_codestream(tmp_path: Path) -> None:
    """A photo with a Display P3 profile archived losslessly from its pixels (max_edge makes it a pixel
    encode) keeps that profile: libjxl gives back the same primaries, not sRGB's."""
    src = next(p for p in photos() if "Originals" in p.name)  # the Pixel's own photos carry Display P3
    done = run_outputs(tmp_path, src, output(format="jxl", max_edge=512, path="{stem}.jxl"))
    assert done.status == "done", done.error
    (written,) = done.written
    from hotfolder.decide import jxl  # noqa: PLC0415 - what the profile is, read back

    icc = jxl.decode(written.dst.read_bytes(), max_pixels=10**6).icc
    assert icc is not None
    wanted = Image.open(src).info["icc_profile"]
    assert _primaries(icc) == pytest.approx(_primaries(wanted), abs=2e-3)


def _primaries(icc: bytes) -> list[float]:
    from PIL import ImageCms  # noqa: PLC0415

    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile
    return [
        c for xyz in (profile.red_colorant, profile.green_colorant, profile.blue_colorant) for c in xyz[0]
    ]


def test_a_rotated_jpeg_is_transcoded_with_its_orientation_in_the_codestream(tmp_path: Path) -> None:
    """EXIF orientation 6: the archive keeps the JPEG as stored (rebuildable) and says the turn in the
    codestream, so a JPEG XL viewer (imagecodecs here) shows it upright."""
    src = tmp_path / "turned.jpg"
    exif = piexif.dump({"0th": {piexif.ImageIFD.Orientation: 6, piexif.ImageIFD.Make: b"Test"}})
    Image.radial_gradient("L").convert("RGB").resize((300, 200)).save(src, "JPEG", exif=exif)
    done = run_outputs(tmp_path, src, output(format="jxl"))
    (written,) = done.written
    data = written.dst.read_bytes()
    assert bytes(imagecodecs.jpegxl_decode_jpeg(data, numthreads=1)) == src.read_bytes()
    assert imagecodecs.jpegxl_decode(data).shape[:2] == (300, 200)  # upright: 200 wide, 300 high


def test_a_web_jxl_is_lossy_resized_and_srgb(tmp_path: Path) -> None:
    """profile = "web": lossy at quality 90 (libjxl's distance 1), resized, a small file."""
    src = photos()[0]
    done = run_outputs(tmp_path, src, output(format="jxl", profile="web", max_edge=1024, path="{stem}.jxl"))
    assert done.status == "done", done.error
    (written,) = done.written
    got = imagecodecs.jpegxl_decode(written.dst.read_bytes())
    assert max(got.shape[:2]) == 1024 and got.dtype == np.uint8
    assert written.dst.stat().st_size < src.stat().st_size / 8


def test_an_archive_asked_to_resize_a_jpeg_keeps_the_original(tmp_path: Path) -> None:
    """An archival jxl with max_edge cannot rebuild the JPEG: with original = "delete" the JPEG stays,
    and the job says why."""
    rules = ARCHIVE.replace('path = "{stem}.jxl"', 'path = "{stem}.jxl"\nmax_edge = 800')
    write_config(tmp_path, rules)
    (tmp_path / "inbox").mkdir()
    src = shutil.copy(corpus("canon_eos_7d.jpg"), tmp_path / "inbox" / "canon.jpg")
    from conftest import run_cli  # noqa: PLC0415

    done = run_cli("process", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Path(src).exists()
    assert "no jxl output rebuilds this JPEG byte for byte: the output asks max_edge" in done.stdout


@pytest.mark.parametrize(
    ("options", "key", "says"),
    [
        ({"quality": 80}, "quality", "lossy jxl"),
        ({"effort": 10}, "effort", "1..9"),
        ({"profile": "web", "quality": 80, "distance": 1.0}, "distance", "not both"),
        ({"distance": 30}, "distance", "0.05..25"),
        ({"format": "png", "effort": 3}, "effort", "does not apply"),
    ],
)
def test_jxl_options_are_checked(options: dict[str, object], key: str, says: str) -> None:
    """Every jxl option is validated with the others, naming the key."""
    problems: list[tuple[str, str | None]] = []
    raw = {"format": "jxl", "path": "{stem}.jxl", **options}
    if raw["format"] == "png":
        raw["path"] = "{stem}.png"
    parse_output(raw, lambda _k: None, lambda msg, k, _line: problems.append((msg, k)))
    assert any(k == f"output.{key}" and says in msg for msg, k in problems), problems


def _jxl_inputs(inbox: Path) -> dict[str, bytes]:
    """JPEG XL files as another tool writes them (libjxl through imagecodecs)."""
    with Image.open(photos()[4]) as im:
        rgb = np.asarray(im.reduce(4))
    made = {
        "lossy.jxl": bytes(imagecodecs.jpegxl_encode(rgb, distance=1.0)),
        "lossless.jxl": bytes(imagecodecs.jpegxl_encode(_pixels16(3), lossless=True)),
        "camera.jxl": bytes(
            imagecodecs.jpegxl_encode_jpeg(corpus("canon_eos_7d.jpg").read_bytes(), usecontainer=True)
        ),
    }
    made["truncated.jxl"] = made["lossy.jxl"][: len(made["lossy.jxl"]) // 2]
    for name, data in made.items():
        (inbox / name).write_bytes(data)
    return made


def test_jxl_from_another_tool_comes_in_and_goes_out(tmp_path: Path) -> None:
    """formats = ["jxl"] takes JPEG XL by content: a lossy one becomes a web JPEG, a 16-bit lossless one
    a 16-bit PNG with every sample, one that holds a camera JPEG gives that JPEG back byte for byte
    (archival, orientation kept), and a truncated one is quarantined, never half decoded."""
    rules = (
        '[[rule]]\nname = "in"\nmatch = { formats = ["jxl"] }\n'
        '[[rule.output]]\nformat = "jpeg"\npath = "web/{stem}.jpg"\n'
        '[[rule.output]]\nformat = "png"\npath = "png/{stem}.png"\n'
        '[[rule.output]]\nformat = "jpeg"\nprofile = "archival"\norientation = "keep"\n'
        'path = "orig/{stem}.jpg"\n'
    )
    write_config(tmp_path, rules)
    (tmp_path / "inbox").mkdir()
    _jxl_inputs(tmp_path / "inbox")
    from conftest import run_cli  # noqa: PLC0415

    done = run_cli("process", "inbox", cwd=tmp_path)
    assert "done 3, quarantined 1" in done.stderr + done.stdout, done.stderr
    out = tmp_path / "outbox"
    with Image.open(out / "web" / "lossy.jpg") as im:
        assert im.size == (1020, 768)
    got = pyvips.Image.new_from_file(str(out / "png" / "lossless.png"))
    assert got.format == "ushort"
    samples = np.ndarray(
        buffer=got.write_to_memory(), dtype=np.uint16, shape=(got.height, got.width, got.bands)
    )
    assert np.array_equal(samples, _pixels16(3))
    assert (out / "orig" / "camera.jpg").read_bytes() == corpus("canon_eos_7d.jpg").read_bytes()
    assert (out / "orig" / "lossy.jpg").read_bytes()[:2] == b"\xff\xd8"  # no JPEG inside: encoded
    (note,) = (tmp_path / "quarantine").glob("truncated.jxl.json")
    assert "JPEG XL" in note.read_text()


def test_a_jxl_larger_than_max_image_pixels_is_refused_from_its_header(tmp_path: Path) -> None:
    """The pixel count is read from the codestream header and refused before anything is decoded."""
    write_config(tmp_path, '[[rule]]\nname = "in"\n[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n',
                 "max_image_pixels = 5000\n")  # fmt: skip
    (tmp_path / "inbox").mkdir()
    big = np.zeros((100, 100, 3), np.uint8)
    (tmp_path / "inbox" / "big.jxl").write_bytes(bytes(imagecodecs.jpegxl_encode(big, lossless=True)))
    from conftest import run_cli  # noqa: PLC0415

    run_cli("process", "inbox", cwd=tmp_path)
    (note,) = (tmp_path / "quarantine").glob("big.jxl.json")
    assert "max_image_pixels" in note.read_text()


def test_restore_gives_the_jpeg_back_proven_and_never_overwrites(tmp_path: Path) -> None:
    """`hotfolder restore`: the archived JPEG back, checked against the archive's box and the ledger;
    a second restore to the same place, an archive written from pixels, and an archive whose recorded
    SHA-256 does not match all end in exit 1 with the reason."""
    web = '[[rule.output]]\nformat = "jxl"\nprofile = "web"\nmax_edge = 256\npath = "web/{stem}.jxl"\n'
    write_config(tmp_path, ARCHIVE + web)
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("olympus_pen_e-p3.jpg"), tmp_path / "inbox" / "p3.jpg")
    from conftest import run_cli  # noqa: PLC0415

    assert run_cli("process", "inbox", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "inbox" / "p3.jpg").exists()
    archive = tmp_path / "outbox" / "p3.jxl"
    back = tmp_path / "back"
    back.mkdir()
    done = run_cli("restore", str(archive), "--to", str(back), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "its archive box and the ledger" in done.stdout
    assert (back / "p3.jpg").read_bytes() == corpus("olympus_pen_e-p3.jpg").read_bytes()
    again = run_cli("restore", str(archive), "--to", str(back), cwd=tmp_path)
    assert again.returncode == 1 and "never overwritten" in again.stderr
    pixels = run_cli("restore", str(tmp_path / "outbox" / "web" / "p3.jxl"), cwd=tmp_path)
    assert pixels.returncode == 1 and "no JPEG reconstruction data" in pixels.stderr
    data = archive.read_bytes()
    at = data.index(b"hfsh") + 4
    forged = tmp_path / "forged.jxl"
    forged.write_bytes(data[:at] + b"0" * 64 + data[at + 64 :])
    wrong = run_cli("restore", str(forged), "--to", str(tmp_path), cwd=tmp_path)
    assert wrong.returncode == 1 and "differs from its archive box" in wrong.stderr
    assert not (tmp_path / "forged.jpg").exists()


def test_kill_9_during_jxl_jobs_loses_nothing_and_leaves_no_temp_file(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """kill -9 while JPEG XL archives are being written (a temp file is there), then a restart: every
    JPEG ends archived and deleted only with an archive that rebuilds it, none is lost, and no temp
    file is left in the inbox or the outbox."""
    from hotfolder.core.tempnames import TEMP_MARK  # noqa: PLC0415

    write_config(tmp_path, ARCHIVE)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources = [corpus(n) for n in CAMERA_JPEGS[:4]] + photos()[:4]
    log = tmp_path / "daemon.jsonl"
    first = DaemonProcess(tmp_path, log=log)
    daemons.append(first)
    first.started()
    for src in sources:
        shutil.copy(src, inbox / src.name)
    first.wait(lambda: any(TEMP_MARK in p.name for p in (tmp_path / "outbox").rglob("*")), 120, what="a temp")
    first.kill()
    second = DaemonProcess(tmp_path, log=log)
    daemons.append(second)
    second.wait(lambda: not list(inbox.iterdir()), 240, what="every JPEG archived and deleted")
    second.stop()
    for src in sources:
        archive = tmp_path / "outbox" / (src.stem + ".jxl")
        assert bytes(imagecodecs.jpegxl_decode_jpeg(archive.read_bytes(), numthreads=1)) == src.read_bytes()
    left = [p for p in tmp_path.rglob("*") if TEMP_MARK in p.name]
    assert not left, left


def test_an_animated_jxl_follows_frames(tmp_path: Path) -> None:
    """An animated JPEG XL (three frames by libjxl) becomes an animated PNG with its three frames, and
    with frames = "first" a still of the first; a format without animation says what it dropped."""
    frames = np.zeros((3, 20, 30, 3), np.uint8)
    frames[1], frames[2] = 100, 200
    src = tmp_path / "anim.jxl"
    src.write_bytes(bytes(imagecodecs.jpegxl_encode(frames, lossless=True)))
    done = run_outputs(
        tmp_path,
        src,
        output(format="png"),
        output(format="png", frames="first", path="{stem}.first.png"),
        output(format="jpeg", path="{stem}.jpg"),
    )
    assert done.status == "done", done.error
    every, first, jpeg = (w.dst for w in done.written)
    with Image.open(every) as im:
        assert getattr(im, "n_frames", 1) == 3
        seen = []
        for i in range(3):
            im.seek(i)
            seen.append(im.convert("RGB").getpixel((5, 5)))
        assert seen == [(0, 0, 0), (100, 100, 100), (200, 200, 200)]
    with Image.open(first) as im:
        assert getattr(im, "n_frames", 1) == 1 and im.convert("RGB").getpixel((5, 5)) == (0, 0, 0)
    assert any(event == "frames.dropped" for event, _ in done.notes), done.notes
    assert jpeg.exists()


def test_a_pq_source_stays_pq_in_the_codestream_and_reads_back_as_hdr(tmp_path: Path) -> None:
    """hdr = "keep" (archival): a 16-bit BT.2020 PQ PNG becomes a JPEG XL whose colour encoding says PQ,
    every sample kept (imagecodecs' decoder); read again by hotfolder it is PQ, so its archival PNG says
    cICP 9/16 again."""
    import struct  # noqa: PLC0415
    import zlib  # noqa: PLC0415

    ramp = np.linspace(0, 65535, 256 * 3, dtype=np.uint16).reshape(1, 256, 3).repeat(64, axis=0)
    png = tmp_path / "pq.png"
    pyvips.Image.new_from_memory(ramp.tobytes(), 256, 64, 3, "ushort").copy(interpretation="rgb16").pngsave(
        str(png), bitdepth=16, keep="none"
    )
    chunk = b"cICP" + bytes([9, 16, 0, 1])
    data = png.read_bytes()
    png.write_bytes(
        data[:33] + struct.pack(">I", 4) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]
    )
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = run_outputs(tmp_path / "one", png, output(format="jxl"))
    assert first.status == "done", first.error
    (archive,) = first.written
    assert np.array_equal(imagecodecs.jpegxl_decode(archive.dst.read_bytes()), ramp)
    again = run_outputs(tmp_path / "two", archive.dst, output(format="png"))
    assert again.status == "done", again.error
    (out,) = again.written
    written = out.dst.read_bytes()
    assert b"cICP" + bytes([9, 16, 0, 1]) in written
