"""Writing a multi-view fit to a fit folder (the same layout as the scan path, see scan_pipeline.py)."""

from __future__ import annotations

from pathlib import Path

from core.storage import atomic_write_json, write_manifest


def write_multiview_fit(out: Path, model, result, metrics: dict, params: dict | None = None) -> None:
    """out/params.json, fit_mesh.ply (posed, world frame), fit_mesh_bind.ply, metrics.json, manifest.json.
    result: a reconstruction.fitting.FitResult."""
    from core.meshio import write_ply

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    faces = model.faces
    write_ply(out / "fit_mesh.ply", result.vertices, faces)
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
                                                            "metrics": "metrics.json"})
