"""`make conformance`: every shipped recipe over every corpus file, judged independently.

Each file x recipe is run through the real pipeline (one output per job), then judged by
exiftool (or exifread when exiftool is missing) and by decoding the pixels:
pass, refused (the input is broken, or a documented limit), or FAIL.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import multiprocessing
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))
sys.path.insert(0, str(ROOT / "tests"))

import imagecodecs  # noqa: E402
import numpy as np  # noqa: E402
import pillow_heif  # noqa: E402
import pyvips  # noqa: E402
from PIL import Image, ImageChops, ImageCms, ImageOps  # noqa: E402

from conftest import Processed as Outcome  # noqa: E402
from conftest import process_job  # noqa: E402
from hotfolder.decide.job import Job  # noqa: E402
from hotfolder.decide.sniff import register_codecs  # noqa: E402
from hotfolder.settings.outputs import Output  # noqa: E402
from hotfolder.settings.rules import Rule, load_rules  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
RECIPES = ROOT / "rules" / "examples" / "recipes.toml"

# Refusals that name a real limit (docs/outputs.md, "Limits"); anything else that fails is a FAIL.
KNOWN_LIMITS = ("NCLX primaries",)
# Tags that legitimately change: orientation is applied, dimensions follow the pixels.
CHANGING = {"Orientation", "ImageWidth", "ImageHeight", "ExifImageWidth", "ExifImageHeight"}
TIFF_LAYOUT = {
    "SubfileType",
    "OldSubfileType",
    "ImageWidth",
    "ImageHeight",
    "BitsPerSample",
    "Compression",
    "PhotometricInterpretation",
    "StripOffsets",
    "SamplesPerPixel",
    "RowsPerStrip",
    "StripByteCounts",
    "PlanarConfiguration",
    "Predictor",
    "TileWidth",
    "TileLength",
    "TileOffsets",
    "TileByteCounts",
    "ExtraSamples",
    "SampleFormat",
    "FillOrder",
    "T4Options",
    "T6Options",
    "ApplicationNotes",
    "IPTC-NAA",
    "PhotoshopSettings",
    "ICC_Profile",
    "ImageSourceData",
    "JPEGTables",
    "YCbCrSubSampling",
    "YCbCrPositioning",
    "ReferenceBlackWhite",
    "Thresholding",
    "GrayResponseUnit",
    "ColorMap",
    "PreviewImage",
    "PreviewImageStart",
    "PreviewImageLength",
    "JPEGProc",
    "JPEGRestartInterval",
}


@dataclass
class Cell:
    file: str
    recipe: str
    verdict: str  # pass | refused | FAIL
    why: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def recipe_name(o: Output) -> str:
    return f"{o.format}/{o.profile}"


def run_one(args: tuple[Path, int, Output, Path]) -> tuple[str, str, Outcome, Path]:
    src, index, output, work = args
    folder = work / f"{src.name}--{index}"
    (folder / "in").mkdir(parents=True)
    shutil.copy(src, folder / "in" / src.name)
    rule = Rule(name=recipe_name(output), file=None, outputs=(output,))
    outcome = process_job(
        Job(src=folder / "in" / src.name, relpath=src.name, rules=(rule,), output_root=folder / "out")
    )
    return src.name, recipe_name(output), outcome, folder


def exiftool_json(paths: list[Path]) -> dict[str, dict[str, Any]]:
    if not paths:
        return {}
    if shutil.which("exiftool") is None:
        return {str(p): exifread_tags(p) for p in paths}
    out = subprocess.run(
        ["exiftool", "-j", "-a", "-G0:1", "-n", "-q", "-q", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {d["SourceFile"]: d for d in json.loads(out or "[]")}


def exifread_tags(path: Path) -> dict[str, Any]:
    import exifread  # noqa: PLC0415

    with path.open("rb") as fp:
        tags = exifread.process_file(fp, details=False)
    group = {"Image": "EXIF:IFD0", "EXIF": "EXIF:ExifIFD", "GPS": "EXIF:GPS", "Thumbnail": "EXIF:IFD1"}
    return {f"{group.get(k.split()[0], 'EXIF:Other')}:{k.split()[-1]}": str(v) for k, v in tags.items()}


def tagset(meta: dict[str, Any], family0: set[str], *, tiff_source: bool) -> set[str]:
    found = set()
    for key in meta:
        parts = key.split(":")
        if len(parts) != 3 or parts[0] not in family0:
            continue
        group, name = parts[1], parts[2]
        if group == "IFD1" or name in CHANGING:
            continue
        if tiff_source and (
            (group == "IFD0" and name in TIFF_LAYOUT) or re.fullmatch(r"IFD\d+|SubIFD\d*", group)
        ):
            continue  # a TIFF's own layout and its other pages are not EXIF to carry
        found.add(f"{group}:{name}")
    return found


def reference(src: Path) -> Image.Image:
    """The source as a viewer shows it (upright), decoded by Pillow directly."""
    register_codecs()
    with Image.open(src) as im:
        im.load()
        return ImageOps.exif_transpose(im) if im.format not in {"HEIF", "AVIF", "TIFF"} else im.copy()


@functools.cache
def deep_reference(path: Path) -> np.ndarray | None:
    """16-bit samples as libvips reads them (None for 8-bit files): Pillow cannot read 16-bit colour."""
    try:
        v = pyvips.Image.new_from_file(str(path))
    except pyvips.Error:
        return None
    if v.format != "ushort":
        return None
    return np.ndarray(buffer=v.write_to_memory(), dtype=np.uint16, shape=(v.height, v.width, v.bands))


def find(meta: dict[str, Any], name: str) -> Any:
    """A tag by name, whatever group exiftool filed it under."""
    return next((v for k, v in meta.items() if k.rsplit(":", 1)[-1] == name), None)


def flattened(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    if "A" not in im.mode and not im.has_transparency_data:
        return im
    rgba = im.convert("RGBA")
    base = Image.new("RGB", rgba.size, background)
    base.paste(rgba, mask=rgba.getchannel("A"))
    return base


def grey8(im: Image.Image) -> Image.Image:
    """8-bit grey of any image: 16-bit grey scaled (Pillow's own convert("L") clips I;16 at 255)."""
    if im.mode.startswith("I;16") or im.mode == "I":
        return Image.fromarray(np.round(np.asarray(im).astype(np.float64) / 257).astype(np.uint8))
    return im.convert("L")


def eight_bit(deep: np.ndarray) -> Image.Image:
    scaled = np.round(deep.astype(np.float64) / 257).astype(np.uint8)
    return Image.fromarray(scaled[:, :, 0] if deep.shape[2] == 1 else scaled)


def judge(
    src: Path,
    output: Output,
    outcome: Outcome,
    folder: Path,
    src_meta: dict[str, Any],
    out_meta: dict[str, Any],
) -> Cell:
    cell = Cell(src.name, recipe_name(output), "pass")
    cell.notes = [f"{e}: {f.get('item', '')} {f.get('error', '')}".strip() for e, f in outcome.outcome.notes]
    if outcome.status == "quarantined":
        error = outcome.error or ""
        known = error.startswith("InputError") or any(k in error for k in KNOWN_LIMITS)
        cell.verdict, cell.why = ("refused" if known else "FAIL"), [error]
        return cell
    if outcome.status == "empty":  # Limits (docs/outputs.md): 0 bytes is no arrival
        cell.verdict, cell.why = "refused", ["empty file (0 bytes): left alone"]
        return cell
    if outcome.status != "done":
        cell.verdict, cell.why = "FAIL", [f"status {outcome.status}"]
        return cell
    dst = outcome.written[0].dst
    fails = cell.why
    notes = " | ".join(cell.notes)
    register_codecs()
    try:
        with Image.open(dst) as out:
            out.load()
            out_frames = getattr(out, "n_frames", 1)
            out_img = out.copy()
    except Exception as exc:
        cell.verdict, cell.why = "FAIL", [f"output does not decode: {exc}"]
        return cell
    if output.format == "jxl" and "jxl.pixels" not in notes and find(src_meta, "FileType") in ("JPEG", "MPO"):
        # A transcoded JPEG is judged by what it promises: the JPEG back, byte for byte (libjxl's own
        # rebuild); its pixels come from libjxl's IDCT, not libjpeg-turbo's.
        rebuilt = bytes(imagecodecs.jpegxl_decode_jpeg(dst.read_bytes(), numthreads=1))
        if rebuilt != src.read_bytes():
            fails.append("the transcoded jxl does not rebuild the JPEG byte for byte")
        cell.verdict = "FAIL" if fails else "pass"
        return cell
    tiff_source = find(src_meta, "FileType") == "TIFF"
    _judge_exif(output, src_meta, out_meta, notes, fails, tiff_source=tiff_source)
    _judge_other_metadata(output, src_meta, out_meta, notes, fails, dst)
    _judge_pixels(src, output, dst, out_img, out_frames, src_meta, out_meta, notes, fails)
    if fails:
        cell.verdict = "FAIL"
    return cell


def _judge_exif(
    output: Output,
    src_meta: dict[str, Any],
    out_meta: dict[str, Any],
    notes: str,
    fails: list[str],
    *,
    tiff_source: bool,
) -> None:
    want = tagset(src_meta, {"EXIF", "MakerNotes"}, tiff_source=tiff_source)
    got = tagset(out_meta, {"EXIF", "MakerNotes"}, tiff_source=False)
    if output.gps == "strip":
        want = {t for t in want if not t.startswith("GPS:")}
        if any(t.startswith("GPS:") for t in got) or any(
            ":GPS" in k and k.startswith("XMP") for k in out_meta
        ):
            fails.append("GPS left in a gps=strip output")
    makernote = tagset(src_meta, {"MakerNotes"}, tiff_source=tiff_source) | tagset(
        out_meta, {"MakerNotes"}, tiff_source=False
    )
    serials = {"ExifIFD:SerialNumber", "ExifIFD:LensSerialNumber", "IFD0:CameraSerialNumber"}
    private = (makernote if output.makernote == "strip" else set()) | (
        serials if output.serials == "strip" else set()
    )
    private |= {"ExifIFD:OwnerName"} if output.owner == "strip" else set()
    if private & got:
        fails.append(f"private tags left in the output: {sorted(private & got)[:4]}")
    want -= private
    if output.exif == "strip":
        if got:
            fails.append("EXIF left in an exif=strip output")
        return
    missing = want - got
    if "item=exif " in notes or "metadata.dropped: exif " in notes:
        return  # the whole EXIF could not be carried, and the daemon said so
    if "makernote" in notes.lower() or "reserialised" in notes:
        missing = {t for t in missing if t.startswith(("IFD0:", "ExifIFD:", "GPS:", "InteropIFD:"))}
        missing.discard("ExifIFD:MakerNoteUnknown")
    layout = next((n for n in notes.split(" | ") if "exif layout tags" in n), "")
    missing = {t for t in missing if t.split(":")[1] not in layout}
    if missing:
        fails.append(f"EXIF tags lost without a logged reason: {sorted(missing)[:6]} ({len(missing)})")
    src_orientation = find(src_meta, "Orientation")
    out_orientation = out_meta.get("EXIF:IFD0:Orientation", 1)
    if output.orientation == "upright" and src_orientation not in (None, 1) and out_orientation != 1:
        fails.append(f"Orientation {out_orientation} left on upright pixels")


def _judge_other_metadata(
    output: Output,
    src_meta: dict[str, Any],
    out_meta: dict[str, Any],
    notes: str,
    fails: list[str],
    out_path: Path,
) -> None:
    for item, group in (("xmp", "XMP"), ("iptc", "IPTC")):
        in_src = any(k.startswith(group + ":") for k in src_meta)
        in_out = any(k.startswith(group + ":") for k in out_meta)
        if getattr(output, item) == "strip" and in_out:
            fails.append(f"{group} left in an {item}=strip output")
        if getattr(output, item) == "keep" and in_src and not in_out and item not in notes:
            fails.append(f"{group} lost without a logged reason")
    src_icc, out_icc = find(src_meta, "ProfileDescription"), find(out_meta, "ProfileDescription")
    if output.format == "jxl" and out_icc is None:
        # exiftool does not read a profile from a JPEG XL codestream: libjxl's decoder gives it back.
        out_icc = _jxl_profile_name(out_path)
    if output.icc == "srgb" and out_icc and "sRGB" not in str(out_icc):
        fails.append(f"icc=srgb output carries {out_icc!r}")
    cmyk = find(src_meta, "ColorSpaceData") == "CMYK" or "cmyk" in notes.lower()
    if output.icc == "keep" and src_icc and out_icc != src_icc and not cmyk and "colour" not in notes:
        fails.append(f"ICC {src_icc!r} became {out_icc!r}")


def _jxl_profile_name(path: Path) -> str | None:
    from hotfolder.decide import jxl  # noqa: PLC0415

    _, icc = jxl.header(path.read_bytes())
    if icc is None:
        return None
    name = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
    # A profile libjxl recognised as one of its enumerated encodings is stored as that encoding and
    # given back under libjxl's own name for it: RGB_D65_SRG_Rel_SRG is sRGB (Gra_D65_Rel_SRG its grey).
    if re.fullmatch(r"(RGB_D65_SRG|Gra_D65)_[A-Za-z]{3}_SRG", name):
        return f"sRGB ({name})"
    return name or None


def _judge_pixels(
    src: Path,
    output: Output,
    dst: Path,
    out_img: Image.Image,
    out_frames: int,
    src_meta: dict[str, Any],
    out_meta: dict[str, Any],
    notes: str,
    fails: list[str],
) -> None:
    with Image.open(src) as probe:
        src_frames = getattr(probe, "n_frames", 1) if probe.format != "MPO" else 1
        animated = getattr(probe, "is_animated", False) and probe.format in {"GIF", "PNG", "WEBP"}
    ref = reference(src)
    deep_src = deep_reference(src) if src.suffix.lower() not in {".heic", ".hif", ".heif"} else None
    if deep_src is None and src.suffix.lower() in {".hif"}:
        heif = pillow_heif.open_heif(src, convert_hdr_to_8bit=False)
        deep_src = np.asarray(heif) if heif.info.get("bit_depth", 8) > 8 else None
    long_edge = max(ref.size) if output.max_edge is None else min(max(ref.size), output.max_edge)
    if abs(max(out_img.size) - long_edge) > 1:
        fails.append(f"size {out_img.size}, expected long edge {long_edge}")
    holds = output.format in ({"png", "webp", "avif", "tiff"} if animated else {"tiff"})
    heif_source = src.suffix.lower() in {".heic", ".hif", ".heif"} or find(src_meta, "FileType") == "HEIC"
    if src_frames > 1 and output.frames == "all" and holds and not heif_source:
        if out_frames != src_frames:
            fails.append(f"{out_frames} frames written, source has {src_frames}")
    elif src_frames > 1 and out_frames == 1 and "frames" not in notes:
        fails.append("frames dropped without a logged reason")
    deep_out = deep_reference(dst) if output.format in {"png", "tiff"} else None
    if output.format == "jxl":  # libjxl's own decoder, through imagecodecs (not hotfolder's binding)
        decoded = np.asarray(imagecodecs.jpegxl_decode(dst.read_bytes()))
        deep_out = decoded.reshape(*decoded.shape[:2], -1) if decoded.dtype == np.uint16 else None
    if deep_src is not None and output.format in {"png", "tiff"}:
        depth = find(out_meta, "BitDepth") or find(out_meta, "BitsPerSample")
        if str(depth).split()[0] != "16":
            fails.append(f"{deep_src.dtype} source written at {depth} bits")
    converted = output.icc == "srgb" and find(src_meta, "ProfileDescription") not in (
        None,
        "sRGB IEC61966-2.1",
    )
    # A camera's Adobe RGB said only by EXIF (DCF: Interop index R03) is converted like a profile's.
    interop = str(find(src_meta, "InteropIndex") or "")
    adobe = interop.startswith("R03") or src_meta.get("EXIF:ExifIFD:ColorSpace") == 2
    converted = converted or (output.icc == "srgb" and adobe)
    converted = converted or "cmyk" in notes.lower() or "colour" in notes
    same_geometry = out_img.size == ref.size and out_frames == 1
    if output.is_lossless and not converted and same_geometry:
        if out_img.mode.startswith("I;16") and ref.mode.startswith("I;16"):
            # Pillow reads 16-bit grey exactly (and, unlike libvips-binary, zstd TIFF too).
            if not np.array_equal(np.asarray(out_img.convert("I")), np.asarray(ref.convert("I"))):
                fails.append("16-bit grey lossless output differs from the source samples")
        elif deep_src is not None and deep_out is not None:
            if not np.array_equal(deep_src, deep_out):
                fails.append("16-bit lossless output differs from the source samples")
        elif deep_src is not None and output.format == "heif" and "precision.reduced" not in notes:
            got = np.asarray(pillow_heif.open_heif(dst, convert_hdr_to_8bit=False)).astype(np.int32)
            bits = 12 if output.bit_depth == 12 or deep_src.max() > 0 else 10
            keep = min(bits, int(find(src_meta, "BitDepth") or 16) if heif_source else 12)
            if not np.array_equal(got >> (16 - keep), deep_src.astype(np.int32) >> (16 - keep)):
                fails.append(f"lossless HEIF differs from the source at {keep} bits")
        elif deep_src is not None:
            want = np.asarray(eight_bit(deep_src).convert(out_img.mode)).astype(int)
            if np.abs(np.asarray(out_img).astype(int) - want).max() > 1:
                fails.append("8-bit lossless output of a deep source is not the scaled source")
        else:
            mode = "RGBA" if "A" in out_img.mode or "A" in ref.mode or ref.has_transparency_data else "RGB"
            if out_img.convert(mode).tobytes() != ref.convert(mode).tobytes():
                fails.append("lossless output differs from the source pixels")
    elif not output.is_lossless:
        base = flattened(eight_bit(deep_src) if deep_src is not None else ref, output.background)
        a = grey8(flattened(out_img, output.background)).resize((48, 48))
        b = grey8(base).resize((48, 48))
        diff = sum(ImageChops.difference(a, b).get_flattened_data()) / (48 * 48)
        if diff > 24:
            fails.append(f"pixels differ from the upright source (mean {diff:.0f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", help="substring of the file names to run")
    parser.add_argument("--keep", action="store_true", help="keep the outputs and print where")
    parser.add_argument("--recipe", help="substring of the recipes to run (format/profile, e.g. jxl/)")
    args = parser.parse_args()
    (rule,) = load_rules([RECIPES])
    files = sorted(
        p for p in CORPUS.iterdir() if p.suffix not in {".md", ".tsv"} and (args.only or "") in p.name
    )
    work = Path(tempfile.mkdtemp(prefix="hotfolder-conformance-"))
    jobs = [
        (f, i, o, work)
        for f in files
        for i, o in enumerate(rule.outputs)
        if (args.recipe or "") in recipe_name(o)
    ]
    # Not forked from this process once it has threads (oxipng's rayon pool deadlocks a forked child).
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        results = list(pool.map(run_one, jobs))
    judge_tool = "exiftool" if shutil.which("exiftool") else "exifread"
    src_meta = exiftool_json(files)
    out_paths = [o.written[0].dst for _, _, o, _ in results if o.status == "done"]
    out_meta = exiftool_json(out_paths)
    cells = []
    for (f, _, o, _), (name, _recipe, outcome, folder) in zip(jobs, results, strict=True):
        dst_meta = out_meta.get(str(outcome.written[0].dst), {}) if outcome.status == "done" else {}
        cells.append(judge(f, o, outcome, folder, src_meta.get(str(f), {}), dst_meta))
        assert name == f.name
    recipes = [recipe_name(o) for o in rule.outputs]
    short = {"pass": "ok", "refused": "ref", "FAIL": "FAIL"}
    print(f"hotfolder conformance: {len(files)} files x {len(recipes)} recipes, judged by {judge_tool}\n")
    print(f"{'file':40s} " + " ".join(f"{r.split('/')[0][:4]}/{r.split('/')[1][:3]:3s}" for r in recipes))
    for f in files:
        row = [c for c in cells if c.file == f.name]
        marks = [short[c.verdict] + ("*" if c.verdict == "pass" and c.notes else "") for c in row]
        print(f"{f.name[:40]:40s} " + " ".join(f"{m:8s}" for m in marks))
    totals = Counter(c.verdict for c in cells)
    print(
        f"\ntotals: pass {totals['pass']}, refused {totals['refused']}, FAIL {totals['FAIL']}  "
        f"(* = passed with a logged note: something the format or a library cannot hold)"
    )
    print("\nrefused (file: reason):")
    for reason, names in sorted(_group(c for c in cells if c.verdict == "refused").items()):
        print(f"  {reason}\n      {', '.join(sorted(names))}")
    print("\nlogged notes (what was dropped or substituted, and where):")
    for reason, names in sorted(_group_notes(cells).items()):
        print(f"  {reason}\n      {', '.join(sorted(names))[:400]}")
    if totals["FAIL"]:
        print("\nFAIL:")
        for c in cells:
            if c.verdict == "FAIL":
                print(f"  {c.file} [{c.recipe}]: {'; '.join(c.why)[:400]}")
    if args.keep:
        print(f"\noutputs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nre-run: make conformance   (or: {sys.executable} tests/conformance.py --only NAME --keep)")
    return 1 if totals["FAIL"] else 0


def _group(cells: Any) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for c in cells:
        reason = c.why[0].split(": ", 1)[-1][:110] if c.why else "?"
        out.setdefault(reason, set()).add(c.file)
    return out


def _group_notes(cells: list[Cell]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for c in cells:
        for note in c.notes:
            key = note.split(": ", 1)[0] + ": " + note.split(": ", 1)[-1][:100]
            out.setdefault(key, set()).add(f"{c.file}[{c.recipe}]")
    return out


if __name__ == "__main__":
    sys.exit(main())
