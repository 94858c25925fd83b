"""`hotfolder explain FILE`: what the daemon would do with one file, and why, without writing anything."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from hotfolder.core.template import Value, camera
from hotfolder.decide import companions as pairing
from hotfolder.decide.inspect import Inspection, inspect_file, may_take
from hotfolder.decide.job import Job
from hotfolder.decide.motion import Motion, motion_video
from hotfolder.decide.naming import output_path, template_values
from hotfolder.errors import EXIT_USAGE, HotfolderError, NotRegularError
from hotfolder.render.motion import location_boxes
from hotfolder.run.group import claimed, live_photo, spec_of
from hotfolder.settings.config import Config
from hotfolder.settings.outputs import Output
from hotfolder.settings.rules import Rule
from hotfolder.settings.watches import Watch


def explain(config: Config, file: Path) -> int:
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
            watch=watch,
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
    if seen.misnamed is not None:
        print(f"misnamed: {seen.misnamed}")
    if c is not None:
        print(
            f"seen: {facts.size} bytes, {c.width}x{c.height}, camera {camera(c.make, c.model)!r}, "
            f"taken {c.taken}, exif {c.has_exif}, gps {c.has_gps}"
        )
        r = c.rated
        stars = f"{r.rating} (from {r.rating_from})" if r.rating is not None else "0 (unrated)"
        label = f"{r.label!r} (from {r.label_from})" if r.label is not None else "none"
        print(f"rating: {stars}, label: {label}")
    motion = motion_video(seen.data) if seen.data and seen.raw is None else None
    if motion is not None:
        _print_motion(motion, seen.data or b"")
    if seen.colour is not None:
        hdr = ' - HDR: tone-mapped where hdr = "tonemap", kept where "keep"' if seen.colour.hdr else ""
        print(f"colour: {seen.colour.words}{hdr}")
    if seen.raw is not None:
        h = seen.raw
        preview = f"{h.preview[0]}x{h.preview[1]}" if h.preview else "none"
        print(
            f"camera RAW ({h.container}): sensor {h.sensor[0]}x{h.sensor[1]}, orientation {h.orientation}, "
            f"embedded preview {preview}"
        )
    for verdict in decision.verdicts:
        print(f"  rule {verdict.rule!r}: {'MATCH' if verdict.matched else 'no'} - {verdict.reason}")
    if not decision.rules:
        print("no rule matches: the file would be left where it is")
        return 1
    held, paired = _print_group(file, seen, decision.rules, root=root, every=config.rules)
    if held:
        return 0
    if seen.refusal is not None:
        print(f"it would be quarantined: {seen.refusal}")
        _print_events(config, "quarantined", "+".join(r.name for r in decision.rules))
        return 0
    _print_plan(config, seen, file, relpath, watch, paired=paired, motion=motion)
    _print_events(config, "done", "+".join(r.name for r in decision.rules))
    return 0


def _print_events(config: Config, kind: str, rule: str) -> None:
    """Which [[event]] sinks would hear of this file's job, and how."""
    heard = [s for s in config.events if s.hears(kind, rule)]
    if not config.events:
        return
    if not heard:
        print(f"events: no [[event]] sink hears of a {kind} job of rule {rule!r}")
        return
    for s in heard:
        how = (
            f"MQTT topic {s.path!r} on {s.host}:{s.port}, QoS 1"
            if s.mqtt
            else f"{s.method} {s.url}"
            + (f", batched ({s.batch:g} s of quiet)" if s.batch else ", one per job")
        )
        print(f"events: {kind} announced to {s.name!r}: {how}")


def _print_motion(motion: Motion, data: bytes) -> None:
    """A motion photo's parts: the picture, the video after it (or why it cannot be taken), its location."""
    if motion.problem is not None:
        print(f"motion photo ({motion.layout}): its video cannot be extracted: {motion.problem}")
        return
    places = [name for _, _, name in location_boxes(data[motion.start : motion.end])]
    print(
        f"motion photo ({motion.layout}): picture bytes 0-{motion.start:,}, video bytes "
        f"{motion.start:,}-{motion.end:,} ({motion.size:,} bytes, MP4 brand {motion.brand.strip()!r}, "
        f"SHA-256 {motion.sha256}); the video's location: {', '.join(places) or 'none'}"
    )


def _print_plan(
    config: Config,
    seen: Inspection,
    file: Path,
    relpath: str,
    watch: Watch | None,
    *,
    paired: bool,
    motion: Motion | None,
) -> None:
    """What each matching rule would write, and what becomes of the original."""
    c, decision = seen.facts.content, seen.decision
    job = Job(src=file, relpath=relpath, rules=decision.rules, output_root=config.output_root, watch=watch)
    digest = hashlib.sha256(seen.data or b"").hexdigest()
    c_format = seen.facts.format
    for rule in decision.rules:
        print(f"rule {rule.name!r} would write:")
        values = template_values(job, rule, c, digest, paired=paired)
        values["seq"] = "<next>"
        for output in rule.outputs:
            try:
                target = str(output_path(output.path, config.output_root, values))
            except HotfolderError as exc:
                target = f"(cannot name it, the file would be quarantined: {exc})"
            print(
                f"  {output.format} ({output.profile if output.format != 'copy' else 'unchanged'}): {target}"
            )
            if seen.raw is not None and output.format != "copy":
                kind, why = _raw_source(seen, output)
                print(f"    from the RAW's {kind}: {why}")
            said = _jpeg_bytes(seen.facts.format, output)
            if said:
                print(f"    {said}")
            transcoded = output.format == "jxl" and c_format == "jpeg" and output.transcode_blocker() is None
            if transcoded:
                print(
                    f"    provenance: SHA-256 {digest} in the archive's hfsh box (its XMP is the JPEG's own)"
                )
            elif output.format != "copy" and output.provenance == "keep" and output.xmp == "keep":
                print(
                    f"    provenance in its XMP: xmpMM:PreservedFileName {file.name!r}, xmpMM:DerivedFrom, "
                    f"hf:SourceSHA256 {digest}"
                )
            if motion is not None:
                print(f"    motion video: {_motion_plan(motion, output, target, values, config)}")
    mover = next((r for r in decision.rules if r.original != "keep"), None)
    rebuilt = _rebuildable(seen.facts.format, decision.rules)
    extracts = any(o.motion == "extract" for r in decision.rules for o in r.outputs)
    if mover is not None and motion is not None and motion.problem is not None and extracts:
        print("the original stays where it is: its motion video is asked for but cannot be extracted")
    elif mover is not None and not rebuilt:
        print(
            "the original stays where it is: no jxl output rebuilds this JPEG (each is written from pixels)"
        )
    elif mover is None:
        print("the original stays where it is")
    elif mover.original == "delete":
        print("the original is deleted once every output is written and verified")
    else:
        assert mover.original_path is not None
        values = template_values(job, mover, c, digest, paired=paired)
        values["seq"] = "<next>"
        dest = output_path(mover.original_path, config.output_root, values)
        print(f"the original moves to {dest} once every output is written and verified")


def _motion_plan(
    motion: Motion, output: Output, target: str, values: dict[str, Value], config: Config
) -> str:
    """What an output does with a motion photo's video, as the run would."""
    if output.motion != "extract":
        return (
            "kept in the copy" if output.format == "copy" else 'dropped (motion = "extract" writes it beside)'
        )
    if motion.problem is not None:
        return "asked for, but it cannot be extracted (the original is kept)"
    if output.motion_path is not None:
        where = str(output_path(output.motion_path, config.output_root, values))
    else:
        where = str(Path(target).with_suffix(motion.suffix))
    stripped = output.format != "copy" and output.gps == "strip"
    how = "without its location (not byte for byte)" if stripped else "byte for byte"
    return f"extracted to {where}, {how}"


def _rebuildable(source_format: str | None, rules: tuple[Rule, ...]) -> bool:
    """Whether the original may go as the rules say: a JPEG with jxl outputs only if one transcodes it
    (run/job.py decides the same after the outputs are written)."""
    jxls = [o for r in rules for o in r.outputs if o.format == "jxl"]
    return source_format != "jpeg" or not jxls or any(o.transcode_blocker() is None for o in jxls)


def _jpeg_bytes(source_format: str | None, output: Output) -> str | None:
    """What a jxl output of a JPEG (or a jpeg output of a JPEG XL) holds: the JPEG's own bytes, or pixels."""
    if (source_format, output.format) not in (("jpeg", "jxl"), ("jxl", "jpeg")):
        return None
    why = output.transcode_blocker()
    if source_format == "jpeg":
        if why is None:
            return (
                "the JPEG transcoded: its own coefficients, EXIF and XMP in plain boxes, rebuilds it exactly"
            )
        return f"from the JPEG's pixels, not rebuildable ({why})"
    if why is None:
        return "the JPEG this JPEG XL holds, byte for byte, if it holds one (else encoded from its pixels)"
    return None


def _print_group(
    file: Path, seen: Inspection, rules: tuple[Rule, ...], *, root: Path, every: tuple[Rule, ...]
) -> tuple[bool, bool]:
    """The file's group under a rule with [rule.companions]: (whether the file is a companion itself,
    whether its group holds a twin or a Live Photo video)."""
    spec = spec_of(rules)
    if spec is None:
        return False, False
    listing = [p.name for p in file.parent.iterdir()]
    claims = claimed(file.parent, pairing.stem(file.name), listing)
    holder = pairing.holder(
        file.name, listing, spec, claims, taken=lambda name: may_take(file.parent / name, root, every)
    )
    if holder is not None:
        print(f"a companion of {holder}: never processed on its own; it goes where {holder} goes")
        return True, False
    unheld = pairing.holder(file.name, listing, spec, claims)
    if unheld is not None:
        print(f"beside {unheld}, which no rule takes: {file.name} is no companion and goes on its own")
    members = pairing.group_of(file.name, listing, spec, claims)
    print(f"group {pairing.stem(file.name)!r}: {file.name} is the primary" + ("" if members else ", alone"))
    why = {
        pairing.SIDECAR: "its name matches a `files` pattern",
        pairing.TWIN: f"RAW+JPEG twin (raw_jpeg = group, primary = {spec.primary})",
    }
    paired = False
    for m in members:
        if m.role == pairing.VIDEO:
            joined, reason = live_photo(seen.data or b"", seen.facts.content, file.parent / m.name)
            said = f"Live Photo video: {reason}" if joined else f"not joined: {reason}"
            paired = paired or joined
        else:
            said = why[m.role]
            paired = paired or m.role == pairing.TWIN
        print(f"  {m.name} ({m.role}, keeps its suffix {m.suffix!r}): {said}")
    return False, paired


def _raw_source(seen: Inspection, output: Output) -> tuple[str, str]:
    from hotfolder.render.develop import choose  # noqa: PLC0415 - only a RAW needs the develop stage

    assert seen.raw is not None
    try:
        kind, why = choose(seen.raw, output)
    except HotfolderError as exc:
        return "nothing", f"the file would be quarantined: {exc}"
    return ("embedded preview" if kind == "preview" else "LibRaw render"), why
