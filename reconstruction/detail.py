"""Detail the body model cannot express (clothing, hair volume) as per-vertex displacements along the normals.

``solve_displacements`` finds d (V,) minimising

    sum_i w_i (d_i - target_i)^2 + lam_smooth |L d|^2 + lam_mag |d|^2

with L the uniform graph Laplacian of the mesh (each row: the vertex minus the mean of its neighbours): a
sparse symmetric positive-definite system solved with scipy. ``target`` is what the observations ask for
(e.g. the non-rigid registration's offsets along the normals; w = 0 where nothing was observed, like holes).
"""

from __future__ import annotations

import numpy as np

__all__ = ["uniform_laplacian", "solve_displacements", "apply_displacements"]


def uniform_laplacian(faces: np.ndarray, num_vertices: int):
    """(V, V) scipy.sparse CSR uniform Laplacian: L = I - D^-1 A (A: vertex adjacency from faces (F, 3))."""
    import scipy.sparse as sp

    f = np.asarray(faces, np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    A = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(num_vertices, num_vertices)).tocsr()
    A.data[:] = 1.0                                    # duplicates (shared edges) count once
    deg = np.asarray(A.sum(1)).ravel()
    Dinv = sp.diags(1.0 / np.maximum(deg, 1.0))
    return (sp.identity(num_vertices, format="csr") - Dinv @ A).tocsr()


def solve_displacements(faces: np.ndarray, num_vertices: int, target: np.ndarray, weights: np.ndarray | None = None,
                        *, lam_smooth: float = 1.0, lam_mag: float = 1e-3) -> np.ndarray:
    """target (V,) metres along the normals, weights (V,) >= 0 (None = 1) -> displacements (V,) metres."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    t = np.asarray(target, np.float64).reshape(-1)
    if t.shape != (num_vertices,):
        raise ValueError(f"target must be ({num_vertices},), got {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("target contains NaN or infinite values")
    w = np.ones(num_vertices) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if w.shape != (num_vertices,) or (w < 0).any():
        raise ValueError(f"weights must be ({num_vertices},) and >= 0")
    if lam_mag <= 0 and not (w > 0).any():
        raise ValueError("no observed vertex (all weights 0) and lam_mag <= 0: the system is singular")
    L = uniform_laplacian(faces, num_vertices)
    M = sp.diags(w) + lam_smooth * (L.T @ L) + lam_mag * sp.identity(num_vertices)
    return np.asarray(spsolve(M.tocsc(), w * t), np.float64)


def apply_displacements(vertices: np.ndarray, faces: np.ndarray, displacements: np.ndarray) -> np.ndarray:
    """vertices (V, 3) + displacements (V,) along the area-weighted vertex normals -> (V, 3)."""
    import trimesh

    n = np.asarray(trimesh.Trimesh(vertices, faces, process=False).vertex_normals)
    return np.asarray(vertices, np.float64) + n * np.asarray(displacements)[:, None]
