"""Motion blur of a shot: each frame the mean of renders of the double at times spread over the camera's shutter.

A film camera's shutter is open for part of each frame (its angle: 180 degrees is half a frame, 1/48 s at 24 fps),
and whatever moves while it is open is smeared along its path. A double rendered sharp into a plate shot with a
180-degree shutter reads as pasted on wherever it moves fast (a stunt's fall, a swing of the arm). Like an
accumulation buffer (and Cycles with its deformation motion blur), the frame is drawn ``samples`` times with the
double posed at the sample's time (the animation interpolated: joint rotations along the shortest arc, root and
blendshape weights linearly), the renders averaged premultiplied. The sample times are stratified over the open
shutter (each the centre of its share), so the blur of a fast motion is a staircase of ``samples`` steps; more
samples smooth it at the cost of a render each. Render-time jitter (`neural_render.jitter`) shares the renders
(`render_schedule`): a frame costs max(samples, jitter) renders.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import Tensor

__all__ = ["MAX_SHUTTER_SAMPLES", "MotionBlur", "SHUTTER_POSITIONS", "SubframePoser", "interpolate_frames",
           "render_schedule", "slerp_frames", "time_order"]

SHUTTER_POSITIONS = ("centre", "start", "end")   # where the open shutter sits around the frame's time
MAX_SHUTTER_SAMPLES = 64


@dataclass(frozen=True)
class MotionBlur:
    """A camera shutter's motion blur (``angle`` 0: none)."""

    angle: float = 0.0            # degrees of a frame the shutter is open: 180 = half a frame, 360 = the whole
    samples: int = 8              # renders spread over the open shutter, averaged
    position: str = "centre"      # centre: open from -angle/2 to +angle/2 around the frame; start: from the frame
                                  # on; end: up to the frame

    def __post_init__(self):
        if not (np.isfinite(self.angle) and 0 <= self.angle <= 360):
            raise ValueError(f"shutter angle must be between 0 and 360 degrees, got {self.angle!r}")
        if not isinstance(self.samples, int) or not 1 <= self.samples <= MAX_SHUTTER_SAMPLES:
            raise ValueError(f"shutter samples must be a whole number from 1 to {MAX_SHUTTER_SAMPLES}, "
                             f"got {self.samples!r}")
        if self.position not in SHUTTER_POSITIONS:
            raise ValueError(f"shutter position must be one of {', '.join(SHUTTER_POSITIONS)}, got {self.position!r}")

    @property
    def on(self) -> bool:
        """Whether the frames are blurred (an open shutter and more than one sample)."""
        return self.angle > 0 and self.samples > 1

    def times(self) -> np.ndarray:
        """(S,) float64 frames: the sample times relative to the frame's own (0: the frame), each the centre of its
        1/S share of the open shutter; (0,) when off."""
        if not self.on:
            return np.zeros(1)
        span = self.angle / 360.0
        start = {"centre": -span / 2, "start": 0.0, "end": -span}[self.position]
        return start + span * (np.arange(self.samples) + 0.5) / self.samples

    def summary(self) -> dict | None:
        """The manifest's record: None when off."""
        return {"angle": self.angle, "samples": self.samples, "position": self.position} if self.on else None


def render_schedule(jitter_offsets: list[tuple[float, float]], times: np.ndarray) -> list[tuple[tuple[float, float],
                                                                                               int]]:
    """The renders of one frame, (sub-pixel shift (dx, dy) px, index into ``times``): max(N shifts, S times) of
    them, the k-th at shift k mod N and time index ``time_order(S)[k mod S]``. The shifts lie on a circle in order
    of angle: paired with the times in order they would tie the sub-pixel offset to the time (a blur shifted by
    it); paired through a golden-ratio stride the (angle, time) pairs spread over both as a rank-1 lattice does."""
    n, S = max(len(jitter_offsets), len(times)), len(times)
    order = time_order(S) if len(jitter_offsets) > 1 else np.arange(S)
    return [(jitter_offsets[k % len(jitter_offsets)], int(order[k % S])) for k in range(n)]


def time_order(S: int) -> np.ndarray:
    """(S,) a permutation of 0..S-1: k -> k g mod S, g the number coprime to S nearest S / golden ratio (the
    Fibonacci lattice's stride). Measured against Cycles' motion blur of a moving sphere (1024 samples a pixel,
    docs/benchmarks.md): with 16 shifts and 16 / 32 times the band's error 0.034 / 0.019, against 0.045 / 0.037
    for a random shuffle and 0.074 / 0.055 in order."""
    golden = S / ((1 + 5 ** 0.5) / 2)
    strides = [c for c in range(1, max(S, 2)) if math.gcd(c, S) == 1]
    g = min(strides, key=lambda c: (abs(c - golden), c))
    return (np.arange(S) * g) % S


@dataclass(frozen=True)
class SubframePoser:
    """The double posed at any time of a shot: ``pose(times)`` maps (n,) float64 frame positions (the shot's
    frame indices, fractional between them) to (n, V, 3) float32 world-metre vertices."""

    pose: Callable[[np.ndarray], Tensor]

    def at(self, frames: np.ndarray, offsets: np.ndarray) -> Tensor:
        """(b, S, V, 3): each of ``frames`` (b,) at each time offset (S,) frames."""
        t = (np.asarray(frames, np.float64)[:, None] + np.asarray(offsets, np.float64)[None, :]).ravel()
        v = self.pose(t)
        return v.reshape(len(frames), len(offsets), *v.shape[1:])


def interpolate_frames(values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """values (T, ...) at frames 0..T-1 -> (n, ...) at ``times`` (n,) linearly, times clamped to the clip (its
    first and last frames hold); a time on a frame gives that frame exactly."""
    lo, a = _bracket(times, len(values))
    hi = np.minimum(lo + 1, len(values) - 1)
    a = a.reshape(-1, *([1] * (values.ndim - 1)))
    out = (1 - a) * values[lo] + a * values[hi]
    return _frames_exactly(out, values, lo, hi, a.ravel())


def slerp_frames(rotations: np.ndarray, times: np.ndarray) -> np.ndarray:
    """rotations (T, J, 3, 3) at frames 0..T-1 -> (n, J, 3, 3) at ``times`` (n,), each joint along the shortest
    arc between its two neighbouring frames (times clamped to the clip; on a frame: that frame exactly)."""
    from scipy.spatial.transform import Rotation

    lo, a = _bracket(times, len(rotations))
    hi = np.minimum(lo + 1, len(rotations) - 1)
    J = rotations.shape[1]
    r0 = Rotation.from_matrix(rotations[lo].reshape(-1, 3, 3))
    r1 = Rotation.from_matrix(rotations[hi].reshape(-1, 3, 3))
    step = (r0.inv() * r1).as_rotvec() * np.repeat(a, J)[:, None]
    out = (r0 * Rotation.from_rotvec(step)).as_matrix().reshape(len(times), J, 3, 3)
    return _frames_exactly(out, rotations, lo, hi, a)


def _frames_exactly(out: np.ndarray, values: np.ndarray, lo: np.ndarray, hi: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``out`` with the times that fall on a frame (a 0 or 1) set to that frame's values bit for bit."""
    out[a == 0] = values[lo[a == 0]]
    out[a == 1] = values[hi[a == 1]]
    return out


def _bracket(times: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """((n,) int the frame at or before each time, (n,) float64 the fraction of the way to the next), times
    clamped to [0, frames - 1]."""
    t = np.clip(np.asarray(times, np.float64), 0, frames - 1)
    lo = np.minimum(np.floor(t).astype(np.int64), max(frames - 2, 0))
    return lo, t - lo
