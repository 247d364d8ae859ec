"""What kind of file system a path is on: local, or one mounted over the network (NFS, SMB, Lustre, sshfs, ...).

SQLite's write-ahead log keeps its index in shared memory, which only processes on one machine share: "WAL does
not work over a network filesystem" (sqlite.org/wal.html). A studio puts its workspace on the NAS; the index of a
workspace there is opened with SQLite's rollback journal instead (`assets.workspace`), which relies on the file
system's own locks, as SQLite advises for network storage (sqlite.org/useovernet.html).

The mount table comes from psutil (``/proc/self/mounts`` on Linux, the system's table elsewhere): the longest
mount point that holds the path.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

# File system types (as the mount table names them) whose files other machines may open at the same time.
NETWORK_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "afs", "coda", "9p", "ceph", "glusterfs",
    "lustre", "gpfs", "beegfs", "ocfs2", "gfs2", "panfs", "wekafs", "davfs", "webdav",
    "fuse.sshfs", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse", "fuse.goofys", "fuse.glusterfs", "fuse.cephfs",
    "fuse.ceph-fuse", "fuse.juicefs", "fuse.mountpoint-s3", "fuse.blobfuse2", "fuse.davfs", "fuse.smbnetfs",
})


@functools.lru_cache(maxsize=1)
def _mounts() -> tuple[tuple[str, str], ...]:
    """(mount point, file system type) of every mount, longest mount point first."""
    import psutil

    try:
        parts = psutil.disk_partitions(all=True)
    except (OSError, RuntimeError):
        return ()
    return tuple(sorted(((p.mountpoint, p.fstype.lower()) for p in parts), key=lambda m: -len(m[0])))


def filesystem_type(path: str | os.PathLike) -> str | None:
    """The type of the file system holding ``path`` (or its nearest existing parent), e.g. "ext4", "nfs4";
    None when the mount table cannot be read."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return _type_of(str(p.resolve()), _mounts())


@functools.lru_cache(maxsize=256)
def _type_of(resolved: str, mounts: tuple[tuple[str, str], ...]) -> str | None:
    """filesystem_type of an existing, resolved path in the mount table ``mounts`` (one scan per path and table:
    every index connection asks, and a purge of 2000 outputs opened 2000 of them, 1 ms each)."""
    for mount, fstype in mounts:
        if resolved == mount or resolved.startswith(mount if mount.endswith(os.sep) else mount + os.sep):
            return fstype
    return None


def on_network_fs(path: str | os.PathLike) -> str | None:
    """The network file system type ``path`` is on ("nfs4", "cifs", ...), or None when it is local or unknown."""
    fstype = filesystem_type(path)
    return fstype if fstype in NETWORK_TYPES else None
