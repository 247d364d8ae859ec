"""Calibrate the MediaPipe -> Anny landmark regressor (reconstruction/fitting/landmark_regressor.py).

    PYTHONPATH=. python scripts/calibrate_landmarks.py --work /tmp/cal --seeds 100-109 \
        [--out reconstruction/fitting/data/anny_mediapipe_regressor.npz]

For every seed: `doppel capture synth` (16 views at 1024 px of the virtual actor; skipped when WORK/sSEED
already has it) and `doppel capture ingest` (real MediaPipe pose, face mesh and hands on the rendered
images, triangulated). The ground-truth meshes and the triangulated landmarks are then fitted by
`fit_regressor`. Prints the leave-one-actor-out error per landmark set. The seeds used are recorded in
the file: never report fitting benchmarks on them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconstruction.fitting.landmark_regressor import (
    DEFAULT_PATH,
    SET_OFFSETS,
    SET_SIZES,
    fit_regressor,
)

MAX_TRIANGULATION_PX = 8.0   # landmarks triangulated with a larger reprojection error are not used


def seeds_arg(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def make_capture(work: Path, seed: int, cameras: int, size: int) -> Path:
    w = work / f"s{seed}"
    if not (w / "ingest" / "triangulated.json").is_file():
        run = [sys.executable, "-m", "doppel"]
        subprocess.run([*run, "capture", "synth", "--out", str(w), "--cameras", str(cameras), "--size", str(size),
                        "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*run, "capture", "ingest", str(w / "session"), "--out", str(w / "ingest")], check=True,
                       stdout=subprocess.DEVNULL)
    return w


def triangulated_targets(w: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids (L,), points (L, 3), ok (L,)) of every set, frame 0."""
    tri = json.loads((w / "ingest" / "triangulated.json").read_text())
    frame = tri["frames"][sorted(tri["frames"])[0]]
    ids, pts, ok = [], [], []
    for key, entries in (("pose", frame["pose"]), ("face", frame["face"]), ("hands", frame["hands"])):
        for e in entries:
            if key == "hands":
                side, _, i = e["name"].partition("_")
                lid = SET_OFFSETS["hand.L" if side == "left" else "hand.R"] + int(i)
            else:
                lid = SET_OFFSETS[key] + int(e["index"])
            good = bool(e["ok"]) and e["X"] is not None and float(e["error_px"]) <= MAX_TRIANGULATION_PX
            ids.append(lid)
            pts.append(e["X"] if e["X"] is not None else [np.nan] * 3)
            ok.append(good)
    return np.asarray(ids, np.int64), np.asarray(pts, np.float64), np.asarray(ok, bool)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("100-109"))
    ap.add_argument("--cameras", type=int, default=16)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=DEFAULT_PATH)
    args = ap.parse_args()
    import trimesh

    all_ids = np.concatenate([np.arange(n) + SET_OFFSETS[s] for s, n in SET_SIZES.items()])
    verts, targets, oks = [], [], []
    for seed in args.seeds:
        w = make_capture(args.work, seed, args.cameras, args.size)
        ids, pts, ok = triangulated_targets(w)
        pos = {int(i): r for r, i in enumerate(ids)}
        T = np.full((len(all_ids), 3), np.nan)
        O = np.zeros(len(all_ids), bool)
        for r, lid in enumerate(all_ids):
            if int(lid) in pos:
                T[r], O[r] = pts[pos[int(lid)]], ok[pos[int(lid)]]
        verts.append(np.asarray(trimesh.load(w / "ground_truth" / "mesh.ply", process=False).vertices))
        targets.append(np.nan_to_num(T))
        oks.append(O)
        print(f"seed {seed}: {int(O.sum())} of {len(all_ids)} landmarks usable", flush=True)
    reg = fit_regressor(verts, targets, oks, all_ids)
    import anny

    from reconstruction.fitting.landmark_regressor import LandmarkRegressor, landmark_set

    reg = LandmarkRegressor(ids=reg.ids, index=reg.index, weight=reg.weight, residual_mm=reg.residual_mm,
                            num_vertices=reg.num_vertices,
                            meta={"model": "anny", "anny_version": getattr(anny, "__version__", "?"),
                                  "detector": "mediapipe 0.10.21 (pose complexity 1, face mesh with irises, hands)",
                                  "calibration_seeds": args.seeds, "views": args.cameras, "size_px": args.size,
                                  "max_triangulation_px": MAX_TRIANGULATION_PX})
    reg.save(args.out)
    sets = np.array([landmark_set(int(i)) for i in reg.ids])
    for s in SET_SIZES:
        r = reg.residual_mm[sets == s]
        r = r[np.isfinite(r)]
        if len(r):
            print(f"{s:7s} {int((sets == s).sum()):3d} landmarks, leave-one-actor-out error mean {r.mean():.2f} mm, "
                  f"median {np.median(r):.2f} mm, p95 {np.percentile(r, 95):.2f} mm")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
