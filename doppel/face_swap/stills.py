"""Plates made from still photographs: no package ships real video of people, so a still (scikit-image's
`astronaut`, `camera`) is animated by smooth similarity and perspective warps into a short shot. Used by the
benchmark and the tests to measure face replacement on real faces."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def still_motion(frames: int, seed: int = 0, strength: float = 1.0) -> np.ndarray:
    """(frames, 3, 3) homographies (output px -> still px): a slow drift, zoom, roll and a little perspective,
    made of a few low-frequency sines with seeded phases so the motion is smooth (no jitter of its own)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, frames)
    ph = rng.uniform(0, 2 * np.pi, 6)
    s = strength
    ang = np.radians(6 * s) * np.sin(2 * np.pi * t + ph[0])
    zoom = 1 + 0.08 * s * np.sin(2 * np.pi * 0.7 * t + ph[1])
    tx, ty = 0.04 * s * np.sin(2 * np.pi * t + ph[2]), 0.03 * s * np.sin(2 * np.pi * 1.3 * t + ph[3])
    px, py = 1.5e-4 * s * np.sin(2 * np.pi * t + ph[4]), 1.0e-4 * s * np.sin(2 * np.pi * 0.8 * t + ph[5])
    H = np.zeros((frames, 3, 3))
    c, si = np.cos(ang) / zoom, np.sin(ang) / zoom
    H[:, 0, 0], H[:, 0, 1], H[:, 1, 0], H[:, 1, 1] = c, -si, si, c
    H[:, 0, 2], H[:, 1, 2], H[:, 2, 0], H[:, 2, 1], H[:, 2, 2] = tx, ty, px, py, 1
    return H


def still_warps(width: int, height: int, frames: int = 48, seed: int = 0, strength: float = 1.0) -> np.ndarray:
    """(frames, 3, 3): for each frame of `plate_from_still` of a width x height still, the homography from an
    output pixel to the still pixel it shows (OpenCV pixel indices, both)."""
    C = np.array([[1, 0, width / 2], [0, 1, height / 2], [0, 0, 1]], np.float64)
    N = np.diag([2 / width, 2 / width, 1.0])                   # normalise so the motion is resolution independent
    Ci, Ni = np.linalg.inv(C), np.linalg.inv(N)
    return np.stack([C @ Ni @ Hn @ N @ Ci for Hn in still_motion(frames, seed, strength)])


def plate_from_still(image: np.ndarray, frames: int = 48, seed: int = 0, strength: float = 1.0
                     ) -> Iterator[np.ndarray]:
    """Frames (H, W, 3) uint8 of ``image`` (H, W, 3) uint8 moved by `still_motion` about its centre."""
    import cv2

    h, w = image.shape[:2]
    for M in still_warps(w, h, frames, seed, strength):
        yield cv2.warpPerspective(image, M, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT)
