"""Atomic files: a temp file in the destination folder, fsync, a no-clobber rename, fsync of the folder.

No partial file is ever visible under an output name: readers see either nothing or the whole,
synced file, even if the process is killed at any moment. Temp names start with '.' and contain
TEMP_MARK so the watcher and the startup cleanup recognise them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import filecmp
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from .errors import UnsafePathError

TEMP_MARK: Final = ".hf-"
TEMP_SUFFIX: Final = ".tmp"
_AT_FDCWD: Final = -100
_RENAME_NOREPLACE: Final = 1

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of hotfolder's own temp files."""
    return name.startswith(".") and TEMP_MARK in name and name.endswith(TEMP_SUFFIX)


def temp_path(final: Path) -> Path:
    """A unique temp name beside `final` (same folder, so the rename is atomic)."""
    stem = final.name[:100]
    return final.with_name(f".{stem}{TEMP_MARK}{secrets.token_hex(4)}{TEMP_SUFFIX}")


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Staged:
    """A complete, synced temp file waiting to be committed under `final`."""

    temp: Path
    final: Path
    size: int


def stage(final: Path, write: Callable[[IO[bytes]], object]) -> Staged:
    """Create the folders, write into a fresh temp file beside `final`, flush and fsync it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path(final)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
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
    return Staged(temp=temp, final=final, size=size)


def make_folder(folder: Path, root: Path) -> None:
    """Create `folder` below `root` one level at a time, refusing a symlink on the way: a link planted
    in a shared output tree must not redirect the daemon's writes anywhere else."""
    try:
        parts = folder.relative_to(root).parts
    except ValueError:
        raise UnsafePathError(f"{folder} is not inside {root}") from None
    root.mkdir(parents=True, exist_ok=True)
    current = root
    for part in parts:
        current = current / part
        with contextlib.suppress(FileExistsError):
            current.mkdir()
        if current.is_symlink() or not current.is_dir():
            raise UnsafePathError(
                f"{current} is a symlink or not a folder; hotfolder does not write through links below "
                f"{root} (to put outputs on another disk, mount it there or point the output path at it)"
            )


def discard(staged: Staged) -> None:
    """Remove a staged temp file that will not be committed."""
    with contextlib.suppress(FileNotFoundError):
        staged.temp.unlink()


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename atomically, failing with FileExistsError instead of replacing an existing dst."""
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(dst))
    # Filesystems without RENAME_NOREPLACE: a hard link is just as exclusive.
    os.link(src, dst)
    src.unlink()


def numbered(final: Path, n: int, counter_format: str = "-{n}") -> Path:
    """The n-th alternative name for `final`: photo.jpg → photo-1.jpg (n = 0: the name itself)."""
    if n == 0:
        return final
    stem, dot, ext = final.name.rpartition(".")
    if not dot:
        stem, ext = final.name, ""
    return final.with_name(
        f"{stem}{COUNTER.sub(lambda m: str(n).zfill(int(m.group(1) or 0)), counter_format)}{dot}{ext}"
    )


# The counter in a counter_format: {n}, or {n:03d} for zero-padded (validated in outputs.py).
COUNTER = re.compile(r"\{n(?::0?(\d)d)?\}")


def commit(
    staged: Staged,
    *,
    policy: str = "skip_identical",
    counter_format: str = "-{n}",
    before_rename: Callable[[Path], None] | None = None,
) -> tuple[Path, str]:
    """Move a staged file into place; returns where it is and what happened.

    Policies for a name already taken: skip_identical (same bytes: nothing to do; else the next
    numbered name), counter (always the next free numbered name), skip (leave the existing file),
    overwrite (replace it atomically). Names are claimed with a no-clobber rename, so several
    workers never take the same one. Actions: written, identical, skipped, overwritten.
    """
    if policy == "overwrite":
        if before_rename is not None:
            before_rename(staged.final)
        replaced = staged.final.exists()
        staged.temp.replace(staged.final)
        fsync_dir(staged.final.parent)
        return staged.final, "overwritten" if replaced else "written"
    for n in range(10_000):
        candidate = numbered(staged.final, n, counter_format)
        if before_rename is not None:
            before_rename(candidate)  # recorded first: a crash right after the rename still knows the name
        try:
            rename_noreplace(staged.temp, candidate)
        except FileExistsError:
            if policy == "skip":
                discard(staged)
                return candidate, "skipped"
            if (
                policy == "skip_identical"
                and not candidate.is_symlink()
                and candidate.is_file()
                and filecmp.cmp(candidate, staged.temp, shallow=False)
            ):
                discard(staged)
                return candidate, "identical"
            continue
        fsync_dir(candidate.parent)
        return candidate, "written"
    raise FileExistsError(errno.EEXIST, "no free name", str(staged.final))


def move_into(src: Path, dest: Path) -> Path:
    """Move a file to `dest` (or a numbered variant) without losing it on any failure or crash."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for n in range(10_000):
        candidate = numbered(dest, n)
        try:
            rename_noreplace(src, candidate)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            staged = stage(candidate, lambda fp: _copy_from(src, fp))
            final, _ = commit(staged, policy="counter")
            src.unlink()
            fsync_dir(src.parent)
            return final
        fsync_dir(candidate.parent)
        fsync_dir(src.parent)
        return candidate
    raise FileExistsError(errno.EEXIST, "no free name", str(dest))


def _copy_from(src: Path, fp: IO[bytes]) -> None:
    with src.open("rb") as f:
        shutil.copyfileobj(f, fp, 1 << 20)


def write_bytes(final: Path, data: bytes) -> Path:
    """Write a small file atomically (sidecars) without replacing another; returns where it landed."""
    path, _ = commit(stage(final, lambda fp: fp.write(data)), policy="counter")
    return path
