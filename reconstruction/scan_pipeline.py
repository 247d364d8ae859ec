"""The scan path of ``doppel fit``: a body model registered to a scan, written to a fit folder.

    DIR/params.json         model, shape (name -> value), pose (J, 3) axis-angle, root_translation, expression
    DIR/fit_mesh.ply        the template registered onto the scan (non-rigid ICP), the model's topology, scan frame
    DIR/model_fit_mesh.ply  the model fit alone (before non-rigid registration)
    DIR/fit_mesh_bind.ply   the bind mesh of the fitted shape (bind pose, neutral expression)
    DIR/displacements.npz   offsets (V, 3) = fit_mesh - model_fit_mesh, normal (V,) their component along the
                            model fit's vertex normals (metres): the detail the model cannot express;
                            normal_regularised (V,): the same after Laplacian regularisation (detail.py),
                            with vertices farther than 5 mm from the scan (holes) unobserved
    DIR/metrics.json        distances and timings; DIR/manifest.json
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reconstruction.fit_folder import Detail, FitFolder
from reconstruction.scan_registration import (
    ScanFitConfig,
    fit_model_to_scan,
    load_scan,
    nonrigid_register,
    rigid_align,
    surface_distance,
)


@dataclass
class ScanPipelineConfig:
    iterations: int = 60          # model-fit iterations (Adam)
    rigid_init: str = "up"        # 'up' (scan is +Y up), 'pca' (any orientation) or 'identity'
    nonrigid: bool = True         # run the non-rigid registration
    nonrigid_iterations: int = 6  # ICP iterations per stiffness step (3 steps: 0.02, 0.01, 0.003)


def run_scan_fit(model, scan_path: Path, out: Path, config: ScanPipelineConfig | None = None,
                 progress: Callable[[str, float], None] | None = None, provenance: dict | None = None) -> dict:
    """Register ``model`` to the scan at ``scan_path`` and write the fit folder ``out``; returns the metrics.
    progress(step_description, fraction_done); provenance: recorded in the manifest's params (e.g. the
    actor and consent a consent gate found: ``actor_id``, ``consent_id``, ``production``)."""
    import trimesh

    cfg = config or ScanPipelineConfig()
    report = progress or (lambda *_: None)
    scan = load_scan(scan_path)
    out.mkdir(parents=True, exist_ok=True)
    from reconstruction.body_models import BodyParams

    times: dict[str, float] = {}
    t = time.perf_counter()
    report("rigid alignment", 0.0)
    template = model.forward(BodyParams()).vertices[0].detach().double().cpu().numpy()
    rigid = rigid_align(template, scan, init=cfg.rigid_init)
    times["rigid_s"] = time.perf_counter() - t
    t = time.perf_counter()
    fit = fit_model_to_scan(model, scan, rigid, ScanFitConfig(iterations=cfg.iterations),
                            progress=lambda i, n, loss: report(f"model fit {i}/{n}", 0.1 + 0.6 * i / n))
    times["model_fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    faces = np.asarray(model.faces)
    if cfg.nonrigid:
        report("non-rigid registration", 0.7)
        k = cfg.nonrigid_iterations
        reg = nonrigid_register(fit.vertices, faces, scan,
                                steps=[[0.02, 0, 0.5, k], [0.01, 0, 0.5, k], [0.003, 0, 0.5, k]])
    else:
        reg = fit.vertices.copy()
    times["nonrigid_s"] = time.perf_counter() - t
    normals = np.asarray(trimesh.Trimesh(fit.vertices, faces, process=False).vertex_normals)
    offsets = reg - fit.vertices
    d_fit = surface_distance(fit.vertices, scan.vertices, scan.faces)
    d_reg = surface_distance(reg, scan.vertices, scan.faces)
    d_scan = surface_distance(scan.vertices, reg, faces)
    observed = (d_reg < 0.005).astype(np.float64)            # vertices over holes: no data, smoothed in
    mm = lambda d: {"mean_mm": round(float(d.mean() * 1000), 3), "p95_mm": round(float(np.percentile(d, 95) * 1000), 3)}  # noqa: E731
    metrics = {"rigid_icp_rmse_mm": round(rigid.rmse * 1000, 3), "rigid_icp_fitness": round(rigid.fitness, 4),
               "model_fit_to_scan": mm(d_fit), "registered_to_scan": mm(d_reg), "scan_to_registered": mm(d_scan),
               "scan_vertices": int(len(scan.vertices)), "seconds": {k: round(v, 2) for k, v in times.items()}}
    FitFolder(out).write(model, source="scan", shape=fit.shape, pose=fit.pose, root_translation=fit.root_translation,
                         expression=None, model_vertices=fit.vertices,
                         detail=Detail.from_offsets(faces, offsets, normals, observed), metrics=metrics,
                         inputs={"scan": scan_path},
                         params={"model": model.name, "iterations": cfg.iterations, "rigid_init": cfg.rigid_init,
                                 "nonrigid": cfg.nonrigid, "nonrigid_iterations": cfg.nonrigid_iterations,
                                 **dict(provenance or {})})
    report("done", 1.0)
    return metrics


def read_fit_params(fit_dir: Path) -> dict:
    """DIR/params.json of a fit folder as a dict with at least "model" and "shape" (FileNotFoundError /
    ValueError naming the file); see FitFolder.read_params for the typed form."""
    p = FitFolder(fit_dir).read_params()
    return {"model": p.model, "shape": p.shape, "source": p.source, "expression": p.expression}
