"""Demo stage: fit Anny to the capture stage's session (real MediaPipe detections on the rendered photos, the
calibrated landmark regressor) with per-view overlays; without a capture stage, to synthetic landmarks
projected from the actor. The fitter never reads the actor's parameters or mesh; they only score the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from doppel.report import Section


def stage_fit(ctx) -> Section:
    if ctx.state.get("capture_session") is not None:
        return _fit_capture_session(ctx)
    return _fit_synthetic_landmarks(ctx)


def _fit_capture_session(ctx) -> Section:
    import trimesh

    from reconstruction.body_models import AnnyModel
    from reconstruction.fitting import FitConfig
    from reconstruction.session_fit import fit_session

    session, ingest_dir = ctx.state["capture_session"], ctx.state["capture_ingest"]
    cfg = (FitConfig(iters_rigid=30, iters_body=80, iters_face=10, iters_all=30, detail_iterations=10, detail_size=128)
           if ctx.quick else FitConfig(detail_iterations=40, detail_size=192))
    d = ctx.out / "fit"
    model = AnnyModel()
    res = fit_session(model, session, ingest_dir, d, cfg,
                      params={"seed": ctx.seed, "quick": ctx.quick, **ctx.provenance})
    gt = trimesh.load(Path(session).parent / "ground_truth" / "mesh.ply", process=False).vertices
    final = trimesh.load(d / "fit_mesh.ply", process=False).vertices    # with the silhouette detail
    err = np.linalg.norm(final - gt, axis=1) * 1000
    metrics = {"vertex_error_mean_mm": round(float(err.mean()), 2),
               "vertex_error_p95_mm": round(float(np.percentile(err, 95)), 2),
               "views": len(res.camera_names), "landmarks": len(res.spec),
               "correspondences": "calibrated" if res.spec.reg_index is not None else "joints",
               "reprojection_px": round(res.result.reprojection_px, 2),
               "fit_seconds": round(sum(res.result.seconds.values()), 1)}
    if res.detail is not None:
        e0 = np.linalg.norm(res.result.vertices - gt, axis=1) * 1000
        metrics["vertex_error_mean_mm before silhouette detail"] = round(float(e0.mean()), 2)
        metrics["mask disagreement before / after detail"] = (f"{res.detail.disagreement_before:.4f} / "
                                                              f"{res.detail.disagreement_after:.4f}")
        metrics["detail_seconds"] = round(res.detail.seconds, 1)
    ctx.state["fit_dir"] = d
    return Section(
        "Fit (capture session)",
        text=("Anny fitted to the capture stage's session: MediaPipe pose, face-mesh and hand landmarks detected on "
              "the rendered photos, through the calibrated landmark regressor (reconstruction/fitting/"
              "landmark_regressor.py), minimising robust reprojection error over all views with shape, pose and "
              "expression priors, then per-vertex displacements along the normals from the person masks "
              "(silhouette detail). Yellow: the fitted silhouette; green: detections; red: the model's landmarks. "
              "Errors are against the actor's ground-truth mesh, which the fitter never reads"
              + (" (quick mode: 4 small views and short stages, so larger errors than the full demo)." if ctx.quick
                 else ".")),
        images=[("fit/overlays.png", "fitted model over every view")],
        table=metrics,
        files=["fit/params.json", "fit/fit_mesh.ply", "fit/fit_mesh_bind.ply", "fit/metrics.json"]
        + (["fit/model_fit_mesh.ply", "fit/displacements.npz"] if res.detail is not None else []),
    )


def _fit_synthetic_landmarks(ctx) -> Section:
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
    write_multiview_fit(d, model, res, metrics, params={"seed": ctx.seed, "quick": ctx.quick, **ctx.provenance})
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
