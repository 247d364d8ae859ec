"""A swap's face track as a scene a compositor or a layout artist opens: the plate's camera and the double's head,
moving as the swap placed it, in Alembic (Nuke's ReadGeo and Camera, Houdini, Maya, Katana) or USD.

`doppel swap` keeps its track in ``tracks.npz`` (per frame the head pose from the double's bind frame into the plate
camera, the expression weights, the camera's K). A comp redone in Nuke, a relight of the double's head, a
re-render with another renderer or a clean-up by hand all need that track as 3D: the camera (static at the origin,
the plate's focal length and filmback, the principal point as a film offset) and the head mesh of the double (the
face region the swap draws: `doppel.face_swap.head_region`, with its UVs) whose points, per frame, are the rig's head
with that frame's expression, carried by that frame's pose into the camera's space. Projected through the file's
camera the head lands where the swap drew it.

Conventions of the files: Y-up, the camera looking down -Z (OpenCV's camera frame x right, y down, z forward turned
to it by diag(1, -1, -1)); metres unless ``units="cm"``; the filmback 36 mm wide (any width gives the same
picture: only focal length / aperture matters), its height from the plate's aspect; the plate's first tracked frame
is frame ``first_frame`` (default: the plate's frame number + 1, so a movie's first frame is frame 1 as Nuke reads
it). Frames where no face was tracked carry the track's bridged pose (the solve's), and are listed in the file's
provenance (``untracked_frames``) and by the command.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assets.export.camera_scene import SCENE_FORMATS
from assets.export.dcc_camera import CV_TO_GL

log = logging.getLogger(__name__)

TRACK_FORMATS = SCENE_FORMATS             # a track is a camera scene: .abc, .usd, .usda, .usdc


class TrackSceneError(ValueError):
    """A face track that cannot become a scene of this double (one line, naming the file)."""


@dataclass
class TrackScene:
    """points (F, Vh, 3) float64 metres in the DCC camera frame (Y up, looking down -Z); faces (Fh, 3) into them;
    uvs (T, 2) and face_uvs (Fh, 3) or None; K (3, 3) (Doppel's pixel convention) and size (W, H) of the plate;
    fps; first_frame: the DCC frame number of points[0]; valid (F,) frames the tracker saw a face in; shutter_deg:
    the plate camera's shutter angle the swap blurred the head with (0: none; a scene camera's shutter open /
    close, centred on the frame)."""

    points: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None
    face_uvs: np.ndarray | None
    K: np.ndarray
    size: tuple[int, int]
    fps: float
    first_frame: int
    valid: np.ndarray
    shutter_deg: float = 0.0

    @property
    def untracked_frames(self) -> list[int]:
        return [self.first_frame + int(i) for i in np.flatnonzero(~self.valid)]


def read_tracks(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a swap's ``tracks.npz`` (or the swap folder holding it) a scene needs. TrackSceneError (one
    line) for a file without them."""
    p = Path(path)
    f = p / "tracks.npz" if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"{p}: no tracks.npz (a `doppel swap` output folder's face track)")
    keys = ("rotation", "translation", "expression", "expression_names", "valid", "K", "size", "fps", "frame")
    try:
        with np.load(f, allow_pickle=False) as z:
            data = {k: z[k] for k in (*keys, "dist", "lens_model", "shutter_deg") if k in z.files}
    except (OSError, ValueError) as e:
        raise TrackSceneError(f"{f}: not a readable face track ({e})") from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise TrackSceneError(f"{f}: not a swap's face track ({', '.join(missing)} missing)")
    F = len(data["valid"])
    if F < 1 or data["rotation"].shape != (F, 3, 3) or data["translation"].shape != (F, 3):
        raise TrackSceneError(f"{f}: rotation must be (F, 3, 3) and translation (F, 3) for its {F} frames")
    if not all(np.isfinite(data[k]).all() for k in ("rotation", "translation", "expression", "K")):
        raise TrackSceneError(f"{f}: its head poses, expressions or camera are not finite (NaN or infinity)")
    return data


def track_scene(tracks: dict[str, np.ndarray], double, source: str = "tracks.npz",
                first_frame: int | None = None) -> TrackScene:
    """The TrackScene of ``tracks`` (`read_tracks`) on ``double`` (`doppel.face_swap.double.FaceDouble` of the rig
    the swap used). TrackSceneError when the track's expressions are not the double's (a track solved on another
    double)."""
    names = [str(n) for n in np.asarray(tracks["expression_names"]).reshape(-1)]
    if names != list(double.basis.names):
        raise TrackSceneError(f"{source}: its expressions ({len(names)}: {', '.join(names[:3])}, ...) are not this "
                              f"double's ({len(double.basis.names)}): the track was solved on another double; give "
                              "the rig the swap used")
    R, t = np.asarray(tracks["rotation"], np.float64), np.asarray(tracks["translation"], np.float64)
    w = np.asarray(tracks["expression"], np.float64)
    heads = double.head_bind[None] + np.einsum("fe,evc->fvc", w, double.head_deltas)          # (F, Vh, 3)
    cam = np.einsum("fij,fvj->fvi", R, heads) + t[:, None]
    frames = np.asarray(tracks["frame"]).reshape(-1)
    W, H = (int(v) for v in np.asarray(tracks["size"]).reshape(-1)[:2])
    dist = np.asarray(tracks.get("dist", np.zeros(5)), np.float64).reshape(-1)
    if np.any(dist) or str(tracks.get("lens_model", "none")) == "stmaps":
        log.warning("%s: the swap was solved through a plate lens with distortion (%s): the scene's camera is its "
                    "distortion-free pinhole; undistort the plate to line it up (the swap folder's "
                    "lens/*_undistort.exr ST-map, or the ST-maps it was given)", source,
                    f"OpenCV k1 k2 p1 p2 k3 {np.round(dist, 5).tolist()}" if np.any(dist) else "ST-maps")
    return TrackScene(points=cam @ CV_TO_GL.T, faces=double.head_faces, uvs=double.uvs, face_uvs=double.face_uvs,
                      K=np.asarray(tracks["K"], np.float64), size=(W, H), fps=float(tracks["fps"]) or 24.0,
                      first_frame=int(frames[0]) + 1 if first_frame is None else int(first_frame),
                      valid=np.asarray(tracks["valid"], bool).reshape(-1),
                      shutter_deg=float(tracks.get("shutter_deg", 0.0)))
