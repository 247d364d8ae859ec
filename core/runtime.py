"""Process-wide settings for CPU-heavy work: the C allocator and OpenMP's idle threads.

Two defaults of the C runtime cost Doppel's CPU paths more than the arithmetic does (docs/benchmarks.md):

* glibc's malloc hands every block over 128 kB - 32 MB straight back to the kernel when it is freed, so
  the next pose batch or render buffer of the same size page-faults its memory in again (zero-filled, 4 kB
  at a time). `keep_freed_memory()` raises the thresholds so freed memory stays in the process and is
  reused: the resident size stays at its peak instead of shrinking between calls.
* OpenMP's worker threads spin for a while after every parallel region; on a machine shared with other
  jobs (or with more threads than free cores) they steal the time the next region needs.
  `OMP_WAIT_POLICY=PASSIVE` makes them sleep; it must be in the environment before torch loads OpenMP.
  numpy's OpenBLAS does the same with its own pthreads; `OPENBLAS_THREAD_TIMEOUT=4` (its minimum spin) makes
  them sleep; it must be set before numpy loads OpenBLAS. Measured on the 2-core VM at load 11: the shot
  solve of `doppel swap` (small least-squares problems, 6 frames) took 27.7 s with OpenBLAS's default and
  5.0 s with the short timeout (4.2 s with one BLAS thread).

`tune_process()` does both; the `doppel` CLI calls it first thing. Neither changes a result, only the time
it takes. Opt out with DOPPEL_NO_TUNING=1.

Library users get the OpenMP half without calling anything: `core/__init__.py` runs `tune_on_import()`, and
every Doppel package imports `core` before anything that loads torch, so a plain script (or a Ray worker,
or a test) that imports a Doppel package before torch runs with the passive policy. When torch came first it
is too late to change; `tune_on_import()` then warns once, in one line, with the fix. Measured: a 512x512
`rasterize` on 2 threads with one of the 2 cores kept busy by another process took 20-50x its idle time
with OpenMP's default policy, 1-2x with the passive one (docs/benchmarks.md, benchmarks/contention.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
import warnings

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

OPENBLAS_TIMEOUT = 4          # log2 of the cycles numpy's OpenBLAS threads spin before sleeping (its minimum)
RELEASE_EVERY_FRAMES = 24      # frames between `release_freed_memory` calls in a streamed pass over a plate
MMAP_THRESHOLD = 32 * 2**20    # glibc's upper limit: blocks below it come from the heap and are reused
TRIM_THRESHOLD = 1 * 2**30     # free heap kept before it is returned to the kernel
TOP_PAD = 64 * 2**20           # heap grown in steps of this much


@functools.lru_cache(maxsize=1)
def _libc():
    """glibc through ctypes, or None on other platforms / C libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep and reuse freed memory (see the module doc). True when it took effect;
    False on other C libraries (macOS, Windows, musl), where nothing is changed."""
    libc = _libc()
    if libc is None:
        return False
    ok = [libc.mallopt(p, v) for p, v in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                                          (_M_TOP_PAD, TOP_PAD))]
    return all(r == 1 for r in ok)


def release_freed_memory() -> bool:
    """Hand the free memory glibc's heaps hold back to the kernel now (``malloc_trim(0)``: the free pages in
    every arena, not only the top). `keep_freed_memory` keeps freed blocks for reuse, which is what makes
    repeated work fast; but in a long streamed loop whose blocks vary in size (a swap's face box changes every
    frame) the kept blocks fragment and the resident size creeps up. A loop that calls this every few dozen
    iterations (`doppel swap`: every `RELEASE_EVERY_FRAMES` frames of its detector-bias and comp passes)
    returns to the memory it actually uses, at the
    cost of page faults on the next allocations. True when called on glibc; False elsewhere (nothing done)."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def tune_process() -> dict[str, bool]:
    """keep_freed_memory() and the OpenMP passive wait policy (``tune_on_import``; importing this module
    already applied it). Returns what was applied: "omp_passive" is True when Doppel set the policy before
    torch loaded OpenMP (False when the user chose a policy, torch came first, or DOPPEL_NO_TUNING=1, which
    also turns the malloc half off)."""
    if os.environ.get("DOPPEL_NO_TUNING") == "1":
        return {"malloc": False, "omp_passive": False}
    omp = tune_on_import() or _STATE["omp_before_torch"]
    return {"malloc": keep_freed_memory(), "omp_passive": omp}


OMP_WARNING = ("torch was imported before Doppel, so OpenMP's threads busy-wait between parallel regions and "
               "Doppel's CPU work can run 20-50x slower while another process uses a core; import a Doppel "
               "package before torch, or set OMP_WAIT_POLICY=PASSIVE in the environment before Python starts "
               "(DOPPEL_NO_TUNING=1 silences this)")


class ThreadingWarning(RuntimeWarning):
    """OpenMP was loaded with its busy-waiting default before Doppel could set the passive policy."""


def tune_on_import() -> bool:
    """The import-time half of ``tune_process()``: OMP_WAIT_POLICY=PASSIVE when neither the user nor an
    earlier import decided it, so that torch's OpenMP (loaded later) lets idle threads sleep. Returns True
    when that reached torch. When torch is already imported, its OpenMP keeps busy-waiting: the policy is
    still set (numba's OpenMP runtime, loaded at the first fused kernel, and child processes read it) and a
    one-line ``ThreadingWarning`` names the fix. Does nothing with DOPPEL_NO_TUNING=1 (no warning either)."""
    if os.environ.get("DOPPEL_NO_TUNING") != "1" and "numpy" not in sys.modules:
        # numpy's OpenBLAS (pthreads, not OpenMP) spins 2^28 cycles by default before an idle thread sleeps; the
        # minimum, 2^4, makes it sleep at once. Read when OpenBLAS loads, so only before numpy is imported.
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(OPENBLAS_TIMEOUT))
    if os.environ.get("DOPPEL_NO_TUNING") != "1" and "torch" not in sys.modules:
        from core.cpu_quota import limit_threads

        limit_threads()          # a container's CPU quota, not the host's cores (core/cpu_quota.py)
    if os.environ.get("DOPPEL_NO_TUNING") == "1" or "OMP_WAIT_POLICY" in os.environ:
        if _STATE["policy"] is None:
            _STATE["policy"] = ("off (DOPPEL_NO_TUNING=1)" if "OMP_WAIT_POLICY" not in os.environ
                                else f"{os.environ['OMP_WAIT_POLICY']} (set by the user)")
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if "torch" in sys.modules:
        _STATE["policy"] = "torch's: busy-wait (torch was imported before Doppel; PASSIVE for later runtimes)"
        warnings.warn(OMP_WARNING, ThreadingWarning, stacklevel=_caller_outside_imports())
        return False
    _STATE["omp_before_torch"] = True
    _STATE["policy"] = "PASSIVE (set by Doppel before torch loaded)"
    return True


def openmp_policy() -> str:
    """What OpenMP's wait policy is for torch in this process, in words (for benchmark headers and
    `doppel doctor`-style reports): set by Doppel before torch, by the user, or too late (torch came first)."""
    return _STATE["policy"] or "not decided yet (no Doppel package imported)"


def _caller_outside_imports() -> int:
    """stacklevel for ``warnings.warn`` that points at the user's import line, not at Doppel's own package
    __init__ files (so the warning names the script that imported torch first). Like ``warnings`` itself,
    importlib's bootstrap frames are not counted."""
    frame, level = sys._getframe(1), 1
    while frame is not None:
        name = frame.f_code.co_filename
        if "importlib" in name and "_bootstrap" in name:
            frame = frame.f_back
            continue
        mine = name.startswith(_ROOT) and name.endswith("__init__.py")
        if not (mine or name == __file__):
            return level
        frame, level = frame.f_back, level + 1
    return 1


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# set by the first tune_on_import() (core/__init__.py): whether the policy reached torch, and in words
_STATE: dict = {"omp_before_torch": False, "policy": None}


def private_cache_folder(name: str) -> str | None:
    """A cache folder for this user when the usual one cannot be written (a site-wide install, a render node's
    account with no writable home): ``$TMPDIR/doppel-NAME-UID``, made 0700. None unless it is a real folder owned
    by this user that nobody else may write: what is loaded from it (compiled code, model data) must be this
    user's own, not something another user of a shared temporary folder put there."""
    import stat
    import tempfile

    folder = os.path.join(tempfile.gettempdir(), f"doppel-{name}-{os.getuid()}")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.lstat(folder)
    except OSError:
        return None
    ok = stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022
    return folder if ok else None


def writable_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is, or can be made, a folder this user can write."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)
