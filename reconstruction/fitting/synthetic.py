"""Synthetic multi-view observations of a known mesh, for tests and benchmarks (the fitter never reads the
ground truth it is compared with): projected landmarks with pixel noise and dropped detections, and hard
person masks rendered with neural_render."""

from __future__ import annotations

import numpy as np
import torch

from capture.camera import Camera
from reconstruction.fitting.landmarks import LandmarkSpec
from reconstruction.fitting.optimizer import ViewObservations


def synthetic_views(vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray, spec: LandmarkSpec, *,
                    views: int = 16, size: int = 1024, radius: float = 3.0, target=(0.0, 0.95, 0.0),
                    noise_px: float = 1.0, drop: float = 0.05, seed: int = 0, masks: bool = True) -> ViewObservations:
    """N cameras on a circle around ``target`` (alternating 0.3 m above / below it, 40 degree field of view),
    looking at a mesh (vertices (V, 3), faces (F, 3), joints (J, 3), metres). Landmarks: the spec's joints,
    vertices or regressor points projected, + N(0, noise_px) pixel noise, a fraction ``drop`` given confidence 0
    (and confidence 0 where a landmark falls outside the image)."""
    from neural_render import rasterize

    rng = np.random.default_rng(seed)
    cams = []
    tgt = np.asarray(target, np.float64)
    for i in range(views):
        a = 2 * np.pi * i / views
        eye = tgt + np.array([radius * np.sin(a), 0.3 if i % 2 == 0 else -0.3, radius * np.cos(a)])
        cams.append(Camera.look_at(eye, tgt, width=size, height=size, fov_y_deg=40.0, name=f"cam{i:02d}"))
    cams = Camera.stack(cams)
    v = torch.as_tensor(np.asarray(vertices, np.float32))
    j = torch.as_tensor(np.asarray(joints, np.float32))
    from reconstruction.fitting.landmarks import model_landmarks

    lm = model_landmarks(v[None], j[None], spec)[0]           # joints, vertices or regressor rows
    uv, z = cams.project(lm)
    kp = uv + torch.as_tensor(rng.normal(0, noise_px, uv.shape), dtype=uv.dtype)
    conf = torch.as_tensor(rng.uniform(size=uv.shape[:2]) >= drop, dtype=torch.float32)
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < size) & (uv[..., 1] >= 0) & (uv[..., 1] < size) & (z > 0)
    conf = conf * inside.float()
    m = None
    if masks:
        with torch.no_grad():
            m = rasterize(v, torch.as_tensor(np.asarray(faces, np.int64)), cams).mask.float()
    return ViewObservations(cameras=cams, keypoints=kp.float(), confidence=conf, masks=m)
