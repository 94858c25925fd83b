"""Atomic files: a temp file in the destination folder, fsync, a no-clobber rename, fsync of the folder.

No partial file is ever visible under an output name: readers see either nothing or the whole,
synced file, even if the process is killed at any moment. Temp names start with '.' and contain
TEMP_MARK and the job's token, so the watcher, the start-up cleanup and the daemon (removing a
dead job's files) recognise them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from hotfolder.core.tempnames import numbered, temp_path
from hotfolder.errors import EncodeError, StorageError, UnsafePathError

_AT_FDCWD: Final = -100
_RENAME_NOREPLACE: Final = 1

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


class StagingError(EncodeError):
    """A staged file is not what was meant to be written (a copy that does not match its source)."""


_FSYNC_REFUSED: set[int] = set()  # devices whose filesystem refused a folder fsync (said once each)


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # CIFS and some CephFS versions answer EINVAL to fsync on a folder: their server makes a rename
        # durable itself, and the file was synced before it was renamed. Only for folders, said once.
        if exc.errno != errno.EINVAL:
            raise
        dev = os.fstat(fd).st_dev
        if dev not in _FSYNC_REFUSED:
            _FSYNC_REFUSED.add(dev)
            from hotfolder import logs  # noqa: PLC0415 - workers stage files too, and never log else

            logs.get().warning(
                "storage.folder_fsync_refused",
                dst=str(folder),
                error="this filesystem does not sync folders (EINVAL); renames rely on its "
                "server for durability",
            )
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Staged:
    """A complete, synced temp file."""

    temp: Path
    size: int


def stage_at(temp: Path, write: Callable[[IO[bytes]], object]) -> Staged:
    """Write into a fresh temp file (never an existing one, never through a link), flush and fsync it."""
    # Read-write: a writer may read back what it wrote (the TIFF writer reads IFD0 to append metadata).
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            fp.flush()
            os.fsync(fp.fileno())
            size = fp.tell()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    return Staged(temp=temp, size=size)


@contextlib.contextmanager
def removed_on_error(temp: Path) -> Iterator[None]:
    """A staged file that fails what follows its writing (verification, its mode) is removed at once: a
    job that abandons its output leaves no `.hf-*.tmp` behind until the next start's sweep."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def make_folder(folder: Path, root: Path) -> list[Path]:
    """Create `folder` below `root` one level at a time, refusing a symlink on the way: a link planted
    in a shared output tree must not redirect the daemon's writes anywhere else. Returns the folders
    this call created, outermost first (a job that fails removes them again: `remove_made`)."""
    try:
        parts = folder.relative_to(root).parts
    except ValueError:
        raise UnsafePathError(f"{folder} is not inside {root}") from None
    root.mkdir(parents=True, exist_ok=True)
    current = root
    made = []
    for part in parts:
        current = current / part
        with contextlib.suppress(FileExistsError):
            current.mkdir()
            made.append(current)
        if current.is_symlink() or not current.is_dir():
            raise UnsafePathError(
                f"{current} is a symlink or not a folder; hotfolder does not write through links below "
                f"{root} (to put outputs on another disk, mount it there or point the output path at it)"
            )
    return made


def remove_made(folders: list[Path]) -> None:
    """Remove the folders a failed job created, innermost first, each only while it is empty (another
    job may have put something there meanwhile: then it stays)."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


_UNSUPPORTED: Final = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)


def _rename_exclusive(src: Path, dst: Path) -> bool:
    """renameat2(RENAME_NOREPLACE); False when the filesystem has no such rename (NFS, CIFS, CephFS:
    EINVAL), FileExistsError when dst exists."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _link_exclusive(src: Path, dst: Path) -> None:
    """A hard link, as exclusive as a no-clobber rename; an EEXIST is checked, because over NFS a
    retransmitted LINK whose first reply was lost reports EEXIST for the link it made itself."""
    try:
        os.link(src, dst)
    except FileExistsError:
        mine, there = src.stat(), dst.lstat()
        if (mine.st_dev, mine.st_ino) != (there.st_dev, there.st_ino) or mine.st_nlink < 2:
            raise
        # It is our own link after all: the rename happened.


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename atomically, failing with FileExistsError instead of replacing an existing dst."""
    if _rename_exclusive(src, dst):
        return
    # Filesystems without RENAME_NOREPLACE: a hard link is just as exclusive.
    _link_exclusive(src, dst)
    src.unlink()


def probe_no_clobber(folder: Path) -> str:
    """How this folder's filesystem renames without replacing ("rename" or "hard link"), tried on two
    scratch files; StorageError when it can do neither (never losing a file depends on one of them)."""
    # Its nearest existing folder: starting creates nothing (an absent quarantine means none yet).
    folder = next(p for p in (folder, *folder.parents) if p.is_dir())
    a, b = temp_path(folder / "hotfolder-storage-probe"), temp_path(folder / "hotfolder-storage-probe")
    a.write_bytes(b"")
    try:
        if _rename_exclusive(a, b):
            return "rename"
        try:
            _link_exclusive(a, b)
        except OSError as exc:
            raise StorageError(
                f"{folder}: its filesystem supports neither a no-clobber rename nor hard links "
                f"({exc.strerror or exc}); hotfolder cannot write outputs there without risking an existing "
                "file (put output_root and quarantine on ext4, XFS, Btrfs, ZFS, NFS or CephFS)"
            ) from None
        return "hard link"
    finally:
        a.unlink(missing_ok=True)
        b.unlink(missing_ok=True)


def copy_file(src: Path, fp: IO[bytes]) -> None:
    """Copy a file's bytes into an open temp file."""
    with src.open("rb") as f:
        shutil.copyfileobj(f, fp, 1 << 20)


def write_bytes(final: Path, data: bytes) -> Path:
    """Write a small file atomically (notes) without replacing another; returns where it landed."""
    staged = stage_at(temp_path(final), lambda fp: fp.write(data))
    try:
        return rename_free(staged.temp, final)
    finally:
        staged.temp.unlink(missing_ok=True)


def rename_free(src: Path, dest: Path) -> Path:
    """Rename `src` to `dest`, or to the first numbered name after it that nothing holds (a no-clobber
    rename, so a name taken meanwhile is skipped, never replaced); fsyncs the folder; returns where."""
    for n in range(10_000):
        candidate = numbered(dest, n)
        try:
            rename_noreplace(src, candidate)
        except FileExistsError:
            continue
        fsync_dir(candidate.parent)
        return candidate
    raise FileExistsError(errno.EEXIST, "no free name", str(dest))
