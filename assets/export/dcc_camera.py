"""An OpenCV pinhole camera (Doppel's: x right, y down, z forward, K in pixels with centres at integer + 0.5) as
the camera of a DCC tool (Maya, Houdini, Nuke, Katana, Blender, USD, Alembic): Y up, looking down -Z, a focal length
and a filmback in millimetres, the principal point as a film offset.

Only focal length / aperture shapes the picture: the filmback is 36 mm wide by default, its height from the image's
aspect (square pixels). A K with fx != fy or a skew has no DCC equivalent (`pixel_aspect_error` says how far its
image corners land from the DCC camera's); neither has lens distortion: a DCC camera sees the undistorted image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CV_TO_GL = np.diag([1.0, -1.0, -1.0])        # OpenCV camera frame -> a DCC camera's (Y up, looking down -Z)
FILMBACK_MM = 36.0


@dataclass(frozen=True)
class Filmback:
    """A DCC camera's lens: focal length and apertures in mm, the film offsets (mm) that put the principal point
    where K does (positive: the picture window moves right / up)."""

    focal_mm: float
    h_aperture_mm: float
    v_aperture_mm: float
    h_offset_mm: float
    v_offset_mm: float


def filmback(K: np.ndarray, size: tuple[int, int], width_mm: float = FILMBACK_MM) -> Filmback:
    """The DCC camera of the pinhole ``K`` (3, 3), Doppel's pixel convention (the image spans [0, W] x [0, H]), for
    an image of ``size`` (W, H) px; the horizontal focal length fx is the lens (see `pixel_aspect_error`)."""
    W, H = size
    mm_per_px = width_mm / W
    return Filmback(focal_mm=float(K[0, 0]) * mm_per_px, h_aperture_mm=width_mm, v_aperture_mm=H * mm_per_px,
                    h_offset_mm=(W / 2 - float(K[0, 2])) * mm_per_px, v_offset_mm=(float(K[1, 2]) - H / 2) * mm_per_px)


def pixel_aspect_error(K: np.ndarray, size: tuple[int, int]) -> float:
    """The largest distance (px) between where K and its DCC camera (`filmback`: fy taken as fx, no skew) put the
    image's corners: 0 for square pixels without skew."""
    W, H = size
    corners = np.array([[0, 0], [W, 0], [0, H], [W, H]], float)
    Ki = np.linalg.inv(K)
    rays = np.c_[corners, np.ones(4)] @ Ki.T                       # where K sees the corners
    fx, cx, cy = K[0, 0], K[0, 2], K[1, 2]
    dcc = np.stack([fx * rays[:, 0] / rays[:, 2] + cx, fx * rays[:, 1] / rays[:, 2] + cy], 1)
    return float(np.abs(dcc - corners).max())


def project_gl(points: np.ndarray, fb: Filmback, size: tuple[int, int]) -> np.ndarray:
    """points (..., 3) in the DCC camera frame -> (..., 2) px (Doppel's convention) through the camera ``fb``: what a
    renderer of the file draws."""
    W, H = size
    x_mm = fb.focal_mm * points[..., 0] / -points[..., 2]
    y_mm = fb.focal_mm * points[..., 1] / -points[..., 2]
    u = (x_mm - fb.h_offset_mm) / fb.h_aperture_mm * W + W / 2
    v = H / 2 - (y_mm - fb.v_offset_mm) / fb.v_aperture_mm * H
    return np.stack([u, v], -1)


def camera_to_world(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(4, 4) the DCC camera's transform (its Y-up, -Z-looking frame to the world) of an OpenCV world-to-camera
    ``R`` (3, 3), ``t`` (3,): rotation R^T diag(1, -1, -1), position the camera centre -R^T t."""
    M = np.eye(4)
    M[:3, :3] = R.T @ CV_TO_GL
    M[:3, 3] = -R.T @ t
    return M
