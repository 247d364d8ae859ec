"""Joint world matrices -> a `Motion` in BVH's convention (rest rotations identity, offsets in world axes), the
common step of every non-BVH clip reader (glTF, USD, FBX), and the error those readers raise."""

from __future__ import annotations

import numpy as np

from core.errors import DoppelError
from mocap_retarget.bvh import Motion


class ClipError(DoppelError, ValueError):
    """A mocap clip cannot be used; the message names the file and what is wrong."""


def polar_rotations(M: np.ndarray) -> np.ndarray:
    """(..., 3, 3) matrices (rotation times scale) -> the nearest rotations (polar decomposition by SVD)."""
    U, _, Vt = np.linalg.svd(M)
    R = U @ Vt
    bad = np.linalg.det(R) < 0
    if bad.any():
        U[bad, :, -1] *= -1
        R[bad] = U[bad] @ Vt[bad]
    return R


def topological_order(parents: list[int]) -> list[int]:
    """An order of the joints in which every parent comes before its children (parents: -1 = root)."""
    children: dict[int, list[int]] = {}
    for j, p in enumerate(parents):
        children.setdefault(p, []).append(j)
    order: list[int] = []
    stack = list(reversed(children.get(-1, [])))
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children.get(j, [])))
    if len(order) != len(parents):
        raise ClipError("the joint hierarchy has a cycle")
    return order


def motion_from_world(names: list[str], parents: list[int], rest_world: np.ndarray, world: np.ndarray, fps: float,
                      source: str, end_sites: dict[int, list[np.ndarray]] | None = None) -> Motion:
    """A Motion (BVH convention) from world matrices in Doppel's frame (metres, +Y up).

    names, parents (any order; reordered topologically); rest_world (J, 4, 4) rest (bind) world matrices;
    world (F, J, 4, 4) per-frame world matrices (rotation parts may carry scale: it is removed); fps > 0;
    end_sites: joint -> offsets (3,) in world axes at rest. Rest rotations become identity: a joint's BVH-style
    local rotation is G_p^T G_j with G_j = R_j(f) R_j(rest)^T, and offsets are rest world differences.
    """
    J, F = len(names), world.shape[0]
    if F < 1:
        raise ClipError(f"{source}: the clip has no frames")
    if not (np.isfinite(world).all() and np.isfinite(rest_world).all()):
        raise ClipError(f"{source}: non-finite joint transforms")
    if not (np.isfinite(fps) and fps > 0):
        raise ClipError(f"{source}: frame rate must be > 0, got {fps}")
    order = topological_order(parents)
    new_index = {old: i for i, old in enumerate(order)}
    par = np.array([-1 if parents[o] < 0 else new_index[parents[o]] for o in order], dtype=np.int64)
    rest_world, world = rest_world[order], world[:, order]
    G = polar_rotations(world[..., :3, :3]) @ np.swapaxes(polar_rotations(rest_world[:, :3, :3]), -1, -2)[None]
    P, rest_p = world[..., :3, 3], rest_world[:, :3, 3]
    local = G.copy()
    trans = np.empty((F, J, 3))
    offsets = rest_p.copy()
    for j, p in enumerate(par):
        if p < 0:
            trans[:, j] = P[:, j]
            continue
        local[:, j] = np.swapaxes(G[:, p], -1, -2) @ G[:, j]
        trans[:, j] = np.einsum("fba,fb->fa", G[:, p], P[:, j] - P[:, p])
        offsets[j] = rest_p[j] - rest_p[p]
    rot = ["Zrotation", "Xrotation", "Yrotation"]
    channels = [(["Xposition", "Yposition", "Zposition"] + rot) if p < 0 else list(rot) for p in par]
    sites = {new_index[j]: [np.asarray(o, dtype=np.float64) for o in v] for j, v in (end_sites or {}).items()}
    return Motion([names[o] for o in order], par, offsets, channels, local, trans, 1.0 / fps, sites,
                  scale=1.0, units="m", source=source)


def unique_names(names: list[str], paths: list[str]) -> list[str]:
    """Joint names, replaced by their full paths where a name is not unique."""
    dup = {n for n in names if names.count(n) > 1}
    return [p if n in dup else n for n, p in zip(names, paths, strict=True)]
