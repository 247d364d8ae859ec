"""A tiny brute-force reference rasterizer for the tests: every pixel against every face, float64.

Independent of neural_render.raster: a ray through each pixel centre (OpenCV pinhole, pixel centres at
integer + 0.5) is intersected with every triangle in camera space (Moeller-Trumbore); the nearest hit with
z >= near wins. Only for small images and meshes.
"""

from __future__ import annotations

import torch


def brute_force_rasterize(verts_cam, faces, K, H, W, near=0.01, cull_backfaces=False):
    """verts_cam (V, 3) camera space, faces (F, 3), K (3, 3) -> (face_idx (H, W), bary (H, W, 3), depth (H, W))."""
    P = verts_cam.double()
    K = K.double()
    u = torch.arange(W, dtype=torch.float64) + 0.5
    v = torch.arange(H, dtype=torch.float64) + 0.5
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    pix = torch.stack([uu, vv, torch.ones_like(uu)], -1).reshape(-1, 3)
    d = pix @ torch.linalg.inv(K).T                      # (HW, 3), z = 1
    tri = P[faces.long()]                                # (F, 3, 3)
    p0, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    h = torch.linalg.cross(d[:, None, :].expand(-1, len(faces), 3), e2[None].expand(len(d), -1, 3))
    a = (e1[None] * h).sum(-1)                           # (HW, F)
    s = -p0[None]                                        # ray origin (0) - p0
    f = 1.0 / a
    b1 = f * (s * h).sum(-1)
    q = torch.linalg.cross(s.expand(len(d), -1, 3), e1[None].expand(len(d), -1, 3))
    b2 = f * (d[:, None, :] * q).sum(-1)
    t = f * (e2[None] * q).sum(-1)
    hit = (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1) & (t >= near) & torch.isfinite(t) & (a.abs() > 1e-300)
    if cull_backfaces:
        n = torch.linalg.cross(e1, e2)
        hit &= ((p0 * n).sum(-1) < 0)[None]
    tt = torch.where(hit, t, torch.inf)
    best, idx = tt.min(1)
    face_idx = torch.where(torch.isfinite(best), idx, -1)
    sel = torch.arange(len(d))
    bary = torch.stack([1 - b1 - b2, b1, b2], -1)[sel, idx]
    bary = torch.where((face_idx >= 0)[:, None], bary, 0.0)
    return face_idx.view(H, W), bary.view(H, W, 3), best.view(H, W)
