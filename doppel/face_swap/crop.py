"""The plate camera cut to a face box: the face is rasterized in its box only, never over the whole frame."""

from __future__ import annotations

import numpy as np


def crop_camera(K: np.ndarray, R: np.ndarray, t: np.ndarray, box: tuple[int, int, int, int],
                size: tuple[int, int] | None = None):
    """The plate camera K (3, 3) with head pose R (3, 3), t (3,) (bind frame -> camera) cut to the crop box
    (x0, y0, x1, y1) inclusive: a `capture.camera.Camera` (float32) of the box's size, or ``size`` (width,
    height) when the render must be larger (padded right and down)."""
    import torch

    from capture.camera import Camera

    x0, y0, x1, y1 = box
    w, h = size if size is not None else (x1 - x0 + 1, y1 - y0 + 1)
    full = Camera(K=torch.tensor(np.asarray(K, np.float64), dtype=torch.float32),
                  R=torch.tensor(R, dtype=torch.float32), t=torch.tensor(t, dtype=torch.float32), width=w, height=h)
    return full.cropped(x0, y0, w, h)
