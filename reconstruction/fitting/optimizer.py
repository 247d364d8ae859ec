"""The staged multi-view fitter: rigid, then shape and pose, then expression, then everything.

Parameters (Doppel's BodyParams convention): root rotation and translation, local rotations of the
configured joints, shape and expression (clamped to the model's shape_bounds / expression_bounds, e.g.
Anny's [0, 1]). The loss is ``w_landmarks * reprojection + w_silhouette * silhouette + priors`` (losses.py),
minimised with Adam. The rigid start comes from DLT triangulation of the landmarks and a Kabsch alignment of
the neutral model's landmarks to them. Device and dtype follow the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as tf
from torch import Tensor

from capture.camera import Camera
from reconstruction.fitting.config import FitConfig
from reconstruction.fitting.landmarks import LandmarkSpec, model_landmarks
from reconstruction.fitting.losses import prior_loss, reprojection_loss, robust_px_at, silhouette_loss

log = logging.getLogger(__name__)


@dataclass
class ViewObservations:
    """What the fitter sees, for N calibrated views of one frame.

    cameras: a batch of N (undistorted pinhole: undistort landmarks and masks first).
    keypoints (N, L, 2) pixels, in the LandmarkSpec's order; confidence (N, L) in [0, 1] (0 = not seen).
    masks (N, H, W) float in [0, 1] at the cameras' resolution, or None (no silhouette term).
    """

    cameras: Camera
    keypoints: Tensor
    confidence: Tensor
    masks: Tensor | None = None

    def validate(self, num_landmarks: int, min_views: int = 2) -> None:
        """Shapes, and at least ``min_views`` views with >= 3 landmarks (ValueError, one line)."""
        N = len(self.cameras)
        if tuple(self.keypoints.shape) != (N, num_landmarks, 2):
            raise ValueError(f"keypoints must be ({N}, {num_landmarks}, 2), got {tuple(self.keypoints.shape)}")
        if tuple(self.confidence.shape) != (N, num_landmarks):
            raise ValueError(f"confidence must be ({N}, {num_landmarks}), got {tuple(self.confidence.shape)}")
        seen = (self.confidence > 0).sum(1) >= 3
        if int(seen.sum()) < min_views:
            raise ValueError(f"fewer than {min_views} views see the person (views with >= 3 landmarks: "
                             f"{int(seen.sum())} of {N})")
        if self.masks is not None and tuple(self.masks.shape) != (N, self.cameras.height, self.cameras.width):
            raise ValueError(f"masks must be ({N}, {self.cameras.height}, {self.cameras.width}), "
                             f"got {tuple(self.masks.shape)}")


@dataclass(frozen=True)
class FitResult:
    """The fitted parameters (float64 numpy, BodyParams order) and the posed mesh in the world frame.

    shape (S,), pose (J, 3) axis-angle, root_translation (3,), expression (E,); vertices (V, 3) and joints
    (J, 3) metres; history: stage -> loss per iteration; seconds: stage -> wall time; reprojection_px:
    confidence-weighted mean pixel error of the landmarks at the end."""

    shape: np.ndarray
    pose: np.ndarray
    root_translation: np.ndarray
    expression: np.ndarray
    vertices: np.ndarray
    joints: np.ndarray
    reprojection_px: float
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def triangulate(keypoints: Tensor, confidence: Tensor, cameras: Camera) -> tuple[np.ndarray, np.ndarray]:
    """DLT triangulation: keypoints (N, L, 2), confidence (N, L), cameras (N) -> (points (L, 3), ok (L,) bool:
    seen by >= 2 views)."""
    P = cameras.projection_matrix().detach().double().cpu().numpy()
    kp = keypoints.detach().double().cpu().numpy()
    c = confidence.detach().double().cpu().numpy()
    L = kp.shape[1]
    pts, ok = np.zeros((L, 3)), np.zeros(L, bool)
    for j in range(L):
        v = np.nonzero(c[:, j] > 0)[0]
        if len(v) < 2:
            continue
        A = []
        for i in v:
            A.append(c[i, j] * (kp[i, j, 0] * P[i, 2] - P[i, 0]))
            A.append(c[i, j] * (kp[i, j, 1] * P[i, 2] - P[i, 1]))
        _, _, vt = np.linalg.svd(np.asarray(A))
        X = vt[-1]
        if abs(X[3]) > 1e-12:
            pts[j], ok[j] = X[:3] / X[3], True
    return pts, ok


def _kabsch(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R, t minimising |R src + t - dst|^2 (proper rotation)."""
    cs, cd = src.mean(0), dst.mean(0)
    U, _, Vt = np.linalg.svd((src - cs).T @ (dst - cd))
    D = np.diag([1, 1, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    return R, cd - R @ cs


def scaled_views(cameras: Camera, masks: Tensor, size: int) -> tuple[Camera, Tensor]:
    """Cameras and masks at a long side of ``size`` pixels (area-averaged masks)."""
    W, H = cameras.width, cameras.height
    f = size / max(W, H)
    w, h = max(1, round(W * f)), max(1, round(H * f))
    S = torch.diag(torch.tensor([w / W, h / H, 1.0], dtype=cameras.dtype, device=cameras.device))
    cams = replace(cameras, K=S @ cameras.K, width=w, height=h)
    m = tf.interpolate(masks[:, None].float(), size=(h, w), mode="area")[:, 0]
    return cams, m


def _rigid_start(model, spec, kp, conf, cams, cfg, sil_cams, sil_masks, faces, history, seconds, progress):
    """Root rotation (1, 3) (local, in the root's bind frame) and translation (1, 3) of the neutral model from
    DLT triangulation + Kabsch, refined by the rigid stage. Tensors that require grad."""
    import roma

    from reconstruction.body_models import BodyParams

    dt, dev = model.dtype, model.device
    with torch.no_grad():
        neutral = model.forward(BodyParams())
        lm0 = model_landmarks(neutral.vertices, neutral.joints, spec)[0].double().cpu().numpy()
        B0 = neutral.joint_transforms[0, 0].double().cpu().numpy()
        v0 = neutral.vertices[0]
    X, ok = triangulate(kp, conf, cams)
    if ok.sum() < 3:
        raise ValueError(f"only {int(ok.sum())} landmarks are seen by two views or more; need 3 to place the body")
    R_init, t_init = _kabsch(lm0[ok], X[ok])
    r0, Rb = B0[:3, 3], B0[:3, :3]

    # Stage 1 (rigid) moves the neutral mesh directly: x -> R (x - r0) + r0 + t (no model evaluation).
    rot = torch.as_tensor(roma.rotmat_to_rotvec(torch.as_tensor(R_init)), dtype=dt, device=dev)[None].clone()
    trans = torch.as_tensor(R_init @ r0 + t_init - r0, dtype=dt, device=dev)[None].clone()
    r0_t = torch.as_tensor(r0, dtype=dt, device=dev)
    lm0_t = torch.as_tensor(lm0, dtype=dt, device=dev)
    t0 = time.perf_counter()
    if cfg.iters_rigid > 0:
        rot.requires_grad_(True)
        trans.requires_grad_(True)
        opt = torch.optim.Adam([rot, trans], lr=cfg.lr * cfg.lr_rigid_factor)   # the Kabsch start is close
        hist = history.setdefault("rigid", [])
        for it in range(cfg.iters_rigid):
            opt.zero_grad()
            R = roma.rotvec_to_rotmat(rot[0])
            lm = (lm0_t - r0_t) @ R.T + r0_t + trans[0]
            loss = cfg.w_landmarks * reprojection_loss(lm, kp, conf, cams, robust_px_at(cfg.robust_px, cams))
            if sil_cams is not None and it >= cfg.iters_rigid // 2:
                v = (v0 - r0_t) @ R.T + r0_t + trans[0]
                loss = loss + cfg.w_silhouette * silhouette_loss(v, faces, sil_cams, sil_masks, cfg.silhouette_sigma)
            loss.backward()
            opt.step()
            hist.append(float(loss.detach()))
            if progress:
                progress("rigid", it + 1, cfg.iters_rigid, hist[-1])
    seconds["rigid"] = time.perf_counter() - t0

    # The world rotation R as the root's local rotation in its bind frame: Rb^T R Rb.
    with torch.no_grad():
        Rw = roma.rotvec_to_rotmat(rot[0].detach().double()).cpu().numpy()
    root = torch.as_tensor(roma.rotmat_to_rotvec(torch.as_tensor(Rb.T @ Rw @ Rb)), dtype=dt, device=dev)[None]
    return root.clone().requires_grad_(True), trans.detach().clone().requires_grad_(True)


def _variables_from(fit: FitResult, sel_nr: Tensor, dt, dev, grad: bool = True) -> tuple[Tensor, ...]:
    """(root (1, 3), trans (1, 3), pose (K, 3) of the fitted joints, shape (1, S), expression (1, E)) of a
    FitResult, as fresh leaf tensors."""
    T = lambda x: torch.as_tensor(np.asarray(x), dtype=dt, device=dev).clone().requires_grad_(grad)  # noqa: E731
    full = np.asarray(fit.pose)
    return (T(full[0][None]), T(fit.root_translation[None]), T(full[sel_nr.cpu().numpy()]), T(fit.shape[None]),
            T(fit.expression[None]))


@dataclass
class _Problem:
    """Everything fixed during one multi-view fit, on the model's device and dtype."""

    model: object
    spec: LandmarkSpec
    cfg: FitConfig
    cams: Camera
    kp: Tensor                       # (N, L, 2) pixels
    conf: Tensor                     # (N, L)
    faces: Tensor
    sil_cams: Camera | None
    sil_masks: Tensor | None         # (N, h, w) at the silhouette size, or None (no silhouette term)
    sel_nr: Tensor                   # (K,) long: the fitted non-root joints
    neutral_shape: Tensor            # (1, S)
    expr_mask: Tensor                # (E,) 1 = fitted expression

    @classmethod
    def build(cls, model, obs: ViewObservations, spec: LandmarkSpec, cfg: FitConfig, min_views: int = 2
              ) -> _Problem:
        obs.validate(len(spec), min_views)
        dt, dev = model.dtype, model.device
        cams = obs.cameras.to(device=dev, dtype=dt)
        sil_cams = sil_masks = None
        if obs.masks is not None and cfg.silhouette_size > 0 and cfg.w_silhouette > 0:
            sil_cams, sil_masks = scaled_views(cams, obs.masks.to(device=dev), cfg.silhouette_size)
            sil_masks = sil_masks.to(dt)
        names = model.pose_names
        sel = sorted({0, *[names.index(j) for j in cfg.joints if j in names]})
        E = len(model.expression_names)
        expr_mask = torch.ones(E, dtype=dt, device=dev)
        if cfg.expression_names:
            expr_mask = torch.as_tensor([n in cfg.expression_names for n in model.expression_names], dtype=dt,
                                        device=dev)
        return cls(model=model, spec=spec, cfg=cfg, cams=cams, kp=obs.keypoints.to(device=dev, dtype=dt),
                   conf=obs.confidence.to(device=dev, dtype=dt), faces=torch.as_tensor(model.faces, device=dev),
                   sil_cams=sil_cams, sil_masks=sil_masks,
                   sel_nr=torch.as_tensor([j for j in sel if j != 0], device=dev, dtype=torch.long),
                   neutral_shape=torch.full((1, len(model.shape_names)), model.shape_default, dtype=dt, device=dev),
                   expr_mask=expr_mask)


@dataclass
class _Variables:
    """The optimised leaf tensors: root (1, 3) local axis-angle, trans (1, 3) metres, pose (K, 3) of the fitted
    joints, shape (1, S), expr (1, E)."""

    root: Tensor
    trans: Tensor
    pose: Tensor
    shape: Tensor
    expr: Tensor

    def params(self, pb: _Problem):
        """The BodyParams of these variables (shape and expression clamped to the model's bounds)."""
        from reconstruction.body_models import BodyParams

        m = pb.model
        dt, dev = m.dtype, m.device
        full = torch.zeros(1, len(m.pose_names), 3, dtype=dt, device=dev).index_put(
            (torch.zeros_like(pb.sel_nr), pb.sel_nr), self.pose)
        full = torch.cat([self.root[:, None], full[:, 1:]], 1)
        return BodyParams(shape=m.clamp_shape(self.shape), pose=full, root_translation=self.trans,
                          expression=m.clamp_expression(self.expr * pb.expr_mask))


def _objective(pb: _Problem, v: _Variables, prev: _Variables | None, with_sil: bool, c: Tensor) -> Tensor:
    """The stage loss: reprojection (+ silhouette) + priors (+ the temporal term against prev)."""
    cfg, model = pb.cfg, pb.model
    p = v.params(pb)
    out = model.forward(p)
    lm = model_landmarks(out.vertices, out.joints, pb.spec)[0]
    loss = cfg.w_landmarks * reprojection_loss(lm, pb.kp, c, pb.cams, robust_px_at(cfg.robust_px, pb.cams))
    if with_sil and pb.sil_cams is not None:
        loss = loss + cfg.w_silhouette * silhouette_loss(out.vertices[0], pb.faces, pb.sil_cams, pb.sil_masks,
                                                         cfg.silhouette_sigma)
    loss = loss + prior_loss(v.pose, p.shape, pb.neutral_shape, p.expression, w_pose=cfg.w_pose_prior,
                             w_limits=cfg.w_joint_limits, limit_rad=cfg.joint_limit_rad,
                             w_shape=cfg.w_shape_prior, w_expression=cfg.w_expression_prior)
    if prev is not None and cfg.w_temporal > 0:
        loss = loss + cfg.w_temporal * (((v.pose - prev.pose) ** 2).sum() + ((v.root - prev.root) ** 2).sum()
                                        + ((v.trans - prev.trans) ** 2).sum() / cfg.temporal_translation_var_m2)
    return loss


def _run_stages(pb: _Problem, v: _Variables, prev: _Variables | None, freeze_shape: bool,
                stage_landmarks: dict[str, np.ndarray] | None, history: dict[str, list[float]],
                seconds: dict[str, float], progress: Callable[[str, int, int, float], None] | None) -> None:
    """The body, face and all stages (Adam), each over its variables; a stage with 0 iterations is skipped."""
    cfg = pb.cfg
    body_vars = [v.root, v.trans, v.pose] + ([] if freeze_shape else [v.shape])
    stages = (("body", cfg.iters_body, body_vars, True, cfg.lr),
              ("face", cfg.iters_face, [v.expr], False, cfg.lr),
              ("all", cfg.iters_all, body_vars + [v.expr], True, cfg.lr * cfg.lr_all_factor))
    for name, iters, variables, with_sil, lr in stages:
        if iters <= 0:
            continue
        t0 = time.perf_counter()
        opt = torch.optim.Adam(variables, lr=lr)
        hist = history.setdefault(name, [])
        c = pb.conf
        if stage_landmarks is not None and name in stage_landmarks:
            c = pb.conf * torch.as_tensor(np.asarray(stage_landmarks[name], bool), device=pb.conf.device
                                          ).to(pb.conf.dtype)[None]
        for it in range(iters):
            opt.zero_grad()
            loss = _objective(pb, v, prev, with_sil, c)
            loss.backward()
            opt.step()
            hist.append(float(loss.detach()))
            if progress:
                progress(name, it + 1, iters, hist[-1])
        seconds[name] = time.perf_counter() - t0


def _result(pb: _Problem, v: _Variables, history: dict[str, list[float]], seconds: dict[str, float]) -> FitResult:
    """The fitted parameters, posed mesh and final confidence-weighted reprojection error."""
    with torch.no_grad():
        p = v.params(pb)
        out = pb.model.forward(p)
        lm = model_landmarks(out.vertices, out.joints, pb.spec)[0]
        uv, _ = pb.cams.project(lm)
        err = (uv - pb.kp).norm(dim=-1)
        seen = float(pb.conf.sum())        # 0: no landmark in any view (a take's frame steered by the motion alone)
        px = float((err * pb.conf).sum()) / seen if seen > 0 else float("nan")
        f = lambda x: x.detach().double().cpu().numpy()  # noqa: E731
        return FitResult(shape=f(p.shape[0]), pose=f(p.pose[0]), root_translation=f(p.root_translation[0]),
                         expression=f(p.expression[0]), vertices=f(out.vertices[0]), joints=f(out.joints[0]),
                         reprojection_px=px, history=history, seconds=seconds)


def fit_multiview(model, obs: ViewObservations, spec: LandmarkSpec, config: FitConfig | None = None,
                  progress: Callable[[str, int, int, float], None] | None = None,
                  stage_landmarks: dict[str, np.ndarray] | None = None, init: FitResult | None = None,
                  previous: FitResult | None = None, freeze_shape: bool = False, min_views: int = 2) -> FitResult:
    """Fit ``model`` (a BodyModel) to the views. progress(stage, iteration, stage_total, loss) each iteration.
    stage_landmarks: stage name ('body', 'face', 'all') -> (L,) bool, the landmarks that stage sees (default:
    all), e.g. the body stage on the pose landmarks alone before the dense face and hand points join.

    Sequences: ``init`` starts from an earlier fit (no triangulation / Kabsch start, no rigid stage);
    ``previous`` adds the temporal term w_temporal * (sum |r - r_prev|^2 over the fitted local rotations and
    the root, radians^2, + |t - t_prev|^2 / temporal_translation_var_m2); ``freeze_shape`` keeps the shape of
    ``init`` (one actor, one shape). min_views: views that must see >= 3 landmarks (ValueError otherwise); a
    take's frame that fewer see is steered by ``previous`` (0: the prediction alone when none does; its
    reprojection_px is NaN)."""
    cfg = config or FitConfig()
    if freeze_shape and init is None:
        raise ValueError("freeze_shape needs init (the fit whose shape is kept)")
    pb = _Problem.build(model, obs, spec, cfg, min_views)
    dt, dev = model.dtype, model.device
    history: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    if init is not None:
        v = _Variables(*_variables_from(init, pb.sel_nr, dt, dev))
    else:
        root, trans = _rigid_start(model, spec, pb.kp, pb.conf, pb.cams, cfg, pb.sil_cams, pb.sil_masks, pb.faces,
                                   history, seconds, progress)
        v = _Variables(root, trans, torch.zeros(len(pb.sel_nr), 3, dtype=dt, device=dev, requires_grad=True),
                       pb.neutral_shape.clone().requires_grad_(True),
                       torch.zeros(1, len(model.expression_names), dtype=dt, device=dev, requires_grad=True))
    prev = None if previous is None else _Variables(*_variables_from(previous, pb.sel_nr, dt, dev, grad=False))
    _run_stages(pb, v, prev, freeze_shape, stage_landmarks, history, seconds, progress)
    return _result(pb, v, history, seconds)
