"""Posing a `Rig`: the tensors posing needs (`PosingState`, one per device and dtype), forward kinematics,
and the skinning kernels (LBS through a sparse product or the fused numba kernel, DQS). See `rigging.rig` for
the pose convention.

Backends of LBS: "torch" (sparse products; differentiable, any device: the reference path), "numba" (the
fused CPU kernel of `rigging.lbs_kernel`, no autograd; tested against "torch"), "auto" (numba on the CPU when
it is installed and no gradient is needed, else torch).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

import rigging.lbs_kernel as lbs_kernel
from reconstruction.body_models.base import topological_levels

if TYPE_CHECKING:
    from rigging.rig import Rig

SkinningMethod = Literal["lbs", "dqs"]
LbsBackend = Literal["auto", "numba", "torch"]
LBS_BACKENDS = ("auto", "numba", "torch")


@dataclass(eq=False)
class PosingState:
    """A rig's arrays as tensors on one device and dtype, laid out for posing (built by `posing_state`).

    bind_rot (J, 3, 3), bind_pos (J, 3): bind matrices; verts (V, 3) bind vertices; bs_joints (N, J, 3) or None.
    skin_idx (V, K) long, skin_w (V, K); skin_sparse (V, J) CSR weights; skin_vh (V, J * 4) CSR, row v =
    w_vj [vertex_v; 1]; skin_moved (V_moved, J) CSR weights of the moved vertices.
    levels: joints per depth; level_pairs: per level > 0 (joint indices, their parents' positions in the
    previous level); parents_t (J,) long (roots: 0); inverse_order (J,) long: level order -> joint order.
    dq_pairs (2, P) long: (first influence, other influence) pairs; dq_slot_pair (V, K) long, -1 = none.
    moved_rows (V_moved,) long: vertices that blendshapes or correctives move; bs_T (V_moved * 3, N) and
    corr_T (V_moved * 3, P * 9) or None: their deltas, rows [vertex, axis]; corr_joints (P,) long or None.
    fused: the numba kernel's numpy arrays per dtype, built on first use.
    """

    bind_rot: torch.Tensor
    bind_pos: torch.Tensor
    verts: torch.Tensor
    bs_joints: torch.Tensor | None
    skin_idx: torch.Tensor
    skin_w: torch.Tensor
    skin_sparse: torch.Tensor
    skin_vh: torch.Tensor
    skin_moved: torch.Tensor
    levels: list[torch.Tensor]
    level_pairs: list[tuple[torch.Tensor, torch.Tensor]]
    parents_t: torch.Tensor
    inverse_order: torch.Tensor
    dq_pairs: torch.Tensor
    dq_slot_pair: torch.Tensor
    moved_rows: torch.Tensor
    bs_T: torch.Tensor
    corr_T: torch.Tensor | None = None
    corr_joints: torch.Tensor | None = None
    fused: dict[torch.dtype, tuple[np.ndarray, ...]] = field(default_factory=dict)


def posing_state(rig: Rig, device: torch.device, dtype: torch.dtype) -> PosingState:
    """The tensors of `rig` laid out for posing on ``device`` in ``dtype`` (see PosingState)."""

    def T(x, dt=dtype):
        return torch.as_tensor(np.ascontiguousarray(x), device=device, dtype=dt)

    levels = topological_levels(rig.parents)
    order = np.concatenate(levels)
    pos_in_level = {}
    for lv in levels:
        for i, j in enumerate(lv):
            pos_in_level[int(j)] = i
    level_pairs = [(T(lv, torch.long), T([pos_in_level[int(rig.parents[j])] for j in lv], torch.long))
                   for lv in levels[1:]]
    V, J = rig.num_vertices, rig.num_joints
    idx, w = rig.skin_indices, rig.skin_weights.astype(np.float64)
    rows = np.repeat(np.arange(V), idx.shape[1])
    keep = w.reshape(-1) > 0
    dense = torch.zeros(V, J, dtype=dtype)
    dense.index_put_((torch.as_tensor(rows[keep]), torch.as_tensor(idx.reshape(-1)[keep])),
                     torch.as_tensor(w.reshape(-1)[keep], dtype=dtype), accumulate=True)
    tens: dict[str, Any] = {
        "bind_rot": T(rig.bind_matrices[:, :3, :3]),
        "bind_pos": T(rig.bind_matrices[:, :3, 3]),
        "verts": T(rig.vertices),
        "bs_joints": None if rig.blendshape_joint_deltas is None else T(rig.blendshape_joint_deltas),
        "skin_idx": T(rig.skin_indices, torch.long),
        "skin_w": T(rig.skin_weights),
        "skin_sparse": _to_csr(dense).to(device),
        "levels": [T(lv, torch.long) for lv in levels],
        "level_pairs": level_pairs,
        "parents_t": T(np.maximum(rig.parents, 0), torch.long),
        "inverse_order": T(np.argsort(order), torch.long),
    }
    used = w > 0
    ref = np.broadcast_to(idx[:, :1], idx.shape)[used]
    other = idx[used]
    pairs = np.unique(np.stack([ref, other], 1)[ref != other], axis=0) if used.any() else np.zeros((0, 2))
    tens["dq_pairs"] = T(pairs.T.reshape(2, -1), torch.long)
    slot_pair = np.full(idx.shape, -1, dtype=np.int64)
    if len(pairs):
        lookup = {(int(a), int(b)): i for i, (a, b) in enumerate(pairs)}
        for (vtx, k) in zip(*np.nonzero(used & (idx != idx[:, :1])), strict=True):
            slot_pair[vtx, k] = lookup[(int(idx[vtx, 0]), int(idx[vtx, k]))]
    tens["dq_slot_pair"] = T(slot_pair, torch.long)
    if rig.corrective_joints is not None:
        tens["corr_joints"] = T(rig.corrective_joints, torch.long)
    # Vertices moved by blendshapes or correctives, and their deltas transposed, (V_moved * 3, N), rows
    # [vertex, axis]; the skinning matrices of _lbs (see there).
    deltas = [rig.blendshape_deltas] + ([rig.corrective_deltas] if rig.corrective_joints is not None else [])
    moved = np.unique(np.concatenate([_moved_rows(d) for d in deltas]))
    tens["moved_rows"] = T(moved, torch.long)
    tens["bs_T"] = T(_deltas_T(rig.blendshape_deltas, moved))
    if rig.corrective_joints is not None:
        tens["corr_T"] = T(_deltas_T(rig.corrective_deltas, moved))
    tens["skin_vh"] = _to_csr(_vertex_skinning_matrix(dense, rig.vertices)).to(device)
    tens["skin_moved"] = _to_csr(dense[torch.as_tensor(moved, dtype=torch.long)]).to(device)
    return PosingState(**tens)


def bind_positions(w: torch.Tensor | None, state: PosingState) -> torch.Tensor:
    """Bind joint positions (B|1, J, 3), moved by blendshapes that move joints (w (B, N) or None)."""
    h = state.bind_pos[None]
    if w is not None and state.bs_joints is not None:
        h = h + torch.einsum("bn,njc->bjc", w, state.bs_joints)
    return h


def fk(R: torch.Tensor, t: torch.Tensor | None, w: torch.Tensor | None, state: PosingState
       ) -> tuple[torch.Tensor, torch.Tensor]:
    """R (B, J, 3, 3) local rotations -> A (B, J, 3, 3) world-axis rotations W_j B_j^-1 and (B, J, 3) joint
    positions. With G_c = Rb_c R_c Rb_c^T: A_c = A_p G_c, w_c = w_p + A_p (h_c - h_p); roots: A = G,
    w = h + t."""
    B, J = R.shape[:2]
    Rb = state.bind_rot
    G = Rb @ R @ Rb.transpose(-1, -2)
    h = bind_positions(w, state).expand(B, J, 3)
    A_parts, w_parts = [], []
    roots = state.levels[0]
    A_root = G[:, roots]
    w_root = h[:, roots] + (t[:, None] if t is not None else 0.0)
    A_parts.append(A_root)
    w_parts.append(w_root)
    for lvl, (idx, par_local) in enumerate(state.level_pairs):
        Ap, wp = A_parts[lvl][:, par_local], w_parts[lvl][:, par_local]
        off = h[:, idx] - h[:, state.parents_t[idx]]
        A_parts.append(Ap @ G[:, idx])
        w_parts.append(wp + (Ap @ off[..., None])[..., 0])
    A = torch.cat(A_parts, dim=1)[:, state.inverse_order]
    wpos = torch.cat(w_parts, dim=1)[:, state.inverse_order]
    return A, wpos


def offsets(R: torch.Tensor, w: torch.Tensor | None, state: PosingState) -> torch.Tensor | None:
    """Blendshape + pose-corrective offsets of the vertices they move (state.moved_rows), laid out
    (V_moved, 3, B), the batch innermost; None when there are none. Facial blendshapes move about a
    quarter of Anny's vertices: the others are never touched."""
    B = R.shape[0]
    out = None
    if w is not None and state.bs_T.shape[1]:
        out = state.bs_T @ w.T
    if state.corr_T is not None:
        eye = torch.eye(3, dtype=R.dtype, device=R.device)
        feat = (R[:, state.corr_joints] - eye).reshape(B, -1)            # (B, P * 9)
        c = state.corr_T @ feat.T
        out = c if out is None else out + c
    return None if out is None or not len(state.moved_rows) else out.view(-1, 3, B)


def lbs(offsets: torch.Tensor | None, A: torch.Tensor, trans: torch.Tensor, state: PosingState) -> torch.Tensor:
    """Linear blend skinning: v' = sum_j w_vj (A_j v + t_j), with v = bind vertex + offset.
    offsets (V_moved, 3, B) of state.moved_rows or None, A (B, J, 3, 3), trans (B, J, 3) -> (B, V, 3).

    Split as sum_j w_vj [A_j | t_j] [bind; 1] + sum_j w_vj A_j offset. The first term is one sparse product:
    M (V, J * 4), M[v, 4j + d] = w_vj [bind_v; 1]_d, times the joints' 3x4 transforms (J * 4, 3 * B): no
    per-vertex blended matrix is ever formed. The second blends the 3x3 rotations only for the moved
    vertices (a quarter of Anny's, with its facial blendshapes) and applies them to their offsets."""
    B, J = A.shape[:2]
    V = state.verts.shape[0]
    T = torch.cat([A, trans[..., None]], dim=-1)                           # (B, J, 3, 4)
    out = (_sparse(state, T.dtype, "skin_vh") @ T.permute(1, 3, 2, 0).reshape(J * 4, 3 * B)).view(V, 3, B)
    if offsets is not None:
        bl = (_sparse(state, A.dtype, "skin_moved") @ A.permute(1, 2, 3, 0).reshape(J, 9 * B)).view(-1, 3, 3, B)
        corr = (bl[:, :, 0] * offsets[:, None, 0]).addcmul_(bl[:, :, 1], offsets[:, None, 1])
        out.index_add_(0, state.moved_rows, corr.addcmul_(bl[:, :, 2], offsets[:, None, 2]))
    return out.permute(2, 0, 1).contiguous()


def _numba_applies(A: torch.Tensor, trans: torch.Tensor, offsets: torch.Tensor | None) -> str | None:
    """None when the fused numba kernel can compute this LBS, else why not."""
    if not lbs_kernel.available():
        return "numba is not installed (pip install numba)"
    if A.device.type != "cpu" or A.dtype not in (torch.float32, torch.float64):
        return f"it runs on the CPU in float32/float64 only (got {A.device.type}, {A.dtype})"
    needs_grad = A.requires_grad or trans.requires_grad or (offsets is not None and offsets.requires_grad)
    if torch.is_grad_enabled() and needs_grad:
        return "it has no autograd (a gradient is needed here)"
    return None


def lbs_with_backend(offsets: torch.Tensor | None, A: torch.Tensor, trans: torch.Tensor, state: PosingState,
                     backend: LbsBackend = "auto") -> torch.Tensor:
    """LBS (arguments as in `lbs`) on the chosen backend (module docstring). backend "numba" where the kernel
    cannot run (no numba, not CPU, a gradient needed) raises ValueError saying why."""
    if backend not in LBS_BACKENDS:
        raise ValueError(f"pose: backend must be one of {LBS_BACKENDS}, got {backend!r}")
    if backend == "torch":
        return lbs(offsets, A, trans, state)
    why_not = _numba_applies(A, trans, offsets)
    if why_not is None:
        return lbs_numba(offsets, A, trans, state)
    if backend == "numba":
        raise ValueError(f"pose: backend 'numba' cannot run here: {why_not}")
    return lbs(offsets, A, trans, state)


def lbs_numba(offsets: torch.Tensor | None, A: torch.Tensor, trans: torch.Tensor, state: PosingState
              ) -> torch.Tensor:
    """The same result as `lbs` through the fused numba kernel (CPU, no autograd)."""
    if A.dtype not in state.fused:
        npdt = np.float32 if A.dtype == torch.float32 else np.float64
        V = state.verts.shape[0]
        pos = np.full(V, -1, np.int32)
        pos[state.moved_rows.cpu().numpy()] = np.arange(len(state.moved_rows), dtype=np.int32)
        state.fused[A.dtype] = (state.skin_idx.cpu().numpy().astype(np.int32),
                                state.skin_w.cpu().numpy().astype(npdt), state.verts.cpu().numpy().astype(npdt), pos)
    idx, w, verts, pos = state.fused[A.dtype]
    T = torch.cat([A, trans[..., None]], dim=-1)                           # (B, J, 3, 4)
    return lbs_kernel.lbs(T, idx, w, verts, None if offsets is None else offsets.to(A.dtype), pos)


def _vertex_skinning_matrix(weights: torch.Tensor, vertices: np.ndarray) -> torch.Tensor:
    """weights (V, J) dense, vertices (V, 3) -> M (V, J * 4) with M[v, 4j + d] = w_vj [vertex_v; 1]_d."""
    vh = torch.cat([torch.as_tensor(vertices, dtype=weights.dtype), torch.ones(len(vertices), 1,
                                                                                dtype=weights.dtype)], 1)
    return (weights[:, :, None] * vh[:, None, :]).reshape(len(vertices), -1)


def _moved_rows(deltas: np.ndarray) -> np.ndarray:
    """Vertices (indices) that any of deltas (N, V, 3) moves."""
    if not len(deltas):
        return np.zeros(0, np.int64)
    return np.nonzero(np.abs(deltas).sum((0, 2)) > 0)[0]


def _deltas_T(deltas: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(len(rows) * 3, N): the deltas (N, V, 3) of the given vertices, rows [vertex, axis]."""
    return np.ascontiguousarray(deltas[:, rows].transpose(1, 2, 0).reshape(len(rows) * 3, len(deltas)))


def _sparse(state: PosingState, dtype: torch.dtype, key: str = "skin_sparse") -> torch.Tensor:
    W = getattr(state, key)
    return W if W.dtype == dtype else W.to(dtype)


def dqs(v: torch.Tensor, A: torch.Tensor, trans: torch.Tensor, state: PosingState) -> torch.Tensor:
    """Dual-quaternion skinning. Quaternions here are roma's (x, y, z, w), internal to this function.

    Each vertex blends its joints' dual quaternions with signs that put them in the hemisphere of its first
    influence. Fast path: flip every joint's quaternion into its parent's hemisphere (down the hierarchy);
    then every vertex whose (first influence, other influence) pairs all have non-negative dot products
    needs no per-vertex flip, and the blend is one sparse (V, J) x (J, B*8) product, exactly the same
    result. The few vertices with a pair beyond 180 degrees of relative rotation are redone with
    `dqs_blend_per_vertex`."""
    import roma

    B, J = A.shape[:2]
    q = roma.rotmat_to_unitquat(A)                               # (B, J, 4) xyzw
    tq = torch.cat([0.5 * trans, torch.zeros_like(trans[..., :1])], dim=-1)
    d = roma.quat_product(tq, q)                                 # dual part: 0.5 * t * q
    # hemisphere of the parent, propagated from the roots
    raw = torch.where((q * q[:, state.parents_t]).sum(-1) < 0, -1.0, 1.0).to(q.dtype)  # (B, J)
    sign_parts = [torch.ones_like(raw[:, state.levels[0]])]
    for lvl, (idx, par_local) in enumerate(state.level_pairs):
        sign_parts.append(sign_parts[lvl][:, par_local] * raw[:, idx])
    s = torch.cat(sign_parts, dim=1)[:, state.inverse_order][..., None]
    q, d = q * s, d * s
    pairs = state.dq_pairs
    qd = torch.cat([q, d], dim=-1).permute(1, 0, 2).reshape(J, B * 8)
    blend = (_sparse(state, qd.dtype) @ qd).view(-1, B, 8)       # (V, B, 8)
    bad_pairs = ((q[:, pairs[0]] * q[:, pairs[1]]).sum(-1) < 0).any(0)          # (P,)
    if bool(bad_pairs.any()):
        slot_pair = state.dq_slot_pair                                       # (V, K), -1 = no pair
        bad_v = torch.nonzero((bad_pairs[slot_pair.clamp(min=0)] & (slot_pair >= 0)).any(1))[:, 0]
        qv, dv = dqs_blend_per_vertex(q, d, state, bad_v)                       # (B, U, 4) each
        blend = blend.clone()
        blend[bad_v] = torch.cat([qv, dv], dim=-1).transpose(0, 1)
    qb, db = blend[..., :4], blend[..., 4:]
    return apply_dual_quaternions(qb, db, v.transpose(0, 1)).transpose(0, 1)


def dqs_blend_per_vertex(q: torch.Tensor, d: torch.Tensor, state: PosingState, vertices: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference DQS blend: q, d (B, J, 4) -> (B, V, 4) each (or (B, U, 4) for the given vertex indices), every
    influence flipped into the hemisphere of the vertex's first influence (anny's convention)."""
    idx, w = state.skin_idx, state.skin_w.to(q.dtype)
    if vertices is not None:
        idx, w = idx[vertices], w[vertices]
    q_ref = q[:, idx[:, 0]]
    qb = torch.zeros_like(q_ref)
    db = torch.zeros_like(q_ref)
    for k in range(idx.shape[1]):
        qk, dk = q[:, idx[:, k]], d[:, idx[:, k]]
        sk = torch.where((qk * q_ref).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(q.dtype)
        wk = w[:, k, None] * sk
        qb = qb + wk * qk
        db = db + wk * dk
    return qb, db


def apply_dual_quaternions(qb: torch.Tensor, db: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Apply blended dual quaternions (real part qb, dual part db: (..., 4) xyzw, not normalised) to v (..., 3).

    With q = (u, s) and d = (d_u, d_s) divided by |q|, the rotation is v + 2 s (u x v) + 2 u x (u x v) and the
    translation 2 vec(d q*) = 2 (s d_u - d_s u + u x d_u). Both are bilinear in the unnormalised parts, so
    v' = v + (2 / |q|^2) (s c + u x c - d_s u) with c = u x v + d_u. Written out elementwise (roma's generic
    products allocate much more); tested against roma's quat_action / quat_product."""
    u, s = qb[..., :3], qb[..., 3:]
    scale = 2.0 / (qb * qb).sum(-1, keepdim=True)
    c = torch.linalg.cross(u, v, dim=-1) + db[..., :3]
    return v + scale * (s * c + torch.linalg.cross(u, c, dim=-1) - db[..., 3:] * u)


def _to_csr(dense: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return dense.to_sparse_csr()


