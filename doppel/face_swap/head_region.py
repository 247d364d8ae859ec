"""The head of a rig: the vertices skinned mostly to the head joint's subtree (Anny, SMPL-X: 'head'; FLAME,
whose whole mesh is a head and neck: 'neck')."""

from __future__ import annotations

import numpy as np

HEAD_JOINTS = ("head", "neck")   # the joint whose subtree is the head: the first the rig has


def _subtree(parents: np.ndarray, root: int) -> np.ndarray:
    keep = np.zeros(len(parents), bool)
    keep[root] = True
    for j in range(len(parents)):
        if parents[j] >= 0 and keep[parents[j]]:
            keep[j] = True
    return keep


def subtree_weight(rig, joint: str) -> np.ndarray:
    """(V,) each vertex's skin weight on ``joint`` and the joints below it."""
    sub = _subtree(rig.parents, rig.joint_index(joint))
    return (rig.skin_weights * sub[rig.skin_indices]).sum(1)


def _head_mask(rig) -> np.ndarray:
    """(V,) bool: vertices whose skin weight on the head joint's subtree (`HEAD_JOINTS`) is over 0.5."""
    joint = next((n for n in HEAD_JOINTS if n in rig.joint_names), None)
    if joint is None:
        raise ValueError(f"the double's rig has no head joint ({' or '.join(HEAD_JOINTS)}): it has no face region "
                         "to replace")
    return subtree_weight(rig, joint) > 0.5


def head_region(rig) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(vertex ids, faces re-indexed, their face_uvs or None) of the head: vertices whose skin weight on the
    head joint's subtree (`HEAD_JOINTS`) is over 0.5."""
    inside = _head_mask(rig)
    keep = head_faces(rig, inside)
    verts = np.flatnonzero(inside)
    remap = np.full(len(rig.vertices), -1, np.int64)
    remap[verts] = np.arange(len(verts))
    return verts, remap[rig.faces[keep]], None if rig.face_uvs is None else np.asarray(rig.face_uvs)[keep]


def head_faces(rig, inside: np.ndarray | None = None) -> np.ndarray:
    """(F,) bool: the rig's triangles whose corners are all in the head (``inside``, (V,) bool, when known)."""
    inside = _head_mask(rig) if inside is None else inside
    return inside[np.asarray(rig.faces)].all(1)
