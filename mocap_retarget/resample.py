"""A clip plotted at another frame rate: mocap captured at 120 or 240 Hz onto a film's 24 fps (or 24000/1001).

The output's frame k is the clip at time k / fps from its first frame, through its last frame's time (a clip of
F frames at rate r lasts (F - 1) / r seconds; the output has floor(duration * fps) + 1 frames). Each joint's local
rotation is interpolated along the shortest arc between the two neighbouring frames (scipy's ``Slerp``), its local
translation linearly; an output time that falls on a frame of the clip is that frame exactly (120 -> 24: every
fifth frame). The rate is snapped to a standard rate first (`rigging.animation.snap_fps`: 23.976 is 24000/1001).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from mocap_retarget.bvh import Motion
from rigging.animation import snap_fps

MAX_RESAMPLE_FPS = 1000.0


def resample_times(frames: int, fps_in: float, fps_out: float) -> np.ndarray:
    """(K,) the output frames' positions on the input's frame axis (fractional input frame indices)."""
    duration = (frames - 1) / fps_in
    count = int(np.floor(duration * fps_out + 1e-9)) + 1
    pos = np.arange(count) * (fps_in / fps_out)
    snapped = np.round(pos)
    close = np.abs(pos - snapped) < 1e-6                         # 120 -> 24: exactly every fifth frame
    pos[close] = snapped[close]
    return np.clip(pos, 0, frames - 1)


def resample_motion(motion: Motion, fps: float) -> Motion:
    """``motion`` plotted at ``fps`` (snapped to a standard rate): local rotations slerped, local translations
    interpolated linearly between the clip's frames. ValueError for a rate that is not a number in (0, 1000]."""
    if not (np.isfinite(fps) and 0 < fps <= MAX_RESAMPLE_FPS):
        raise ValueError(f"--resample must be a frame rate in (0, {MAX_RESAMPLE_FPS:g}] fps, got {fps:g}")
    fps = snap_fps(fps)
    F, J = motion.num_frames, motion.num_joints
    if F < 2 or fps == motion.fps:
        return replace(motion, frame_time=1.0 / fps)
    pos = resample_times(F, motion.fps, fps)
    frames_in = np.arange(F, dtype=np.float64)
    rot = np.empty((len(pos), J, 3, 3))
    for j in range(J):
        rot[:, j] = Slerp(frames_in, Rotation.from_matrix(motion.local_rotations[:, j]))(pos).as_matrix()
    exact = pos == np.round(pos)
    rot[exact] = motion.local_rotations[np.round(pos[exact]).astype(int)]     # bit for bit where frames coincide
    lo = np.minimum(np.floor(pos).astype(int), F - 2)
    a = (pos - lo)[:, None, None]
    trans = (1 - a) * motion.local_translations[lo] + a * motion.local_translations[lo + 1]
    markers = None if motion.markers is None else (1 - a) * motion.markers[lo] + a * motion.markers[lo + 1]
    return replace(motion, local_rotations=rot, local_translations=trans, frame_time=1.0 / fps, markers=markers)
