"""Frames the face detector loses inside a shot: passed through (``--bridge 0``) or swapped at the track's bridged
pose (``--bridge 2``, the default).

A small, motion-blurred `doppel capture plate` (fast turns at 320x180 with a 180-degree shutter: where MediaPipe
drops frames) is swapped both ways. Printed: the frames each swap left unswapped; for the frames the default
bridged, the mean absolute difference (8-bit levels) inside the ground truth's face mask between the output and
the ground truth (the double's face is meant to be there) with the frame passed through (the performer's own
face: the flash) and bridged, next to the same figure over the frames the detector found; and where the bridged
frames put the double's landmarks against the ground truth's (inter-ocular distances), next to the found frames.

    PYTHONPATH=. python benchmarks/swap_dropouts.py [--plate-dir DIR] [--frames 48] [--size 320x180]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import doppel  # noqa: F401  (Doppel's process tuning before torch)


def make_plate(out: Path, args) -> None:
    cmd = [sys.executable, "-m", "doppel", "capture", "plate", "--out", str(out), "--frames", str(args.frames),
           "--size", args.size, "--shutter", "180", "--shutter-samples", "4"]
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


def face_difference(img, gt, mask) -> float:
    import numpy as np

    return float(np.abs(img.astype(np.float64) - gt)[mask].mean())


def main() -> None:
    import cv2
    import numpy as np

    from doppel.doubles import build_default_rig
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import side_folder, swap_plate
    from doppel.face_swap.render_head import project
    from doppel.face_swap.swap import SwapConfig
    from reconstruction.head_tracking import inter_ocular

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plate-dir", type=Path, default=None)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="320x180")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="swap_dropouts_"))
    plate = args.plate_dir or work / "plate"
    if args.plate_dir is None:
        make_plate(plate, args)
    ann = np.load(plate / "ground_truth" / "annotations.npz")
    n = len(ann["head_ypr_deg"])
    r, params, _ = build_default_rig("anny", seed=0)
    double = load_face_double(r.save(work / "double", params=params), work)
    res = {}
    for bridge in (0, 2):
        res[bridge] = swap_plate(plate / "plate" / "frames", double, work / f"b{bridge}", SwapConfig(bridge=bridge))
    t = np.load(side_folder(work / "b2") / "tracks.npz")
    bridged = np.flatnonzero(t["face_bridged"])
    found = [f for f in range(n) if t["valid"][f] and not t["face_bridged"][f]]
    print(f"plate {plate}: {n} frames; unswapped: --bridge 0 {[q.frame for q in res[0].frames if not q.swapped]}, "
          f"--bridge 2 {[q.frame for q in res[2].frames if not q.swapped]}; bridged {bridged.tolist()}")

    def read(folder, f):
        return cv2.imread(str(folder / f"{f:06d}.png"))

    def diffs(frames, folder):
        out = []
        for f in frames:
            mask = cv2.imread(str(plate / "ground_truth" / "masks" / f"face_{f:06d}.png"), cv2.IMREAD_GRAYSCALE) > 127
            gt = read(plate / "ground_truth" / "frames", f)
            if mask.sum() >= 20:
                out.append(face_difference(read(folder, f), gt, mask))
        return float(np.mean(out)) if out else float("nan")

    def placed(frames):
        errs = []
        for f in frames:
            p = project(double.basis.points(t["expression"][f]), t["rotation"][f], t["translation"][f], t["K"])
            gt, vis = ann["landmarks2d"][f][double.basis.ids], ann["landmarks_visible"][f][double.basis.ids]
            errs.append(np.linalg.norm(p - gt, axis=-1)[vis].mean() / inter_ocular(ann["landmarks2d"][f]))
        return float(np.mean(errs)) if errs else float("nan")

    print(f"face-mask difference to the ground truth (levels): bridged frames passed through "
          f"{diffs(bridged, work / 'b0'):.2f}, bridged {diffs(bridged, work / 'b2'):.2f}; found frames swapped "
          f"{diffs(found, work / 'b2'):.2f}")
    print(f"placement (IOD): bridged frames {placed(bridged):.4f}, found frames {placed(found):.4f}")


if __name__ == "__main__":
    main()
