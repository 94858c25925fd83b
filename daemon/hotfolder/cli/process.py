"""`hotfolder process`: what it refuses to take, the dry run, and the batch run's exit code."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hotfolder import logs
from hotfolder.core.identity import kind_of
from hotfolder.core.status import Tally
from hotfolder.decide.inspect import inspect_file
from hotfolder.errors import EXIT_USAGE, NotRegularError
from hotfolder.run.signals import SignalThread
from hotfolder.settings.config import Config

if TYPE_CHECKING:
    from hotfolder.run.batch import Interrupt


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
    from hotfolder.run.batch import Interrupt, given_inputs, process_paths, summary  # noqa: PLC0415

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
    interrupt = Interrupt()
    received: list[signal.Signals] = []
    # Ctrl-C (or SIGTERM) reached this process as a KeyboardInterrupt wherever it happened to be, a
    # traceback on the terminal and the temp files of its jobs in flight left in the outbox.
    signals = SignalThread(
        (signal.SIGINT, signal.SIGTERM), lambda sig, times: _stop(interrupt, received, sig, times)
    )
    try:
        if sys.stdout.isatty():
            # rich only for a terminal: importing it costs ~0.1 s of every piped or scripted `process`.
            from hotfolder.cli import progress  # noqa: PLC0415

            with progress.bar(config) as bar:
                counts = process_paths(config, paths, force=force, view=bar, interrupt=interrupt)
        else:
            counts = process_paths(config, paths, force=force, interrupt=interrupt)
    finally:
        signals.close()
    print(summary(counts), file=sys.stderr)
    if received:
        print(f"hotfolder: interrupted ({received[0].name}): run it again for the rest", file=sys.stderr)
        return 128 + received[0]  # the shell's convention: 130 after Ctrl-C
    return 1 if counts[Tally.QUARANTINED] or counts[Tally.FAILED] else 0


def _stop(interrupt: Interrupt, received: list[signal.Signals], sig: signal.Signals, times: int) -> None:
    """On the thread hf-signals: the first Ctrl-C lets the jobs in flight finish, a second abandons them."""
    received.append(sig)
    again = interrupt.stop.is_set() or times > 1
    interrupt.stop.set()
    if not again:
        logs.get().warning(
            "process.signal", signal=sig.name, error="the jobs in flight finish; again to abandon"
        )
        return
    interrupt.now.set()
    if interrupt.in_process.is_set():
        # Its one job runs in this process, in C code nothing can interrupt: the process ends here, as
        # a kill would end it, which the commit's intents and the next run's cleanup are made for.
        logs.get().warning(
            "process.signal", signal=sig.name, error="stopped at once; the next run redoes its job"
        )
        sys.stderr.flush()
        os._exit(128 + sig)
    logs.get().warning("process.signal", signal=sig.name, error="abandoning the jobs in flight")
