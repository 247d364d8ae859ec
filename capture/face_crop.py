"""A square crop of an image around a face, resized for MediaPipe's face mesh, and the way back.

MediaPipe's face mesh finds faces with its short-range detector, which sees the whole image at 128 px: a face
much under a tenth of the image's width (a wide shot, a full-body photo) is missed although the mesh itself
would read it well from a closer crop. The callers find where the face is by other means (the pose model's head
points, the face's place in the frame before, the full-range face detector) and run the mesh on a crop.
"""

from __future__ import annotations

import numpy as np

from core.conventions import doppel_to_opencv_affine


def square_crop(rgb: np.ndarray, centre: np.ndarray, side: float, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """(crop (size, size, 3) uint8, a, origin (2,)): the square of ``side`` px centred on ``centre`` (2,) px
    (Doppel pixels: u = x * W) resized to ``size`` px; black outside the image. A crop pixel p maps back to
    the image's u = origin + p / a."""
    import cv2

    origin = np.asarray(centre, np.float64) - side / 2.0
    a = size / float(side)
    Mi = doppel_to_opencv_affine(np.array([[a, 0, -origin[0] * a], [0, a, -origin[1] * a]]))
    crop = cv2.warpAffine(rgb, Mi, (size, size), flags=cv2.INTER_AREA if a < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crop, a, origin


def landmark_box(points: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre (2,), extent): the centre and the larger side (px) of the bounding box of ``points`` (N, 2)."""
    lo, hi = np.nanmin(points, 0), np.nanmax(points, 0)
    return (lo + hi) / 2.0, float(max(hi - lo))


def face_thumbnail(rgb: np.ndarray, face: np.ndarray, height: int = 160) -> np.ndarray:
    """(height, W, 3) uint8: the face's landmark box grown by a quarter each way, cut from rgb (H, W, 3) uint8 and
    resized to ``height`` px tall."""
    import cv2

    (x0, y0), (x1, y1) = face.min(axis=0), face.max(axis=0)
    mx, my = 0.25 * (x1 - x0), 0.25 * (y1 - y0)
    h, w = rgb.shape[:2]
    xa, xb = int(max(x0 - mx, 0)), int(min(x1 + mx, w))
    ya, yb = int(max(y0 - my, 0)), int(min(y1 + my, h))
    crop = rgb[ya:max(yb, ya + 1), xa:max(xb, xa + 1)]
    width = max(int(round(crop.shape[1] * height / crop.shape[0])), 1)
    return cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_AREA)
