"""A camera calibrated on images as stored, turned to see them as shown under their EXIF orientation.

A rig's camera mounted in portrait writes landscape pixels and EXIF orientation 6 (or 8); Doppel reads every image
as shown (`capture.frame_files.oriented`), while photogrammetry tools (Metashape among them: one sensor calibration
serves a body's landscape and portrait photos) calibrate the sensor as stored. Turning an image a quarter or a half
turn is a rotation of the camera about its optical axis: the intrinsics swap or mirror, the radial distortion stays,
the tangential terms swap or change sign, and no precision is lost.

With pixel centres at integer + 0.5 (Doppel's convention), a stored point (u, v) of a W x H image is shown at
(H - v, u) under orientation 6, (v, W - u) under 8 and (W - u, H - v) under 3.
"""

from __future__ import annotations

import numpy as np

from capture.npcam import PinholeNP

# camera-frame axes of the shown image in terms of the stored one's: x' = M @ x
_TURNS = {3: np.diag([-1.0, -1.0, 1.0]),
          6: np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
          8: np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])}


def as_shown(cam: PinholeNP, orientation: int) -> PinholeNP:
    """``cam`` (calibrated on its images as stored) for its images as shown under EXIF ``orientation``: 1 (as
    stored), 3 (half a turn), 6 (a quarter turn clockwise to show), 8 (anticlockwise). ValueError for a mirrored
    orientation (2, 4, 5, 7: no camera sees a mirror image) or another value. Needs no skew (K[0, 1] = 0)."""
    if orientation == 1:
        return cam
    if orientation not in _TURNS:
        raise ValueError(f"camera {cam.name!r}: EXIF orientation {orientation} is "
                         + ("a mirror image" if orientation in (2, 4, 5, 7) else "not an EXIF orientation (1-8)"))
    if cam.K[0, 1] != 0:
        raise ValueError(f"camera {cam.name!r}: a skewed camera cannot be turned (K[0, 1] = {cam.K[0, 1]})")
    (fx, _, cx), (_, fy, cy), _ = cam.K
    k1, k2, p1, p2, k3 = cam.dist
    W, H = cam.width, cam.height
    if orientation == 3:
        K, size, tang = [[fx, 0, W - cx], [0, fy, H - cy]], (W, H), (-p1, -p2)
    elif orientation == 6:
        K, size, tang = [[fy, 0, H - cy], [0, fx, cx]], (H, W), (p2, -p1)
    else:
        K, size, tang = [[fy, 0, cy], [0, fx, W - cx]], (H, W), (-p2, p1)
    M = _TURNS[orientation]
    return PinholeNP(name=cam.name, K=np.array([*K, [0.0, 0.0, 1.0]], dtype=np.float64), R=M @ cam.R, t=M @ cam.t,
                     width=size[0], height=size[1], dist=np.array([k1, k2, tang[0], tang[1], k3]))
