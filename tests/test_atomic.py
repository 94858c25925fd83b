"""Atomic writes: temp beside the target, no clobbering, identical content is a no-op."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotfolder import atomic


def test_stage_and_commit(tmp_path: Path) -> None:
    """A staged file appears under its final name only at commit, with its full content."""
    final = tmp_path / "sub" / "a.bin"
    staged = atomic.stage(final, lambda fp: fp.write(b"x" * 1000))
    assert not final.exists() and staged.temp.exists() and atomic.is_temp_name(staged.temp.name)
    assert atomic.commit(staged) == (final, "written")
    assert final.read_bytes() == b"x" * 1000
    assert [p.name for p in final.parent.iterdir()] == ["a.bin"]


def test_commit_never_replaces_different_content(tmp_path: Path) -> None:
    """An existing file with other content is kept; the new one gets the next number."""
    final = tmp_path / "a.png"
    final.write_bytes(b"old")
    path, action = atomic.commit(atomic.stage(final, lambda fp: fp.write(b"new")))
    assert (path.name, action) == ("a-1.png", "written")
    assert final.read_bytes() == b"old"


def test_commit_of_identical_content_is_a_no_op(tmp_path: Path) -> None:
    """Re-running a job that produces the same bytes changes nothing and leaves no temp."""
    final = tmp_path / "a.png"
    final.write_bytes(b"same")
    assert atomic.commit(atomic.stage(final, lambda fp: fp.write(b"same"))) == (final, "identical")
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_failed_write_leaves_no_temp(tmp_path: Path) -> None:
    """An exception while writing removes the temp file."""

    def boom(fp: object) -> None:
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError):
        atomic.stage(tmp_path / "a.png", boom)
    assert list(tmp_path.iterdir()) == []


def test_move_into_keeps_both_on_name_clash(tmp_path: Path) -> None:
    """Moving onto an existing name picks a numbered one; nothing is overwritten."""
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "a.jpg").write_bytes(b"first")
    src = tmp_path / "a.jpg"
    src.write_bytes(b"second")
    moved = atomic.move_into(src, tmp_path / "q" / "a.jpg")
    assert moved.name == "a-1.jpg" and moved.read_bytes() == b"second" and not src.exists()
