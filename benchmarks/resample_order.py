"""Plotting a take at the shot's rate before the retarget (what `doppel retarget --resample` does: the feet are
cleaned at the new rate) against retargeting at the take's own rate and keeping every k-th frame (what plotting
after the cleanup gives when the rates divide). Prints, per clip, the planted ankles' horizontal slide measured at
the new rate on the take-rate contacts, how often the two contact sets disagree, the retargets' limb cosine and the
lowest ankle.

    python benchmarks/resample_order.py CLIP.bvh ... --rig RIG_DIR [--fps 24]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mocap_retarget.clips import read_clip
from mocap_retarget.metrics import compute_metrics
from mocap_retarget.resample import resample_motion
from mocap_retarget.retarget import RetargetConfig, retarget
from mocap_retarget.skeleton import TargetSkeleton


def slide(P: np.ndarray, contacts: np.ndarray, fps: float) -> list[float]:
    """Mean horizontal speed (cm/s) of each foot joint P (F, 2, 3) between consecutive frames both planted."""
    out = []
    for k in range(P.shape[1]):
        both = contacts[1:, k] & contacts[:-1, k]
        v = np.linalg.norm(np.diff(P[:, k][:, [0, 2]], axis=0), axis=-1) * fps
        out.append(100 * float(v[both].mean()) if both.any() else 0.0)
    return out


def main() -> None:
    from rigging import Rig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--rig", required=True)
    ap.add_argument("--fps", type=float, default=24.0)
    args = ap.parse_args()
    target = TargetSkeleton.from_rig(Rig.load(args.rig))
    for clip in args.clips:
        motion, _ = read_clip(clip)
        step = int(round(motion.fps / args.fps))
        if abs(motion.fps / step - args.fps) > 1e-6:
            raise SystemExit(f"{clip}: {motion.fps:g} fps is not a multiple of {args.fps:g}")
        first = retarget(resample_motion(motion, args.fps), target, RetargetConfig())
        full = retarget(motion, target, RetargetConfig())
        contacts = full.contacts[::step]
        n = min(len(contacts), first.animation.num_frames)
        feet = [[r.target_map.roles[f] for f in ("foot_l", "foot_r")] for r in (first, full)]
        a = slide(first.target_positions[:n][:, feet[0]], contacts[:n], args.fps)
        b = slide(full.target_positions[::step][:n][:, feet[1]], contacts[:n], args.fps)
        src_feet = [full.source_map.roles[f] for f in ("foot_l", "foot_r")]
        s = slide(full.source_positions[::step][:n][:, src_feet] * full.scale, contacts[:n], args.fps)
        disagree = float(np.mean(first.contacts[:n] != contacts[:n]))
        ca, cb = (compute_metrics(r, target)["limb_cosine_mean"] for r in (first, full))
        low = [100 * float(P[..., 1].min()) for P in (first.target_positions[:n][:, feet[0]],
                                                      full.target_positions[::step][:n][:, feet[1]])]
        print(f"{Path(clip).name}: slide at {args.fps:g} fps (cm/s, left/right): plotted first {a[0]:.2f}/{a[1]:.2f}, "
              f"retargeted at {motion.fps:g} first {b[0]:.2f}/{b[1]:.2f}, source {s[0]:.2f}/{s[1]:.2f}; contacts "
              f"disagree on {disagree:.1%} of frames; limb cosine {ca} / {cb}; lowest ankle {low[0]:.2f} / "
              f"{low[1]:.2f} cm")


if __name__ == "__main__":
    main()
