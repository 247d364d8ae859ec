"""Small batched rotation helpers (numpy, float64). Conversions go through scipy's Rotation."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

_EPS = 1e-12


def normalize(v: np.ndarray) -> np.ndarray:
    """v (..., 3) -> unit vectors (..., 3); zero vectors stay zero."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, _EPS)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction a to direction b: a, b (..., 3) -> (..., 3, 3).

    Antiparallel inputs rotate by pi about an axis perpendicular to a; zero vectors give identity.
    """
    a = normalize(np.asarray(a, dtype=np.float64))
    b = normalize(np.asarray(b, dtype=np.float64))
    shape = np.broadcast_shapes(a.shape, b.shape)
    a = np.broadcast_to(a, shape).reshape(-1, 3)
    b = np.broadcast_to(b, shape).reshape(-1, 3)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1)
    c = np.einsum("ni,ni->n", a, b)
    angle = np.arctan2(s, c)
    axis = axis / np.maximum(s, _EPS)[:, None]
    anti = (s < 1e-9) & (c < 0)
    if anti.any():
        aa = a[anti]
        helper = np.where(np.abs(aa[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
        axis[anti] = normalize(np.cross(aa, helper))
    rotvec = axis * angle[:, None]
    rotvec[(s < 1e-9) & ~anti] = 0.0
    return Rotation.from_rotvec(rotvec).as_matrix().reshape(*shape[:-1], 3, 3)


def frame_from(up: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Orthonormal frame (..., 3, 3) whose columns are (left, up, forward) with forward = left x up;
    ``up`` is kept exactly, ``left`` is made perpendicular to it."""
    u = normalize(up)
    l_ = normalize(left - np.sum(left * u, axis=-1, keepdims=True) * u)
    f = np.cross(l_, u)
    return np.stack([l_, u, f], axis=-1)


def snap_to_axis(v: np.ndarray) -> np.ndarray:
    """(3,) -> the signed coordinate axis nearest to v, as a (3,) unit vector."""
    v = np.asarray(v, dtype=np.float64)
    i = int(np.argmax(np.abs(v)))
    out = np.zeros(3)
    out[i] = np.sign(v[i]) or 1.0
    return out


def project_to_rotation(m: np.ndarray) -> np.ndarray:
    """Nearest rotation matrices (..., 3, 3) to m (SVD)."""
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[..., :, -1] *= d[..., None]
    return u @ vt
