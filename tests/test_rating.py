"""Ratings and labels decide: xmp:Rating and xmp:Label written by exiftool into pictures and sidecars
(the sidecar wins, as in Lightroom) select rules and name outputs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import corpus, run_cli, tool, write_config
from hotfolder.settings.rules import load_rules

SIDECAR = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/"><xmp:Rating>{rating}</xmp:Rating>'
    "<xmp:Label>{label}</xmp:Label></rdf:Description></rdf:RDF></x:xmpmeta>"
)
PICKS = (
    '[[rule]]\nname = "picks"\n[rule.match]\nrating_min = 4\n'
    '[[rule.output]]\nformat = "jpeg"\nmax_edge = 200\npath = "picks/{rating}-{label|\'none\'}-{stem}.jpg"\n'
    '[[rule]]\nname = "rejects"\n[rule.match]\nrating_max = -1\n'
    '[[rule.output]]\nformat = "jpeg"\nmax_edge = 200\npath = "rejects/{stem}.jpg"\n'
    '[[rule]]\nname = "red"\n[rule.match]\nlabel = ["Red", "Purple"]\n'
    '[[rule.output]]\nformat = "jpeg"\nmax_edge = 200\npath = "red/{stem}.jpg"\n'
)


def _picture(inbox: Path, name: str, *tags: str) -> Path:
    dst = inbox / name
    shutil.copy(corpus("olympus_pen_e-p3.jpg"), dst)
    if tags:
        exiftool = tool("exiftool", "libimage-exiftool-perl")
        subprocess.run([exiftool, "-q", "-overwrite_original", *tags, str(dst)], check=True)
    return dst


def test_ratings_and_labels_from_pictures_and_sidecars_choose_rules_and_names(tmp_path: Path) -> None:
    """4-5 stars go to picks (named by rating and label), -1 to rejects, a red label to red; a sidecar's
    rating wins over the picture's own; unrated is 0 (no pick); explain says where each value came from."""
    write_config(tmp_path, PICKS)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _picture(inbox, "five.jpg", "-XMP-xmp:Rating=5", "-XMP-xmp:Label=Green")
    _picture(inbox, "two.jpg", "-XMP-xmp:Rating=2")
    _picture(inbox, "rejected.jpg", "-XMP-xmp:Rating=-1")
    _picture(inbox, "red.jpg", "-XMP-xmp:Label=Red")
    _picture(inbox, "plain.jpg")
    _picture(inbox, "side.jpg", "-XMP-xmp:Rating=1")
    (inbox / "side.xmp").write_text(SIDECAR.format(rating=4, label="Purple"))
    said = run_cli("explain", "inbox/side.jpg", cwd=tmp_path).stdout
    assert "rating: 4 (from the sidecar side.xmp), label: 'Purple' (from the sidecar side.xmp)" in said
    said = run_cli("explain", "inbox/two.jpg", cwd=tmp_path).stdout
    assert "rating 2 (from the picture's XMP) < rating_min 4" in said
    done = run_cli("process", "inbox", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "outbox"
    assert sorted(p.name for p in (out / "picks").iterdir()) == ["4-Purple-side.jpg", "5-Green-five.jpg"]
    assert [p.name for p in (out / "rejects").iterdir()] == ["rejected.jpg"]
    assert [p.name for p in (out / "red").iterdir()] == ["red.jpg"]


def test_rating_conditions_are_checked(tmp_path: Path) -> None:
    """Out of range, or a minimum above the maximum: load errors naming the key."""
    for match, says in (("rating_min = 6", "-1..5"), ("rating_min = 4\nrating_max = 2", "nothing could")):
        path = tmp_path / "rules.toml"
        path.write_text(
            f'[[rule]]\nname = "r"\n[rule.match]\n{match}\n[[rule.output]]\nformat = "png"\npath = "a.png"\n'
        )
        try:
            load_rules([path])
        except Exception as exc:
            assert "match.rating_min" in str(exc) and says in str(exc), str(exc)
        else:
            raise AssertionError("accepted")
