"""The double's head as face replacement uses it: its face landmarks (the tracking basis), the head's mesh
with its albedo and expression blendshapes, and a renderer of the head in a plate camera.

Loaded from a rig folder (`doppel rig`): the landmarks are the MediaPipe face-mesh points placed on the
rig's bind mesh by the calibrated landmark regressor (Anny topology), the expressions are the rig's ARKit
blendshapes in `EXPRESSIONS`, and the head is every vertex skinned mostly to the head joint's subtree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doppel.face_swap.neural_head import NeuralHead, is_model_dir, load_neural_head
from reconstruction.head_tracking import FaceBasis

log = logging.getLogger(__name__)

# The blendshapes the tracker solves for: the ones MediaPipe's landmarks can see (jaw, lips, lids, brows).
EXPRESSIONS = ("jawOpen", "mouthClose", "mouthSmileLeft", "mouthSmileRight", "mouthFunnel", "mouthPucker",
               "mouthStretchLeft", "mouthStretchRight", "mouthLowerDownLeft", "mouthLowerDownRight",
               "mouthUpperUpLeft", "mouthUpperUpRight", "eyeBlinkLeft", "eyeBlinkRight", "browInnerUp",
               "browDownLeft", "browDownRight")
HEAD_JOINT = "head"
IRIS_IDS = range(468, 478)   # irises follow the gaze, not the head: left out of the tracking basis


def face_oval_ids() -> np.ndarray:
    """MediaPipe face-mesh indices of the face oval (its outline), in no particular order."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    return np.array(sorted({i for e in FACEMESH_FACE_OVAL for i in e}), np.int64)


@dataclass
class FaceDouble:
    """basis: landmarks for tracking; head_vertices (Vh,) rig vertex ids of the head; head_faces (Fh, 3) into
    head_vertices; head_bind (Vh, 3) metres; head_deltas (E, Vh, 3) metres per expression of basis.names;
    uvs (T, 2), face_uvs (Fh, 3) or None; albedo (Ht, Wt, 3) float sRGB or None; oval_points (O, 3) the face
    outline's landmarks (neutral) for the face mask; source: the rig folder; neural: the trained neural double
    that draws the head instead of the textured rig, or None."""

    basis: FaceBasis
    head_vertices: np.ndarray
    head_faces: np.ndarray
    head_bind: np.ndarray
    head_deltas: np.ndarray
    uvs: np.ndarray | None
    face_uvs: np.ndarray | None
    albedo: np.ndarray | None
    oval_ids: np.ndarray
    source: Path
    neural: NeuralHead | None = None

    @property
    def folders(self) -> list[Path]:
        """The rig folder, and the neural double's model folder when it draws the head."""
        return [self.source] + ([self.neural.source] if self.neural is not None else [])

    @property
    def renderer(self) -> str:
        return "neural" if self.neural is not None else "cgi"

    def head_mesh(self, weights: np.ndarray) -> np.ndarray:
        """(Vh, 3) head vertices for expression weights (E,)."""
        return self.head_bind + np.einsum("e,evc->vc", weights, self.head_deltas)

    def oval_points(self, weights: np.ndarray) -> np.ndarray:
        """(O, 3) face-outline landmarks for expression weights (E,)."""
        pos = {int(i): r for r, i in enumerate(self.basis.ids)}
        rows = [pos[int(i)] for i in self.oval_ids if int(i) in pos]
        return self.basis.points(weights)[rows]


def _subtree(parents: np.ndarray, root: int) -> np.ndarray:
    keep = np.zeros(len(parents), bool)
    keep[root] = True
    for j in range(len(parents)):
        if parents[j] >= 0 and keep[parents[j]]:
            keep[j] = True
    return keep


def _head_region(rig) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(vertex ids, faces re-indexed, their face_uvs or None) of the head: vertices whose skin weight on the
    head joint's subtree is over 0.5."""
    try:
        head = rig.joint_index(HEAD_JOINT)
    except KeyError:
        raise ValueError(f"the double's rig has no {HEAD_JOINT!r} joint: it has no face region to replace") from None
    sub = _subtree(rig.parents, head)
    w_head = (rig.skin_weights * sub[rig.skin_indices]).sum(1)
    inside = w_head > 0.5
    faces = rig.faces[inside[rig.faces].all(1)]
    verts = np.flatnonzero(inside)
    remap = np.full(len(rig.vertices), -1, np.int64)
    remap[verts] = np.arange(len(verts))
    keep = inside[rig.faces].all(1)
    return verts, remap[faces], None if rig.face_uvs is None else np.asarray(rig.face_uvs)[keep]


def face_basis(rig, regressor=None) -> FaceBasis:
    """The rig's face landmarks (MediaPipe ids, irises excluded) and their expression deltas (`EXPRESSIONS`
    the rig has). ValueError when the regressor was made for another topology (no face region)."""
    from reconstruction.fitting.landmark_regressor import DEFAULT_PATH, SET_OFFSETS, LandmarkRegressor

    reg = regressor or LandmarkRegressor.load(DEFAULT_PATH)
    if reg.num_vertices != rig.num_vertices:
        raise ValueError(f"the double's rig has {rig.num_vertices} vertices but the face landmark regressor was "
                         f"made for {reg.num_vertices} (Anny): no face region known for this double")
    off = SET_OFFSETS["face"]
    ids = np.array([int(i) - off for i in reg.ids if off <= int(i) < off + 478 and int(i) - off not in IRIS_IDS])
    rows = reg.rows(ids + off)
    neutral = np.einsum("lk,lkc->lc", reg.weight[rows], rig.vertices[reg.index[rows]])
    names = tuple(n for n in EXPRESSIONS if n in rig.blendshape_names)
    deltas = np.stack([np.einsum("lk,lkc->lc", reg.weight[rows],
                                 rig.blendshape_deltas[rig.blendshape_names.index(n)][reg.index[rows]])
                       for n in names]) if names else np.zeros((0, len(ids), 3))
    return FaceBasis(ids, neutral.astype(np.float64), deltas.astype(np.float64), names)


def load_face_double(double_dir: str | Path, work_dir: Path, albedo_size: int = 1024,
                     rig_dir: str | Path | None = None) -> FaceDouble:
    """The FaceDouble of ``double_dir``: a rig folder (`doppel rig`: the textured rig draws the head; its albedo is
    RIG_DIR/albedo.png or the procedural one, written into work_dir, albedo_size px square), or a neural double's
    model folder (`doppel render train`) with ``rig_dir``, the rig built from the same fit (its landmarks and
    expressions; the neural double draws the head).
    FileNotFoundError / ValueError / ModelError (one line) for a missing folder, a rig without a face, a model
    without its rig or of another topology."""
    from PIL import Image

    from doppel.doubles import albedo_for_rig
    from rigging import Rig

    double_dir = Path(double_dir)
    if is_model_dir(double_dir):
        if rig_dir is None:
            raise ValueError(f"--double {double_dir} is a neural double: give --rig RIG_DIR, the rig built from the "
                             "same fit (its face landmarks and expressions)")
        rig_dir = Path(rig_dir)
    elif rig_dir is not None:
        raise ValueError(f"--rig is for a neural double (--double MODEL_DIR); {double_dir} is not a model folder")
    else:
        rig_dir = double_dir
    rig = Rig.load(rig_dir)
    basis = face_basis(rig)
    neural = load_neural_head(double_dir, rig) if double_dir != rig_dir else None
    verts, faces, face_uvs = _head_region(rig)
    names = list(basis.names)
    deltas = np.stack([rig.blendshape_deltas[rig.blendshape_names.index(n)][verts] for n in names]) if names \
        else np.zeros((0, len(verts), 3), np.float32)
    tex_path = albedo_for_rig(rig, rig_dir, work_dir, size=albedo_size, seed=int(rig.metadata.get("seed", 0) or 0))
    albedo = None
    if tex_path is not None:
        with Image.open(tex_path) as im:
            albedo = np.asarray(im.convert("RGB"), np.float32) / 255.0
    return FaceDouble(basis, verts, faces, rig.vertices[verts].astype(np.float64), deltas.astype(np.float64),
                      rig.uvs, face_uvs, albedo, face_oval_ids(), rig_dir, neural)
