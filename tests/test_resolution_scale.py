"""Print resolution follows the stored size (issue 29): a JPEG decoded at a reduced scale for a small
output says the resolution scaled from the size the file stores, as a full decode would."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from conftest import output, run_outputs


@pytest.mark.parametrize(("edge", "dpi"), [(1000, 72 * 1000 / 4080), (2048, 72 * 2048 / 4080)])
def test_a_reduced_scale_decode_keeps_the_resolution_of_the_stored_size(
    tmp_path: Path, edge: int, dpi: float
) -> None:
    """A 4080x3060 JPEG at 72 dpi to a max_edge output: 72 x edge / 4080 dpi (17.65 at 1000 px, which a
    decode at 1/2 scale made 35.3 and the issue's photo 71)."""
    src = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[271] = "Test"  # an EXIF block with the resolution, kept by the output as an exact rational
    exif[282], exif[283], exif[296] = IFDRational(72, 1), IFDRational(72, 1), 2
    Image.radial_gradient("L").resize((4080, 3060)).convert("RGB").save(
        src, dpi=(72, 72), quality=80, exif=exif
    )
    done = run_outputs(tmp_path, src, output(format="jpeg", max_edge=edge, path="{stem}.jpg"))
    assert done.status == "done", done.error
    with Image.open(tmp_path / "out" / "photo.jpg") as im:
        assert im.width == edge
        jfif = im.info["dpi"]
        exif = im.getexif()
    assert float(exif[282]) == pytest.approx(dpi, abs=0.01) and float(exif[283]) == pytest.approx(
        dpi, abs=0.01
    )
    assert jfif == (round(dpi), round(dpi))  # JFIF holds whole numbers
