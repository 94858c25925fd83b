"""HDR and wide gamut: every picture comes out looking right and says what it is.

Judged against independent references, never against hotfolder's own code: colour-science's
BT.2100 PQ/HLG and sRGB/BT.709 transfers and primaries matrices, ffmpeg's zscale + tonemap filters
for the SDR rendering, lcms (through libvips) for what a written ICC profile means, exiftool and a
PNG chunk reader for the signalling. Test files are made here: PQ/HLG gradients, a real photo graded
to PQ, AVIF by avifenc, HEIF by pillow-heif.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import piexif
import pillow_heif
import pytest
import pyvips
from PIL import Image, ImageCms

from conftest import corpus, exiftool, output, run_cli, run_outputs, shared, tool, write_config

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # colour-science warns that SciPy and Matplotlib are absent
    import colour

SPACES = colour.RGB_COLOURSPACES
D50 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D50"]
needs_avifenc = pytest.mark.usefixtures("avifenc")
needs_ffmpeg = pytest.mark.usefixtures("ffmpeg")


@pytest.fixture
def avifenc() -> str:
    """libavif's encoder makes the 10-bit PQ AVIF inputs (skipped without it, a failure under CI=1)."""
    return tool("avifenc", "libavif-bin")


@pytest.fixture
def ffmpeg() -> str:
    """ffmpeg's zscale + tonemap: the reference HDR rendering."""
    return tool("ffmpeg", "ffmpeg")


# Making test files ----------------------------------------------------------------------------


def _png16(path: Path, pixels: np.ndarray) -> Path:
    h, w, bands = pixels.shape
    vimg = pyvips.Image.new_from_memory(pixels.astype(np.uint16).tobytes(), w, h, bands, "ushort")
    vimg.copy(interpretation="rgb16").pngsave(str(path), bitdepth=16, keep="none")
    return path


def _gradient(h: int = 96, w: int = 256, top: float = 0.8) -> np.ndarray:
    """A signal ramp left to right, red to blue top to bottom (code values up to `top`)."""
    x = np.linspace(0, top, w)[None, :].repeat(h, 0)
    t = np.linspace(0, 1, h)[:, None].repeat(w, 1)
    return np.round(np.stack([x * (1 - 0.7 * t), x * 0.6, x * (0.3 + 0.7 * t)], -1) * 65535)


def _graded_photo(edge: int = 512) -> np.ndarray:
    """A real sRGB photo graded to BT.2020 PQ: diffuse white at 203 cd/m² (BT.2408), its highlights
    expanded to ~1000 cd/m², as 16-bit code values (colour-science throughout)."""
    im = Image.open(shared("photos", "Ultra_HDR_Samples_Originals_01.jpg")).convert("RGB")
    im.thumbnail((edge, edge))
    linear = colour.models.eotf_sRGB(np.asarray(im, dtype=np.float64) / 255)
    nits = 203 * linear * (1 + 4 * linear**2)
    wide = colour.RGB_to_RGB(
        nits, colour.RGB_COLOURSPACES["ITU-R BT.709"], colour.RGB_COLOURSPACES["ITU-R BT.2020"]
    )
    return np.round(np.clip(colour.models.eotf_inverse_ST2084(np.clip(wide, 0, None)), 0, 1) * 65535)


def _avif(png: Path, cicp: str) -> Path:
    """A 10-bit 4:4:4 full-range AVIF from a 16-bit PNG by libavif's avifenc, with this NCLX only."""
    out = png.with_suffix(".avif")
    subprocess.run(
        [
            "avifenc",
            "-d",
            "10",
            "-y",
            "444",
            "--cicp",
            cicp,
            "-r",
            "full",
            "-s",
            "8",
            "--min",
            "0",
            "--max",
            "8",
            "--ignore-icc",
            str(png),
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


def _heif(path: Path, pixels: np.ndarray, primaries: int, transfer: int, matrix: int = 9) -> Path:
    """A HEIF by pillow-heif described by NCLX only: 10-bit from 16-bit samples, else 8-bit."""
    h, w, _ = pixels.shape
    deep = pixels.max() > 255
    mode, data = ("RGB;16", pixels.astype(np.uint16)) if deep else ("RGB", pixels.astype(np.uint8))
    pillow_heif.from_bytes(mode, (w, h), data.tobytes()).save(
        path,
        quality=95,
        chroma=444,
        color_primaries=primaries,
        transfer_characteristics=transfer,
        matrix_coefficients=matrix,
        full_range_flag=1,
    )
    return path


# Judging --------------------------------------------------------------------------------------


def _ffmpeg_sdr(png: Path, transfer: str, primaries: str, peak_nits: float) -> np.ndarray:
    """ffmpeg's own HDR → SDR: zscale to linear light (203 cd/m² = 1.0), BT.709 primaries, the tonemap
    filter (mobius, no desaturation) from the peak, sRGB transfer; 8-bit RGB."""
    out = png.with_name(png.stem + "-ffmpeg.png")
    graph = (
        f"zscale=tin={transfer}:min=gbr:pin={primaries}:rin=full:t=linear:npl=203:m=gbr:p={primaries}"
        ":r=full,format=gbrpf32le,zscale=p=bt709:t=linear:m=gbr:r=full,"
        f"tonemap=tonemap=mobius:desat=0:peak={peak_nits / 203},"
        "zscale=t=iec61966-2-1:m=gbr:r=full:p=bt709,format=rgb24"
    )
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(png), "-vf", graph, "-frames:v", "1", str(out)], check=True
    )
    return _grid(Image.open(out))


def _grid(im: Image.Image) -> np.ndarray:
    """A 64x64 box-filtered grid of RGB samples (0-255)."""
    return np.asarray(im.convert("RGB").resize((64, 64), Image.Resampling.BOX), dtype=np.float64)


def _naive(png: Path) -> np.ndarray:
    """The HDR signal shown as if it were sRGB: what an unlabelled output looks like."""
    vimg = pyvips.Image.new_from_file(str(png))
    data = np.ndarray(
        buffer=(vimg >> 8).cast("uchar").write_to_memory(), dtype=np.uint8, shape=(vimg.height, vimg.width, 3)
    )
    return _grid(Image.fromarray(data))


def _saturation(g: np.ndarray) -> float:
    hi, lo = g.max(-1), g.min(-1)
    return float(np.mean((hi - lo) / np.maximum(hi, 1)))


def _contrast(g: np.ndarray) -> float:
    return float(np.std(g @ np.array([0.2126, 0.7152, 0.0722])))


def _looks_like(got: np.ndarray, reference: np.ndarray, naive: np.ndarray) -> None:
    """Nearer the reference than the naive rendering, with the reference's contrast and saturation."""
    mad, naive_mad = float(np.mean(np.abs(got - reference))), float(np.mean(np.abs(naive - reference)))
    assert mad < naive_mad / 3 and mad < 12, (mad, naive_mad)
    for measure in (_saturation, _contrast):
        ref, ours, bare = measure(reference), measure(got), measure(naive)
        assert abs(ours - ref) < 0.15 * ref, (measure.__name__, ours, ref)
        assert abs(bare - ref) > 0.25 * ref, (measure.__name__, bare, ref)  # the measure tells them apart


def _png_chunks(path: Path) -> dict[bytes, bytes]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = {}, 8
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks.setdefault(kind, data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return chunks


def _icc_light(icc: bytes, signal: np.ndarray) -> np.ndarray:
    """What lcms (libvips' icc_import) says a profile means: Y (D50-relative) of grey code values."""
    n = len(signal)
    ramp = np.round(np.repeat(signal[:, None], 3, 1) * 65535).astype(np.uint16)
    vimg = pyvips.Image.new_from_memory(ramp.tobytes(), n, 1, 3, "ushort").copy(interpretation="rgb16")
    vimg.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    lab = np.ndarray(
        buffer=vimg.icc_import(embedded=True, intent="relative").write_to_memory(),
        dtype=np.float32,
        shape=(n, 3),
    )
    return np.asarray(colour.Lab_to_XYZ(lab, D50))[:, 1]


def _follows(icc: bytes, transfer: Any) -> None:
    """The profile's grey axis against a reference transfer: within 5e-4 of white at the 33 nodes of
    the grid lcms samples an RGB → Lab transform on, within 5e-3 between them (its interpolation of
    PQ's steep top: 3.5e-3 measured)."""
    nodes, between = np.linspace(0, 1, 33), np.linspace(0, 1, 129)
    assert np.max(np.abs(_icc_light(icc, nodes) - transfer(nodes))) < 5e-4
    assert np.max(np.abs(_icc_light(icc, between) - transfer(between))) < 5e-3


def _icc_red_xy(icc: bytes) -> np.ndarray:
    vimg = pyvips.Image.new_from_memory(np.array([65535, 0, 0], np.uint16).tobytes(), 1, 1, 3, "ushort")
    vimg = vimg.copy(interpretation="rgb16")
    vimg.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    lab = np.ndarray(
        buffer=vimg.icc_import(embedded=True, intent="relative").write_to_memory(),
        dtype=np.float32,
        shape=(3,),
    )
    return np.asarray(colour.XYZ_to_xy(colour.Lab_to_XYZ(lab, D50)))


def _reference_red_xy(space: str) -> np.ndarray:
    """The space's red primary adapted to D50 by Bradford, as colour-science computes it."""
    cs = colour.RGB_COLOURSPACES[space]
    xyz = cs.matrix_RGB_to_XYZ @ np.array([1.0, 0.0, 0.0])
    adapted = colour.adaptation.chromatic_adaptation_VonKries(
        xyz, colour.xy_to_XYZ(cs.whitepoint), colour.xy_to_XYZ(D50), "Bradford"
    )
    return np.asarray(colour.XYZ_to_xy(adapted))


def _run(folder: Path, src: Path, *outputs: Any) -> Any:
    folder.mkdir(exist_ok=True)
    return run_outputs(folder, src, *outputs)


def _profile_name(icc: bytes | None) -> str:
    assert icc, "no ICC profile"
    return str(ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))))


def _written(processed: Any, fmt: str) -> Path:
    paths = [w.dst for w in processed.written if w.format == fmt]
    assert len(paths) == 1, processed.written
    return Path(paths[0])


# The three defects ----------------------------------------------------------------------------


@needs_avifenc
@needs_ffmpeg
def test_pq_avif_archives_say_their_colour_and_the_web_jpeg_is_tone_mapped(tmp_path: Path) -> None:
    """A 10-bit P3 PQ AVIF (NCLX only, a real photo graded to PQ): the 16-bit PNG says cICP 12/16 and
    carries an ICC profile, the TIFF's ICC profile means PQ in P3 to lcms, and the web JPEG looks like
    ffmpeg's tone map of the same signal, not like the PQ signal labelled sRGB."""
    graded = _graded_photo()
    # Graded in BT.2020, carried in P3 here: re-express the same light in P3 primaries.
    nits = colour.models.eotf_ST2084(graded / 65535)
    p3 = colour.RGB_to_RGB(nits, SPACES["ITU-R BT.2020"], SPACES["Display P3"])
    png = _png16(
        tmp_path / "graded.png",
        np.round(np.clip(colour.models.eotf_inverse_ST2084(np.clip(p3, 0, None)), 0, 1) * 65535),
    )
    src = _avif(png, "12/16/0")
    done = _run(
        tmp_path / "run",
        src,
        output(format="png"),
        output(format="tiff"),
        output(format="jpeg", path="{stem}.jpg"),
    )
    assert done.status == "done", done.error

    archive = _written(done, "png")
    chunks = _png_chunks(archive)
    assert chunks[b"IHDR"][8] == 16
    assert chunks[b"cICP"] == bytes([12, 16, 0, 1])
    assert b"iCCP" in chunks
    tags = exiftool(archive)
    assert tags.get("PNG:PNG-cICP:TransferCharacteristics") == 16, tags
    assert tags.get("PNG:PNG-cICP:ColorPrimaries") == 12

    tiff = _written(done, "tiff")
    assert "P3" in str(exiftool(tiff).get("ICC_Profile:ProfileDescription"))
    icc = Image.open(tiff).info["icc_profile"]
    _follows(icc, lambda v: colour.models.eotf_ST2084(v) / 10000)
    assert np.max(np.abs(_icc_red_xy(icc) - _reference_red_xy("Display P3"))) < 1e-3

    reference = _ffmpeg_sdr(png, "smpte2084", "smpte432", peak_nits=float(nits.max()))
    _looks_like(_grid(Image.open(_written(done, "jpeg"))), reference, _naive(png))


def test_wide_gamut_nclx_heif_is_converted_for_the_web(tmp_path: Path) -> None:
    """An 8-bit BT.2020 (sRGB transfer) HEIF described only by NCLX, to a web HEIF (icc = "srgb"):
    the pixels are converted to sRGB (colour-science's BT.2020 → BT.709 of the same light), not
    left as they are under an sRGB label; the archival PNG keeps them and says cICP 9/13."""
    rng = np.random.default_rng(7)
    patches = rng.integers(30, 226, size=(6, 8, 3)).repeat(16, 0).repeat(16, 1)
    src = _heif(tmp_path / "wide.heic", patches, primaries=9, transfer=13, matrix=6)
    done = _run(tmp_path / "web", src, output(format="heif", quality=95, chroma="444"))
    assert done.status == "done", done.error
    decoded = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64)
    linear = colour.models.eotf_sRGB(decoded / 255)
    srgb = colour.RGB_to_RGB(linear, SPACES["ITU-R BT.2020"], SPACES["sRGB"])
    expected = colour.models.eotf_inverse_sRGB(np.clip(srgb, 0, 1)) * 255
    web = Image.open(_written(done, "heif"))
    got = np.asarray(web.convert("RGB"), dtype=np.float64)
    assert np.mean(np.abs(decoded - expected)) > 15  # unconverted pixels would be far off
    assert np.mean(np.abs(got - expected)) < 3, np.mean(np.abs(got - expected))
    assert "sRGB" in _profile_name(web.info.get("icc_profile"))

    archived = _run(tmp_path / "archive", src, output(format="png"))
    assert archived.status == "done", archived.error
    chunks = _png_chunks(_written(archived, "png"))
    assert chunks[b"cICP"] == bytes([9, 13, 0, 1]) and b"iCCP" in chunks
    archive = np.asarray(Image.open(_written(archived, "png")).convert("RGB"), dtype=np.float64)
    assert np.array_equal(archive, decoded)  # archival: the same samples, now described


@pytest.mark.parametrize(("transfer", "name"), [(16, "pq"), (18, "hlg")])
def test_hdr_heif_gets_every_output_and_keeps_hdr_in_heif(tmp_path: Path, transfer: int, name: str) -> None:
    """A 10-bit BT.2020 PQ or HLG HEIF: the default web HEIF (tone-mapped, sRGB), web JPEG and archival
    TIFF are all written, nothing refused; hdr = "keep" writes a 10-bit HEIF with the source's NCLX."""
    src = _heif(tmp_path / f"{name}.heic", _gradient(), primaries=9, transfer=transfer)
    done = _run(
        tmp_path / "run",
        src,
        output(format="heif"),
        output(format="jpeg", path="{stem}.jpg"),
        output(format="tiff"),
    )
    assert done.status == "done", done.error
    mapped = pillow_heif.open_heif(_written(done, "heif"), convert_hdr_to_8bit=False)  # SDR at 10 bits
    assert mapped.info.get("nclx_profile") is None
    assert "sRGB" in _profile_name(mapped.info.get("icc_profile"))
    assert "BT.2020" in str(exiftool(_written(done, "tiff")).get("ICC_Profile:ProfileDescription"))

    kept = _run(tmp_path / "keep", src, output(format="heif", hdr="keep"))
    assert kept.status == "done", kept.error
    heif = pillow_heif.open_heif(_written(kept, "heif"), convert_hdr_to_8bit=False)
    assert heif.info["bit_depth"] == 10
    nclx = heif.info["nclx_profile"]
    assert (nclx["color_primaries"], nclx["transfer_characteristics"]) == (9, transfer)


# Tone mapping against ffmpeg, HLG and gradients -----------------------------------------------


@needs_ffmpeg
@pytest.mark.parametrize(("transfer", "zimg"), [(16, "smpte2084"), (18, "arib-std-b67")])
def test_tone_map_of_a_gradient_follows_ffmpeg(tmp_path: Path, transfer: int, zimg: str) -> None:
    """PQ and HLG gradients in BT.2020 tone-mapped for a web JPEG look like ffmpeg's rendering."""
    pixels = _gradient(h=128, w=256, top=0.75 if transfer == 16 else 1.0)
    png = _png16(tmp_path / "ramp.png", pixels)
    src = _heif(tmp_path / "ramp.heic", pixels, primaries=9, transfer=transfer)
    done = _run(tmp_path / "run", src, output(format="jpeg", path="{stem}.jpg", quality=95))
    assert done.status == "done", done.error
    assert any(event == "colour.tonemapped" for event, _ in done.notes), done.notes
    peak = 1000.0 if transfer == 18 else max(1000.0, float(colour.models.eotf_ST2084(pixels.max() / 65535)))
    reference = _ffmpeg_sdr(png, zimg, "bt2020", peak_nits=peak)
    got = _grid(Image.open(_written(done, "jpeg")))
    mad, naive_mad = float(np.mean(np.abs(got - reference))), float(np.mean(np.abs(_naive(png) - reference)))
    assert mad < naive_mad / 2 and mad < 12, (mad, naive_mad)


# Every way a colour is said -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cicp", "space", "transfer"),
    [
        ((12, 13), "Display P3", colour.models.eotf_sRGB),
        ((9, 1), "ITU-R BT.2020", colour.models.oetf_inverse_BT709),
        ((9, 16), "ITU-R BT.2020", lambda v: colour.models.eotf_ST2084(v) / 10000),
        ((12, 18), "Display P3", lambda v: np.power(colour.models.oetf_inverse_ARIBSTDB67(v) / 12, 1.2)),
    ],
)
def test_built_profiles_mean_what_the_nclx_says(
    tmp_path: Path, cicp: tuple[int, int], space: str, transfer: Any
) -> None:
    """The profile a NCLX-only HEIF's TIFF carries, read by lcms: its grey ramp follows colour-science's
    transfer function and its red primary is the space's, adapted to D50."""
    src = _heif(tmp_path / "nclx.heic", _gradient(h=32, w=64), primaries=cicp[0], transfer=cicp[1])
    done = _run(tmp_path / "run", src, output(format="tiff"))
    assert done.status == "done", done.error
    icc = Image.open(_written(done, "tiff")).info["icc_profile"]
    _follows(icc, transfer)
    assert np.max(np.abs(_icc_red_xy(icc) - _reference_red_xy(space))) < 1e-3


def test_untagged_adobe_rgb_camera_jpeg_is_understood(tmp_path: Path) -> None:
    """A camera JPEG in Adobe RGB with no ICC profile, only EXIF ColorSpace "uncalibrated" and Interop
    index R03 (DCF): the archival JPEG gets an Adobe RGB profile, the web JPEG is converted to sRGB."""
    src = tmp_path / "_DSC0001.JPG"
    exif = piexif.dump(
        {
            "Exif": {piexif.ExifIFD.ColorSpace: 0xFFFF},
            "Interop": {piexif.InteropIFD.InteroperabilityIndex: b"R03"},
        }
    )
    patch = np.array([[[40, 180, 60]]], dtype=np.uint8).repeat(32, 0).repeat(32, 1)
    Image.fromarray(patch).save(src, quality=98, exif=exif)
    done = _run(
        tmp_path / "run",
        src,
        output(format="jpeg", path="{stem}-a.jpg", profile="archival"),
        output(format="jpeg", path="{stem}-w.jpg"),
    )
    assert done.status == "done", done.error
    archival, web = (Path(w.dst) for w in done.written)
    assert "Adobe RGB" in str(exiftool(archival).get("ICC_Profile:ProfileDescription"))
    decoded = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64)[16, 16]
    linear = np.power(decoded / 255, 563 / 256)
    srgb = colour.RGB_to_RGB(linear, SPACES["Adobe RGB (1998)"], SPACES["sRGB"])
    expected = colour.models.eotf_inverse_sRGB(np.clip(srgb, 0, 1)) * 255
    got = np.asarray(Image.open(web).convert("RGB"), dtype=np.float64)[16, 16]
    assert np.max(np.abs(got - expected)) < 4, (got, expected)
    assert np.max(np.abs(decoded - expected)) > 20


def test_png_cicp_source_is_hdr_and_an_own_pq_tiff_reads_back_as_hdr(tmp_path: Path) -> None:
    """A 16-bit PNG whose cICP says BT.2020 PQ is tone-mapped for the web; the archival TIFF written
    from it, read again, is recognised as PQ by its profile's cicp tag and tone-mapped alike."""
    png = _png16(tmp_path / "ramp.png", _gradient())
    data = png.read_bytes()
    chunk = b"cICP" + bytes([9, 16, 0, 1])
    import zlib  # noqa: PLC0415

    cicp = struct.pack(">I", 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
    png.write_bytes(data[:33] + cicp + data[33:])
    first = _run(tmp_path / "one", png, output(format="tiff"), output(format="jpeg", path="{stem}.jpg"))
    assert first.status == "done", first.error
    again = _run(
        tmp_path / "two",
        _written(first, "tiff"),
        output(format="jpeg", path="{stem}.jpg"),
        output(format="png"),
    )
    assert again.status == "done", again.error
    assert _png_chunks(_written(again, "png"))[b"cICP"] == bytes(
        [9, 16, 0, 1]
    )  # said again from the cicp tag
    a = _grid(Image.open(_written(first, "jpeg")))
    b = _grid(Image.open(_written(again, "jpeg")))
    assert float(np.mean(np.abs(a - b))) < 2
    assert float(np.mean(np.abs(a - _naive(png)))) > 10


# Load-time refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_hdr_keep_where_it_cannot_work_is_a_load_error(tmp_path: Path, fmt: str) -> None:
    """hdr = "keep" on JPEG or WebP (8-bit SDR), or on AVIF without a 10-bit writer that keeps NCLX
    (none here), is refused by `check` with the file, rule, key and line, and what would work."""
    ext = {"jpeg": "jpg"}.get(fmt, fmt)
    rules = (
        f'[[rule]]\nname = "hdr"\n[[rule.output]]\nformat = "{fmt}"\npath = "{{stem}}.{ext}"\nhdr = "keep"\n'
    )
    write_config(tmp_path, rules)
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "output.hdr" in said and "hdr" in said and ":6" in said, said
    assert 'hdr = "tonemap"' in said and "heif" in said, said


def test_a_heif_output_is_never_refused_for_hdr_it_can_carry(tmp_path: Path) -> None:
    """HDR kept at 12 bits, and at 8 bits when asked: the NCLX goes with it; nothing is quarantined."""
    src = _heif(tmp_path / "pq.heic", _gradient(), primaries=9, transfer=16)
    done = _run(
        tmp_path / "run",
        src,
        output(format="heif", path="{stem}-12.heic", hdr="keep", bit_depth=12),
        output(format="heif", path="{stem}-8.heic", hdr="keep", bit_depth=8),
    )
    assert done.status == "done", done.error
    for written, depth in zip(sorted(Path(w.dst) for w in done.written), (12, 8), strict=True):
        heif = pillow_heif.open_heif(io.BytesIO(written.read_bytes()), convert_hdr_to_8bit=False)
        assert heif.info["bit_depth"] == depth
        assert heif.info["nclx_profile"]["transfer_characteristics"] == 16


def test_explain_says_what_the_colour_is(tmp_path: Path) -> None:
    """`explain` prints the one colour decision every output reads: an HDR HEIF's NCLX, and sRGB."""
    _heif(tmp_path / "hlg.heic", _gradient(), primaries=9, transfer=18)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "plain.png")
    hlg = run_cli("explain", "hlg.heic", cwd=tmp_path)
    assert hlg.returncode == 0, hlg.stderr
    assert "colour: BT.2020, HLG (ARIB STD-B67) (CICP 9/18/9), from NCLX - HDR" in hlg.stdout, hlg.stdout
    plain = run_cli("explain", "plain.png", cwd=tmp_path)
    assert "colour: sRGB (nothing describes it)" in plain.stdout, plain.stdout


# Gain maps ------------------------------------------------------------------------------------


def _gain_map_of(path: Path) -> tuple[str, Image.Image | None]:
    """libvips' (libultrahdr's) reading of a JPEG: its loader, and the gain map it finds."""
    vimg = pyvips.Image.new_from_file(str(path))
    if "gainmap-data" not in vimg.get_fields():
        return vimg.get("vips-loader"), None
    return vimg.get("vips-loader"), Image.open(io.BytesIO(vimg.get("gainmap-data")))


@pytest.mark.parametrize("orientation", [1, 6])
def test_gain_map_keep_resizes_and_turns_the_map_with_the_picture(tmp_path: Path, orientation: int) -> None:
    """An Ultra HDR JPEG (3840x2160, a 960x540 map) to a 1024 px web JPEG with gain_map = "keep": an
    Ultra HDR JPEG again (MPF, two images, libultrahdr finds the map), the map a quarter of the output
    and turned with it, its content the source map's; without the option the map is dropped, logged."""
    src = tmp_path / "uhdr.jpg"
    shutil.copy(corpus("ultra-hdr.jpg"), src)
    if orientation != 1:
        tool("exiftool", "libimage-exiftool-perl")
        turn = [f"-Orientation={orientation}", "-n", str(src)]
        subprocess.run(["exiftool", "-q", "-overwrite_original", *turn], check=True)
    keep = output(format="jpeg", path="{stem}-hdr.jpg", gain_map="keep", max_edge=1024)
    done = _run(tmp_path / "run", src, keep, output(format="jpeg", path="{stem}.jpg", max_edge=1024))
    assert done.status == "done", done.error
    kept, plain = (Path(w.dst) for w in done.written)
    loader, gain_map = _gain_map_of(kept)
    assert loader.startswith("uhdrload") and gain_map is not None
    picture = Image.open(kept)
    want = (1024, 576) if orientation == 1 else (576, 1024)
    assert picture.size == want
    assert gain_map.size == (want[0] // 4, want[1] // 4)
    assert exiftool(kept).get("MPF:MPF0:NumberOfImages") == 2
    _, source_map = _gain_map_of(corpus("ultra-hdr.jpg"))
    assert source_map is not None
    if orientation == 6:
        source_map = source_map.transpose(Image.Transpose.ROTATE_270)
    expected = np.asarray(
        source_map.convert("L").resize(gain_map.size, Image.Resampling.BOX), dtype=np.float64
    )
    got = np.asarray(gain_map.convert("L"), dtype=np.float64)
    assert np.mean(np.abs(got - expected)) < 4, np.mean(np.abs(got - expected))
    assert np.std(expected) > 10  # a map with content, so the comparison means something

    loader, none = _gain_map_of(plain)
    assert loader.startswith("jpegload") and none is None
    assert any(event == "auxiliary.dropped" and "gain map" in str(f) for event, f in done.notes), done.notes


def test_gain_map_keep_applies_to_jpeg_only(tmp_path: Path) -> None:
    """gain_map on another format is a load error naming the key and the line."""
    rules = (
        '[[rule]]\nname = "g"\n[[rule.output]]\nformat = "webp"\npath = "{stem}.webp"\ngain_map = "keep"\n'
    )
    write_config(tmp_path, rules)
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "output.gain_map" in said and "does not apply to format 'webp'" in said, said
