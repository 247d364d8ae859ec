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
When it makes the take itself, the weight-1 fit runs a second time with one core kept busy by a process the
benchmark starts and stops (fit_w1_busy; benchmarks/_contention.py), so its time is printed both ways.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _contention  # first third-party import: Doppel's core before torch (benchmarks/_contention.py)
import numpy as np
import trimesh


def _mesh(path: Path) -> np.ndarray:
    return np.asarray(trimesh.load(path, process=False).vertices)


def _make_take_and_fits(seed: int = 34) -> Path:
    import subprocess
    import sys
    import tempfile

    w = Path(tempfile.mkdtemp(prefix="doppel_fit_sequence_"))
    run = [sys.executable, "-m", "doppel"]
    cmds = [["capture", "synth", "--out", str(w), "--cameras", "12", "--size", "768", "--seed", str(seed),
             "--frames", "5"], ["capture", "ingest", str(w / "session"), "--out", str(w / "ingest")]]
    cmds += [["fit", str(w / "session"), "--landmarks", str(w / "ingest"), "--out", str(w / f"fit_w{t}"), "--frame",
              "all", "--temporal-weight", t] for t in ("1", "0")]
    for cmd in cmds:
        subprocess.run(run + cmd, check=True, stdout=subprocess.DEVNULL)
    with _contention.busy_core():
        subprocess.run(run + [c if c != str(w / "fit_w1") else str(w / "fit_w1_busy") for c in cmds[2]], check=True,
                       stdout=subprocess.DEVNULL)
    print(f"load average {_contention.load_average()}")
    return w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path, nargs="?",
                    help="a synthetic take with ground_truth/frames/ (default: make one in a temporary folder: "
                         "synth --cameras 12 --size 768 --seed 34 --frames 5, ingest, fits with --temporal-weight 1 "
                         "and 0 into fit_w1 and fit_w0)")
    ap.add_argument("--fit", nargs="+", default=["fit"])
    args = ap.parse_args()
    if args.work is None:
        args.work, args.fit = _make_take_and_fits(), ["fit_w1", "fit_w0", "fit_w1_busy"]
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
