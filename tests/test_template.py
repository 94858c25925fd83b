"""Output path templates: our parser, fallbacks, sanitising, staying under output_root."""

from __future__ import annotations

import pytest

from hotfolder.core.template import MissingFieldError, TemplateSyntaxError, parse, render


def test_fields_render() -> None:
    """{stem}, {ext}, {name} and {relpath} fill from the file's path."""
    t = parse("a/{relpath}-{stem}.{ext}/{name}")
    out = render(t, {"relpath": "x/y/p", "stem": "p", "ext": "jpg", "name": "p.jpg"})
    assert out == "a/x/y/p-p.jpg/p.jpg"


def test_fallback_chain_and_quoted_default() -> None:
    """The first alternative with a value wins; a quoted text is a constant."""
    t = parse("{ext|'none'}/{stem}")
    assert render(t, {"ext": None, "stem": "s"}) == "none/s"
    assert render(t, {"ext": "png", "stem": "s"}) == "png/s"


def test_missing_value_without_fallback_is_an_error() -> None:
    """A field with no value and no fallback fails the job with a clear message."""
    with pytest.raises(MissingFieldError, match="ext"):
        render(parse("{stem}.{ext}"), {"stem": "s", "ext": None})


def test_attribute_access_is_not_evaluated() -> None:
    """Templates are not str.format: `{stem.__class__}` is a syntax error, not an attribute lookup."""
    with pytest.raises(TemplateSyntaxError):
        parse("{stem.__class__}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("../../etc", "out/.._.._etc.png", id="dotdot"),
        pytest.param("a/b", "out/a_b.png", id="separator"),
        pytest.param("x\x00y\x1b", "out/x_y_.png", id="control"),
        pytest.param("..", "out/__.png", id="only_dots"),
        pytest.param("evil\u202egpj.exe", "out/evil_gpj.exe.png", id="bidi_override"),
    ],
)
def test_values_are_sanitised(value: str, expected: str) -> None:
    """Values can never add folders or climb out of output_root."""
    assert render(parse("out/{stem}.png"), {"stem": value}) == expected


def test_relpath_keeps_folders_but_not_dotdot() -> None:
    """{relpath} may hold folders; '..' components in it are neutralised."""
    assert render(parse("{relpath}.png"), {"relpath": "a/../b"}) == "a/__/b.png"


def test_long_names_are_capped_keeping_extension() -> None:
    """Each component is capped at 255 bytes and keeps its extension."""
    out = render(parse("{stem}.png"), {"stem": "é" * 300})
    assert len(out.encode()) <= 255 and out.endswith(".png")


def test_braces_escape() -> None:
    """'{{' and '}}' are literal braces."""
    assert render(parse("{{x}}-{stem}"), {"stem": "s"}) == "{x}-s"
