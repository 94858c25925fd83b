"""`hotfolder init USE`: a commented config and a rule file that `check` accepts and that really work;
never over anything that is there."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from conftest import corpus, run_cli

USES = ("camera", "phone", "scanner", "web", "archive")


@pytest.mark.parametrize("use", USES)
def test_init_writes_a_checked_config_and_rules(tmp_path: Path, use: str) -> None:
    result = run_cli("init", use, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config, rules = tmp_path / "hotfolder.toml", tmp_path / f"{use}-rules.toml"
    text = config.read_text()
    assert text.count("\n#") >= 10  # commented for a person to read
    doc = tomllib.loads(text)
    assert doc["rules"] == [rules.name] and doc["watch"][0]["name"] == use
    assert tomllib.loads(rules.read_text())["rule"]
    assert "ok: " in result.stdout  # what `check` prints
    assert run_cli("check", cwd=tmp_path).returncode == 0


def test_init_refuses_to_overwrite_anything(tmp_path: Path) -> None:
    (tmp_path / "hotfolder.toml").write_text("# mine\n")
    result = run_cli("init", "phone", cwd=tmp_path)
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (tmp_path / "hotfolder.toml").read_text() == "# mine\n"
    assert not (tmp_path / "phone-rules.toml").exists()  # neither file is written
    (tmp_path / "hotfolder.toml").unlink()
    (tmp_path / "phone-rules.toml").symlink_to("/etc/passwd")  # not even through a link
    assert run_cli("init", "phone", cwd=tmp_path).returncode == 2
    assert not (tmp_path / "hotfolder.toml").exists()


def test_an_initialised_phone_folder_processes_a_photo(tmp_path: Path) -> None:
    assert run_cli("init", "phone", cwd=tmp_path).returncode == 0
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("canon_eos_7d.jpg"), tmp_path / "inbox" / "IMG_1.jpg")
    result = run_cli("process", "inbox", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "outbox" / "share").rglob("IMG_1.jpg"))


def test_an_initialised_archive_keeps_a_jpeg_as_jxl_that_rebuilds_it(tmp_path: Path) -> None:
    """`init archive`: a camera JPEG becomes a dated JPEG XL that rebuilds it byte for byte and a web
    JPEG; the original is deleted only then."""
    import imagecodecs  # noqa: PLC0415

    assert run_cli("init", "archive", cwd=tmp_path).returncode == 0
    (tmp_path / "inbox").mkdir()
    shutil.copy(corpus("canon_eos_7d.jpg"), tmp_path / "inbox" / "IMG_2.jpg")
    result = run_cli("process", "inbox", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (archive,) = (tmp_path / "outbox" / "archive").rglob("IMG_2.jxl")
    rebuilt = bytes(imagecodecs.jpegxl_decode_jpeg(archive.read_bytes(), numthreads=1))
    assert rebuilt == corpus("canon_eos_7d.jpg").read_bytes()
    assert list((tmp_path / "outbox" / "web").rglob("IMG_2.jpg"))
    assert not (tmp_path / "inbox" / "IMG_2.jpg").exists()
