"""The command line as a user runs it: check, explain, process, with their exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import corpus, run_cli, write_config

RULES = """\
[[rule]]
name = "photos"
[rule.match]
formats = ["jpeg"]
[[rule.output]]
format = "jpeg"
qualty = 80
path = "web/{stem}.jpg"
"""


def test_check_reports_misspelled_key_with_file_rule_key(tmp_path: Path) -> None:
    """`check` exits 2 and names the file, the rule, the key and the line."""
    write_config(tmp_path, RULES)
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2
    assert "rules/main.toml:7" in result.stderr and "'photos'" in result.stderr and "qualty" in result.stderr


def test_check_accepts_the_default(tmp_path: Path) -> None:
    """`check` on the embedded default exits 0 and summarises it."""
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rule 'default'" in result.stdout and "ok: 1 rule(s), 2 output(s)" in result.stdout


def test_explain_names_rule_and_outputs(tmp_path: Path) -> None:
    """`explain` says which rule matches and where outputs would go, and writes nothing."""
    result = run_cli("explain", str(corpus("canon_eos_7d.jpg")), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rule 'default': MATCH" in result.stdout
    assert str(tmp_path / "outbox/archive/canon_eos_7d.png") in result.stdout
    assert not (tmp_path / "outbox").exists()


def test_explain_unmatched_exits_1(tmp_path: Path) -> None:
    """A non-image matches nothing: explain says why and exits 1."""
    result = run_cli("explain", str(corpus("MANIFEST.tsv")), cwd=tmp_path)
    assert result.returncode == 1
    assert "not an image" in result.stdout


def test_process_folder_exit_codes(tmp_path: Path) -> None:
    """`process` exits 0 when everything succeeded, 1 when an input was quarantined."""
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(corpus("hopper.bmp"), good / "h.bmp")
    (good / "notes.txt").write_text("not an image")
    result = run_cli("process", str(good), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "outbox/archive/h.png").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(corpus("truncated_image.png"), bad / "t.png")
    result = run_cli("process", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert (tmp_path / "quarantine" / "t.png").exists()


def test_process_missing_path_is_usage_error(tmp_path: Path) -> None:
    """A path that does not exist is a usage error (exit 2)."""
    assert run_cli("process", "nope.jpg", cwd=tmp_path).returncode == 2
