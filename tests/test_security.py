"""Nothing escapes the folders hotfolder was given: hostile EXIF and names, symlinks in watched and
output trees, bombs, rule files that try to be code, and the modes outputs get."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, DaemonProcess, corpus, output, run_cli, run_outputs, write_config

HOSTILE = {
    "make": "../../../../../tmp",
    "model": "/etc/cron.d/\u202egpj.exe\x00" + "A" * 600,  # absolute, right-to-left override, NUL, long
}


def hostile_jpeg(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x010F] = HOSTILE["make"]
    exif[0x0110] = HOSTILE["model"]
    Image.new("RGB", (64, 48), "teal").save(path, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("template", ["{make}/{model}/{stem}.png", "{camera}.png", "{relpath}/{name}.png"])
def test_exif_and_file_names_cannot_leave_output_root(tmp_path: Path, template: str) -> None:
    src = hostile_jpeg(tmp_path / "seed.jpg")
    before = set(tmp_path.rglob("*"))
    name = "..\u2215..\uff0e\uff0e\nevil .jpg"  # division slash, fullwidth dots, newline
    outcome = run_outputs(tmp_path, src, output(format="png", path=template), name=name)
    written = [w.dst for w in outcome.written]
    out = (tmp_path / "out").resolve()
    assert outcome.status == "done", outcome.error
    assert written and all(w.resolve().is_relative_to(out) for w in written), written
    for w in written:
        assert all(len(c.encode()) <= 255 and "\x00" not in c and "\u202e" not in c for c in w.parts)
    strays = [p for p in set(tmp_path.rglob("*")) - before if not p.is_dir()]
    assert all(
        p.is_relative_to(tmp_path / "out")
        or p.is_relative_to(tmp_path / "quarantine")
        or p.is_relative_to(tmp_path / "in")
        or p.is_relative_to(tmp_path / "state")
        for p in strays
    ), strays


@pytest.mark.parametrize("template", ["/{make}/{stem}.png", "x/../../{stem}.png", "{stem}/../../x.png"])
def test_templates_that_would_climb_are_refused_when_rules_load(template: str) -> None:
    with pytest.raises(AssertionError, match=r"absolute|climbs"):
        output(format="png", path=template)


@pytest.mark.parametrize("policy", ["skip_identical", "overwrite", "counter", "skip"])
def test_a_symlink_planted_at_an_output_name_is_not_written_through(tmp_path: Path, policy: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "hopper.png").symlink_to(victim)
    outcome = run_outputs(tmp_path, corpus("hopper.bmp"), output(format="png", on_conflict=policy))
    assert victim.read_text() == "precious"
    assert outcome.status == "done"
    (w,) = outcome.written
    if policy == "skip":
        assert w.action == "skipped"
    else:
        assert not w.dst.is_symlink() and Image.open(w.dst).size == (128, 128)


def test_a_symlinked_output_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "web").symlink_to(elsewhere)
    outcome = run_outputs(tmp_path, corpus("hopper.bmp"), output(format="png", path="web/{stem}.png"))
    assert outcome.status == "quarantined"
    assert "UnsafePathError" in str(outcome.error) and "symlink" in str(outcome.error)
    assert list(elsewhere.iterdir()) == []


def test_symlinks_in_a_watched_root_are_not_followed(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    """Links to files and folders outside the root: neither the scan nor live events process them."""
    write_config(tmp_path, '[[rule]]\nname = "p"\n[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n')
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(corpus("hopper.bmp"), outside / "secret.bmp")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "linkdir").symlink_to(outside, target_is_directory=True)
    (inbox / "link.bmp").symlink_to(outside / "secret.bmp")
    shutil.copy(corpus("hopper_gray.jpg"), inbox / "real.jpg")
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.wait((tmp_path / "outbox" / "real.png").exists, what="real.png")
    (inbox / "later.bmp").symlink_to(outside / "secret.bmp")  # a link arriving live
    shutil.copy(corpus("pentax_k10d.jpg"), outside / "new.jpg")  # written behind a linked folder
    shutil.copy(corpus("canon_eos_7d.jpg"), inbox / "marker.jpg")
    daemon.wait((tmp_path / "outbox" / "marker.png").exists, what="marker.png")
    events = daemon.stop()
    made = sorted(p.relative_to(tmp_path / "outbox").as_posix() for p in (tmp_path / "outbox").rglob("*.png"))
    assert made == ["marker.png", "real.png"]
    assert sorted(p.name for p in outside.iterdir()) == ["new.jpg", "secret.bmp"]
    assert not any("outside" in str(e.get("src", "")) for e in events)


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_bombs_and_absurd_dimensions_are_refused_before_decoding(tmp_path: Path) -> None:
    """Each is quarantined with its reason, and the workers' peak memory stays small (decoding any of
    them would need gigabytes)."""
    write_config(tmp_path, '[[rule]]\nname = "p"\n[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n')
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("decompression_bomb.gif", "65536-uint32-limit.png", "png_decompression_dos.png"):
        shutil.copy(corpus(name), inbox / name)
    (inbox / "huge.png").write_bytes(_png_claiming(100_000, 100_000))  # 10^10 pixels, 30 GB as RGB
    code = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)\n"
        "sys.stderr.write(r.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    argv = [sys.executable, "-c", code, sys.executable, "-m", "hotfolder", "process", "inbox"]
    result = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    peak_kb, rc = map(int, result.stdout.split())
    assert rc == 1 and "quarantined 4" in result.stderr, result.stderr
    assert peak_kb < 400_000, f"peak RSS of a worker {peak_kb} KB"
    reasons = {p.name: json.loads(p.read_text())["error"] for p in (tmp_path / "quarantine").glob("*.json")}
    assert "pixels" in reasons["huge.png.json"] or "bomb" in reasons["huge.png.json"].lower(), reasons
    assert not list((tmp_path / "outbox").rglob("*.png"))


def test_rule_files_are_data_not_code(tmp_path: Path) -> None:
    """Attribute access, calls and format tricks in templates are errors; shell syntax is plain text."""
    sentinel = tmp_path / "pwned"
    bad = "".join(
        f'[[rule]]\nname = "r{i}"\n[[rule.output]]\nformat = "png"\npath = "{t}"\n'
        for i, t in enumerate(
            ["{stem.__class__}.png", "{stem!r}.png", "{stem[0]}.png", "{0}.png", "{__import__}.png"]
        )
    )
    write_config(tmp_path, bad)
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("key 'output.path'") == 5, result.stderr
    shell = f"$(touch {sentinel})`touch {sentinel}`;touch {sentinel}"
    write_config(
        tmp_path, f'[[rule]]\nname = "s"\n[[rule.output]]\nformat = "png"\npath = "{shell}-{{stem}}.png"\n'
    )
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "h.bmp")
    assert run_cli("process", "inbox", cwd=tmp_path).returncode == 0
    assert not sentinel.exists()
    made = list((tmp_path / "outbox").rglob("*.png"))
    assert len(made) == 1 and "$(touch" in str(made[0])


def test_outputs_take_the_configured_mode_and_the_umask(tmp_path: Path) -> None:
    """file_mode sets outputs' mode; folders follow the daemon's umask (UMask= in the unit)."""
    write_config(
        tmp_path,
        '[[rule]]\nname = "p"\n[[rule.output]]\nformat = "png"\npath = "a/b/{stem}.png"\n',
        extra='file_mode = "0640"\n',
    )
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("hopper.bmp"), tmp_path / "inbox" / "h.bmp")
    (tmp_path / "inbox" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    argv = [sys.executable, "-m", "hotfolder", "process", "inbox"]
    # umask is per process: set in the child only (no threads run there yet).
    subprocess.run(
        argv,
        cwd=tmp_path,
        env=env,
        check=False,
        capture_output=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0o027),
    )
    png = tmp_path / "outbox" / "a" / "b" / "h.png"
    assert stat.S_IMODE(png.stat().st_mode) == 0o640
    assert stat.S_IMODE(png.parent.stat().st_mode) == 0o750
    sidecar = tmp_path / "quarantine" / "bad.png.json"
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o640
