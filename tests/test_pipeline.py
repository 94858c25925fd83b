"""One job end to end on real corpus files: outputs decode, EXIF survives, bad input is parked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import exifread
import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from conftest import corpus, process_job
from hotfolder.decide.job import Job
from hotfolder.settings.config import load_config
from hotfolder.settings.watches import Watch


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, object]:
    config = load_config(None, cwd=tmp_path)
    (tmp_path / "inbox").mkdir()
    return tmp_path, config


def job_for(tmp_path: Path, config: object, name: str, as_name: str | None = None) -> Job:
    dst = tmp_path / "inbox" / (as_name or name)
    shutil.copy(corpus(name), dst)
    return Job(
        src=dst,
        relpath=dst.name,
        rules=config.rules,
        output_root=config.output_root,  # type: ignore[attr-defined]
        watch=Watch(path=tmp_path / "inbox", name="inbox"),
    )  # type: ignore[attr-defined]


def exif_of(path: Path) -> dict[str, str]:
    with path.open("rb") as fp:
        return {k: str(v) for k, v in exifread.process_file(fp, details=False).items()}


def test_camera_jpeg_gives_png_and_jpeg_with_exif(setup: tuple[Path, object]) -> None:
    """The default rule writes an archival PNG and a web JPEG carrying DateTimeOriginal, Make, Model."""
    tmp_path, config = setup
    outcome = process_job(job_for(tmp_path, config, "canon_eos_7d.jpg"))
    assert outcome.status == "done", outcome.error
    png, jpg = tmp_path / "outbox/archive/canon_eos_7d.png", tmp_path / "outbox/web/canon_eos_7d.jpg"
    assert sorted(w.dst for w in outcome.written) == sorted([png, jpg])
    src = exif_of(corpus("canon_eos_7d.jpg"))
    for out in (png, jpg):
        got = exif_of(out)
        for tag in ("EXIF DateTimeOriginal", "Image Make", "Image Model"):
            assert got[tag] == src[tag], (out, tag)
    with Image.open(png) as a, Image.open(corpus("canon_eos_7d.jpg")) as b:
        assert a.tobytes() == b.convert("RGB").tobytes()  # archival PNG is lossless


def test_orientation_is_applied_once(setup: tuple[Path, object]) -> None:
    """An EXIF Orientation=6 source comes out upright with Orientation 1, matching Landscape_1."""
    tmp_path, config = setup
    outcome = process_job(job_for(tmp_path, config, "landscape_6.jpg"))
    assert outcome.status == "done"
    with (
        Image.open(tmp_path / "outbox/archive/landscape_6.png") as out,
        Image.open(corpus("landscape_1.jpg")) as ref,
    ):
        assert out.size == ref.size
        diff = ImageChops.difference(out.convert("RGB"), ref.convert("RGB"))
        mean = sum(diff.convert("L").get_flattened_data()) / (out.width * out.height)
        assert mean < 6
        assert out.getexif().get(0x0112) == 1


def test_web_output_is_resized_and_dimensions_updated(setup: tuple[Path, object], tmp_path: Path) -> None:
    """max_edge shrinks the long edge of the upright image; ExifImageWidth/Height follow, IFD1 goes."""
    _, config = setup
    big = tmp_path / "inbox" / "big.jpg"
    with Image.open(corpus("samsung_gt-i9000_galaxy_s.jpg")) as im:  # Orientation 6, 640x480 stored
        im.resize((3600, 2700)).save(big, exif=im.info["exif"])
    outcome = process_job(Job(src=big, relpath="big.jpg", rules=config.rules, output_root=config.output_root))  # type: ignore[attr-defined]
    assert outcome.status == "done"
    web = tmp_path / "outbox/web/big.jpg"
    with Image.open(web) as im:
        assert im.size == (1536, 2048)
        exif = im.getexif()
        assert exif[0x0112] == 1
        assert (exif.get_ifd(0x8769)[0xA002], exif.get_ifd(0x8769)[0xA003]) == (1536, 2048)
    assert not any(k.startswith("Thumbnail") for k in exif_of(web))


@pytest.mark.parametrize("name", ["truncated_jpeg.jpg", "broken.png", "truncated_image.png"])
def test_broken_input_is_quarantined_with_reason(setup: tuple[Path, object], name: str) -> None:
    """A selected file that cannot be decoded is moved to quarantine with a JSON sidecar naming the cause."""
    tmp_path, config = setup
    job = job_for(tmp_path, config, name)
    outcome = process_job(job)
    assert outcome.status == "quarantined"
    assert not job.src.exists()
    moved = tmp_path / "quarantine" / name
    assert moved.read_bytes() == corpus(name).read_bytes()
    note = json.loads((tmp_path / "quarantine" / f"{name}.json").read_text())
    assert note["rule"] == "default" and note["src"] == str(job.src)
    assert "InputError" in note["error"]
    assert not (tmp_path / "outbox").exists() or not any((tmp_path / "outbox").rglob("*"))


def test_non_image_is_left_alone(setup: tuple[Path, object]) -> None:
    """A .txt matches no rule: unmatched, not moved, nothing written."""
    tmp_path, config = setup
    src = tmp_path / "inbox" / "notes.txt"
    src.write_text("shopping list")
    outcome = process_job(
        Job(
            src=src,
            relpath="notes.txt",
            rules=config.rules,  # type: ignore[attr-defined]
            output_root=config.output_root,
        )
    )  # type: ignore[attr-defined]
    assert outcome.status == "unmatched"
    assert src.exists() and not (tmp_path / "outbox").exists() and not (tmp_path / "quarantine").exists()


def test_content_decides_format_not_name(setup: tuple[Path, object]) -> None:
    """A HEIF named .jpg is decoded as HEIF and processed."""
    tmp_path, config = setup
    outcome = process_job(job_for(tmp_path, config, "samplefilehub_heif_content.jpg"))
    assert (outcome.status, outcome.format) == ("done", "heif")


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "CMYK"])
def test_lossless_verification_sees_one_sample_off_in_any_band(mode: str) -> None:
    """The fast pixel comparison (ImageChops) must still catch a single wrong sample, alpha included."""
    from hotfolder.render.verify import _equal  # noqa: PLC0415 - the comparison itself is under test

    a = Image.new(mode, (64, 48), 0)
    assert _equal(a, a.copy())
    for band in range(len(mode)):
        b = a.copy()
        value = [0] * len(mode)
        value[band] = 1
        b.putpixel((63, 47), tuple(value) if len(mode) > 1 else value[0])
        assert not _equal(a, b), f"{mode} band {band}"


@pytest.mark.parametrize("name", ["canon_eos_7d.jpg", "hopper_gray.jpg", "pil_sample_cmyk.jpg"])
def test_libvips_shrink_matches_pillow_lanczos(name: str) -> None:
    """fit() shrinks L/RGB/CMYK with libvips for speed: same size, and within rounding of Pillow's Lanczos."""
    from hotfolder.render.transform import fit  # noqa: PLC0415

    with Image.open(corpus(name)) as im:
        im.load()
        edge = max(im.size) * 2 // 5
        ours = fit(im, edge)
        ref = im.resize(ours.size, Image.Resampling.LANCZOS)
    assert max(ours.size) == edge and ours.mode == im.mode
    diff = ImageChops.difference(ours, ref)
    mean = sum(ImageStat.Stat(diff).mean) / len(ours.getbands())
    assert mean < 0.5, f"mean difference {mean:.3f} levels"


def test_smaller_outputs_derive_from_a_larger_one(tmp_path: Path) -> None:
    """Three sizes of one photo: each is the right size and looks like a direct shrink of the original."""
    from conftest import output, run_outputs  # noqa: PLC0415

    outs = [output(format="png", max_edge=e, path=f"{e}/{{stem}}.png") for e in (600, 300, 150)]
    outcome = run_outputs(tmp_path, corpus("canon_eos_7d.jpg"), *outs)
    assert outcome.status == "done", outcome.error
    with Image.open(corpus("canon_eos_7d.jpg")) as src:
        upright = ImageOps.exif_transpose(src)
        for w, edge in zip(outcome.written, (600, 300, 150), strict=True):
            with Image.open(w.dst) as got:
                assert max(got.size) == edge
                ref = upright.resize(got.size, Image.Resampling.LANCZOS).convert(got.mode)
                mean = sum(ImageStat.Stat(ImageChops.difference(got, ref)).mean) / 3
                assert mean < 1.0, f"{edge}: mean difference {mean:.3f} levels"
