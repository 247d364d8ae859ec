"""Foot-contact detection from joint heights and speeds, and run-length helpers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ContactConfig:
    height: float = 0.06          # a foot point counts as low within this many metres of its resting height
    speed: float = 0.25           # ... and as still below this speed, in leg lengths per second
    min_frames_s: float = 0.04    # contacts shorter than this (seconds) are dropped, gaps shorter are filled


def detect_contacts(points: np.ndarray, rest_height: np.ndarray, floor: float, fps: float, leg_length: float,
                    config: ContactConfig | None = None) -> np.ndarray:
    """Foot contacts from the source motion.

    points (F, P, 3) metres, +Y up: the foot points of one foot (ankle, toe); rest_height (P,) metres:
    each point's height above the sole when the foot stands flat; floor: floor height (metres);
    leg_length: metres (scales the speed threshold). Returns (F,) bool: the foot is planted when any of
    its points is both low (within config.height of its resting height) and still.
    """
    cfg = config or ContactConfig()
    F = points.shape[0]
    h = points[..., 1] - floor - rest_height[None]                      # (F, P)
    vel = np.zeros(points.shape[:2])
    if F > 1:
        d = np.linalg.norm(np.diff(points, axis=0), axis=-1) * fps       # (F-1, P)
        vel[1:-1] = 0.5 * (d[1:] + d[:-1])
        vel[0], vel[-1] = d[0], d[-1]
    low = h < cfg.height
    still = vel < cfg.speed * leg_length
    contact = (low & still).any(axis=1)
    n = max(1, int(round(cfg.min_frames_s * fps)))
    contact = _fill_gaps(contact, n, True)
    contact = _fill_gaps(contact, n, False)
    return contact


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a (F,) bool array as (start, stop) half-open index pairs."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def _fill_gaps(mask: np.ndarray, n: int, value: bool) -> np.ndarray:
    """Set runs of ``not value`` shorter than n frames (and not touching the ends) to value."""
    out = mask.copy()
    other = ~mask if value else mask
    for s, e in runs(other):
        if e - s < n and s > 0 and e < len(mask):
            out[s:e] = value
    return out
