"""Rules users can trust: every match condition, template field, fallback, collision and
original policy, on real files; conflicts caught at load."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from conftest import corpus, output, process_job, run_outputs
from hotfolder.commit.committer import Committer
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.records import Record
from hotfolder.commit.staged import Outcome
from hotfolder.core.template import parse, render
from hotfolder.decide.examine import examine
from hotfolder.decide.facts import content_facts
from hotfolder.decide.job import Job
from hotfolder.decide.match import Facts
from hotfolder.decide.naming import template_values
from hotfolder.errors import ConfigError
from hotfolder.run.job import run_job
from hotfolder.settings.rules import Match, Rule, load_rules
from hotfolder.settings.watches import Watch

RULE = Rule("r", None, outputs=(output(format="png"),))


def facts_for(name: str, **extra: object) -> tuple[bytes, Facts]:
    data = corpus(name).read_bytes()
    return data, Facts(relpath=name, size=len(data), content=content_facts(data, None), **extra)  # type: ignore[arg-type]


def matches(match: Match, name: str, **extra: object) -> tuple[bool, str]:
    data, facts = facts_for(name, **extra)
    decision = examine(data, name, (Rule("r", None, match=match, outputs=RULE.outputs),), facts=facts)
    return bool(decision.rules), decision.verdicts[0].reason


@pytest.mark.parametrize(
    ("match", "name", "expected"),
    [
        pytest.param(Match(watch="cards"), "canon_eos_7d.jpg", True, id="watch_by_name"),
        pytest.param(Match(watch="other"), "canon_eos_7d.jpg", False, id="watch_other"),
        pytest.param(Match(min_bytes=400_000), "canon_eos_7d.jpg", False, id="min_bytes"),
        pytest.param(Match(max_bytes=400_000), "canon_eos_7d.jpg", True, id="max_bytes"),
        pytest.param(Match(min_pixels=540_000), "canon_eos_7d.jpg", True, id="min_pixels_equal"),
        pytest.param(Match(max_pixels=539_999), "canon_eos_7d.jpg", False, id="max_pixels"),
        pytest.param(Match(exif_make=("canon",)), "canon_eos_7d.jpg", True, id="make_case_insensitive"),
        pytest.param(Match(exif_model=("*EOS*",)), "canon_eos_7d.jpg", True, id="model_glob"),
        pytest.param(Match(exif_model=("iPhone*",)), "canon_eos_7d.jpg", False, id="model_other"),
        pytest.param(Match(has_gps=True), "apple_iphone_4.jpg", True, id="has_gps"),
        pytest.param(Match(has_gps=True), "canon_eos_7d.jpg", False, id="no_gps"),
        pytest.param(Match(has_exif=False), "hopper.bmp", True, id="no_exif"),
        pytest.param(Match(has_exif=True), "hopper.bmp", False, id="needs_exif"),
        pytest.param(Match(taken_after=datetime(2010, 12, 12)), "canon_eos_7d.jpg", True, id="taken_after"),
        pytest.param(
            Match(taken_before=datetime(2010, 12, 12)), "canon_eos_7d.jpg", False, id="taken_before"
        ),
    ],
)
def test_match_conditions(match: Match, name: str, expected: bool) -> None:
    """Each condition on real files; a failure names the condition and the value seen."""
    ok, reason = matches(match, name, watch="cards", watch_path="/srv/cards")
    assert ok is expected, reason
    if not expected:
        assert reason != "every condition holds"


def test_failure_reason_shows_the_value_seen() -> None:
    """explain's reasons say what was found, e.g. the model and the pixel count."""
    assert "'Canon EOS 7D'" in matches(Match(exif_model=("iPhone*",)), "canon_eos_7d.jpg")[1]
    assert "600x900 = 540000 pixels" in matches(Match(max_pixels=1), "canon_eos_7d.jpg")[1]


def test_continue_chains_rules_and_first_match_wins_otherwise(tmp_path: Path) -> None:
    """continue = true lets the next matching rule take the file too; without it, the first wins."""
    backup = Rule("backup", None, outputs=(output(format="copy", path="backup/{name}"),), continue_=True)
    web = Rule("web", None, outputs=(output(format="jpeg", path="web/{stem}.jpg", max_edge=100),))
    never = Rule("never", None, outputs=(output(format="png", path="never/{stem}.png"),))
    src = tmp_path / "in" / "c.jpg"
    src.parent.mkdir()
    shutil.copy(corpus("canon_eos_7d.jpg"), src)
    outcome = process_job(
        Job(src=src, relpath="c.jpg", rules=(backup, web, never), output_root=tmp_path / "out")
    )
    assert outcome.status == "done" and outcome.rule == "backup+web"
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")) == [
        "backup/c.jpg",
        "web/c.jpg",
    ]


def test_conflicting_original_policies_are_a_load_error(tmp_path: Path) -> None:
    """A continue chain whose rules want to delete and to move the same original is refused."""
    f = tmp_path / "r.toml"
    f.write_text(
        '[[rule]]\nname = "a"\ncontinue = true\noriginal = "delete"\n'
        '[[rule.output]]\nformat = "png"\npath = "a/{stem}.png"\n'
        '[[rule]]\nname = "b"\noriginal = "move"\noriginal_path = "done/{name}"\n'
        '[[rule.output]]\nformat = "png"\npath = "b/{stem}.png"\n'
    )
    with pytest.raises(ConfigError, match="conflicts"):
        load_rules([f])


def test_every_template_field(tmp_path: Path) -> None:
    """Each field fills from the file, its EXIF, its hash and the rule."""
    data, facts = facts_for("canon_eos_7d.jpg")
    job = Job(
        src=corpus("canon_eos_7d.jpg"),
        relpath="cards/2010/canon_eos_7d.jpg",
        rules=(RULE,),
        output_root=tmp_path,
        watch=Watch(path=tmp_path / "inbox", name="inbox"),
    )
    digest = hashlib.sha256(data).hexdigest()
    values = template_values(job, RULE, facts.content, digest)
    t = parse(
        "{watch}/{rule}/{reldir}/{relpath}/{stem}.{ext}/{name}/{make}/{model}/{camera}/"
        "{width}x{height}/{hash8}/{taken:%Y/%m/%d}/{taken:%H%M%S_%f}"
    )
    assert render(t, values) == (
        "inbox/r/cards/2010/cards/2010/canon_eos_7d/canon_eos_7d.jpg/canon_eos_7d.jpg/Canon/Canon EOS 7D/"
        f"Canon EOS 7D/600x900/{digest[:8]}/2010/12/12/124135_00"
    )


def test_fallback_chain_reaches_the_constant(tmp_path: Path) -> None:
    """{model|make|'unknown'}: a file without EXIF gets the quoted constant."""
    _, facts = facts_for("hopper.bmp")
    job = Job(
        src=corpus("hopper.bmp"),
        relpath="hopper.bmp",
        rules=(RULE,),
        output_root=tmp_path,
    )
    assert (
        render(parse("{model|make|'unknown'}/{stem}"), template_values(job, RULE, facts.content))
        == "unknown/hopper"
    )


def test_taken_falls_back_to_the_file_mtime(tmp_path: Path) -> None:
    """No DateTimeOriginal or CreateDate: {taken} is the file's modification time."""
    src = tmp_path / "h.bmp"
    shutil.copy(corpus("hopper.bmp"), src)
    os.utime(src, (datetime(2020, 2, 29, 8, 0).timestamp(),) * 2)
    content = content_facts(src.read_bytes(), src.stat().st_mtime)
    assert content is not None and content.taken == datetime(2020, 2, 29, 8, 0)


def _seq(state: Path, rule: str) -> int:
    ledger = Ledger(state)
    try:
        return ledger.next_seq(rule)
    finally:
        ledger.close()


def test_seq_counts_per_rule_and_survives_restarts(tmp_path: Path) -> None:
    """{seq} comes from the ledger: a new process continues where the last one stopped."""
    assert [_seq(tmp_path, "a"), _seq(tmp_path, "a"), _seq(tmp_path, "b")] == [1, 2, 1]
    with _pool() as pool:
        got = sorted(pool.map(_seq, [tmp_path] * 6, ["a"] * 6))
    assert got == [3, 4, 5, 6, 7, 8]


def test_exif_model_with_path_tricks_stays_under_output_root(tmp_path: Path) -> None:
    """A JPEG whose EXIF Model is '../../etc' writes inside output_root, never above it."""
    src = tmp_path / "evil.jpg"
    ex = Image.Exif()
    ex[0x0110] = "../../etc"
    ex[0x010F] = "/abs\x00olute"
    Image.new("RGB", (16, 16)).save(src, exif=ex.tobytes())
    outcome = run_outputs(tmp_path, src, output(format="png", path="{make}/{model}/{stem}.png"))
    assert outcome.status == "done", outcome.error
    (written,) = outcome.written
    assert written.dst.resolve().is_relative_to((tmp_path / "out").resolve())
    assert written.dst.relative_to(tmp_path / "out").parts == ("_abs_olute", ".._.._etc", "evil.png")


def test_missing_field_without_fallback_quarantines_with_reason(tmp_path: Path) -> None:
    """{model} on a file without EXIF and no fallback: quarantined, the sidecar names the field."""
    outcome = run_outputs(tmp_path, corpus("hopper.bmp"), output(format="png", path="{model}/{stem}.png"))
    assert outcome.status == "quarantined" and "{model}" in (outcome.error or "")
    assert (tmp_path / "quarantine" / "hopper.bmp.json").exists()


def _pool() -> ProcessPoolExecutor:
    """Two worker processes forked from a fork server, as the daemon's are: never a fork of this
    process, whose threads (oxipng's rayon pool once a PNG was written here) would deadlock the child."""
    return ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver"))


def _stage(args: tuple[Path, int, str]) -> Outcome:
    """One worker's job: a distinct source, all aiming at the same output name."""
    root, i, policy = args
    src = root / f"in{i}" / "photo.png"
    rule = Rule("r", None, outputs=(output(format="png", path="same.png", on_conflict=policy),))
    return run_job(Job(src=src, relpath="photo.png", rules=(rule,), output_root=root / "out"))


@pytest.mark.parametrize("policy", ["counter", "skip_identical"])
def test_concurrent_workers_never_share_a_name(tmp_path: Path, policy: str) -> None:
    """Eight different images staged by two worker processes, one target name: the daemon's commit
    gives eight files, none lost, each under a name of its own."""
    for i in range(8):
        (tmp_path / f"in{i}").mkdir()
        Image.new("RGB", (32, 32), (i * 30, 0, 0)).save(tmp_path / f"in{i}" / "photo.png")
    with _pool() as pool:
        staged = list(pool.map(_stage, [(tmp_path, i, policy) for i in range(8)]))
    ledger = Ledger(tmp_path / "state")
    committer = Committer(ledger, output_root=tmp_path / "out")
    names = []
    for i, outcome in enumerate(staged):
        assert outcome.identity is not None
        job = Job(src=outcome.src, relpath="photo.png", rules=(), output_root=tmp_path / "out", token=f"t{i}")
        record = Record(outcome.src, outcome.identity, "done", sha256=outcome.sha256)
        names.append(committer.commit(job, outcome, record).written[0].dst.name)
    ledger.close()
    assert sorted(names) == sorted(["same.png", *(f"same-{n}.png" for n in range(1, 8))])
    colours = {Image.open(p).getpixel((0, 0)) for p in (tmp_path / "out").iterdir()}
    assert len(colours) == 8


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("skip_identical", "identical"),
        ("skip", "skipped"),
        ("overwrite", "overwritten"),
        ("counter", "written"),
    ],
)
def test_conflict_policy_on_a_rerun(tmp_path: Path, policy: str, expected: str) -> None:
    """Running the same input twice: what each policy does with the name already taken."""
    out = output(format="png", on_conflict=policy)
    run_outputs(tmp_path, corpus("hopper.bmp"), out)
    second = run_outputs(tmp_path, corpus("hopper.bmp"), out)
    assert second.written[0].action == expected
    assert len(list((tmp_path / "out").iterdir())) == (2 if policy == "counter" else 1)


def test_counter_format(tmp_path: Path) -> None:
    """counter_format shapes the numbered names."""
    out = output(format="png", on_conflict="counter", counter_format="_{n:03d}")
    run_outputs(tmp_path, corpus("hopper.bmp"), out)
    assert run_outputs(tmp_path, corpus("hopper.bmp"), out).written[0].dst.name == "hopper_001.png"


@pytest.mark.parametrize("policy", ["keep", "delete", "move"])
def test_original_policy(tmp_path: Path, policy: str) -> None:
    """keep leaves it, delete removes it, move puts it under output_root: all after the outputs."""
    src = tmp_path / "in" / "h.bmp"
    src.parent.mkdir()
    shutil.copy(corpus("hopper.bmp"), src)
    extra = {"original_path": parse("done/{name}")} if policy == "move" else {}
    rule = Rule("r", None, outputs=(output(format="png"),), original=policy, **extra)  # type: ignore[arg-type]
    outcome = process_job(Job(src=src, relpath="h.bmp", rules=(rule,), output_root=tmp_path / "out"))
    assert outcome.status == "done"
    assert src.exists() is (policy == "keep")
    assert (tmp_path / "out" / "done" / "h.bmp").exists() is (policy == "move")
    assert (tmp_path / "out" / "h.png").exists()


def test_original_is_never_deleted_after_a_partial_success(tmp_path: Path) -> None:
    """One output fails: nothing is committed and the original is quarantined, not deleted."""
    src = tmp_path / "in" / "h.bmp"
    src.parent.mkdir()
    shutil.copy(corpus("hopper.bmp"), src)
    rule = Rule(
        "r",
        None,
        original="delete",
        outputs=(output(format="png"), output(format="png", path="{model}/{stem}.png")),
    )
    outcome = process_job(Job(src=src, relpath="h.bmp", rules=(rule,), output_root=tmp_path / "out"))
    assert outcome.status == "quarantined"
    assert (tmp_path / "quarantine" / "h.bmp").read_bytes() == corpus("hopper.bmp").read_bytes()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))


def test_outputs_get_source_mtime_and_mode(tmp_path: Path) -> None:
    """Outputs carry the source's mtime and the configured file mode."""
    src = tmp_path / "in" / "h.bmp"
    src.parent.mkdir()
    shutil.copy(corpus("hopper.bmp"), src)
    os.utime(src, (1_500_000_000, 1_500_000_000))
    outcome = process_job(
        Job(src=src, relpath="h.bmp", rules=(RULE,), output_root=tmp_path / "out", file_mode=0o640)
    )
    st = outcome.written[0].dst.stat()
    assert int(st.st_mtime) == 1_500_000_000 and (st.st_mode & 0o777) == 0o640


def test_burst_shots_from_one_second_get_distinct_names(tmp_path: Path) -> None:
    """Same DateTimeOriginal, different SubSecTimeOriginal: {taken:...%f} keeps them apart, stably."""
    out = output(format="jpeg", path="{taken:%Y%m%d-%H%M%S_%f}.jpg", on_conflict="skip")
    names = []
    for i, subsec in enumerate(["10", "45", "80"]):
        ex = Image.Exif()
        ex.get_ifd(0x8769).update({0x9003: "2024:05:01 10:00:00", 0x9291: subsec})
        src = tmp_path / f"burst{i}.jpg"
        Image.new("RGB", (16, 16), (i * 80, 0, 0)).save(src, exif=ex.tobytes())
        names.append(run_outputs(tmp_path, src, out).written[0].dst.name)
    assert names == ["20240501-100000_10.jpg", "20240501-100000_45.jpg", "20240501-100000_80.jpg"]
