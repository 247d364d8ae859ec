"""core.runtime: the process tuning (glibc malloc thresholds, OpenMP wait policy), applied when a Doppel
package is imported before torch, with a one-line warning when torch came first (issue 20)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "DOPPEL_NO_TUNING", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    """A plain `python -c CODE` with this tree on the path and no OpenMP setting unless given."""
    return subprocess.run([sys.executable, "-W", "default", "-c", code], env={**CLEAN_ENV, "PYTHONPATH": str(ROOT),
                          **env}, capture_output=True, text=True, check=True, cwd=str(ROOT))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_keep_freed_memory_takes_effect_on_glibc():
    from core.runtime import keep_freed_memory

    assert keep_freed_memory() is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_release_freed_memory_returns_kept_blocks_in_the_middle_of_the_heap():
    """Freed blocks kept for reuse (keep_freed_memory) stay resident, also below a block still in use (where
    growing and shrinking the heap's top cannot give them back); release_freed_memory hands them back."""
    code = ("import os, numpy as np; from core.runtime import keep_freed_memory, release_freed_memory\n"
            "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') >> 20\n"
            "assert keep_freed_memory(); base = rss()\n"
            "blocks = [np.ones(2 ** 20, np.uint8) for _ in range(256)]; live = np.ones(2 ** 16, np.uint8)\n"
            "del blocks; kept = rss(); assert release_freed_memory(); print(base, kept, rss())")
    base, kept, released = (int(x) for x in _run(code).stdout.split())
    assert kept - base > 200 and released - base < 50, (base, kept, released)


def test_tune_process_respects_the_user_and_the_opt_out():
    code = ("import os, sys; from core.runtime import tune_process; r = tune_process(); "
            "print(r['omp_passive'], os.environ.get('OMP_WAIT_POLICY'))")
    assert _run(code).stdout.split() == ["True", "PASSIVE"]
    assert _run(code, OMP_WAIT_POLICY="ACTIVE").stdout.split() == ["False", "ACTIVE"]
    late = _run("import torch; " + code)
    # torch already loaded OpenMP: too late for torch (False), but the policy is set for OpenMP runtimes
    # loaded later (numba's) and child processes, and the warning says so
    assert late.stdout.split() == ["False", "PASSIVE"]
    assert "ThreadingWarning" in late.stderr
    assert _run(code, DOPPEL_NO_TUNING="1").stdout.split() == ["False", "None"]


# Records OMP_WAIT_POLICY at the moment torch starts loading (a meta-path finder sees the import first).
_WATCH_TORCH = """
import os, sys
seen = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
        return None
sys.meta_path.insert(0, Watch())
"""


@pytest.mark.parametrize("package", ["neural_render", "capture", "rigging", "reconstruction.fitting"])
def test_plain_import_sets_the_passive_policy_before_torch_loads(package):
    """A user's script that imports a Doppel package (no environment variable) gets OMP_WAIT_POLICY=PASSIVE
    in the environment before torch (and its OpenMP runtime) is loaded, and no warning."""
    r = _run(_WATCH_TORCH + f"import {package}\nprint(seen, 'torch' in sys.modules)")
    assert r.stdout.split() == ["['PASSIVE']", "True"]
    assert "ThreadingWarning" not in r.stderr


def test_torch_first_warns_once_in_one_line_with_the_fix():
    r = _run("import torch\nimport neural_render\nimport rigging\nimport capture\n")
    lines = [ln for ln in r.stderr.splitlines() if "ThreadingWarning" in ln]
    assert len(lines) == 1                       # once, however many Doppel packages follow
    assert "OMP_WAIT_POLICY=PASSIVE" in lines[0] and "before torch" in lines[0]
    assert lines[0].startswith("<string>:2:")    # points at the user's import line, not at Doppel's __init__
    quiet = _run("import torch\nimport neural_render\n", DOPPEL_NO_TUNING="1")
    assert "ThreadingWarning" not in quiet.stderr
    user = _run("import torch\nimport neural_render\n", OMP_WAIT_POLICY="PASSIVE")
    assert "ThreadingWarning" not in user.stderr


# OpenMP's behaviour, measured deterministically (no competing process, no wall-clock ratio): after each
# parallel region the program sleeps GAP_MS; a busy-waiting worker thread burns CPU through the gap (the
# default policy spins for milliseconds), a passive one sleeps. CPU time per region tells them apart on any
# machine with >= 2 cores, loaded or not.
GAP_MS = 4.0
_SPIN_PROBE = """
{first}
import time, torch
torch.set_num_threads(2)
x = torch.rand(2_000_000)
def regions(n):
    c0 = time.process_time()
    for _ in range(n):
        x.mul(1.0001)            # one parallel region over both threads
        time.sleep({gap} / 1000)
    return (time.process_time() - c0) / n * 1000
regions(5)
print(regions(40))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="libgomp throttles spinning when threads exceed cores")
def test_plain_import_stops_openmp_busy_waiting():
    tuned = float(_run(_SPIN_PROBE.format(first="import neural_render", gap=GAP_MS)).stdout)
    untuned = float(_run(_SPIN_PROBE.format(first="import neural_render", gap=GAP_MS), DOPPEL_NO_TUNING="1").stdout)
    # measured on the 2-core machine: tuned 0.9-1.6 ms CPU per region (the multiply itself), untuned 11-12 ms
    assert untuned > GAP_MS * 0.75, f"the control should spin through the {GAP_MS} ms gaps: {untuned:.2f} ms"
    assert tuned < 0.5 * untuned, f"passive policy not in effect: {tuned:.2f} vs {untuned:.2f} ms CPU per region"


def test_openmp_policy_says_what_torch_got():
    code = "import neural_render\nfrom core.runtime import openmp_policy\nprint(openmp_policy())"
    assert _run(code).stdout.startswith("PASSIVE (set by Doppel before torch")
    assert "busy-wait" in _run("import torch\n" + code).stdout
    assert _run(code, OMP_WAIT_POLICY="ACTIVE").stdout.startswith("ACTIVE (set by the user)")
    assert _run(code, DOPPEL_NO_TUNING="1").stdout.startswith("off")


def test_openblas_idle_threads_sleep_when_doppel_comes_before_numpy():
    code = "import os, core, numpy; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    assert _run(code).stdout.split() == ["4"]
    assert _run(code, OPENBLAS_THREAD_TIMEOUT="10").stdout.split() == ["10"]       # the user's value wins
    assert _run("import numpy; " + code.replace("import os, core, numpy", "import os, core")).stdout.split() \
        == ["None"]                                                                  # too late: not pretended
    assert _run(code, DOPPEL_NO_TUNING="1").stdout.split() == ["None"]
