"""Benchmark of issue 6's temporal smoothness: score `doppel fit SESSION --landmarks INGEST --frame all` on a
multi-frame synthetic take (`doppel capture synth --frames N`) against the ground truth of every frame.

    PYTHONPATH=. python -m doppel capture synth --out W --cameras 12 --size 768 --seed S --frames 5
    PYTHONPATH=. python -m doppel capture ingest W/session --out W/ingest
    PYTHONPATH=. python -m doppel fit W/session --landmarks W/ingest --out W/fit --frame all
    PYTHONPATH=. python -m doppel fit W/session --landmarks W/ingest --out W/fit_free --frame all --temporal-weight 0
    PYTHONPATH=. python benchmarks/fit_sequence.py W --fit fit fit_free

Per fit folder: the mean vertex error of every frame (mm; the first frame's model fit before silhouette detail,
so that every frame is compared alike), and the jitter: the mean over vertices and inner frames of
|a_fit - a_true| with a = x[t+1] - 2 x[t] + x[t-1] (mm; the motion is smooth, so this is what a fit adds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import trimesh


def _mesh(path: Path) -> np.ndarray:
    return np.asarray(trimesh.load(path, process=False).vertices)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--fit", nargs="+", default=["fit"])
    args = ap.parse_args()
    frames = sorted(p.name for p in (args.work / "ground_truth" / "frames").iterdir())
    gt = np.stack([_mesh(args.work / "ground_truth" / "frames" / f / "mesh.ply") for f in frames])
    print(f"{args.work}: {len(frames)} frames")
    for name in args.fit:
        root = args.work / name
        first = root / ("model_fit_mesh.ply" if (root / "model_fit_mesh.ply").is_file() else "fit_mesh.ply")
        fit = np.stack([_mesh(first)] + [_mesh(root / "frames" / f / "fit_mesh.ply") for f in frames[1:]])
        err = np.linalg.norm(fit - gt, axis=-1).mean(1) * 1000
        acc = lambda x: x[2:] - 2 * x[1:-1] + x[:-2]  # noqa: E731
        jitter = np.linalg.norm(acc(fit) - acc(gt), axis=-1).mean() * 1000 if len(frames) > 2 else float("nan")
        m = json.loads((root / "metrics.json").read_text())
        secs = sum(v["seconds"] for v in m.get("frames", {}).values())
        print(f"{name}: w_temporal {m.get('w_temporal')}: vertex error per frame (mm) "
              f"{' '.join(f'{e:.2f}' for e in err)}, mean {err.mean():.2f}; jitter {jitter:.2f} mm; "
              f"{secs:.1f} s for all frames")


if __name__ == "__main__":
    main()
