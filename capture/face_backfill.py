"""Faces recovered backwards: frames without a face just before a frame with one, tracked again from it.

MediaPipe's face mesh finds a face by detecting it, then tracks it from frame to frame; its detector often finds
a face a few frames after the face could already be tracked (a shot's first frames, a frame the detector
missed after a turn), and a tracker that only runs forwards leaves those frames without a face. `Backfill`
holds the latest run of faceless frames (bounded in frames and bytes, so a plate still streams) and, when a
face is found, runs a fresh tracker backwards from that frame through the run, until it loses the face.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from capture.face_tracking import PlateFrameLandmarks

MAX_FRAMES = 24               # faceless frames held (a second at 24 fps)
MAX_BYTES = 256 * 2 ** 20     # ... and at most this many bytes of them (ten 4K frames)


class Backfill:
    """The faceless frames before a found face, tracked backwards from it.

    make_tracker: a new tracker (an object with ``process(rgb) -> PlateFrameLandmarks`` and ``close()``; a
    `PlateTracker` in video mode), made for each backward run; face_index: the face that must be found (as
    the forward pass picks it, the index-th largest). Call `faceless` for every frame without that face and
    `found` for every frame with it, in frame order."""

    def __init__(self, make_tracker: Callable[[], object], face_index: int = 0, max_frames: int = MAX_FRAMES,
                 max_bytes: int = MAX_BYTES):
        self._make, self._index = make_tracker, face_index
        self._max_frames, self._max_bytes = max_frames, max_bytes
        self._held: deque[tuple[int, np.ndarray]] = deque()
        self._bytes = 0
        self.recovered = 0            # frames given a face by a backward run

    def faceless(self, frame: int, rgb: np.ndarray) -> None:
        """Hold frame (its number) rgb (H, W, 3) uint8, the latest of a run of faceless frames (the oldest are
        let go past the bounds; a gap in the numbers starts a new run)."""
        if self._held and self._held[-1][0] != frame - 1:
            self._clear()
        self._held.append((frame, rgb))
        self._bytes += rgb.nbytes
        while len(self._held) > self._max_frames or (self._bytes > self._max_bytes and len(self._held) > 1):
            self._bytes -= self._held.popleft()[1].nbytes

    def found(self, frame: int, rgb: np.ndarray) -> list[tuple[int, PlateFrameLandmarks, np.ndarray]]:
        """The frame (number) rgb has the face: the held run just before it tracked backwards from it.
        Returns [(frame number, its landmarks, its rgb)] for the frames where the backward run found the face,
        latest first, stopping at the first it did not find; the held frames are let go."""
        run = list(self._held) if self._held and self._held[-1][0] == frame - 1 else []
        self._clear()
        if not run:
            return []
        out = []
        tracker = self._make()
        try:
            tracker.process(rgb)                    # the face found here seeds the tracking
            for f, img in reversed(run):
                r = tracker.process(img)
                if r.face(self._index) is None:
                    break
                out.append((f, r, img))
        finally:
            tracker.close()
        self.recovered += len(out)
        return out

    def cut(self) -> None:
        """The plate cut to another shot: the frames held (the shot before) are let go, never tracked back into."""
        self._clear()

    def _clear(self) -> None:
        self._held.clear()
        self._bytes = 0
