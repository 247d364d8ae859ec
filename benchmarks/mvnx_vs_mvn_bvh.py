"""An Xsens MVNX take read by Doppel against the BVH that MVN itself exported of the same take.

MVN's BVH export (joint names Hips, Chest, ..., LeftToe; centimetres, Y up) writes the subject's T-pose calibration
frame as its frame 0 and the take's frames 1..N-1 after it; its skeleton is the MVNX model's segments. Reported:
the offsets' largest difference, per shared frame the joints' world rotations (degrees) and positions relative to
the pelvis (mm) between the two readings, and which take frame the BVH's frame 0 is. Then the read time of a
longer take made by repeating the MVNX's frames (``--repeat``).

    PYTHONPATH=. python benchmarks/mvnx_vs_mvn_bvh.py --mvnx TAKE.mvnx --bvh TAKE.bvh [--repeat 322]

A public pair (an MVN Analyze 2018 export, 23 segments, 112 frames at 60 Hz; GPL-3.0, not shipped with Doppel):
https://github.com/andres-fr/blender-mvnx-io, io_anim_mvnx_utest/data/test_mocap.{mvnx,bvh}.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from mocap_retarget.bvh import forward_kinematics, read_bvh
from mocap_retarget.clips import read_clip


def _angles(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    c = (np.trace(np.swapaxes(Ra, -1, -2) @ Rb, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


def compare(mvnx: Path, bvh: Path) -> None:
    m, info = read_clip(mvnx)
    b = read_bvh(bvh)
    print(f"{mvnx.name}: {m.num_frames} frames at {info.fps:g} fps, {m.num_joints} segments; "
          f"{bvh.name}: {b.num_frames} frames, {b.num_joints} joints, units {b.units}")
    if m.num_joints != b.num_joints:
        raise SystemExit("the two skeletons differ in joint count: not the same model")
    print(f"offsets: largest difference {np.abs(m.offsets[1:] - b.offsets[1:]).max() * 1e3:.4f} mm "
          f"(joint order: {' '.join(m.names[:4])} ... / {' '.join(b.names[:4])} ...)")
    Ra, Pa = forward_kinematics(m.parents, m.local_rotations, m.local_translations)
    Rb, Pb = forward_kinematics(b.parents, b.local_rotations, b.local_translations)
    n = min(m.num_frames, b.num_frames)
    ang = _angles(Ra[1:n], Rb[1:n])
    d = np.linalg.norm((Pa[1:n] - Pa[1:n, :1]) - (Pb[1:n] - Pb[1:n, :1]), axis=-1) * 1e3
    print(f"frames 1..{n - 1}: world rotations differ by {ang.mean():.4f} deg mean, {ang.max():.4f} max; "
          f"positions relative to the pelvis by {d.mean():.3f} mm mean, {d.max():.3f} max")
    ang0 = _angles(Ra[0], Rb[0])
    print(f"frame 0: the BVH's differs from the take's by up to {ang0.max():.1f} deg (MVN writes its T-pose "
          "calibration frame there)")


def time_long(mvnx: Path, repeat: int) -> None:
    text = mvnx.read_text(encoding="utf-8")
    a = text.rfind("\n", 0, text.index('type="normal"')) + 1
    b = text.rfind("\n", 0, text.index("</frames>")) + 1
    with tempfile.TemporaryDirectory() as tmp:
        long = Path(tmp) / "long.mvnx"
        long.write_text(text[:a] + text[a:b] * repeat + text[b:], encoding="utf-8")
        size = long.stat().st_size / 1e6
        t0 = time.perf_counter()
        m, info = read_clip(long)
        dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"a {m.num_frames}-frame take ({m.num_frames / info.fps / 60:.1f} min, {size:.0f} MB of XML): read in "
          f"{dt:.1f} s; process peak RSS {peak:.2f} GB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mvnx", type=Path, required=True)
    ap.add_argument("--bvh", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=322, help="copies of the take's frames for the read time")
    args = ap.parse_args()
    compare(args.mvnx, args.bvh)
    if args.repeat > 0:
        time_long(args.mvnx, args.repeat)


if __name__ == "__main__":
    main()
