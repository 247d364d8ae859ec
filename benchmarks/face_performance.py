"""A face performance read from footage, against the performance that made the footage.

The synthetic plate (`doppel capture plate`: virtual actor B performs, a handheld camera films; the ground truth
knows B's head rotation and the expression weights B was posed with) is swapped by `doppel swap`'s library path
with the double A (defaults, the plate's focal length), and its face track becomes an animation of A's rig
(`doppel.face_performance.face_animation`, what `doppel retarget SWAP_FOLDER` runs). Scored per frame:

- head: the rig's posed head rotation (forward kinematics of the animation, world axes) against B's skull
  rotation in the camera as a performer facing the lens sees it (`CAMERA_TO_FACING @ head_R_cam`): the angle
  between them, and yaw / pitch errors (a convention or sign error shows as errors of twice the motion); also
  after taking out the take's median offset (A's head sits on its neck a little differently from B's);
- expressions: the animation's weights of the blendshapes B was posed with (jawOpen, smiles, brows, blinks, ...)
  against B's: mean absolute error and correlation over the shot, per blendshape.

Usage: PYTHONPATH=. python benchmarks/face_performance.py [--plate-dir DIR] [--frames 120] [--work DIR]
[--performance talk|expressive]
(without --plate-dir a 640x360 raster plate of --frames frames is made first, about a second a frame).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def make_plate(out: Path, frames: int, performance: str = "talk") -> Path:
    from doppel.synthetic_plate import PlateConfig, render_plate

    render_plate(out, PlateConfig(frames=frames, width=640, height=360, renderer="raster", performance=performance))
    return out


def swap_take(plate_dir: Path, work: Path):
    """(take, rig A, seconds): the plate swapped with the double A; its face track read back."""
    from doppel.doubles import build_default_rig
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig
    from doppel.face_take_read import read_face_take

    summary = json.loads((plate_dir / "ground_truth" / "annotations.json").read_text())
    cams = json.loads((plate_dir / "plate" / "cameras.json").read_text())
    rig, params, _ = build_default_rig("anny", seed=int(summary["double_seed"]))
    double = load_face_double(rig.save(work / "double", params=params), work)
    t = time.perf_counter()
    out = work / "swapped.mp4"
    swap_plate(plate_dir / "plate" / "plate.mp4", double, out, SwapConfig(focal_px=float(cams["frames"][0]["K"][0][0])),
               force=True)
    return read_face_take(side_folder(out)), rig, time.perf_counter() - t


def ground_truth(plate_dir: Path, frames: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(F, 3, 3) B's head rotation as seen facing the lens, {blendshape: (F,) weight B was posed with}."""
    from doppel.face_performance import CAMERA_TO_FACING
    from doppel.synthetic_plate import performance

    ann = np.load(plate_dir / "ground_truth" / "annotations.npz")
    if "expression_weights" in ann:
        return CAMERA_TO_FACING @ ann["head_R_cam"], dict(zip(ann["expression_names"].tolist(),
                                                             ann["expression_weights"].T, strict=True))
    expr = [performance({}, (f + 0.5) / frames)[1] for f in range(frames)]     # plates from before stop 50
    return CAMERA_TO_FACING @ ann["head_R_cam"], {k: np.array([e[k] for e in expr]) for k in expr[0]}


def angles(R: np.ndarray) -> np.ndarray:
    """(F, 2) yaw about +Y and pitch (+ = up), degrees, of head rotations whose neutral faces +Z."""
    fwd = R[:, :, 2]
    return np.degrees(np.stack([np.arctan2(fwd[:, 0], fwd[:, 2]), np.arcsin(np.clip(fwd[:, 1], -1, 1))], 1))


def geodesic_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    c = (np.einsum("fij,fij->f", A, B) - 1) / 2
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


YAW_BINS = ((0, 15), (15, 30), (30, 45), (45, 60), (60, 90))


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation, rounded; None where either does not move."""
    if np.std(a) < 1e-9 or np.std(b) < 1e-6:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 3)


def score(take, rig, gt_R: np.ndarray, gt_w: dict) -> dict:
    from doppel.face_performance import face_animation, posed_head_rotations

    anim, _ = face_animation(take, rig, head="camera")
    est = posed_head_rotations(anim, rig)
    ok = take.valid
    err = geodesic_deg(est[ok], gt_R[ok])
    off = angles(est[ok]) - angles(gt_R[ok])
    med = np.median(off, 0)
    names = list(rig.blendshape_names)
    yaw = np.abs(angles(gt_R)[:, 0])
    expr = {}
    for k, g in gt_w.items():
        w = anim.blendshape_weights[:, names.index(k)]
        expr[k] = {"mae": round(float(np.abs(w[ok] - g[ok]).mean()), 3), "corr": _corr(w[ok], g[ok]),
                   "corr_by_yaw": {f"{lo}-{hi}": _corr(w[m], g[m]) for lo, hi in YAW_BINS
                                   if (m := ok & (yaw >= lo) & (yaw < hi)).sum() > 3},
                   "gt_range": [round(float(g.min()), 2), round(float(g.max()), 2)],
                   "solved_range": [round(float(w[ok].min()), 2), round(float(w[ok].max()), 2)]}
    gt_a = angles(gt_R[ok])
    return {"frames": int(len(ok)), "frames_with_face": int(ok.sum()),
            "gt_yaw_range_deg": [round(float(gt_a[:, 0].min()), 1), round(float(gt_a[:, 0].max()), 1)],
            "gt_pitch_range_deg": [round(float(gt_a[:, 1].min()), 1), round(float(gt_a[:, 1].max()), 1)],
            "head_angle_err_deg": {"mean": round(float(err.mean()), 2), "p90": round(float(np.percentile(err, 90)), 2)},
            "yaw_err_deg": {"mean_abs": round(float(np.abs(off[:, 0]).mean()), 2),
                            "after_median_offset": round(float(np.abs(off[:, 0] - med[0]).mean()), 2)},
            "pitch_err_deg": {"mean_abs": round(float(np.abs(off[:, 1]).mean()), 2),
                              "after_median_offset": round(float(np.abs(off[:, 1] - med[1]).mean()), 2)},
            "median_offset_yaw_pitch_deg": [round(float(m), 2) for m in med],
            "yaw_corr": round(float(np.corrcoef(angles(est[ok])[:, 0], gt_a[:, 0])[0, 1]), 4),
            "expressions": expr}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plate-dir", type=Path, help="a `doppel capture plate` folder (default: make one)")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    ap.add_argument("--performance", default="talk", help="without --plate-dir: the plate's face performance "
                    "(talk, or expressive: expressions independent of the head's turns)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="doppel_face_perf_"))
    work.mkdir(parents=True, exist_ok=True)
    plate = args.plate_dir or make_plate(work / "plate", args.frames, args.performance)
    frames = json.loads((plate / "ground_truth" / "annotations.json").read_text())["frames"]
    take, rig, secs = swap_take(plate, work)
    gt_R, gt_w = ground_truth(plate, frames)
    result = {"plate": str(plate), "swap_seconds": round(secs, 1), **score(take, rig, gt_R, gt_w)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
