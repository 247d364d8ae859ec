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
    """One frame. faces: (N, 478, 2) px, every face MediaPipe found, largest first; hands: (M, 21, 2) px;
    from_crop: the faces were found on crops (small faces, `PlateTracker`'s zoom)."""

    faces: np.ndarray
    hands: np.ndarray
    from_crop: bool = False

    def face(self, index: int = 0) -> np.ndarray | None:
        """The index-th largest face (478, 2) px, or None when the frame has fewer faces."""
        return self.faces[index] if index < len(self.faces) else None


FOLLOW_FRAMES = 12        # a face is followed across at most this many frames without it, then picked by size again
FOLLOW_DISTANCE = 1.5     # the nearest face within this x the followed face's width (its landmarks' mean distance)
LEARN_EVERY = 12          # frames between views of the followed face offered to its `Performer`
JUMP = 0.5                # in a shot that has shown several faces, a followed face this x its width from where it
                          # was is asked who it is (a two-shot's other face, taken while the performer's was missed)
RECHECK_FRAMES = 6        # after the faces in view were not the performer's, they are looked at again this many
                          # frames later (at once at a cut); the frames between pass (backfill recovers them)


class FaceFollower:
    """The same face in every frame of a shot, where several are in view. The first pick is the index-th largest
    (as `PlateFrameLandmarks.face`); after it, the face nearest the one picked last, so that two faces of about
    one size (a two-shot) are not swapped for each other when their sizes cross. Until a frame has shown several
    faces, a frame with one face and index 0 takes it wherever it is (as before: a fast move is not a new face);
    a followed face not in view passes its frames (None) for up to `FOLLOW_FRAMES` frames, then the pick is by
    size again, at once where the picture changed like a cut (``new_picture``: another shot, in which the face
    followed need not be where it was). Feed the frames in order (forwards or backwards).

    performer: who the face picked first is (`capture.face_identity.Performer`; give ``rgb`` to `pick`). Then
    every pick that is not the followed face near where it was (the first of a shot after a cut, one after the
    face was lost, a jump) must be the performer's face: the face of the frame that is theirs, whatever its size,
    or none (``not_performer`` is then true: faces in view, none of them the performer; ``too_small`` too when none
    of them could be told: too small, or the performer never seen big enough); in a shot that has shown
    several faces, so must a followed face that moved more than `JUMP` of its width in a frame."""

    def __init__(self, index: int = 0, seed: np.ndarray | None = None, performer=None):
        self.index = index
        self._last, self._since = seed, 0
        self._several = False         # a frame has shown more than one face
        self.performer = performer
        self.not_performer = False    # the latest frame's faces were not the performer's
        self.too_small = False        # ... and none could be told (`capture.face_identity.Performer.can_tell`)
        self._untold = False          # the last check found no face it could tell
        self._frame, self._next_check, self._next_learn = 0, 0, 0
        # the performer was picked (a backward run's seed), or is known already (from a photo of them)
        self._picked = seed is not None or (performer is not None and performer.known)
        self.first_pick: int | None = None   # the frame (counted from the first fed) where the performer was picked,
                                             # or first found when known already
        self.first_crop: np.ndarray | None = None   # their face in that frame (`face_crop.face_thumbnail`)

    def pick(self, faces: np.ndarray, new_picture: bool = False, rgb: np.ndarray | None = None) -> np.ndarray | None:
        """faces (N, 478, 2) px, largest first -> the followed face (478, 2) or None. new_picture: the frame
        changed like a cut (`capture.shot_cuts.CutDetector.new_picture`); rgb (H, W, 3) uint8: the frame, for
        the performer's face (without it, or without a performer, faces are told apart by size and place)."""
        if self.performer is not None and rgb is not None:
            return self._pick_performer(faces, new_picture, rgb)
        face = self._pick(faces)
        if face is None and new_picture and self.index < len(faces):
            face = faces[self.index]                 # the face followed is gone in another shot: by size again
            self._last, self._since = face, 0
        return face

    def _pick(self, faces: np.ndarray) -> np.ndarray | None:
        self._several |= len(faces) > 1
        following = self._last is not None and self._since <= FOLLOW_FRAMES
        if not following:
            face = faces[self.index] if self.index < len(faces) else None
        elif len(faces):
            k, near = self._nearest(faces)
            alone = len(faces) == 1 and self.index == 0 and not self._several
            face = faces[k] if near or alone else None
        else:
            face = None
        self._last, self._since = (face, 0) if face is not None else (self._last, self._since + 1)
        return face

    def _nearest(self, faces: np.ndarray) -> tuple[int, bool]:
        """The face nearest the one followed, and whether it is near enough to be it."""
        k, moved = self._moved(faces)
        return k, moved <= FOLLOW_DISTANCE

    def _moved(self, faces: np.ndarray) -> tuple[int, float]:
        """The face nearest the one followed, and how far it is from it (its landmarks' mean distance, in the
        followed face's widths)."""
        d = np.linalg.norm(faces - self._last, axis=-1).mean(axis=1)
        k = int(np.argmin(d))
        return k, float(d[k]) / max(float(np.ptp(self._last[:, 0])), 1.0)

    def _pick_performer(self, faces: np.ndarray, new_picture: bool, rgb: np.ndarray) -> np.ndarray | None:
        frame, self._frame = self._frame, self._frame + 1
        self.not_performer = self.too_small = False
        if new_picture:
            self._last, self._several = None, False  # another shot: where the face was says nothing
        self._several |= len(faces) > 1
        if not len(faces):
            self._since += 1
            return None
        if self._last is not None and self._since <= FOLLOW_FRAMES:
            k, moved = self._moved(faces)
            near = moved <= FOLLOW_DISTANCE
            if near and self._several and moved > JUMP and self.performer.can_tell(faces[k]):
                near = self.performer.find(rgb, faces[k:k + 1]) is not None     # another face of a two-shot?
            if near:                                 # the face followed, where it was: no need to ask who
                self._keep(faces[k])
                if frame >= self._next_learn:
                    self.performer.learn(rgb, faces[k])
                    self._next_learn = frame + LEARN_EVERY
                return faces[k]
        if not self._picked:                         # the first pick: by size, and it is who the performer is
            face = faces[self.index] if self.index < len(faces) else None
            if face is not None:
                self._picked = True
                self._first_seen(frame, rgb, face)
                self.performer.learn(rgb, face)      # not when too small to tell: then nobody is found later
                self._keep(face)
                self._next_learn = frame + LEARN_EVERY
            return face
        checked = new_picture or frame >= self._next_check
        k = self.performer.find(rgb, faces) if checked else None
        if k is None:
            self.not_performer = True
            if checked:
                self._next_check = frame + RECHECK_FRAMES
                self._untold = not any(self.performer.can_tell(f) for f in faces)
            self.too_small = self._untold
            self._since += 1
            return None
        if self.first_pick is None:
            self._first_seen(frame, rgb, faces[k])
        self._keep(faces[k])
        return faces[k]

    def _keep(self, face: np.ndarray) -> None:
        self._last, self._since = face, 0

    def _first_seen(self, frame: int, rgb: np.ndarray, face: np.ndarray) -> None:
        from capture.face_crop import face_thumbnail

        self.first_pick, self.first_crop = frame, face_thumbnail(rgb, face)


def face_size(face: np.ndarray) -> float:
    """Area (px^2) of the bounding box of a face's landmarks (478, 2)."""
    return float(np.ptp(face[:, 0]) * np.ptp(face[:, 1]))


ZOOM_CROP_SIZE = 256      # px a small face's crop is resized to for the face mesh (its model reads 192 px)
ZOOM_FROM_LANDMARKS = 1.7  # crop side = this x the larger side of the face's landmarks in the frame before
ZOOM_FROM_DETECTION = 2.2  # crop side = this x the larger side of the full-range detector's box
SMALL_FACE = 0.08          # faces whose box is under this fraction of the frame's width are looked for on crops;
                           # a larger face the mesh misses is turned away or hidden (its crop reads it badly)
LOST_FACE = 0.14           # ... under this, once the whole-frame mesh has found no face for LOST_FRAMES frames
LOST_FRAMES = 24           # (START_FRAMES at a shot's start, before it found any): its detector misses frontal
START_FRAMES = 6           # faces up to about a tenth of the width (9.8 % missed, 10.9 % found), which
                           # SMALL_FACE alone left unfound
SECOND_LOOK_AGREE = 0.25   # a face's second reading is averaged in when within this x its width of the first


class PlateTracker:
    """MediaPipe face mesh + hands in video mode; build once per shot (the graphs keep tracking state).

    max_faces: how many faces the face mesh looks for (several faces: the caller picks one by size);
    hands: track hands too (occluders in front of the face); zoom: when the face mesh finds no face in the whole
    frame (its detector misses faces up to about a tenth of the frame's width: wide shots), look again for faces
    under `SMALL_FACE` of the frame's width (`LOST_FACE` once the whole-frame mesh has found none for
    `LOST_FRAMES` frames, or for `START_FRAMES` at a shot's start before it found any; from the first frame with
    ``lost``, as a backward run from a face found on a crop needs) on crops around the faces of the frame before,
    else around those of MediaPipe's full-range face detector (faces up to about 5 m), with the mesh in
    single-image mode. The wait at the start lets a face the mesh finds a few frames late be tracked back from
    there (`capture.face_backfill`), which reads it more steadily than a crop; frames: how many frames will be fed
    (None: unknown), so that a shorter plate waits no longer than its last frame. second_look: each face the mesh
    tracks in the whole frame is read again on its own (the mesh in single-image mode on a crop around it) and
    the two readings averaged: the tracking mode's region of interest, taken from the frame before, lags a turning
    head (its landmarks 0.31 inter-ocular distances off at 50-90 degrees of yaw in a fast turn, 0.23 averaged;
    at the issue's speed 0.208 -> 0.187, jitter 0.095 -> 0.087; docs/benchmarks.md, stop 49). Not thread-safe.
    Use as a context manager."""

    def __init__(self, max_faces: int = 2, hands: bool = True, min_confidence: float = 0.5, zoom: bool = True,
                 lost: bool = False, second_look: bool = True, frames: int | None = None):
        import mediapipe as mp

        s = mp.solutions
        self._face = s.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=max_faces, refine_landmarks=True,
                                          min_detection_confidence=min_confidence,
                                          min_tracking_confidence=min_confidence)
        self._hands = s.hands.Hands(static_image_mode=False, max_num_hands=2,
                                    min_detection_confidence=min_confidence) if hands else None
        self._max_faces, self._min_confidence = max_faces, min_confidence
        self._zoom, self._second_look = zoom, second_look
        self._crop_mesh = self._detector = None
        self._last = np.zeros((0, N_FACE, 2))          # the faces of the frame before
        self._missed = LOST_FRAMES + 1 if lost else 0   # frames since the whole-frame mesh last found a face
        # frames without one before larger faces are looked for: within a plate that has them (a still, or a
        # plate of a few frames, waited past its end and its face, which the mesh misses, was never looked for)
        self._wait = START_FRAMES if frames is None else min(START_FRAMES, max(0, frames - 1))
        self.zoomed = 0                                 # frames whose faces were found on crops

    def process(self, rgb: np.ndarray) -> PlateFrameLandmarks:
        """rgb (H, W, 3) uint8 -> the frame's faces (largest first) and hands."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        h, w = rgb.shape[:2]
        scale = np.array([w, h], np.float64)
        faces = np.zeros((0, N_FACE, 2))
        r = self._face.process(rgb)
        self._missed = 0 if r.multi_face_landmarks else self._missed + 1
        if r.multi_face_landmarks:
            self._wait = LOST_FRAMES
            found = [np.array([[p.x, p.y] for p in f.landmark]) * scale for f in r.multi_face_landmarks]
            found.sort(key=face_size, reverse=True)
            faces = self._looked_again(rgb, np.stack(found)) if self._second_look else np.stack(found)
        elif self._zoom:
            faces = self._zoomed_faces(rgb)
        from_crop = not r.multi_face_landmarks and len(faces) > 0
        self.zoomed += from_crop
        self._last = faces
        hands = np.zeros((0, N_HAND, 2))
        if self._hands is not None:
            rh = self._hands.process(rgb)
            if rh.multi_hand_landmarks:
                hands = np.stack([np.array([[p.x, p.y] for p in lm.landmark]) * scale
                                  for lm in rh.multi_hand_landmarks])
        return PlateFrameLandmarks(faces, hands, from_crop)

    def _looked_again(self, rgb: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """faces (N, 478, 2) px, each averaged with the mesh's single-image reading of a crop around it when that
        finds the same face (within `SECOND_LOOK_AGREE` of its width); a face it does not find is kept as it is."""
        from capture.face_crop import landmark_box

        out = faces.copy()
        for k, face in enumerate(faces[:self._max_faces]):
            centre, extent = landmark_box(face)
            again = self._mesh_on(rgb, [(centre, ZOOM_FROM_LANDMARKS * extent)])
            width = max(float(np.ptp(face[:, 0])), 1.0)
            if again and np.linalg.norm(again[0] - face, axis=-1).mean() < SECOND_LOOK_AGREE * width:
                out[k] = 0.5 * (face + again[0])
        return out

    def _zoomed_faces(self, rgb: np.ndarray) -> np.ndarray:
        """(N, 478, 2) px: faces found by the mesh on crops (see the class), largest first; (0, 478, 2) if none."""
        from capture.face_crop import landmark_box

        small = (SMALL_FACE if self._missed <= self._wait else LOST_FACE) * rgb.shape[1]
        found = []
        if len(self._last):                      # where the faces were a frame ago
            boxes = [landmark_box(f) for f in self._last]
            found = self._mesh_on(rgb, [(c, ZOOM_FROM_LANDMARKS * e) for c, e in boxes if e < small])
        if not found:                            # lost, or never found: the full-range detector
            found = self._mesh_on(rgb, [(c, s) for c, s in self._detections(rgb) if s < ZOOM_FROM_DETECTION * small])
        found.sort(key=face_size, reverse=True)
        return np.stack(found) if found else np.zeros((0, N_FACE, 2))

    def _mesh_on(self, rgb: np.ndarray, regions) -> list[np.ndarray]:
        """The face mesh (478, 2) px of each region (centre (2,) px, side px) where it finds a face."""
        from capture.face_crop import square_crop

        found = []
        for centre, side in regions[:self._max_faces]:
            crop, a, origin = square_crop(rgb, centre, max(side, 16.0), ZOOM_CROP_SIZE)
            r = self._mesh_on_crops().process(crop)
            if r.multi_face_landmarks:
                pts = np.array([[p.x, p.y] for p in r.multi_face_landmarks[0].landmark]) * ZOOM_CROP_SIZE
                found.append(pts / a + origin)
        return found

    def _detections(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(centre (2,) px, crop side px) of the faces MediaPipe's full-range detector finds, most confident first:
        on the whole frame, else on square tiles of the frame's height, else of half of it (half-overlapping), the
        first of these that finds any (the detector sees its input at 192 px: tiles make small faces larger)."""
        if self._detector is None:
            import mediapipe as mp

            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self._min_confidence)
        h, w = rgb.shape[:2]
        for tile in (None, *(t for t in (min(h, w), min(h, w) // 2) if t >= 64)):
            found = []                            # (score, centre, side)
            for x0, y0, side in _tiles(w, h, tile):
                r = self._detector.process(np.ascontiguousarray(rgb[y0:y0 + side[1], x0:x0 + side[0]]))
                for d in r.detections or []:
                    b = d.location_data.relative_bounding_box
                    centre = np.array([x0 + (b.xmin + b.width / 2) * side[0], y0 + (b.ymin + b.height / 2) * side[1]])
                    found.append((d.score[0], centre, max(b.width * side[0], b.height * side[1])))
            if found:
                return _distinct(found)
        return []

    def _mesh_on_crops(self):
        if self._crop_mesh is None:
            import mediapipe as mp

            self._crop_mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=self._min_confidence)
        return self._crop_mesh

    def close(self) -> None:
        self._face.close()
        if self._hands is not None:
            self._hands.close()
        for g in (self._crop_mesh, self._detector):
            if g is not None:
                g.close()

    def __enter__(self) -> PlateTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _tiles(w: int, h: int, tile: int | None) -> list[tuple[int, int, tuple[int, int]]]:
    """(x0, y0, (width, height)) of the whole frame (tile None) or of square tiles of side ``tile`` px overlapping
    by half, the last of each row and column flush with the frame's edge."""
    if tile is None:
        return [(0, 0, (w, h))]

    def starts(n: int) -> list[int]:
        s = list(range(0, max(n - tile, 0) + 1, max(tile // 2, 1)))
        return s if s[-1] == max(n - tile, 0) else s + [n - tile]

    return [(x, y, (min(tile, w), min(tile, h))) for y in starts(h) for x in starts(w)]


def _distinct(found: list[tuple[float, np.ndarray, float]]) -> list[tuple[np.ndarray, float]]:
    """Detections (score, centre, size) seen by several overlapping tiles counted once (a centre within another,
    more confident box is the same face); (centre, crop side) most confident first."""
    out: list[tuple[np.ndarray, float]] = []
    for _, centre, size in sorted(found, key=lambda f: -f[0]):
        if all(np.abs(centre - c).max() > s / (2 * ZOOM_FROM_DETECTION) for c, s in out):
            out.append((centre, ZOOM_FROM_DETECTION * size))
    return out


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
