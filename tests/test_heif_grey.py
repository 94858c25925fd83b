"""16-bit grey to HEIF (issue 29): an I;16 scan is written at 12 bits (10 when asked, 8 only when asked),
monochrome, lossless when asked and then equal sample for sample at the kept depth; read back by
pillow-heif at its own depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from conftest import output, run_outputs


def _scan(path: Path) -> np.ndarray:
    """A 16-bit grey scan: every sample different from its neighbours, the full 16-bit range used."""
    samples = (np.add.outer(np.arange(300), np.arange(400)) * 137 % 65536).astype(np.uint16)
    Image.frombytes("I;16", (400, 300), samples.tobytes()).save(path)
    return samples


@pytest.mark.parametrize(
    ("options", "depth"),
    [({}, 12), ({"bit_depth": 10}, 10), ({"lossless": True}, 12), ({"lossless": True, "bit_depth": 10}, 10)],
)
def test_a_16_bit_grey_scan_is_a_10_or_12_bit_monochrome_heif(
    tmp_path: Path, options: dict[str, object], depth: int
) -> None:
    """Written at `depth` bits, one channel; lossless: every sample equals the source's at that depth."""
    src = tmp_path / "scan.png"
    samples = _scan(src)
    done = run_outputs(tmp_path, src, output(format="heif", path="{stem}.heic", **options))
    assert done.status == "done", done.error
    reduced = [f for n, f in done.notes if n == "precision.reduced"]
    assert reduced and f"stored at {depth} bits" in str(reduced[0]["error"])
    heif = pillow_heif.open_heif(tmp_path / "out" / "scan.heic", convert_hdr_to_8bit=False)
    assert heif.info["bit_depth"] == depth and heif.mode == "I;16"  # one channel, not RGB
    got = np.asarray(heif[0])
    assert got.shape == (300, 400)
    if options.get("lossless"):
        assert np.array_equal(got >> (16 - depth), samples >> (16 - depth))
    else:
        err = np.abs((got >> (16 - depth)).astype(int) - (samples >> (16 - depth)).astype(int))
        assert err.mean() < 2 ** (depth - 8), err.mean()  # lossy, but at its depth, not 8 bits


def test_8_bits_only_when_asked(tmp_path: Path) -> None:
    src = tmp_path / "scan.png"
    _scan(src)
    done = run_outputs(tmp_path, src, output(format="heif", path="{stem}.heic", bit_depth=8))
    assert done.status == "done", done.error
    heif = pillow_heif.open_heif(tmp_path / "out" / "scan.heic", convert_hdr_to_8bit=False)
    assert heif.info["bit_depth"] == 8
