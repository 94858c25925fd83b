"""What filesystem a path is on: network and FUSE filesystems need polling and no SQLite locks."""

from __future__ import annotations

from pathlib import Path
from typing import Final

_NETWORK_FS: Final = (
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "fuse",
    "9p",
    "afs",
    "ceph",
    "glusterfs",
    "sshfs",
)


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding `path`, from /proc/self/mounts ('' when unknown)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return ""
    best, kind = "", ""
    target = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3:
            point = parts[1].replace("\\040", " ")
            if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, kind = point, parts[2]
    return kind


def is_network_fs(kind: str) -> bool:
    """Network and FUSE filesystems: no reliable inotify, and SQLite locking is unsafe there."""
    return kind.split(".", maxsplit=1)[0] in _NETWORK_FS or kind.startswith("fuse")
