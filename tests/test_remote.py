"""A job as a cluster worker runs it: paths through path_map and back, the worker's file identities in
the daemon's terms, another version refused, and an abandoned job leaving nothing (real files, real
encoders; the dask parts are in test_cluster.py)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path, PurePosixPath

from conftest import corpus, output
from hotfolder.core.identity import FileIdentity
from hotfolder.core.status import Result
from hotfolder.decide.job import Job
from hotfolder.run import remote
from hotfolder.run.job import run_job
from hotfolder.settings.rules import Rule


def _job(tmp_path: Path, root: Path) -> Job:
    real = tmp_path / "storage"
    (real / "in").mkdir(parents=True)
    shutil.copy(corpus("hopper_gray.jpg"), real / "in" / "a.jpg")
    seen = FileIdentity.at(real / "in" / "a.jpg")
    assert seen is not None
    rule = Rule(name="t", file=None, outputs=(output(format="png"), output(format="jpeg", path="{stem}.jpg")))
    # The daemon's own view of the share is `root`; its device number is not the worker's.
    return Job(
        src=root / "in" / "a.jpg",
        relpath="a.jpg",
        rules=(rule,),
        output_root=root / "out",
        seen=dataclasses.replace(seen, dev=seen.dev + 1),
    )


def test_paths_and_identities_come_back_in_the_daemons_terms(tmp_path: Path) -> None:
    root = Path("/srv/hotfolder-daemon-view")
    job = _job(tmp_path, root)
    pairs = ((PurePosixPath(root), PurePosixPath(tmp_path / "storage")),)
    outcome = remote.run_remote(job, remote.Context(key="k", tz="UTC", pairs=pairs))
    assert outcome.result is Result.STAGED, outcome.error
    assert outcome.src == job.src and outcome.identity == job.seen  # the daemon's device number
    for staged in outcome.outputs:
        assert staged.final.is_relative_to(root / "out") and staged.temp.is_relative_to(root / "out")
        real = tmp_path / "storage" / staged.temp.relative_to(root)
        assert real.is_file()  # written by the "worker" where it sees the share


def test_a_worker_with_other_versions_runs_nothing(tmp_path: Path) -> None:
    job = _job(tmp_path, tmp_path / "storage")
    job = dataclasses.replace(job, seen=FileIdentity.at(job.src))
    context = remote.Context(key="k", tz=None, expect=(("Pillow", "0.0-not-this"),))
    outcome = remote.run_remote(job, context)
    assert outcome.result is Result.RETRY and "Pillow" in (outcome.error or "")
    assert not (tmp_path / "storage" / "out").exists()


def test_an_abandoned_job_stops_and_leaves_no_temp_file(tmp_path: Path) -> None:
    job = _job(tmp_path, tmp_path / "storage")
    job = dataclasses.replace(job, seen=FileIdentity.at(job.src))
    asked = []

    def wanted() -> bool:
        asked.append(1)
        return len(asked) < 2  # cancelled after the first output

    outcome = run_job(job, wanted=wanted)
    assert outcome.result is Result.BROKEN and "cancelled" in (outcome.error or "")
    assert [p for p in (tmp_path / "storage" / "out").rglob("*") if p.is_file()] == []
