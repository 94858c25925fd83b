"""The shipped unit: rated by systemd-analyze, verified with its drop-in, and its promises kept
(every codec runs under MemoryDenyWriteExecute; exit codes match RestartPreventExitStatus)."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, camera, corpus, free_port, write_config
from hotfolder.errors import ConfigError, LockHeldError
from hotfolder.settings.config import DEFAULT_STOP_TIMEOUT

UNIT = ROOT / "systemd" / "hotfolder.service"
DROP_IN = ROOT / "systemd" / "hotfolder.service.d" / "folders.conf"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def installed_copy(tmp_path: Path, *, relax_home: bool) -> Path:
    """A folder with the unit (ExecStart pointing at the installed console script) and its drop-in."""
    script = Path(sys.executable).parent / "hotfolder"
    if not script.exists():
        pytest.skip(f"no installed console script at {script} (run through `make test`)")
    folder = tmp_path / ("relaxed" if relax_home else "strict")
    folder.mkdir()
    unit = folder / "hotfolder.service"
    unit.write_text(UNIT.read_text().replace("/opt/hotfolder/bin/hotfolder", str(script)))
    (folder / "hotfolder.service.d").mkdir()
    text = DROP_IN.read_text()
    if relax_home:  # the documented variant for photo folders under /home
        text = re.sub(r"^#(ProtectHome|BindPaths|SupplementaryGroups)=", r"\1=", text, flags=re.M)
    (folder / "hotfolder.service.d" / "folders.conf").write_text(text)
    return folder


def analyze(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{folder}:"}  # the unit and its drop-in, by name
    return subprocess.run(
        [ANALYZE, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False
    )


DROP_INS = pytest.mark.parametrize("relax", [False, True], ids=["as-shipped", "home-drop-in"])


@needs_analyze
@DROP_INS
def test_security_exposure_is_at_most_half(tmp_path: Path, relax: bool) -> None:
    folder = installed_copy(tmp_path, relax_home=relax)
    result = analyze(folder, "security", "--offline=yes", "--no-pager", "hotfolder.service")
    level = re.search(r"Overall exposure level for hotfolder.service: ([\d.]+)", result.stdout)
    assert level, result.stdout + result.stderr
    print(f"exposure ({'ProtectHome=tmpfs drop-in' if relax else 'as shipped'}): {level.group(1)}")
    assert float(level.group(1)) <= (0.6 if relax else 0.5)


@needs_analyze
@DROP_INS
def test_verify_is_clean_with_both_drop_in_variants(tmp_path: Path, relax: bool) -> None:
    folder = installed_copy(tmp_path, relax_home=relax)
    result = analyze(folder, "verify", "hotfolder.service")
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_unit_exit_codes_and_timeouts_match_the_daemon() -> None:
    text = UNIT.read_text()
    prevented = set(re.search(r"^RestartPreventExitStatus=(.*)$", text, re.M).group(1).split())  # type: ignore[union-attr]
    assert prevented == {str(ConfigError([]).exit_code), str(LockHeldError("x").exit_code)}
    assert re.search(r"^Type=notify$", text, re.M)
    stop = float(re.search(r"^TimeoutStopSec=(\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert stop > DEFAULT_STOP_TIMEOUT + 10, "jobs must be abandoned before systemd kills the daemon"


PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
MDWE_LAUNCH = (
    "import ctypes, sys\n"
    f"assert ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0\n"
    "from hotfolder.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_every_codec_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes, reproduced with the kernel's PR_SET_MDWE (inherited by the worker
    processes): every input format decodes and every output format encodes, 16-bit included."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(66, 0, 0, 0, 0) < 0:  # PR_GET_MDWE
        pytest.skip("this kernel has no PR_SET_MDWE (Linux >= 6.3)")
    outputs = "".join(
        f'[[rule.output]]\nformat = "{fmt}"\npath = "{fmt}/{{stem}}.{fmt}"\n{extra}'
        for fmt, extra in (
            ("png", ""),
            ("tiff", ""),
            ("jpeg", ""),
            ("webp", ""),
            ("avif", ""),
            ("heif", ""),
            ("heif", "lossless = true\n"),
        )
    ).replace('path = "heif/{stem}.heif"\nlossless', 'path = "heifl/{stem}.heif"\nlossless')
    # Shrinking (libvips, Pillow for alpha) and 16-bit resizing run under MDWE too.
    outputs += '[[rule.output]]\nformat = "jpeg"\nmax_edge = 60\npath = "small/{stem}.jpg"\n'
    outputs += '[[rule.output]]\nformat = "png"\nmax_edge = 60\npath = "smallpng/{stem}.png"\n'
    # LibRaw too: a render (the synthetic DNG has no preview) and a preview (the 6D's, asked for).
    raw_rule = (
        '[[rule]]\nname = "raw"\n[rule.match]\nformats = ["raw"]\n[[rule.output]]\nformat = "tiff"\n'
        'path = "raw/{stem}.tif"\n[[rule.output]]\nformat = "jpeg"\nraw = "preview"\n'
        'path = "rawweb/{stem}.jpg"\n'
    )
    write_config(tmp_path, '[[rule]]\nname = "all"\n' + outputs + raw_rule)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(camera("canon_eos_6d.dng"), inbox / "canon_eos_6d.dng")
    names = [
        "canon_eos_7d.jpg",
        "example.heic",  # 1280x854 (pug.heic is 12 MP: encoding it to six formats was 20 s of this test)
        "example.avif",
        "monkey16.png",
        "rgba_16_128x128.png",
        "alpha_lossless_1.webp",
        "pil_sample_cmyk.jpg",
        "issue_151.tif",
        "hopper.bmp",
    ]
    for name in names:
        shutil.copy(corpus(name), inbox / name)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    result = subprocess.run(
        [sys.executable, "-c", MDWE_LAUNCH, "process", "inbox"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert "done 10" in result.stderr
    for folder in ("png", "tiff", "jpeg", "webp", "avif", "heif", "heifl", "small", "smallpng"):
        assert len(list((tmp_path / "outbox" / folder).iterdir())) == len(names), folder
    assert (tmp_path / "outbox/raw/canon_eos_6d.tif").exists() and (
        tmp_path / "outbox/rawweb/canon_eos_6d.jpg"
    ).exists()


SERVE_UNIT = ROOT / "systemd" / "hotfolder-serve.service"


@needs_analyze
def test_the_serve_unit_verifies_and_the_daemon_keeps_no_network(tmp_path: Path) -> None:
    """serve has a hardened unit of its own; the daemon's stays PrivateNetwork=yes."""
    script = Path(sys.executable).parent / "hotfolder"
    if not script.exists():
        pytest.skip(f"no installed console script at {script} (run through `make test`)")
    (tmp_path / "hotfolder-serve.service").write_text(
        SERVE_UNIT.read_text().replace("/opt/hotfolder/bin/hotfolder", str(script))
    )
    result = analyze(tmp_path, "verify", "hotfolder-serve.service")
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    result = analyze(tmp_path, "security", "--offline=yes", "--no-pager", "hotfolder-serve.service")
    level = re.search(r"Overall exposure level for hotfolder-serve.service: ([\d.]+)", result.stdout)
    assert level, result.stdout + result.stderr
    print(f"serve unit exposure: {level.group(1)}")
    assert float(level.group(1)) <= 1.2  # the network it needs (page, notifications) costs ~0.8
    assert re.search(r"^PrivateNetwork=yes$", UNIT.read_text(), re.M)
    assert not re.search(r"^(StateDirectory|ReadWritePaths)=", SERVE_UNIT.read_text(), re.M)  # writes nothing


def test_serve_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes in serve's unit: the page, a thumbnail (Pillow) and /metrics under MDWE."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(66, 0, 0, 0, 0) < 0:  # PR_GET_MDWE
        pytest.skip("this kernel has no PR_SET_MDWE (Linux >= 6.3)")
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text())
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("canon_eos_7d.jpg"), tmp_path / "inbox" / "a.jpg")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    done = subprocess.run(
        [sys.executable, "-m", "hotfolder", "process", "inbox"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    port = free_port()
    command = [sys.executable, "-c", MDWE_LAUNCH, "serve", "--listen", f"127.0.0.1:{port}"]
    serve = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                break
            except OSError:
                assert serve.poll() is None, serve.stderr.read() if serve.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert b"a.jpg" in page
        thumb = urllib.request.urlopen(f"http://127.0.0.1:{port}/thumb/1", timeout=10)
        assert thumb.status == 200 and thumb.read(3) == b"\xff\xd8\xff"
        assert (
            b"hotfolder_jobs" in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        )
    finally:
        serve.terminate()
        serve.communicate(timeout=30)
