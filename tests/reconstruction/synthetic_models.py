"""Synthetic SMPL-X-format and FLAME-format model files (valid keys and shapes, small random values), so
the tests need no licensed file. The layouts follow the real files: v_template (V, 3), f (F, 3),
shapedirs (V, 3, S), posedirs (V, 3, (J-1)*9), J_regressor (J, V), weights (V, J), kintree_table (2, J)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

# SMPL-X's kinematic tree (55 joints: body 22, jaw, eyes, 2 x 15 finger joints).
SMPLX_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
                 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
                 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]
FLAME_PARENTS = [-1, 0, 1, 1, 1]


def _grid_mesh(rng, n_side: int, height: float, width: float):
    """A closed-ish sheet of vertices on a cylinder with triangle faces (enough for skinning checks)."""
    ys = np.linspace(0.0, height, n_side)
    angles = np.linspace(0, 2 * np.pi, n_side, endpoint=False)
    v = np.array([[width * np.cos(a), y, width * np.sin(a)] for y in ys for a in angles])
    v += rng.normal(0, 0.002, v.shape)
    faces = []
    for i in range(n_side - 1):
        for j in range(n_side):
            a, b = i * n_side + j, i * n_side + (j + 1) % n_side
            c, d = a + n_side, b + n_side
            faces += [[a, b, d], [a, d, c]]
    return v, np.array(faces, dtype=np.int64)


def synthetic_arrays(parents, n_side: int = 16, n_shape: int = 20, seed: int = 0, height: float = 1.7,
                     influences: int = 4) -> dict[str, np.ndarray]:
    """Arrays of an SMPL-family model: random but valid (weights sparse, rows summing to 1)."""
    rng = np.random.default_rng(seed)
    J = len(parents)
    v, f = _grid_mesh(rng, n_side, height, 0.15)
    V = len(v)
    # each joint sits near a random vertex, so that J_regressor (a convex combination) is plausible
    J_reg = np.zeros((J, V))
    for j in range(J):
        idx = rng.choice(V, size=6, replace=False)
        w = rng.uniform(0.1, 1.0, 6)
        J_reg[j, idx] = w / w.sum()
    weights = np.zeros((V, J))
    for i in range(V):
        idx = rng.choice(J, size=influences, replace=False)
        w = rng.uniform(0.05, 1.0, influences)
        weights[i, idx] = w / w.sum()
    kintree = np.stack([np.array([2**32 - 1] + list(parents[1:]), dtype=np.int64), np.arange(J)])
    return {
        "v_template": v,
        "f": f.astype(np.uint32),
        "shapedirs": rng.normal(0, 0.01, (V, 3, n_shape)),
        "posedirs": rng.normal(0, 0.005, (V, 3, (J - 1) * 9)),
        "J_regressor": J_reg,
        "weights": weights,
        "kintree_table": kintree,
    }


def write_smplx_npz(path: Path, seed: int = 0, **kw) -> Path:
    """An SMPL-X-format .npz (with the extra keys smplx.SMPLX reads: hand PCA, landmark embedding)."""
    rng = np.random.default_rng(seed + 1)
    arr = synthetic_arrays(SMPLX_PARENTS, seed=seed, **kw)
    F = len(arr["f"])
    arr.update({
        "hands_componentsl": np.eye(45), "hands_componentsr": np.eye(45),
        "hands_meanl": np.zeros(45), "hands_meanr": np.zeros(45),
        "lmk_faces_idx": rng.integers(0, F, 51).astype(np.int64),
        "lmk_bary_coords": np.full((51, 3), 1 / 3),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arr)
    return path


def write_flame_pkl(path: Path, seed: int = 0, **kw) -> Path:
    """A FLAME-format .pkl (protocol 2, plain numpy values, as a converted chumpy-free FLAME file), plus the
    landmark embedding smplx.FLAME reads from the same folder."""
    rng = np.random.default_rng(seed + 2)
    arr = synthetic_arrays(FLAME_PARENTS, seed=seed, height=0.25, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(arr, fh, protocol=2)
    F = len(arr["f"])
    with open(path.parent / "flame_static_embedding.pkl", "wb") as fh:
        pickle.dump({"lmk_face_idx": rng.integers(0, F, 51), "lmk_b_coords": np.full((51, 3), 1 / 3)}, fh, protocol=2)
    return path
