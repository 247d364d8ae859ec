"""Benchmark of issue 6: multi-view fit of Anny to the virtual actor (random phenotype, pose, expression per
seed) seen by 16 cameras at 1024 x 1024. Observations: the 21 MediaPipe-pose-style landmarks (Anny joints /
template vertices), plus 60 face points (template vertices on the face, an idealised dense face tracker),
projected with 1 px noise and 5 % dropped detections. Silhouettes are off (--silhouette-size 0) unless
asked for: the CPU soft silhouette of 16 views costs seconds per iteration. The ground truth is read only
for scoring.

    PYTHONPATH=. python benchmarks/fit_multiview.py --seeds 3 4 [--iterations 300]

The last seed's fit is timed again with one core kept busy by a process the benchmark starts and stops
(benchmarks/_contention.py).
"""

from __future__ import annotations

import argparse
import time

import _contention  # first third-party import: Doppel's core before torch (benchmarks/_contention.py)
import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--silhouette-size", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--face-points", type=int, default=60, help="face vertices observed (0 = pose landmarks only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from doppel.virtual_actor import build_virtual_actor
    from reconstruction.body_models import AnnyModel, BodyParams
    from reconstruction.fitting import FitConfig, fit_multiview, landmark_spec
    from reconstruction.fitting.synthetic import synthetic_views

    model = AnnyModel()
    with torch.no_grad():
        neutral = model.forward(BodyParams())
    v0, j0 = neutral.vertices[0].numpy(), neutral.joints[0].numpy()
    head = j0[model.pose_names.index("head")]
    face = np.nonzero((np.linalg.norm(v0 - head, axis=1) < 0.13) & (v0[:, 2] > head[2] + 0.05))[0]
    face = face[np.random.default_rng(0).choice(len(face), args.face_points, replace=False)]
    spec = landmark_spec(model, extra_vertices={1000 + i: int(f) for i, f in enumerate(face)})
    n = args.iterations
    for seed in args.seeds:
        actor = build_virtual_actor(seed, texture_size=64)
        obs = synthetic_views(actor.vertices, actor.faces, actor.joints, spec, views=args.views, size=args.size,
                              seed=seed + 7, masks=args.silhouette_size > 0)
        cfg = FitConfig(iters_rigid=n // 2, iters_body=n, iters_face=n // 3, iters_all=n // 3,
                        silhouette_size=args.silhouette_size, w_silhouette=1.0 if args.silhouette_size else 0.0)
        t0 = time.perf_counter()
        res = fit_multiview(model, obs, spec, cfg)
        dt = time.perf_counter() - t0
        e = np.linalg.norm(res.vertices - actor.vertices, axis=1) * 1000
        je = np.linalg.norm(res.joints - actor.joints, axis=1) * 1000
        gt = np.array([actor.expression.get(k, 0.0) for k in model.expression_names])
        ee = np.abs(res.expression - gt)
        print(f"seed={seed} v2v_mean_mm={e.mean():.2f} v2v_p95_mm={np.percentile(e, 95):.2f} "
              f"joint_mean_mm={je.mean():.2f} expr_abs_err_mean={ee.mean():.4f} "
              f"expr_abs_err_on_gt_nonzero={ee[gt > 0].mean():.4f} reproj_px={res.reprojection_px:.2f} "
              f"fit_s={dt:.1f}", flush=True)
    with _contention.busy_core():
        t0 = time.perf_counter()
        fit_multiview(model, obs, spec, cfg)
        busy = time.perf_counter() - t0
    print(f"seed {seed} fit with one core busy: {busy:.1f} s ({busy / dt:.1f}x idle); "
          f"load average {_contention.load_average()}")


if __name__ == "__main__":
    main()
