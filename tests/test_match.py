"""Matching: glob semantics, sniffed formats, first match wins, reasons for the others."""

from __future__ import annotations

import pytest

from hotfolder.decide.match import Facts, decide
from hotfolder.settings.rules import Match, Rule


def rule(name: str, globs: tuple[str, ...] = (), formats: frozenset[str] = frozenset()) -> Rule:
    return Rule(name=name, file=None, match=Match(globs=globs, formats=formats))


@pytest.mark.parametrize(
    ("relpath", "pattern", "matched"),
    [
        pytest.param("a.jpg", "**/*.jpg", True, id="globstar_zero_folders"),
        pytest.param("x/y/a.jpg", "**/*.jpg", True, id="globstar_deep"),
        pytest.param("X/A.JPG", "**/*.jpg", True, id="case_insensitive"),
        pytest.param("x/a.jpg", "*.jpg", False, id="star_stays_in_folder"),
        pytest.param("scans/a.tif", "scans/*.tif", True, id="folder_prefix"),
        pytest.param("other/a.tif", "scans/*.tif", False, id="other_folder"),
        pytest.param("a.jpeg", "**/*.{jpg,jpeg}", True, id="braces"),
    ],
)
def test_glob_semantics(relpath: str, pattern: str, matched: bool) -> None:
    """Globs are relative to the watch root, `**/` spans zero or more folders, case is ignored."""
    decision = decide([rule("r", (pattern,))], Facts(relpath=relpath, format="jpeg"))
    assert (decision.rule is not None) is matched


def test_first_match_wins_and_others_say_why() -> None:
    """Rules are tried in order; later ones are reported as not tried."""
    rules = [rule("png-only", formats=frozenset({"png"})), rule("any"), rule("also-any")]
    decision = decide(rules, Facts(relpath="a.jpg", format="jpeg"))
    assert decision.rule is not None and decision.rule.name == "any"
    reasons = [v.reason for v in decision.verdicts]
    assert "'jpeg' is not in ['png']" in reasons[0]
    assert "not tried" in reasons[2]


def test_non_image_matches_no_rule() -> None:
    """A file that is not an allowed image (format None) matches even a rule without conditions."""
    decision = decide([rule("any")], Facts(relpath="clip.mov", format=None))
    assert decision.rule is None
    assert "not an image" in decision.verdicts[0].reason
