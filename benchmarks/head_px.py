"""What does drawing the double's head at the plate's full resolution buy? Time against quality of the cap.

`doppel swap` draws the double's head at most `--head-px` pixels on its longer side and resizes it up to the face
box (`doppel.face_swap.render_head`). This script poses the double as a close-up in a 3840x2160 plate (a normal
lens, the head 1.6 m from the camera by default: a face box of about 780 x 1024 px) at several yaws, draws the
head as the swap does (`render_head`: the textured rig, or the rig's coverage and the neural double with
--model) with each cap, and prints per cap the median time of a head, and PSNR and FLIP inside the head's coverage
against the head drawn at full resolution (cap 0), averaged over the yaws:

    PYTHONPATH=. python benchmarks/head_px.py --rig RIG_DIR [--model MODEL_DIR] [--caps 0,1024,768,512,384,256]
        [--distance 1.6] [--yaws -40,-20,0,20,40] [--repeats 3]
"""

# make bench: needs inputs (see the docstring's command line); `make bench` lists it and does not run it
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import core  # noqa: F401  (before torch: OpenMP's passive wait policy)

WIDTH, HEIGHT = 3840, 2160


def head_pose(double, yaw_deg: float, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """R (3, 3), t (3,): the double's head facing the camera turned by yaw_deg, its centre ``distance`` m away."""
    from scipy.spatial.transform import Rotation

    R = np.diag([-1.0, -1.0, 1.0]) @ Rotation.from_euler("y", 180 + yaw_deg, degrees=True).as_matrix()
    return R, np.array([0, 0, distance]) - R @ double.head_bind.mean(0)


def masked_scores(img: np.ndarray, ref: np.ndarray, alpha: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, mean FLIP) of img against ref (h, w, 3) sRGB in [0, 1] where alpha (h, w) > 0.5."""
    import flip_evaluator

    m = alpha > 0.5
    mse = float(((img - ref) ** 2)[m].mean())
    err, _, _ = flip_evaluator.evaluate(ref.astype(np.float32), img.astype(np.float32), "LDR")
    return 10 * np.log10(1.0 / max(mse, 1e-12)), float(err[m].mean())


def measure(double, caps: list[int], yaws: list[float], distance: float, repeats: int) -> dict[int, dict]:
    """Per cap: median ms of a head and mean PSNR / FLIP against cap 0 over the yaws (cap 0 is the reference)."""
    from doppel.face_swap.render_head import head_box, render_head
    from doppel.face_swap.swap import default_focal

    f = default_focal(WIDTH)
    K = np.array([[f, 0, WIDTH / 2], [0, f, HEIGHT / 2], [0, 0, 1]])
    w = np.zeros(len(double.basis.names))
    rows = {c: {"ms": [], "psnr": [], "flip": []} for c in caps}
    for yaw in yaws:
        R, t = head_pose(double, yaw, distance)
        box = head_box(double, R, t, w, K, WIDTH, HEIGHT)
        ref = None
        for cap in sorted(caps):                                   # 0 first: the reference
            double.max_px = cap
            for _ in range(repeats):
                t0 = time.perf_counter()
                rgb, alpha = render_head(double, R, t, w, K, box)
                rows[cap]["ms"].append(1e3 * (time.perf_counter() - t0))
            if ref is None:
                ref = rgb
                print(f"yaw {yaw:+.0f}: face box {box[2] - box[0] + 1} x {box[3] - box[1] + 1} px", flush=True)
            else:
                p, fl = masked_scores(rgb, ref, alpha)
                rows[cap]["psnr"].append(p)
                rows[cap]["flip"].append(fl)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a trained neural double (default: the rig's textured head)")
    ap.add_argument("--rig", type=Path, required=True)
    ap.add_argument("--caps", default="0,1024,768,512,384,256")
    ap.add_argument("--yaws", default="-40,-20,0,20,40")
    ap.add_argument("--distance", type=float, default=1.6)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from doppel.face_swap.double import load_face_double

    caps = sorted({0, *(int(c) for c in a.caps.split(","))})
    with tempfile.TemporaryDirectory() as work:
        double = load_face_double(a.model, Path(work), rig_dir=a.rig) if a.model else \
            load_face_double(a.rig, Path(work))
        print(f"head drawn by the {double.renderer} renderer", flush=True)
        rows = measure(double, caps, [float(y) for y in a.yaws.split(",")], a.distance, a.repeats)
    print(f"\n{'cap px':>7} | {'ms a head':>9} | {'PSNR dB vs full':>15} | {'FLIP vs full':>12}")
    for cap in caps:
        r = rows[cap]
        p = f"{np.mean(r['psnr']):15.2f}" if r["psnr"] else f"{'(reference)':>15}"
        fl = f"{np.mean(r['flip']):12.4f}" if r["flip"] else f"{'':>12}"
        print(f"{cap if cap else 'full':>7} | {np.median(r['ms']):9.0f} | {p} | {fl}")


if __name__ == "__main__":
    main()
