"""The daemon config: embedded default, path resolution, strict keys, folders that would loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, write_config
from hotfolder.errors import ConfigError
from hotfolder.settings.config import default_rules_path, load_config

RULE = '[[rule]]\nname = "r"\n[[rule.output]]\nformat = "png"\npath = "{stem}.png"\n'


def test_packaged_default_rules_are_the_shipped_file() -> None:
    """The default.toml inside the package is byte-identical to rules/default.toml."""
    assert default_rules_path().read_bytes() == (ROOT / "rules" / "default.toml").read_bytes()


def test_embedded_default_resolves_against_cwd(tmp_path: Path) -> None:
    """Without a config file: ./inbox, ./outbox, ./.hotfolder, ./quarantine and the shipped rules."""
    config = load_config(None, cwd=tmp_path)
    assert config.source is None
    assert [w.path for w in config.watches] == [tmp_path / "inbox"]
    assert (config.output_root, config.state_dir, config.quarantine) == (
        tmp_path / "outbox", tmp_path / ".hotfolder", tmp_path / "quarantine",
    )  # fmt: skip
    assert [r.name for r in config.rules] == ["default", "camera-raw"]
    assert config.workers >= 1


def test_config_in_cwd_is_found_and_paths_are_relative_to_it(tmp_path: Path) -> None:
    """./hotfolder.toml is used when present; its relative paths resolve against its folder."""
    write_config(tmp_path, RULE)
    config = load_config(None, cwd=tmp_path)
    assert config.source == tmp_path / "hotfolder.toml"
    assert config.output_root == tmp_path / "outbox"
    assert config.rule_files == (tmp_path / "rules" / "main.toml",)


def test_unknown_config_key_is_an_error(tmp_path: Path) -> None:
    """A misspelled config key is reported with the file and the key."""
    write_config(tmp_path, RULE, extra="wokers = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(None, cwd=tmp_path)
    assert [p.key for p in info.value.problems] == ["wokers"]


def test_output_inside_watched_folder_is_refused(tmp_path: Path) -> None:
    """Writing outputs into a watched folder would loop: refused at load."""
    config = write_config(tmp_path, RULE)
    config.write_text(config.read_text().replace('output_root = "outbox"', 'output_root = "inbox/out"'))
    with pytest.raises(ConfigError, match="inside the watched folder"):
        load_config(config, cwd=tmp_path)


def test_rule_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    """A rules glob that finds no file is a mistake, not an empty rule set."""
    config = write_config(tmp_path, RULE)
    config.write_text(config.read_text().replace("rules/*.toml", "rulez/*.toml"))
    with pytest.raises(ConfigError, match="matches no rule file"):
        load_config(config, cwd=tmp_path)


def test_every_documented_key_is_accepted(tmp_path: Path) -> None:
    """Every key README documents loads, with its value typed."""
    keys = 'max_image_pixels = 1000\nfile_mode = "0640"\nignore = ["*.bak"]\n'
    keys += "rescan_interval = 0\nstop_timeout = 5\n"
    write_config(tmp_path, RULE, extra=keys)
    config = tmp_path / "hotfolder.toml"
    config.write_text(
        config.read_text() + 'mode = "poll"\npoll_interval = 2.5\nname = "cards"\nrecursive = false\n'
    )
    c = load_config(None, cwd=tmp_path)
    assert (c.max_image_pixels, c.file_mode, c.ignore, c.rescan_interval, c.stop_timeout) == (
        1000, 0o640, ("*.bak",), 0.0, 5.0,
    )  # fmt: skip
    (watch,) = c.watches
    assert (watch.mode, watch.poll_interval, watch.name, watch.recursive) == ("poll", 2.5, "cards", False)
