"""The command line as a user runs it: check, explain, process, with their exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import camera, corpus, run_cli, write_config

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
    assert "rule 'default'" in result.stdout and "rule 'camera-raw'" in result.stdout
    assert "ok: 2 rule(s), 3 output(s)" in result.stdout


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


THREE_MISTAKES = """\
[[rule]]
name = "one"
[rule.match]
formats = ["jpg"]
[[rule.output]]
format = "jpeg"
quality = 101
path = "web/{stem}.jpg"

[[rule]]
name = "two"
original = "move"
[[rule.output]]
format = "png"
path = "{stme}.png"
"""


def test_check_reports_every_mistake_at_once(tmp_path: Path) -> None:
    """Three different mistakes in one file: all three reported with rule, key and line."""
    write_config(tmp_path, THREE_MISTAKES)
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "main.toml" in line]
    assert len(lines) == 4, result.stderr  # 'jpg', 101, {stme}, move without original_path
    assert any(":4: rule 'one': key 'match.formats'" in line and "'jpg'" in line for line in lines)
    assert any(":7: rule 'one': key 'output.quality'" in line for line in lines)
    assert any("rule 'two': key 'output.path'" in line and "stme" in line for line in lines)
    assert any("rule 'two': key 'original_path'" in line for line in lines)


def test_explain_lists_every_rule_with_the_value_seen(tmp_path: Path) -> None:
    """explain: each rule matched or why not (with the value), outputs, and the original's fate."""
    write_config(
        tmp_path,
        """\
[[rule]]
name = "iphones"
[rule.match]
exif.Model = "iPhone*"
[[rule.output]]
format = "jpeg"
path = "phone/{stem}.jpg"

[[rule]]
name = "cameras"
original = "move"
original_path = "done/{taken:%Y}/{name}"
[rule.match]
has_exif = true
[[rule.output]]
format = "tiff"
path = "archive/{taken:%Y/%m}/{camera}-{stem}.tif"
""",
    )
    result = run_cli("explain", str(corpus("canon_eos_7d.jpg")), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rule 'iphones': no - EXIF Model 'Canon EOS 7D' matches none of ['iPhone*']" in result.stdout
    assert "rule 'cameras': MATCH" in result.stdout
    assert "archive/2010/12/Canon EOS 7D-canon_eos_7d.tif" in result.stdout
    assert "the original moves to" in result.stdout and "done/2010/canon_eos_7d.jpg" in result.stdout


EXPLAIN_RULES = (
    '[[rule]]\nname = "copies"\n[rule.match]\nglob = ["keep/*"]\nformats = ["raw"]\n'
    '[[rule.output]]\nformat = "copy"\npath = "copies/{name}"\n'
    '[[rule]]\nname = "raws"\n[rule.match]\nformats = ["raw"]\n'
    '[[rule.output]]\nformat = "jpeg"\nmax_edge = 64\npath = "raw/{stem}.jpg"\n'
    '[[rule]]\nname = "web"\n[[rule.output]]\nformat = "jpeg"\nmax_edge = 64\npath = "web/{stem}.jpg"\n'
)


def _made(tmp_path: Path, case: str) -> Path:
    """One file per way `explain` and `run` used to part: each in the inbox, as a user drops it."""
    inbox = tmp_path / "inbox"
    (inbox / "keep").mkdir(parents=True, exist_ok=True)
    if case == "plain":
        shutil.copy(corpus("hopper.bmp"), inbox / "hopper.bmp")
        return inbox / "hopper.bmp"
    if case == "past_the_pixel_limit":  # 1000x1000 under max_image_pixels = 600000: Pillow only warns
        Image.linear_gradient("L").resize((1000, 1000)).save(inbox / "big.png")
        return inbox / "big.png"
    if case == "raw_libraw_cannot_develop_copied":  # a copy needs only the bytes
        shutil.copy(camera("canon_r6_pruned.cr3"), inbox / "keep" / "IMG_0001.CR3")
        return inbox / "keep" / "IMG_0001.CR3"
    assert case == "raw_libraw_cannot_develop_rendered"
    shutil.copy(camera("canon_r6_pruned.cr3"), inbox / "IMG_0002.CR3")
    return inbox / "IMG_0002.CR3"


@pytest.mark.parametrize(
    "case",
    [
        "plain",
        "past_the_pixel_limit",
        "raw_libraw_cannot_develop_copied",
        "raw_libraw_cannot_develop_rendered",
    ],
)
def test_explain_says_what_run_does(tmp_path: Path, case: str) -> None:
    """Issue 30: explain and the worker take one decide path (decide/examine.py). Over files where
    they used to differ, explain's "would be quarantined" is exactly process' quarantine. (explain
    stops after deciding: a file whose header reads but whose pixels are cut short is found by decode.)"""
    said, done = tmp_path / "said", tmp_path / "done"
    for side in (said, done):
        write_config(side, EXPLAIN_RULES, extra="max_image_pixels = 600000\n")
    explained = run_cli("explain", str(_made(said, case)), cwd=said)
    assert explained.returncode in (0, 1), explained.stderr
    _made(done, case)
    processed = run_cli("process", "inbox", cwd=done)
    assert processed.returncode in (0, 1), processed.stderr
    quarantined = (done / "quarantine").exists() and any((done / "quarantine").rglob("*.json"))
    assert ("it would be quarantined" in explained.stdout) == quarantined, explained.stdout
    assert quarantined == (case != "plain" and case != "raw_libraw_cannot_develop_copied"), processed.stderr
