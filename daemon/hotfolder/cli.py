"""Command line: run, check, process, explain, status, retry, ledger. Maps our errors to exit codes
(2 configuration or usage, 3 lock)."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from hotfolder import __version__, logs
from hotfolder.commit import atomic
from hotfolder.commit.ledger import LEDGER_NAME, Ledger
from hotfolder.core import tempnames
from hotfolder.core.identity import kind_of
from hotfolder.core.template import camera
from hotfolder.decide.inspect import inspect_file
from hotfolder.decide.job import Job
from hotfolder.decide.naming import output_path, template_values
from hotfolder.errors import ConfigError, HotfolderError, NotRegularError
from hotfolder.settings.config import LOG_FORMATS, LOG_LEVELS, Config, load_config

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE (`explain ... | head`)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, help="config file (default: ./hotfolder.toml, else the built-in)"
    )
    common.add_argument(
        "--log-format", choices=LOG_FORMATS, help="overrides the config's log_format (default: auto)"
    )
    common.add_argument(
        "--log-level", choices=LOG_LEVELS, help="overrides the config's log_level (default: info)"
    )
    parser = argparse.ArgumentParser(prog="hotfolder", description="Turn folders into image pipelines.")
    parser.add_argument("--version", action="version", version=f"hotfolder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", parents=[common], help="watch the folders and process what arrives (foreground)")
    sub.add_parser("check", parents=[common], help="validate the config and rules exactly as `run` would")
    process = sub.add_parser("process", parents=[common], help="process files or folders once and exit")
    process.add_argument("paths", nargs="+", type=Path)
    process.add_argument("--force", action="store_true", help="process again what the ledger says is done")
    process.add_argument("--dry-run", action="store_true", help="say what would happen; write nothing")
    sub.add_parser("status", parents=[common], help="summarise the ledger; exit 1 if anything failed")
    retry = sub.add_parser(
        "retry", parents=[common], help="put quarantined inputs back to be processed again"
    )
    retry.add_argument("paths", nargs="*", type=Path, help="original or quarantined paths")
    retry.add_argument("--all", action="store_true", help="every quarantined input")
    explain = sub.add_parser(
        "explain", parents=[common], help="say which rule takes a file and why; writes nothing"
    )
    explain.add_argument("file", type=Path)
    ledger = sub.add_parser("ledger", parents=[common], help="ledger maintenance")
    ledger.add_argument(
        "action", choices=["rebuild"], help="rebuild: set a damaged ledger aside and rebuild it"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hotfolder` console script."""
    args = _parser().parse_args(argv)
    logs.configure(fmt=args.log_format or "auto", level=args.log_level or "info")
    try:
        return _command(args)
    except BrokenPipeError:
        # The reader went away (`explain ... | head`): not an error of ours, and no traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _command(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        # The command line wins over the config file, also across reloads.
        config = replace(config, log_format=args.log_format or config.log_format,
                         log_level=args.log_level or config.log_level)  # fmt: skip
        logs.configure(fmt=config.log_format, level=config.log_level)
        if args.command == "check":
            return _check(config)
        if args.command == "run":
            from hotfolder.run.daemon import Daemon  # noqa: PLC0415 - the daemon's stack is loaded only to run it

            overrides = {
                k: v for k, v in (("log_format", args.log_format), ("log_level", args.log_level)) if v
            }
            return Daemon(config, overrides=overrides).run()
        if args.command == "process":
            return _process(config, args.paths, force=args.force, dry_run=args.dry_run)
        if args.command == "status":
            return _status(config)
        if args.command == "retry":
            return _retry(config, args.paths, every=args.all)
        if args.command == "ledger":
            from hotfolder.commit.rebuild import rebuild  # noqa: PLC0415

            return rebuild(config)
        return _explain(config, args.file)
    except ConfigError as exc:
        print(f"hotfolder: {len(exc.problems)} configuration problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return exc.exit_code
    except HotfolderError as exc:
        print(f"hotfolder: {exc}", file=sys.stderr)
        return exc.exit_code


def _check(config: Config) -> int:
    print(f"config: {config.source or 'built-in default'}")
    print(
        f"output_root: {config.output_root}\nstate_dir: {config.state_dir}\nquarantine: {config.quarantine}"
    )
    print(f"workers: {config.workers}")
    for watch in config.watches:
        print(f"watch {watch.name!r}: {watch.path} ({'recursive' if watch.recursive else 'top level only'})")
    for rule in config.rules:
        print(f"rule {rule.name!r} ({rule.file}):")
        for output in rule.outputs:
            print(f"  -> {output.format}: {output.path.text}")
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"ok: {len(config.rules)} rule(s), {sum(len(r.outputs) for r in config.rules)} output(s)"
          + (f", {len(config.warnings)} warning(s)" if config.warnings else ""))  # fmt: skip
    return 0


def _refusal(config: Config, path: Path) -> str | None:
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
    for key, folder in (("output_root", config.output_root), ("quarantine", config.quarantine),
                        ("state_dir", config.state_dir)):  # fmt: skip
        if (
            resolved == folder
            or resolved.is_relative_to(folder)
            or (path.is_dir() and folder.is_relative_to(resolved))
        ):
            return f"lies inside (or holds) {key} {folder}: hotfolder never takes its own files as inputs"
    return None


def _process(config: Config, paths: list[Path], *, force: bool, dry_run: bool) -> int:
    refused = [(p, why) for p in paths if (why := _refusal(config, p)) is not None]
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
                seen = inspect_file(f, relpath, config.rules, max_pixels=config.max_image_pixels,
                                    watch=watch.name, watch_path=watch.path)  # fmt: skip
            except (NotRegularError, OSError) as exc:
                print(f"{f}: refused: {exc}")
                continue
            verdict = "+".join(r.name for r in seen.decision.rules) or "no rule: left alone"
            print(f"{f}: {verdict}" + (f" (would be refused: {seen.refusal})" if seen.refusal else ""))
        return 0
    counts = process_paths(config, paths, force=force)
    print(summary(counts), file=sys.stderr)
    return 1 if counts["quarantined"] or counts["failed"] else 0


def _open_ledger(config: Config) -> Ledger | None:
    if not (config.state_dir / LEDGER_NAME).exists():
        return None
    return Ledger(config.state_dir, readonly=True)


def _status(config: Config) -> int:
    ledger = _open_ledger(config)
    rows, totals = [], {}
    if ledger is not None:
        try:
            rows = ledger.summary()
            totals = ledger.counts()
        finally:
            ledger.close()
    print(f"ledger: {config.state_dir / LEDGER_NAME}")
    for watch, status, n in rows:
        print(f"  {watch:20s} {status:12s} {n}")
    print("total: " + (", ".join(f"{s} {n}" for s, n in sorted(totals.items())) or "nothing processed yet"))
    return 1 if totals.get("quarantined") or totals.get("failed") else 0


def _retry(config: Config, paths: list[Path], *, every: bool) -> int:
    if every and paths:
        print("hotfolder: retry --all takes no paths (name files, or use --all alone)", file=sys.stderr)
        return EXIT_USAGE
    if not paths and not every:
        print("hotfolder: name quarantined files, or --all", file=sys.stderr)
        return EXIT_USAGE
    if not (config.state_dir / LEDGER_NAME).exists():
        print(f"hotfolder: nothing is quarantined (no ledger in {config.state_dir})", file=sys.stderr)
        return EXIT_USAGE if paths else 0
    ledger = Ledger(config.state_dir)
    moved, problems = 0, 0
    try:
        entries = ledger.quarantined()
        wanted = {p.absolute(): p for p in paths}
        found = set()
        for entry in entries:
            names = {entry.path, entry.parked, *([entry.note] if entry.note else [])}
            hits = [given for resolved, given in wanted.items() if resolved in names]
            if not every and not hits:
                continue
            found.update(hits)
            if not entry.parked.exists():
                print(f"hotfolder: {entry.parked} is no longer in quarantine", file=sys.stderr)
                problems += 1
                continue
            entry.path.parent.mkdir(parents=True, exist_ok=True)
            back = _put_back(entry.parked, entry.path)  # a moved-in file: the daemon picks it up
            if entry.note is not None:
                entry.note.unlink(missing_ok=True)
            ledger.mark(entry.path, "requeued")
            print(f"{entry.parked} -> {back}")
            moved += 1
    finally:
        ledger.close()
    for given in paths:
        if given not in found:
            print(f"hotfolder: {given} is not a quarantined input (see `hotfolder status`)", file=sys.stderr)
            problems += 1
    print(f"{moved} input(s) put back", file=sys.stderr)
    return EXIT_USAGE if problems else 0


def _put_back(parked: Path, original: Path) -> Path:
    for n in range(10_000):
        candidate = tempnames.numbered(original, n)
        try:
            atomic.rename_noreplace(parked, candidate)
        except FileExistsError:
            continue
        atomic.fsync_dir(candidate.parent)
        return candidate
    raise FileExistsError(f"no free name beside {original}")


def _explain(config: Config, file: Path) -> int:
    file = file.absolute()
    watch = next((w for w in config.watches if file.is_relative_to(w.path)), None)
    root = watch.path if watch else file.parent
    relpath = file.relative_to(root).as_posix()
    try:
        seen = inspect_file(
            file,
            relpath,
            config.rules,
            max_pixels=config.max_image_pixels,
            watch=watch.name if watch else None,
            watch_path=watch.path if watch else None,
        )
    except NotRegularError as exc:
        print(f"hotfolder: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"hotfolder: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    facts, decision = seen.facts, seen.decision
    c = facts.content
    print(f"file: {file}\nrelative to {root}: {relpath}")
    if c is not None:
        print(f"seen: {facts.size} bytes, {c.width}x{c.height}, camera {camera(c.make, c.model)!r}, "
              f"taken {c.taken}, exif {c.has_exif}, gps {c.has_gps}")  # fmt: skip
    for verdict in decision.verdicts:
        print(f"  rule {verdict.rule!r}: {'MATCH' if verdict.matched else 'no'} - {verdict.reason}")
    if not decision.rules:
        print("no rule matches: the file would be left where it is")
        return 1
    if seen.refusal is not None:
        print(f"it would be quarantined: {seen.refusal}")
        return 0
    job = Job(src=file, relpath=relpath, rules=decision.rules, output_root=config.output_root,
              watch=watch.name if watch else None)  # fmt: skip
    digest = hashlib.sha256(seen.data or b"").hexdigest()
    for rule in decision.rules:
        print(f"rule {rule.name!r} would write:")
        values = template_values(job, rule, c, digest)
        values["seq"] = "<next>"
        for output in rule.outputs:
            try:
                target = str(output_path(output.path, config.output_root, values))
            except HotfolderError as exc:
                target = f"(cannot name it, the file would be quarantined: {exc})"
            print(
                f"  {output.format} ({output.profile if output.format != 'copy' else 'unchanged'}): {target}"
            )
    mover = next((r for r in decision.rules if r.original != "keep"), None)
    if mover is None:
        print("the original stays where it is")
    elif mover.original == "delete":
        print("the original is deleted once every output is written and verified")
    else:
        assert mover.original_path is not None
        values = template_values(job, mover, c, digest)
        values["seq"] = "<next>"
        dest = output_path(mover.original_path, config.output_root, values)
        print(f"the original moves to {dest} once every output is written and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
