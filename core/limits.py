"""Resource limits checked before work starts: estimate memory, disk and time, refuse what cannot fit.

A stage builds a ``ResourceEstimate`` from its own cost model (bytes per pixel, seconds per view, ...) and
calls ``check_resources`` before any slow work: a request that needs more memory than is available, more
disk than is free, or longer than ``DEFAULT_MAX_SECONDS`` is refused with one line that says what, how
much, the limit, and how to override it (``--allow-large``). Memory and disk limits also hold with the
override when the request cannot possibly fit (more than the machine's total memory / the disk's size).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.errors import DoppelError

DEFAULT_MAX_SECONDS = 2 * 3600.0    # longer estimated runs need --allow-large
MEMORY_HEADROOM = 0.8               # use at most this fraction of the available memory
GB = 1e9


class ResourceLimitError(DoppelError):
    """A request is refused before work because it would not fit in memory, on disk or in time."""


@dataclass(frozen=True)
class ResourceEstimate:
    what: str             # the request in the user's words, e.g. "capture synth --size 4096 --cameras 16"
    memory_bytes: float   # peak resident memory, bytes
    disk_bytes: float     # bytes written
    seconds: float        # wall-clock estimate on this machine's CPU (rough: +-50 %)

    def describe(self) -> str:
        """'about 2.1 GB of memory, 0.4 GB on disk, 3 min'."""
        return (f"about {format_bytes(self.memory_bytes)} of memory, {format_bytes(self.disk_bytes)} on disk, "
                f"{format_seconds(self.seconds)}")


def format_bytes(n: float) -> str:
    """2.5e6 -> '2.5 MB', 3e9 -> '3.0 GB' (decimal units)."""
    return f"{n / GB:.1f} GB" if n >= GB else f"{n / 1e6:.1f} MB"


def format_seconds(seconds: float) -> str:
    """12 -> '12 s', 150 -> '2.5 min', 7200 -> '2.0 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def available_memory_bytes() -> float:
    """Memory the process can still use: MemAvailable from /proc/meminfo, else physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return total_memory_bytes()


def total_memory_bytes() -> float:
    """Physical memory of the machine, bytes."""
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def free_disk_bytes(path: str | os.PathLike) -> float:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return float(shutil.disk_usage(p).free)


def check_resources(est: ResourceEstimate, out_dir: str | os.PathLike, allow_large: bool = False,
                    max_seconds: float = DEFAULT_MAX_SECONDS) -> None:
    """Refuse ``est`` (ResourceLimitError, one line) when it does not fit; return silently when it does.

    Memory: over MEMORY_HEADROOM of the available memory (with ``allow_large``: over the total memory).
    Disk: over the free space where ``out_dir`` lives (``allow_large`` cannot help). Time: over
    ``max_seconds`` unless ``allow_large``.
    """
    override = "; give --allow-large to run it anyway"
    avail = available_memory_bytes()
    mem_limit = total_memory_bytes() if allow_large else MEMORY_HEADROOM * avail
    if est.memory_bytes > mem_limit:
        limit = (f"the machine has {mem_limit / GB:.1f} GB" if allow_large
                 else f"{avail / GB:.1f} GB available{override}")
        raise ResourceLimitError(f"{est.what}: needs about {est.memory_bytes / GB:.1f} GB of memory, {limit}")
    free = free_disk_bytes(out_dir)
    if est.disk_bytes > free:
        raise ResourceLimitError(f"{est.what}: writes about {format_bytes(est.disk_bytes)}, {format_bytes(free)} "
                                 f"free on the disk of {out_dir}")
    if est.seconds > max_seconds and not allow_large:
        raise ResourceLimitError(f"{est.what}: would take about {format_seconds(est.seconds)}, over the "
                                 f"{format_seconds(max_seconds)} limit{override}")
