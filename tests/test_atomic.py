"""Atomic writes: a temp beside the target, a no-clobber rename, names that always fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotfolder.commit import atomic
from hotfolder.core import tempnames


def test_staged_file_is_a_synced_temp_beside_its_final_name(tmp_path: Path) -> None:
    """A staged file is a hidden temp (recognised as ours) holding the full content."""
    temp = tempnames.temp_path(tmp_path / "a.bin", token="abcd1234")
    staged = atomic.stage_at(temp, lambda fp: fp.write(b"x" * 1000))
    assert staged.size == 1000 and staged.temp.read_bytes() == b"x" * 1000
    assert tempnames.is_temp_name(staged.temp.name) and "abcd1234" in staged.temp.name


def test_stage_never_opens_an_existing_file_or_a_link(tmp_path: Path) -> None:
    """O_EXCL | O_NOFOLLOW: a name planted where the temp goes is never written through."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    temp = tempnames.temp_path(tmp_path / "a.png", token="t")
    temp.symlink_to(victim)
    with pytest.raises(FileExistsError):
        atomic.stage_at(temp, lambda fp: fp.write(b"evil"))
    assert victim.read_bytes() == b"keep"


def test_failed_write_leaves_no_temp(tmp_path: Path) -> None:
    """An exception while writing removes the temp file."""

    def boom(fp: object) -> None:
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError):
        atomic.stage_at(tempnames.temp_path(tmp_path / "a.png"), boom)
    assert list(tmp_path.iterdir()) == []


def test_rename_noreplace_refuses_a_taken_name(tmp_path: Path) -> None:
    """The rename that claims a name fails instead of replacing what is there."""
    (tmp_path / "a").write_bytes(b"first")
    (tmp_path / "b").write_bytes(b"second")
    with pytest.raises(FileExistsError):
        atomic.rename_noreplace(tmp_path / "b", tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == b"first" and (tmp_path / "b").exists()


def test_numbered_names_fit_in_255_bytes(tmp_path: Path) -> None:
    """A counter added to a 255-byte name shortens the stem, never the extension."""
    long = tmp_path / ("é" * 123 + "xyz.jpeg")
    assert len(long.name.encode()) == 254
    numbered = tempnames.numbered(long, 12)
    assert len(numbered.name.encode()) <= 255 and numbered.name.endswith("-12.jpeg")


def test_write_bytes_never_replaces_another_file(tmp_path: Path) -> None:
    """Notes take the next free name rather than replacing one."""
    (tmp_path / "n.json").write_bytes(b"old")
    assert atomic.write_bytes(tmp_path / "n.json", b"new") == tmp_path / "n-1.json"
    assert (tmp_path / "n.json").read_bytes() == b"old"
    assert not [p for p in tmp_path.iterdir() if tempnames.is_temp_name(p.name)]
