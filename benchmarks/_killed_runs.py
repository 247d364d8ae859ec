"""Runs of a `doppel` command in a child process, timed, or killed (SIGKILL, its whole process group) once it has
done enough: what the resume benchmarks (`swap_resume.py`, `shot_resume.py`) measure against."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable


def timed(cmd: list[str]) -> float:
    """Run ``cmd`` to its end (it must succeed); the seconds it took."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def killed(cmd: list[str], far_enough: Callable[[], bool]) -> float:
    """Run ``cmd``, SIGKILL it (and its children) once ``far_enough()`` says so; the seconds it ran."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while p.poll() is None:
        if far_enough():
            os.killpg(p.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    p.wait()
    return time.perf_counter() - t0
