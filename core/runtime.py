"""Process-wide settings for CPU-heavy work: the C allocator and OpenMP's idle threads.

Two defaults of the C runtime cost Doppel's CPU paths more than the arithmetic does (docs/benchmarks.md):

* glibc's malloc hands every block over 128 kB - 32 MB straight back to the kernel when it is freed, so
  the next pose batch or render buffer of the same size page-faults its memory in again (zero-filled, 4 kB
  at a time). `keep_freed_memory()` raises the thresholds so freed memory stays in the process and is
  reused: the resident size stays at its peak instead of shrinking between calls.
* OpenMP's worker threads spin for a while after every parallel region; on a machine shared with other
  jobs (or with more threads than free cores) they steal the time the next region needs.
  `OMP_WAIT_POLICY=PASSIVE` makes them sleep; it must be in the environment before torch loads OpenMP.

`tune_process()` does both; the `doppel` CLI and the benchmarks call it first thing. Neither changes a
result, only the time it takes. Opt out with DOPPEL_NO_TUNING=1.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 2**20    # glibc's upper limit: blocks below it come from the heap and are reused
TRIM_THRESHOLD = 1 * 2**30     # free heap kept before it is returned to the kernel
TOP_PAD = 64 * 2**20           # heap grown in steps of this much


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep and reuse freed memory (see the module doc). True when it took effect;
    False on other C libraries (macOS, Windows, musl), where nothing is changed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = [mallopt(p, v) for p, v in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                                     (_M_TOP_PAD, TOP_PAD))]
    return all(r == 1 for r in ok)


def tune_process() -> dict[str, bool]:
    """keep_freed_memory() and OMP_WAIT_POLICY=PASSIVE (unless set, or torch is already imported, when it
    is too late). Returns what was applied; nothing when DOPPEL_NO_TUNING=1."""
    if os.environ.get("DOPPEL_NO_TUNING") == "1":
        return {"malloc": False, "omp_passive": False}
    omp = False
    if "OMP_WAIT_POLICY" not in os.environ and "torch" not in sys.modules:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        omp = True
    return {"malloc": keep_freed_memory(), "omp_passive": omp}
