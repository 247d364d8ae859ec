"""ST-maps of a camera's lens distortion, the way compositors undistort and redistort plates (Nuke's STMap node,
Fusion's, Flame's): an image the size of the plate whose red and green channels say, for each output pixel, where to
read the source, as normalized coordinates (s = x / W to the right, t = y / H upwards from the bottom edge; a pixel
centre at (i + 0.5) / W).

- the **undistort** map turns a photo of the calibrated camera (OpenCV's distortion k1, k2, p1, p2, k3) into the
  image of a distortion-free camera with the same K: what a DCC camera (`assets.export.dcc_camera`) sees, so a CG
  element or the double lines up with it;
- the **redistort** map turns such an undistorted image (a render through the DCC camera) back into the lens's
  image, for the comp.

Both are computed with OpenCV (`cv2.initUndistortRectifyMap`; `cv2.undistortPointsIter`, iterated to 1e-9) and
tested against the distortion model written out and `cv2.undistort`.
"""

from __future__ import annotations

import numpy as np


def _opencv(cam) -> tuple[np.ndarray, np.ndarray, int, int]:
    from core.conventions import doppel_to_opencv_K

    K = doppel_to_opencv_K(np.asarray(cam.K.detach().cpu().numpy(), np.float64))
    dist = np.zeros(5) if cam.dist is None else np.asarray(cam.dist.detach().cpu().numpy(), np.float64)
    return K, dist, int(cam.width), int(cam.height)


def to_st(x: np.ndarray, y: np.ndarray, width: int, height: int) -> np.ndarray:
    """OpenCV pixel coordinates (centres at integers) -> (..., 2) ST coordinates (s right, t up, [0, 1])."""
    return np.stack([(x + 0.5) / width, 1.0 - (y + 0.5) / height], -1).astype(np.float32)


def from_st(st: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(..., 2) ST coordinates -> OpenCV pixel coordinates (x, y) float32, for `cv2.remap`."""
    x = st[..., 0] * width - 0.5
    y = (1.0 - st[..., 1]) * height - 0.5
    return x.astype(np.float32), y.astype(np.float32)


def undistort_stmap(cam) -> np.ndarray:
    """(H, W, 2) float32: for each pixel of the undistorted image (same K, no distortion), where it is in the
    camera's photo, as ST coordinates. ``cam``: a single `capture.Camera`."""
    import cv2

    K, dist, W, H = _opencv(cam)
    mx, my = cv2.initUndistortRectifyMap(K, dist, None, K, (W, H), cv2.CV_32FC1)
    return to_st(mx, my, W, H)


def redistort_stmap(cam) -> np.ndarray:
    """(H, W, 2) float32: for each pixel of the camera's photo, where it is in the undistorted image, as ST
    coordinates (the inverse of `undistort_stmap`)."""
    import cv2

    K, dist, W, H = _opencv(cam)
    x, y = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    pts = np.stack([x.ravel(), y.ravel()], 1)[:, None]
    und = cv2.undistortPointsIter(pts, K, dist, None, K, (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-9))
    und = und.reshape(H, W, 2)
    return to_st(und[..., 0], und[..., 1], W, H)


def apply_stmap(image: np.ndarray, st: np.ndarray) -> np.ndarray:
    """``image`` (h, w[, C]) read through ``st`` (H, W, 2) (what an STMap node does, bilinear): (H, W[, C])."""
    import cv2

    x, y = from_st(st, image.shape[1], image.shape[0])
    return cv2.remap(image, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
