"""ST-maps of a camera's lens distortion, the way compositors undistort and redistort plates (Nuke's STMap node,
Fusion's, Flame's): an image the size of the plate whose red and green channels say, for each output pixel, where to
read the source, as normalized coordinates (s = x / W to the right, t = y / H upwards from the bottom edge; a pixel
centre at (i + 0.5) / W).

- the **undistort** map turns a photo of the calibrated camera (OpenCV's distortion k1, k2, p1, p2, k3) into the
  image of a distortion-free camera with the same K: what a DCC camera (`assets.export.dcc_camera`) sees, so a CG
  element or the double lines up with it;
- the **redistort** map turns such an undistorted image (a render through the DCC camera) back into the lens's
  image, for the comp.

Both are computed with OpenCV (`cv2.initUndistortRectifyMap`; `cv2.undistortPointsIter`, iterated to 1e-9 and
checked by distorting back: `undistorted_points`) and tested against the distortion model written out and
`cv2.undistort`.
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


def undistorted_points(points: np.ndarray, K: np.ndarray, dist: np.ndarray, P: np.ndarray,
                       name: str = "camera") -> np.ndarray:
    """(N, 2) pixel positions in a distorted image (OpenCV's convention and intrinsics ``K``, coefficients
    ``dist``) -> (N, 2) positions in the distortion-free image of intrinsics ``P`` seeing the same rays
    (`cv2.undistortPointsIter` to 1e-9). OpenCV's fixed-point inversion diverges, silently, where the model folds
    over (coefficients that make the image radius fall as the angle grows, past their calibrated field): the result
    is distorted back and a ValueError names ``name`` when it misses by 0.01 px or more."""
    import cv2

    pts = np.asarray(points, np.float64)[:, None]
    out = cv2.undistortPointsIter(pts, K, dist, None, P, (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50,
                                                          1e-9))[:, 0]
    rays = np.concatenate([out, np.ones((len(out), 1))], 1) @ np.linalg.inv(P).T
    back, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), K, dist)
    worst = float(np.abs(back[:, 0] - pts[:, 0]).max()) if len(out) else 0.0
    if not worst < 0.01:
        raise ValueError(f"camera {name}: its lens distortion {np.round(dist, 4).tolist()} cannot be inverted at "
                         f"the image's edge ({worst:.2g} px off)")
    return out


def redistort_stmap(cam) -> np.ndarray:
    """(H, W, 2) float32: for each pixel of the camera's photo, where it is in the undistorted image, as ST
    coordinates (the inverse of `undistort_stmap`)."""
    K, dist, W, H = _opencv(cam)
    x, y = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    und = undistorted_points(np.stack([x.ravel(), y.ravel()], 1), K, dist, K, str(cam.name)).reshape(H, W, 2)
    return to_st(und[..., 0], und[..., 1], W, H)


def apply_stmap(image: np.ndarray, st: np.ndarray) -> np.ndarray:
    """``image`` (h, w[, C]) read through ``st`` (H, W, 2) (what an STMap node does, bilinear): (H, W[, C])."""
    import cv2

    x, y = from_st(st, image.shape[1], image.shape[0])
    return cv2.remap(image, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
