"""Demo stage: fit Anny to synthetic multi-view landmarks of the virtual actor (the fitter never reads the
actor's parameters or mesh; they are used only to score the result)."""

from __future__ import annotations

import numpy as np

from doppel.report import Section


def stage_fit(ctx) -> Section:
    from doppel.virtual_actor import build_virtual_actor
    from reconstruction.body_models import AnnyModel
    from reconstruction.fit_io import write_multiview_fit
    from reconstruction.fitting import FitConfig, fit_multiview, landmark_spec
    from reconstruction.fitting.synthetic import synthetic_views

    actor = ctx.state.get("actor") or build_virtual_actor(ctx.seed, texture_size=64)
    model = AnnyModel()
    spec = landmark_spec(model)
    views, size = (4, 256) if ctx.quick else (16, 1024)
    obs = synthetic_views(actor.vertices, actor.faces, actor.joints, spec, views=views, size=size,
                          seed=ctx.seed + 17, masks=False)
    n = 15 if ctx.quick else 300
    cfg = FitConfig(iters_rigid=10, iters_body=n, iters_face=0, iters_all=n // 3, w_silhouette=0.0)
    res = fit_multiview(model, obs, spec, cfg)
    err = np.linalg.norm(res.vertices - actor.vertices, axis=1) * 1000
    jerr = np.linalg.norm(res.joints - actor.joints, axis=1) * 1000
    metrics = {"vertex_error_mean_mm": round(float(err.mean()), 2),
               "vertex_error_p95_mm": round(float(np.percentile(err, 95)), 2),
               "joint_error_mean_mm": round(float(jerr.mean()), 2), "views": views, "image_size": size,
               "landmarks": len(spec), "iterations_body": n}
    d = ctx.out / "fit"
    write_multiview_fit(d, model, res, metrics, params={"seed": ctx.seed, "quick": ctx.quick})
    ctx.state["fit_dir"] = d
    return Section(
        "Fit (multi-view landmarks)",
        text=(f"Anny fitted to {len(spec)} MediaPipe-pose-style landmarks projected into {views} synthetic views "
              f"({size} px, 1 px noise, 5 % dropped): rigid start by triangulation + Kabsch, then shape and pose, "
              "then everything. Silhouettes are off in the demo (too slow on CPU). Errors are against the actor's "
              "ground-truth mesh, which the fitter never reads."),
        table={**metrics, "reprojection_px": round(res.reprojection_px, 2)},
        files=["fit/params.json", "fit/fit_mesh.ply", "fit/fit_mesh_bind.ply", "fit/metrics.json"],
    )
