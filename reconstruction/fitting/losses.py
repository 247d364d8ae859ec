"""The fitter's loss terms. All return scalars (0-dim tensors) on the inputs' device."""

from __future__ import annotations

from torch import Tensor

from capture.camera import Camera

ROBUST_REFERENCE_SIDE = 1024   # FitConfig.robust_px is in pixels of a view this many pixels on its long side


def robust_px_at(robust_px: float, cameras: Camera) -> float:
    """The Geman-McClure scale for views of ``cameras``' size: ``robust_px`` (pixels at a long side of
    ROBUST_REFERENCE_SIDE) x their long side / ROBUST_REFERENCE_SIDE. A fixed pixel scale made the fit depend on
    the photos' resolution: 16 views at 4096 px reprojected 47.4 px (11.9 px at 1024 px) against 5.7 px for the
    same views at 1024 px, errors that were still normal for 4096 px views costing as much as outliers."""
    return robust_px * max(int(cameras.width), int(cameras.height)) / ROBUST_REFERENCE_SIDE


def reprojection_loss(points: Tensor, keypoints: Tensor, confidence: Tensor, cameras: Camera,
                      robust_px: float = 8.0) -> Tensor:
    """Confidence-weighted robust reprojection error.

    points (L, 3) world metres; keypoints (N, L, 2) pixels; confidence (N, L) in [0, 1] (0 = missing);
    cameras: a batch of N. Geman-McClure on the pixel error with scale ``robust_px``:
    rho(e) = e^2 / (e^2 + s^2), so an outlier costs at most 1. Returns the confidence-weighted mean.
    Points behind a camera get zero weight in that view.
    """
    uv, z = cameras.project(points)                                 # (N, L, 2), (N, L)
    e2 = ((uv - keypoints) ** 2).sum(-1)
    rho = e2 / (e2 + robust_px ** 2)
    w = confidence * (z > 0).to(confidence.dtype)
    return (w * rho).sum() / w.sum().clamp_min(1e-9)


def silhouette_loss(verts: Tensor, faces: Tensor, cameras: Camera, masks: Tensor, sigma: float = 1.0) -> Tensor:
    """Mean squared difference between the soft silhouette of the mesh and the person masks.

    verts (V, 3) world metres; faces (F, 3); cameras: batch of N at the masks' resolution; masks (N, H, W)
    in [0, 1]."""
    from neural_render import soft_silhouette

    sil = soft_silhouette(verts, faces, cameras, sigma=sigma)
    return ((sil - masks.to(sil.dtype)) ** 2).mean()


def prior_loss(pose: Tensor, shape: Tensor, neutral_shape: Tensor, expression: Tensor | None, *, w_pose: float,
               w_limits: float, limit_rad: float, w_shape: float, w_expression: float) -> Tensor:
    """Priors: w_pose * sum |r|^2 over the optimised local rotations pose (K, 3) axis-angle (radians);
    w_limits * sum max(0, |r| - limit_rad)^2; w_shape * |shape - neutral|^2; w_expression * |expression|^2."""
    ang = pose.norm(dim=-1)
    out = w_pose * (pose ** 2).sum() + w_limits * ((ang - limit_rad).clamp_min(0) ** 2).sum()
    out = out + w_shape * ((shape - neutral_shape) ** 2).sum()
    if expression is not None:
        out = out + w_expression * (expression ** 2).sum()
    return out
