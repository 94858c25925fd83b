"""Workers ready before they are needed: forked from a fork server with one thread, at pool start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from multiprocessing import forkserver
from pathlib import Path

from PIL import Image

from conftest import pool_workers, write_config
from hotfolder.decide.sniff import register_codecs
from hotfolder.run import prefork
from hotfolder.run.pool import Pool

_BEFORE = dict(os.environ)  # as pytest started, before a pool set its defaults


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_workers_are_forked_at_pool_start_from_a_server_without_threads(tmp_path: Path) -> None:
    """The pool's workers exist before any job (forked from the fork server, never from this process
    with its threads); the server itself runs one thread, so forking it cannot deadlock."""
    pool = Pool(2, clock=time.monotonic, job_timeout=0, temp_roots=(tmp_path,))
    try:
        server = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60
        while len(_children(server)) < 2:
            assert time.monotonic() < deadline, "the two workers were not started with the pool"
            time.sleep(0.01)
        assert len(list(Path(f"/proc/{server}/task").iterdir())) == 1
        assert sorted(pool_workers(os.getpid())) == sorted(_children(server))
        for worker in _children(server):
            status = Path(f"/proc/{worker}/status").read_text()
            assert "PPid:\t" + str(server) in status
            # glibc's malloc bounds reached the server's libc at its start (it parses the variable in
            # place, so /proc shows it cut at its first ':'); a user's own GLIBC_TUNABLES wins.
            environ = Path(f"/proc/{worker}/environ").read_bytes()
            if "GLIBC_TUNABLES" not in _BEFORE:
                assert b"\0GLIBC_TUNABLES=" + prefork.MALLOC.split(":")[0].encode() + b"\0" in environ
    finally:
        pool.shutdown(abandon=False)


# What one job of each allowlisted format may load of Pillow: the allowlist's plugins, and PPM, which
# Pillow's own preinit() adds to the common five.
_PLUGINS_OF_THE_ALLOWLIST = {"Jpeg", "Mpo", "Png", "Tiff", "Gif", "WebP", "Bmp", "Avif", "Ppm"}
_PROCESS_EACH = """
import sys
import hotfolder.run.warm  # what the fork server preloads
from hotfolder.cli import main
for path in sys.argv[2:]:
    assert main(["process", "--config", sys.argv[1], "--force", path]) == 0, path
plugins = sorted(m for m in sys.modules if m.startswith("PIL.") and m.endswith("ImagePlugin"))
print("plugins:", " ".join(plugins))
"""


def test_a_job_of_every_allowed_format_loads_only_the_allowlists_pillow_plugins(tmp_path: Path) -> None:
    """The fork server and a job load Pillow's plugins for the allowlist only, not Image.init()'s ~45:
    EPS (Ghostscript), PSD, WMF, ... are never even imported, and the server starts ~20 ms sooner."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    register_codecs()  # pillow_heif's saver, for the HEIF sample
    picture = Image.radial_gradient("L").convert("RGB")
    for ext, fmt in (("jpg", "JPEG"), ("png", "PNG"), ("tif", "TIFF"), ("gif", "GIF"), ("webp", "WEBP"),
                     ("bmp", "BMP"), ("heic", "HEIF"), ("avif", "AVIF")):  # fmt: skip
        picture.save(inbox / f"p.{ext}", fmt)
    config = write_config(
        tmp_path, '[[rule]]\nname = "all"\n[[rule.output]]\nformat = "png"\npath = "{stem}.{ext}.png"\n'
    )
    files = sorted(str(p) for p in inbox.iterdir())
    done = subprocess.run(
        [sys.executable, "-c", _PROCESS_EACH, str(config), *files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.splitlines()[-1].removeprefix("plugins:").split()
    loaded = {m.removeprefix("PIL.").removesuffix("ImagePlugin") for m in last}
    assert len(list((tmp_path / "outbox").iterdir())) == len(files), done.stderr[-3000:]
    assert loaded <= _PLUGINS_OF_THE_ALLOWLIST, (
        f"plugins outside the allowlist: {loaded - _PLUGINS_OF_THE_ALLOWLIST}"
    )


def test_the_logging_library_loads_while_the_workers_start() -> None:
    """Starting the pool waits for the fork server's imports; structlog is imported meanwhile on its own
    thread (it was imported after, at the daemon's first event: ~40 ms later to its first job)."""
    code = (
        "import sys, time\nfrom hotfolder import logs\nfrom hotfolder.run.pool import make_executor\n"
        "logs.configure(fmt='json')\nassert 'structlog' not in sys.modules\n"
        "pool = make_executor(1)\ndeadline = time.monotonic() + 60\n"
        "while logs._imported is None and time.monotonic() < deadline:\n    time.sleep(0.01)\n"
        "print(logs._imported is not None)\npool.shutdown()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["True"], done.stderr
