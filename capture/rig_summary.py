"""What a rig's calibration says at a glance, to check one made elsewhere (Metashape, COLMAP, OpenCV) before a
session is assembled on it: each camera's image size, focal length, field of view and distance to the rig's
centre, and the rig's size, which tells whether its units are metres.

A rig around an actor spans about 1 to 20 metres; a calibration whose cameras span under ``MIN_SPAN_M`` or over
``MAX_SPAN_M`` was most likely made in other units (millimetres, an unscaled SfM model): said, since every fit
and render afterwards assumes metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from capture.npcam import as_np

MIN_SPAN_M = 0.3     # cameras closer together than this: not a rig around a person in metres
MAX_SPAN_M = 50.0    # further apart than this: not a rig around a person in metres either


@dataclass
class CameraRow:
    name: str
    width: int                 # px
    height: int                # px
    fx: float                  # px
    fy: float                  # px
    fov_y_deg: float           # vertical field of view, degrees
    distortion: bool           # any non-zero distortion term
    distance_m: float          # camera centre to the rig's centre (the mean of the centres), metres


@dataclass
class RigSummary:
    cameras: list[CameraRow]
    span_m: float                          # largest distance between two camera centres, metres
    centre: np.ndarray                     # (3,) mean of the camera centres, metres
    notes: list[str] = field(default_factory=list)   # what looks wrong (units, duplicates)


def summarize_rig(cameras) -> RigSummary:
    """A RigSummary of ``cameras`` (capture.Camera or PinholeNP, world-to-camera, metres)."""
    cams = [as_np(c) for c in cameras]
    centres = np.array([c.center for c in cams])
    centre = centres.mean(0)
    span = float(max((np.linalg.norm(a - b) for a in centres for b in centres), default=0.0))
    rows = [CameraRow(c.name, c.width, c.height, float(c.K[0, 0]), float(c.K[1, 1]),
                      math.degrees(2 * math.atan(c.height / (2 * c.K[1, 1]))), bool(np.any(c.dist != 0)),
                      float(np.linalg.norm(c.center - centre))) for c in cams]
    notes = []
    if len(cams) > 1 and not MIN_SPAN_M <= span <= MAX_SPAN_M:
        notes.append(f"the cameras span {span:.4g} units: a rig around a person spans about 1-20 m; are the "
                     "calibration's units metres? (an unscaled SfM model, or millimetres)")
    close = [(a.name, b.name) for i, a in enumerate(cams) for b in cams[i + 1:]
             if np.linalg.norm(a.center - b.center) < 1e-6]
    if close:
        notes.append(f"cameras at one place: {close[:4]}" + (" ..." if len(close) > 4 else ""))
    return RigSummary(rows, span, centre, notes)
