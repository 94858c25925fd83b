"""What the installed writers can do beyond what the format table promises, asked once at start.

Imported by the commands that load rules (check and status included, which load no codec): every
codec and the colour tables are imported only when a probe is asked."""

from __future__ import annotations

import io
from functools import cache

from hotfolder.errors import ConfigError, HotfolderError, Problem
from hotfolder.settings.rules import Rule


def hdr_problem(fmt: str) -> str | None:
    """Why `fmt` cannot keep HDR with the writers installed here, or None if it can (settings'
    HdrProbe: asked only for a format the table marks "probe", when a rule says hdr = "keep")."""
    if fmt == "avif":
        return _avif_hdr_problem()
    return f"no HDR writer for {fmt}"


def require_writers(rules: tuple[Rule, ...]) -> None:
    """Raise ConfigError with a problem for each output whose writer cannot be loaded here (JPEG XL:
    libjxl from imagecodecs' wheel); asked once at start by the commands that run or check rules."""
    problems = [
        Problem(rule.file, f"format 'jxl' cannot be written here: {why}", rule.name, "output.format")
        for rule in rules
        for output in rule.outputs
        if output.format == "jxl" and (why := _jxl_problem()) is not None
    ]
    if problems:
        raise ConfigError(problems)


@cache
def _jxl_problem() -> str | None:
    from hotfolder.decide import jxl  # noqa: PLC0415

    try:
        jxl.version()
    except (ImportError, OSError, AttributeError) as exc:
        return f"libjxl cannot be loaded ({exc}); install imagecodecs from its wheel"
    except HotfolderError as exc:
        return str(exc)
    return None


@cache
def _avif_hdr_problem() -> str | None:
    """A 10-bit AVIF needs a writer that says its NCLX: pillow-heif, if its libheif has an AV1
    encoder, is asked to write a PQ one and read back. Pillow's AVIF writer takes 8 bits only, and
    libvips' heifsave writes 10-bit AV1 but always labels it NCLX 1/13/6 (sRGB)."""
    import pillow_heif  # noqa: PLC0415

    from hotfolder.decide.colourspace import PQ, bmff_nclx  # noqa: PLC0415 - it imports Pillow

    if not pillow_heif.libheif_info().get("AVIF"):
        return (
            "Pillow's AVIF writer is 8-bit only, pillow-heif's libheif has no AV1 encoder, and "
            "libvips' heifsave labels every AVIF sRGB (NCLX 1/13/6)"
        )
    pixels = bytes(16 * 16 * 6)
    buf = io.BytesIO()
    try:
        pillow_heif.from_bytes("RGB;16", (16, 16), pixels).save(
            buf,
            format="AVIF",
            quality=90,
            color_primaries=9,
            transfer_characteristics=PQ,
            matrix_coefficients=9,
            full_range_flag=1,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        return f"pillow-heif cannot write a 10-bit AVIF: {exc}"
    said = bmff_nclx(buf.getvalue())
    if said is None or (said.primaries, said.transfer) != (9, PQ):
        return "pillow-heif's AVIF writer does not keep the NCLX it is given"
    return None
