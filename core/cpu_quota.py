"""The CPUs a container may use: its cgroup's CPU quota, not the host's core count.

A render node's job in a container (Docker ``--cpus 4``, a Kubernetes CPU limit) sees every core of the host:
``os.cpu_count()`` and the CPU affinity say 64, so torch, OpenMP, OpenBLAS and numba each start one thread per
host core while the kernel lets the job run on 4 CPUs' worth of time, throttling all of them together. Measured
on this project's 2-core VM in a cgroup of 1 CPU: a torch loop with 2 threads took 1.36 s, with 1 thread 1.16 s;
the cost grows with the ratio of host cores to quota (a 64-core host and a 4-CPU limit: 16 threads per CPU).

`usable_cores()` is the smaller of the affinity and the quota (rounded up); `limit_threads()` makes it the
default thread count of those libraries (environment variables read when they load, so before numpy and torch
are imported; a value the user set stays). cgroup v2 (``cpu.max`` of the process's cgroup and its parents) and v1
(``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) are read; elsewhere (macOS, no cgroup file system) nothing is
limited.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def container_cpus(root: Path = CGROUP_ROOT, self_cgroup: str | None = None) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5), the smallest along its path up to the root; None
    when there is none (no limit, no cgroup file system). ``self_cgroup``: the text of /proc/self/cgroup."""
    if self_cgroup is None:
        try:
            self_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            self_cgroup = ""
    quotas = [q for folder in _cgroup_folders(root, self_cgroup) if (q := _quota(folder)) is not None]
    return min(quotas) if quotas else None


def _cgroup_folders(root: Path, self_cgroup: str) -> list[Path]:
    """The cgroup folders whose quota limits this process: its own and its parents', v2 and v1."""
    found: list[Path] = []
    for line in self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, rel = parts[1], parts[2].lstrip("/")
        if controllers == "":                                    # v2: the unified hierarchy
            base = root
        elif "cpu" in controllers.split(","):                    # v1: the cpu controller's mount
            base = next((root / n for n in ("cpu", "cpu,cpuacct", "cpuacct,cpu") if (root / n).is_dir()), None)
            if base is None:
                continue
        else:
            continue
        folder = base / rel
        while True:
            found.append(folder)
            if folder == base:
                break
            folder = folder.parent
    return found or [root, root / "cpu"]


def _quota(folder: Path) -> float | None:
    try:
        if (folder / "cpu.max").is_file():                       # v2: "QUOTA PERIOD" or "max PERIOD"
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if (folder / "cpu.cfs_quota_us").is_file():              # v1: -1 for none
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
            return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None
    return None


def _affinity_cores() -> int:
    """The cores the process may be scheduled on (what it sees; a container's quota is not among them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by its container's CPU quota (rounded up)."""
    quota = container_cpus()
    cores = _affinity_cores()
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores


def limit_threads() -> int | None:
    """Default OMP/OpenBLAS/MKL/numba thread counts to ``usable_cores()`` when a CPU quota is below the cores the
    process sees (each variable only when unset). Returns that count, or None when there is no such quota."""
    n = usable_cores()
    if n >= _affinity_cores():
        return None
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, str(n))
    return n
