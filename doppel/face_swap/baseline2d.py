"""The classical 2D face swap, kept as the baseline Doppel's 3D route is measured against (benchmarks/face_swap.py).

What DeepFaceLab-era tools do without a 3D double: one frontal picture of the double's face with its landmarks,
warped triangle by triangle (Delaunay over the landmarks) onto the plate's landmarks, masked by the landmarks'
hull and blended with OpenCV's seamlessClone centred on the mask (the moving anchor). No pose, no occlusion
handling, no temporal smoothing: it distorts in profile and jitters with the landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from doppel.face_swap.double import FaceDouble


@dataclass(frozen=True)
class FrontalFace:
    """The double's frontal render: rgb (H, W, 3) uint8 and its landmarks (L, 2) px for ids (L,)."""

    rgb: np.ndarray
    points: np.ndarray
    ids: np.ndarray


def frontal_face(double: FaceDouble, size: int = 512) -> FrontalFace:
    """Render the double's neutral face straight on (a 35 mm-ish lens at 1 m), with its projected landmarks."""
    from doppel.face_swap.render_head import project, render_head
    from reconstruction.head_tracking import intrinsics

    pts = double.basis.neutral
    centre = pts.mean(0)
    R = np.diag([1.0, -1.0, -1.0])                    # bind +Z faces the camera; camera y down
    t = np.array([0.0, 0.0, 0.75]) - R @ centre        # the face centre 0.75 m in front of the lens
    K = intrinsics(2.1 * size, size, size)            # a 0.25 m face fills ~70 % of the frame
    w = np.zeros(len(double.basis.names))
    rgb, alpha = render_head(double, R, t, w, K, (0, 0, size - 1, size - 1))
    img = (np.clip(rgb * alpha[..., None], 0, 1) * 255 + 0.5).astype(np.uint8)
    return FrontalFace(img, project(pts, R, t, K), double.basis.ids)


def warp_face(face: FrontalFace, target: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-affine warp of the frontal face onto target landmarks (478, 2) px: (rgb (H, W, 3) uint8, hull
    mask (H, W) uint8 255)."""
    import cv2
    from scipy.spatial import Delaunay

    dst = np.asarray(target, np.float64)[face.ids]
    tri = Delaunay(dst).simplices
    h, w = shape
    out = np.zeros((h, w, 3), np.uint8)
    for s in tri:
        a, b = face.points[s].astype(np.float32) - 0.5, dst[s].astype(np.float32) - 0.5
        x, y, bw, bh = cv2.boundingRect(b)
        if bw <= 0 or bh <= 0 or x < 0 or y < 0 or x + bw > w or y + bh > h:
            continue
        M = cv2.getAffineTransform(a, b - np.float32([x, y]))
        patch = cv2.warpAffine(face.rgb, M, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        m = np.zeros((bh, bw), np.uint8)
        cv2.fillConvexPoly(m, np.round(b - [x, y]).astype(np.int32), 1)
        region = out[y:y + bh, x:x + bw]
        region[m > 0] = patch[m > 0]
    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(np.round(dst - 0.5).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    return out, mask


def swap_frame_2d(face: FrontalFace, plate_rgb: np.ndarray, target: np.ndarray, with_mask: bool = False):
    """One frame by the 2D route: warp + seamlessClone at the mask's bounding-box centre (uint8 RGB); with_mask:
    (that, the blend mask (H, W) float32 in {0, 1}; zeros when the plate passed through)."""
    import cv2

    h, w = plate_rgb.shape[:2]
    warped, mask = warp_face(face, target, (h, w))
    mask = cv2.erode(mask, np.ones((5, 5), np.uint8))
    x, y, bw, bh = cv2.boundingRect(mask)
    out = plate_rgb
    if bw >= 4 and bh >= 4:
        try:
            out = cv2.seamlessClone(warped, plate_rgb, mask, (x + bw // 2, y + bh // 2), cv2.NORMAL_CLONE)
        except cv2.error:
            mask = np.zeros_like(mask)
    else:
        mask = np.zeros_like(mask)
    return (out, (mask > 0).astype(np.float32)) if with_mask else out
