"""PNG previews of a scan registration a person can look at: the renders with the detected scan landmarks,
and the per-vertex sliding of the non-rigid stage as a heat map on the registered mesh (front and back)."""

from __future__ import annotations

import numpy as np

__all__ = ["heat_colors", "sliding_heatmap", "landmark_sheet"]

SLIDING_SCALE_M = 0.01   # the heat map's top colour: 10 mm of sliding or more


def heat_colors(values: np.ndarray, vmax: float) -> np.ndarray:
    """values (V,) >= 0 -> (V, 3) sRGB in [0, 1]: blue (0) -> green -> yellow -> red (>= vmax)."""
    x = np.clip(np.asarray(values, np.float64) / max(vmax, 1e-12), 0.0, 1.0)[:, None]
    stops = np.array([[0.15, 0.25, 0.85], [0.2, 0.75, 0.35], [0.95, 0.85, 0.2], [0.85, 0.15, 0.1]])
    pos = x * (len(stops) - 1)
    i = np.minimum(pos.astype(np.int64), len(stops) - 2)[:, 0]
    f = pos - i[:, None]
    return stops[i] * (1 - f) + stops[i + 1] * f


def sliding_heatmap(vertices: np.ndarray, faces: np.ndarray, sliding: np.ndarray, size: int = 384,
                    vmax: float = SLIDING_SCALE_M) -> np.ndarray:
    """The mesh (vertices (V, 3) metres, +Y up) coloured by sliding (V,) metres (blue 0, red >= vmax), seen from
    front and back, side by side with a colour bar -> (size, size + 16, 3) uint8."""
    import torch

    from capture.camera import Camera
    from neural_render import composite, render_mesh

    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(0), v.max(0)
    c = (lo + hi) / 2
    ext = float(np.linalg.norm(hi - lo))
    # Two opposite horizontal views perpendicular to the body's widest horizontal spread (shoulders, arms):
    # front and back, in either order.
    xz = v[:, [0, 2]] - c[[0, 2]]
    _, _, vt = np.linalg.svd(xz[::7], full_matrices=False)
    side = vt[0]
    facing = np.array([-side[1], 0.0, side[0]])
    imgs = []
    col = torch.as_tensor(heat_colors(sliding, vmax), dtype=torch.float32)
    for sgn in (1.0, -1.0):
        eye = c + sgn * facing * ext * 1.6
        cam = Camera.look_at(eye, c, width=size // 2, height=size, fov_y_deg=35.0, dtype=torch.float32)
        with torch.no_grad():
            rgba = render_mesh(torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(np.asarray(faces)), cam,
                               vertex_colors=col)
        imgs.append((composite(rgba, (1.0, 1.0, 1.0))[0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
    bar = (heat_colors(np.linspace(vmax, 0, size), vmax) * 255 + 0.5).astype(np.uint8)[:, None].repeat(16, 1)
    return np.concatenate(imgs + [bar], 1)


def landmark_sheet(renders: list[np.ndarray], height: int = 384) -> np.ndarray:
    """Renders (H, W, 3) uint8 with landmarks drawn -> one row, each resized to ``height`` px high."""
    import cv2

    row = [cv2.resize(r, (max(1, int(r.shape[1] * height / r.shape[0])), height), interpolation=cv2.INTER_AREA)
           for r in renders]
    return np.concatenate(row, 1)
