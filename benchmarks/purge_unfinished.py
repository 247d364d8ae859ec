"""What finding a killed run's leftovers costs: gated runs with and without declared outputs (a `run.begin` audit
record each, `assets.unfinished_runs`), and the purge plan of a consent with N outputs in one folder, in one run.

    PYTHONPATH=. python benchmarks/purge_unfinished.py [--runs 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path


def one(runs: int, declare: bool) -> tuple[float, float, int]:
    """(seconds per gated run, seconds of plan_purge, items to delete) for ``runs`` runs of one consent."""
    from assets.actors import add_actor
    from assets.consent import grant, revoke
    from assets.consent_purge import plan_purge
    from assets.workspace import Workspace
    from doppel.consent_gate import gated

    root = Path(tempfile.mkdtemp(prefix="purge_unfinished_")) / "ws"
    try:
        ws = Workspace.init(root)
        add_actor(ws, "Jane", actor_id="jane")
        c = grant(ws, "jane", "retarget", "Film", dt.date.today() + dt.timedelta(days=9))
        (root / "anims").mkdir()
        t0 = time.perf_counter()
        for i in range(runs):
            out = root / "anims" / f"take{i:05d}.npz"
            with gated(ws, "jane", "retarget", "Film", command="retarget", outputs=[out] if declare else ()) as run:
                out.write_bytes(b"x" * 64)
                run.add_output(out, kind="animation")
        per_run = (time.perf_counter() - t0) / runs
        revoke(ws, c.id, "withdrawn")
        t0 = time.perf_counter()
        plan = plan_purge(ws, c.id)
        return per_run, time.perf_counter() - t0, len(plan.to_delete)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    a = ap.parse_args()
    for declare in (False, True):
        per_run, plan, n = one(a.runs, declare)
        print(f"{a.runs} gated runs, outputs {'declared (run.begin)' if declare else 'not declared'}: "
              f"{per_run * 1000:.2f} ms per run; plan_purge {plan:.2f} s ({n} to delete)")


if __name__ == "__main__":
    main()
