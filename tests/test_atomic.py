"""Atomic writes: a temp beside the target, a no-clobber rename, names that always fit."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from conftest import corpus, output, run_outputs
from hotfolder.arrive.ignore import Ignore
from hotfolder.commit import atomic, faults
from hotfolder.core import tempnames
from hotfolder.errors import StorageError


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


# Shared filesystems. Their refusals cannot be produced on one machine, so they are injected into the
# real syscall wrappers atomic.py calls (renameat2 through ctypes, os.link, os.fsync); the files are real.


def _renameat2_says(err: int):  # type: ignore[no-untyped-def]
    def fake(*_args: object) -> int:
        ctypes.set_errno(err)
        return -1

    return fake


def test_nfs_without_rename_noreplace_falls_back_to_an_exclusive_hard_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NFS and CephFS answer EINVAL to RENAME_NOREPLACE: the hard link does the rename, and still refuses
    a taken name."""
    monkeypatch.setattr(atomic, "_renameat2", _renameat2_says(errno.EINVAL))
    dst = _renamed(tmp_path, b"new")
    other = _refused(tmp_path / "b.tmp", dst, b"new")
    assert other.exists()
    assert atomic.probe_no_clobber(tmp_path) == "hard link"


def _renamed(tmp_path: Path, data: bytes) -> Path:
    """a.tmp holding `data` renamed to a.jpg without replacing: a.jpg has it, a.tmp is gone."""
    src, dst = tmp_path / "a.tmp", tmp_path / "a.jpg"
    src.write_bytes(data)
    atomic.rename_noreplace(src, dst)
    assert dst.read_bytes() == data and not src.exists()
    return dst


def _refused(src: Path, taken: Path, kept: bytes) -> Path:
    """Renaming `src` onto a taken name is refused and the taken file keeps its bytes."""
    src.write_bytes(b"other")
    with pytest.raises(FileExistsError):
        atomic.rename_noreplace(src, taken)
    assert taken.read_bytes() == kept
    return src


def test_nfs_eexist_after_a_link_that_succeeded_is_a_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An NFS retransmit can report EEXIST for the link it made: the link count and inode tell."""
    monkeypatch.setattr(atomic, "_renameat2", _renameat2_says(errno.EINVAL))
    real_link = os.link

    def retransmitted(src: object, dst: object, **kw: object) -> None:
        real_link(src, dst)  # type: ignore[arg-type]
        raise FileExistsError(errno.EEXIST, "File exists", str(dst))

    monkeypatch.setattr(atomic.os, "link", retransmitted)
    _renamed(tmp_path, b"mine")
    # A real EEXIST (someone else's file) is still refused, and that file is untouched.
    theirs = tmp_path / "c.jpg"
    theirs.write_bytes(b"theirs")
    monkeypatch.setattr(atomic.os, "link", real_link)
    _refused(tmp_path / "a.tmp", theirs, b"theirs")


def test_cifs_refusing_a_folder_fsync_is_ignored_for_folders_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_fsync = os.fsync

    def cifs(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", cifs)
    monkeypatch.setattr(atomic, "_FSYNC_REFUSED", set())
    atomic.write_bytes(tmp_path / "note.json", b"{}")
    atomic.write_bytes(tmp_path / "note.json", b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note-1.json", "note.json"]
    assert capsys.readouterr().out.count("storage.folder_fsync_refused") == 1  # said once per filesystem

    def broken_file_fsync(fd: int) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(atomic.os, "fsync", broken_file_fsync)
    with pytest.raises(OSError, match="Invalid argument"):  # a file that cannot be synced is an error
        atomic.stage_at(tmp_path / ".x.hf-1.tmp", lambda fp: fp.write(b"x"))


def test_storage_without_noclobber_rename_or_links_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic, "_renameat2", _renameat2_says(errno.EINVAL))

    def no_links(*_a: object, **_k: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)
    with pytest.raises(StorageError, match="neither a no-clobber rename nor hard links"):
        atomic.probe_no_clobber(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing
    monkeypatch.undo()
    assert atomic.probe_no_clobber(tmp_path) == "rename"  # ext4 / tmpfs here


def test_nfs_silly_rename_files_are_never_inputs() -> None:
    assert Ignore()(".nfs000000000012abcd00000001")
    assert not Ignore()("nfs_photo.jpg")


def test_an_output_that_fails_its_own_verification_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 28, case 17: the second of two outputs fails its verification (a real encode; the failure
    injected by the test's fault point right after the real verify): both staged `.hf-*.tmp` are removed
    at once (the failing one stayed until the next start's sweep)."""
    monkeypatch.setenv(faults.FAIL_AT_ENV, "verify:2")
    monkeypatch.setattr(faults, "_reached", {})  # the fault points' counts start afresh for this test
    src = tmp_path / "hopper.bmp"
    src.write_bytes(corpus("hopper.bmp").read_bytes())
    done = run_outputs(tmp_path, src, output(format="png"), output(format="webp", path="{stem}.webp"))
    assert done.status == "quarantined" and "webp failed its verification" in str(done.error)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_a_failed_job_leaves_output_root_as_it_was(tmp_path: Path) -> None:
    """Issue 29: a 70000x8 PNG under a two-output rule (an archive PNG, then a JPEG, which cannot be
    wider than 65535): quarantined, and output_root holds exactly what it held before (the folders the
    worker made for both outputs were left empty)."""
    src = tmp_path / "panorama.png"
    Image.linear_gradient("L").resize((70000, 8)).convert("RGB").save(src)
    (tmp_path / "out" / "kept").mkdir(parents=True)  # an empty folder the user made stays
    before = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*"))
    done = run_outputs(
        tmp_path,
        src,
        output(format="png", path="archive/{stem}.png"),
        output(format="jpeg", path="web/{taken:%Y}/{stem}.jpg"),
    )
    assert done.status == "quarantined", done.error
    assert sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*")) == before
