"""Which of a person's hands each detected hand is.

MediaPipe Hands labels a hand's side from the hand alone (as if the image were mirrored). Seen from behind, or
with the palm turned away, it often names the wrong side: on a 16-camera rig a back camera's two hands came out
swapped (the fit then drew each hand's 21 points to the other hand, 100 px away at 1024 px), and two hands given
the same side lost the weaker one. The body's pose landmarks know which wrist is which from the whole figure,
so each hand is given the side of the pose wrist it starts at; MediaPipe's label is kept where the pose cannot
say (no confident wrists, or a hand far from both).
"""

from __future__ import annotations

import numpy as np

LEFT_WRIST, RIGHT_WRIST = 15, 16      # MediaPipe pose indices of the person's left and right wrists
WRIST_VISIBILITY = 0.5                # a pose wrist below this visibility is not used to tell the sides
NEAR_HAND_SIZES = 2.0                 # a hand farther than this many hand sizes from both wrists keeps its label


def hand_sides(hands: list[tuple[np.ndarray, float, int]], pose: np.ndarray, pose_conf: np.ndarray
               ) -> list[tuple[int, np.ndarray, float]]:
    """Each detected hand's side: ``hands`` [(points (21, 2) px with the wrist first, score, MediaPipe's side 0 =
    left / 1 = right)], ``pose`` (33, 2) px and ``pose_conf`` (33,) of the same image. Returns [(side, points,
    score)], at most one hand a side (the better scored where two claim one)."""
    sides = _by_pose(hands, pose, pose_conf)
    if sides is None:
        sides = [h[2] for h in hands]
    kept: dict[int, tuple[int, np.ndarray, float]] = {}
    for (pts, score, _), side in zip(hands, sides, strict=True):
        if side not in kept or kept[side][2] < score:
            kept[side] = (side, pts, score)
    return [kept[s] for s in sorted(kept)]


def _by_pose(hands, pose: np.ndarray, pose_conf: np.ndarray) -> list[int] | None:
    """Sides from the pose's wrists, or None when they cannot tell (a wrist not seen, a hand near neither)."""
    if not hands or len(hands) > 2 or min(pose_conf[LEFT_WRIST], pose_conf[RIGHT_WRIST]) < WRIST_VISIBILITY:
        return None
    wrists = pose[[LEFT_WRIST, RIGHT_WRIST]]
    d = np.array([[np.linalg.norm(pts[0] - w) for w in wrists] for pts, _, _ in hands])     # (hands, 2)
    size = np.array([max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1.0) for pts, _, _ in hands])
    if (d.min(axis=1) > NEAR_HAND_SIZES * size).any():
        return None
    if len(hands) == 1:
        return [int(np.argmin(d[0]))]
    return [0, 1] if d[0, 0] + d[1, 1] <= d[0, 1] + d[1, 0] else [1, 0]
