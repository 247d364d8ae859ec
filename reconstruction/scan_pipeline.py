"""The scan path of ``doppel fit``: a body model registered to a scan, written to a fit folder.

    DIR/params.json         model, shape (name -> value), pose (J, 3) axis-angle, root_translation, expression
    DIR/fit_mesh.ply        the template registered onto the scan (non-rigid ICP), the model's topology, scan frame
    DIR/model_fit_mesh.ply  the model fit alone (before non-rigid registration)
    DIR/fit_mesh_bind.ply   the bind mesh of the fitted shape (bind pose, neutral expression)
    DIR/displacements.npz   offsets (V, 3) = fit_mesh - model_fit_mesh, normal (V,) their component along the
                            model fit's vertex normals (metres): the detail the model cannot express;
                            normal_regularised (V,): the same after Laplacian regularisation (detail.py),
                            with vertices farther than 5 mm from the scan (holes) unobserved
    DIR/sliding.npz         sliding (V,) metres: how far each vertex moved along the model fit's surface in the
                            non-rigid stage (correspondence drift); DIR/sliding.png its heat map (front, back)
    DIR/scan_landmarks.json the landmarks detected on renders of the scan (ids, triangulated points, errors);
                            DIR/scan_landmarks.png some of the renders with the detections drawn
    DIR/albedo.png          only for a scan with vertex colours or a texture: its colour in the model's UV layout
                            (the name `doppel rig --fit` / export look for)
    DIR/metrics.json        distances, landmark residuals, sliding, timings; DIR/manifest.json
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from reconstruction.fit_folder import Detail, FitFolder
from reconstruction.scan_landmarks import nearest_axis
from reconstruction.scan_registration import (
    NonrigidConfig,
    Scan,
    ScanCorrespondences,
    ScanFitConfig,
    correspondences_from_landmarks,
    fit_model_to_scan,
    load_scan,
    nonrigid_anchored,
    nonrigid_register,
    rigid_align,
    rigid_from_correspondences,
    start_vertices,
    surface_distance,
)

log = logging.getLogger(__name__)

# Landmarks of the trunk and head (they move least with the pose): the rigid start from landmarks uses them.
TRUNK_LANDMARKS = tuple(f"pose {i}" for i in (0, 2, 5, 7, 8, 11, 12, 23, 24))
MIN_AUTO_LANDMARKS = 6    # fewer trunk landmarks found on the scan: the geometric rigid start is used instead
FAR_FROM_SCAN_M = 0.02    # a model fit further from the scan on average is reported as failed (warnings)
NO_LANDMARKS_LR = 0.02    # the model fit's learning rate without automatic landmarks (issue 6's setting)
NO_LANDMARKS_ITERATIONS = 150  # Adam chamfer steps without automatic landmarks when `iterations` is 0 (the
#                                refinement alone can fall into a wrong basin from the rest pose)


def _default_fit_config() -> ScanFitConfig:
    return ScanFitConfig(iterations=0, refine_iterations=25, lr=0.005, lr_end=0.1, landmark_iterations=100,
                         w_landmarks=0.1, landmark_trunc=0.05, w_pose_prior=1e-3, w_stiff_prior=3e-2,
                         init_pose="reference", fit_expression=True)


@dataclass
class ScanPipelineConfig:
    iterations: int = 0           # model-fit Adam steps (chamfer + correspondences) before the refinement
    refine_iterations: int = 25   # model-fit ICP rounds solved by L-BFGS (ScanFitConfig.refine_iterations)
    units: str = "auto"           # the scan file's length unit: 'auto' (from its size), m, cm, mm or inch
    rigid_init: str = "up"        # 'up' (scan is +Y up), 'pca' (any orientation) or 'identity' (without landmarks)
    nonrigid: bool = True         # run the non-rigid registration
    nonrigid_iterations: int = 6  # nricp: ICP iterations per stiffness step (anchored: see `anchored`)
    nonrigid_method: str = "anchored"  # 'anchored' (keeps correspondence, reports sliding) or 'nricp' (trimesh, Amberg)
    auto_landmarks: bool = True   # detect MediaPipe landmarks on renders of the scan (scan_landmarks.py)
    pairs: Path | None = None     # control points (scan_pairs.py), weighted above the automatic landmarks
    texture_size: int = 1024      # albedo.png texels (width = height) when the scan has colour; 0 = no transfer
    fit: ScanFitConfig = field(default_factory=_default_fit_config)   # model-fit settings (the two iteration
    #                                                                   counts above win)
    anchored: NonrigidConfig = field(default_factory=NonrigidConfig)  # anchored non-rigid settings


@dataclass(frozen=True)
class ScanRegistration:
    """What ``register_scan`` found: the model fit, the registered vertices (V, 3) (model topology, scan frame),
    sliding (V,) metres along the fit's surface, the correspondences used (or None), the scan landmarks (or
    None), the rigid start and where it came from ('landmarks', 'control points', 'icp'), timings."""

    fit: object
    vertices: np.ndarray
    sliding: np.ndarray
    correspondences: ScanCorrespondences | None
    landmarks: object
    rigid: object
    rigid_from: str
    seconds: dict


def register_scan(model, scan, config: ScanPipelineConfig | None = None,
                  progress: Callable[[str, float], None] | None = None) -> ScanRegistration:
    """Landmarks (automatic and control points) -> rigid start -> model fit -> non-rigid stage, no files."""
    import trimesh

    cfg = config or ScanPipelineConfig()
    report = progress or (lambda *_: None)
    times: dict[str, float] = {}
    t = time.perf_counter()
    corr, found = _correspondences(model, scan, cfg, report)
    times["landmarks_s"] = time.perf_counter() - t
    t = time.perf_counter()
    report("rigid alignment", 0.3)
    fit_cfg = replace(cfg.fit, iterations=cfg.iterations, refine_iterations=cfg.refine_iterations)
    if found is None or len(found) == 0:
        # No automatic landmarks: the geometric start of issue 6 (rest pose, ICP) and its faster learning rate.
        fit_cfg = ScanFitConfig(iterations=cfg.iterations or NO_LANDMARKS_ITERATIONS, lr=NO_LANDMARKS_LR,
                                refine_iterations=cfg.refine_iterations, w_landmarks=fit_cfg.w_landmarks,
                                landmark_iterations=fit_cfg.landmark_iterations, landmark_trunc=fit_cfg.landmark_trunc)
    rigid, rigid_from = _rigid_start(model, scan, corr, cfg, fit_cfg)
    times["rigid_s"] = time.perf_counter() - t
    t = time.perf_counter()
    fit = fit_model_to_scan(model, scan, rigid, fit_cfg, correspondences=corr,
                            progress=lambda i, n, loss: report(f"model fit {i}/{n}", 0.35 + 0.35 * i / n))
    times["model_fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    faces = np.asarray(model.faces)
    if cfg.nonrigid and cfg.nonrigid_method == "anchored":
        report("non-rigid registration (anchored)", 0.7)
        reg = nonrigid_anchored(fit.vertices, faces, scan, corr, cfg.anchored).vertices
    elif cfg.nonrigid:
        report("non-rigid registration (nricp)", 0.7)
        k = cfg.nonrigid_iterations
        reg = nonrigid_register(fit.vertices, faces, scan,
                                steps=[[0.02, 0, 0.5, k], [0.01, 0, 0.5, k], [0.003, 0, 0.5, k]])
    else:
        reg = fit.vertices.copy()
    times["nonrigid_s"] = time.perf_counter() - t
    normals = np.asarray(trimesh.Trimesh(fit.vertices, faces, process=False).vertex_normals)
    off = reg - fit.vertices
    sliding = np.linalg.norm(off - (off * normals).sum(1, keepdims=True) * normals, axis=1)
    return ScanRegistration(fit=fit, vertices=reg, sliding=sliding, correspondences=corr, landmarks=found,
                            rigid=rigid, rigid_from=rigid_from, seconds=times)


def run_scan_fit(model, scan_path: Path, out: Path, config: ScanPipelineConfig | None = None,
                 progress: Callable[[str, float], None] | None = None, provenance: dict | None = None,
                 scan: Scan | None = None) -> dict:
    """Register ``model`` to the scan at ``scan_path`` (``register_scan``) and write the fit folder ``out``;
    returns the metrics. progress(step_description, fraction_done); provenance: recorded in the manifest's
    params (e.g. the actor and consent a consent gate found: ``actor_id``, ``consent_id``, ``production``);
    scan: that file already read (``load_scan``), else it is read with ``config.units``."""
    import trimesh

    cfg = config or ScanPipelineConfig()
    report = progress or (lambda *_: None)
    scan = scan if scan is not None else load_scan(scan_path, cfg.units)
    out.mkdir(parents=True, exist_ok=True)
    r = register_scan(model, scan, cfg, report)
    fit, reg, faces = r.fit, r.vertices, np.asarray(model.faces)
    normals = np.asarray(trimesh.Trimesh(fit.vertices, faces, process=False).vertex_normals)
    d_fit = surface_distance(fit.vertices, scan.vertices, scan.faces)
    d_reg = surface_distance(reg, scan.vertices, scan.faces)
    d_scan = surface_distance(scan.vertices, reg, faces)
    observed = (d_reg < 0.005).astype(np.float64)            # vertices over holes: no data, smoothed in
    mm = lambda d: {"mean_mm": round(float(d.mean() * 1000), 3), "p95_mm": round(float(np.percentile(d, 95) * 1000), 3)}  # noqa: E731
    t = time.perf_counter()
    extra, tex_metrics = _write_extras(out, model, scan, reg, faces, r.sliding, r.landmarks, cfg, report)
    times = {**r.seconds, "outputs_s": time.perf_counter() - t}
    metrics = {"rigid_start": r.rigid_from, "rigid_icp_rmse_mm": round(r.rigid.rmse * 1000, 3),
               "rigid_icp_fitness": round(r.rigid.fitness, 4),
               "model_fit_to_scan": mm(d_fit), "registered_to_scan": mm(d_reg), "scan_to_registered": mm(d_scan),
               "sliding": mm(r.sliding), "correspondences": _corr_metrics(r.correspondences, fit.vertices, reg),
               "scan_landmarks": None if r.landmarks is None else r.landmarks.counts(), **tex_metrics,
               "scan_up": _scan_up(r.landmarks),
               "scan_turned_upright": bool(r.landmarks is not None and r.landmarks.turned),
               "scan_vertices": int(len(scan.vertices)), "scan_units": scan.units,
               "warnings": far_from_scan(d_fit, scan), "seconds": {k: round(v, 2) for k, v in times.items()}}
    FitFolder(out).write(model, source="scan", shape=fit.shape, pose=fit.pose, root_translation=fit.root_translation,
                         expression=fit.expression, model_vertices=fit.vertices,
                         detail=Detail.from_offsets(faces, reg - fit.vertices, normals, observed), metrics=metrics,
                         inputs={"scan": scan_path, **({"pairs": cfg.pairs} if cfg.pairs else {})},
                         params={"model": model.name, "iterations": cfg.iterations,
                                 "refine_iterations": cfg.refine_iterations, "units": scan.units,
                                 "rigid_init": cfg.rigid_init,
                                 "nonrigid": cfg.nonrigid, "nonrigid_iterations": cfg.nonrigid_iterations,
                                 "nonrigid_method": cfg.nonrigid_method, "auto_landmarks": cfg.auto_landmarks,
                                 "texture_size": cfg.texture_size, **dict(provenance or {})},
                         extra_outputs=extra)
    report("done", 1.0)
    return metrics


def far_from_scan(d_fit: np.ndarray, scan) -> list[str]:
    """Warnings when the model fit stands far from the scan: distances d_fit (V,) metres of the model fit's
    vertices to the scan's surface; mean over FAR_FROM_SCAN_M (about 10x a good fit's) means a wrong start,
    wrong units, or a scan that is not one whole person."""
    mean = float(np.mean(d_fit))
    if mean <= FAR_FROM_SCAN_M:
        return []
    return [f"the model fit is {mean * 1000:.0f} mm from the scan on average (a good fit: 1-3 mm): check the "
            f"scan's units (read as {scan.units}; --units), its up axis (--rigid-init pca) and that it shows "
            "one whole person"]


def _correspondences(model, scan, cfg: ScanPipelineConfig, report):
    """(automatic landmarks + control points as one ScanCorrespondences or None, the ScanLandmarks or None)."""
    parts, found = [], None
    if cfg.pairs is not None:             # first: a pair outside the scan or the model fails before slow work
        from reconstruction.scan_pairs import pairs_correspondences, read_pairs

        parts.append(pairs_correspondences(read_pairs(cfg.pairs), model, scan, cfg.pairs))
    if cfg.auto_landmarks:
        from reconstruction.scan_landmarks import detect_scan_landmarks

        found = detect_scan_landmarks(scan, progress=lambda d, f: report(d, 0.3 * f))
        parts.insert(0, correspondences_from_landmarks(model, found.ids, found.points, error_px=found.error_px))
    return ScanCorrespondences.concat(parts), found


def _rigid_start(model, scan, corr: ScanCorrespondences | None, cfg: ScanPipelineConfig, fit_cfg: ScanFitConfig):
    """(RigidResult, 'landmarks' | 'control points' | 'icp'): from the trunk landmarks / control points when there
    are enough, else open3d ICP from cfg.rigid_init."""
    template = start_vertices(model, fit_cfg.init_pose)
    if corr is not None:
        user = np.asarray(corr.user)
        trunk = np.isin(np.asarray(corr.names), TRUNK_LANDMARKS) & ~user
        if trunk.sum() >= MIN_AUTO_LANDMARKS:          # the trunk moves least with the pose: the best start
            return rigid_from_correspondences(template, _subset(corr, trunk)), "landmarks"
        if user.sum() >= 3:
            return rigid_from_correspondences(template, _subset(corr, user)), "control points"
        log.warning("%s: too few trunk landmarks on the scan; rigid start by ICP", scan.path)
    return rigid_align(template, scan, init=cfg.rigid_init), "icp"


def _scan_up(found) -> str:
    """Which way the body stood in the scan's frame, in words ("+Y", "+Z", "(0.71, 0.71, 0.00)"): +Y unless the
    landmarks had to be found on the scan turned upright (`scan_landmarks.detect_scan_landmarks`)."""
    if found is None or found.up is None:
        return "+Y"
    near = nearest_axis(found.up)         # the axis the scan was turned by (the same snap), named
    return near[1] if near is not None else "({:.2f}, {:.2f}, {:.2f})".format(*found.up)


def _subset(corr: ScanCorrespondences, keep: np.ndarray) -> ScanCorrespondences:
    return ScanCorrespondences(index=corr.index[keep], weight=corr.weight[keep], targets=corr.targets[keep],
                               strength=corr.strength[keep], user=corr.user[keep],
                               names=[n for n, k in zip(corr.names, keep, strict=True) if k])


def _corr_metrics(corr: ScanCorrespondences | None, fit_v: np.ndarray, reg_v: np.ndarray) -> dict | None:
    """Mean residual (mm) of the automatic landmarks and of the control points, after the model fit and after the
    non-rigid stage."""
    if corr is None:
        return None
    out = {}
    for name, m in (("landmarks", ~corr.user), ("control_points", corr.user)):
        if m.any():
            r = lambda v, m=m: float(np.linalg.norm(corr.model_points(v)[m] - corr.targets[m], axis=1).mean() * 1000)  # noqa: E731
            out[name] = {"count": int(m.sum()), "model_fit_mm": round(r(fit_v), 2), "registered_mm": round(r(reg_v), 2)}
    return out


def _write_extras(out: Path, model, scan, reg, faces, sliding, found, cfg, report) -> tuple[dict, dict]:
    """sliding.npz, sliding.png, scan_landmarks.png/json and (coloured scans) albedo.png -> (manifest outputs,
    metrics)."""
    import io

    from core.meshio import write_png
    from core.storage import atomic_write_bytes, atomic_write_json
    from reconstruction.scan_previews import landmark_sheet, sliding_heatmap

    extra, metrics = {}, {}
    buf = io.BytesIO()
    np.savez_compressed(buf, sliding=sliding.astype(np.float32))
    atomic_write_bytes(out / "sliding.npz", buf.getvalue())
    write_png(out / "sliding.png", sliding_heatmap(reg, faces, sliding))
    extra.update(sliding="sliding.npz", sliding_preview="sliding.png")
    if found is not None:
        if found.renders:
            write_png(out / "scan_landmarks.png", landmark_sheet(found.renders))
            extra["scan_landmarks_preview"] = "scan_landmarks.png"
        atomic_write_json(out / "scan_landmarks.json", {
            "ids": found.ids.tolist(), "points": np.round(found.points, 6).tolist(),
            "error_px": np.round(found.error_px, 3).tolist(), "n_views": found.n_views.tolist(),
            "seconds": {k: round(v, 2) for k, v in found.seconds.items()}})
        extra["scan_landmarks"] = "scan_landmarks.json"
    if scan.has_color and cfg.texture_size > 0 and model.uvs is not None:
        from reconstruction.scan_texture import transfer_texture

        report("texture transfer", 0.9)
        uvs, face_uvs = model.uvs
        tt = transfer_texture(scan, reg, faces, uvs, face_uvs, size=cfg.texture_size)
        write_png(out / "albedo.png", tt.texture)
        extra["albedo"] = "albedo.png"
        metrics["texture_coverage"] = round(tt.coverage, 4)
    return extra, metrics


def read_fit_params(fit_dir: Path) -> dict:
    """DIR/params.json of a fit folder as a dict with at least "model" and "shape" (FileNotFoundError /
    ValueError naming the file); see FitFolder.read_params for the typed form."""
    p = FitFolder(fit_dir).read_params()
    return {"model": p.model, "shape": p.shape, "source": p.source, "expression": p.expression}
