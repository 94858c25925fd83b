"""The intent's plan (issue 30): a typed, versioned record, read back from ledgers written by the
previous release (unversioned), and a damaged one reported as a damaged ledger, never a KeyError."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

import pytest

from conftest import DaemonProcess, write_config
from hotfolder.commit.ledger import Ledger
from hotfolder.commit.plan import PLAN_VERSION, Plan, PlanError
from hotfolder.commit.records import Record
from hotfolder.core.identity import FileIdentity
from hotfolder.errors import LedgerCorruptError
from test_companions import GROUP_RULES, _camera_folder

# An open intent's plan as the previous release wrote it: captured from its ledger after a kill -9
# between two companions of a RAW moved to the archive (HOTFOLDER_TEST_KILL_AT=between-companions:1).
PREVIOUS_RELEASE = {
    "token": "1ebf12c1",
    "read_ns": 1796648295512187604,
    "outputs": [
        {
            "temp": "/tmp/capt/outbox/web/.IMG_0001.jpg.hf-1ebf12c1d26800.tmp",
            "final": "/tmp/capt/outbox/web/IMG_0001.jpg",
            "action": "written",
            "format": "jpeg",
            "rule": "camera",
            "size": 9651,
            "sha256": "1d40a69df9a39bfd4fbe135065e4aef5591aa77f4a56fdcaf6bf73a0dd9dc542",
            "ms": 15.9,
            "policy": "skip_identical",
            "counter_format": "-{n}",
        }
    ],
    "disposal": {"policy": "move", "dest": "/tmp/capt/outbox/archive/IMG_0001.dng", "staged": None},
    "companions": [
        {
            "src": "/tmp/capt/inbox/IMG_0001.XMP",
            "identity": {"dev": 65024, "ino": 2442263, "size": 12984, "mtime_ns": 1796648294245785215},
            "sha256": "9eabd7722e9a43a1d5e7e6c82b32034f21e32309e86561224136039367f79087",
            "read_ns": 1796648295527630812,
            "role": "sidecar",
            "suffix": ".XMP",
            "dest": "/tmp/capt/outbox/archive/IMG_0001.XMP",
        }
    ],
}


def test_a_plan_of_the_previous_release_is_read_and_written_back_the_same() -> None:
    plan = Plan.from_json(PREVIOUS_RELEASE)
    (out,) = plan.outputs
    assert out.final == Path("/tmp/capt/outbox/web/IMG_0001.jpg") and out.size == 9651 and out.ms == 15.9
    assert (
        plan.disposal.dest == Path("/tmp/capt/outbox/archive/IMG_0001.dng") and plan.disposal.staged is None
    )
    (companion,) = plan.companions
    assert companion.identity == FileIdentity(65024, 2442263, 12984, 1796648294245785215)
    written = plan.to_json()
    assert written.pop("version") == PLAN_VERSION
    assert written == PREVIOUS_RELEASE  # the same keys and values: the previous release reads ours too
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def _damaged(change: str) -> dict[str, object]:
    plan = copy.deepcopy(PREVIOUS_RELEASE)
    outputs = plan["outputs"]
    assert isinstance(outputs, list)
    if change == "no token":
        del plan["token"]
    elif change == "size as text":
        outputs[0]["size"] = "9651"
    elif change == "outputs not a list":
        plan["outputs"] = {"0": outputs[0]}
    elif change == "a newer release":
        plan["version"] = PLAN_VERSION + 1
    elif change == "identity without ino":
        companions = plan["companions"]
        assert isinstance(companions, list)
        del companions[0]["identity"]["ino"]
    return plan


@pytest.mark.parametrize(
    "change", ["no token", "size as text", "outputs not a list", "a newer release", "identity without ino"]
)
def test_a_damaged_plan_is_a_damaged_ledger_naming_its_file(tmp_path: Path, change: str) -> None:
    with pytest.raises(PlanError):
        Plan.from_json(_damaged(change))
    ledger = Ledger(tmp_path)
    record = Record(tmp_path / "a.jpg", FileIdentity(1, 2, 3, 4), "done", sha256="0" * 64)
    ledger.open_intent(
        FileIdentity(1, 2, 3, 4), "0" * 64, "1ebf12c1", Plan.from_json(PREVIOUS_RELEASE), record
    )
    ledger.close()
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        db.execute("UPDATE intents SET plan = ?", (json.dumps(_damaged(change)),))
    ledger = Ledger(tmp_path)
    try:
        with pytest.raises(LedgerCorruptError, match=r"ledger\.sqlite3 is damaged .*open intent"):
            ledger.intents()
    finally:
        ledger.close()


def test_an_intent_the_previous_release_left_open_is_finished_at_start(tmp_path: Path) -> None:
    """A kill -9 between two companions; the open intent's plan rewritten as the previous release
    wrote it (no version); the next start finishes it: the group complete in the archive."""
    inbox = tmp_path / "inbox"
    _camera_folder(inbox)
    for name in ("train.jpg", "train.mov", "lonely.xmp"):
        (inbox / name).unlink()
    write_config(tmp_path, GROUP_RULES.format(policy="move", where='original_path = "archive/{stem}.{ext}"'))
    first = DaemonProcess(tmp_path, env={"HOTFOLDER_TEST_KILL_AT": "between-companions:1"})
    first.proc.wait(timeout=120)
    assert first.proc.returncode == -9
    ledger_file = next(tmp_path.glob("*/ledger.sqlite3"))
    with sqlite3.connect(ledger_file) as db:
        ((plan,),) = db.execute("SELECT plan FROM intents").fetchall()
        old = json.loads(plan)
        assert old.pop("version") == PLAN_VERSION
        assert set(old) == set(PREVIOUS_RELEASE)
        db.execute("UPDATE intents SET plan = ?", (json.dumps(old),))
    second = DaemonProcess(tmp_path).started()
    try:
        second.wait_event("companion.moved")
    finally:
        second.proc.terminate()
        second.proc.wait(timeout=30)
    assert not list(inbox.iterdir())
    assert sorted(p.name for p in (tmp_path / "outbox" / "archive").iterdir()) == [
        "IMG_0001.XMP",
        "IMG_0001.dng",
        "IMG_0001.jpg",
    ]
