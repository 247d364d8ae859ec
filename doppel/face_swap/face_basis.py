"""The double's face as the tracker sees it: MediaPipe face-mesh landmarks on the rig and the expressions that
move them, for each kind of double.

- **Anny** rigs: the landmarks are placed by the calibrated landmark regressor (each a convex combination of
  rig vertices), the expressions are the rig's ARKit blendshapes in `EXPRESSIONS`.
- **SMPL-X** rigs: FLAME's MediaPipe embedding carried onto SMPL-X's head (`reconstruction.fitting.smplx_face`:
  ``smplx_mediapipe_embedding.npz`` in the rig folder, or made from the downloads in $DOPPEL_MODELS_DIR); without
  it (and for any rig without known face landmarks that has eye joints) MediaPipe's points 0-467 from the face
  template, placed by the eyeball centres and fitted to the head's surface (`face_template.place_by_eyes`;
  uncalibrated). The expressions as FLAME's below (SMPL-X's are FLAME's components, its jaw a joint too).
- **FLAME** rigs (`doppel rig --model flame`, or `--fit` of a FLAME fit): the landmarks are FLAME's own MediaPipe
  embedding (105 points on FLAME triangles; ``mediapipe_landmark_embedding.npz`` in the rig folder or in
  $DOPPEL_MODELS_DIR/flame/, as the fitter finds it), the expressions are FLAME's leading expression components,
  each split into two one-sided shapes (``expression_000+`` / ``expression_000-``: the tracker's weights are in
  [0, 1]; weight 1 is a coefficient of +-`COMPONENT_SCALE`), and the jaw, a joint in FLAME, becomes a shape
  `JAW_JOINT_SHAPE`: the rig skinned with the jaw turned by `JAW_OPEN_RAD`, less the bind mesh (linear in the
  weight; the arc and its chord differ by ~2.5 mm at half-open for a 10 cm jaw). `rig_controls` turns the
  tracker's weights back into the rig's own controls (component coefficients, the jaw's angle).

Every landmark is a weighted sum of rig vertices, so one set of expression deltas over the rig's vertices moves
the head and its landmarks alike.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from doppel.face_swap.head_region import head_faces
from reconstruction.head_tracking import FaceBasis

# The blendshapes the tracker solves for: the ones MediaPipe's landmarks can see (jaw, lips, lids, brows).
EXPRESSIONS = ("jawOpen", "mouthClose", "mouthSmileLeft", "mouthSmileRight", "mouthFunnel", "mouthPucker",
               "mouthStretchLeft", "mouthStretchRight", "mouthLowerDownLeft", "mouthLowerDownRight",
               "mouthUpperUpLeft", "mouthUpperUpRight", "eyeBlinkLeft", "eyeBlinkRight", "browInnerUp",
               "browDownLeft", "browDownRight")
IRIS_IDS = range(468, 478)   # irises follow the gaze, not the head: left out of the tracking basis
COMPONENTS = 10              # a FLAME double's leading expression components the tracker solves for
COMPONENT_SCALE = 3.0        # weight 1 of a one-sided component shape = a coefficient of 3 (FLAME's are ~N(0, 1))
JAW_OPEN_RAD = 0.45          # weight 1 of JAW_JOINT_SHAPE: the jaw joint turned 26 degrees (wide open)
JAW_JOINT_SHAPE = "jawOpen_joint"   # the shape made from a jaw joint (a rig without a jawOpen blendshape)
_COMPONENT = re.compile(r"expression_\d+$")
MIN_HEAD_TRIANGLES = 100    # a head with fewer cannot carry the face template's points
EYE_JOINTS = (("left_eye_smplhf", "right_eye_smplhf"), ("left_eye", "right_eye"), ("eye.L", "eye.R"))


def face_basis(rig, rig_dir: str | Path | None = None, regressor=None,
               expressions: tuple[tuple[str, ...], np.ndarray] | None = None) -> FaceBasis:
    """The rig's face landmarks (MediaPipe ids, irises excluded) and their expression deltas (see the module).
    rig_dir: the rig's folder (where a FLAME rig's embedding may be); expressions: `expression_deltas(rig)` when
    the caller has it. ValueError (one line) when no face landmarks are known for the rig."""
    ids, index, weight = landmark_weights(rig, rig_dir, regressor)
    names, deltas = expressions if expressions is not None else expression_deltas(rig)
    neutral = np.einsum("lk,lkc->lc", weight, np.asarray(rig.vertices, np.float64)[index])
    moved = np.einsum("lk,elkc->elc", weight, deltas[:, index]) if len(names) else np.zeros((0, len(ids), 3))
    return FaceBasis(ids, neutral, moved, names)


def completed_basis(basis: FaceBasis, vertices: np.ndarray, faces: np.ndarray, deltas: np.ndarray) -> FaceBasis:
    """``basis`` with the face-mesh points it lacks (irises excepted) placed from the face template onto the mesh
    (vertices (V, 3), faces (F, 3), expression deltas (E, V, 3) of basis.names), rows sorted by MediaPipe id."""
    from reconstruction.fitting.face_template import place_missing_points

    missing = np.setdiff1d(np.arange(IRIS_IDS.start), basis.ids)
    if not len(missing):
        return basis
    on = place_missing_points(basis.ids, basis.neutral, missing, vertices, faces)
    ids = np.r_[basis.ids, missing]
    order = np.argsort(ids, kind="stable")
    neutral = np.r_[basis.neutral, on.on(vertices, faces)][order]
    moved = np.concatenate([basis.deltas, on.on(deltas, faces)], axis=1)[:, order]
    return FaceBasis(ids[order], neutral, moved, basis.names)


def landmark_weights(rig, rig_dir: str | Path | None = None, regressor=None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids (L,) MediaPipe face-mesh ids without the irises, index (L, K) rig vertices, weight (L, K)): each
    landmark as a weighted sum of rig vertices. Anny's topology: the calibrated regressor; a FLAME rig: FLAME's
    MediaPipe embedding (barycentric on its triangles)."""
    from reconstruction.fitting.landmark_regressor import DEFAULT_PATH, SET_OFFSETS, LandmarkRegressor

    off = SET_OFFSETS["face"]
    model = rig_model(rig)
    if model == "smplx":
        from reconstruction.fitting.smplx_face import find_smplx_face_embedding

        face = find_smplx_face_embedding(rig.num_vertices, [rig_dir] if rig_dir is not None else [])
        if face is not None:
            keep = ~np.isin(face["landmark_indices"], list(IRIS_IDS))
            return (np.asarray(face["landmark_indices"], np.int64)[keep], np.asarray(face["vertex_index"])[keep],
                    np.asarray(face["bary"], np.float64)[keep])
    reg = regressor or LandmarkRegressor.load(DEFAULT_PATH)
    if reg.num_vertices == rig.num_vertices:
        ids = np.array([int(i) - off for i in reg.ids if off <= int(i) < off + 478 and int(i) - off not in IRIS_IDS])
        rows = reg.rows(ids + off)
        return ids, np.asarray(reg.index[rows], np.int64), np.asarray(reg.weight[rows], np.float64)
    if model != "flame":
        return eye_placed_landmarks(rig, model)
    spec = flame_embedding(rig, rig_dir)
    ids = np.asarray(spec.ids, np.int64) - off
    keep = ~np.isin(ids, list(IRIS_IDS))
    return ids[keep], np.asarray(spec.reg_index, np.int64)[keep], np.asarray(spec.reg_weight, np.float64)[keep]


def eye_placed_landmarks(rig, model: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, index (L, 3), weight (L, 3)) of MediaPipe's points 0-467 placed on a head that has none (SMPL-X) by
    its eye joints (`face_template.place_by_eyes`), on the triangles skinned mostly to its head. ValueError when
    the rig has no eye joints."""
    from reconstruction.fitting.face_template import place_by_eyes

    pair = next(((a, b) for a, b in EYE_JOINTS if a in rig.joint_names and b in rig.joint_names), None)
    if pair is None:
        raise ValueError(f"no face landmarks known for this double ({model or 'unknown model'}, {rig.num_vertices} "
                         f"vertices, no eye joints): face replacement takes Anny, FLAME and SMPL-X doubles")
    joints = np.asarray(rig.bind_matrices, np.float64)[:, :3, 3]
    faces = np.asarray(rig.faces, np.int64)
    head = faces[head_faces(rig)]
    if len(head) < MIN_HEAD_TRIANGLES:
        raise ValueError(f"the double's head has {len(head)} triangles skinned to it: too few to place face "
                         "landmarks on (no face region to replace)")
    on = place_by_eyes(rig.vertices, head, joints[rig.joint_index(pair[0])], joints[rig.joint_index(pair[1])])
    return np.arange(len(on.triangle)), head[on.triangle], on.bary


def rig_model(rig) -> str | None:
    """The body model the rig was built from ('anny', 'smplx', 'flame'), as its metadata records it (a saved
    rig's: `doppel rig`'s parameters; a rig just built: its source)."""
    meta = rig.metadata or {}
    src = meta.get("source")
    return meta.get("model") or (src.get("model") if isinstance(src, dict) else None)


def flame_embedding(rig, rig_dir: str | Path | None):
    """FLAME's MediaPipe embedding for a FLAME rig (`reconstruction.fitting.landmarks.flame_face_spec`), looked
    for in rig_dir, then $DOPPEL_MODELS_DIR/flame/. FileNotFoundError saying where and how to get it."""
    from reconstruction.fitting.landmarks import FLAME_EMBEDDING_FILE, flame_embedding_places, flame_face_spec

    places = flame_embedding_places([rig_dir] if rig_dir is not None else [])
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        where = " or ".join(str(p.parent) for p in places) or "the rig folder or $DOPPEL_MODELS_DIR/flame/"
        raise FileNotFoundError(f"a FLAME double needs FLAME's MediaPipe landmark embedding: put "
                                f"{FLAME_EMBEDDING_FILE} (https://flame.is.tue.mpg.de, Downloads) in {where}")
    return flame_face_spec(SimpleNamespace(faces=rig.faces), found)


def expression_deltas(rig) -> tuple[tuple[str, ...], np.ndarray]:
    """(names (E,), deltas (E, V, 3) float64 metres per unit weight over every rig vertex) of the expressions the
    tracker solves for: the rig's `EXPRESSIONS`, else its first `COMPONENTS` signed components split in two
    one-sided shapes; plus `JAW_JOINT_SHAPE` from the jaw joint when the rig has a 'jaw' joint and no jawOpen."""
    names: list[str] = []
    deltas: list[np.ndarray] = []
    shapes = list(rig.blendshape_names)
    for n in EXPRESSIONS:
        if n in shapes:
            names.append(n)
            deltas.append(np.asarray(rig.blendshape_deltas[shapes.index(n)], np.float64))
    if not names:
        for n in [s for s in shapes if _COMPONENT.match(s)][:COMPONENTS]:
            d = np.asarray(rig.blendshape_deltas[shapes.index(n)], np.float64) * COMPONENT_SCALE
            names += [f"{n}+", f"{n}-"]
            deltas += [d, -d]
    if "jawOpen" not in names and "jaw" in rig.joint_names:
        names.insert(0, JAW_JOINT_SHAPE)
        deltas.insert(0, jaw_open_delta(rig))
    if not names:
        return (), np.zeros((0, rig.num_vertices, 3))
    return tuple(names), np.stack(deltas)


def jaw_open_delta(rig, angle: float = JAW_OPEN_RAD) -> np.ndarray:
    """(V, 3) float64: the rig skinned with its 'jaw' joint turned by ``angle`` radians about the left-right axis
    (+X), opening (the jaw's vertices go down on average), less the rig at rest."""
    return _jaw_turns(rig, angle)[1]


def jaw_open_axis(rig) -> tuple[int, np.ndarray]:
    """(the 'jaw' joint's index, (3,) unit axis in its bind frame): a local rotation of ``angle * axis`` opens the
    jaw by ``angle`` radians (the sign `jaw_open_delta` takes). KeyError when the rig has no 'jaw' joint."""
    j, _, axis = _jaw_turns(rig, JAW_OPEN_RAD)
    return j, axis


def _jaw_turns(rig, angle: float) -> tuple[int, np.ndarray, np.ndarray]:
    """(jaw joint, (V, 3) opening delta at ``angle``, signed local axis): of the two turns about the left-right
    axis, the one whose moving vertices go down."""
    j = rig.joint_index("jaw")
    axis = np.asarray(rig.bind_matrices, np.float64)[j, :3, :3].T @ np.array([1.0, 0.0, 0.0])
    rest = rig.pose(np.zeros((rig.num_joints, 3), np.float32))[0].numpy().astype(np.float64)
    best = None
    for sign in (1.0, -1.0):
        rot = np.zeros((rig.num_joints, 3), np.float32)
        rot[j] = sign * angle * axis
        d = rig.pose(rot)[0].numpy().astype(np.float64) - rest
        size = np.linalg.norm(d, axis=1)
        down = float((d[:, 1] * size).sum())          # the moving vertices' mean vertical move, weighted by size
        if best is None or down < best[0]:
            best = (down, d, sign * axis)
    return j, best[1], best[2]


def rig_controls(names, weights: np.ndarray) -> dict[str, np.ndarray]:
    """The tracker's expression weights (F, E) of shapes ``names`` (E,) as the rig's own controls:
    ``rig_blendshape_names`` (N,) and ``rig_blendshape_weights`` (F, N) (a blendshape solved as itself: its weight;
    a component split in two: COMPONENT_SCALE x (w+ - w-), its signed coefficient), and ``jaw_rad`` (F,), the jaw
    joint's opening angle in radians, when the jaw was solved as `JAW_JOINT_SHAPE`."""
    names = [str(n) for n in names]
    w = np.asarray(weights, np.float64).reshape(-1, len(names))
    out_names, cols = [], []
    for i, n in enumerate(names):
        if n == JAW_JOINT_SHAPE or n.endswith("-"):
            continue
        if n.endswith("+") and n[:-1] + "-" in names:
            out_names.append(n[:-1])
            cols.append(COMPONENT_SCALE * (w[:, i] - w[:, names.index(n[:-1] + "-")]))
        else:
            out_names.append(n)
            cols.append(w[:, i])
    out = {"rig_blendshape_names": np.array(out_names, dtype=np.str_),
           "rig_blendshape_weights": (np.stack(cols, 1) if cols else np.zeros((len(w), 0))).astype(np.float32)}
    if JAW_JOINT_SHAPE in names:
        out["jaw_rad"] = (JAW_OPEN_RAD * w[:, names.index(JAW_JOINT_SHAPE)]).astype(np.float32)
    return out
