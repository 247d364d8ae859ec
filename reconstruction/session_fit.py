"""Multi-view fitting from a capture session and its ingest folder (``doppel fit SESSION --landmarks INGEST``).

The session gives the calibrated cameras and the photos; the ingest gives MediaPipe's pose (33), face-mesh
(478) and hand (2 x 21) landmarks per photo with confidences, and the person masks. Correspondences
(``session_spec``): Anny through the calibrated landmark regressor (every set; or ``joints``: 21 pose
landmarks at Anny joints and template vertices), SMPL-X at its joints (16 pose landmarks), FLAME through its
MediaPipe embedding (105 face-mesh landmarks). Pose landmarks below the ingest's visibility threshold get
confidence 0. Distorted cameras: the landmarks are undistorted (OpenCV) and the fitter sees the undistorted
pinhole cameras. After the model fit, silhouette detail (silhouette_detail.py) unless turned off.
``fit_session_sequence`` fits every frame of a take with temporal smoothness. Outputs: the fit folder of
``fit_io.write_multiview_fit`` plus per-view overlays (``overlays/CAMERA.png``: the fitted silhouette
outline, detected landmarks green, the fitted model's landmarks red, joined by a line) and ``overlays.png``
(a contact sheet of them).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from capture.camera import Camera
from capture.ingest import POSE_MIN_VISIBILITY, IngestData, contact_sheet, load_ingest
from capture.session import Session, load_session
from reconstruction.fitting import FitConfig, FitResult, LandmarkSpec, ViewObservations, fit_multiview, landmark_spec
from reconstruction.fitting.landmark_regressor import SET_OFFSETS, landmark_set
from reconstruction.silhouette_detail import DetailResult
from reconstruction.take_checkpoint import TakeCheckpoint, frame_folder

log = logging.getLogger(__name__)

OVERLAY_SIDE = 480   # long side of the per-view overlay PNGs, px


@dataclass
class SessionFit:
    """A session fit: the result, the observations it used, per-view reprojection errors and the files."""

    result: FitResult
    observations: ViewObservations
    spec: LandmarkSpec
    frame: str
    camera_names: list[str]
    view_reprojection_px: dict[str, float]   # camera -> confidence-weighted mean landmark error, px
    views_seeing: int                        # views with >= 3 confident landmarks
    overlays: list[str]                      # paths relative to the fit folder
    seconds: dict[str, float]
    detail: DetailResult | None = None       # silhouette detail (None: off or not possible, see metrics)


def _undistort_px(uv: np.ndarray, cam: Camera) -> np.ndarray:
    """(L, 2) distorted pixels (Doppel convention: centres at integer + 0.5) -> ideal pinhole pixels."""
    import cv2

    from core.conventions import doppel_to_opencv_K, doppel_to_opencv_pixels, opencv_to_doppel_pixels

    K = doppel_to_opencv_K(cam.K.detach().double().cpu().numpy())
    dist = cam.dist.detach().double().cpu().numpy()
    und = cv2.undistortPointsIter(doppel_to_opencv_pixels(uv).reshape(-1, 1, 2), K, dist, None, K,
                                  (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 1e-6))
    return opencv_to_doppel_pixels(und.reshape(-1, 2))


def _detections(ingest: IngestData, fi: int, v: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2D detections of landmark ids (landmark_regressor.py's id space) in view v of frame fi: (uv (L, 2) px,
    conf (L,)); pose confidences below the ingest's visibility threshold are 0."""
    uv, conf = np.full((len(ids), 2), np.nan), np.zeros(len(ids))
    for r, lid in enumerate(ids):
        s = landmark_set(int(lid))
        i = int(lid) - SET_OFFSETS[s]
        if s == "pose":
            uv[r], c = ingest.pose[fi, v, i], ingest.pose_conf[fi, v, i]
            conf[r] = c if c >= POSE_MIN_VISIBILITY else 0.0
        elif s == "face":
            uv[r], conf[r] = ingest.face[fi, v, i], ingest.face_conf[fi, v, i]
        else:
            h = 0 if s == "hand.L" else 1
            uv[r], conf[r] = ingest.hands[fi, v, h, i], ingest.hands_conf[fi, v, h, i]
    return uv, conf


def _set_factors(ids: np.ndarray, set_weights: dict[str, float] | None) -> np.ndarray:
    """(L,) per-landmark weight: set weight * 33 / (landmarks of that set in ids)."""
    if not set_weights:
        return np.ones(len(ids))
    sets = np.array([landmark_set(int(i)) for i in ids])
    out = np.zeros(len(ids))
    for s in set(sets):
        m = sets == s
        out[m] = float(set_weights.get(s, 0.0)) * 33.0 / m.sum()
    return out


def session_observations(session: Session, ingest: IngestData, spec: LandmarkSpec, frame: str | None = None,
                         masks: bool = False, set_weights: dict[str, float] | None = None
                         ) -> tuple[ViewObservations, str]:
    """The fitter's observations of one frame: cameras (the session's, in its order, undistorted), keypoints
    (N, L, 2) px in ``spec``'s order (landmark ids: MediaPipe pose indices, or landmark_regressor.py's id space
    for face mesh and hands), confidence (N, L) = the detector's (pose: visibility, 0 below the ingest's
    threshold; 0 where not detected or outside the image) times the set factors of ``set_weights`` (see
    FitConfig.set_weights; None = 1), masks (N, H, W) when ``masks``. Returns (observations, frame name).

    A camera that dropped the frame (no image in it: `capture.session.Session.dropped`) is left out of it.
    ValueError: a camera of the session missing from the ingest, or image sizes that disagree."""
    fi = ingest.frame_index(frame)
    fname = ingest.frames[fi]
    factors = _set_factors(spec.ids, set_weights)
    if spec.reliability is not None:
        factors = factors * spec.reliability
    cams, kps, confs, ms = [], [], [], []
    for cam in session.cameras:
        if cam.name in session.dropped.get(fname, ()):
            continue
        if cam.name not in ingest.cameras:
            raise ValueError(f"{ingest.root}: no landmarks for camera {cam.name!r} of session {session.root} "
                             f"(was the ingest run on another session?)")
        v = ingest.cameras.index(cam.name)
        if tuple(int(x) for x in ingest.image_size[v]) != (cam.width, cam.height):
            raise ValueError(f"{ingest.root}: camera {cam.name!r} images are {tuple(ingest.image_size[v])} px in the "
                             f"ingest but {(cam.width, cam.height)} in the session calibration")
        uv, c = _detections(ingest, fi, v, spec.ids)
        # MediaPipe extrapolates landmarks beyond the frame (a face close-up still "has" hips): not observations.
        with np.errstate(invalid="ignore"):
            outside = (uv[:, 0] < 0) | (uv[:, 0] > cam.width) | (uv[:, 1] < 0) | (uv[:, 1] > cam.height)
        bad = ~np.all(np.isfinite(uv), axis=1) | (c <= 0) | outside
        c = np.where(bad, 0.0, c * factors)
        uv = np.where(bad[:, None], 0.0, uv)
        if cam.has_distortion:
            uv = np.where(bad[:, None], 0.0, _undistort_px(uv, cam))
            cam = cam.undistorted()
        cams.append(cam)
        kps.append(uv)
        confs.append(c)
        if masks:
            ms.append(ingest.mask(fname, cam.name))
    if masks and any(c.has_distortion for c in session.cameras):
        raise ValueError("silhouettes from distorted cameras are not supported yet (the masks are not undistorted)")
    obs = ViewObservations(cameras=Camera.stack(cams), keypoints=torch.as_tensor(np.stack(kps), dtype=torch.float32),
                           confidence=torch.as_tensor(np.stack(confs), dtype=torch.float32),
                           masks=torch.as_tensor(np.stack(ms)) if masks else None)
    return obs, fname


def session_spec(model, config: FitConfig) -> LandmarkSpec:
    """The correspondences a session fit uses (FitConfig.correspondences)."""
    from reconstruction.fitting import calibrated_spec, default_regressor

    mode = config.correspondences
    if mode not in ("auto", "calibrated", "joints"):
        raise ValueError(f"correspondences must be auto, calibrated or joints, got {mode!r}")
    if model.name == "flame":          # a head model: the face mesh through FLAME's own MediaPipe embedding
        from reconstruction.fitting.landmarks import flame_face_spec

        return flame_face_spec(model, config.landmark_embedding)
    if mode == "calibrated" or (mode == "auto" and default_regressor(model) is not None):
        spec = calibrated_spec(model)
        return spec.subset([config.set_weights.get(landmark_set(int(lid)), 0.0) > 0 for lid in spec.ids])
    spec = landmark_spec(model)
    if model.name == "smplx" and mode != "joints" and config.set_weights.get("face", 0.0) > 0:
        from reconstruction.fitting.smplx_face import find_smplx_face_embedding, smplx_face_spec

        face = find_smplx_face_embedding(model.num_vertices, model_file=getattr(model, "path", None))
        if face is not None:                # SMPL-X's face through FLAME's embedding (smplx_face.py)
            spec = spec.joined(smplx_face_spec(face))
    return spec


def _kind(model, spec: LandmarkSpec) -> str:
    if spec.reg_index is None:
        return "joints"
    if model.name == "smplx":
        return "joints + flame-embedding"
    return "flame-embedding" if model.name == "flame" else "calibrated"


def _overlay(photo_bgr: np.ndarray, cam: Camera, vertices: np.ndarray, faces: np.ndarray, model_uv: np.ndarray,
             kp: np.ndarray, conf: np.ndarray, side: int) -> np.ndarray:
    """One view: the photo at long side ``side`` with the fitted mesh's silhouette outline (yellow), detected
    landmarks (green), model landmarks (red) and a line between each pair. uv arrays (L, 2) full-res px."""
    import cv2

    from neural_render import rasterize

    s = side / max(photo_bgr.shape[:2])
    img = cv2.resize(photo_bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    S = torch.diag(torch.tensor([w / cam.width, h / cam.height, 1.0], dtype=cam.dtype, device=cam.device))
    small = Camera(K=S @ cam.K, R=cam.R, t=cam.t, width=w, height=h, name=cam.name)
    with torch.no_grad():
        m = rasterize(torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(np.asarray(faces, np.int64)),
                      small.to(dtype=torch.float32)).mask
    m = (m.reshape(img.shape[0], img.shape[1]).cpu().numpy() > 0).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(img, contours, -1, (0, 220, 255), 1, cv2.LINE_AA)
    r = 3 if len(conf) <= 40 else 2          # smaller dots when the dense face and hand sets are drawn
    for j in range(len(conf)):
        p = tuple(int(x) for x in model_uv[j] * s)
        if conf[j] > 0:
            q = tuple(int(x) for x in kp[j] * s)
            cv2.line(img, p, q, (255, 255, 255), 1, cv2.LINE_AA)
            cv2.circle(img, q, r, (40, 220, 40), -1, cv2.LINE_AA)
            cv2.circle(img, p, r, (40, 40, 230), -1, cv2.LINE_AA)
    return img


def write_overlays(out: Path, session: Session, frame: str, obs: ViewObservations, spec: LandmarkSpec,
                   result: FitResult, faces: np.ndarray, side: int = OVERLAY_SIDE,
                   outline: np.ndarray | None = None, views: bool = True) -> tuple[list[str], dict[str, float]]:
    """out/overlays/CAMERA.png per view (unless not ``views``: the contact sheet holds the same images at the same
    size) and out/overlays.png (contact sheet) -> (relative paths, per-view confidence-weighted mean landmark
    error in px). outline: (V, 3) vertices whose silhouette is drawn (default: the fitted model's; the detailed
    mesh when there is detail)."""
    import cv2

    from core.storage import atomic_write_bytes
    from reconstruction.fitting import model_landmarks

    cams = obs.cameras.to(dtype=torch.float64)
    with torch.no_grad():
        lm3d = model_landmarks(torch.as_tensor(result.vertices)[None], torch.as_tensor(result.joints)[None], spec)[0]
        uv = cams.project(lm3d.to(cams.K.device))[0].cpu().numpy()           # (N, L, 2)
    kp, conf = obs.keypoints.double().cpu().numpy(), obs.confidence.double().cpu().numpy()
    err = np.linalg.norm(uv - kp, axis=-1)
    names = [c.name for c in obs.cameras]
    per_view = {n: (float((err[i] * conf[i]).sum() / conf[i].sum()) if conf[i].sum() > 0 else float("nan"))
                for i, n in enumerate(names)}
    if views:
        (out / "overlays").mkdir(parents=True, exist_ok=True)
    thumbs, captions, files = [], [], []
    for i, cam in enumerate(obs.cameras):
        photo = cv2.imread(str(session.frames[frame][cam.name]), cv2.IMREAD_COLOR)
        if photo is None:
            raise FileNotFoundError(f"cannot read {session.frames[frame][cam.name]}")
        img = _overlay(photo, cam, result.vertices if outline is None else outline, faces, uv[i], kp[i], conf[i],
                       side)
        if views:
            ok, buf = cv2.imencode(".png", img)
            atomic_write_bytes(out / "overlays" / f"{cam.name}.png", buf.tobytes())
            files.append(f"overlays/{cam.name}.png")
        thumbs.append(img)
        captions.append(f"{cam.name} {per_view[cam.name]:.1f}px")
    ok, buf = cv2.imencode(".png", contact_sheet(thumbs, captions))
    atomic_write_bytes(out / "overlays.png", buf.tobytes())
    return files, per_view


def fit_session(model, session_dir: str | Path, ingest_dir: str | Path, out: str | Path,
                config: FitConfig | None = None, frame: str | None = None,
                progress: Callable[[str, int, int, float], None] | None = None, overlays: bool = True,
                params: dict | None = None) -> SessionFit:
    """Fit ``model`` (Anny) to one frame of a session and write the fit folder ``out`` (see module doc).

    Silhouettes are used when ``config.w_silhouette > 0`` and the ingest has the masks. Errors: a session
    without landmarks (FileNotFoundError / ValueError naming the ingest), fewer than two views that see the
    person (ValueError)."""
    t0 = time.perf_counter()
    cfg = config or FitConfig()
    session = load_session(session_dir)
    ingest = load_ingest(ingest_dir)
    spec = session_spec(model, cfg)
    return _fit_frame(model, session, ingest, spec, cfg, frame, Path(out), progress, overlays, params, t0)


def fit_session_sequence(model, session_dir: str | Path, ingest_dir: str | Path, out: str | Path,
                         config: FitConfig | None = None,
                         progress: Callable[[str, int, int, float], None] | None = None, overlays: bool = True,
                         params: dict | None = None, checkpoint: TakeCheckpoint | None = None,
                         on_frame: Callable[[int, SessionFit, Path], None] | None = None,
                         frames: str | None = None) -> TakeFit:
    """Fit every frame of a session (a take): the first frame as ``fit_session`` does, into ``out`` (shape,
    pose, expression, silhouette detail); every later frame warm-started from the prediction of the previous
    frames (the previous frame's fit; from the third frame on, constant velocity: 2 x[t-1] - x[t-2] for the
    axis-angle pose and the translation), with the first frame's shape kept (one actor) and the temporal term
    ``config.w_temporal`` pulling pose and translation towards that prediction, into ``out/frames/FRAME/``
    (params.json, fit_mesh.ply, metrics.json, the overlays' contact sheet; fit_mesh_bind.ply a hard link to the
    first frame's, the same shape, where the disk allows). Later frames run a third of the body iterations and
    half of the last stage's, and no detail. ``out/metrics.json`` lists every frame.

    checkpoint: a `reconstruction.take_checkpoint.TakeCheckpoint`: the frames are written into its folder (moved
    into ``out`` at the end) and counted as they are fitted, and a resumed one's kept frames are not fitted again
    (the later frames start from their params.json, as from the fits themselves). on_frame(index, fit, folder):
    called when a frame's folder is written (the CLI writes the first frame's report). progress(stage "FRAME:
    stage", ...). frames: "A:B", the take's frames A to B (B exclusive) alone, the first of them fitted as the
    take's first (a part of a long take; None: every frame). Returns the take's frames, and those this call
    fitted (a resumed take's kept frames are not); a frame's fit is not held after its folder is written (a take
    of thousands of frames)."""
    from core.frame_ranges import parse_frames
    from core.storage import atomic_write_json, link_if_identical, refresh_manifest_outputs

    cfg = config or FitConfig()
    session = load_session(session_dir)
    ingest = load_ingest(ingest_dir)
    spec = session_spec(model, cfg)
    out = Path(out)
    where = out if checkpoint is None else checkpoint.fit_folder
    later = replace(cfg, iters_rigid=0, iters_body=max(1, cfg.iters_body // 3), iters_all=cfg.iters_all // 2,
                    detail_iterations=0)
    names = [ingest.frames[i] for i in parse_frames(frames, len(ingest.frames))]
    rows = {} if checkpoint is None else checkpoint.kept(names)
    results = [read_fit_result(frame_folder(where, i, f), model) for i, f in enumerate(rows) if i >= len(rows) - 2]
    fitted: list[str] = []
    for i, frame in enumerate(names[len(rows):], start=len(rows)):
        step = (lambda st, it, n, loss, f=frame: progress(f"{f}: {st}", it, n, loss)) if progress else None
        folder = frame_folder(where, i, frame)
        if i == 0:
            fit = _fit_frame(model, session, ingest, spec, cfg, frame, folder, step, overlays, params,
                             time.perf_counter())
        else:
            prev = results[-1]
            if i >= 2:   # constant velocity: the prediction from the two previous frames (no lag on smooth motion)
                before = results[-2]
                prev = replace(prev, pose=2 * prev.pose - before.pose,
                               root_translation=2 * prev.root_translation - before.root_translation)
            fit = _fit_frame(model, session, ingest, spec, later, frame, folder, step, overlays, params,
                             time.perf_counter(), init=prev, previous=prev, freeze_shape=True)
            link_if_identical(where / "fit_mesh_bind.ply", folder / "fit_mesh_bind.ply")   # the take's one shape
        if on_frame is not None:
            on_frame(i, fit, folder)
        fitted.append(fit.frame)
        results = [*results[-1:], fit.result]
        px = fit.result.reprojection_px
        rows[fit.frame] = {"reprojection_px": px if np.isfinite(px) else None, "seconds": fit.seconds["total"],
                           "views_seeing_person": fit.views_seeing}
        if checkpoint is not None:
            checkpoint.frame_done(fit.frame, rows[fit.frame])
    metrics_path = where / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["frames"] = {f: _frame_row(i, f, r) for i, (f, r) in enumerate(rows.items())}
    metrics["frames_seen_by_fewer_than_two_views"] = [f for f, r in rows.items()
                                                      if r.get("views_seeing_person", 2) < 2]
    metrics["w_temporal"] = cfg.w_temporal
    atomic_write_json(metrics_path, metrics)
    refresh_manifest_outputs(where, ["metrics"])       # the manifest hashed the first frame's metrics.json
    if checkpoint is not None:          # the frames into the output (both beside it: one file system)
        for p in list(where.iterdir()):
            os.replace(p, out / p.name)
    return TakeFit(frames=rows, fitted=fitted)


def _frame_row(index: int, frame: str, row: dict) -> dict:
    """A frame's entry in a take's metrics.json: its folder, the views that saw the actor, its landmark error
    (px, None when none was seen) and time (s)."""
    px = row["reprojection_px"]
    return {"folder": "." if index == 0 else f"frames/{frame}", "views_seeing_person": row.get("views_seeing_person"),
            "reprojection_px": None if px is None else round(px, 3), "seconds": round(row["seconds"], 2)}


@dataclass
class TakeFit:
    """A take's fit (`fit_session_sequence`): frames: name -> {"reprojection_px" (None: no landmark seen),
    "seconds", "views_seeing_person"} in the take's order; fitted: the frames fitted by the call (the others were
    kept from an interrupted run's checkpoint)."""

    frames: dict[str, dict]
    fitted: list[str]


def read_fit_result(folder: Path, model) -> FitResult:
    """The parameters of the fit folder ``folder`` (params.json: shape, pose, root translation, expression, exact
    float64) as a FitResult that starts or steers a later frame's fit; its mesh is not read (vertices and joints
    (0, 3)), reprojection_px from its metrics.json."""
    from reconstruction.fit_folder import FitFolder

    p = FitFolder(folder).read_params()
    if p.model != model.name or p.pose is None or p.root_translation is None:
        raise ValueError(f"{folder}: not a {model.name} fit with a pose (params.json)")
    metrics = json.loads((Path(folder) / "metrics.json").read_text(encoding="utf-8"))
    return FitResult(shape=np.array([p.shape[n] for n in model.shape_names], dtype=np.float64), pose=p.pose,
                     root_translation=p.root_translation,
                     expression=np.array([p.expression.get(n, 0.0) for n in model.expression_names], dtype=np.float64),
                     vertices=np.zeros((0, 3)), joints=np.zeros((0, 3)),
                     reprojection_px=float("nan") if metrics.get("reprojection_px") is None else
                     float(metrics["reprojection_px"]))


def _fit_frame(model, session: Session, ingest: IngestData, spec: LandmarkSpec, cfg: FitConfig, frame: str | None,
               out: Path, progress, overlays: bool, params: dict | None, t0: float, init: FitResult | None = None,
               previous: FitResult | None = None, freeze_shape: bool = False) -> SessionFit:
    from reconstruction.fit_io import write_multiview_fit

    use_masks = cfg.w_silhouette > 0 and cfg.silhouette_size > 0
    set_weights = cfg.set_weights if spec.reg_index is not None else None
    obs, fname = session_observations(session, ingest, spec, frame, masks=use_masks, set_weights=set_weights)
    seeing = _views_seeing(obs, fname, ingest, steered=previous is not None)
    t_read = time.perf_counter() - t0
    stage_landmarks = None
    if spec.reg_index is not None:
        sets = np.array([landmark_set(int(i)) for i in spec.ids])
        body = np.isin(sets, list(cfg.body_stage_sets))
        stage_landmarks = {"body": body} if body.any() else None   # (FLAME: face landmarks only, every stage)
    result = fit_multiview(model, obs, spec, cfg, progress=progress, stage_landmarks=stage_landmarks, init=init,
                           previous=previous, freeze_shape=freeze_shape, min_views=0 if previous is not None else 2)
    detail, detail_note = _detail(model, session, ingest, fname, obs, result, cfg, progress)
    out.mkdir(parents=True, exist_ok=True)
    t1 = time.perf_counter()
    outline = None if detail is None else result.vertices + detail.offsets
    files, per_view = (write_overlays(out, session, fname, obs, spec, result, model.faces, outline=outline,
                                      views=previous is None) if overlays else ([], {}))
    t_overlay = time.perf_counter() - t1
    metrics = {"frame": fname, "views": len(obs.cameras), "views_seeing_person": seeing,
               "landmarks": len(spec), "silhouettes": use_masks,
               "correspondences": _kind(model, spec),
               "view_reprojection_px": {k: round(v, 3) if np.isfinite(v) else None for k, v in per_view.items()},
               "detail": detail_note}   # None: a view that saw none of the landmarks (FLAME's face from behind)
    if detail is not None:
        metrics["detail_mask_disagreement"] = {"before": round(detail.disagreement_before, 5),
                                               "after": round(detail.disagreement_after, 5)}
        metrics["detail_displacement_mm"] = {"mean_abs": round(float(np.abs(detail.displacements).mean()) * 1000, 3),
                                             "max_abs": round(float(np.abs(detail.displacements).max()) * 1000, 3)}
    write_multiview_fit(out, model, result, metrics, detail=detail, params={
        **(params or {}), "session": str(session.root), "landmarks": str(ingest.root), "frame": fname,
        "iterations": {"rigid": cfg.iters_rigid, "body": cfg.iters_body, "face": cfg.iters_face,
                       "all": cfg.iters_all}, "w_silhouette": cfg.w_silhouette,
        "detail": {"iterations": cfg.detail_iterations, "size": cfg.detail_size}})
    extra = {"detail": detail.seconds} if detail is not None else {}
    return SessionFit(result=result, observations=obs, spec=spec, frame=fname,
                      camera_names=[c.name for c in obs.cameras], view_reprojection_px=per_view,
                      views_seeing=seeing, overlays=files, detail=detail,
                      seconds={"read": t_read, **result.seconds, **extra, "overlays": t_overlay,
                               "total": time.perf_counter() - t0})


def _views_seeing(obs: ViewObservations, frame: str, ingest: IngestData, steered: bool) -> int:
    """How many views see the person in ``frame`` (>= 3 landmarks of any set). Fewer than two: ValueError (one
    line) for a frame fitted on its own; a take's later frame (``steered`` by the frames before it: an actor
    behind a crash mat, out of most cameras for a moment) is fitted from the views it has and the motion, with a
    warning, and its metrics say how many saw it."""
    seeing = int(((obs.confidence > 0).sum(1) >= 3).sum())
    if steered:
        if seeing < 2:
            log.warning("frame %s: %d of %d views see the person: fitted from %s and the motion of the frames "
                        "before it", frame, seeing, len(obs.cameras), "that view" if seeing else "no view")
        return seeing
    if int((obs.confidence > 0).sum()) == 0:
        raise ValueError(f"{ingest.root}: no pose landmarks detected in any view of frame {frame!r} (the session "
                         f"has no landmarks of a person)")
    if seeing < 2:
        raise ValueError(f"fewer than two views see the person in frame {frame!r}: {seeing} of {len(obs.cameras)} "
                         f"views have >= 3 pose landmarks with visibility >= {POSE_MIN_VISIBILITY}")
    return seeing


def _detail(model, session: Session, ingest: IngestData, frame: str, obs: ViewObservations, result: FitResult,
            cfg: FitConfig, progress) -> tuple[DetailResult | None, str]:
    """Silhouette detail on the fitted mesh (FitConfig.detail_iterations > 0), or None and why not."""
    from reconstruction.silhouette_detail import DetailConfig, silhouette_detail

    if cfg.detail_iterations <= 0:
        return None, "off"
    if model.name == "flame":
        return None, "skipped: a head model cannot match whole-person masks"
    if any(c.has_distortion for c in session.cameras):
        return None, "skipped: distorted cameras (the masks are not undistorted yet)"
    try:
        masks = torch.stack([torch.as_tensor(ingest.mask(frame, c.name)) for c in obs.cameras])
    except FileNotFoundError as e:
        log.warning("no silhouette detail: %s", e)
        return None, f"skipped: {e}"
    step = (lambda i, n, loss: progress("detail", i, n, loss)) if progress else None
    det = silhouette_detail(result.vertices, model.faces, obs.cameras, masks,
                            DetailConfig(iterations=cfg.detail_iterations, size=cfg.detail_size), progress=step)
    return det, "silhouettes"
