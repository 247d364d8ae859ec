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
