"""core.runtime: the process tuning the CLI applies (glibc malloc thresholds, OpenMP wait policy)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_keep_freed_memory_takes_effect_on_glibc():
    from core.runtime import keep_freed_memory

    assert keep_freed_memory() is True


def test_tune_process_respects_the_user_and_the_opt_out():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "DOPPEL_NO_TUNING")}
    code = ("import os, sys; from core.runtime import tune_process; r = tune_process(); "
            "print(r['omp_passive'], os.environ.get('OMP_WAIT_POLICY'))")
    clean = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                           text=True, check=True).stdout.split()
    assert clean == ["True", "PASSIVE"]
    user_env = {**env, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "ACTIVE"}
    user = subprocess.run([sys.executable, "-c", code], env=user_env, capture_output=True, text=True,
                          check=True).stdout.split()
    assert user == ["False", "ACTIVE"]
    late = subprocess.run([sys.executable, "-c", "import torch; " + code], env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=True).stdout.split()
    assert late == ["False", "None"]   # torch already loaded OpenMP: too late, nothing set
    off = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT), "DOPPEL_NO_TUNING": "1"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert off == ["False", "None"]
