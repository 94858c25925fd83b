"""Every rule file we ship loads cleanly, exactly as `run` would load it."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from hotfolder.settings.rules import load_rules

SHIPPED = sorted((ROOT / "rules").rglob("*.toml"))


def test_there_are_examples_beside_the_default() -> None:
    """rules/ holds the default and at least one example under rules/examples/."""
    names = [p.relative_to(ROOT / "rules").as_posix() for p in SHIPPED]
    assert "default.toml" in names
    assert any(n.startswith("examples/") for n in names)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_rule_file_is_valid(path: Path) -> None:
    """Loads without a problem and every rule writes at least one output."""
    rules = load_rules([path])
    assert rules and all(r.outputs for r in rules)
