"""Doppel's conventions, named in one place (see ARCHITECTURE.md, "Conventions").

- Units: metres.
- World frame: right-handed, +Y up, the actor facing +Z (glTF, USD and Maya defaults).
- Cameras: OpenCV pinhole; world-to-camera R (3, 3) and t (3,); x right, y down, z forward;
  pixel centres at integer + 0.5.
- Images: float32 in [0, 1], (H, W, C) or (B, H, W, C).
- Quaternions, where unavoidable: (w, x, y, z).
"""

from __future__ import annotations

import numpy as np

UNITS = "m"
UP_AXIS = "Y"
FORWARD_AXIS = "Z"
QUATERNION_ORDER = "wxyz"
PIXEL_CENTER_OFFSET = 0.5

# Anny (like Blender and MakeHuman) is Z-up with the body facing -Y. This rotation takes a point
# from Anny's frame to Doppel's: (x, y, z) -> (x, z, -y). Z-up becomes Y-up; facing -Y becomes +Z.
ZUP_NEGY_FORWARD_TO_DOPPEL = np.array(
    [[1.0, 0.0, 0.0],
     [0.0, 0.0, 1.0],
     [0.0, -1.0, 0.0]],
)


def zup_to_doppel(points: np.ndarray) -> np.ndarray:
    """points (..., 3) in a Z-up, -Y-forward frame -> (..., 3) in Doppel's Y-up, +Z-forward frame."""
    return points @ ZUP_NEGY_FORWARD_TO_DOPPEL.T.astype(points.dtype)


# -- pixels: OpenCV puts pixel centres at integers, Doppel at integer + 0.5 ------------------------------

def opencv_to_doppel_pixels(uv: np.ndarray) -> np.ndarray:
    """uv (..., 2) pixel coordinates with OpenCV's centres at integers -> Doppel's (centres at integer + 0.5)."""
    return np.asarray(uv) + PIXEL_CENTER_OFFSET


def doppel_to_opencv_pixels(uv: np.ndarray) -> np.ndarray:
    """uv (..., 2) in Doppel's pixel convention -> OpenCV's (centres at integers)."""
    return np.asarray(uv) - PIXEL_CENTER_OFFSET


def opencv_to_doppel_K(K: np.ndarray) -> np.ndarray:
    """K (3, 3) intrinsics in OpenCV's pixel convention -> a copy in Doppel's (principal point + 0.5)."""
    out = np.array(K, dtype=np.float64, copy=True)
    out[:2, 2] += PIXEL_CENTER_OFFSET
    return out


def doppel_to_opencv_K(K: np.ndarray) -> np.ndarray:
    """K (3, 3) intrinsics in Doppel's pixel convention -> a copy in OpenCV's (principal point - 0.5)."""
    out = np.array(K, dtype=np.float64, copy=True)
    out[:2, 2] -= PIXEL_CENTER_OFFSET
    return out


def doppel_to_opencv_affine(M: np.ndarray) -> np.ndarray:
    """M (2, 3) mapping Doppel pixels of one image to another's (x' = A x + b) -> the same map in OpenCV's
    pixel coordinates (for cv2.warpAffine): b' = b + (A - I) 0.5."""
    M = np.array(M, dtype=np.float64, copy=True)
    M[:, 2] += (M[:, :2] - np.eye(2)) @ np.full(2, PIXEL_CENTER_OFFSET)
    return M


# -- rotations -----------------------------------------------------------------------------------------

ROTATION_TOL = 1e-4   # |R^T R - I| (max entry) and |det R - 1| of a matrix taken as a rotation


def rotation_errors(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R (..., 3, 3) -> (max |R^T R - I| per matrix (...), |det R - 1| per matrix (...)), float64."""
    R = np.asarray(R, dtype=np.float64)
    orth = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-1, -2))
    return orth, np.abs(np.linalg.det(R) - 1.0)


def invalid_rotations(R: np.ndarray, tol: float = ROTATION_TOL) -> np.ndarray:
    """R (..., 3, 3) -> bool (...): True where R is not a finite proper rotation within tol (see rotation_errors)."""
    R = np.asarray(R, dtype=np.float64)
    finite = np.isfinite(R).all(axis=(-1, -2))
    orth, det = rotation_errors(np.where(finite[..., None, None], R, np.eye(3)))
    return ~finite | (orth > tol) | (det > tol)
