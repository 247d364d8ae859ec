"""A template of MediaPipe's 478 face-mesh points in 3D, and the points a double lacks placed on its mesh from it.

Some doubles carry only part of the face mesh: FLAME's MediaPipe embedding has 105 points (brows, eyes, nose,
lips) and none of the face's outline. Face replacement needs the outline (the matte follows it), so the missing
points are carried over from a template: the template is aligned to the points the double has (a similarity,
Umeyama's least squares) and each missing point is moved onto the double's surface (its closest point), where it
stays as a point on a triangle (barycentric), so that expressions move it with the skin. A head with no face
landmarks at all (SMPL-X) gets the whole template from its eye joints: scaled and placed by the eyeball centres,
then aligned to the head's surface by a similarity ICP that keeps the eyes where they are (`place_by_eyes`).

The template shipped (``data/mediapipe_face_template.npz``) is the calibrated Anny regressor's face points on a
default Anny double, metres, origin at the head joint, Doppel's axes (+Y up, facing +Z); made by
``scripts/make_face_template.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEMPLATE_PATH = Path(__file__).with_name("data") / "mediapipe_face_template.npz"
FACE_POINTS = 478
IRIS_CENTRES = (468, 473)     # MediaPipe's iris centres (refined landmarks)
EYEBALL_DEPTH = 0.012         # metres from an iris's centre back to its eyeball's centre (a 24 mm eyeball)
EYE_ANCHOR_WEIGHT = 30        # how many landmark pairs each eye centre counts for in the alignment


def make_face_template(rig, regressor=None) -> tuple[np.ndarray, dict]:
    """(points (478, 3) float32 metres, origin at the rig's 'head' joint, metadata) of an Anny rig through the
    calibrated landmark regressor (`landmark_regressor.DEFAULT_PATH` unless given)."""
    from reconstruction.fitting.landmark_regressor import DEFAULT_PATH, SET_OFFSETS, LandmarkRegressor

    reg = regressor or LandmarkRegressor.load(DEFAULT_PATH)
    if reg.num_vertices != rig.num_vertices:
        raise ValueError(f"the regressor was made for {reg.num_vertices} vertices, the rig has {rig.num_vertices}")
    rows = reg.rows(SET_OFFSETS["face"] + np.arange(FACE_POINTS))
    pts = np.einsum("lk,lkc->lc", reg.weight[rows], rig.vertices[reg.index[rows]])
    head = np.asarray(rig.bind_matrices)[rig.joint_index("head"), :3, 3]
    return (pts - head).astype(np.float32), {"source": rig.metadata.get("source", {}), "origin": "head joint"}


def write_face_template(path: Path, points: np.ndarray, metadata: dict) -> Path:
    np.savez(path, points=np.asarray(points, np.float32), metadata=np.array(json.dumps(metadata)))
    return path


def load_face_template(path: Path = TEMPLATE_PATH) -> np.ndarray:
    """(478, 3) float64 template points, metres."""
    with np.load(path, allow_pickle=False) as z:
        pts = np.asarray(z["points"], np.float64)
    if pts.shape != (FACE_POINTS, 3) or not np.isfinite(pts).all():
        raise ValueError(f"{path}: a face template needs finite points ({FACE_POINTS}, 3), got {pts.shape}")
    return pts


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R (3, 3), t (3,)) minimising sum |s R src + t - dst|^2 over point pairs src, dst (N, 3), N >= 3
    (Umeyama 1991; a proper rotation, det R = +1)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    d = np.sign(np.linalg.det(U @ Vt)) or 1.0
    D = np.diag([1.0, 1.0, d])
    R = U @ D @ Vt
    s = float((S * np.diag(D)).sum() / max((a ** 2).sum() / len(src), 1e-30))
    return s, R, mu_d - s * R @ mu_s


@dataclass
class SurfacePoints:
    """Points on a mesh: triangle (P,) int64 indices into the mesh's faces, barycentrics (P, 3) (sum 1), and
    how far the template point was from the surface (P,) metres."""

    triangle: np.ndarray
    bary: np.ndarray
    distance: np.ndarray

    def on(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """(..., P, 3) the points on vertices (..., V, 3) with faces (F, 3) (e.g. per-expression deltas)."""
        corners = vertices[..., faces[self.triangle], :]                  # (..., P, 3 corners, 3)
        return np.einsum("pk,...pkc->...pc", self.bary, corners)


def place_missing_points(ids: np.ndarray, points: np.ndarray, want: np.ndarray, vertices: np.ndarray,
                         faces: np.ndarray, template: np.ndarray | None = None) -> SurfacePoints:
    """The face-mesh points ``want`` (W,) (MediaPipe ids) on the mesh (vertices (V, 3) metres, faces (F, 3)),
    from the points the double has (ids (L,), points (L, 3) on the same mesh, same frame): the template aligned
    by a similarity on the shared ids, then each wanted point moved to its closest point on the surface.
    ValueError when fewer than 6 ids are shared (no alignment to trust)."""
    from reconstruction.scan_texture import closest_on_mesh

    tpl = load_face_template() if template is None else np.asarray(template, np.float64)
    ids = np.asarray(ids, np.int64)
    if len(ids) < 6 or ids.min() < 0 or ids.max() >= len(tpl):
        raise ValueError(f"the double has {len(ids)} face-mesh points: at least 6 (ids < {len(tpl)}) are needed to "
                         "align the face template")
    s, R, t = similarity(tpl[ids], np.asarray(points, np.float64))
    mapped = s * tpl[np.asarray(want, np.int64)] @ R.T + t
    tri, bary, dist = closest_on_mesh(mapped, vertices, faces)
    return SurfacePoints(tri, bary, dist)


def place_by_eyes(vertices: np.ndarray, faces: np.ndarray, eye_left: np.ndarray, eye_right: np.ndarray,
                  iterations: int = 10, template: np.ndarray | None = None) -> SurfacePoints:
    """MediaPipe's face-mesh points 0-467 on a head (vertices (V, 3) metres, faces (F, 3); Doppel's frame: +Y up,
    facing +Z) from its eyeball centres (3,) (the person's left eye has the larger x): the template scaled and
    placed by its eyes (iris centres less `EYEBALL_DEPTH`), then ``iterations`` rounds of a similarity fitted to
    the points' closest surface points (pairs over 2.5 x the median distance left out) with the eye centres held
    (each weighs `EYE_ANCHOR_WEIGHT` pairs), then each point moved onto the surface. Uncalibrated: a calibrated
    embedding, where the model has one, is better."""
    from reconstruction.scan_texture import closest_on_mesh

    tpl = load_face_template() if template is None else np.asarray(template, np.float64)
    v, f = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    eyes_t = tpl[list(IRIS_CENTRES)] - [0.0, 0.0, EYEBALL_DEPTH]
    eyes_t = eyes_t[np.argsort(-eyes_t[:, 0])]                          # the person's left (+x) first
    eyes = np.stack([np.asarray(eye_left, np.float64), np.asarray(eye_right, np.float64)])
    s = float(np.linalg.norm(eyes[0] - eyes[1]) / np.linalg.norm(eyes_t[0] - eyes_t[1]))
    R, t = np.eye(3), eyes.mean(0) - s * eyes_t.mean(0)
    src = tpl[:468]
    for _ in range(iterations):
        tri, bary, dist = closest_on_mesh(s * src @ R.T + t, v, f)
        near = np.einsum("pk,pkc->pc", bary, v[f[tri]])
        keep = dist <= 2.5 * np.median(dist)
        s, R, t = similarity(np.r_[src[keep], np.repeat(eyes_t, EYE_ANCHOR_WEIGHT, 0)],
                             np.r_[near[keep], np.repeat(eyes, EYE_ANCHOR_WEIGHT, 0)])
    tri, bary, dist = closest_on_mesh(s * src @ R.T + t, v, f)
    return SurfacePoints(tri, bary, dist)
