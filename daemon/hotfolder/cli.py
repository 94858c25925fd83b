"""Command line: run, check, process, explain. Maps our errors to exit codes (2 config, 3 lock)."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from . import __version__, atomic, logs
from .config import LOG_FORMATS, LOG_LEVELS, Config, load_config
from .errors import ConfigError, HotfolderError
from .ledger import Ledger
from .match import Facts
from .pipeline import Job, content_facts, examine, output_path, template_values
from .service import Daemon, given_inputs, process_paths, summary
from .template import camera


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hotfolder` console script."""
    args = _parser().parse_args(argv)
    logs.configure(fmt=args.log_format or "auto", level=args.log_level or "info")
    try:
        config = load_config(args.config)
        # The command line wins over the config file, also across reloads.
        config = replace(config, log_format=args.log_format or config.log_format,
                         log_level=args.log_level or config.log_level)  # fmt: skip
        logs.configure(fmt=config.log_format, level=config.log_level)
        if args.command == "check":
            return _check(config)
        if args.command == "run":
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
    print(f"ok: {len(config.rules)} rule(s), {sum(len(r.outputs) for r in config.rules)} output(s)")
    return 0


def _process(config: Config, paths: list[Path], *, force: bool, dry_run: bool) -> int:
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"hotfolder: no such file or folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    if dry_run:
        for watch, f in given_inputs(config, paths):
            data = f.read_bytes()
            relpath = f.relative_to(watch.path).as_posix()
            facts = Facts(relpath=relpath, watch=watch.name, watch_path=str(watch.path), size=len(data),
                          content=content_facts(data, f.stat().st_mtime))  # fmt: skip
            decision = examine(data, relpath, config.rules, facts=facts)
            print(f"{f}: {'+'.join(r.name for r in decision.rules) or 'no rule: left alone'}")
        return 0
    counts = process_paths(config, paths, force=force)
    print(summary(counts), file=sys.stderr)
    return 1 if counts["quarantined"] or counts["failed"] else 0


def _status(config: Config) -> int:
    ledger = Ledger(config.state_dir)
    try:
        rows = ledger.summary()
        totals = ledger.counts()
    finally:
        ledger.close()
    print(f"ledger: {config.state_dir / 'ledger.sqlite3'}")
    for watch, status, n in rows:
        print(f"  {watch:20s} {status:12s} {n}")
    print("total: " + (", ".join(f"{s} {n}" for s, n in sorted(totals.items())) or "nothing processed yet"))
    return 1 if totals.get("quarantined") or totals.get("failed") else 0


def _retry(config: Config, paths: list[Path], *, every: bool) -> int:
    if not paths and not every:
        print("hotfolder: name quarantined files, or --all", file=sys.stderr)
        return 2
    wanted = {p.resolve() for p in paths}
    ledger = Ledger(config.state_dir)
    moved = 0
    try:
        for original, parked in ledger.quarantined():
            if not every and original not in wanted and parked not in wanted:
                continue
            if not parked.exists():
                print(f"hotfolder: {parked} is no longer in quarantine", file=sys.stderr)
                continue
            back = atomic.move_into(parked, original)  # a moved-in file: the daemon picks it up
            parked.with_name(parked.name + ".json").unlink(missing_ok=True)
            ledger.mark(original, "requeued")
            print(f"{parked} -> {back}")
            moved += 1
    finally:
        ledger.close()
    print(f"{moved} input(s) put back", file=sys.stderr)
    return 0


def _explain(config: Config, file: Path) -> int:
    file = file.resolve()
    try:
        data = file.read_bytes()
        mtime = file.stat().st_mtime
    except OSError as exc:
        print(f"hotfolder: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return 2
    watch = next((w for w in config.watches if file.is_relative_to(w.path)), None)
    root = watch.path if watch else file.parent
    relpath = file.relative_to(root).as_posix()
    facts = Facts(relpath=relpath, watch=watch.name if watch else None,
                  watch_path=str(watch.path) if watch else None, size=len(data),
                  content=content_facts(data, mtime))  # fmt: skip
    decision = examine(data, relpath, config.rules, facts=facts)
    c = facts.content
    print(f"file: {file}\nrelative to {root}: {relpath}")
    if c is not None:
        print(f"seen: {len(data)} bytes, {c.width}x{c.height}, camera {camera(c.make, c.model)!r}, "
              f"taken {c.taken}, exif {c.has_exif}, gps {c.has_gps}")  # fmt: skip
    for verdict in decision.verdicts:
        print(f"  rule {verdict.rule!r}: {'MATCH' if verdict.matched else 'no'} - {verdict.reason}")
    if not decision.rules:
        print("no rule matches: the file would be left where it is")
        return 1
    job = Job(src=file, relpath=relpath, rules=decision.rules, output_root=config.output_root,
              quarantine=config.quarantine, watch=watch.name if watch else None)  # fmt: skip
    digest = hashlib.sha256(data).hexdigest()
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
        dest = output_path(mover.original_path, config.output_root, template_values(job, mover, c, digest))
        print(f"the original moves to {dest} once every output is written and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
