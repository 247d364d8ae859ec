"""G-buffers from fragments: differentiable attribute interpolation."""

from __future__ import annotations

import torch
from torch import Tensor

from neural_render.fragments import Fragments

__all__ = ["interpolate"]


def interpolate(vertex_attrs: Tensor, fragments: Fragments, faces: Tensor, background: float = 0.0) -> Tensor:
    """Interpolate per-vertex attributes at every pixel with the fragments' perspective-correct barycentrics.

    vertex_attrs: (A, C) shared by every view, or (B, A, C) one set per view; any per-vertex quantity
        (colours, normals, UVs, positions, features).
    fragments: from ``rasterize`` ((B, H, W) views).
    faces: (F, 3) int indices into the attribute rows, one row per face of the rasterized mesh; usually the
        mesh's faces, or e.g. ``face_uvs`` for UVs stored per wedge.
    background: value of pixels where no face is visible.

    Returns (B, H, W, C) in the attributes' dtype. Differentiable w.r.t. ``vertex_attrs`` and, through
    ``fragments.bary``, w.r.t. the vertex positions and cameras given to ``rasterize``.
    """
    B, H, W = fragments.face_idx.shape
    if vertex_attrs.dim() not in (2, 3):
        raise ValueError(f"interpolate: vertex_attrs must be (A, C) or (B, A, C), got {tuple(vertex_attrs.shape)}")
    if vertex_attrs.dim() == 3 and vertex_attrs.shape[0] not in (1, B):
        raise ValueError(f"interpolate: vertex_attrs has {vertex_attrs.shape[0]} batches for {B} views")
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(f"interpolate: faces must be (F, 3), got {tuple(faces.shape)}")
    faces = faces.to(device=vertex_attrs.device, dtype=torch.int64)
    A = vertex_attrs.shape[-2]
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= A):
        raise ValueError(f"interpolate: face indices must be in [0, {A}) (the attribute rows), got "
                         f"[{int(faces.min())}, {int(faces.max())}]")
    C = vertex_attrs.shape[-1]
    flat = fragments.face_idx.reshape(-1)
    vis = (flat >= 0).nonzero()[:, 0]
    f = flat[vis]
    if f.numel() and int(f.max()) >= faces.shape[0]:
        raise ValueError(f"interpolate: fragments refer to face {int(f.max())} but faces has {faces.shape[0]} rows")
    idx = faces[f]                                              # (M, 3)
    if vertex_attrs.dim() == 3 and vertex_attrs.shape[0] == B and B > 1:
        b = vis // (H * W)
        vals = vertex_attrs[b[:, None], idx]                    # (M, 3, C)
    else:
        vals = vertex_attrs.reshape(A, C)[idx]
    bary = fragments.bary.reshape(-1, 3)[vis].to(vertex_attrs.dtype)
    out_v = (vals * bary[:, :, None]).sum(1)
    out = torch.full((B * H * W, C), background, dtype=vertex_attrs.dtype, device=vertex_attrs.device)
    return out.index_put((vis,), out_v).view(B, H, W, C)
