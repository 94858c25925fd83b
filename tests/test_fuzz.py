"""Fuzzing the whole pipeline: mutated corpus files (Hypothesis picks the seed file and the byte
mutations) go through `hotfolder process` in real worker processes. The daemon must never crash:
every input ends done, quarantined with a sidecar, or left alone as not an image.

Bounded: FUZZ_BATCHES batches (default 20) of 24 inputs each; `make fuzz` runs a longer campaign.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from conftest import ROOT, corpus, write_config

pytestmark = pytest.mark.slow

SEEDS = [
    "pentax_k10d.jpg",
    "hopper.bmp",
    "hopper_gray.jpg",
    "apng_delay.png",
    "p_trns_single.png",
    "dotnet-256x256-alpha-palette.png",
    "issue_473_java.webp",
    "tiff_16bit_rgb.tiff",
    "pil_sample_cmyk.jpg",
    "hopper_lzw.tif",
    "xmp_tags_orientation.avif",
    "samplefilehub_heif_content.jpg",
    "rgba_16_128x128.png",
    "fujifilm_finepixs1pro_1.jpg",
    "bluesquare.jpg",
    "32-lens_data.jpeg",
    "iss634.gif",
]
BATCH = 24
BATCHES = int(os.environ.get("FUZZ_BATCHES", "20"))
RULES = (
    '[[rule]]\nname = "fuzz"\n'
    '[[rule.output]]\nformat = "png"\npath = "png/{relpath}.png"\n'
    '[[rule.output]]\nformat = "jpeg"\nprofile = "web"\npath = "web/{relpath}.jpg"\n'
    '[[rule.output]]\nformat = "tiff"\npath = "tif/{relpath}.tif"\n'
)

mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),  # xor one byte
    st.tuples(st.just("fill"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),  # overwrite a run
    st.tuples(st.just("cut"), st.floats(0, 1), st.none()),  # truncate
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=256)),
    st.tuples(
        st.just("big"), st.floats(0, 0.2), st.sampled_from([b"\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00"])
    ),
)
inputs = st.lists(
    st.tuples(st.sampled_from(SEEDS), st.lists(mutation, min_size=1, max_size=6)),
    min_size=BATCH,
    max_size=BATCH,
)


Batch = list[tuple[str, list[tuple[str, float, object]]]]


def mutate(data: bytes, ops: list[tuple[str, float, object]]) -> bytes:
    buf = bytearray(data)
    for kind, where, arg in ops:
        at = min(int(where * len(buf)), max(len(buf) - 1, 0))
        if kind == "flip" and buf:
            buf[at] ^= int(arg)  # type: ignore[call-overload]
        elif kind in ("fill", "big"):
            assert isinstance(arg, bytes)
            buf[at : at + len(arg)] = arg  # header fields (sizes, counts) hit with extreme values
        elif kind == "cut":
            del buf[at:]
        elif kind == "insert":
            assert isinstance(arg, bytes)
            buf[at:at] = arg
    return bytes(buf)


@seed(int(os.environ.get("FUZZ_SEED") or 20261121))  # the same campaign in CI; `make fuzz` varies it
@settings(max_examples=BATCHES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(batch=inputs)
def _one_batch(tmp_path_factory: pytest.TempPathFactory, tried: dict[str, int], batch: Batch) -> None:
    """One `hotfolder process` over BATCH mutated inputs: no crash, every input ends somewhere."""
    work = tmp_path_factory.mktemp("fuzz")
    write_config(work, RULES)
    inbox = work / "inbox"
    inbox.mkdir()
    for i, (name, ops) in enumerate(batch):
        (inbox / f"{i:02d}-{name}").write_bytes(mutate(corpus(name).read_bytes(), ops))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    result = subprocess.run(
        [sys.executable, "-m", "hotfolder", "process", "inbox"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    counts = dict(part.rsplit(" ", 1) for part in result.stderr.strip().splitlines()[-1].split(", "))
    assert counts["failed"] == "0", result.stderr[-3000:]
    ended = sum(int(counts[k]) for k in ("done", "quarantined", "unmatched", "duplicate", "empty"))
    assert ended == BATCH, counts
    for sidecar in (work / "quarantine").glob("*.json"):
        note = json.loads(sidecar.read_text())
        assert note["error"] and (work / "quarantine" / sidecar.name[:-5]).exists()
    assert not [p for p in work.rglob("*") if ".hf-" in p.name], "temp files left behind"
    left = {p.name for p in inbox.iterdir()}
    assert len(left) == sum(int(counts[k]) for k in ("done", "unmatched", "duplicate", "empty"))
    for key in ("done", "quarantined", "unmatched", "duplicate", "empty"):
        tried[key] = tried.get(key, 0) + int(counts[key])


def test_mutated_inputs_never_crash_the_daemon(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The whole campaign in one test (so it does not depend on another test's state), and its size
    printed for the record (pytest -s): how many mutated inputs went through the full pipeline."""
    tried: dict[str, int] = {}
    _one_batch(tmp_path_factory, tried)
    total = sum(tried.values())
    seed_used = os.environ.get("FUZZ_SEED") or 20261121
    print(f"fuzz seed {seed_used}: {total} mutated inputs, full pipeline, 0 daemon crashes: {tried}")
    assert total == BATCH * BATCHES
