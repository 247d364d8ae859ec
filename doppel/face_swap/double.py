"""The double's head as face replacement uses it: its face landmarks (the tracking basis), the head's mesh
with its albedo and expression blendshapes, and a renderer of the head in a plate camera.

Loaded from a rig folder (`doppel rig`): the landmarks and expressions are `face_basis`'s (an Anny or a FLAME
double), the head is every vertex skinned mostly to the head joint's subtree (FLAME: the neck's). A double whose
landmarks miss face-mesh points (FLAME's embedding has no face outline, which the matte follows) gets them from the
face template, aligned and moved onto its head (`reconstruction.fitting.face_template`); the shot's identity
offsets absorb where they differ from the performer's. A double without a texture gets a face painted from its
landmarks (`face_paint`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doppel.face_swap.face_basis import completed_basis, expression_deltas, face_basis
from doppel.face_swap.face_paint import paint_face
from doppel.face_swap.head_region import head_region
from doppel.face_swap.neural_head import NeuralHead, is_model_dir, load_neural_head
from reconstruction.head_tracking import FaceBasis

log = logging.getLogger(__name__)

HEAD_PX = 512      # the longest side a head is drawn at by default (`FaceDouble.max_px`; a neural double's may be more)


def face_oval_ids() -> np.ndarray:
    """MediaPipe face-mesh indices of the face oval (its outline), in no particular order."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    return np.array(sorted({i for e in FACEMESH_FACE_OVAL for i in e}), np.int64)


@dataclass
class FaceDouble:
    """basis: landmarks for tracking; head_vertices (Vh,) rig vertex ids of the head; head_faces (Fh, 3) into
    head_vertices; head_bind (Vh, 3) metres; head_deltas (E, Vh, 3) metres per expression of basis.names;
    uvs (T, 2), face_uvs (Fh, 3) or None; albedo (Ht, Wt, 3) float sRGB or None; outline: the face outline's
    points (MediaPipe's face oval) and their expression deltas, for the face mask; source: the rig folder;
    neural: the trained neural double that draws the head instead of the textured rig, or None; max_px: the
    longest side the head is drawn at (`render_head`: larger boxes are drawn at this size and resized up; 0 =
    at the plate's resolution; `SwapConfig.head_px`)."""

    basis: FaceBasis
    head_vertices: np.ndarray
    head_faces: np.ndarray
    head_bind: np.ndarray
    head_deltas: np.ndarray
    uvs: np.ndarray | None
    face_uvs: np.ndarray | None
    albedo: np.ndarray | None
    outline: FaceBasis
    source: Path
    neural: NeuralHead | None = None
    max_px: int = HEAD_PX

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
        return self.outline.points(weights)


def face_outline(basis: FaceBasis) -> FaceBasis:
    """The face outline's points (MediaPipe's face oval, ids (O,)) and their expression deltas: the basis's rows
    (a basis without them all has been completed from the face template: `completed_basis`)."""
    oval = face_oval_ids()
    pos = {int(i): r for r, i in enumerate(basis.ids)}
    rows = [pos[int(i)] for i in oval]
    return FaceBasis(oval, basis.neutral[rows], basis.deltas[:, rows], basis.names)


def _complete(basis: FaceBasis, head_bind: np.ndarray, faces: np.ndarray, deltas: np.ndarray,
              source: Path) -> FaceBasis:
    """`completed_basis` on the head, logged (how many points came from the template)."""
    full = completed_basis(basis, head_bind, faces, deltas)
    if len(full.ids) > len(basis.ids):
        log.info("%s: %d face-mesh points the double lacks placed from the face template", source,
                 len(full.ids) - len(basis.ids))
    return full


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
    expressions = expression_deltas(rig)
    basis = face_basis(rig, rig_dir, expressions=expressions)
    neural = load_neural_head(double_dir, rig) if double_dir != rig_dir else None
    verts, faces, face_uvs = head_region(rig)
    deltas = expressions[1][:, verts]
    head_bind = rig.vertices[verts].astype(np.float64)
    basis = _complete(basis, head_bind, faces, deltas, rig_dir)
    tex_path = None if rig.uvs is None else albedo_for_rig(rig, rig_dir, work_dir, size=albedo_size,
                                                           seed=int(rig.metadata.get("seed", 0) or 0))
    albedo, uvs = None, rig.uvs
    if tex_path is not None:
        with Image.open(tex_path) as im:
            albedo = np.asarray(im.convert("RGB"), np.float32) / 255.0
    else:                                        # no texture: a face painted from its landmarks (face_paint.py)
        uvs, face_uvs, albedo = paint_face(basis.ids, basis.neutral, head_bind, faces)
        log.info("%s: no texture; the head's face painted from its landmarks", rig_dir)
    return FaceDouble(basis, verts, faces, head_bind, deltas, uvs, face_uvs, albedo, face_outline(basis), rig_dir,
                      neural, HEAD_PX if neural is None else max(HEAD_PX, neural.trained_px))
