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
        tmp_path / "outbox",
        tmp_path / ".hotfolder",
        tmp_path / "quarantine",
    )
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
    """Every key docs/configuration.md documents loads, with its value typed."""
    keys = 'max_image_pixels = 1000\nfile_mode = "0640"\nignore = ["*.bak"]\n'
    keys += "rescan_interval = 0\nstop_timeout = 5\n"
    write_config(tmp_path, RULE, extra=keys)
    config = tmp_path / "hotfolder.toml"
    config.write_text(
        config.read_text() + 'mode = "poll"\npoll_interval = 2.5\nname = "cards"\nrecursive = false\n'
    )
    c = load_config(None, cwd=tmp_path)
    assert (c.max_image_pixels, c.file_mode, c.ignore, c.rescan_interval, c.stop_timeout) == (
        1000,
        0o640,
        ("*.bak",),
        0.0,
        5.0,
    )
    (watch,) = c.watches
    assert (watch.mode, watch.poll_interval, watch.name, watch.recursive) == ("poll", 2.5, "cards", False)


def _cluster_config(tmp_path: Path, table: str, extra: str = "") -> Path:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    path = tmp_path / "hotfolder.toml"
    path.write_text(f'output_root = "outbox"\n{extra}\n[[watch]]\npath = "inbox"\n\n[cluster]\n{table}\n')
    return path


def test_cluster_table_is_parsed_into_typed_settings(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    config = load_config(
        _cluster_config(
            tmp_path,
            (
                'scheduler = "tls://10.0.0.5:8786"\ntls_ca = "ca.pem"\n'
                'tls_cert = "cert.pem"\ntls_key = "key.pem"\n'
                'path_map = { "/srv/photos" = "/mnt/photos", "/srv/photos/raw" = "/mnt/raw" }'
            ),
        )
    )
    cluster = config.cluster
    assert cluster is not None and cluster.tls and cluster.tls_ca == tmp_path / "ca.pem"
    assert [str(a) for a, _ in cluster.path_map] == ["/srv/photos/raw", "/srv/photos"]  # longest first
    assert (
        load_config(
            _cluster_config(
                tmp_path, 'scheduler = "local"\nlisten = "tcp://127.0.0.1:8786"\nallow_insecure = true'
            )
        ).cluster
        is not None
    )


@pytest.mark.parametrize(
    ("table", "extra", "key", "says"),
    [
        ('scheduler = "tcp://10.0.0.5:8786"', "", "cluster.scheduler", "plain tcp://"),
        ('scheduler = "10.0.0.5:8786"', "", "cluster.scheduler", 'must be "local" or an address'),
        ('scheduler = "tls://10.0.0.5:8786"', "", "cluster.scheduler", "needs tls_ca, tls_cert and tls_key"),
        (
            'scheduler = "local"\nallow_insecure = true\nlisten = "tcp://0.0.0.0:8786"\nport = 1',
            "",
            "cluster.port",
            "unknown key",
        ),
        (
            'scheduler = "tcp://h:1"\nallow_insecure = true\npath_map = { "srv" = "/mnt" }',
            "",
            "cluster.path_map",
            "absolute paths",
        ),
        (
            'scheduler = "tcp://h:1"\nallow_insecure = true\nlisten = "tcp://0.0.0.0:1"',
            "",
            "cluster.listen",
            'only with scheduler = "local"',
        ),
        ('scheduler = "tcp://h:1"\nallow_insecure = true', "workers = 4", "workers", "not with [cluster]"),
    ],
)
def test_cluster_mistakes_name_the_file_key_and_line(
    tmp_path: Path, table: str, extra: str, key: str, says: str
) -> None:
    path = _cluster_config(tmp_path, table, extra)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problem = next(p for p in caught.value.problems if p.key == key)
    assert says in problem.message and problem.file == path
    wanted = key.rsplit(".", maxsplit=1)[-1]
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.startswith(wanted))
    assert problem.line == line, str(problem)


def test_the_environment_overrides_workers_watch_mode_and_log_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HOTFOLDER_WORKERS, HOTFOLDER_WATCH_MODE, HOTFOLDER_LOG_FORMAT (a container's -e) win over the file;
    a bad value is an error naming the variable."""
    (tmp_path / "hotfolder.toml").write_text(
        'workers = 1\nlog_format = "json"\n[[watch]]\npath = "a"\n[[watch]]\npath = "b"\nmode = "native"\n'
    )
    monkeypatch.setenv("HOTFOLDER_WORKERS", "3")
    monkeypatch.setenv("HOTFOLDER_WATCH_MODE", "poll")
    monkeypatch.setenv("HOTFOLDER_LOG_FORMAT", "console")
    config = load_config(cwd=tmp_path)
    assert (config.workers, config.log_format) == (3, "console")
    assert [w.mode for w in config.watches] == ["poll", "poll"]
    monkeypatch.setenv("HOTFOLDER_WORKERS", "0")
    monkeypatch.setenv("HOTFOLDER_WATCH_MODE", "inotify")
    with pytest.raises(ConfigError) as said:
        load_config(cwd=tmp_path)
    text = str(said.value)
    assert "HOTFOLDER_WORKERS" in text and "HOTFOLDER_WATCH_MODE" in text and "<environment>" in text
