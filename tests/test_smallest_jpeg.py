"""`optimize = "max"` (issue 31): mozjpeg's smallest JPEG through libvips, carrying hotfolder's own
metadata, verified like every output, and refused where it cannot do what it says."""

from __future__ import annotations

import io
from pathlib import Path

import piexif
import pytest
from PIL import Image, ImageCms

from conftest import exiftool, output, run_outputs
from hotfolder.errors import ConfigError
from hotfolder.settings.rules import load_rules

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"/></rdf:RDF></x:xmpmeta>'
)


def photo(tmp_path: Path) -> Path:
    """A 1600x1200 JPEG with detail, camera EXIF, an XMP packet and an ICC profile."""
    size = (1600, 1200)
    noise = Image.effect_noise(size, 40)
    grad = Image.linear_gradient("L").resize(size)
    im = Image.merge("RGB", (grad, noise, grad.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    exif = piexif.dump(
        {
            "0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Model: b"EOS R6"},
            "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2026:06:01 10:00:00"},
        }
    )
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # kept as bytes by archival
    src = tmp_path / "photo.jpg"
    im.save(src, quality=95, exif=exif, xmp=XMP, icc_profile=icc)
    return src


def test_the_smallest_jpeg_keeps_every_segment_and_is_smaller(tmp_path: Path) -> None:
    src = photo(tmp_path)
    done = run_outputs(
        tmp_path,
        src,
        output(format="jpeg", profile="archival", quality=85, optimize=True, path="plain/{stem}.jpg"),
        output(format="jpeg", profile="archival", quality=85, optimize="max", path="max/{stem}.jpg"),
    )
    assert done.status == "done", done.error
    plain, smallest = (w.dst for w in done.written)
    assert smallest.stat().st_size < 0.97 * plain.stat().st_size, (
        smallest.stat().st_size,
        plain.stat().st_size,
    )
    with Image.open(src) as a, Image.open(smallest) as b:
        assert b.info.get("progressive") or b.info.get("progression")
        assert b.info["icc_profile"] == a.info["icc_profile"]
        assert b.getexif()[0x010F] == "Canon"
        # No resolution claimed that the source never had: JFIF says aspect only, as Pillow writes it.
        assert (b.info["jfif_unit"], b.info["jfif_density"]) == (0, (1, 1))
        assert b.size == a.size
    tags = exiftool(smallest)
    assert tags["EXIF:IFD0:Model"] == "EOS R6"
    assert tags["EXIF:ExifIFD:DateTimeOriginal"] == "2026:06:01 10:00:00"
    assert tags["XMP:XMP-xmp:Rating"] == 4


def test_the_smallest_jpeg_says_a_resolution_when_asked(tmp_path: Path) -> None:
    done = run_outputs(
        tmp_path, photo(tmp_path), output(format="jpeg", optimize="max", dpi=300, max_edge=800)
    )
    assert done.status == "done", done.error
    with Image.open(done.written[0].dst) as im:
        assert im.size == (800, 600)
        assert (im.info["jfif_unit"], im.info["jfif_density"]) == (1, (300, 300))


@pytest.mark.parametrize(
    ("options", "key", "says"),
    [
        ('format = "png"\noptimize = "max"', "output.optimize", '"max" is for jpeg'),
        ('format = "jpeg"\noptimize = "max"\nsubsampling = "4:2:2"', "output.subsampling", "no 4:2:2"),
        ('format = "jpeg"\noptimize = "max"\ngain_map = "keep"', "output.optimize", "libultrahdr"),
        ('format = "jpeg"\noptimize = 1', "output.optimize", 'true, false or "max"'),
        ('format = "jpeg"\noptimize = "most"', "output.optimize", 'true, false or "max"'),
    ],
)
def test_what_the_smallest_jpeg_cannot_do_is_refused(
    tmp_path: Path, options: str, key: str, says: str
) -> None:
    rules = tmp_path / "r.toml"
    ext = "png" if "png" in options else "jpg"
    rules.write_text(f'[[rule]]\nname = "pub"\n[[rule.output]]\n{options}\npath = "{{stem}}.{ext}"\n')
    with pytest.raises(ConfigError) as info:
        load_rules([rules])
    (problem,) = map(str, info.value.problems)
    assert key in problem and says in problem and "r.toml" in problem, problem


def test_a_grey_photo_stays_grey(tmp_path: Path) -> None:
    src = tmp_path / "grey.jpg"
    buf = io.BytesIO()
    Image.effect_noise((640, 480), 50).save(buf, "JPEG", quality=90)
    src.write_bytes(buf.getvalue())
    done = run_outputs(tmp_path, src, output(format="jpeg", optimize="max"))
    assert done.status == "done", done.error
    with Image.open(done.written[0].dst) as im:
        assert im.mode == "L" and im.size == (640, 480)
