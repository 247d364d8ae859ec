"""Writing a multi-view fit to a fit folder (the layout of reconstruction.fit_folder)."""

from __future__ import annotations

import math
from pathlib import Path

from reconstruction.fit_folder import Detail, FitFolder


def write_multiview_fit(out: Path, model, result, metrics: dict, params: dict | None = None, detail=None) -> None:
    """out/params.json, fit_mesh.ply (posed, world frame), fit_mesh_bind.ply, metrics.json, manifest.json.
    result: a reconstruction.fitting.FitResult. detail: a silhouette_detail.DetailResult or None; with it,
    fit_mesh.ply carries the displacements, model_fit_mesh.ply is the model alone and displacements.npz holds
    them (offsets, normal: the silhouette displacements, normal_regularised: those smoothed over the mesh and
    filled in where no silhouette reached, observed)."""
    d = None if detail is None else Detail.from_offsets(model.faces, detail.offsets, detail.normals, detail.observed)
    FitFolder(out).write(model, source="multiview", shape=result.shape, pose=result.pose,
                         root_translation=result.root_translation, expression=result.expression,
                         model_vertices=result.vertices, detail=d, params=params or {},
                         metrics={"reprojection_px": _px(result.reprojection_px),
                                  "seconds": {k: round(v, 2) for k, v in result.seconds.items()}, **metrics})


def _px(error: float) -> float | None:
    """A landmark error for metrics.json: rounded px, None for a frame no landmark was seen in (NaN)."""
    return round(error, 3) if math.isfinite(error) else None
