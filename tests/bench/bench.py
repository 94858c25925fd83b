"""`make bench`: hotfolder against a plain Pillow loop, ImageMagick and libvips; latency; idle CPU; a burst.

Every figure is measured in this one run on this machine (2 shared cores are noisy: compare the
ratios, not the seconds). Reads ../shared/photos/ and ../shared/corpus/; writes only to a temp folder.
Run one part: `python tests/bench/bench.py pillow|tools|latency|idle|burst|raw|cluster|first|jxl|events`.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = sorted((ROOT.parent / "shared" / "photos").glob("*.jpg"))
CORPUS = ROOT.parent / "shared" / "corpus"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
HOTFOLDER = [sys.executable, "-m", "hotfolder"]
WORKERS = 2
EDGE = 2048
# What the plain loop writes, so both sides do the same work: EXIF (GPS, serial numbers and MakerNote
# too) and the ICC profile as it is.
PRIVATE_KEPT = 'serials = "keep"\nowner = "keep"\nmakernote = "keep"\n'
SAME = 'exif = "keep"\ngps = "keep"\nicc = "keep"\nxmp = "strip"\niptc = "strip"\n' + PRIVATE_KEPT
WEB = f'[[rule.output]]\nformat = "jpeg"\n{SAME}quality = 85\nmax_edge = {EDGE}\npath = "web/{{stem}}.jpg"\n'
TIFF = f'[[rule.output]]\nformat = "tiff"\n{SAME}compression = "deflate"\npath = "tif/{{stem}}.tif"\n'


def table(title: str, header: list[str], rows: list[list[str]], how: str) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n## {title}\n")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print(f"\nreproduce: {how}", flush=True)


def workspace(name: str, rules: str, extra: str = "") -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"hf-bench-{name}-"))
    (folder / "rules.toml").write_text('[[rule]]\nname = "bench"\n' + rules)
    (folder / "hotfolder.toml").write_text(
        f'rules = ["rules.toml"]\noutput_root = "outbox"\nstate_dir = "state"\nquarantine = "quarantine"\n'
        f'workers = {WORKERS}\n{extra}\n[[watch]]\npath = "inbox"\n'
    )
    (folder / "inbox").mkdir()
    return folder


def copies(folder: Path, rounds: int) -> list[Path]:
    """The photos `rounds` times over under distinct names (processed with --force: no duplicate skip)."""
    made = []
    for r in range(rounds):
        for photo in PHOTOS:
            dst = folder / f"r{r}-{photo.name}"
            shutil.copy(photo, dst)
            made.append(dst)
    return made


# 1. hotfolder process vs a plain Pillow loop ------------------------------------------------------------


def plain_one(args: tuple[str, str, bool]) -> None:
    """What a careful script does: open, exif_transpose, LANCZOS thumbnail, save with EXIF."""
    src, out, with_tiff = args
    with Image.open(src) as im:
        exif = im.info.get("exif", b"")
        icc = im.info.get("icc_profile")
        up = ImageOps.exif_transpose(im)
        stem = Path(src).stem
        if with_tiff:
            # Without EXIF: Pillow's libtiff writer fails on camera EXIF ("Error setting from dictionary",
            # FIDELITY.md); hotfolder rewrites the IFDs itself to keep it. The loop gets the easier job.
            # With the horizontal predictor, as hotfolder writes it (a third smaller, twice the time).
            up.save(
                Path(out) / f"{stem}.tif",
                compression="tiff_adobe_deflate",
                icc_profile=icc,
                tiffinfo={317: 2},
            )
        up.thumbnail((EDGE, EDGE), Image.Resampling.LANCZOS)
        up.save(Path(out) / f"{stem}.jpg", quality=85, exif=exif, icc_profile=icc)


def plain_loop(files: list[Path], out: Path, with_tiff: bool) -> float:
    """The loop as its own process that imports only Pillow (interpreter and pool start included, as
    for hotfolder): plain_one's text, run by a script a user would write."""
    import inspect  # noqa: PLC0415

    code = (
        "import sys\nfrom concurrent.futures import ProcessPoolExecutor\nfrom pathlib import Path\n"
        "from PIL import Image, ImageOps\n"
        f"EDGE = {EDGE}\n" + inspect.getsource(plain_one) + "\nif __name__ == '__main__':\n"
        "    with ProcessPoolExecutor(int(sys.argv[1])) as ex:\n"
        "        list(ex.map(plain_one, [(f, sys.argv[2], sys.argv[3] == '1') for f in sys.argv[4:]]))\n"
    )
    out.mkdir(exist_ok=True)
    t = time.perf_counter()
    args = [str(WORKERS), str(out), "1" if with_tiff else "0", *map(str, files)]
    subprocess.run([sys.executable, "-c", code, *args], check=True)
    return time.perf_counter() - t


def hotfolder_process(folder: Path) -> tuple[float, list[float]]:
    """Wall time of `hotfolder process` and the workers' own time per job (s)."""
    shutil.rmtree(folder / "outbox", ignore_errors=True)
    shutil.rmtree(folder / "state", ignore_errors=True)
    t = time.perf_counter()
    argv = [*HOTFOLDER, "process", "--force", "--log-format", "json", "inbox"]
    out = subprocess.run(argv, cwd=folder, env=ENV, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t
    return wall, [json.loads(x)["ms"] / 1000 for x in out.splitlines() if '"job.done"' in x]


def plain_per_photo(out: Path, with_tiff: bool) -> float:
    """The loop's median time per photo in one warm process."""
    out.mkdir(exist_ok=True)
    times = []
    for photo in PHOTOS:
        t = time.perf_counter()
        plain_one((str(photo), str(out), with_tiff))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_pillow() -> None:
    rows = []
    for name, rules, with_tiff in (
        ("web JPEG 2048 q85", WEB, False),
        ("web JPEG + archival TIFF", WEB + TIFF, True),
    ):
        folder = workspace("pillow", rules)
        files = copies(folder / "inbox", 3)
        ours, theirs, jobs = [], [], []
        for _ in range(3):  # alternate, so drift in the machine's load hits both sides alike
            theirs.append(plain_loop(files, folder / "plain", with_tiff))
            wall, ms = hotfolder_process(folder)
            ours.append(wall)
            jobs.extend(ms)
        a, b = statistics.median(ours), statistics.median(theirs)
        job, loop = statistics.median(jobs), plain_per_photo(folder / "plain1", with_tiff)
        rows.append(
            [
                name,
                str(len(files)),
                f"{b:.2f} s",
                f"{a:.2f} s",
                f"{b / a:.2f}",
                f"{loop:.3f} s",
                f"{job:.3f} s",
                f"{loop / job:.2f}",
            ]
        )
        shutil.rmtree(folder)
    table(
        f"1. hotfolder process vs a plain Pillow loop ({WORKERS} processes each, medians of 3 runs, 12.5 MP)",
        [
            "outputs",
            "photos",
            "loop, wall",
            "hotfolder, wall",
            "ratio (target >= 0.95)",
            "loop per photo",
            "hotfolder per job",
            "ratio per photo",
        ],
        rows,
        "python tests/bench/bench.py pillow  (ratio = loop time / hotfolder time. Wall: the whole command, "
        "interpreter and pool start included. Per photo: the loop in one warm process vs the worker's own "
        "job time. hotfolder also hashes, verifies every output by decoding it, fsyncs and keeps a ledger)",
    )


# 2. hotfolder vs ImageMagick and libvips, one process, per photo -------------------------------------------


def imagemagick() -> list[str] | None:
    for cand in (["magick"], ["/usr/bin/convert"], ["convert"]):
        if shutil.which(cand[0]) is None:
            continue
        probe = subprocess.run([*cand, "-version"], capture_output=True, text=True, check=False)
        if "ImageMagick" in probe.stdout:
            return cand
    return None


def per_photo(run: Callable[[Path, Path], None], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    times = []
    for photo in PHOTOS:
        t = time.perf_counter()
        run(photo, out)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def hotfolder_per_photo(rules: str) -> float:
    """Median of the workers' own job times (read → every output verified and committed), one worker."""
    folder = workspace("tools", rules, extra="")
    (folder / "hotfolder.toml").write_text(
        (folder / "hotfolder.toml").read_text().replace("workers = 2", "workers = 1")
    )
    for photo in PHOTOS:
        shutil.copy(photo, folder / "inbox" / photo.name)
    argv = [*HOTFOLDER, "process", "--force", "--log-format", "json", "inbox"]
    out = subprocess.run(argv, cwd=folder, env=ENV, check=True, capture_output=True, text=True).stdout
    ms = [json.loads(line)["ms"] for line in out.splitlines() if '"job.done"' in line]
    shutil.rmtree(folder)
    assert len(ms) == len(PHOTOS), out[-2000:]
    return statistics.median(ms) / 1000


def bench_tools() -> None:
    import pyvips  # noqa: PLC0415 - only this part needs it

    magick = imagemagick()

    def vips_web(src: Path, out: Path) -> None:
        pyvips.Image.thumbnail(str(src), EDGE).jpegsave(str(out / f"{src.stem}.jpg"), Q=85)

    def vips_tiff(src: Path, out: Path) -> None:
        im = pyvips.Image.new_from_file(str(src)).autorot()  # random access: autorot may turn it
        im.tiffsave(str(out / f"{src.stem}.tif"), compression="deflate", predictor="horizontal")

    def im_web(src: Path, out: Path) -> None:
        assert magick is not None
        subprocess.run(
            [
                *magick,
                str(src),
                "-auto-orient",
                "-resize",
                f"{EDGE}x{EDGE}>",
                "-quality",
                "85",
                str(out / f"{src.stem}.jpg"),
            ],
            check=True,
            stderr=subprocess.DEVNULL,
        )

    def im_tiff(src: Path, out: Path) -> None:
        assert magick is not None
        subprocess.run(
            [
                *magick,
                str(src),
                "-auto-orient",
                "-compress",
                "zip",
                "-define",
                "tiff:predictor=2",
                str(out / f"{src.stem}.tif"),
            ],
            check=True,
            stderr=subprocess.DEVNULL,
        )

    tmp = Path(tempfile.mkdtemp(prefix="hf-bench-tools-"))
    rows = []
    for name, rules, vips_run, im_run in (
        ("web: JPEG 2048 q85", WEB, vips_web, im_web),
        ("archival: TIFF deflate", TIFF, vips_tiff, im_tiff),
    ):
        ours = hotfolder_per_photo(rules)
        vips = per_photo(vips_run, tmp / "vips")
        im = per_photo(im_run, tmp / "im") if magick else None
        magick_cells = [f"{im:.3f} s", f"{im / ours:.2f}x"] if im else ["not installed", "-"]
        rows.append([name, f"{ours:.3f} s", f"{vips:.3f} s", f"{vips / ours:.2f}", *magick_cells])
    shutil.rmtree(tmp)
    table(
        "2. per photo, one process: hotfolder vs libvips (pyvips) and ImageMagick (medians over 8 photos)",
        ["pipeline", "hotfolder", "libvips", "libvips/hotfolder", "ImageMagick", "hotfolder faster by"],
        rows,
        "python tests/bench/bench.py tools  (hotfolder: the worker's job time incl. hashing, "
        "verification, fsync; ImageMagick: `convert` per photo (apt-get install imagemagick); "
        "libvips: thumbnail/tiffsave in-process)",
    )


# 3. latency and idle CPU with the daemon running ----------------------------------------------------------


@contextmanager
def daemon(folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (folder / "log.jsonl").open("w")
    proc = subprocess.Popen(
        [*HOTFOLDER, "run", "--log-format", "json"],
        cwd=folder,
        env=ENV,
        stdout=log,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while '"daemon.started"' not in (folder / "log.jsonl").read_text():
            assert time.monotonic() < deadline and proc.poll() is None, "daemon did not start"
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        log.close()


def events(folder: Path, name: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines() if f'"{name}"' in x]


def epoch(iso: object) -> float:
    return datetime.fromisoformat(str(iso)).timestamp()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency_inputs(n: int) -> list[bytes]:
    """n distinct small JPEGs (crops of a real photo), so none is skipped as a duplicate."""
    with Image.open(PHOTOS[0]) as im:
        im.draft("RGB", (1020, 768))
        base = im.convert("RGB")
    out = []
    for i in range(n):
        x, y = (i * 7) % 300, (i * 13) % 200
        buf = io.BytesIO()
        base.crop((x, y, x + 640, y + 480)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def bench_latency() -> None:
    from watchdog.events import FileSystemEvent, FileSystemEventHandler  # noqa: PLC0415
    from watchdog.observers import Observer  # noqa: PLC0415

    n = 200
    rules = '[[rule.output]]\nformat = "jpeg"\nprofile = "web"\nmax_edge = 320\npath = "{stem}.jpg"\n'
    folder = workspace("latency", rules)
    payloads = latency_inputs(n)
    seen: dict[str, float] = {}

    class Seen(FileSystemEventHandler):
        def on_moved(self, event: FileSystemEvent) -> None:  # the atomic rename makes it visible
            seen.setdefault(Path(os.fsdecode(event.dest_path)).stem, time.time())

    (folder / "outbox").mkdir()
    observer = Observer()
    observer.schedule(Seen(), str(folder / "outbox"), recursive=True)
    observer.start()
    closed: dict[str, float] = {}
    with daemon(folder):
        for i, data in enumerate(payloads):
            name = f"f{i:03d}"
            with (folder / "inbox" / f"{name}.jpg").open("wb") as fp:
                fp.write(data)
            closed[name] = time.time()
            time.sleep(0.1)  # one at a time: latency, not throughput
        deadline = time.monotonic() + 60
        while len(seen) < n and time.monotonic() < deadline:
            time.sleep(0.05)
    observer.stop()
    observer.join()
    started = {Path(str(e["src"])).stem: epoch(e["started_at"]) for e in events(folder, "job.done")}
    # The plain loop's time for the same file: what any converter must spend anyway.
    plain = {}
    for i, data in enumerate(payloads):
        t = time.perf_counter()
        with Image.open(io.BytesIO(data)) as im:
            up = ImageOps.exif_transpose(im)
            up.thumbnail((320, 320), Image.Resampling.LANCZOS)
            up.save(io.BytesIO(), "JPEG", quality=85)
        plain[f"f{i:03d}"] = time.perf_counter() - t
    to_start = [(started[k] - closed[k]) * 1000 for k in closed if k in started]
    to_visible = [(seen[k] - closed[k] - plain[k]) * 1000 for k in closed if k in seen]
    shutil.rmtree(folder)
    table(
        f"3a. latency with the daemon running, {n} files written one at a time (inotify root)",
        ["measure", "p50", "p99", "target"],
        [
            [
                "file closed -> job started",
                f"{pct(to_start, 50):.1f} ms",
                f"{pct(to_start, 99):.1f} ms",
                "p50 <= 5 ms, p99 <= 50 ms",
            ],
            [
                "closed -> output visible, minus the plain loop's time",
                f"{pct(to_visible, 50):.1f} ms",
                f"{pct(to_visible, 99):.1f} ms",
                "p50 <= 20 ms",
            ],
            ["files seen / processed", f"{len(to_visible)} / {len(to_start)}", "", f"{n}"],
        ],
        "python tests/bench/bench.py latency",
    )


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children still alive."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def bench_idle() -> None:
    rows = []
    for mode in ("native", "poll"):
        folder = workspace("idle", '[rule.match]\nglob = ["*.jpg"]\n' + WEB)
        text = (
            (folder / "hotfolder.toml")
            .read_text()
            .replace('path = "inbox"', f'path = "inbox"\nmode = "{mode}"')
        )
        (folder / "hotfolder.toml").write_text(text)
        for i in range(100):
            sub = folder / "inbox" / f"d{i:02d}"
            sub.mkdir()
            for j in range(100):
                (sub / f"{j:03d}.dat").write_bytes(b"x")
        with daemon(folder) as proc:
            deadline = time.monotonic() + 300
            while '"scan.done"' not in (folder / "log.jsonl").read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(12)  # the scan's files are dispatched and recorded
            before, t = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(30)
            used = (cpu_seconds(proc.pid) - before) / (time.monotonic() - t)
        label, target = ("native", "~0") if mode == "native" else ("poll (10 s default)", "<= 2%")
        rows.append([label, "10,000", f"{used * 100:.2f}% of a core", target])
        shutil.rmtree(folder)
    table(
        "3b. idle CPU of the whole daemon (process tree), 30 s",
        ["root", "files", "CPU", "target"],
        rows,
        "python tests/bench/bench.py idle",
    )


# 4. a 2,000-file burst --------------------------------------------------------------------------------------


def tree_rss_kb(pid: int) -> int:
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if int(status.parent.name) == pid or fields.get("PPid", "").strip() == str(pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total


def bench_burst() -> None:
    n = 2000
    rules = '[[rule.output]]\nformat = "jpeg"\nprofile = "web"\nmax_edge = 256\npath = "{stem}.jpg"\n'
    folder = workspace("burst", rules)
    staging = folder / "staging"
    staging.mkdir()
    with Image.open(CORPUS / "hopper.bmp") as hopper:
        base = hopper.convert("RGB")
    for i in range(n):  # distinct pixels, or all but one would be duplicates
        im = base.copy()
        im.putpixel((0, 0), (i % 256, i // 256, 7))
        im.save(staging / f"b{i:04d}.png")
    peak = 0
    with daemon(folder) as proc:
        t = time.perf_counter()
        (staging).rename(folder / "inbox" / "burst")  # a folder of 2,000 moved in at once
        while True:
            peak = max(peak, tree_rss_kb(proc.pid))
            text = (folder / "log.jsonl").read_text()
            done = text.count('"job.done"') + text.count('"file.duplicate"') + text.count('"job.quarantined"')
            if done >= n or time.perf_counter() - t > 600:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - t
    made = list((folder / "outbox").glob("*.jpg"))
    jobs = events(folder, "job.done")
    twice = len(jobs) - len({e["src"] for e in jobs})
    shutil.rmtree(folder)
    table(
        f"4. burst: a folder of {n} small PNGs moved into a running daemon ({WORKERS} workers)",
        ["done", "outputs", "processed twice", "wall", "throughput", "peak RSS, whole tree"],
        [
            [
                str(len(jobs)),
                str(len(made)),
                str(twice),
                f"{elapsed:.1f} s",
                f"{len(jobs) / elapsed:.0f} files/s",
                f"{peak / 1024:.0f} MB",
            ]
        ],
        "python tests/bench/bench.py burst",
    )


# 5. camera RAW: hotfolder against bare rawpy ----------------------------------------------------------

RAW_BARE = """
import io, sys, time
import numpy as np, pyvips, rawpy
from PIL import Image
src, mode, out = sys.argv[1], sys.argv[2], sys.argv[3]
t = time.perf_counter()
with rawpy.imread(src) as raw:
    if mode == "preview":
        im = Image.open(io.BytesIO(raw.extract_thumb().data))
        im = im.transpose(Image.Transpose.ROTATE_270)  # the DNG says Orientation 6
        im.thumbnail((2048, 2048), Image.Resampling.LANCZOS)
        im.save(out, quality=85)
    else:
        px = raw.postprocess(demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD, half_size=mode == "half",
                             use_camera_wb=True, no_auto_bright=True, output_bps=16, gamma=(2.4, 12.92))
        if mode == "half":
            im = Image.fromarray((px >> 8).astype(np.uint8))
            im.thumbnail((2048, 2048), Image.Resampling.LANCZOS)
            im.save(out, quality=85)
        else:
            v = pyvips.Image.new_from_array(px).copy(interpretation="rgb16")
            v.tiffsave(out, compression="deflate", predictor="horizontal", level=6)
print(time.perf_counter() - t)
"""

# Runs a command and reports the largest resident size of any process it started (for hotfolder: the
# worker). Measured from a small parent: Linux carries a process's peak across fork and exec, so
# RUSAGE_SELF in a child of this benchmark would report the benchmark's own 1.3 GB.
RAW_WRAP = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True)
print(done.stdout, end="")
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
RAW_RUNS = 3  # per side and job; the machine is noisy, a single run is not a figure
RAW_JOBS = {
    "preview -> web JPEG 2048": ("preview", 'format = "jpeg"\nraw = "preview"\nmax_edge = 2048\n'),
    "half-size render -> web JPEG 2048": ("half", 'format = "jpeg"\nraw = "render"\nmax_edge = 2048\n'),
    "full render -> 16-bit TIFF": ("full", 'format = "tiff"\n'),
}


def _raw_job(dng: Path, mode: str, output: str, bare_out: Path) -> tuple[float, float, float, float, float]:
    """(hotfolder's job s, bare s, hotfolder wall s, hotfolder peak MB, bare peak MB) for one RAW job:
    the medians of RAW_RUNS runs of each side, alternating, so both see the same noise."""
    ext = "tif" if mode == "full" else "jpg"
    rules = f'[rule.match]\nformats = ["raw"]\n[[rule.output]]\n{output}path = "{{stem}}.{ext}"\n'
    env = {**ENV, "OMP_NUM_THREADS": "1", "VIPS_CONCURRENCY": "1"}
    python = sys.executable
    bare_argv = [python, "-c", RAW_WRAP, python, "-c", RAW_BARE, str(dng), mode, str(bare_out)]
    runs: list[tuple[float, float, float, float, float]] = []
    for _ in range(RAW_RUNS):
        bare = subprocess.run(bare_argv, env=env, check=True, capture_output=True, text=True).stdout.split()
        work = workspace("raw", rules)
        config = work / "hotfolder.toml"
        config.write_text(config.read_text().replace(f"workers = {WORKERS}", "workers = 1"))
        shutil.copy(dng, work / "inbox" / dng.name)
        argv = [python, "-c", RAW_WRAP, *HOTFOLDER, "process", "--force", "--log-format", "json", "inbox"]
        t = time.perf_counter()
        lines = subprocess.run(
            argv, cwd=work, env=ENV, check=True, capture_output=True, text=True
        ).stdout.splitlines()
        wall = time.perf_counter() - t
        shutil.rmtree(work)
        job = next(json.loads(x) for x in lines[:-1] if '"job.done"' in x)
        peak, bare_peak = int(lines[-1]) / 1024, float(bare[1]) / 1024
        runs.append((float(job["ms"]) / 1000, float(bare[0]), wall, peak, bare_peak))
    return tuple(statistics.median(r[k] for r in runs) for k in range(5))  # type: ignore[return-value]


def bench_raw() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from synthdng import write_dng  # noqa: PLC0415 - the tests' DNG writer

    folder = Path(tempfile.mkdtemp(prefix="hf-bench-raw-"))
    dng = write_dng(folder / "synthetic24.dng", PHOTOS[0], orientation=6, size=(6000, 4000), preview=2560)
    rows, times = [], {}
    for label, (mode, output) in RAW_JOBS.items():
        ext = "tif" if mode == "full" else "jpg"
        job_s, bare_s, wall, peak, bare_peak = _raw_job(dng, mode, output, folder / f"bare-{mode}.{ext}")
        times[mode] = job_s
        rows.append(
            [
                label,
                f"{job_s:.2f} s",
                f"{bare_s:.2f} s",
                f"{job_s / bare_s:.2f}x",
                f"{wall:.2f} s",
                f"{peak:.0f} MB",
                f"{bare_peak:.0f} MB",
            ]
        )
    shutil.rmtree(folder)
    rows.append(["full render / preview", f"{times['full'] / times['preview']:.1f}x", "", "", "", "", ""])
    table(
        "5. camera RAW: a synthetic 24 MP DNG (6000x4000, Orientation 6, 2560 px preview), one worker",
        ["job", "hotfolder (worker)", "bare rawpy", "ratio", "hotfolder wall", "peak RSS", "bare peak RSS"],
        rows,
        "python tests/bench/bench.py raw",
    )


# 7. the same photos through the local pool and through a dask cluster --------------------------------


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed_process(folder: Path) -> tuple[float, float, float, list[float]]:
    """`hotfolder process` over the inbox: wall time; the span from the first job's start to the last
    job's end (the engine at work, without start-up); the coordinator's CPU seconds; each job's seconds."""
    import resource  # noqa: PLC0415

    shutil.rmtree(folder / "outbox", ignore_errors=True)
    shutil.rmtree(folder / "state", ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    argv = [*HOTFOLDER, "process", "--force", "--log-format", "json", "inbox"]
    out = subprocess.run(argv, cwd=folder, env=ENV, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    done = [json.loads(x) for x in out.splitlines() if '"job.done"' in x]
    span = max(epoch(e["timestamp"]) for e in done) - min(epoch(e["started_at"]) for e in done)
    return wall, span, cpu, [float(e["ms"]) / 1000 for e in done]


def bench_cluster() -> None:
    rules = WEB
    pool = workspace("pool", rules)
    copies(pool / "inbox", 3)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    cluster = workspace("cluster", rules, f'[cluster]\nscheduler = "{address}"\nallow_insecure = true\n')
    text = (cluster / "hotfolder.toml").read_text().replace(f"workers = {WORKERS}\n", "")
    # [cluster] is a table: it must come after the top-level keys and the [[watch]] array.
    head, table_part = text.split("[cluster]", 1)
    table_body, watch = table_part.split("[[watch]]", 1)
    (cluster / "hotfolder.toml").write_text(head + "[[watch]]" + watch + "\n[cluster]" + table_body)
    copies(cluster / "inbox", 3)
    dask = Path(sys.executable).with_name("dask")
    quiet = {"env": ENV, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = [str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    workers = [*HOTFOLDER, "worker", address, "--nworkers", str(WORKERS), "--heavy", "1", "--allow-insecure"]
    procs = [subprocess.Popen(scheduler, **quiet), subprocess.Popen(workers, **quiet)]  # type: ignore[call-overload]
    try:
        hotfolder_process(cluster)  # warm: workers up and verified, caches filled, as for the pool below
        hotfolder_process(pool)
        p_wall, p_span, _, p_jobs = _timed_process(pool)
        c_wall, c_span, c_cpu, c_jobs = _timed_process(cluster)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    n = len(c_jobs)
    assert n == len(p_jobs) == 24, (n, len(p_jobs))
    job_s = statistics.median(c_jobs)
    # The coordinator's own CPU per job: what it spends deciding, sending, receiving and committing.
    # The pool's figure includes its worker processes (children of the daemon), so only the cluster's is
    # the coordinator alone.
    coord = c_cpu / n
    rows = [
        [
            "local pool, 2 workers",
            f"{n / p_span:.2f}",
            "1.00",
            f"{n / p_wall:.2f}",
            "1.00",
            f"{statistics.median(p_jobs):.2f}",
            "-",
        ],
        [
            "dask cluster, 2 workers",
            f"{n / c_span:.2f}",
            f"{p_span / c_span:.2f}",
            f"{n / c_wall:.2f}",
            f"{p_wall / c_wall:.2f}",
            f"{job_s:.2f}",
            f"{coord * 1000:.0f}",
        ],
    ]
    table(
        "Local pool vs a 2-worker dask cluster on the same cores (target: cluster >= 0.9x, working)",
        [
            "engine",
            "photos/s working",
            "x pool",
            "photos/s wall",
            "x pool",
            "median job s",
            "coordinator ms CPU/job",
        ],
        rows,
        "python tests/bench/bench.py cluster  (24 12 MP photos, web JPEG; working: first job's start to the "
        "last job's end; wall: the whole command, with importing dask, connecting and checking the workers)",
    )
    # A host of C cores does C/job_s jobs a second; one coordinator commits 1/coord a second on one core.
    cores = WORKERS
    per_host = cores / job_s
    most = 1 / coord if coord else float("inf")
    print(
        f"\nmodel: one host of {cores} cores: {per_host:.2f} photos/s; one coordinator (1 core): "
        f"{most:.0f} photos/s; so it feeds about {most / per_host:.0f} such hosts before it is the limit",
        flush=True,
    )


# 8. what a user sees first: one-shot runs against what they would write instead ---------------------------

# The scripts a user would write instead, run as their own interpreters (start-up included, as for
# hotfolder), importing only what they use: Pillow, or pyvips.
PILLOW_LOOP = """
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from PIL import Image, ImageOps

def one(src):
    with Image.open(src) as im:
        exif, icc = im.info.get("exif", b""), im.info.get("icc_profile")
        up = ImageOps.exif_transpose(im)
        up.thumbnail((2048, 2048), Image.Resampling.LANCZOS)
        up.save(Path(sys.argv[2]) / (Path(src).stem + ".jpg"), quality=85, exif=exif, icc_profile=icc)

if __name__ == "__main__":
    with ProcessPoolExecutor(int(sys.argv[1])) as ex:
        list(ex.map(one, sys.argv[3:]))
"""
PILLOW_PNG = """
import sys
from pathlib import Path
from PIL import Image, ImageOps

for src in sys.argv[2:]:
    with Image.open(src) as im:
        exif, icc = im.info.get("exif", b""), im.info.get("icc_profile")
        up = ImageOps.exif_transpose(im)
        up.save(Path(sys.argv[1]) / (Path(src).stem + ".png"), compress_level=6, exif=exif, icc_profile=icc)
"""
PILLOW_ONE = """
import sys
from pathlib import Path
from PIL import Image, ImageOps

src, out = sys.argv[1], Path(sys.argv[2])
with Image.open(src) as im:
    exif, icc = im.info.get("exif", b""), im.info.get("icc_profile")
    up = ImageOps.exif_transpose(im)
    up.thumbnail((2048, 2048), Image.Resampling.LANCZOS)
    up.save(out / (Path(src).stem + ".jpg"), quality=85, exif=exif, icc_profile=icc)
"""
# libvips doing what hotfolder's rule does, in 2 one-thread processes. KEEP: which metadata jpegsave keeps
# (argv[2]); SRGB (argv[3] == "1"): a photo with a profile converted to sRGB, as the web profile does.
VIPS_LOOP = """
import os, sys
os.environ["VIPS_CONCURRENCY"] = "1"
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import pyvips

def one(src):
    out = str(Path(sys.argv[2]) / (Path(src).stem + ".jpg"))
    im = pyvips.Image.thumbnail(src, 2048)
    if sys.argv[4] == "1" and im.get_typeof("icc-profile-data"):
        im = im.icc_transform("srgb")
    im.jpegsave(out, Q=85, keep=int(sys.argv[3]))

if __name__ == "__main__":
    with ProcessPoolExecutor(int(sys.argv[1])) as ex:
        list(ex.map(one, sys.argv[5:]))
"""
PNG = '[[rule.output]]\nformat = "png"\nexif = "keep"\ngps = "keep"\nicc = "keep"\npath = "png/{stem}.png"\n'


def installed() -> list[str]:
    """The console script `pip install -e .` made (as a user starts it), not `python -m` with a path."""
    script = Path(sys.executable).with_name("hotfolder")
    assert script.exists(), f"{script}: run `make test` first (pip install -e '.[test]')"
    return [str(script)]


def wall(argv: list[str], **kw: object) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t


def descendants_rss_kb(pid: int) -> int:
    """Resident memory of `pid` and every process below it, children of children too (kB)."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        child = int(status.parent.name)
        parent[child] = int(fields.get("PPid", "0").strip() or 0)
        rss[child] = int(fields.get("VmRSS", "0 kB").split()[0])
    tree, grew = {pid}, True
    while grew:
        more = {c for c, p in parent.items() if p in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(rss.get(p, 0) for p in tree)


def one_shot(folder: Path, peak: list[int] | None = None) -> float:
    """`hotfolder process` as installed, fresh state each time: the whole command's wall time. With
    `peak`, the whole process tree's resident memory is sampled every 20 ms and its peak appended (kB)."""
    shutil.rmtree(folder / "outbox", ignore_errors=True)
    shutil.rmtree(folder / "state", ignore_errors=True)
    argv = [*installed(), "process", "--force", "inbox"]
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    if peak is None:
        return wall(argv, cwd=folder, env=env)
    t = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    most = 0
    while proc.poll() is None:
        most = max(most, descendants_rss_kb(proc.pid))
        time.sleep(0.02)
    took = time.perf_counter() - t
    assert proc.returncode == 0, f"hotfolder process failed in {folder}"
    peak.append(most)
    return took


def script(code: str, *args: object, env: dict[str, str] | None = None, out: Path | None = None) -> float:
    target = out or Path(str(args[0]) if code is PILLOW_PNG else str(args[1]))
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    return wall([sys.executable, "-c", code, *map(str, args)], env=env)


def magick_pair(magick: list[str], files: list[Path], out: Path) -> float:
    """ImageMagick's binary, one per photo, two at a time (xargs -P 2), as a shell user runs it."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = (
        f'{" ".join(magick)} "$0" -auto-orient -resize "{EDGE}x{EDGE}>" -quality 85 "{out}/$(basename "$0")"'
    )
    return wall(
        ["xargs", "-P", str(WORKERS), "-n", "1", "sh", "-c", cmd],
        input=b"\n".join(str(f).encode() for f in files),
    )


def first_output(folder: Path) -> tuple[float, float]:
    """`hotfolder run` started with a photo already in the inbox: seconds from the start to its output
    committed, and that job's own time (decode, encode, verify)."""
    for sub in ("outbox", "state"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    log = folder / "first.jsonl"
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    with log.open("w") as out:
        t0 = time.time()
        argv = [*installed(), "run", "--log-format", "json"]
        proc = subprocess.Popen(argv, cwd=folder, env=env, stdout=out, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while '"job.done"' not in (text := log.read_text()):
                assert time.monotonic() < deadline and proc.poll() is None, text[-2000:]
                time.sleep(0.02)  # a benchmark's poll: 20 ms of resolution on a figure of ~1 s
            done = [json.loads(x) for x in text.splitlines() if '"job.done"' in x]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return epoch(done[0]["timestamp"]) - t0, float(done[0]["ms"]) / 1000


# The default web profile (EXIF without GPS, no XMP/IPTC, sRGB), as a user writes the rule.
WEB_DEFAULT = (
    f'[[rule.output]]\nformat = "jpeg"\nquality = 85\nmax_edge = {EDGE}\npath = "web/{{stem}}.jpg"\n'
)


def bench_first() -> None:
    import pyvips  # noqa: PLC0415 - only for its metadata flags

    keep = pyvips.enums.ForeignKeep
    magick = imagemagick()
    folder = workspace("first", WEB)
    files = [shutil.copy(p, folder / "inbox" / p.name) and folder / "inbox" / p.name for p in PHOTOS]
    single = workspace("single", WEB)
    shutil.copy(PHOTOS[0], single / "inbox" / PHOTOS[0].name)
    many = workspace("many", WEB)
    many_files = copies(many / "inbox", 3)
    web = workspace("web", WEB_DEFAULT)
    copies(web / "inbox", 3)
    png = workspace("png", PNG)
    (png / "hotfolder.toml").write_text(
        (png / "hotfolder.toml").read_text().replace("workers = 2", "workers = 1")
    )
    png_files = [folder / "inbox" / p.name for p in PHOTOS[:2]]
    for p in png_files:
        shutil.copy(p, png / "inbox" / p.name)
    vips_env = {**os.environ, "VIPS_CONCURRENCY": "1"}
    runs: dict[str, list[float]] = {
        k: []
        for k in (
            *("hf8", "loop8", "im8", "hf1", "pil1", "hfpng", "pilpng"),
            *("hf24", "vips24", "hfweb", "vipsweb", "first", "encode"),
        )
    }
    peaks: list[int] = []
    for _ in range(3):  # alternating sides, so the machine's drift hits both alike
        runs["loop8"].append(script(PILLOW_LOOP, WORKERS, folder / "loop", *files))
        runs["hf8"].append(one_shot(folder))
        if magick:
            runs["im8"].append(magick_pair(magick, files, folder / "im"))
        runs["pil1"].append(script(PILLOW_ONE, files[0], folder / "one"))
        runs["hf1"].append(one_shot(single))
        runs["pilpng"].append(script(PILLOW_PNG, folder / "pngs", *png_files))
        runs["hfpng"].append(one_shot(png))
        same = (WORKERS, many / "vips", int(keep.EXIF | keep.ICC), 0, *many_files)
        runs["vips24"].append(script(VIPS_LOOP, *same, env=vips_env))
        runs["hf24"].append(one_shot(many))
        srgb = (WORKERS, many / "vipsweb", int(keep.EXIF), 1, *many_files)
        runs["vipsweb"].append(script(VIPS_LOOP, *srgb, env=vips_env))
        runs["hfweb"].append(one_shot(web))
        start, encode = first_output(single)
        runs["first"].append(start)
        runs["encode"].append(encode)
    # Rows 4 and 5 twice more: their two sides each moved by up to 7% between runs here (10 alternating
    # pairs of row 5: 1.71-2.21 s for libvips, 1.79-2.19 s for hotfolder), so a median of 3 landed
    # anywhere in 0.87-1.06x; of 5 it is steadier for ~15 s more.
    for _ in range(2):
        runs["vips24"].append(script(VIPS_LOOP, *same, env=vips_env))
        runs["hf24"].append(one_shot(many))
        runs["vipsweb"].append(script(VIPS_LOOP, *srgb, env=vips_env))
        runs["hfweb"].append(one_shot(web))
    # Memory in a run of its own: sampling /proc every 20 ms takes CPU from the two cores it measures.
    one_shot(many, peaks)
    m = {k: statistics.median(v) if v else float("nan") for k, v in runs.items()}
    print("runs:", json.dumps({k: [round(x, 3) for x in v] for k, v in runs.items()}))
    ours_png = sum(f.stat().st_size for f in (png / "outbox" / "png").glob("*.png"))
    theirs_png = sum(f.stat().st_size for f in (folder / "pngs").glob("*.png"))
    im_cells = [f"{m['im8']:.2f} s", f"{m['hf8']:.2f} s", f"{m['im8'] / m['hf8']:.2f}x"]
    if not magick:
        im_cells = ["not installed", "-", "-"]

    def row(what: str, theirs: str, ours: str, target: str) -> list[str]:
        return [what, f"{m[theirs]:.2f} s", f"{m[ours]:.2f} s", f"{m[theirs] / m[ours]:.2f}x", target]

    rows = [
        row(
            "1. one-shot `process`, 8 photos web JPEG, 2 workers, vs a 2-process Pillow loop",
            "loop8",
            "hf8",
            ">= 1.5x",
        ),
        ["2. same, vs ImageMagick's binary, 2 processes", *im_cells, ">= 2.8x"],
        row("3. `process` of 1 photo vs a one-photo Pillow script", "pil1", "hf1", ">= 0.95x"),
        row(
            "4. web JPEG, default web profile, 24 photos, 2 workers, vs libvips thumbnail + icc_transform + "
            "jpegsave(keep=exif), 2 one-thread processes",
            "vipsweb",
            "hfweb",
            ">= 0.90x",
        ),
        row(
            "5. the same work on both sides (icc, gps kept; libvips keep=exif|icc), 24 photos",
            "vips24",
            "hf24",
            ">= 0.95x",
        ),
        row(
            f"6. archival PNG, 2 photos, 1 worker, vs Pillow level 6 "
            f"(size {ours_png / theirs_png:.3f}x theirs)",
            "pilpng",
            "hfpng",
            ">= 2x, size <= 0.98",
        ),
        [
            "7. daemon: `run` start to the first output, a photo already waiting (its job's time)",
            f"{m['encode']:.2f} s",
            f"{m['first']:.2f} s",
            f"+{m['first'] - m['encode']:.2f} s",
            "<= +0.3 s",
        ],
    ]
    table(
        "8. One-shot and first-photo speed against what a user would run instead "
        "(medians of 3 alternating runs, of 5 for rows 4-5)",
        ["measure", "theirs", "hotfolder", "ratio", "target"],
        rows,
        "python tests/bench/bench.py first  (everything as its own command, interpreter start included: "
        "the installed `hotfolder` script; the Pillow and pyvips scripts import only their library "
        "(their text is in bench.py); ImageMagick: `xargs -P 2 convert`; ratio = theirs / hotfolder)",
    )
    print(f"peak memory of row 5's hotfolder run, whole process tree: {max(peaks) / 1024:.0f} MB (a 4th run)")
    print("each row by hand, in a folder made like the benchmark's (hotfolder.toml + rules.toml + inbox/):")
    hf = "hotfolder process --force inbox"
    for n, how in (
        (1, f'{hf}  vs  python -c "$PILLOW_LOOP" 2 loop inbox/*.jpg'),
        (
            2,
            f'{hf}  vs  ls inbox/*.jpg | xargs -P 2 -n 1 sh -c \'convert "$0" -auto-orient -resize '
            f'{EDGE}x{EDGE}\\> -quality 85 "im/$(basename "$0")"\'',
        ),
        (3, f'{hf} (one photo)  vs  python -c "$PILLOW_ONE" inbox/x.jpg one'),
        (
            4,
            f'{hf} (rules: WEB_DEFAULT)  vs  VIPS_CONCURRENCY=1 python -c "$VIPS_LOOP" 2 out 1 1 inbox/*.jpg',
        ),
        (5, f'{hf} (rules: WEB)  vs  VIPS_CONCURRENCY=1 python -c "$VIPS_LOOP" 2 out 9 0 inbox/*.jpg'),
        (6, f'{hf} (rules: PNG, workers = 1)  vs  python -c "$PILLOW_PNG" pngs a.jpg b.jpg'),
        (7, "hotfolder run --log-format json, a photo in inbox/: job.done's timestamp - start, vs its ms"),
    ):
        print(f"  row {n}: {how}")
    for f in (folder, single, many, web, png):
        shutil.rmtree(f)


# 9. JPEG XL archive ------------------------------------------------------------------------------------

JXL = '[[rule.output]]\nformat = "jxl"\npath = "jxl/{stem}.jxl"\n'


def bench_jxl() -> None:
    """The 8 photos archived as JPEG XL (transcoded, rebuildable) against the archival PNG the default
    rules write: seconds per photo and bytes against the JPEGs."""
    import imagecodecs  # noqa: PLC0415 - the rebuild is checked with libjxl's own call

    jxl = workspace("jxl", JXL)
    png = workspace("jxlpng", PNG)
    for folder in (jxl, png):
        for p in PHOTOS:
            shutil.copy(p, folder / "inbox" / p.name)
    times: dict[str, list[float]] = {"jxl": [], "png": []}
    for _ in range(2):
        times["jxl"].append(one_shot(jxl))
        times["png"].append(one_shot(png))
    jpegs = sum(p.stat().st_size for p in PHOTOS)
    ours = sorted((jxl / "outbox" / "jxl").glob("*.jxl"))
    pngs = sum(f.stat().st_size for f in (png / "outbox" / "png").glob("*.png"))
    same = sum(
        bytes(imagecodecs.jpegxl_decode_jpeg(f.read_bytes(), numthreads=1))
        == (jxl / "inbox" / (f.stem + ".jpg")).read_bytes()
        for f in ours
    )
    size = sum(f.stat().st_size for f in ours)
    per = {k: min(v) * WORKERS / len(PHOTOS) for k, v in times.items()}
    rebuilt = f"{same}/{len(ours)} rebuilt byte for byte"
    rows = [
        [
            "JPEG XL archive (transcode)",
            f"{per['jxl']:.2f} s",
            f"{size / jpegs:.3f}",
            f"{size / pngs:.3f}",
            rebuilt,
        ],
        ["archival PNG (the default rules')", f"{per['png']:.2f} s", f"{pngs / jpegs:.3f}", "1.000", "-"],
    ]
    table(
        "9. JPEG XL archive of the 8 photos against the archival PNG (2 workers, the faster of 2 runs)",
        ["output", "s per photo", "bytes / the JPEGs", "bytes / the PNGs", "check"],
        rows,
        "python tests/bench/bench.py jxl  (hotfolder process --force inbox with rules: JXL, then PNG; "
        "s per photo = wall x workers / 8; the rebuild judged by imagecodecs.jpegxl_decode_jpeg)",
    )
    for f in (jxl, png):
        shutil.rmtree(f)


# 10. events: the burst with an MQTT sink and a subscriber attached ------------------------------------


def _own_cpu(pid: int) -> float:
    """utime + stime of one process (its threads included, its children not)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _events_threads_cpu(pid: int) -> float:
    """CPU seconds of the two threads events add to the daemon (named hf-events, hf-events-mqtt)."""
    used = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if not (task / "comm").read_text().startswith("hf-events"):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def _burst_once(n: int, extra: str) -> tuple[int, float, float, float]:
    """A folder of n small PNGs moved into a running daemon: (jobs done, wall seconds, the daemon's own
    CPU seconds: where the sender thread and paho's run, the workers apart; those two threads' own)."""
    rules = '[[rule.output]]\nformat = "jpeg"\nprofile = "web"\nmax_edge = 256\npath = "{stem}.jpg"\n'
    folder = workspace("events", rules, extra)
    staging = folder / "staging"
    staging.mkdir()
    with Image.open(CORPUS / "hopper.bmp") as hopper:
        base = hopper.convert("RGB")
    for i in range(n):
        im = base.copy()
        im.putpixel((0, 0), (i % 256, i // 256, 9))
        im.save(staging / f"b{i:04d}.png")
    with daemon(folder) as proc:
        cpu = _own_cpu(proc.pid)
        t = time.perf_counter()
        staging.rename(folder / "inbox" / "burst")
        while True:
            done = (folder / "log.jsonl").read_text().count('"job.done"')
            if done >= n or time.perf_counter() - t > 600:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - t
        time.sleep(1)  # the last events sent (the with side), inside its CPU
        cpu = _own_cpu(proc.pid) - cpu
        threads = _events_threads_cpu(proc.pid)  # both start with the daemon: all theirs is the burst's
    shutil.rmtree(folder)
    return done, elapsed, cpu, threads


def bench_events() -> None:
    """The 2,000-file burst without and with an [[event]] MQTT sink (Debian's mosquitto on 127.0.0.1, a
    mosquitto_sub attached counting messages), sides alternating, five times each. Throughput moves by
    +-15% from one burst to the next on these cores: the difference of the medians is set beside the
    spread of the runs without events; the daemon's own CPU per file is what events add."""
    mosquitto, sub_bin = shutil.which("mosquitto"), shutil.which("mosquitto_sub")
    if mosquitto is None or sub_bin is None:
        print("\n## 10. events: skipped (apt-get install mosquitto mosquitto-clients)")
        return
    n, rounds = 2000, 5
    work = Path(tempfile.mkdtemp(prefix="hf-bench-broker-"))
    port = 18000 + os.getpid() % 1000
    (work / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen([mosquitto, "-c", str(work / "m.conf")], stderr=subprocess.DEVNULL)
    time.sleep(1)
    out = (work / "sub.txt").open("w")
    sub = subprocess.Popen(
        ["stdbuf", "-oL", sub_bin, "-p", str(port), "-t", "bench/#", "-q", "1"], stdout=out
    )
    time.sleep(1)
    sink = f'[[event]]\nname = "ha"\nurl = "mqtt://127.0.0.1:{port}/bench/jobs"\n'
    rates: dict[str, list[float]] = {"without": [], "with": []}
    cpu: dict[str, list[float]] = {"without": [], "with": []}
    own: list[float] = []
    try:
        for _ in range(rounds):
            for side, extra in (("without", ""), ("with", sink)):
                done, elapsed, used, theirs = _burst_once(n, extra)
                if extra:
                    own.append(theirs * 1000 / n)
                rates[side].append(done / elapsed)
                cpu[side].append(used * 1000 / n)
        time.sleep(2)
    finally:
        sub.terminate()
        broker.terminate()
        sub.wait()
        broker.wait()
        out.close()
    received = sum(1 for line in (work / "sub.txt").read_text().splitlines() if line.startswith("{"))
    shutil.rmtree(work)
    med = {k: statistics.median(v) for k, v in rates.items()}
    ms = {k: statistics.median(v) for k, v in cpu.items()}
    spread = (max(rates["without"]) - min(rates["without"])) / med["without"]
    p_rate, p_cpu = permutation_p(rates["without"], rates["with"]), permutation_p(cpu["without"], cpu["with"])
    table(
        f"10. events: the {n}-file burst without and with an MQTT sink and a subscriber ({WORKERS} workers, "
        f"{rounds} runs each, alternating)",
        ["run", "files/s (each run)", "median", "daemon CPU ms per file (each run)", "median",
         "messages received"],
        [
            ["without [[event]]", ", ".join(f"{r:.0f}" for r in rates["without"]),
             f"{med['without']:.0f} (runs spread {spread:.0%})",
             ", ".join(f"{c:.2f}" for c in cpu["without"]),
             f"{ms['without']:.2f} ms", "-"],
            ["with an MQTT sink (QoS 1)", ", ".join(f"{r:.0f}" for r in rates["with"]),
             f"{med['with']:.0f} ({med['with'] / med['without']:.2f}x, p = {p_rate:.2f})",
             ", ".join(f"{c:.2f}" for c in cpu["with"]),
             f"{ms['with']:.2f} ms ({ms['with'] - ms['without']:+.2f} ms, p = {p_cpu:.2f})",
             f"{received} of {rounds * n}"],
        ],
        "python tests/bench/bench.py events  (p: an exact permutation test of the two sides' means, "
        "two-sided: the chance that a random split of the 10 runs differs as much; p >= 0.05 is a "
        "difference these runs cannot tell from the machine's noise)",
    )  # fmt: skip
    runs = ", ".join(f"{x:.3f}" for x in own)
    share = statistics.median(own) / ms["with"]
    print(
        "the events' own threads (hf-events, hf-events-mqtt): "
        f"{statistics.median(own):.3f} ms of CPU per file (each run: {runs}), {share:.0%} of the daemon's; "
        "the rest of their cost is the event written in the job's transaction, in the main thread"
    )


def permutation_p(a: list[float], b: list[float]) -> float:
    """Two-sided exact permutation test of the difference of means (every split of the runs)."""
    pooled, observed = a + b, abs(statistics.mean(a) - statistics.mean(b))
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    extreme = 0
    for chosen in splits:
        x = [pooled[i] for i in chosen]
        y = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        extreme += abs(statistics.mean(x) - statistics.mean(y)) >= observed - 1e-9
    return extreme / len(splits)


PARTS = {
    "pillow": bench_pillow,
    "tools": bench_tools,
    "latency": bench_latency,
    "idle": bench_idle,
    "burst": bench_burst,
    "raw": bench_raw,
    "cluster": bench_cluster,
    "first": bench_first,
    "jxl": bench_jxl,
    "events": bench_events,
}


def main() -> None:
    assert len(PHOTOS) == 8, f"expected 8 photos in {ROOT.parent / 'shared' / 'photos'}"
    wanted = sys.argv[1:] or list(PARTS)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    print(f"# hotfolder benchmarks, {datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {len(os.sched_getaffinity(0))} cores ({cpu}), Python {sys.version.split()[0]}")
    t = time.perf_counter()
    for part in wanted:
        PARTS[part]()
    print(f"\nall parts: {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
