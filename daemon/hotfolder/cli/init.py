"""`hotfolder init [camera|phone|scanner|web|archive]`: a commented hotfolder.toml and the rule file for that
use, written into the current folder (never over anything), then checked exactly as `run` would."""

from __future__ import annotations

import re
import sys
from importlib import resources
from pathlib import Path
from typing import Final

from hotfolder.errors import EXIT_USAGE, ConfigError

# The use -> the shipped rule file it starts from (the same files as rules/examples/).
STARTERS: Final = {
    "camera": "camera-import.toml",
    "phone": "phone-sync.toml",
    "scanner": "scanner.toml",
    "web": "web-publishing.toml",
    "archive": "jpeg-archive.toml",
}
_LISTING: Final = re.compile(r"^# Use it by listing it in hotfolder\.toml:.*$", re.MULTILINE)


def _starter(name: str) -> str:
    return resources.files("hotfolder").joinpath("starters", name).read_text(encoding="utf-8")


def init(cwd: Path, use: str) -> int:
    """Write the two files (exit 2 naming any that exists, writing neither), then run `check` on them."""
    rules_name = f"{use}-rules.toml"
    config_path, rules_path = cwd / "hotfolder.toml", cwd / rules_name
    taken = [p for p in (config_path, rules_path) if p.exists() or p.is_symlink()]
    if taken:
        for p in taken:
            print(
                f"hotfolder: init: {p} already exists; nothing was written (move it away first)",
                file=sys.stderr,
            )
        return EXIT_USAGE
    rules_text = _LISTING.sub(
        f"# Listed in hotfolder.toml by `hotfolder init {use}`.", _starter(STARTERS[use])
    )
    config_text = _starter("hotfolder.toml").replace("{use}", use).replace("{rules}", rules_name)
    written = []
    try:
        for path, text in ((rules_path, rules_text), (config_path, config_text)):
            with path.open("x", encoding="utf-8") as f:  # "x": never over a file that appeared meanwhile
                f.write(text)
            written.append(path)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        print(f"hotfolder: init: cannot write {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {config_path}\nwrote {rules_path}")
    from hotfolder.cli.check import check  # noqa: PLC0415 - the same check `hotfolder check` runs
    from hotfolder.render.capabilities import hdr_problem  # noqa: PLC0415
    from hotfolder.settings.config import load_config  # noqa: PLC0415

    try:
        config = load_config(config_path, hdr_probe=hdr_problem)
    except ConfigError as exc:
        print(f"hotfolder: {len(exc.problems)} configuration problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return exc.exit_code
    code = check(config)
    print(f"next: put pictures into {config.watches[0].path} and run `hotfolder run` here")
    return code
