"""Face landmarks steadied by optical flow: MediaPipe says where each landmark is (absolute, but noisy from frame
to frame), pyramidal Lucas-Kanade flow says how the image around it moved between frames (relative, precise where
there is texture, but drifting). Fusing the two, as a matchmove tracker does, keeps MediaPipe's position and the
flow's frame-to-frame motion.

`landmark_flow` measures each landmark's motion between two frames (forward-backward checked, NaN where the flow
cannot be trusted); `fuse_flow` solves, per landmark and coordinate, the track x minimising

    sum_f |x_f - m_f|^2 + weight * sum_f |(x_f - x_{f-1}) - d_f|^2

(m: detections, d: flow; a tridiagonal least-squares problem, O(F)). A failed flow (a cut, an occluder, a flat
patch) decouples the frames on either side; frames without a detection stay without landmarks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["landmark_flow", "fuse_flow", "flow_window", "drop_disagreeing_flow"]


def flow_window(iod_px: float) -> int:
    """Odd Lucas-Kanade window side (px) for a face whose inter-ocular distance is iod_px: about a third of it
    (an eye and its brow, a lip corner), within [9, 41]."""
    w = int(round(0.35 * float(iod_px)))
    return int(np.clip(w + (w + 1) % 2, 9, 41))


def landmark_flow(prev_gray: np.ndarray, gray: np.ndarray, points: np.ndarray, iod_px: float,
                  fb_tolerance: float = 0.02) -> np.ndarray:
    """Motion (N, 2) px of points (N, 2) px (Doppel's pixel convention) of frame prev_gray (H, W) uint8 into the
    next frame gray (H, W) uint8; NaN where the tracking failed or its forward-backward error exceeds
    fb_tolerance x iod_px (at least half a pixel). Only the region around the points is searched."""
    import cv2

    pts = np.asarray(points, np.float64)
    out = np.full(pts.shape, np.nan, np.float32)
    ok = np.isfinite(pts).all(1)
    if ok.sum() < 3 or not np.isfinite(iod_px) or iod_px <= 0:
        return out
    h, w = gray.shape[:2]
    lo, hi = pts[ok].min(0), pts[ok].max(0)
    grow = 0.5 * (hi - lo).max() + 2 * flow_window(iod_px)
    x0, y0 = (np.floor(lo - grow).astype(int)).clip(0)
    x1, y1 = np.minimum(np.ceil(hi + grow).astype(int), [w, h])
    if x1 - x0 < 8 or y1 - y0 < 8:
        return out
    a, b = prev_gray[y0:y1, x0:x1], gray[y0:y1, x0:x1]
    p0 = (pts[ok] - 0.5 - [x0, y0]).astype(np.float32).reshape(-1, 1, 2)     # OpenCV: pixel centres at integers
    win = (flow_window(iod_px),) * 2
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(a, b, p0, None, winSize=win, maxLevel=3, criteria=crit)
    pb, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, p1, None, winSize=win, maxLevel=3, criteria=crit)
    good = (st1[:, 0] == 1) & (st2[:, 0] == 1) & \
        (np.linalg.norm((pb - p0)[:, 0], axis=-1) < max(0.5, fb_tolerance * iod_px))
    d = (p1 - p0)[:, 0]
    d[~good] = np.nan
    out[ok] = d
    return out


def drop_disagreeing_flow(prev: np.ndarray, flow: np.ndarray, detected: np.ndarray, iod_px: float,
                          tolerance: float = 0.25) -> np.ndarray:
    """flow (N, 2) px of the landmarks prev (N, 2) px, or all NaN when where it carries them disagrees with the
    next frame's detection (N, 2) px by more than tolerance x iod_px (median over the landmarks): the detector
    jumped to another face, or the flow followed something else. Fusing across such a frame would average two
    different things."""
    moved = np.linalg.norm(np.asarray(prev) + flow - np.asarray(detected), axis=-1)
    if not np.isfinite(moved).any() or np.nanmedian(moved) > tolerance * iod_px:
        return np.full_like(flow, np.nan)
    return flow


def fuse_flow(landmarks: np.ndarray, flow: np.ndarray, weight: float) -> np.ndarray:
    """Landmark tracks (F, N, 2) px fused with their flow (F, N, 2) px, flow[f] = motion from frame f-1 to f
    (flow[0] and failed flows NaN): the least-squares track of the module docstring, weight = how much a pixel of
    disagreement with the flow costs against one with the detection. Frames where landmarks is NaN keep NaN.
    weight 0 returns the landmarks unchanged."""
    from scipy.linalg import solve_banded

    lm = np.asarray(landmarks, np.float64)
    F = lm.shape[0]
    found = np.isfinite(lm).all((1, 2))
    if weight <= 0 or F < 2:
        return np.asarray(landmarks).copy()
    y = lm.reshape(F, -1)
    d = np.asarray(flow, np.float64).reshape(F, -1)[1:]                         # (F - 1, 2N): f-1 -> f
    wd = np.isfinite(y).astype(np.float64)
    wf = np.isfinite(d) * float(weight)
    y, d = np.nan_to_num(y), np.nan_to_num(d)
    out = np.empty_like(y)
    for c in range(y.shape[1]):
        a, dc = wf[:, c], d[:, c]
        ab = np.zeros((3, F))
        ab[1] = wd[:, c] + np.r_[0.0, a] + np.r_[a, 0.0] + 1e-9
        ab[0, 1:] = -a
        ab[2, :-1] = -a
        rhs = wd[:, c] * y[:, c] + np.r_[0.0, a * dc] - np.r_[a * dc, 0.0]
        out[:, c] = solve_banded((1, 1), ab, rhs)
    out = out.reshape(lm.shape)
    out[~found] = np.nan
    return out.astype(np.asarray(landmarks).dtype)
