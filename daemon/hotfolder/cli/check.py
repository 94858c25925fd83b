"""`hotfolder check`: the parsed configuration, printed; loads settings only."""

from __future__ import annotations

import sys

from hotfolder.settings.config import Config


def check(config: Config) -> int:
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
