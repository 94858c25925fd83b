"""Web copies that prove they are private: no GPS or place, no serial numbers, no owner, no MakerNote,
judged by exiftool (which reads MakerNotes); and a leak that survived fails verification."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import piexif
import pytest
from PIL import Image

from conftest import corpus, exiftool, output, run_outputs, tool
from hotfolder.errors import EncodeError
from hotfolder.render.metadata import Metadata
from hotfolder.render.transform import Rendered
from hotfolder.render.verify import verify

PRIVATE = ("SerialNumber", "LensSerialNumber", "InternalSerialNumber", "OwnerName", "CameraOwnerName")
KEPT = ("Make", "Model", "ExposureTime", "DateTimeOriginal", "LensModel")


def _names(meta: dict[str, object]) -> set[str]:
    return {k.split(":")[-1] for k in meta}


def _private_in(meta: dict[str, object]) -> list[str]:
    found = [k for k in meta if k.split(":")[-1] in PRIVATE or k.startswith("MakerNotes:")]
    found += [k for k in meta if "GPS" in k.split(":")[-1] and "GPSVersion" not in k]
    found += [k for k in meta if k.split(":")[-1] in ("City", "Sub-location", "Province-State", "Country")]
    return found


def _main_exif(key: str) -> bool:
    """IFD0 and the Exif IFD (the thumbnail's IFD1 goes with a resize)."""
    return key.startswith("EXIF:") and ":IFD1:" not in key


@pytest.mark.parametrize(
    "name",
    ["issue_649.avif", "canon_eos_7d.jpg", "sony_dsc-hx5v_2.jpg", "apple_iphone_4.jpg", "dscn0010.jpg"],
)
@pytest.mark.parametrize("fmt", ["jpeg", "webp", "jxl"])
def test_a_web_copy_says_nothing_private_and_keeps_what_describes_the_photo(
    tmp_path: Path, name: str, fmt: str
) -> None:
    """The web profile, XMP and IPTC kept on purpose: body and lens serials (EXIF and XMP), the owner's
    name, the MakerNote, GPS and place names are gone as exiftool reads the file; make, model, exposure,
    lens model and capture time stay as the source has them."""
    src = corpus(name)
    ext = {"jpeg": "jpg", "webp": "webp", "jxl": "jxl"}[fmt]
    done = run_outputs(
        tmp_path,
        src,
        output(format=fmt, profile="web", xmp="keep", iptc="keep", max_edge=640, path=f"{{stem}}.{ext}"),
    )
    assert done.status == "done", done.error
    (written,) = done.written
    theirs, ours = exiftool(src), exiftool(written.dst)
    assert not _private_in(ours), _private_in(ours)
    for tag in KEPT:
        said = sorted(str(v) for k, v in theirs.items() if _main_exif(k) and k.endswith(":" + tag))
        if said:
            got = sorted(str(v) for k, v in ours.items() if _main_exif(k) and k.endswith(":" + tag))
            assert got == said, (tag, got, said)


def test_each_switch_keeps_what_it_names_and_the_archive_keeps_everything(tmp_path: Path) -> None:
    """serials = "keep", owner = "keep", makernote = "keep" on a web output bring each back; the
    archival profile keeps them all, as before."""
    src = corpus("issue_649.avif")
    kept = run_outputs(
        tmp_path, src, output(format="jpeg", serials="keep", makernote="keep", path="{stem}.kept.jpg")
    )
    archival = run_outputs(tmp_path, src, output(format="png"))
    for done in (kept, archival):
        assert done.status == "done", done.error
        (written,) = done.written
        meta = exiftool(written.dst)
        assert {"SerialNumber", "LensSerialNumber"} <= _names(meta), sorted(_names(meta))
        assert any(k.startswith("MakerNotes:") for k in meta)
    owner = run_outputs(
        tmp_path,
        corpus("canon_eos_7d.jpg"),
        output(format="webp", xmp="keep", owner="keep", path="{stem}.webp"),
    )
    (written,) = owner.written
    meta = exiftool(written.dst)
    assert "OwnerName" in _names(meta) and "SerialNumber" not in _names(meta)


def test_iptc_place_names_go_with_gps(tmp_path: Path) -> None:
    """IPTC city, sublocation, state and country (written by exiftool into a photo) leave a web JPEG that
    keeps IPTC; its caption stays; the archive keeps the place."""
    exiftool_bin = tool("exiftool", "libimage-exiftool-perl")
    src = tmp_path / "placed.jpg"
    shutil.copy(corpus("canon_eos_7d.jpg"), src)
    subprocess.run(
        [exiftool_bin, "-q", "-overwrite_original", "-IPTC:City=Dresden", "-IPTC:Sub-location=Altstadt",
         "-IPTC:Country-PrimaryLocationName=Germany", "-IPTC:Caption-Abstract=A bridge", str(src)],
        check=True,
    )  # fmt: skip
    web = run_outputs(tmp_path, src, output(format="jpeg", iptc="keep", path="{stem}.web.jpg"))
    archival = run_outputs(tmp_path, src, output(format="jpeg", profile="archival", path="{stem}.arch.jpg"))
    (w,), (a,) = web.written, archival.written
    said, kept = exiftool(w.dst), exiftool(a.dst)
    assert "City" not in _names(said) and "Sub-location" not in _names(said), sorted(_names(said))
    assert "Caption-Abstract" in _names(said)
    assert {"City", "Sub-location"} <= _names(kept)


def _jpeg_with(exif: bytes) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 20, 30)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_a_serial_or_gps_that_survived_fails_verification() -> None:
    """The check reads the written file with Pillow's own EXIF parser and scans its XMP: a body serial
    number, a GPS IFD or an XMP location left in a web output is an EncodeError (quarantine), never a
    silent leak; the same file passes where the options keep them."""
    rendered = Rendered(views=[Image.new("RGB", (32, 24))], meta=Metadata())
    web = output(format="jpeg", path="{stem}.jpg")
    serial = _jpeg_with(piexif.dump({"Exif": {piexif.ExifIFD.BodySerialNumber: b"123063022888"}}))
    with pytest.raises(EncodeError, match="BodySerialNumber"):
        verify(serial, rendered, web)
    gps = _jpeg_with(piexif.dump({"GPS": {piexif.GPSIFD.GPSLatitude: ((51, 1), (3, 1), (0, 1))}}))
    with pytest.raises(EncodeError, match="EXIF GPS"):
        verify(gps, rendered, web)
    verify(serial, rendered, output(format="jpeg", serials="keep", path="{stem}.jpg"))
    verify(gps, rendered, output(format="jpeg", profile="archival", path="{stem}.jpg"))
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:City="Dresden"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    buf = io.BytesIO()
    Image.new("RGB", (32, 24)).save(buf, "WEBP", xmp=xmp)
    with pytest.raises(EncodeError, match="XMP place names"):
        verify(buf.getvalue(), rendered, output(format="webp", xmp="keep", path="{stem}.webp"))


def test_an_iptc_place_that_survived_fails_verification() -> None:
    """IPTC City in a web JPEG that keeps IPTC (Photoshop's APP13) is caught by the check's own scan."""
    records = b"\x1c\x02\x5a\x00\x07Dresden"  # 2:90 City
    resource = b"8BIM\x04\x04\x00\x00" + len(records).to_bytes(4, "big") + records + b"\x00"
    body = b"Photoshop 3.0\x00" + resource
    app13 = b"\xff\xed" + (len(body) + 2).to_bytes(2, "big") + body
    plain = _jpeg_with(piexif.dump({}))
    placed = plain[:2] + app13 + plain[2:]
    rendered = Rendered(views=[Image.new("RGB", (32, 24))], meta=Metadata())
    with pytest.raises(EncodeError, match="IPTC place names"):
        verify(placed, rendered, output(format="jpeg", iptc="keep", path="{stem}.jpg"))
    verify(placed, rendered, output(format="jpeg", iptc="keep", gps="keep", path="{stem}.jpg"))
