"""Fidelity on real corpus files: every output carries exactly the metadata its options say,
upright, colour-correct, at full precision, with its frames, and verified before commit."""

from __future__ import annotations

import io
from pathlib import Path

import exifread
import numpy as np
import pillow_heif
import pytest
import pyvips
from PIL import Image, ImageChops, ImageCms

from conftest import corpus, exiftool, output, process_job, run_outputs
from hotfolder.decide.examine import examine
from hotfolder.decide.job import Job
from hotfolder.decide.match import Facts, decide
from hotfolder.decide.sniff import register_codecs
from hotfolder.errors import EncodeError
from hotfolder.render import pngcodec
from hotfolder.render.deep import Deep, tiff_bytes
from hotfolder.render.metadata import Metadata
from hotfolder.render.transform import Rendered
from hotfolder.render.verify import verify
from hotfolder.settings.rules import Match, Rule

register_codecs()


def tags(meta: dict[str, object], *families: str) -> set[str]:
    return {k.split(":", 1)[1] for k in meta if k.split(":")[0] in families}


def only_output(outcome: object) -> Path:
    assert outcome.status == "done", outcome.error  # type: ignore[attr-defined]
    (written,) = outcome.written  # type: ignore[attr-defined]
    return written.dst  # type: ignore[no-any-return]


def notes_of(outcome: object) -> str:
    return " ".join(f"{e} {f}" for e, f in outcome.notes)  # type: ignore[attr-defined]


def deep(path: Path) -> np.ndarray:
    v = pyvips.Image.new_from_file(str(path))
    assert v.format == "ushort", v.format
    return np.ndarray(buffer=v.write_to_memory(), dtype=np.uint16, shape=(v.height, v.width, v.bands))


# 1. Metadata never travels implicitly ----------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["canon_eos_7d.jpg", "olympus_pen_e-p3.jpg", "pentax_k10d.jpg", "sony_dsc-hx5v_2.jpg"]
)
def test_archival_png_keeps_every_exif_tag(tmp_path: Path, name: str) -> None:
    """Archival PNG: every EXIF and MakerNote tag exiftool sees in the source is in the output."""
    dst = only_output(run_outputs(tmp_path, corpus(name), output(format="png")))
    src, out = exiftool(corpus(name)), exiftool(dst)
    assert tags(src, "EXIF", "MakerNotes") <= tags(out, "EXIF", "MakerNotes")


@pytest.mark.parametrize("compression", ["none", "lzw", "deflate", "zstd"])
def test_camera_jpeg_to_tiff_keeps_exif_with_every_compression(tmp_path: Path, compression: str) -> None:
    """TIFF output holds IFD0, ExifIFD, GPS and Interop tags whatever the compression (libtiff path)."""
    dst = only_output(
        run_outputs(
            tmp_path, corpus("fujifilm_finepixs1pro_1.jpg"), output(format="tiff", compression=compression)
        )
    )
    src, out = exiftool(corpus("fujifilm_finepixs1pro_1.jpg")), exiftool(dst)
    for group in ("ExifIFD", "GPS", "InteropIFD"):
        want = {t for t in tags(src, "EXIF") if t.startswith(group + ":")}
        assert want <= tags(out, "EXIF"), group
    assert any(t.startswith("GPS:") for t in tags(out, "EXIF"))
    assert out["EXIF:IFD0:Make"] == src["EXIF:IFD0:Make"]
    assert out["XMP:XMP-x:XMPToolkit"] == src["XMP:XMP-x:XMPToolkit"]  # XMP in tag 700
    assert any(k.startswith("IPTC:") for k in out)  # IPTC in tag 33723/34377
    with Image.open(dst) as im, Image.open(corpus("fujifilm_finepixs1pro_1.jpg")) as ref:
        assert im.tobytes() == ref.convert("RGB").tobytes()


def test_web_output_has_no_gps_xmp_or_iptc(tmp_path: Path) -> None:
    """Web JPEG of a GPS-tagged photo: no GPS (EXIF or XMP), no XMP, no IPTC, EXIF otherwise kept."""
    name = "fujifilm_finepixs1pro_1.jpg"
    src = exiftool(corpus(name))
    assert any(k.startswith("EXIF:GPS:") for k in src) and any(k.startswith("IPTC:") for k in src)
    out = exiftool(only_output(run_outputs(tmp_path, corpus(name), output(format="jpeg"))))
    assert not any(k.startswith(("EXIF:GPS:", "XMP:", "IPTC:")) for k in out)
    assert out["EXIF:ExifIFD:DateTimeOriginal"] == src["EXIF:ExifIFD:DateTimeOriginal"]
    assert out["EXIF:IFD0:Model"] == src["EXIF:IFD0:Model"]


def test_gps_strip_removes_the_bytes_not_just_the_pointer(tmp_path: Path) -> None:
    """Stripped GPS values do not travel on as unreferenced bytes inside the EXIF block."""
    name = "apple_iphone_4.jpg"
    with Image.open(corpus(name)) as im:
        raw = im.info["exif"]
        lat = im.getexif().get_ifd(0x8825)[2]
    dst = only_output(run_outputs(tmp_path, corpus(name), output(format="png", gps="strip")))
    with Image.open(dst) as im:
        kept = im.info["exif"]
        assert 0x8825 not in im.getexif()
    assert len(kept) >= len(raw) - 6  # patched in place, not rebuilt
    packed = b"".join(
        int(v.numerator).to_bytes(4, "big") + int(v.denominator).to_bytes(4, "big") for v in lat
    )
    assert packed in raw and packed not in kept


def test_xmp_kept_in_png_itxt_and_orientation_removed(tmp_path: Path) -> None:
    """Archival PNG carries XMP (iTXt) and the XMP GPS; Orientation is not left on upright pixels."""
    dst = only_output(run_outputs(tmp_path, corpus("pug.heic"), output(format="png")))
    out = exiftool(dst)
    assert any(k.startswith("XMP:") for k in out)
    assert out.get("EXIF:IFD0:Orientation", 1) == 1 and "XMP:XMP-tiff:Orientation" not in out


def test_webp_exif_without_prefix_reaches_jpeg(tmp_path: Path) -> None:
    """WebP stores EXIF without 'Exif\\0\\0'; the JPEG output still has readable EXIF."""
    dst = only_output(run_outputs(tmp_path, corpus("issue_473_java.webp"), output(format="jpeg")))
    with dst.open("rb") as fp:
        found = exifread.process_file(fp, details=False)
    assert "Image Make" in found or "EXIF DateTimeOriginal" in found


def test_oversized_exif_follows_the_ladder_with_a_warning(tmp_path: Path) -> None:
    """EXIF over JPEG's 64 KB is rebuilt smaller (IFD1 and padding gone) and the drop is logged."""
    with Image.open(corpus("canon_eos_7d.jpg")) as im:
        ex = im.getexif()
        ex.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + b"x" * 70_000  # UserComment
        src = tmp_path / "big_exif.png"
        im.save(src, exif=ex.tobytes())
    outcome = run_outputs(tmp_path, src, output(format="jpeg"))
    dst = only_output(outcome)
    assert "metadata.dropped" in notes_of(outcome)
    with Image.open(dst) as im:
        assert im.getexif().get(0x0110) == "Canon EOS 7D" or 0x0110 not in im.getexif()


# 2. Orientation ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(2, 9))
def test_every_exif_orientation_comes_out_upright_once(tmp_path: Path, n: int) -> None:
    """Landscape_2..8 come out looking like Landscape_1, in PNG and JPEG, tag gone or 1."""
    dst = run_outputs(
        tmp_path, corpus(f"landscape_{n}.jpg"), output(format="png"), output(format="jpeg", path="{stem}.jpg")
    )
    assert dst.status == "done"
    with Image.open(corpus("landscape_1.jpg")) as ref:
        ref_rgb = ref.convert("RGB")
        for w in dst.written:
            with Image.open(w.dst) as im:
                assert im.size == ref.size
                diff = ImageChops.difference(im.convert("RGB"), ref_rgb).convert("L")
                assert sum(diff.get_flattened_data()) / (im.width * im.height) < 8
                assert im.getexif().get(0x0112, 1) == 1


def test_orientation_keep_leaves_pixels_and_tag(tmp_path: Path) -> None:
    """orientation = keep: stored pixels and the Orientation tag travel unchanged."""
    dst = only_output(
        run_outputs(tmp_path, corpus("landscape_6.jpg"), output(format="png", orientation="keep"))
    )
    with Image.open(dst) as im, Image.open(corpus("landscape_6.jpg")) as src:
        assert im.size == src.size and im.getexif()[0x0112] == 6


def test_heif_irot_is_not_applied_twice(tmp_path: Path) -> None:
    """arrow.heic (EXIF 6 with irot): decoded upright once; outputs say Orientation 1, no irot."""
    outcome = run_outputs(
        tmp_path,
        corpus("arrow.heic"),
        output(format="jpeg"),
        output(format="heif", path="{stem}.heic", preset="ultrafast"),  # orientation is the subject
    )
    assert outcome.status == "done"
    with Image.open(corpus("arrow.heic")) as ref:
        for w in outcome.written:
            with Image.open(w.dst) as im:
                assert im.size == ref.size
                assert im.getexif().get(0x0112, 1) == 1


# 3. Colour -----------------------------------------------------------------------------------


def test_display_p3_to_srgb_converts_pixels(tmp_path: Path) -> None:
    """icc = srgb: P3 pixels converted (not relabelled), sRGB embedded; archival keeps Display P3."""
    outcome = run_outputs(
        tmp_path,
        corpus("pug.heic"),
        output(format="jpeg", quality=95),
        output(format="png", path="{stem}.png"),
    )
    web, archival = (w.dst for w in outcome.written)
    assert "sRGB" in str(exiftool(web).get("ICC_Profile:ICC-header:ProfileDescription", "")) or "sRGB" in str(
        exiftool(web)
    )
    assert "Display P3" in str(exiftool(archival))
    with Image.open(corpus("pug.heic")) as src, Image.open(web) as out:
        icc = src.info["icc_profile"]
        expected = ImageCms.profileToProfile(
            src.convert("RGB"),
            ImageCms.ImageCmsProfile(io.BytesIO(icc)),
            ImageCms.createProfile("sRGB"),
            outputMode="RGB",
        )
        assert expected is not None
        small = (out.width // 8, out.height // 8)
        a = np.asarray(out.convert("RGB").resize(small), dtype=int)
        b = np.asarray(expected.resize(out.size).resize(small), dtype=int)
        c = np.asarray(src.convert("RGB").resize(out.size).resize(small), dtype=int)
        assert np.abs(a - b).mean() < np.abs(a - c).mean()  # closer to the converted than to the raw values


def test_cmyk_with_profile_goes_through_it(tmp_path: Path) -> None:
    """A CMYK JPEG with a SWOP profile: PNG gets sRGB via the profile (logged); TIFF keeps CMYK."""
    outcome = run_outputs(
        tmp_path,
        corpus("multiple_icc_segments.jpg"),
        output(format="png"),
        output(format="tiff", path="{stem}.tif"),
    )
    png, tif = (w.dst for w in outcome.written)
    assert "colour.converted" in notes_of(outcome)
    with Image.open(png) as a, Image.open(tif) as b, Image.open(corpus("multiple_icc_segments.jpg")) as src:
        assert a.mode == "RGB" and b.mode == "CMYK"
        assert b.tobytes() == src.tobytes()
        naive = np.asarray(src.convert("RGB"), dtype=int)
        assert np.abs(np.asarray(a, dtype=int) - naive).mean() > 3  # managed, not the naive formula


def test_nclx_only_heif_is_not_left_without_colour(tmp_path: Path) -> None:
    """cat.hif describes colour with NCLX only: PNG gets an sRGB ICC, HEIF keeps the NCLX box."""
    outcome = run_outputs(
        tmp_path,
        corpus("cat.hif"),
        output(format="png", max_edge=512),
        output(format="heif", max_edge=512, icc="keep", path="{stem}.heic"),
    )
    png, heic = (w.dst for w in outcome.written)
    assert "sRGB" in str(exiftool(png))
    heif = pillow_heif.open_heif(heic)
    assert heif.info.get("nclx_profile", {}).get("color_primaries") == 1


# 4. Bit depth --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiff_16bit_rgb.tiff", "rgba_16_128x128.png", "monkey16.png"])
@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_16_bit_colour_stays_16_bit_and_identical(tmp_path: Path, name: str, fmt: str) -> None:
    """16-bit RGB(A) sources give 16-bit PNG/TIFF with identical samples (Pillow alone gives 8)."""
    dst = only_output(run_outputs(tmp_path, corpus(name), output(format=fmt, path="{stem}." + fmt)))
    assert np.array_equal(deep(dst), deep(corpus(name)))


def test_16_bit_grey_stays_16_bit(tmp_path: Path) -> None:
    """16-bit grey TIFF to PNG keeps every sample."""
    dst = only_output(run_outputs(tmp_path, corpus("issue_151.tif"), output(format="png")))
    with Image.open(dst) as a, Image.open(corpus("issue_151.tif")) as b:
        assert a.mode == "I;16" and np.array_equal(np.asarray(a.convert("I")), np.asarray(b.convert("I")))


def test_16_bit_to_8_bit_is_scaled_not_clamped(tmp_path: Path) -> None:
    """16-bit samples in an 8-bit JPEG are v/257 (within JPEG's loss), never clamped at 255, and logged."""
    outcome = run_outputs(tmp_path, corpus("issue_151.tif"), output(format="webp", lossless=True))
    assert "precision.reduced" in notes_of(outcome)
    with Image.open(only_output(outcome)) as a, Image.open(corpus("issue_151.tif")) as b:
        got = np.asarray(a.convert("L"), dtype=int)
        want = np.round(np.asarray(b.convert("I"), dtype=float) / 257)
        assert np.abs(got - want).max() <= 1


def test_10_bit_heif_keeps_precision_in_heif_and_png(tmp_path: Path) -> None:
    """A 10-bit HEIF stays 10-bit in HEIF and becomes 16-bit PNG with the same samples."""
    heif_out = output(format="heif", max_edge=800, path="{stem}.heic")
    outcome = run_outputs(tmp_path, corpus("cat.hif"), heif_out, output(format="png"))
    heic, png = (w.dst for w in outcome.written)
    assert pillow_heif.open_heif(heic).info["bit_depth"] == 10
    src = np.asarray(pillow_heif.open_heif(corpus("cat.hif"), convert_hdr_to_8bit=False))
    assert np.array_equal(deep(png) >> 6, src >> 6)


# 5. Modes ------------------------------------------------------------------------------------


MODES = {
    "RGBA": lambda: Image.new("RGBA", (40, 30), (255, 0, 0, 0)),
    "LA": lambda: Image.new("LA", (40, 30), (90, 128)),
    "P+tRNS": lambda: Image.open(corpus("p_trns_single.png")),
    "1": lambda: Image.open(corpus("multipage.tif")),
    "I;16": lambda: Image.new("I;16", (40, 30), 40000),
    "CMYK": lambda: Image.new("CMYK", (40, 30), (0, 242, 230, 0)),
    "L": lambda: Image.new("L", (40, 30), 77),
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("fmt", ["png", "tiff", "jpeg", "heif", "webp", "avif"])
def test_every_mode_into_every_format(tmp_path: Path, mode: str, fmt: str) -> None:
    """Each mode converts correctly or keeps itself; transparency survives where the format holds it."""
    src = tmp_path / "src.tif"
    im = MODES[mode]()
    im.save(src, "TIFF" if mode != "P+tRNS" else "PNG")
    if mode == "P+tRNS":
        src = src.rename(tmp_path / "src.png")
    outcome = run_outputs(tmp_path, src, output(format=fmt, path="{stem}." + fmt))
    dst = only_output(outcome)
    with Image.open(dst) as out, Image.open(src) as ref:
        out.load()
        assert out.size == ref.size
        if fmt in {"png", "webp", "heif", "avif", "tiff"} and (ref.has_transparency_data or "A" in ref.mode):
            assert "A" in out.mode or out.has_transparency_data
        if fmt == "jpeg" and mode == "RGBA":
            assert out.convert("RGB").getpixel((0, 0)) == (255, 255, 255)  # flattened on the background


# 6. Frames -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"), [("iss634.gif", "webp"), ("apng_delay.png", "png"), ("animation_lossy.webp", "webp")]
)
def test_animation_keeps_frames_and_timing(tmp_path: Path, name: str, fmt: str) -> None:
    """Animated sources keep every frame and its duration in formats that animate."""
    dst = only_output(run_outputs(tmp_path, corpus(name), output(format=fmt, path="{stem}." + fmt)))
    with Image.open(corpus(name)) as src, Image.open(dst) as out:
        assert out.n_frames == src.n_frames
        want, got = [], []
        for i in range(src.n_frames):
            for im, durations in ((src, want), (out, got)):
                im.seek(i)
                im.load()  # WebP fills in a frame's duration only once it is loaded (Pillow #9790)
                durations.append(int(im.info.get("duration") or 0))
        assert got == want


def test_multipage_tiff_keeps_pages_and_jpeg_logs_the_rest(tmp_path: Path) -> None:
    """Multi-page TIFF keeps its pages in TIFF; a JPEG output holds page 1 and says so."""
    outcome = run_outputs(
        tmp_path,
        corpus("multipage.tif"),
        output(format="tiff", path="{stem}.tif"),
        output(format="jpeg", path="{stem}.jpg"),
    )
    tif, _ = (w.dst for w in outcome.written)
    with Image.open(tif) as out, Image.open(corpus("multipage.tif")) as src:
        assert out.n_frames == src.n_frames
    assert "frames.dropped" in notes_of(outcome)


# 7. Input safety -----------------------------------------------------------------------------


def test_half_copied_heic_is_refused(tmp_path: Path) -> None:
    """A HEIC cut in half decodes 'fine' in libheif (green tiles); the box check refuses it."""
    half = tmp_path / "half.heic"
    data = corpus("pug.heic").read_bytes()
    half.write_bytes(data[: len(data) // 2])
    outcome = run_outputs(tmp_path, half, output(format="png"))
    assert outcome.status == "quarantined" and "truncated HEIF" in (outcome.error or "")


def test_eps_named_jpg_never_reaches_a_decoder(tmp_path: Path) -> None:
    """PostScript is not on the allowlist: an EPS named .jpg is quarantined, Ghostscript never runs."""
    eps = tmp_path / "evil.jpg"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    outcome = run_outputs(tmp_path, eps, output(format="png"))
    assert outcome.status == "quarantined" and "not a recognisable image" in (outcome.error or "")


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    """max_image_pixels refuses larger images before decoding."""
    src = tmp_path / "in.png"
    Image.new("RGB", (300, 300)).save(src)
    job = Job(
        src=src,
        relpath="in.png",
        rules=(Rule("r", None, outputs=(output(format="png"),)),),
        output_root=tmp_path / "out",
        max_pixels=50_000,
    )
    outcome = process_job(job)
    assert outcome.status == "quarantined" and "max_image_pixels" in (outcome.error or "")


def test_camera_raw_is_never_decoded_and_may_be_copied(tmp_path: Path) -> None:
    """A DNG (a TIFF container) is never taken by a rule without formats = ["raw"]; a raw rule copies it
    byte for byte even when LibRaw cannot read it (this one is an RGB TIFF with a DNG tag)."""
    dng = tmp_path / "photo.dng"
    Image.new("RGB", (8, 8)).save(dng, "TIFF", tiffinfo={50706: b"\x01\x04\x00\x00"})
    head = dng.read_bytes()[:4096]
    assert examine(head, "photo.dng", (Rule("any", None, outputs=(output(format="png"),)),)).rule is None
    assert examine(head, "renamed.tif", (Rule("any", None, outputs=(output(format="png"),)),)).rule is None
    copy_rule = Rule("raw", None, match=Match(formats=frozenset({"raw"})), outputs=(output(format="copy"),))
    assert decide([copy_rule], Facts("photo.dng", "raw")).rule is copy_rule
    job = Job(src=dng, relpath="photo.dng", rules=(copy_rule,), output_root=tmp_path / "out")
    assert only_output(process_job(job)).read_bytes() == dng.read_bytes()


# 8. Verify before commit, all or nothing -------------------------------------------------------


def test_one_failing_output_commits_none(tmp_path: Path) -> None:
    """A 20000 px wide strip: WebP holds at most 16383 px a side and refuses, so the JPEG is not
    committed either."""
    src = tmp_path / "strip.png"
    Image.new("RGB", (20000, 4), (10, 200, 30)).save(src)
    outcome = run_outputs(tmp_path, src, output(format="jpeg", path="{stem}.jpg"), output(format="webp"))
    assert outcome.status == "quarantined" and "webp" in (outcome.error or "").lower(), outcome.error
    assert not list((tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else True
    assert (tmp_path / "quarantine" / "strip.png").exists()


def test_verify_catches_a_lossless_mismatch() -> None:
    """verify() decodes the written bytes and refuses a lossless output whose pixels differ."""
    im = Image.new("RGB", (20, 10), (1, 2, 3))
    rendered = Rendered(views=[im], meta=Metadata())
    out = output(format="png")
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (1, 2, 4)).save(buf, "PNG")
    with pytest.raises(EncodeError, match="differs"):
        verify(buf.getvalue(), rendered, out)


def png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG of these samples, by the encoder the PNG writer uses."""
    height, width, bands = pixels.shape
    return pngcodec.encode(pixels.tobytes(), (width, height), bands=bands, bits=16, level=6, optimize=False)


@pytest.mark.parametrize("fmt", ["tiff", "png"])
def test_verify_catches_a_16_bit_mismatch_and_a_truncated_16_bit_file(fmt: str) -> None:
    """A 16-bit output is decoded again at full precision: one sample off by one, or a file cut short,
    is refused (the check compares while libvips decodes, never through 8 bits)."""
    pixels = np.random.default_rng(7).integers(0, 65536, (40, 60, 3), dtype=np.uint16)
    rendered = Rendered(views=None, meta=Metadata(), deep=Deep(pixels=pixels, bits=16))
    out = output(format=fmt)
    good = (
        tiff_bytes(rendered.deep, compression="deflate", predictor=True) if fmt == "tiff" else png16(pixels)
    )
    verify(good, rendered, out)  # the same samples pass, without making an 8-bit view
    assert rendered.views is None
    off = pixels.copy()
    off[39, 59, 2] ^= 1  # the lowest bit of the last sample: lost by any 8-bit comparison
    bad = (
        tiff_bytes(Deep(pixels=off, bits=16), compression="deflate", predictor=True)
        if fmt == "tiff"
        else png16(off)
    )
    with pytest.raises(EncodeError, match="differs"):
        verify(bad, rendered, out)
    with pytest.raises(EncodeError, match="decode"):
        verify(good[: len(good) * 2 // 3], rendered, out)


@pytest.mark.parametrize(("name", "expected"), [("ultra-hdr.jpg", "gain map"), ("pug.heic", "depth map")])
def test_auxiliary_images_are_logged_when_dropped(tmp_path: Path, name: str, expected: str) -> None:
    """Gain maps and depth maps cannot be written; the job says so instead of dropping them silently."""
    outcome = run_outputs(tmp_path, corpus(name), output(format="jpeg", max_edge=256))
    assert outcome.status == "done" and expected in notes_of(outcome)


def test_twelve_bit_jpeg_is_refused_with_its_real_cause(tmp_path: Path) -> None:
    """A valid 12-bit JPEG is not called corrupt: the refusal names the 8-bit decoder limit."""
    outcome = run_outputs(tmp_path, corpus("monkey12.jpg"), output(format="png"))
    assert outcome.status == "quarantined" and "12-bit JPEG" in (outcome.error or "")


def test_lossless_heif_of_a_limited_range_source_is_exact(tmp_path: Path) -> None:
    """A source NCLX with full_range 0 must not make the lossless HEIF limited-range (and lossy)."""
    src = tmp_path / "limited.heic"
    noise = np.random.default_rng(7).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(
        src,
        "HEIF",
        quality=90,
        color_primaries=5,
        transfer_characteristics=1,
        matrix_coefficients=5,
        full_range_flag=0,
    )
    outcome = run_outputs(
        tmp_path, src, output(format="heif", lossless=True, icc="keep", path="{stem}.out.heic")
    )
    assert outcome.status == "done", outcome.error  # verify() compares every pixel


def test_outputs_are_deterministic(tmp_path: Path) -> None:
    """The same input gives the same bytes on every run (no timestamps in embedded profiles)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = only_output(run_outputs(tmp_path / "a", corpus("pug.heic"), output(format="jpeg", max_edge=300)))
    second = only_output(run_outputs(tmp_path / "b", corpus("pug.heic"), output(format="jpeg", max_edge=300)))
    assert first.read_bytes() == second.read_bytes()
