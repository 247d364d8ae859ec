"""2D landmarks and person masks with MediaPipe 0.10.21's legacy ``mediapipe.solutions`` (the models
ship inside the wheel, so this runs offline): face mesh (478 points with irises), pose (33), hands
(21 per hand), selfie segmentation (person mask). Results are cached per image by content hash.

Pixel coordinates follow Doppel's convention: MediaPipe's normalised x in [0, 1] spans the image
width, so ``u = x * W`` puts pixel centres at integer + 0.5.

When the face is small in the frame (a full-body view), MediaPipe's short-range face detector often
misses it; the face mesh is then run again on a square crop around the head found by the pose model.
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from capture.hand_sides import hand_sides
from core.storage import atomic_write_npz, content_key, sha256_bytes

log = logging.getLogger(__name__)

N_FACE, N_POSE, N_HAND = 478, 33, 21
CACHE_SCHEMA = 2          # 2: hands given the side of the pose wrist they start at (capture.hand_sides)
HEAD_CROP_SCALE = 2.2      # head crop side = this x the head's extent from the pose landmarks
HEAD_CROP_SIZE = 384       # px the head crop is resized to before the face mesh
POSE_HEAD = list(range(11))  # nose, eyes, ears, mouth in MediaPipe's 33-point pose

POSE_NAMES = ["nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
              "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
              "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
              "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
              "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
              "left_foot_index", "right_foot_index"]


@dataclass
class ImageLandmarks:
    """Landmarks of one image. Pixel coordinates (Doppel convention); NaN where not detected."""

    width: int
    height: int
    face: np.ndarray        # (478, 2) px
    face_conf: np.ndarray   # (478,) 1 where the face mesh found the face (it gives no per-point score), else 0
    pose: np.ndarray        # (33, 2) px
    pose_conf: np.ndarray   # (33,) MediaPipe visibility in [0, 1], 0 where not detected
    hands: np.ndarray       # (2, 21, 2) px, [left, right] as MediaPipe labels them (the person's own hands)
    hands_conf: np.ndarray  # (2, 21) handedness score of the hand, 0 where not detected
    mask: np.ndarray        # (H, W) float32 person probability in [0, 1]
    face_from_crop: bool = False  # the face was found on the head crop, not on the whole image

    @property
    def has_face(self) -> bool:
        return bool(self.face_conf.max(initial=0) > 0)

    @property
    def has_pose(self) -> bool:
        return bool(self.pose_conf.max(initial=0) > 0)

    def n_hands(self) -> int:
        return int((self.hands_conf.max(axis=1) > 0).sum())

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

    @staticmethod
    def from_npz_dict(d) -> ImageLandmarks:
        kw = {f.name: d[f.name] for f in fields(ImageLandmarks)}
        kw["width"], kw["height"] = int(kw["width"]), int(kw["height"])
        kw["face_from_crop"] = bool(kw["face_from_crop"])
        return ImageLandmarks(**kw)


def no_landmarks(w: int, h: int, mask: bool = True) -> ImageLandmarks:
    """The landmarks of a w x h image where nothing was detected (or no image: ``mask`` False leaves the mask
    empty, (0, 0))."""
    return ImageLandmarks(w, h, np.full((N_FACE, 2), np.nan), np.zeros(N_FACE), np.full((N_POSE, 2), np.nan),
                          np.zeros(N_POSE), np.full((2, N_HAND, 2), np.nan), np.zeros((2, N_HAND)),
                          np.zeros((h, w) if mask else (0, 0), np.float32))


class LandmarkDetector:
    """Holds MediaPipe's solution graphs (build once, reuse for many images). Not thread-safe.

    cache_dir: where per-image results are cached (content hash of the image bytes + parameters), or None.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, face: bool = True, pose: bool = True,
                 hands: bool = True, mask: bool = True, pose_complexity: int = 1, min_confidence: float = 0.5):
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.params = {"face": face, "pose": pose, "hands": hands, "mask": mask, "pose_complexity": pose_complexity,
                       "min_confidence": min_confidence, "head_crop": [HEAD_CROP_SCALE, HEAD_CROP_SIZE],
                       "schema": CACHE_SCHEMA, "mediapipe": _mediapipe_version()}
        self._graphs: dict = {}
        self.cache_hits = 0

    def _graph(self, name: str):
        if name not in self._graphs:
            try:
                import mediapipe as mp
            except ImportError as e:  # pragma: no cover - mediapipe is a hard dependency
                from core.errors import MissingDependencyError

                raise MissingDependencyError("landmarks need mediapipe: pip install mediapipe==0.10.21") from e
            s, c = mp.solutions, self.params["min_confidence"]
            self._graphs[name] = {
                "face": lambda: s.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                                     min_detection_confidence=c),
                "pose": lambda: s.pose.Pose(static_image_mode=True, model_complexity=self.params["pose_complexity"],
                                            min_detection_confidence=c),
                "hands": lambda: s.hands.Hands(static_image_mode=True, max_num_hands=2, min_detection_confidence=c),
                "mask": lambda: s.selfie_segmentation.SelfieSegmentation(model_selection=0),
            }[name]()
        return self._graphs[name]

    def close(self) -> None:
        for g in self._graphs.values():
            g.close()
        self._graphs.clear()

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect_file(self, path: str | os.PathLike) -> ImageLandmarks:
        """Landmarks of an image file (cached by the SHA-256 of its bytes)."""
        import cv2

        from capture.images import read_image

        path = Path(path)
        data = path.read_bytes()
        key = content_key(sha256_bytes(data), self.params)
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        img = read_image(path, data=data)
        res = self._detect(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        self._cache_put(key, res)
        return res

    def detect(self, rgb: np.ndarray) -> ImageLandmarks:
        """rgb (H, W, 3) uint8 (or float in [0, 1], sRGB) -> ImageLandmarks (cached by the array's bytes)."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"image must be (H, W, 3), got {rgb.shape}")
        if rgb.dtype != np.uint8:
            rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
        rgb = np.ascontiguousarray(rgb)
        key = content_key(sha256_bytes(rgb.tobytes()), list(rgb.shape), self.params)
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        res = self._detect(rgb)
        self._cache_put(key, res)
        return res

    def _cache_get(self, key: str) -> ImageLandmarks | None:
        if self.cache_dir is None:
            return None
        p = self.cache_dir / f"{key}.npz"
        if not p.is_file():
            return None
        try:
            with np.load(p) as d:
                out = ImageLandmarks.from_npz_dict(d)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # damaged: recomputed, never trusted
            log.warning("landmark cache entry %s unreadable (%s); recomputing", p, e)
            return None
        self.cache_hits += 1
        return out

    def _cache_put(self, key: str, res: ImageLandmarks) -> None:
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_npz(self.cache_dir / f"{key}.npz", **res.to_npz_dict())

    def _detect(self, rgb: np.ndarray) -> ImageLandmarks:
        h, w = rgb.shape[:2]
        out = no_landmarks(w, h)
        scale = np.array([w, h], dtype=np.float64)
        if self.params["pose"]:
            r = self._graph("pose").process(rgb)
            if r.pose_landmarks:
                lm = r.pose_landmarks.landmark
                out.pose = np.array([[p.x, p.y] for p in lm]) * scale
                out.pose_conf = np.array([p.visibility for p in lm])
        if self.params["face"]:
            face = self._face(rgb, scale)
            if face is None and out.has_pose:
                face = self._face_from_head_crop(rgb, out)
                out.face_from_crop = face is not None
            if face is not None:
                out.face, out.face_conf = face, np.ones(N_FACE)
        if self.params["hands"]:
            r = self._graph("hands").process(rgb)
            found = []
            for lms, hd in zip(r.multi_hand_landmarks or [], r.multi_handedness or [], strict=True):
                c = hd.classification[0]
                # MediaPipe labels handedness as if the image were mirrored (selfie): the person's side is the other
                found.append((np.array([[p.x, p.y] for p in lms.landmark]) * scale, c.score, 1 if c.label == "Left"
                              else 0))
            for side, pts, score in hand_sides(found, out.pose, out.pose_conf):   # the pose's wrists decide
                out.hands[side], out.hands_conf[side] = pts, score
        if self.params["mask"]:
            m = self._graph("mask").process(rgb).segmentation_mask
            if m is not None:
                out.mask = np.clip(m, 0, 1).astype(np.float32)
        return out

    def _face(self, rgb: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
        r = self._graph("face").process(rgb)
        if not r.multi_face_landmarks:
            return None
        return np.array([[p.x, p.y] for p in r.multi_face_landmarks[0].landmark]) * scale

    def _face_from_head_crop(self, rgb: np.ndarray, lm: ImageLandmarks) -> np.ndarray | None:
        from capture.face_crop import square_crop

        head = lm.pose[POSE_HEAD][lm.pose_conf[POSE_HEAD] > 0.3]
        if len(head) < 3:
            return None
        ext = max(np.ptp(head[:, 0]), np.ptp(head[:, 1]), 8.0)
        crop, a, origin = square_crop(rgb, head.mean(0), HEAD_CROP_SCALE * ext * 1.4, HEAD_CROP_SIZE)
        face = self._face(crop, np.array([HEAD_CROP_SIZE, HEAD_CROP_SIZE], dtype=np.float64))
        if face is None:
            return None
        return face / a + origin


def _mediapipe_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("mediapipe")
    except metadata.PackageNotFoundError:
        return "not installed"


def grace_hopper_path() -> Path | None:
    """A real portrait photo shipped with matplotlib (a dependency of mediapipe), for checks by hand."""
    try:
        import matplotlib

        p = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        return p if p.is_file() else None
    except ImportError:
        return None
