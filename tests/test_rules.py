"""Rule files: valid ones load into frozen objects, every mistake names file, rule, key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotfolder.errors import ConfigError
from hotfolder.settings.rules import load_rules

GOOD = """
[[rule]]
name = "camera"
[rule.match]
glob = ["**/*.jpg", "**/*.heic"]
formats = ["jpeg", "heif"]
[[rule.output]]
format = "png"
path = "archive/{stem}.png"
[[rule.output]]
format = "jpeg"
quality = 85
max_edge = 2048
path = "web/{stem}.jpg"
"""


def load(tmp_path: Path, text: str) -> tuple:
    f = tmp_path / "r.toml"
    f.write_text(text)
    return load_rules([f])


def problems(tmp_path: Path, text: str) -> list:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return list(info.value.problems)


def test_valid_rule_loads(tmp_path: Path) -> None:
    """A rule with match conditions and two outputs becomes typed objects."""
    (rule,) = load(tmp_path, GOOD)
    assert rule.name == "camera"
    assert rule.match.formats == {"jpeg", "heif"}
    assert [o.format for o in rule.outputs] == ["png", "jpeg"]
    assert rule.outputs[1].quality == 85 and rule.outputs[1].max_edge == 2048


def test_misspelled_key_names_file_rule_key_and_line(tmp_path: Path) -> None:
    """`qualty` is reported with the file, the rule, the key and its line."""
    (p,) = problems(tmp_path, GOOD.replace("quality = 85", "qualty = 85"))
    assert p.file == tmp_path / "r.toml"
    assert (p.rule, p.key, p.line) == ("camera", "output.qualty", 12)
    assert "r.toml:12" in str(p) and "'camera'" in str(p) and "qualty" in str(p)


def test_every_problem_is_reported(tmp_path: Path) -> None:
    """Three mistakes in one file give three problems, not the first only."""
    text = (
        GOOD.replace("quality = 85", "quality = 850")
        .replace('"heif"]', '"heic"]')
        .replace('format = "png"', 'format = "gif"')
    )
    found = problems(tmp_path, text)
    assert sorted(p.key for p in found) == ["match.formats", "output.format", "output.quality"]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        pytest.param(('name = "camera"', 'name = ""'), "name", id="empty_name"),
        pytest.param(
            ('path = "web/{stem}.jpg"', 'path = "web/{stme}.jpg"'), "output.path", id="unknown_field"
        ),
        pytest.param(('path = "web/{stem}.jpg"', 'path = "/etc/{stem}.jpg"'), "output.path", id="absolute"),
        pytest.param(('path = "web/{stem}.jpg"', 'path = "../{stem}.jpg"'), "output.path", id="climbs_out"),
        pytest.param(("max_edge = 2048", "max_edge = 0"), "output.max_edge", id="zero_edge"),
        pytest.param(("max_edge = 2048", 'max_edge = "big"'), "output.max_edge", id="text_edge"),
        pytest.param(
            ('format = "png"\n', 'format = "png"\nquality = 3\n'), "output.quality", id="quality_on_png"
        ),
        pytest.param(("[rule.match]", "[rule.match]\nsize = 3"), "match.size", id="unknown_match_key"),
        pytest.param(('name = "camera"', 'name = "camera"\ncolour = 1'), "colour", id="unknown_rule_key"),
    ],
)
def test_bad_values_are_errors(tmp_path: Path, change: tuple[str, str], key: str) -> None:
    """Each bad value or unknown key is an error naming its key."""
    found = problems(tmp_path, GOOD.replace(*change, 1))
    assert key in [p.key for p in found]


def test_toml_syntax_error_shows_line(tmp_path: Path) -> None:
    """A TOML syntax error is reported with the line the parser saw."""
    (p,) = problems(tmp_path, GOOD.replace("quality = 85", "quality = = 85"))
    assert p.line == 12


def test_duplicate_rule_names_are_an_error(tmp_path: Path) -> None:
    """Two rules with one name cannot be told apart in logs: refused."""
    found = problems(tmp_path, GOOD + GOOD)
    assert any("duplicate" in p.message for p in found)


def test_rule_without_output_is_an_error(tmp_path: Path) -> None:
    """A rule that writes nothing is a mistake."""
    found = problems(tmp_path, '[[rule]]\nname = "x"\n')
    assert [p.key for p in found] == ["output"]


def test_encoder_speed_options_per_format(tmp_path: Path) -> None:
    """preset is x265's (HEIF only), speed the AV1 encoder's (AVIF only); defaults are the measured ones."""
    good = tmp_path / "good.toml"
    head = '[[rule]]\nname = "r"\n[[rule.output]]\nformat = "heif"\npath = "a.heic"\n'
    good.write_text(head + 'preset = "ultrafast"\n[[rule.output]]\nformat = "avif"\npath = "a.avif"\n')
    heif, avif = load_rules([(good, good.read_text())])[0].outputs
    assert (heif.preset, avif.speed) == ("ultrafast", 8)
    bad = tmp_path / "bad.toml"
    bad.write_text(head + 'preset = "warp"\n[[rule.output]]\nformat = "jpeg"\npath = "a.jpg"\nspeed = 3\n')
    with pytest.raises(ConfigError) as err:
        load_rules([(bad, bad.read_text())])
    text = str(err.value)
    assert (
        "key 'output.preset': must be one of ultrafast" in text
        and "key 'output.speed': does not apply" in text
    )
