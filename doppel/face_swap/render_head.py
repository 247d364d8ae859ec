"""The double's head drawn in a plate camera, in a crop of the frame (only the face's box is rasterized)."""

from __future__ import annotations

import math
import threading

import numpy as np

from doppel.face_swap.crop import crop_camera
from doppel.face_swap.double import FaceDouble


def project(points: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray, lens=None) -> np.ndarray:
    """points (N, 3) bind frame -> (N, 2) px (Doppel convention) through the head pose R (3, 3), t (3,) and K;
    lens: the plate's `PlateLens` (K is its), the points then distorted into the plate's pixels."""
    cam = points @ R.T + t
    uv = cam @ K.T
    uv = uv[:, :2] / np.maximum(uv[:, 2:3], 1e-6)
    return uv if lens is None else lens.distort(uv)


def head_box(double: FaceDouble, R: np.ndarray, t: np.ndarray, weights: np.ndarray, K: np.ndarray,
             width: int, height: int, pad: float = 0.15, lens=None) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) inclusive pixel box of the projected head grown by pad x its size, clipped to the frame;
    None when it is off-frame or behind the camera. lens: as `project`'s (the box in the plate's pixels)."""
    pts = double.head_mesh(weights)
    cam = pts @ R.T + t
    if (cam[:, 2] <= 0.01).mean() > 0.5:
        return None
    uv = project(pts[cam[:, 2] > 0.01], R, t, K, lens)
    lo, hi = uv.min(0), uv.max(0)
    g = (hi - lo) * pad
    x0, y0 = np.floor(lo - g).astype(int)
    x1, y1 = np.ceil(hi + g).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def strips(box: tuple[int, int, int, int], supersample: int, samples: int | None = None
           ) -> list[tuple[int, int, int, int]]:
    """The crop box (x0, y0, x1, y1) inclusive px cut into full-width horizontal strips, top to bottom, of at
    most ``samples`` render samples each (supersample^2 per pixel; at least one row a strip; None:
    `neural_render.strip_render.STRIP_SAMPLES`): the rows of `neural_render.strip_render.strip_rows`, as boxes."""
    from neural_render.strip_render import STRIP_SAMPLES, strip_rows  # here: importing this module stays torch-free

    x0, y0, x1, y1 = box
    samples = STRIP_SAMPLES if samples is None else samples
    return [(x0, y0 + r0, x1, y0 + r1 - 1) for r0, r1 in strip_rows(y1 - y0 + 1, x1 - x0 + 1, supersample, samples)]


def render_head(double: FaceDouble, R: np.ndarray, t: np.ndarray, weights: np.ndarray, K: np.ndarray,
                box: tuple[int, int, int, int], supersample: int = 2, device: str = "cpu",
                strip_samples: int | None = None, lens=None) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (h, w, 3) float32 sRGB, alpha (h, w) float32) of the head with expression weights (E,) in the crop
    box (x0, y0, x1, y1) of the plate camera K, head pose R, t (bind frame -> camera). Drawn by the double's
    neural double when it has one (alpha: the rig's head region), else the textured rig with preview lights;
    on ``device`` ("cpu" or "cuda"; a neural double draws where its model is). A box longer than
    ``double.max_px`` on a side (a close-up on a 4K plate) is drawn at `draw_size` and resized up (rgb bicubic,
    alpha bilinear; pixel edges aligned): the double holds no finer detail than that (docs/benchmarks.md, "The
    head drawn at most 512 px"). The box is rasterized in `strips`, so the renderer's per-sample temporaries
    (about 1 kB allocated a sample) stay bounded however large the face is; strip_samples: the samples of a
    strip (None: `strips`' default). lens: the plate's `PlateLens` (K is its): the head is drawn in the box of the
    lens's distortion-free image that holds ``box`` and warped into the plate's pixels (`PlateLens.to_plate`)."""
    import cv2

    if lens is not None and lens.distorted:
        ideal, Ki, size, s = ideal_draw(lens, K, box)
        rgb, alpha = render_head(double, R, t, weights, Ki, (0, 0, size[0] - 1, size[1] - 1), supersample, device,
                                 strip_samples)
        return np.clip(lens.to_plate(rgb, ideal, box, s), 0, 1), np.clip(lens.to_plate(alpha, ideal, box, s), 0, 1)
    x0, y0, x1, y1 = box
    w, h = x1 - x0 + 1, y1 - y0 + 1
    dw, dh = draw_size(w, h, double.max_px)
    if (dw, dh) == (w, h):
        return _draw(double, R, t, weights, K, box, supersample, device, strip_samples)
    Kb = np.asarray(K, np.float64).copy()
    Kb[0, 2] -= x0                                   # the box's top-left pixel edge to the origin, then scaled
    Kb[1, 2] -= y0
    Kd = np.diag([dw / w, dh / h, 1.0]) @ Kb
    rgb, alpha = _draw(double, R, t, weights, Kd, (0, 0, dw - 1, dh - 1), supersample, device, strip_samples)
    rgb = np.clip(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
    alpha = np.clip(cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
    return rgb.astype(np.float32), alpha.astype(np.float32)


def ideal_draw(lens, K: np.ndarray, box: tuple[int, int, int, int]
               ) -> tuple[tuple[int, int, int, int], np.ndarray, tuple[int, int], float]:
    """(the box of the lens's distortion-free image that holds the plate box ``box``, the K (3, 3) that draws it
    from (0, 0) at `PlateLens.draw_scale`, its (width, height) px, that scale)."""
    ideal = lens.ideal_box(box)
    s = lens.draw_scale(box, ideal)
    Ki = np.diag([s, s, 1.0]) @ (np.asarray(K, np.float64) - np.array([[0, 0, ideal[0]], [0, 0, ideal[1]], [0, 0, 0]]))
    size = (max(1, math.ceil((ideal[2] - ideal[0] + 1) * s)), max(1, math.ceil((ideal[3] - ideal[1] + 1) * s)))
    return ideal, Ki, size, s


def draw_size(width: int, height: int, max_px: int) -> tuple[int, int]:
    """(w, h) px a width x height box is drawn at: itself when its longer side is at most ``max_px`` (or max_px
    is 0), else scaled to a longer side of max_px (rounded, at least 1 px a side)."""
    if max_px <= 0 or max(width, height) <= max_px:
        return width, height
    s = max_px / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def _draw(double: FaceDouble, R: np.ndarray, t: np.ndarray, weights: np.ndarray, K: np.ndarray,
          box: tuple[int, int, int, int], supersample: int, device: str, strip_samples: int | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """`render_head` at the box's own size."""
    import torch

    from neural_render.shading import render_mesh

    head = double.head_mesh(weights)
    verts = torch.tensor(head, dtype=torch.float32, device=device)
    faces, kw = _mesh_tensors(double, device)
    if double.neural is not None:
        kw = {}            # the rig's head region is rasterized for its coverage only; the neural double draws it
    parts = []
    with torch.no_grad():
        for x0, y0, x1, y1 in strips(box, supersample, strip_samples):
            # one row more on each side inside the box: the texture's mip level at a strip's edge rows is read
            # from both neighbours, as in one piece
            top, bottom = max(y0 - 1, box[1]), min(y1 + 1, box[3])
            cam = crop_camera(K, R, t, (x0, top, x1, bottom))
            rgba = render_mesh(verts, faces, cam, supersample=supersample, cull_backfaces=True, **kw)[0]
            parts.append(rgba[y0 - top:y1 - top + 1].cpu().numpy())
    rgba = np.concatenate(parts, axis=0)
    rgb, alpha = rgba[..., :3].astype(np.float32), rgba[..., 3].astype(np.float32)
    if double.neural is not None:
        from doppel.face_swap.neural_head import render_neural_head

        rgb = render_neural_head(double.neural, double.head_vertices, head.astype(np.float32), R, t, K, box)
    return rgb, alpha


_DEVICE_TENSORS: dict = {}
_DEVICE_LOCK = threading.Lock()        # frames are drawn in several threads at once


def _mesh_tensors(double: FaceDouble, device: str) -> tuple[object, dict]:
    """(faces, texture keywords of `render_mesh`) of the double's head on ``device``, made once per double and
    device (the albedo is the large one: uploaded and mip-mapped once, not every frame); one thread makes them
    while the others wait."""
    with _DEVICE_LOCK:
        return _mesh_tensors_locked(double, device)


def _mesh_tensors_locked(double: FaceDouble, device: str) -> tuple[object, dict]:
    import torch

    key = (id(double), device)
    hit = _DEVICE_TENSORS.get(key)
    if hit is None or hit[0] is not double:
        kw = {}
        if double.albedo is not None and double.uvs is not None:
            from neural_render.texture import MipTexture

            kw = {"uvs": torch.as_tensor(double.uvs, device=device),
                  "face_uvs": torch.as_tensor(double.face_uvs, device=device),
                  "texture": MipTexture(double.albedo, torch.float32, device)}
        _DEVICE_TENSORS.clear()                    # one double at a time: nothing accumulates
        hit = _DEVICE_TENSORS[key] = (double, torch.as_tensor(double.head_faces, device=device), kw)
    return hit[1], hit[2]
