"""A C3D marker take solved by Doppel (`mocap_retarget.clip_c3d`) against the skeleton the capture's own pipeline
solved from the same markers (a BVH of the take), bone by bone: the angle between each bone's world direction in
the two, per frame, after one rotation about the vertical that best aligns the two worlds (the vendor's export may
turn the lab's axes) and the frame offset that matches them best.

    python benchmarks/c3d_vs_vendor_bvh.py TAKE.c3d TAKE.bvh [--bvh-units cmu]

The public pair it was run on: the CMU motion-capture database's subject 01 trial 01 (a walk): 01_01.c3d (e.g. in
github.com/surenkum/c3d_to_xyz) and the cgspeed BVH conversion of the same trial (the CMU team's own solve, from
Vicon's software, ASF/AMC converted to BVH) in ../shared/fixtures/mocap/cmu_01_01_walk.bvh. Neither is shipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mocap_retarget.bvh import read_bvh
from mocap_retarget.clip_c3d import read_c3d_clip

# bone: (Doppel's joints a -> b, the vendor BVH's a -> b) (CMU / Mixamo-style names)
BONES = {f"{part}_{s[0].lower()}": ((f"{s}{a}", f"{s}{b}"), (f"{s}{a}", f"{s}{b}"))
         for s in ("Left", "Right")
         for part, a, b in (("thigh", "UpLeg", "Leg"), ("shin", "Leg", "Foot"), ("foot", "Foot", "ToeBase"),
                            ("upper_arm", "Arm", "ForeArm"), ("forearm", "ForeArm", "Hand"))}
BONES |= {"trunk": (("Hips", "Neck"), ("Hips", "Neck")), "neck": (("Neck", "Head"), ("Neck", "Head"))}


def directions(motion, pairs) -> np.ndarray:
    _, P = motion.forward_kinematics()
    d = np.stack([P[:, motion.index(b)] - P[:, motion.index(a)] for a, b in pairs], axis=1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def yaw_alignment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation about +Y taking directions a (N, 3) best onto b (N, 3)."""
    ang = np.arctan2(np.sum(a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]), np.sum(a[:, 0] * b[:, 0] + a[:, 2] * b[:, 2]))
    c, s = np.cos(ang), np.sin(ang)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def compare(ours, vendor, offset: int):
    n = min(ours.shape[0], vendor.shape[0] - offset)
    a, b = ours[:n], vendor[offset:offset + n]
    R = yaw_alignment(a.reshape(-1, 3), b.reshape(-1, 3))
    a = a @ R.T
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1, 1))), R


def jitter(d: np.ndarray) -> float:
    """RMS over frames and bones of the second difference of the bones' unit directions (F, B, 3), degrees."""
    return float(np.degrees(np.sqrt(np.mean(np.sum(np.diff(d, 2, axis=0) ** 2, axis=-1)))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("c3d")
    ap.add_argument("bvh")
    ap.add_argument("--bvh-units", default="auto")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ours = read_c3d_clip(args.c3d)
    t_solve = time.perf_counter() - t0
    vendor = read_bvh(args.bvh, units=args.bvh_units)
    da = directions(ours, [p[0] for p in BONES.values()])
    db = directions(vendor, [p[1] for p in BONES.values()])
    best = min(range(0, 3), key=lambda o: compare(da, db, o)[0].mean())
    err, R = compare(da, db, best)
    yaw = np.degrees(np.arctan2(R[0, 2], R[0, 0]))
    print(f"{args.c3d}: {ours.num_frames} frames at {ours.fps:g} Hz solved in {t_solve:.2f} s; vendor BVH "
          f"{vendor.num_frames} frames; frame offset {best}, worlds turned {yaw:.1f} deg about up")
    print(f"{'bone':<12} {'median':>7} {'mean':>7} {'p95':>7} {'max':>7}   (degrees between the bone's directions)")
    for k, name in enumerate(BONES):
        e = err[:, k]
        print(f"{name:<12} {np.median(e):7.2f} {e.mean():7.2f} {np.percentile(e, 95):7.2f} {e.max():7.2f}")
    print(f"{'all':<12} {np.median(err):7.2f} {err.mean():7.2f} {np.percentile(err, 95):7.2f} {err.max():7.2f}")
    print(f"frame-to-frame jitter (RMS second difference of the bones' directions): Doppel {jitter(da):.3f} deg, "
          f"the vendor's {jitter(db):.3f} deg")


if __name__ == "__main__":
    main()
