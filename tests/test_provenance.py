"""Provenance: a renamed derivative traces back to its original (name and SHA-256), as exiftool reads it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from conftest import corpus, exiftool, output, run_outputs, tool


def _said(path: Path) -> dict[str, object]:
    return {k.split(":")[-1]: v for k, v in exiftool(path).items() if k.startswith("XMP:")}


def test_outputs_that_keep_xmp_say_where_they_came_from(tmp_path: Path) -> None:
    """Archival PNG and TIFF (and a web JPEG asked to keep XMP and provenance) carry the original's name,
    a DerivedFrom reference (the source's own DocumentID when it has one) and its SHA-256; a web output by
    default and an archive with provenance = "strip" carry none."""
    src = corpus("canon_eos_7d.jpg")  # has an xmpMM:DocumentID of its own
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    done = run_outputs(
        tmp_path,
        src,
        output(format="png"),
        output(format="tiff", path="{stem}.tif"),
        output(format="jpeg", xmp="keep", provenance="keep", path="{stem}.kept.jpg"),
        output(format="jpeg", path="{stem}.web.jpg"),
        output(format="png", provenance="strip", path="{stem}.none.png"),
        name="IMG_0042.jpg",
    )
    assert done.status == "done", done.error
    png, tif, kept, web, none = (w.dst for w in done.written)
    for path in (png, tif, kept):
        said = _said(path)
        assert said["PreservedFileName"] == "IMG_0042.jpg", (path.name, said)
        assert said["SourceSHA256"] == digest
        assert said["DerivedFromFilePath"] == "IMG_0042.jpg"
        assert str(said["DerivedFromDocumentID"]).startswith("xmp.did:")  # the source's own
    for path in (web, none):
        said = _said(path)
        assert "PreservedFileName" not in said and "SourceSHA256" not in said, (path.name, said)


def test_an_original_name_kept_earlier_is_kept_and_a_source_without_xmp_gets_a_packet(tmp_path: Path) -> None:
    """A source already renamed once keeps the earliest name (PreservedFileName is the original's); a
    PNG without any XMP gets a packet that says its provenance, DerivedFrom by SHA-256."""
    exiftool_bin = tool("exiftool", "libimage-exiftool-perl")
    renamed = tmp_path / "renamed.jpg"
    shutil.copy(corpus("olympus_pen_e-p3.jpg"), renamed)
    subprocess.run(
        [
            exiftool_bin,
            "-q",
            "-overwrite_original",
            "-XMP-xmpMM:PreservedFileName=P1010001.JPG",
            str(renamed),
        ],
        check=True,
    )
    first = (
        run_outputs(tmp_path / "a", renamed, output(format="png"))
        if (tmp_path / "a").mkdir() is None
        else None
    )
    assert first is not None and first.status == "done", first and first.error
    (w,) = first.written
    assert _said(w.dst)["PreservedFileName"] == "P1010001.JPG"
    plain = corpus("hopper.bmp")
    (tmp_path / "b").mkdir()
    second = run_outputs(tmp_path / "b", plain, output(format="png"))
    (w,) = second.written
    said = _said(w.dst)
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()
    assert said["PreservedFileName"] == "hopper.bmp" and said["SourceSHA256"] == digest
    assert said["DerivedFromDocumentID"] == f"urn:sha256:{digest}"
