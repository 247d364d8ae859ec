"""Antialiased, differentiable silhouettes for fitting meshes to masks.

``soft_silhouette`` keeps the exact (hard) coverage of the rasterizer away from the outline and replaces it,
in a band of a few pixels around the outline, by ``sigmoid(signed_distance / sigma)``: the signed screen
distance (pixels; + inside, - outside) from the pixel centre to the nearest projected *silhouette edge*
of the mesh (a boundary edge, or an edge between a front- and a back-facing face in that view). It is
continuous in the vertex positions (the sign flips exactly where the distance is 0) and its gradient moves
the outline's edges towards or away from each pixel, like nvdiffrast's analytic antialiasing of
silhouettes; unlike SoftRas it has no seams at interior edges (interior pixels stay exactly 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as tf
from torch import Tensor

from capture.camera import Camera
from core.conventions import PIXEL_CENTER_OFFSET
from neural_render.raster import _face_planes, check_mesh, prepare_views, rasterize

__all__ = ["soft_silhouette", "mesh_edges"]


def mesh_edges(faces: Tensor) -> tuple[Tensor, Tensor]:
    """faces (F, 3) -> (edges (E, 2) int64 unique undirected vertex pairs, face_edge (F, 3) edge id of each
    face's edges (v0v1, v1v2, v2v0))."""
    e = faces[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2)
    e = torch.sort(e, dim=1).values
    n = int(faces.max()) + 1 if faces.numel() else 1
    keys, inv = torch.unique(e[:, 0] * n + e[:, 1], return_inverse=True)   # 1-D unique: fast
    edges = torch.stack([keys // n, keys % n], -1)
    return edges, inv.view(-1, 3)


def _point_segment_dist(p: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Distance (...,) from points p (..., 2) to segments a-b (..., 2)."""
    ab = b - a
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-20)
    q = a + t.clamp(0, 1)[..., None] * ab
    return (p - q).norm(dim=-1)


def soft_silhouette(verts: Tensor, faces: Tensor, cameras: Camera, *, sigma: float = 0.5,
                    near: float = 0.01, band: int | None = None, max_candidates: int = 1 << 21) -> Tensor:
    """Antialiased silhouette (coverage) in [0, 1], differentiable w.r.t. vertex positions at the outline.

    verts (V, 3) or (B, V, 3) world metres, faces (F, 3), cameras: as for ``rasterize``.
    sigma: softness in pixels (the coverage goes from 0.27 to 0.73 within +-sigma of the outline);
        larger values give gradients from further away.
    band: half-width in pixels of the band around the hard outline where the soft coverage is used
        (default ceil(6 sigma) + 1; beyond it sigmoid(band / sigma) rounds to 0 or 1).
    Returns (B, H, W) in the vertices' dtype. Silhouette edges with an end behind the near plane are
    ignored (the hard coverage is kept there).

    Steps: hard coverage (``rasterize``), the band of pixels near its outline, the silhouette edges of each
    view, the nearest silhouette edge of every band pixel (no autograd), then the differentiable signed
    distance to that edge through a sigmoid.
    """
    verts, faces = check_mesh(verts, faces, "soft_silhouette")
    if not sigma > 0:
        raise ValueError(f"soft_silhouette: sigma must be > 0 pixels, got {sigma}")
    band = int(band if band is not None else int(torch.tensor(6.0 * sigma).ceil()) + 1)
    frags = rasterize(verts, faces, cameras, near=near, max_candidates=max_candidates)
    pc, cams = prepare_views(verts, cameras)
    B, H, W = frags.face_idx.shape
    m = frags.mask
    sil = m.to(verts.dtype)
    in_band = _outline_band(m, band)
    if not bool(in_band.any()):
        return sil
    edges, face_edge = mesh_edges(faces)
    sb, se = silhouette_edges(pc, faces, edges, face_edge, near)
    if sb.numel() == 0:
        return sil
    q = pc @ cams.K.transpose(-1, -2)
    uv = q[..., :2] / q[..., 2:3]                             # (B, V, 2) pixels, differentiable
    a, b = uv[sb, edges[se, 0]], uv[sb, edges[se, 1]]         # (S, 2) silhouette edge ends per view
    pix, it = _nearest_edge(a.detach(), b.detach(), sb, in_band, band, max_candidates)
    rem = pix % (H * W)
    p = torch.stack([rem % W, rem // W], -1).to(verts.dtype) + PIXEL_CENTER_OFFSET
    d = _point_segment_dist(p, a[it], b[it])                  # edge it lies in the pixel's view (see _nearest_edge)
    sign = torch.where(m.reshape(-1)[pix], 1.0, -1.0).to(verts.dtype)
    cov = torch.sigmoid(sign * d / sigma)
    return sil.reshape(-1).index_put((pix,), cov).view(B, H, W)


def _outline_band(mask: Tensor, band: int) -> Tensor:
    """(B, H, W) bool coverage -> (B, H, W) bool: pixels with both a covered and an uncovered pixel within
    ``band`` pixels (a separable (2 band + 1)^2 max filter of the mask and of its complement)."""
    k = 2 * band + 1
    mf = mask.to(torch.float32)[:, None]

    def dilate(x):
        x = tf.max_pool2d(x, (1, k), 1, (0, band))
        return tf.max_pool2d(x, (k, 1), 1, (band, 0))[:, 0] > 0

    return dilate(mf) & dilate(1 - mf)


def silhouette_edges(pc: Tensor, faces: Tensor, edges: Tensor, face_edge: Tensor,
                      near: float) -> tuple[Tensor, Tensor]:
    """Silhouette edges of each view: boundary edges (one face) and edges between a front- and a back-facing
    face, both ends in front of the near plane. pc (B, V, 3) camera space -> (view (S,), edge id (S,)) int64."""
    B, dev = pc.shape[0], pc.device
    E = edges.shape[0]
    _, T = _face_planes(pc.detach(), faces)                   # T < 0: front-facing
    front = (T < 0).to(torch.int64)                           # (B, F)
    flat = face_edge.reshape(-1)
    cnt = torch.zeros(E, dtype=torch.int64, device=dev).index_add_(0, flat, torch.ones_like(flat))
    fcnt = torch.zeros(B, E, dtype=torch.int64, device=dev).index_add_(1, flat, front.repeat_interleave(3, dim=1))
    is_sil = (cnt == 1)[None] | ((fcnt > 0) & (fcnt < cnt[None]))
    z = pc[..., 2].detach()
    is_sil &= (z[:, edges[:, 0]] >= near) & (z[:, edges[:, 1]] >= near)
    sb, se = is_sil.nonzero(as_tuple=True)
    return sb, se


@torch.no_grad()
def _nearest_edge(a: Tensor, b: Tensor, sb: Tensor, in_band: Tensor, band: int,
                  max_candidates: int) -> tuple[Tensor, Tensor]:
    """Numeric kernel: for every band pixel, the nearest silhouette edge of its view. Edges a-b (S, 2) pixels
    in view sb (S,); in_band (B, H, W) bool. Every edge visits the pixels of its box grown by ``band``, in
    chunks of at most max_candidates (pixel, edge) pairs; the nearest wins through one ``scatter_reduce(amin)``
    of 64-bit keys (bits(distance) << 32) | edge. Returns (flat pixel index (P,), edge index into a/b (P,))."""
    B, H, W = in_band.shape
    dev, dt = a.device, a.dtype
    lo = (torch.minimum(a, b) - PIXEL_CENTER_OFFSET - band).ceil().long()
    hi = (torch.maximum(a, b) - PIXEL_CENTER_OFFSET + band).floor().long()
    lim = torch.tensor([W - 1, H - 1], device=dev)
    lo = torch.minimum(lo.clamp(min=0), lim + 1)
    hi = torch.minimum(hi, lim)
    size = (hi - lo + 1).clamp_min(0)
    n = size[:, 0] * size[:, 1]
    best = torch.full((B * H * W,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=dev)
    starts = torch.cumsum(n, 0) - n
    total = int(n.sum())
    flat_band = in_band.reshape(-1)
    for c0 in range(0, total, max_candidates):
        j = torch.arange(c0, min(total, c0 + max_candidates), device=dev)
        it = torch.searchsorted(starts, j, right=True) - 1
        r = j - starts[it]
        px = lo[it, 0] + r % size[it, 0]
        py = lo[it, 1] + r // size[it, 0]
        pix = (sb[it] * H + py) * W + px
        ok = flat_band[pix]
        it, px, py, pix = it[ok], px[ok], py[ok], pix[ok]
        p = torch.stack([px, py], -1).to(dt) + PIXEL_CENTER_OFFSET
        d = _point_segment_dist(p, a[it], b[it]).to(torch.float32)
        key = (d.view(torch.int32).to(torch.int64) << 32) | it
        best.scatter_reduce_(0, pix, key, reduce="amin")
    has = (best != torch.iinfo(torch.int64).max) & flat_band
    pix = has.nonzero()[:, 0]
    return pix, best[pix] & 0xFFFFFFFF
