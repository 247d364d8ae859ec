"""Writing a multi-view fit to a fit folder (the same layout as the scan path, see scan_pipeline.py)."""

from __future__ import annotations

from pathlib import Path

from core.storage import atomic_write_json, write_manifest


def write_multiview_fit(out: Path, model, result, metrics: dict, params: dict | None = None, detail=None) -> None:
    """out/params.json, fit_mesh.ply (posed, world frame), fit_mesh_bind.ply, metrics.json, manifest.json.
    result: a reconstruction.fitting.FitResult. detail: a silhouette_detail.DetailResult or None; with it,
    fit_mesh.ply carries the displacements, model_fit_mesh.ply is the model alone and displacements.npz holds
    them in the scan path's format (offsets (V, 3), normal (V,), normal_regularised (V,) = normal: the solve
    is regularised already, observed (V,))."""
    import io

    import numpy as np

    from core.meshio import write_ply
    from core.storage import atomic_write_bytes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    faces = model.faces
    outputs = {}
    if detail is None:
        write_ply(out / "fit_mesh.ply", result.vertices, faces)
    else:
        write_ply(out / "fit_mesh.ply", result.vertices + detail.offsets, faces)
        write_ply(out / "model_fit_mesh.ply", result.vertices, faces)
        buf = io.BytesIO()
        np.savez_compressed(buf, offsets=detail.offsets.astype(np.float32),
                            normal=detail.displacements.astype(np.float32),
                            normal_regularised=detail.displacements.astype(np.float32),
                            observed=detail.observed.astype(np.float32))
        atomic_write_bytes(out / "displacements.npz", buf.getvalue())
        outputs = {"model_fit_mesh": "model_fit_mesh.ply", "displacements": "displacements.npz"}
    write_ply(out / "fit_mesh_bind.ply", model.bind_state(result.shape).vertices, faces)
    atomic_write_json(out / "params.json", {
        "model": model.name, "source": "multiview",
        "shape": {n: float(x) for n, x in zip(model.shape_names, result.shape, strict=True)},
        "pose": result.pose.tolist(), "pose_names": list(model.pose_names),
        "root_translation": result.root_translation.tolist(),
        "expression": {n: float(x) for n, x in zip(model.expression_names, result.expression, strict=True)}})
    atomic_write_json(out / "metrics.json", {"reprojection_px": round(result.reprojection_px, 3),
                                             "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
                                             **metrics})
    write_manifest(out, "fit", params=params or {}, outputs={"params": "params.json", "fit_mesh": "fit_mesh.ply",
                                                            "fit_mesh_bind": "fit_mesh_bind.ply",
                                                            "metrics": "metrics.json", **outputs})
