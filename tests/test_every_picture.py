"""Every picture right: print resolution, damaged metadata, animations with transparency, extensions
that say the format, options that are honoured, extra channels and layers, and authorship stamps.
Real files made here with Pillow/libvips, the real CLI, exiftool as the judge."""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from conftest import corpus, exiftool, run_cli, write_config


def process(tmp_path: Path, rules: str, *files: Path, extra: str = "") -> dict[str, Any]:
    """`hotfolder process` over the files (copied into in/); returns the JSON events by name."""
    write_config(tmp_path, rules, extra)
    (tmp_path / "in").mkdir(exist_ok=True)
    for f in files:
        if f.parent != tmp_path / "in":
            shutil.copy(f, tmp_path / "in" / f.name)
    result = run_cli("process", "--log-format", "json", str(tmp_path / "in"), cwd=tmp_path)
    events: dict[str, Any] = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            e = json.loads(line)
            events.setdefault(e["event"], []).append(e)
    events["_result"] = result
    return events


def outputs(*specs: str) -> str:
    """[[rule.output]] tables from 'format path [key=value ...]' lines."""
    text = '[[rule]]\nname = "r"\n'
    for spec in specs:
        fmt, path, *options = spec.split()
        text += f'[[rule.output]]\nformat = "{fmt}"\npath = "{path}"\n' + "".join(f"{o}\n" for o in options)
    return text


def tags(path: Path, *names: str) -> dict[str, Any]:
    """Chosen exiftool tags (group:name), every instance (-a)."""
    found = exiftool(path)
    return {k: v for k, v in found.items() if any(k.endswith(":" + n) for n in names)}


# 1. Print resolution ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3000x2000 scan as PNG (pHYs 23622 px/m = 600 dpi), TIFF (600/inch, and 240/cm), JPEG (JFIF 300).

    Made once for the module (4 s each time): the tests only copy them into their own inbox."""
    folder = tmp_path_factory.mktemp("scans")
    with Image.open(corpus("landscape_1.jpg")) as im:
        big = im.resize((3000, 2000))
    made = {
        "png": folder / "scan.png",
        "tif": folder / "scan_tif.tif",
        "cm": folder / "scan_cm.tif",
        "jpg": folder / "scan_jpg.jpg",
        "none": folder / "plain.png",
    }
    big.save(made["png"], dpi=(600, 600))
    big.save(made["tif"], dpi=(600, 600))
    big.save(made["cm"], tiffinfo={282: 240.0, 283: 240.0, 296: 3})
    big.save(made["jpg"], dpi=(300, 300), quality=90)
    big.save(made["none"])
    return made


def test_the_default_rules_carry_the_source_resolution_and_keep_the_physical_size(
    tmp_path: Path, scans: dict[str, Path]
) -> None:
    """rules/default.toml: the archival PNG says 600 dpi (pHYs 23622 px/m); the 2048 px web JPEG keeps
    the printed size, 600 * 2048 / 3000 = 409.6 dpi (JFIF's integer: 410)."""
    events = process(
        tmp_path, (Path(__file__).parent.parent / "rules" / "default.toml").read_text(), scans["png"]
    )
    assert events["_result"].returncode == 0, events["_result"].stderr
    png = exiftool(tmp_path / "outbox" / "archive" / "scan.png")
    assert png["PNG:PNG-pHYs:PixelsPerUnitX"] == 23622 and png["PNG:PNG-pHYs:PixelUnits"] == 1
    web = tags(tmp_path / "outbox" / "web" / "scan.jpg", "XResolution", "YResolution", "ResolutionUnit")
    assert web["JFIF:XResolution"] == 410 and web["JFIF:ResolutionUnit"] == 1


def test_each_writer_keeps_the_unit_the_source_used(tmp_path: Path, scans: dict[str, Path]) -> None:
    """TIFF 600/inch and 240/cm, JPEG JFIF 300: archival TIFF and PNG, web JPEG full size."""
    rules = outputs("tiff tif/{stem}.tif", "png png/{stem}.png", "jpeg jpg/{stem}.jpg")
    assert process(tmp_path, rules, scans["tif"], scans["cm"], scans["jpg"])["_result"].returncode == 0
    out = tmp_path / "outbox"
    inch = tags(out / "tif" / "scan_tif.tif", "XResolution", "ResolutionUnit")
    assert inch["EXIF:IFD0:XResolution"] == 600 and inch["EXIF:IFD0:ResolutionUnit"] == 2
    cm = tags(out / "tif" / "scan_cm.tif", "XResolution", "ResolutionUnit")
    assert cm["EXIF:IFD0:XResolution"] == 240 and cm["EXIF:IFD0:ResolutionUnit"] == 3
    assert exiftool(out / "png" / "scan_cm.png")["PNG:PNG-pHYs:PixelsPerUnitX"] == 24000
    cm_jpeg = tags(out / "jpg" / "scan_cm.jpg", "XResolution", "ResolutionUnit")
    assert cm_jpeg["JFIF:XResolution"] == 240 and cm_jpeg["JFIF:ResolutionUnit"] == 2
    assert exiftool(out / "png" / "scan_jpg.png")["PNG:PNG-pHYs:PixelsPerUnitX"] == 11811  # 300 dpi
    jfif = tags(out / "tif" / "scan_jpg.tif", "XResolution", "ResolutionUnit")
    assert jfif["EXIF:IFD0:XResolution"] == 300 and jfif["EXIF:IFD0:ResolutionUnit"] == 2


def test_no_resolution_is_invented_and_dpi_sets_one(tmp_path: Path, scans: dict[str, Path]) -> None:
    """No resolution in: no pHYs, JFIF 'no unit', TIFF 'no absolute unit' 1/1. `dpi = 300`: 300 everywhere,
    not scaled with the pixels."""
    rules = outputs(
        "png png/{stem}.png",
        "tiff tif/{stem}.tif",
        "jpeg jpg/{stem}.jpg",
        "jpeg set/{stem}.jpg max_edge=1000 dpi=300",
        "png set/{stem}.png max_edge=1000 dpi=300",
    )
    assert process(tmp_path, rules, scans["none"])["_result"].returncode == 0
    out = tmp_path / "outbox"
    assert not [k for k in exiftool(out / "png" / "plain.png") if "pHYs" in k]
    tif = tags(out / "tif" / "plain.tif", "XResolution", "ResolutionUnit")
    assert tif["EXIF:IFD0:XResolution"] == 1 and tif["EXIF:IFD0:ResolutionUnit"] == 1
    assert tags(out / "jpg" / "plain.jpg", "ResolutionUnit")["JFIF:ResolutionUnit"] == 0
    assert tags(out / "set" / "plain.jpg", "XResolution")["JFIF:XResolution"] == 300
    assert exiftool(out / "set" / "plain.png")["PNG:PNG-pHYs:PixelsPerUnitX"] == 11811


def test_dpi_on_copy_is_a_load_error(tmp_path: Path) -> None:
    write_config(tmp_path, outputs("copy raw/{name} dpi=300"))
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2 and "key 'output.dpi'" in result.stderr and "copy" in result.stderr


def test_16_bit_and_turned_outputs_keep_the_resolution(tmp_path: Path) -> None:
    """The 16-bit PNG writer (libvips) says the source's resolution too; a quarter turn swaps the axes."""
    deep = corpus("rgba_16_128x128.png")  # 16-bit RGBA with pHYs 2835 px/m (72 dpi)
    assert exiftool(deep)["PNG:PNG-pHYs:PixelsPerUnitX"] == 2835
    with Image.open(corpus("samsung_gt-i9000_galaxy_s.jpg")) as im:  # Orientation 6
        ex = im.getexif()
        ex[282], ex[283], ex[296] = 300.0, 150.0, 2
        im.save(tmp_path / "turned.jpg", exif=ex.tobytes(), dpi=(300, 150))
    assert (
        process(tmp_path, outputs("png png/{stem}.png"), deep, tmp_path / "turned.jpg")["_result"].returncode
        == 0
    )
    written = exiftool(tmp_path / "outbox" / "png" / "rgba_16_128x128.png")
    assert written["PNG:PNG-pHYs:PixelsPerUnitX"] == 2835 and written["PNG:BitDepth"] == 16
    turned = exiftool(tmp_path / "outbox" / "png" / "turned.png")
    assert (turned["PNG:PNG-pHYs:PixelsPerUnitX"], turned["PNG:PNG-pHYs:PixelsPerUnitY"]) == (5906, 11811)


# 2. A damaged metadata block --------------------------------------------------------------------


def imagemagick_png(path: Path) -> Path:
    """A PNG with EXIF as ImageMagick's hex text whose length field is wrong and whose header lines are off:
    exiftool reads it with a warning, Pillow's getexif() raises ValueError."""
    with Image.open(corpus("canon_eos_7d.jpg")) as src:
        raw = src.info["exif"]
        hexed = raw.hex()
        body = "\n".join(hexed[i : i + 72] for i in range(0, len(hexed), 72))
        info = PngImagePlugin.PngInfo()
        info.add_text("Raw profile type exif", f"\nexif\n\n    {len(raw) + 7}\n{body}\n", zip=True)
        src.save(path, pnginfo=info)
    with Image.open(path) as im, pytest.raises(ValueError, match="non-hexadecimal"):
        im.getexif()
    return path


def test_a_damaged_metadata_block_never_costs_the_picture(tmp_path: Path) -> None:
    """The picture is processed, the EXIF recovered as exiftool reads it, metadata.damaged says what."""
    src = imagemagick_png(tmp_path / "magick.png")
    events = process(tmp_path, outputs("png png/{stem}.png", "jpeg jpg/{stem}.jpg"), src)
    assert events["_result"].returncode == 0 and "job.quarantined" not in events
    damaged = events["metadata.damaged"][0]
    assert damaged["src"].endswith("magick.png") and "length field" in damaged["error"]
    for out in ("png/magick.png", "jpg/magick.jpg"):
        found = exiftool(tmp_path / "outbox" / out)
        assert found["EXIF:IFD0:Make"] == "Canon" and found["EXIF:IFD0:Model"] == "Canon EOS 7D"


OUR_ERRORS = {"InputError", "EncodeError", "UnsafePathError", "MissingFieldError", "StagingError"}


def test_no_quarantine_note_carries_a_bare_python_exception(tmp_path: Path) -> None:
    """Every broken corpus file: the note names one of hotfolder's own errors and what to do; the message
    never shows a Python exception class (ValueError, OSError, UnidentifiedImageError, ...)."""
    broken = [
        "truncated_jpeg.jpg",
        "truncated_image.png",
        "ultrahdr.jpg",
        "broken.png",
        "corrupted.hif",
        "decompression_bomb.gif",
        "65536-uint32-limit.png",
        "png_decompression_dos.png",
        "monkey12.jpg",
    ]
    assert process(tmp_path, outputs("png png/{stem}.png"), *map(corpus, broken))["_result"].returncode == 1
    notes = list((tmp_path / "quarantine").glob("*.json"))
    assert len(notes) == len(broken)
    for path in notes:
        note = json.loads(path.read_text())
        assert note["error_class"] in OUR_ERRORS and note["hint"], note
        python = set(re.findall(r"\b[A-Z][A-Za-z]*(?:Error|Exception|Warning)\b", note["error"])) - OUR_ERRORS
        assert not python, f"{path.name}: {note['error']}"


# 3. Animations with transparency ----------------------------------------------------------------


def palette_frames() -> list[Image.Image]:
    frames = []
    for i in range(4):
        im = Image.new("P", (40, 30), 0)
        im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (252 * 3))
        im.paste(1 + i % 3, (10 * i, 0, 10 * i + 10, 30))
        frames.append(im)
    return frames


@pytest.fixture
def animations(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "src"
    folder.mkdir()
    frames = palette_frames()
    timing = {"duration": [100, 200, 300, 400], "loop": 0}
    frames[0].save(
        folder / "anim.gif", save_all=True, append_images=frames[1:], transparency=0, disposal=2, **timing
    )
    frames[0].save(folder / "anim_p.png", save_all=True, append_images=frames[1:], transparency=0, **timing)
    for f in frames:
        f.info["transparency"] = 0
    rgba = [f.convert("RGBA") for f in frames]
    assert rgba[0].getpixel((35, 5))[3] == 0
    rgba[0].save(
        folder / "anim_a.webp",
        save_all=True,
        append_images=rgba[1:],
        duration=[100, 200, 300, 400],
        loop=0,
        lossless=True,
    )
    return [folder / "anim.gif", folder / "anim_p.png", folder / "anim_a.webp"]


def frames_of(path: Path) -> list[tuple[str, int | None, tuple[int, ...]]]:
    import pillow_heif  # noqa: PLC0415

    pillow_heif.register_heif_opener()
    with Image.open(path) as im:
        out = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            im.load()
            out.append((im.mode, im.info.get("duration"), im.convert("RGBA").getpixel((35, 5))))
        return out


def test_animations_with_transparency_go_into_every_format(tmp_path: Path, animations: list[Path]) -> None:
    """GIF with a transparency index, palette APNG, animated WebP with alpha: APNG, WebP and AVIF keep
    frames, timing and transparency; TIFF keeps the frames as pages; JPEG/HEIF take frame 1 flattened."""
    rules = outputs(
        "png png/{stem}.png",
        "webp webp/{stem}.webp",
        "avif avif/{stem}.avif",
        "tiff tif/{stem}.tif",
        "jpeg jpg/{stem}.jpg",
        "heif heif/{stem}.heic",
    )
    events = process(tmp_path, rules, *animations)
    assert events["_result"].returncode == 0, events.get("job.quarantined")
    out = tmp_path / "outbox"
    for stem in ("anim", "anim_p", "anim_a"):
        for fmt, ext in (("png", "png"), ("webp", "webp"), ("avif", "avif")):
            got = frames_of(out / fmt / f"{stem}.{ext}")
            assert len(got) == 4 and all(m == "RGBA" for m, _, _ in got), (stem, fmt, got)
            assert [d for _, d, _ in got] == [100, 200, 300, 400], (stem, fmt)
            assert got[0][2][3] == 0 and got[3][2][3] > 200, (stem, fmt, got)  # transparent, then painted
        pages = frames_of(out / "tif" / f"{stem}.tif")
        assert len(pages) == 4 and pages[0][2][3] == 0
        (flat,) = frames_of(out / "jpg" / f"{stem}.jpg")  # the first frame on the white background
        assert max(abs(c - 255) for c in flat[2][:3]) < 8, flat
        (first,) = frames_of(out / "heif" / f"{stem}.heic")  # HEIF holds one image, and its alpha
        assert first[0] == "RGBA" and first[2][3] == 0


# 4. Extensions that say the format --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        pytest.param("png web/{stem}.jpg", "'.jpg', which is not png", id="png_named_jpg"),
        pytest.param("jpeg web/{stem}", "no literal extension", id="no_extension"),
        pytest.param("webp web/{stem}.{ext}", "fits only copy", id="ext_field"),
        pytest.param("tiff a/{stem}.TIFF.png", "'.png', which is not tiff", id="last_one_counts"),
    ],
)
def test_an_extension_that_contradicts_the_format_is_refused(tmp_path: Path, spec: str, says: str) -> None:
    write_config(tmp_path, outputs(spec))
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert "rules/main.toml:5: rule 'r': key 'output.path'" in result.stderr and says in result.stderr


def test_extensions_that_fit_are_accepted_in_any_case(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        outputs("jpeg a/{stem}.JPE", "heif b/{stem}.hif", "tiff c/{stem}.TIF", "copy d/{stem}.{ext}"),
    )
    assert run_cli("check", cwd=tmp_path).returncode == 0


# 5. Options that are honoured -------------------------------------------------------------------


def test_bit_depth_10_on_an_8_bit_source_writes_10_bits(tmp_path: Path) -> None:
    import pillow_heif  # noqa: PLC0415

    rules = outputs("heif h10/{stem}.heic bit_depth=10", "heif h12/{stem}.heic bit_depth=12 lossless=true")
    assert process(tmp_path, rules, corpus("pentax_k10d.jpg"))["_result"].returncode == 0
    for folder, depth in (("h10", 10), ("h12", 12)):
        heif = pillow_heif.open_heif(
            tmp_path / "outbox" / folder / "pentax_k10d.heic", convert_hdr_to_8bit=False
        )
        assert heif.info["bit_depth"] == depth


def test_jpeg_optimize_without_progressive_and_png_optimize(tmp_path: Path) -> None:
    """optimize = true: optimal Huffman tables in a baseline JPEG (smaller, baseline); PNG no bigger."""
    rules = outputs(
        "jpeg plain/{stem}.jpg",
        "jpeg opt/{stem}.jpg optimize=true",
        "png plain/{stem}.png",
        "png opt/{stem}.png optimize=true",
    )
    assert process(tmp_path, rules, corpus("landscape_1.jpg"))["_result"].returncode == 0
    out = tmp_path / "outbox"
    plain, opt = (
        (out / "plain" / "landscape_1.jpg").stat().st_size,
        (out / "opt" / "landscape_1.jpg").stat().st_size,
    )
    assert opt < plain
    with Image.open(out / "opt" / "landscape_1.jpg") as im:
        assert not im.info.get("progressive")
    assert (out / "opt" / "landscape_1.png").stat().st_size <= (
        out / "plain" / "landscape_1.png"
    ).stat().st_size


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "CMYK", "1"])
def test_tiff_deflate_compress_level_is_honoured(tmp_path: Path, mode: str) -> None:
    """compress_level 1 and 9 give different files (9 the smaller), both lossless, in every mode."""
    with Image.open(corpus("landscape_1.jpg")) as im:
        src = im.convert(mode)
        src.save(tmp_path / "m.tif")
    rules = outputs("tiff l1/{stem}.tif compress_level=1", "tiff l9/{stem}.tif compress_level=9")
    assert process(tmp_path, rules, tmp_path / "m.tif")["_result"].returncode == 0
    l1, l9 = tmp_path / "outbox" / "l1" / "m.tif", tmp_path / "outbox" / "l9" / "m.tif"
    assert l9.stat().st_size < l1.stat().st_size
    for path in (l1, l9):
        with Image.open(path) as got:
            assert got.convert("RGBA").tobytes() == src.convert("RGBA").tobytes()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        pytest.param('compression="zstd" compress_level=5', "zstd level cannot be set", id="zstd"),
        pytest.param('compression="lzw" compress_level=5', "takes no level", id="lzw"),
        pytest.param("compress_level=12", "deflate levels are 1..9", id="range"),
    ],
)
def test_a_tiff_level_that_cannot_be_honoured_is_a_load_error(
    tmp_path: Path, options: str, says: str
) -> None:
    write_config(tmp_path, outputs("tiff t/{stem}.tif " + options))
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2 and says in result.stderr and "key 'output.compress_level'" in result.stderr


# 6. Extra channels and layers -------------------------------------------------------------------


def rgb_with_selections(path: Path) -> np.ndarray:
    """An RGB TIFF with two extra samples marked 'unspecified' (ExtraSamples 0, 0), as Photoshop saves
    selections: Pillow opens it as plain RGB ("RGBXX") without a word."""
    import pyvips  # noqa: PLC0415

    pixels = (np.arange(64 * 48 * 5) % 251).astype(np.uint8).reshape(48, 64, 5)
    image = pyvips.Image.new_from_memory(pixels.tobytes(), 64, 48, 5, "uchar").copy(interpretation="srgb")
    data = bytearray(image.tiffsave_buffer(compression="none"))
    ifd = struct.unpack_from("<I", data, 4)[0]
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack_from("<H", data, entry)[0] == 338:
            struct.pack_into("<HH", data, entry + 8, 0, 0)
    path.write_bytes(data)
    with Image.open(path) as im:
        assert im.mode == "RGB"
    return pixels


def test_extra_channels_are_kept_in_tiff_and_said_dropped_elsewhere(tmp_path: Path) -> None:
    import pyvips  # noqa: PLC0415

    pixels = rgb_with_selections(tmp_path / "sel.tif")
    events = process(tmp_path, outputs("tiff tif/{stem}.tif", "png png/{stem}.png"), tmp_path / "sel.tif")
    assert events["_result"].returncode == 0
    written = pyvips.Image.new_from_file(str(tmp_path / "outbox" / "tif" / "sel.tif"))
    got = np.ndarray(buffer=written.write_to_memory(), dtype=np.uint8, shape=(48, 64, written.bands))
    assert written.bands == 5 and np.array_equal(got, pixels)
    assert exiftool(tmp_path / "outbox" / "tif" / "sel.tif")["EXIF:IFD0:ExtraSamples"] == "0 0"
    (dropped,) = events["channels.dropped"]
    assert dropped["format"] == "png" and "2 extra channel(s)" in dropped["error"]


def test_photoshop_layers_stay_only_with_the_same_pixels(tmp_path: Path) -> None:
    """ImageSourceData is kept in an archival TIFF of the same pixels; dropped and said so elsewhere."""
    layers = b"Adobe Photoshop Document Data Block\x00" + bytes(range(256)) * 4
    with Image.open(corpus("hopper.bmp")) as im:
        im.save(tmp_path / "layered.tif", tiffinfo={37724: layers})
    rules = outputs("tiff same/{stem}.tif", "tiff small/{stem}.tif max_edge=64", "png png/{stem}.png")
    events = process(tmp_path, rules, tmp_path / "layered.tif")
    assert events["_result"].returncode == 0
    with Image.open(tmp_path / "outbox" / "same" / "layered.tif") as same:
        assert same.tag_v2[37724] == layers
    with Image.open(tmp_path / "outbox" / "small" / "layered.tif") as small:
        assert 37724 not in small.tag_v2
    assert sorted(e["format"] for e in events["layers.dropped"]) == ["png", "tiff"]


# 7. A plain rule path that does not exist --------------------------------------------------------


def test_a_missing_plain_rule_path_is_named_as_missing(tmp_path: Path) -> None:
    (tmp_path / "hotfolder.toml").write_text('rules = ["rules/mine.toml"]\n')
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2 and "rule file" in result.stderr and "does not exist" in result.stderr
    assert "matches no rule file" not in result.stderr


# Stamps ----------------------------------------------------------------------------------------

STAMP = (
    'stamp = { artist = "Jane Doe", copyright = "© {taken:%Y} Jane Doe", credit = "Jane Doe Photography", '
    'title = "{stem}", description = "a/b ../c: {camera}", keywords = ["holiday", "{camera}"], '
    'rights_url = "https://example.org/rights" }'
)


@pytest.mark.parametrize("fmt", ["jpeg", "tiff", "png", "webp", "heif", "avif"])
def test_a_stamp_is_written_to_every_place_the_format_holds_it(tmp_path: Path, fmt: str) -> None:
    ext = {"jpeg": "jpg", "tiff": "tif", "heif": "heic"}.get(fmt, fmt)
    rules = outputs(f"{fmt} out/{{stem}}.{ext}") + STAMP + "\n"
    assert process(tmp_path, rules, corpus("canon_eos_7d.jpg"))["_result"].returncode == 0
    got = exiftool(tmp_path / "outbox" / "out" / f"canon_eos_7d.{ext}")
    xmp = {k.split(":")[-1]: v for k, v in got.items() if k.startswith("XMP:")}
    assert xmp["Creator"] == "Jane Doe" and xmp["Rights"] == "© 2010 Jane Doe"
    assert xmp["Credit"] == "Jane Doe Photography" and xmp["Title"] == "canon_eos_7d"
    assert xmp["Description"] == "a/b ../c: Canon EOS 7D"  # a '/' in a caption is text, not a folder
    assert (
        xmp["Subject"] == ["holiday", "Canon EOS 7D"] and xmp["WebStatement"] == "https://example.org/rights"
    )
    exif = {k.split(":")[-1]: v for k, v in got.items() if k.startswith("EXIF:IFD0")}
    assert exif["Artist"] == "Jane Doe" and exif["Copyright"] == "© 2010 Jane Doe"
    assert exif["ImageDescription"] == "a/b ../c: Canon EOS 7D" and exif["Model"] == "Canon EOS 7D"
    iptc = {k.split(":")[-1]: v for k, v in got.items() if k.startswith("IPTC:")}
    if fmt in ("jpeg", "tiff"):
        assert iptc["By-line"] == "Jane Doe" and iptc["CopyrightNotice"] == "© 2010 Jane Doe"
        assert iptc["Credit"] == "Jane Doe Photography" and iptc["ObjectName"] == "canon_eos_7d"
        assert iptc["Keywords"] == ["holiday", "Canon EOS 7D"] and iptc["CodedCharacterSet"] == "\x1b%G"
    else:
        assert not iptc


def test_a_stamp_wins_over_the_source_and_over_strip(tmp_path: Path) -> None:
    """The source's own creator is replaced, its other fields kept; with exif/xmp/iptc = strip only the
    stamp is written; a caption past IPTC's 2000 bytes is cut there (metadata.truncated), whole in XMP."""
    src = tmp_path / "owned.jpg"
    with Image.open(corpus("canon_eos_7d.jpg")) as im:
        ex = im.getexif()
        ex[0x013B], ex[0x8298] = "Someone Else", "(c) Someone Else"
        im.save(src, exif=ex.tobytes())
    long = "x" * 2100
    stamp = f'stamp = {{ artist = "Jane Doe", description = "{long}" }}\n'
    rules = (
        '[[rule]]\nname = "r"\n'
        '[[rule.output]]\nformat = "jpeg"\npath = "keep/{stem}.jpg"\nprofile = "archival"\n'
        + stamp
        + '[[rule.output]]\nformat = "jpeg"\npath = "strip/{stem}.jpg"\nexif = "strip"\nxmp = "strip"\n'
        'iptc = "strip"\n' + stamp
    )
    events = process(tmp_path, rules, src)
    assert events["_result"].returncode == 0, events["_result"].stderr
    kept = exiftool(tmp_path / "outbox" / "keep" / "owned.jpg")
    assert kept["EXIF:IFD0:Artist"] == "Jane Doe" and kept["EXIF:IFD0:Copyright"] == "(c) Someone Else"
    assert kept["EXIF:IFD0:Make"] == "Canon" and kept["IPTC:By-line"] == "Jane Doe"
    assert len(kept["IPTC:Caption-Abstract"]) == 2000 and kept["XMP:XMP-dc:Description"] == long
    stripped = exiftool(tmp_path / "outbox" / "strip" / "owned.jpg")
    assert stripped["EXIF:IFD0:Artist"] == "Jane Doe" and "EXIF:IFD0:Make" not in stripped
    assert stripped["XMP:XMP-dc:Creator"] == "Jane Doe" and stripped["IPTC:By-line"] == "Jane Doe"
    assert not [k for k in stripped if k.startswith("XMP:") and k.split(":")[1] not in ("XMP-dc", "XMP-x")]
    assert any(e["item"] == "iptc description" for e in events["metadata.truncated"])


def test_an_unknown_stamp_field_is_a_load_error(tmp_path: Path) -> None:
    write_config(tmp_path, outputs("jpeg a/{stem}.jpg") + 'stamp = { autor = "x" }\n')
    result = run_cli("check", cwd=tmp_path)
    assert (
        result.returncode == 2
        and "unknown stamp field 'autor'" in result.stderr
        and "key 'output.stamp'" in result.stderr
    )
