"""Benchmark of issue 6 (session path): score a `doppel fit SESSION --landmarks INGEST` fit folder against the
ground truth that `doppel capture synth` wrote beside the session (the fitter never reads it).

    PYTHONPATH=. python -m doppel capture synth --out W --cameras 8 --size 512 --seed 11
    PYTHONPATH=. python -m doppel capture ingest W/session --out W/ingest
    PYTHONPATH=. python -m doppel fit W/session --landmarks W/ingest --out W/fit
    PYTHONPATH=. python benchmarks/fit_session.py W

Prints the vertex-to-vertex error (mean / p95, mm) of W/fit/fit_mesh.ply against W/ground_truth/mesh.ply
(same Anny topology), the reprojection error and stage times from metrics.json, and the fitted phenotype
next to the true one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import trimesh


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path, help="folder with ground_truth/ and fit/")
    ap.add_argument("--fit", default="fit", help="fit folder name inside WORK")
    args = ap.parse_args()
    gt = trimesh.load(args.work / "ground_truth" / "mesh.ply", process=False).vertices
    fit = trimesh.load(args.work / args.fit / "fit_mesh.ply", process=False).vertices
    if gt.shape != fit.shape:
        raise SystemExit(f"topologies differ: ground truth {gt.shape}, fit {fit.shape}")
    e = np.linalg.norm(fit - gt, axis=1) * 1000
    m = json.loads((args.work / args.fit / "metrics.json").read_text())
    gtp = json.loads((args.work / "ground_truth" / "params.json").read_text())
    fitp = json.loads((args.work / args.fit / "params.json").read_text())
    print(f"seed {gtp['seed']}: {gtp['n_cameras']} views at {gtp['size']} px")
    print(f"vertex error mean {e.mean():.2f} mm, p95 {np.percentile(e, 95):.2f} mm, max {e.max():.2f} mm")
    print(f"reprojection {m['reprojection_px']:.2f} px, views seeing the person {m['views_seeing_person']}")
    print(f"stage seconds {m['seconds']} total {sum(m['seconds'].values()):.1f} s")
    print("phenotype truth vs fit:", {k: (round(float(v), 3), round(fitp['shape'].get(k, float('nan')), 3))
                                      for k, v in gtp["phenotype"].items()})


if __name__ == "__main__":
    main()
