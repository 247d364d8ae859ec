"""Shots through a calibrated lens: the double drawn through a distortion-free camera that sees a little more than
the lens (overscan), then warped into the lens's own image, so that a shot's frames line up with that camera's
photos and plates, as a renderer with the lens's distortion would draw them.

The renderers are pinhole rasterizers (a distorted camera is refused by `neural_render.raster`). A lens with
barrel distortion sees, at its corners, beyond what the same K without distortion sees: `lens_overscan` grows the
image (the principal point moved by the padding) until every pixel of each lens's image is inside it, and
`redistortion` says, for each pixel of the lens's image, where it is in the overscan image (OpenCV's distortion
model, k1 k2 p1 p2 k3, inverted by `cv2.undistortPointsIter` to 1e-9). Pixel conventions are Doppel's (centres at
+0.5); OpenCV's are converted here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from capture.camera import Camera
from core.conventions import doppel_to_opencv_K

__all__ = ["LensWarp", "lens_overscan", "redistortion"]


def _undistort(points: np.ndarray, cam: Camera, target_K: np.ndarray) -> np.ndarray:
    """(N, 2) pixel positions (Doppel's convention) in ``cam``'s distorted image -> (N, 2) positions (Doppel's) in
    the distortion-free image of intrinsics ``target_K`` (Doppel's convention) seeing the same rays
    (`capture.st_maps.undistorted_points`, its fold-over check included)."""
    from capture.st_maps import undistorted_points

    K = doppel_to_opencv_K(cam.K.detach().cpu().numpy())
    dist = cam.dist.detach().cpu().numpy().astype(np.float64)
    out = undistorted_points(np.asarray(points, np.float64) - 0.5, K, dist, doppel_to_opencv_K(target_K),
                             str(cam.name))
    return out + 0.5


def _border(width: int, height: int, step: float = 2.0) -> np.ndarray:
    """(N, 2) points along the edge of a width x height image (its outer edge, not pixel centres)."""
    xs = np.append(np.arange(0.0, width, step), width)
    ys = np.append(np.arange(0.0, height, step), height)
    return np.concatenate([np.stack([xs, np.zeros_like(xs)], 1), np.stack([xs, np.full_like(xs, height)], 1),
                           np.stack([np.zeros_like(ys), ys], 1), np.stack([np.full_like(ys, width), ys], 1)])


def lens_overscan(cams: Camera, multiple: int = 1) -> Camera:
    """A batch of distortion-free cameras, one per camera of ``cams`` (a batch of one image size, with
    distortion), all of one larger size (sides multiples of ``multiple``), whose images hold every pixel of each
    camera's distorted image: the same K moved by the padding (a camera whose distortion needs none keeps its
    image). Padding is shared by the cameras so that one batch draws them."""
    cams = cams.as_batch()
    W, H = cams.width, cams.height
    left = top = right = bottom = 0
    for i in range(len(cams)):
        cam = cams[i].to(dtype=torch.float64)
        if not cam.has_distortion:
            continue
        u = _undistort(_border(W, H), cam, cam.K.detach().cpu().numpy())
        left, top = max(left, math.ceil(-u[:, 0].min()) + 1), max(top, math.ceil(-u[:, 1].min()) + 1)
        right, bottom = max(right, math.ceil(u[:, 0].max() - W) + 1), max(bottom, math.ceil(u[:, 1].max() - H) + 1)
    W2 = -(-(W + left + right) // multiple) * multiple
    H2 = -(-(H + top + bottom) // multiple) * multiple
    K = cams.K.clone()
    K[:, 0, 2] += left
    K[:, 1, 2] += top
    return replace(cams.undistorted(), K=K, width=int(W2), height=int(H2))


@dataclass(frozen=True)
class LensWarp:
    """Where each pixel of a lens's image (H, W) is in its overscan image, as `cv2.remap` maps (OpenCV's pixel
    convention)."""

    map_x: np.ndarray        # (H, W) float32
    map_y: np.ndarray        # (H, W) float32

    def image(self, x: np.ndarray, nearest: bool = False, fill: float = 0.0) -> np.ndarray:
        """x (H', W') or (H', W', C) of the overscan image -> the lens's image (H, W[, C]); bilinear, or nearest
        (data passes: no value blended across an edge); ``fill`` outside the overscan image."""
        import cv2

        flag = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        x = np.ascontiguousarray(x, np.float32)
        if x.ndim == 3 and x.shape[2] > 4:
            return np.stack([self.image(x[..., k], nearest, fill) for k in range(x.shape[2])], -1)
        out = cv2.remap(x, self.map_x, self.map_y, flag, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
        return out.reshape(*self.map_x.shape, *x.shape[2:])


def redistortion(lens: Camera, over: Camera) -> LensWarp:
    """The warp of ``over`` (a distortion-free camera of the same view, `lens_overscan`) into ``lens`` (a single
    camera with distortion): for each pixel centre of the lens's image, where that ray meets ``over``'s image."""
    W, H = lens.width, lens.height
    x, y = np.meshgrid(np.arange(W, dtype=np.float64) + 0.5, np.arange(H, dtype=np.float64) + 0.5)
    u = _undistort(np.stack([x.ravel(), y.ravel()], 1), lens.to(dtype=torch.float64),
                   over.K.detach().cpu().numpy().astype(np.float64))
    return LensWarp((u[:, 0] - 0.5).reshape(H, W).astype(np.float32), (u[:, 1] - 0.5).reshape(H, W).astype(np.float32))
