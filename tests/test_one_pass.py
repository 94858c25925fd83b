"""Issue 31: the fast paths keep every guarantee. A web JPEG decoded and shrunk in one libvips pass gives
the pixels of the full decode; a truncated input or output still fails; a resized output's EXIF still
loses its thumbnail; `process` of one input runs without a pool; structlog loads without rich."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import piexif
import pytest
from PIL import Image, ImageChops

from conftest import output, photos, run_outputs, write_config
from hotfolder.errors import EncodeError, InputError
from hotfolder.render.colour import colour, srgb_profile
from hotfolder.render.decode import decode
from hotfolder.render.notes import Notes
from hotfolder.render.profiles import profile_for
from hotfolder.render.transform import Rendered, fit
from hotfolder.render.verify import verify


def camera_jpeg(size: tuple[int, int] = (3000, 2000)) -> bytes:
    """A camera-like JPEG: detail everywhere (noise over gradients) and EXIF with a thumbnail."""
    w, h = size
    noise = Image.effect_noise(size, 60)
    red = Image.linear_gradient("L").resize(size)
    blue = red.transpose(Image.Transpose.ROTATE_90).resize(size)
    im = Image.merge("RGB", (red, noise, blue))
    thumb = io.BytesIO()
    im.resize((160, 120)).save(thumb, "JPEG")
    exif = piexif.dump(
        {
            "0th": {piexif.ImageIFD.Make: b"Test", piexif.ImageIFD.XResolution: (300, 1)},
            "Exif": {piexif.ExifIFD.PixelXDimension: w, piexif.ExifIFD.PixelYDimension: h},
            "1st": {piexif.ImageIFD.XResolution: (72, 1), piexif.ImageIFD.YResolution: (72, 1)},
            "thumbnail": thumb.getvalue(),
        }
    )
    out = io.BytesIO()
    im.save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


@pytest.mark.parametrize("edge", [1024, 1600, 2048])
def test_one_pass_decode_gives_the_full_decodes_pixels(edge: int) -> None:
    """1024 and 1600 px come from libjpeg's 1/2 scale, 2048 from the full one: in both, the one libvips
    pass equals Pillow's decode followed by fit(), pixel for pixel."""
    data = camera_jpeg()
    one = decode(data, edge=edge, exact=True)
    full = decode(data, edge=edge)
    assert one.stored == (3000, 2000)
    assert max(one.image.size) == edge
    expected = fit(full.image, edge)
    assert one.image.size == expected.size
    assert ImageChops.difference(one.image, expected).getbbox() is None


def test_one_pass_decode_of_the_phone_photos_is_pixel_exact() -> None:
    for photo in photos()[:3]:
        data = photo.read_bytes()
        one = decode(data, edge=2048, exact=True)
        expected = fit(decode(data, edge=2048).image, 2048)
        assert ImageChops.difference(one.image, expected).getbbox() is None, photo.name


@pytest.mark.parametrize("cut", [0.3, 0.95])
def test_a_truncated_jpeg_still_fails_in_one_pass(cut: float) -> None:
    data = camera_jpeg()
    with pytest.raises(InputError, match="cannot decode this JPEG"):
        decode(data[: int(len(data) * cut)], edge=1024, exact=True)


@pytest.mark.parametrize("progressive", [False, True])
def test_a_truncated_written_jpeg_fails_its_verification_at_reduced_scale(progressive: bool) -> None:
    im = Image.open(io.BytesIO(camera_jpeg((2048, 1536))))
    im.load()
    web = output(format="jpeg", max_edge=2048, progressive=progressive)
    rendered = Rendered(views=[im], meta=decode(camera_jpeg((64, 48))).meta)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85, progressive=progressive)
    written = buf.getvalue()
    verify(written, rendered, web)  # whole: passes, and at its full size
    for cut in (0.5, 0.99):
        with pytest.raises(EncodeError, match="does not decode again"):
            verify(written[: int(len(written) * cut)], rendered, web)


def test_a_web_copy_made_in_one_pass_loses_the_stale_exif_thumbnail(tmp_path: Path) -> None:
    src = tmp_path / "cam.jpg"
    src.write_bytes(camera_jpeg())
    done = run_outputs(tmp_path, src, output(format="jpeg", max_edge=1200, path="{stem}.jpg"))
    assert done.status == "done", done.error
    written = tmp_path / "out" / "cam.jpg"
    exif = piexif.load(str(written))
    assert exif["thumbnail"] is None and not exif["1st"], "the thumbnail shows the picture before resizing"
    assert exif["Exif"][piexif.ExifIFD.PixelXDimension] == 1200
    with Image.open(written) as im:
        assert im.size == (1200, 800)


FORKSERVER = (
    "import sys\nfrom multiprocessing import forkserver\nfrom hotfolder.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(code, forkserver._forkserver._forkserver_pid is not None)\n"
)


def process_in(folder: Path, *args: str) -> tuple[int, bool]:
    """`hotfolder process` in a fresh interpreter: (exit code, whether it started the fork server)."""
    done = subprocess.run(
        [sys.executable, "-c", FORKSERVER, "process", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    code, started = done.stdout.split()[-2:]
    return int(code), started == "True"


def test_process_of_one_input_runs_it_without_a_pool(tmp_path: Path) -> None:
    """Run in the command's own process, a job ends as in a worker: the original deleted only once its
    output is written and verified; a broken one quarantined, never deleted."""
    write_config(
        tmp_path,
        '[[rule]]\nname = "web"\noriginal = "delete"\n'
        '[[rule.output]]\nformat = "jpeg"\npath = "{stem}.jpg"\n',
    )
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jpg").write_bytes(camera_jpeg((800, 600)))
    assert process_in(tmp_path, "inbox") == (0, False)
    with Image.open(tmp_path / "outbox" / "a.jpg") as im:
        assert im.size == (800, 600)
    assert not (inbox / "a.jpg").exists()
    # A broken one alone: quarantined by the same process, said by the exit code.
    (inbox / "b.jpg").write_bytes(camera_jpeg((800, 600))[:5000])
    assert process_in(tmp_path, "inbox") == (1, False)
    assert [p.name for p in (tmp_path / "quarantine").rglob("b.jpg")] == ["b.jpg"]
    # Two inputs: the pool, started from the fork server.
    for name in ("c.jpg", "d.jpg"):
        (inbox / name).write_bytes(camera_jpeg((640, 480)))
    assert process_in(tmp_path, "inbox", "--force") == (0, True)
    assert sorted(p.name for p in (tmp_path / "outbox").glob("*.jpg")) == ["a.jpg", "c.jpg", "d.jpg"]


def fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` run by a new interpreter, where nothing is imported yet (as at a command's start)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def test_structlog_is_loaded_at_first_use_without_rich_off_a_terminal_and_rich_still_imports() -> None:
    """A worker's modules take a logger at import: structlog is loaded only when one is used (the fork
    server never loads it), then without rich off a terminal; rich still imports after."""
    code = (
        "import sys, json\nfrom hotfolder import logs\nimport hotfolder.run.warm\n"
        "seen = ['structlog' in sys.modules]\nlogs.configure(fmt='json')\nlogs.get().info('test.event')\n"
        "seen += ['structlog' in sys.modules, 'rich' in sys.modules]\n"
        "import rich.console\nprint(json.dumps(seen + ['rich.console' in sys.modules]))\n"
    )
    done = fresh_python(code)
    event, result = done.stdout.splitlines()
    assert json.loads(event)["event"] == "test.event"
    assert json.loads(result) == [False, True, False, True]


def test_logging_set_up_before_structlog_loads_applies_at_the_first_event() -> None:
    """configure() does not import structlog (a command pays for it at its first event); preload()
    imports it on its own thread while the job runs; the first event comes out as configured (JSON),
    colorama hidden from the import and importable after."""
    code = (
        "import sys, json, threading\nfrom hotfolder import logs\n"
        "logs.configure(fmt='console')\nlogs.configure(fmt='json', level='warning')\n"
        "seen = ['structlog' in sys.modules]\nlogs.preload()\n"
        "seen += [[t.name for t in threading.enumerate() if t.name == 'hf-logs-import']]\n"
        "logs.get().info('not.shown')\nlogs.get().warning('test.event', src='a.jpg')\n"
        "seen += ['colorama' in sys.modules]\nimport importlib.util\n"
        "absent = importlib.util.find_spec('colorama') is None  # only the docs extra brings it\n"
        "print(json.dumps(seen + [absent or __import__('colorama') is sys.modules['colorama']]))\n"
    )
    done = fresh_python(code)
    event, result = done.stdout.splitlines()
    assert json.loads(event) == {
        **json.loads(event),
        "event": "test.event",
        "src": "a.jpg",
        "level": "warning",
    }
    assert json.loads(result) == [False, ["hf-logs-import"], False, True]


def test_an_event_logged_while_structlog_is_being_imported_waits_for_it() -> None:
    """The first event may come while another thread imports structlog (preload's, or the events'
    sender logging first): it waits for the import (structlog half made was used and raised
    AttributeError, the event lost), then comes out as configured."""
    code = (
        "import sys, threading\nfrom hotfolder import logs\nlogs.configure(fmt='json')\n"
        "logs.preload()\n"
        "while 'structlog' not in sys.modules:  # the import has begun, not ended\n    pass\n"
        "logs.get().info('first.event', n=1)\n"
        "threading.Thread(target=logs.get().info, args=('second.event',)).start()\n"
    )
    done = fresh_python(code)
    assert not done.stderr, done.stderr
    assert [json.loads(line)["event"] for line in done.stdout.splitlines()] == ["first.event", "second.event"]


def adobe_rgb_jpeg() -> bytes:
    """camera_jpeg's picture tagged with an Adobe RGB profile (a wide-gamut camera JPEG)."""
    with Image.open(io.BytesIO(camera_jpeg())) as im:
        out = io.BytesIO()
        im.save(out, "JPEG", quality=92, icc_profile=profile_for("adobe"), exif=im.info["exif"])
    return out.getvalue()


def test_one_pass_converts_to_srgb_as_imagecms_does() -> None:
    """Every output wants sRGB: the profile's colour is converted inside the libvips stream, within one
    level of ImageCms converting the shrunk picture (what colour() did), and the source then says sRGB."""
    data = adobe_rgb_jpeg()
    one = decode(data, edge=1024, exact=True, srgb=True)
    assert one.meta.icc == srgb_profile() and one.colour.origin == "icc"
    full = decode(data, edge=1024)
    assert full.meta.icc == profile_for("adobe")
    web = output(format="jpeg", max_edge=1024)
    expected, icc = colour(fit(full.image, 1024), full.meta, web, Notes(), full.colour)
    assert icc == srgb_profile()
    diff = ImageChops.difference(one.image, expected)
    assert max(hi for _, hi in diff.getextrema()) <= 1
    # Unconverted in the stream when an output keeps the profile (an archival copy beside the web one).
    kept = decode(data, edge=1024, exact=True, srgb=False)
    assert kept.meta.icc == profile_for("adobe")
    assert ImageChops.difference(kept.image, fit(full.image, 1024)).getbbox() is None


def test_a_web_copy_and_an_archive_of_a_wide_gamut_jpeg(tmp_path: Path) -> None:
    src = tmp_path / "adobe.jpg"
    src.write_bytes(adobe_rgb_jpeg())
    done = run_outputs(tmp_path, src, output(format="jpeg", max_edge=1024, path="web/{stem}.jpg"))
    assert done.status == "done", done.error
    with Image.open(tmp_path / "out" / "web" / "adobe.jpg") as im:
        assert im.info["icc_profile"] == srgb_profile()
    both = run_outputs(
        tmp_path,
        src,
        output(format="jpeg", max_edge=1024, path="web2/{stem}.jpg"),
        output(format="jpeg", profile="archival", max_edge=1024, path="arch/{stem}.jpg"),
        name="adobe2.jpg",
    )
    assert both.status == "done", both.error
    with (
        Image.open(tmp_path / "out" / "arch" / "adobe2.jpg") as a,
        Image.open(tmp_path / "out" / "web2" / "adobe2.jpg") as w,
    ):
        assert a.info["icc_profile"] == profile_for("adobe")
        assert w.info["icc_profile"] == srgb_profile()
