"""Cuts in a plate: frames where the picture changes to another shot.

A swap treats its plate as one shot: the head track is smoothed over time, the colour match is smoothed over
time and the Poisson blend keeps one anchor. An edited sequence handed over as one plate breaks all three at
its cuts, so the swap finds them and says where they are (each shot can then be swapped with --start/--end).

`CutDetector` is fed the frames in order (cheap: a 64 x 36 grey thumbnail a frame) and marks frame i a cut when
the thumbnail's mean absolute change from frame i - 1 is over `MIN_CHANGE` grey levels and `RATIO` times the
median change of the frames around it (camera moves and head turns change every frame a little; a cut changes
one frame a lot), and frame i + 1 has not come back to frame i - 1's picture (a flash, a strobe or one dropped
frame is not a cut).
"""

from __future__ import annotations

import numpy as np

THUMB = (64, 36)        # (w, h) px
MIN_CHANGE = 20.0       # grey levels, mean absolute change of the thumbnail
RATIO = 4.0             # x the median change of the frames around
WINDOW = 12             # frames on each side for that median


class CutDetector:
    """Feed frames with `add` in order; `cuts()` gives the indices of the frames that start a new shot."""

    def __init__(self) -> None:
        self._last: list[np.ndarray] = []        # the two latest thumbnails
        self._change: list[float] = []          # change of frame i from i - 1 (frame 0: 0)
        self._skip: list[float] = []            # change of frame i from i - 2 (frames 0, 1: inf)

    def add(self, rgb: np.ndarray) -> None:
        """rgb (H, W, 3) uint8, the next frame."""
        import cv2

        thumb = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), THUMB, interpolation=cv2.INTER_AREA)
        thumb = thumb.astype(np.float32)
        last = self._last
        self._change.append(float(np.abs(thumb - last[-1]).mean()) if last else 0.0)
        self._skip.append(float(np.abs(thumb - last[-2]).mean()) if len(last) == 2 else np.inf)
        self._last = [*last[-1:], thumb]

    def new_picture(self) -> bool:
        """Whether the latest frame changed like a cut: from the frame before by more than `MIN_CHANGE` and `RATIO`
        times the median change of the frames before it, and not back to the picture of two frames before. Known
        at once, unlike `cuts` (which also asks that the frames after it stay): a flash passes here."""
        d = self._change
        if len(d) < 2 or d[-1] <= MIN_CHANGE or self._skip[-1] <= MIN_CHANGE:
            return False
        before = d[max(1, len(d) - 1 - WINDOW):-1]
        return bool(before) and d[-1] > RATIO * float(np.median(before))    # frame 1: nothing to judge it by

    def cuts(self) -> list[int]:
        """Frame indices (counted from the first frame added) where a new shot starts."""
        d, skip = np.asarray(self._change), np.asarray(self._skip)
        out = []
        for i in range(1, len(d)):
            around = np.concatenate([d[max(1, i - WINDOW):i], d[i + 1:i + 1 + WINDOW]])
            floor = float(np.median(around)) if len(around) else 0.0
            stays = i + 1 >= len(d) or skip[i + 1] > MIN_CHANGE          # i + 1 not back to i - 1's picture
            came = skip[i] > MIN_CHANGE                                  # i not back to i - 2's either
            if d[i] > MIN_CHANGE and d[i] > RATIO * floor and stays and came:
                out.append(i)
        return out


def shot_ranges(cuts: list[int], start: int, end: int) -> list[tuple[int, int]]:
    """The shots of frames [start, end) as (first, end) pairs, given cuts as frame offsets from ``start``."""
    edges = [start, *(start + c for c in cuts), end]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]
