"""MediaPipe face-mesh landmarks on SMPL-X through FLAME's MediaPipe embedding.

SMPL-X's head is FLAME's mesh: the SMPL-X download's correspondence file ``SMPL-X__FLAME_vertex_ids.npy`` (5023
SMPL-X vertex ids, one per FLAME vertex) carries FLAME's embedding (105 MediaPipe points, each on a FLAME
triangle with barycentric coordinates) onto SMPL-X: triangle k of FLAME is ``ids[flame_faces[k]]`` on SMPL-X.
FLAME's triangle list comes from a FLAME model file, so the three files are needed together:

    $DOPPEL_MODELS_DIR/smplx/SMPL-X__FLAME_vertex_ids.npy      (or beside the SMPL-X model file)
    $DOPPEL_MODELS_DIR/flame/FLAME_NEUTRAL.pkl                 (any FLAME model: only its triangles are read)
    $DOPPEL_MODELS_DIR/flame/mediapipe_landmark_embedding.npz

The result is kept as one small file, ``smplx_mediapipe_embedding.npz`` (``vertex_index`` (L, 3) SMPL-X vertices,
``bary`` (L, 3), ``landmark_indices`` (L,) MediaPipe ids): `doppel rig --model smplx` writes it into the rig
folder, so face replacement with the rig needs none of the licensed files.
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from reconstruction.body_models.base import models_dir
from reconstruction.fitting.landmarks import LandmarkSpec

log = logging.getLogger(__name__)

SMPLX_FLAME_IDS_FILE = "SMPL-X__FLAME_vertex_ids.npy"
SMPLX_FACE_EMBEDDING_FILE = "smplx_mediapipe_embedding.npz"

__all__ = ["SMPLX_FLAME_IDS_FILE", "SMPLX_FACE_EMBEDDING_FILE", "smplx_face_embedding", "find_smplx_face_embedding",
           "write_smplx_face_embedding", "smplx_face_spec"]


def smplx_face_embedding(num_vertices: int, flame_spec: LandmarkSpec, vertex_ids: np.ndarray
                         ) -> dict[str, np.ndarray]:
    """FLAME's MediaPipe embedding on SMPL-X: vertex_index (L, 3) SMPL-X vertices, bary (L, 3) summing to 1,
    landmark_indices (L,) MediaPipe ids, sorted. flame_spec: `flame_face_spec` of a FLAME model (its triangles'
    FLAME vertices and barycentric weights); vertex_ids (Vf,): the SMPL-X vertex of each FLAME vertex.
    ValueError when the files do not belong together."""
    from reconstruction.fitting.landmark_regressor import SET_OFFSETS

    ids = np.asarray(vertex_ids, np.int64).reshape(-1)
    if len(flame_spec) and flame_spec.reg_index.max() >= len(ids):
        raise ValueError(f"{SMPLX_FLAME_IDS_FILE}: {len(ids)} ids, but the FLAME embedding uses FLAME vertex "
                         f"{flame_spec.reg_index.max()} (another FLAME version?)")
    if ids.min() < 0 or ids.max() >= num_vertices:
        raise ValueError(f"{SMPLX_FLAME_IDS_FILE}: ids outside [0, {num_vertices}): not for this SMPL-X model")
    return {"vertex_index": ids[flame_spec.reg_index], "bary": np.asarray(flame_spec.reg_weight, np.float64),
            "landmark_indices": np.asarray(flame_spec.ids, np.int64) - SET_OFFSETS["face"]}


def _derive(model_file: Path | None, num_vertices: int) -> dict[str, np.ndarray] | None:
    """The embedding made from the three downloads (module doc), or None when one is missing."""
    from reconstruction.body_models import FLAMEModel, ModelFileError
    from reconstruction.fitting.landmarks import flame_embedding_places, flame_face_spec

    folders = [f for f in (model_file.parent if model_file is not None else None, models_dir("smplx")) if f]
    ids_file = next((f / SMPLX_FLAME_IDS_FILE for f in folders if (f / SMPLX_FLAME_IDS_FILE).is_file()), None)
    emb_file = next((p for p in flame_embedding_places([]) if p.is_file()), None)
    if ids_file is None or emb_file is None:
        return None
    try:
        flame = FLAMEModel(None)
    except ModelFileError as e:        # the correspondence and the embedding are there: say why they go unused
        log.warning("SMPL-X face landmarks through FLAME's embedding need a FLAME model for its triangles: %s", e)
        return None
    try:
        vertex_ids = np.load(ids_file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{ids_file}: not a readable .npy ({type(e).__name__}: {e})") from e
    return smplx_face_embedding(num_vertices, flame_face_spec(flame, emb_file), vertex_ids)


def find_smplx_face_embedding(num_vertices: int, folders=(), model_file: str | os.PathLike | None = None
                              ) -> dict[str, np.ndarray] | None:
    """The SMPL-X face embedding (see `smplx_face_embedding`): ``smplx_mediapipe_embedding.npz`` in ``folders``
    (a rig folder) or beside the model file, else made from the downloads (module doc); None when neither."""
    model_file = Path(model_file) if model_file is not None else None
    places = [Path(f) for f in folders] + ([model_file.parent] if model_file is not None else [])
    for p in places:
        f = p / SMPLX_FACE_EMBEDDING_FILE
        if f.is_file():
            return _read_embedding(f, num_vertices)
    return _derive(model_file, num_vertices)


def _read_embedding(f: Path, num_vertices: int) -> dict[str, np.ndarray]:
    """A ``smplx_mediapipe_embedding.npz``, checked; ValueError (one line naming the file) when it is damaged."""
    need = ("vertex_index", "bary", "landmark_indices")
    try:
        with np.load(f, allow_pickle=False) as z:
            d = {k: np.asarray(z[k]) for k in need}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"{f}: not a readable SMPL-X face embedding with {list(need)} ({type(e).__name__})") from e
    L = len(d["landmark_indices"])
    if d["vertex_index"].shape != (L, 3) or d["bary"].shape != (L, 3) or not np.isfinite(d["bary"]).all():
        raise ValueError(f"{f}: vertex_index {d['vertex_index'].shape} and bary {d['bary'].shape} must be (L, 3), "
                         f"finite, for L = {L} landmarks")
    if L and (d["vertex_index"].min() < 0 or d["vertex_index"].max() >= num_vertices):
        raise ValueError(f"{f}: vertex ids beyond the model's {num_vertices} vertices")
    return d


def write_smplx_face_embedding(out_dir: str | os.PathLike, embedding: dict[str, np.ndarray]) -> Path:
    """OUT_DIR/smplx_mediapipe_embedding.npz; returns its path."""
    out = Path(out_dir) / SMPLX_FACE_EMBEDDING_FILE
    np.savez(out, **embedding)
    return out


def smplx_face_spec(embedding: dict[str, np.ndarray]) -> LandmarkSpec:
    """The face-mesh landmarks of the embedding as a LandmarkSpec (ids: landmark_regressor.py's 1000 + i)."""
    from reconstruction.fitting.landmark_regressor import SET_OFFSETS

    mp = np.asarray(embedding["landmark_indices"], np.int64)
    L = len(mp)
    return LandmarkSpec(ids=SET_OFFSETS["face"] + mp, joint_index=np.full(L, -1, np.int64),
                        vertex_index=np.full(L, -1, np.int64), names=[f"face {int(i)}" for i in mp],
                        reg_index=np.asarray(embedding["vertex_index"], np.int64),
                        reg_weight=np.asarray(embedding["bary"], np.float64))
