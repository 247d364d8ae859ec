"""A process that runs N gated actions in a workspace (used by the concurrency and crash tests, and by
benchmarks/bench_consent_gate.py). Each action writes a small output file, then registers it through
the gate with the previous output as its input.

    python -m tests.assets.gate_worker WORKSPACE ACTOR PRODUCTION TAG N [pause]

With ``pause``, the worker stops inside its first write transaction, after the audit record and
before the assets are inserted and committed, prints IN_TX and sleeps: the crash test kills it there.
With $GATE_WORKER_BARRIER set to a path, it prints READY once started and waits for that file to
exist before its first action, so that several workers start together.
"""

from __future__ import annotations

import os
import sys
import time

from assets.workspace import Workspace
from doppel.consent_gate import gated


def run(root: str, actor: str, production: str, tag: str, n: int) -> None:
    ws = Workspace.open(root)
    out_dir = ws.root / "fits" / tag
    out_dir.mkdir(parents=True, exist_ok=True)
    prev = None
    barrier = os.environ.get("GATE_WORKER_BARRIER")
    if barrier:
        print("READY", flush=True)
        while not os.path.exists(barrier):
            time.sleep(0.005)
    for i in range(n):
        out = out_dir / f"{i:05d}.txt"
        with gated(ws, actor, "fit", production, command=f"worker-{tag}",
                   inputs=[prev] if prev else []) as g:
            out.write_text(f"{tag} {i}\n")
            g.add_output(out, kind="fit")
        prev = out
        print(i, flush=True)


def pause_inside_transaction() -> None:
    import doppel.consent_gate as gate

    real = gate.insert_asset

    def stalled(con, **kw):
        real(con, **kw)
        print("IN_TX", flush=True)
        time.sleep(120)

    gate.insert_asset = stalled


if __name__ == "__main__":
    r, a, p, t, n = sys.argv[1:6]
    if sys.argv[6:] == ["pause"]:
        pause_inside_transaction()
    run(r, a, p, t, int(n))
