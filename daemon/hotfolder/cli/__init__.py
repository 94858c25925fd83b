"""Command line: run, check, process, explain, status, retry, serve, init, ledger. Maps our errors to
exit codes (2 configuration or usage, 3 lock)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hotfolder import __version__
from hotfolder.settings.levels import LOG_FORMATS, LOG_LEVELS

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
    worker = sub.add_parser("worker", help="run cluster workers for a daemon's [cluster] on this host")
    worker.add_argument("address", help="the dask scheduler, e.g. tls://10.0.0.5:8786")
    worker.add_argument("--nworkers", type=int, default=None, help="worker processes (default: the CPUs)")
    worker.add_argument(
        "--heavy",
        type=int,
        default=None,
        help="how many of them take HEIF, AVIF and RAW jobs (default: half)",
    )
    worker.add_argument("--name", help="prefix of the workers' names (default: the host name)")
    for flag in ("--tls-ca", "--tls-cert", "--tls-key"):
        worker.add_argument(flag, type=Path, help="mutual TLS: " + flag[6:])
    worker.add_argument(
        "--allow-insecure",
        action="store_true",
        help="accept a plain tcp:// scheduler (whoever reaches the host runs code)",
    )
    worker.add_argument(
        "--listen",
        metavar="HOST",
        help="address the workers listen on (default: the one reaching the scheduler)",
    )
    serve = sub.add_parser(
        "serve", parents=[common], help="a status page and /metrics beside the daemon (reads the ledger only)"
    )
    serve.add_argument(
        "--listen",
        default="127.0.0.1:8765",
        help="HOST:PORT or unix:PATH (default 127.0.0.1:8765); another host needs --token-file",
    )
    serve.add_argument("--token-file", type=Path, help="a file holding the token other hosts must give")
    init = sub.add_parser(
        "init", help="write a commented hotfolder.toml and a rule file here, then check them"
    )
    init.add_argument(
        "use",
        nargs="?",
        default="camera",
        choices=["camera", "phone", "scanner", "web", "archive"],
        help="what the folder is for (default: camera)",
    )
    restore = sub.add_parser(
        "restore", parents=[common], help="the original JPEGs back from JPEG XL archives, proven by SHA-256"
    )
    restore.add_argument("files", nargs="+", type=Path, help="JPEG XL archives hotfolder wrote")
    restore.add_argument("--to", type=Path, help="the folder to write them in (default: beside each archive)")
    ledger = sub.add_parser("ledger", parents=[common], help="ledger maintenance")
    ledger.add_argument(
        "action", choices=["rebuild"], help="rebuild: set a damaged ledger aside and rebuild it"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hotfolder` console script."""
    args = _parser().parse_args(argv)
    one = args.command == "process" and _one_input(args.paths)
    if args.command in ("run", "process") and not getattr(args, "dry_run", False) and not one:
        # First, so the fork server imports what a job runs while this process imports the rest
        # (run/prefork.py: the first worker is ready ~0.3 s sooner).
        from hotfolder.run import prefork  # noqa: PLC0415

        prefork.start()
    # Imported only now (structlog and the config's modules: ~0.2 s), after the fork server's start.
    from hotfolder import logs, names  # noqa: PLC0415

    names.readable_streams()
    logs.configure(
        fmt=getattr(args, "log_format", None) or "auto", level=getattr(args, "log_level", None) or "info"
    )
    try:
        code = _command(args)
    except BrokenPipeError:
        # The reader went away (`explain ... | head`): not an error of ours, and no traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    if argv is None and args.command == "process":
        # The whole command (not a call from Python): every output is synced and the ledger and the
        # lock are closed, so the interpreter's teardown of ~1,000 modules (~70 ms) is skipped. The fork
        # server is waited for (a few ms): it reaps the workers, so their CPU time and peak memory reach
        # whoever waits for this command (time, systemd, a benchmark).
        from hotfolder.run import prefork  # noqa: PLC0415

        prefork.stop()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _one_input(paths: list[Path]) -> bool:
    """Whether `process` is given at most one file, so it runs its job in this process (run/inline.py)
    and needs no fork server. A cheap look before the configuration is read (ignore rules not applied),
    stopping at the second file found."""
    found = 0
    for given in paths:
        if given.is_dir():
            for _, _, files in os.walk(given):
                found += len(files)
                if found > 1:
                    return False
        else:
            found += 1
    return found <= 1


def _command(args: argparse.Namespace) -> int:
    if args.command == "worker":
        return _worker(args)
    if args.command == "init":
        from hotfolder.cli.init import init  # noqa: PLC0415

        return init(Path.cwd(), args.use)
    from dataclasses import replace  # noqa: PLC0415 - see main()

    from hotfolder import logs  # noqa: PLC0415 - see main()
    from hotfolder.errors import ConfigError, HotfolderError  # noqa: PLC0415
    from hotfolder.render.capabilities import hdr_problem, require_writers  # noqa: PLC0415
    from hotfolder.settings.config import load_config  # noqa: PLC0415

    try:
        config = load_config(args.config, hdr_probe=hdr_problem)
        # The command line wins over the config file, also across reloads.
        config = replace(
            config,
            log_format=args.log_format or config.log_format,
            log_level=args.log_level or config.log_level,
        )
        logs.configure(fmt=config.log_format, level=config.log_level)
        if args.command in ("run", "check", "process"):
            require_writers(config.rules)
        if args.command == "check":
            from hotfolder.cli.check import check  # noqa: PLC0415 - each command loads what it needs

            return check(config)
        if args.command == "run":
            from hotfolder.run.daemon import Daemon  # noqa: PLC0415 - the daemon's stack is loaded only to run it

            overrides = {
                k: v for k, v in (("log_format", args.log_format), ("log_level", args.log_level)) if v
            }
            if sys.stdout.isatty():  # rich (~0.1 s to import) only for a terminal, never under systemd
                from hotfolder.cli import progress  # noqa: PLC0415

                with progress.status_line(config) as line:
                    return Daemon(config, overrides=overrides, on_status=line).run()
            return Daemon(config, overrides=overrides).run()
        if args.command == "process":
            from hotfolder.cli.process import process  # noqa: PLC0415

            return process(config, args.paths, force=args.force, dry_run=args.dry_run)
        if args.command == "status":
            from hotfolder.cli.state import status  # noqa: PLC0415

            return status(config)
        if args.command == "restore":
            from hotfolder.cli.restore import restore  # noqa: PLC0415

            return restore(config, args.files, to=args.to)
        if args.command == "retry":
            from hotfolder.cli.state import retry  # noqa: PLC0415

            return retry(config, args.paths, every=args.all)
        if args.command == "serve":
            from hotfolder.serve.main import serve  # noqa: PLC0415 - the web stack is loaded only to serve

            return int(serve(config, args.listen, args.token_file))
        if args.command == "ledger":
            from hotfolder.commit.rebuild import rebuild  # noqa: PLC0415

            return rebuild(config)
        from hotfolder.cli.explain import explain  # noqa: PLC0415

        return explain(config, args.file)
    except ConfigError as exc:
        print(f"hotfolder: {len(exc.problems)} configuration problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return exc.exit_code
    except HotfolderError as exc:
        print(f"hotfolder: {exc}", file=sys.stderr)
        return exc.exit_code


def _worker(args: argparse.Namespace) -> int:
    """A worker host has no config: everything it needs comes with each job."""
    from hotfolder.cli.worker import worker  # noqa: PLC0415

    tls = (args.tls_ca, args.tls_cert, args.tls_key)
    if any(tls) and not all(tls):
        print("hotfolder: worker: mutual TLS needs --tls-ca, --tls-cert and --tls-key", file=sys.stderr)
        return 2
    if not args.address.startswith(("tls://", "tcp://")):
        print(
            f"hotfolder: worker: {args.address!r} is not a scheduler address: give tls://HOST:PORT "
            "(or tcp://HOST:PORT with --allow-insecure)",
            file=sys.stderr,
        )
        return 2
    hostport = args.address.split("://", 1)[1]
    if ":" not in hostport or not hostport.rsplit(":", 1)[1].isdigit() or not hostport.rsplit(":", 1)[0]:
        print(f"hotfolder: worker: {args.address!r}: give the scheduler as tls://HOST:PORT", file=sys.stderr)
        return 2
    if args.address.startswith("tcp://") and not args.allow_insecure:
        print(
            "hotfolder: worker: plain tcp:// lets anyone who reaches this host run code in its workers "
            "and read every picture; use tls:// with --tls-ca, --tls-cert and --tls-key, or give "
            "--allow-insecure on a network you trust (as allow_insecure = true in the daemon's [cluster])",
            file=sys.stderr,
        )
        return 2
    if args.address.startswith("tls://") and not all(tls):
        print("hotfolder: worker: a tls:// address needs --tls-ca, --tls-cert and --tls-key", file=sys.stderr)
        return 2
    n = args.nworkers or len(os.sched_getaffinity(0))
    return worker(
        args.address,
        nworkers=n,
        heavy=args.heavy,
        name=args.name,
        tls=tls if all(tls) else None,
        listen=args.listen,
    )


if __name__ == "__main__":
    sys.exit(main())
