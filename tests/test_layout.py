"""The floor plan holds where a user feels it: light commands load no codec, and every command that
looks at a picture applies the config's pixel limit, as `run` does. Real subprocesses, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, run_cli, write_config
from hotfolder.commit.ledger import Ledger

RULE = '[[rule]]\nname = "png"\n[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n'
CODECS = ("PIL", "pillow_heif", "pyvips", "numpy", "piexif")

# Runs one command in-process and prints the modules it loaded (sys.modules is exact where
# `-X importtime` would need parsing).
PROBE = """
import json, sys
from hotfolder.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _loaded(cwd: Path, *args: str) -> tuple[int, set[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    last = done.stdout.strip().splitlines()[-1]
    report = json.loads(last)
    return report["code"], {m.split(".")[0] for m in report["modules"]}


@pytest.mark.parametrize("args", [("check",), ("status",), ("retry", "--all")])
def test_light_commands_load_no_codec(tmp_path: Path, args: tuple[str, ...]) -> None:
    """check, status and retry read settings and the ledger only: no Pillow, libvips or numpy."""
    write_config(tmp_path, RULE)
    (tmp_path / "inbox").mkdir()
    Ledger(tmp_path / ".hotfolder").close()  # a ledger to read, as after a first run
    code, top = _loaded(tmp_path, *args)
    assert code == 0
    assert not top & set(CODECS), f"{' '.join(args)} loaded {sorted(top & set(CODECS))}"


def test_explain_and_dry_run_apply_the_configs_pixel_limit(tmp_path: Path) -> None:
    """A 200 MP scan is above Pillow's own bomb limit (2 x 89.5 MP) but within the default
    max_image_pixels (250 MP): `run` takes it, so explain and the dry run must say so too; a config
    limit below the picture refuses it in all three."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    big = inbox / "scan.png"
    Image.new("1", (20_000, 10_000), 1).save(big)  # 1-bit: 200 MP in a few kB
    write_config(tmp_path, RULE)
    explained = run_cli("explain", str(big), cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert "would be quarantined" not in explained.stdout and "would write" in explained.stdout
    dry = run_cli("process", "--dry-run", str(big), cwd=tmp_path)
    assert dry.returncode == 0 and "would be refused" not in dry.stdout and ": png" in dry.stdout

    write_config(tmp_path, RULE, extra="max_image_pixels = 100000000\n")
    explained = run_cli("explain", str(big), cwd=tmp_path)
    assert "would be quarantined" in explained.stdout and "max_image_pixels" in explained.stdout
    dry = run_cli("process", "--dry-run", str(big), cwd=tmp_path)
    assert "would be refused" in dry.stdout and "max_image_pixels" in dry.stdout
