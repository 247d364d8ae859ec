"""A process that runs N gated actions in a workspace (used by the concurrency and crash tests, and by
benchmarks/bench_consent_gate.py). Each action writes a small output file, then registers it through
the gate with the previous output as its input.

    python -m tests.assets.gate_worker WORKSPACE ACTOR PRODUCTION TAG N
"""

from __future__ import annotations

import sys
from pathlib import Path

from assets.workspace import Workspace
from doppel.consent_gate import gated


def run(root: str, actor: str, production: str, tag: str, n: int) -> None:
    ws = Workspace.open(root)
    out_dir = ws.root / "fits" / tag
    out_dir.mkdir(parents=True, exist_ok=True)
    prev = None
    for i in range(n):
        out = out_dir / f"{i:05d}.txt"
        with gated(ws, actor, "fit", production, command=f"worker-{tag}",
                   inputs=[prev] if prev else []) as g:
            out.write_text(f"{tag} {i}\n")
            g.add_output(out, kind="fit")
        prev = out
        print(i, flush=True)


if __name__ == "__main__":
    r, a, p, t, n = sys.argv[1:6]
    run(r, a, p, t, int(n))
