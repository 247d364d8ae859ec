"""Anny's model cache kept whole: one process builds it at a time, and a file left half-written is built again.

anny builds its model data on first use (about a minute on 2 cores) and keeps it as safetensors files in its
cache folder (~1 GB, `anny.paths.get_anny_cache_path()`), written in place and with no lock. Two processes
starting together on a fresh machine (a batch's Ray workers, two artists' shells) each built it, and one could
load the other's file half-written; a process killed while writing one (the OOM killer, a preempted node) left it
truncated, and every later command on that machine then failed on it with "SafetensorError: incomplete metadata,
file not fully covered" until someone found and deleted the file. Here the build runs under a lock file in the
cache folder (the others wait, then load what it wrote), a truncated file is removed before anny reads it (anny
then builds it again), and a disk that fills while the cache is written gives the disk-full error, not anny's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".doppel-build.lock"
WAIT_S = 1800.0          # longest wait for another process's build (a first build takes about a minute on 2 cores)
CACHE_BYTES = 900e6      # what anny's default model data takes on disk (3 files, 863 MB with anny 0.3)


def safetensors_complete(path: str | os.PathLike) -> bool:
    """Whether a safetensors file is whole: its header parses and the file is exactly as long as the header says
    (8-byte little-endian header length, the JSON header, then every tensor's bytes). A file cut short by a kill
    or a full disk is not."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                return False
            header = json.loads(f.read(n))
        ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
        return False
    return size == 8 + n + max(ends, default=0)


def remove_incomplete(folder: str | os.PathLike) -> list[Path]:
    """Delete the cache files under ``folder`` (anny's ``vN/*.safetensors``) that are not whole; returns them."""
    removed = []
    for path in sorted(Path(folder).glob("v*/*.safetensors")):
        if not safetensors_complete(path):
            log.warning("anny's cache file %s is incomplete (a run killed while writing it?): removed, it is built "
                        "again (about a minute)", path)
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                raise OSError(e.errno, f"anny's cache file is incomplete and cannot be removed ({e.strerror}): ask "
                                       f"whoever owns it to delete it, or set ANNY_CACHE_DIR to a folder of your "
                                       f"own", str(path)) from e
            removed.append(path)
    return removed


@contextlib.contextmanager
def build_lock(folder: str | os.PathLike, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold ``folder``'s build lock (a `filelock.FileLock`, released by the system if the holder dies). A folder
    where no lock file can be made (a read-only cache a site installed) is used without one: nothing is written
    there. Waits up to ``wait_s`` seconds for another process's build, saying so once."""
    from filelock import FileLock, Timeout

    from core.group_sharing import lock_mode

    lock = FileLock(str(Path(folder) / LOCK_NAME), mode=lock_mode(folder))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("another process is building anny's cache in %s: waiting for it (about a minute)", folder)
        try:
            lock.acquire(timeout=wait_s)
        except Timeout:
            raise TimeoutError(f"anny's cache in {folder} has been locked by another process for over "
                               f"{wait_s / 60:.0f} minutes ({Path(folder) / LOCK_NAME}); is a build still "
                               f"running? Set ANNY_CACHE_DIR to build one elsewhere") from None
    except OSError as e:          # read-only or another user's lock file that this user may not open
        log.debug("anny's cache %s: no build lock (%s)", folder, e)
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _disk_full(e: BaseException) -> bool:
    """Whether anny's failure was the disk filling (safetensors says so in its own error, not as an OSError)."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(e)
    return "os error 28" in text or "No space left" in text or "os error 122" in text


def check_room(folder: str | os.PathLike) -> None:
    """Refuse, before a minute of building, a first build (no cache file there yet) on a disk that cannot take
    `CACHE_BYTES`. A cache partly there is not judged (what is left to write depends on the rig asked for): a disk
    filling during its build is reported by `whole_cache`."""
    import shutil

    if any(Path(folder).glob("v*/*.safetensors")):
        return
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < CACHE_BYTES:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: anny's model cache needs about "
                                    f"{CACHE_BYTES / 1e6:.0f} MB and {free / 1e6:.0f} MB are free; free some space "
                                    f"or set ANNY_CACHE_DIR to a folder with room", str(folder))


@contextlib.contextmanager
def whole_cache(folder: str | os.PathLike | None) -> Iterator[None]:
    """Run anny's model build (which loads or writes its cache in ``folder``) so that the cache stays whole:
    under the folder's build lock, after removing any truncated file, and with a full disk reported as one.
    ``folder`` None (anny caching nothing) runs it as it is."""
    if folder is None:
        yield
        return
    with contextlib.suppress(OSError):       # a folder that cannot be made: anny's own error says which
        os.makedirs(folder, exist_ok=True)
    with build_lock(folder):
        remove_incomplete(folder)
        check_room(folder)
        try:
            yield
        except Exception as e:
            remove_incomplete(folder)
            if _disk_full(e):
                code = errno.EDQUOT if "122" in str(e) else errno.ENOSPC
                raise OSError(code, f"{os.strerror(code)} while anny built its model cache (~{CACHE_BYTES / 1e9:.1f} "
                                    f"GB); set ANNY_CACHE_DIR to a folder with room", str(folder)) from e
            raise
