"""Faces, hands and the person mask through a plate, frame after frame (MediaPipe 0.10.21, offline models).

Unlike `capture.landmarks.LandmarkDetector` (independent photos of a capture rig), a `PlateTracker` runs
MediaPipe's graphs in video mode: the face mesh (478 points with irises) and the hands are tracked from the
previous frame, which is steadier and faster than detecting every frame anew. Pixel coordinates follow
Doppel's convention (u = x * W, pixel centres at integer + 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capture.landmarks import N_FACE, N_HAND


@dataclass
class PlateFrameLandmarks:
    """One frame. faces: (N, 478, 2) px, every face MediaPipe found, largest first; hands: (M, 21, 2) px."""

    faces: np.ndarray
    hands: np.ndarray

    def face(self, index: int = 0) -> np.ndarray | None:
        """The index-th largest face (478, 2) px, or None when the frame has fewer faces."""
        return self.faces[index] if index < len(self.faces) else None


def face_size(face: np.ndarray) -> float:
    """Area (px^2) of the bounding box of a face's landmarks (478, 2)."""
    return float(np.ptp(face[:, 0]) * np.ptp(face[:, 1]))


class PlateTracker:
    """MediaPipe face mesh + hands in video mode; build once per shot (the graphs keep tracking state).

    max_faces: how many faces the face mesh looks for (several faces: the caller picks one by size);
    hands: track hands too (occluders in front of the face). Not thread-safe. Use as a context manager."""

    def __init__(self, max_faces: int = 2, hands: bool = True, min_confidence: float = 0.5):
        import mediapipe as mp

        s = mp.solutions
        self._face = s.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=max_faces, refine_landmarks=True,
                                          min_detection_confidence=min_confidence,
                                          min_tracking_confidence=min_confidence)
        self._hands = s.hands.Hands(static_image_mode=False, max_num_hands=2,
                                    min_detection_confidence=min_confidence) if hands else None

    def process(self, rgb: np.ndarray) -> PlateFrameLandmarks:
        """rgb (H, W, 3) uint8 -> the frame's faces (largest first) and hands."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        h, w = rgb.shape[:2]
        scale = np.array([w, h], np.float64)
        faces = np.zeros((0, N_FACE, 2))
        r = self._face.process(rgb)
        if r.multi_face_landmarks:
            found = [np.array([[p.x, p.y] for p in f.landmark]) * scale for f in r.multi_face_landmarks]
            found.sort(key=face_size, reverse=True)
            faces = np.stack(found)
        hands = np.zeros((0, N_HAND, 2))
        if self._hands is not None:
            rh = self._hands.process(rgb)
            if rh.multi_hand_landmarks:
                hands = np.stack([np.array([[p.x, p.y] for p in lm.landmark]) * scale
                                  for lm in rh.multi_hand_landmarks])
        return PlateFrameLandmarks(faces, hands)

    def close(self) -> None:
        self._face.close()
        if self._hands is not None:
            self._hands.close()

    def __enter__(self) -> PlateTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PersonSegmenter:
    """MediaPipe selfie segmentation: rgb (H, W, 3) uint8 -> (H, W) float32 person probability. Each frame is
    segmented on its own (the graph keeps nothing between frames), so threads may share one: calls take turns."""

    def __init__(self):
        import threading

        import mediapipe as mp

        self._g = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1)
        self._lock = threading.Lock()

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        with self._lock:
            m = self._g.process(np.ascontiguousarray(rgb, dtype=np.uint8)).segmentation_mask
        if m is None:
            return np.zeros(rgb.shape[:2], np.float32)
        return np.clip(m, 0, 1).astype(np.float32)

    def close(self) -> None:
        self._g.close()
