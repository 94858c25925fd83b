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
    private = [o for r in config.rules for o in r.outputs if o.format != "copy" and o.serials == "strip"]
    if private:
        # Said once: web outputs wrote serial numbers, owner names and the MakerNote before this release.
        print(
            f"note: {len(private)} output(s) write no serial numbers, owner names or MakerNote (the web "
            'profile); serials, owner, makernote = "keep" keep each of them'
        )
    bad_urls = _notify(config)
    if bad_urls:
        return 2
    print(
        f"ok: {len(config.rules)} rule(s), {sum(len(r.outputs) for r in config.rules)} output(s)"
        + (f", {len(config.warnings)} warning(s)" if config.warnings else "")
    )
    return 0


def _notify(config: Config) -> int:
    """Print what `notify` will do; the number of URLs apprise does not understand."""
    if not config.notify:
        return 0
    from hotfolder.serve.main import apprise_missing  # noqa: PLC0415 - only when notify is set

    missing = apprise_missing(config)
    if missing:
        print(f"warning: {missing}", file=sys.stderr)
        return 0
    import apprise  # noqa: PLC0415 - optional: [notify]

    bad = 0
    for url in config.notify:
        if apprise.Apprise.instantiate(url) is None:
            print(
                f"{config.source}: notify: apprise does not understand {url!r} (see its wiki for the "
                "URL of each service)",
                file=sys.stderr,
            )
            bad += 1
        else:
            print(f"notify: {url.split('://', 1)[0]}:// (sent by `hotfolder serve`)")
    return bad
