"""Names of outputs: the template values one input provides, and the path a rendered template gives."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import Final

from hotfolder.core.template import Template, Value, When, camera, render
from hotfolder.decide.job import Job
from hotfolder.decide.match import Content
from hotfolder.settings.rules import Rule

# {seq} is counted by the daemon when it commits (no gaps for inputs that fail): a worker renders
# names with this mark, and the daemon puts the number in.
SEQ_MARK: Final = "\ue000seq\ue001"


def template_values(
    job: Job, rule: Rule, content: Content | None, digest: str | None = None, *, paired: bool | None = None
) -> dict[str, Value]:
    """Every template field for one input and rule ({seq} is the daemon's: a mark here). `paired`:
    whether the picture's group holds a RAW+JPEG twin or a Live Photo video (rules with companions)."""
    rel = PurePosixPath(job.relpath)
    values: dict[str, Value] = {
        "stem": rel.stem,
        "ext": rel.suffix.lower().lstrip(".") or None,
        "name": rel.name,
        "relpath": str(rel.with_suffix("")) if rel.suffix else str(rel),
        "reldir": str(rel.parent) if str(rel.parent) != "." else "",  # at the root: nothing
        "watch": job.watch_name,
        "rule": rule.name,
        "hash8": digest[:8] if digest else None,
        "seq": SEQ_MARK,
        "group": rel.stem if rule.companions is not None else None,
        "paired": None if paired is None or rule.companions is None else str(paired).lower(),
    }
    if content is not None:
        values.update(
            make=content.make,
            model=content.model,
            camera=camera(content.make, content.model),
            width=str(content.width),
            height=str(content.height),
            taken=When(content.taken, content.subsec) if content.taken else None,
            # Lightroom's meaning: an unrated picture is 0; a label has no value then (use a fallback).
            rating=str(content.rated.rating if content.rated.rating is not None else 0),
            label=content.rated.label,
        )
    return values


def output_path(template: Template, output_root: Path, values: dict[str, Value]) -> Path:
    """Where an output lands: the rendered template, always under output_root.

    render() refuses '..' and absolute parts; links are dealt with where files are written:
    atomic.make_folder refuses a linked folder, and a link at the name itself is replaced or
    skipped by the rename, never written through.
    """
    return output_root / render(template, values)


def chain_key(chain: tuple[Rule, ...]) -> str:
    """A rule chain's fingerprint: the same bytes through the same chain give the same outputs."""
    names = "+".join(r.name for r in chain)
    made = repr(tuple((r.name, r.outputs, r.original, r.original_path) for r in chain))
    return f"{names}#{hashlib.sha1(made.encode(), usedforsecurity=False).hexdigest()[:12]}"
