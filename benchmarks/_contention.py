"""Shared helper of the CPU benchmarks: time the same calls idle and with one core kept busy by a competing
process that the benchmark itself starts and stops (``yes > /dev/null``, or a Python busy loop where there is
no ``yes``), so every benchmark reports both figures from the same run.

    import _contention  # first import of every benchmark: it imports Doppel's core before torch
    from _contention import busy_core, time_idle_and_busy, machine_line

    rows = time_idle_and_busy({"rasterize 512": lambda: rasterize(v, f, cam)}, repeats=10)
    for name, r in rows.items():
        print(f"{name}: idle {r.idle_ms:.1f} ms, one core busy {r.busy_ms:.1f} ms ({r.ratio:.1f}x)")

Idle and busy rounds alternate in blocks (idle, busy, idle, busy, ...) so that slow drifts of the machine's
load (other jobs on a shared machine) fall on both figures alike; times are medians over all rounds.

Importing this module imports Doppel's ``core`` (adding the repository root to sys.path), so a benchmark
that imports it first runs as a user's script that imports a Doppel package before torch: OpenMP's passive
wait policy (core/runtime.py). ``DOPPEL_NO_TUNING=1 python benchmarks/X.py`` gives OpenMP's defaults.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import core  # noqa: E402, F401 - before torch: OpenMP's passive wait policy (core/runtime.py)

BUSY_SETTLE_S = 0.2   # the scheduler spreads the busy process before timing starts


@contextlib.contextmanager
def busy_core() -> Iterator[subprocess.Popen]:
    """One process that keeps one core busy for the duration of the block (killed on exit, also on errors)."""
    cmd = ["yes"] if shutil.which("yes") else [sys.executable, "-c", "while True: pass"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(BUSY_SETTLE_S)
        yield proc
    finally:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class IdleBusy:
    """Median wall times (ms) of one call: idle machine (as far as this benchmark controls it) and with one
    core kept busy; ratio = busy / idle. min_* are the best rounds."""

    idle_ms: float
    busy_ms: float
    idle_min_ms: float
    busy_min_ms: float

    @property
    def ratio(self) -> float:
        return self.busy_ms / self.idle_ms


def _round(fns: dict[str, Callable[[], object]], times: dict[str, list[float]], repeats: int) -> None:
    """Every call once per round; a call that returns a list of floats reports its own samples (ms, e.g. the
    iterations of an optimisation read from its progress callback) instead of its wall time."""
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            res = fn()
            dt = (time.perf_counter() - t0) * 1000
            times[name].extend(res if isinstance(res, list) else [dt])


def time_idle_and_busy(fns: dict[str, Callable[[], object]], repeats: int = 10, blocks: int = 2,
                       busy: bool = True) -> dict[str, IdleBusy]:
    """Warm every call up once, then ``blocks`` x (``repeats`` idle rounds, ``repeats`` busy rounds); in a
    round every call runs once, in turn. busy=False skips the busy rounds (busy figures are then NaN)."""
    for fn in fns.values():
        fn()
    idle: dict[str, list[float]] = {n: [] for n in fns}
    hot: dict[str, list[float]] = {n: [] for n in fns}
    for _ in range(blocks):
        _round(fns, idle, repeats)
        if busy:
            with busy_core():
                _round(fns, hot, repeats)
    nan = float("nan")
    return {n: IdleBusy(statistics.median(idle[n]), statistics.median(hot[n]) if hot[n] else nan,
                        min(idle[n]), min(hot[n]) if hot[n] else nan) for n in fns}


def time_once_idle_and_busy(fn: Callable[[], object]) -> IdleBusy:
    """For long calls (seconds): one idle run, then one run with a core kept busy (no warm-up)."""
    t0 = time.perf_counter()
    fn()
    idle = (time.perf_counter() - t0) * 1000
    with busy_core():
        t0 = time.perf_counter()
        fn()
        hot = (time.perf_counter() - t0) * 1000
    return IdleBusy(idle, hot, idle, hot)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other processes on a shared machine), as text."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_line() -> str:
    """One line naming what the figures depend on: CPUs, torch threads, OpenMP policy, tuning, load."""
    import torch

    from core.runtime import openmp_policy

    return (f"# {platform.machine()} {os.cpu_count()} CPUs | torch {torch.__version__} "
            f"{torch.get_num_threads()} threads | OpenMP wait policy: {openmp_policy()} | "
            f"load average {load_average()}")


def table(rows: dict[str, IdleBusy]) -> str:
    """A compact text table: name, idle median / min, busy median / min, ratio."""
    w = max(len(n) for n in rows)
    out = [f"{'what':<{w}}  {'idle ms (min)':>16}  {'1 core busy ms (min)':>22}  {'busy/idle':>9}"]
    for n, r in rows.items():
        out.append(f"{n:<{w}}  {r.idle_ms:>8.1f} ({r.idle_min_ms:>5.1f})  {r.busy_ms:>13.1f} ({r.busy_min_ms:>5.1f})  "
                   f"{r.ratio:>8.1f}x")
    return "\n".join(out)
