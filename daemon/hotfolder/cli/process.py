"""`hotfolder process`: what it refuses to take, the dry run, and the batch run's exit code."""

from __future__ import annotations

import sys
from pathlib import Path

from hotfolder import logs
from hotfolder.core.identity import kind_of
from hotfolder.core.status import Tally
from hotfolder.decide.inspect import inspect_file
from hotfolder.errors import EXIT_USAGE, NotRegularError
from hotfolder.settings.config import Config


def refusal(config: Config, path: Path) -> str | None:
    """Why `process` will not take a path it was given, or None."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return "no such file or folder"
    if path.is_symlink():
        return "is a symbolic link; links are never processed (give the file itself)"
    if not (path.is_dir() or path.is_file()):
        return f"is {kind_of(st)}, not a regular file or folder"
    resolved = path.resolve()
    for key, folder in (
        ("output_root", config.output_root),
        ("quarantine", config.quarantine),
        ("state_dir", config.state_dir),
    ):
        if (
            resolved == folder
            or resolved.is_relative_to(folder)
            or (path.is_dir() and folder.is_relative_to(resolved))
        ):
            return f"lies inside (or holds) {key} {folder}: hotfolder never takes its own files as inputs"
    return None


def process(config: Config, paths: list[Path], *, force: bool, dry_run: bool) -> int:
    refused = [(p, why) for p in paths if (why := refusal(config, p)) is not None]
    if refused:
        for path, why in refused:
            logs.get().error("process.refused", src=str(path), error=why)
            print(f"hotfolder: {path} {why}", file=sys.stderr)
        return EXIT_USAGE
    from hotfolder.run.batch import given_inputs, process_paths, summary  # noqa: PLC0415

    if dry_run:
        for watch, f in given_inputs(config, paths):
            relpath = f.relative_to(watch.path).as_posix()
            try:
                seen = inspect_file(
                    f,
                    relpath,
                    config.rules,
                    max_pixels=config.max_image_pixels,
                    watch=watch,
                )
            except (NotRegularError, OSError) as exc:
                print(f"{f}: refused: {exc}")
                continue
            verdict = "+".join(r.name for r in seen.decision.rules) or "no rule: left alone"
            print(f"{f}: {verdict}" + (f" (would be refused: {seen.refusal})" if seen.refusal else ""))
        return 0
    if sys.stdout.isatty():
        # rich only for a terminal: importing it costs ~0.1 s of every piped or scripted `process`.
        from hotfolder.cli import progress  # noqa: PLC0415

        with progress.bar(config) as bar:
            counts = process_paths(config, paths, force=force, view=bar)
    else:
        counts = process_paths(config, paths, force=force)
    print(summary(counts), file=sys.stderr)
    return 1 if counts[Tally.QUARANTINED] or counts[Tally.FAILED] else 0
