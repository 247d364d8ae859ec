"""Texture baking: project calibrated photos onto a mesh's UV space.

For every texel of the UV layout (``uv_fragments``) the surface point and normal are interpolated on the mesh;
each photo then contributes where that point is visible (the camera's z-buffer from ``rasterize``, away from
silhouette edges and inside the person mask when one is given), weighted by how frontally (cosine), how
closely (pixels per metre, the focal length over the depth) and how sharply (the photo's Laplacian energy
on the person) it sees the point. Weights are raised to ``BakeConfig.power`` so the best views dominate
(less ghosting where the mesh is off), and the colours are averaged in linear RGB.

Seams: a texel's colour comes from its 3D surface point, so the texels on both sides of a UV seam (the same
surface points) receive the same photos with the same weights and agree. Texels no camera saw are inpainted
by push-pull (a weighted image pyramid, coarse levels fill the holes of finer ones), and the same fill runs
beyond the UV islands (a gutter), so bilinear filtering and mip-mapping never pull in black.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as tf
from torch import Tensor

from capture.camera import Camera
from neural_render.gbuffer import check_uv_layout, uv_fragments
from neural_render.interpolate import interpolate
from neural_render.raster import check_mesh, rasterize
from neural_render.shading import vertex_normals

log = logging.getLogger(__name__)

__all__ = ["BakeConfig", "BakeResult", "bake_texture", "push_pull_fill", "image_sharpness"]


@dataclass
class BakeConfig:
    """How photos are blended into the texture."""

    size: int = 2048                 # texture side in texels (square)
    min_cos: float = 0.15            # views seeing the surface more grazing than this do not contribute
    cos_exponent: float = 2.0        # weight ~ cos(angle between normal and the view ray) ** this
    power: float = 2.0               # final weights are raised to this power (favours the best views)
    depth_tolerance: float = 0.01    # visible if the texel is within this fraction of its depth of the z-buffer
    depth_pixels: float = 1.5        # ... plus the depth change across this many pixels of the slanted surface
    edge_margin: int = 1             # pixels of the silhouette (mesh or mask) that never contribute


@dataclass(frozen=True)
class BakeResult:
    """A baked texture of S x S texels (row 0 = top = v 1)."""

    texture: Tensor      # (S, S, 3) linear RGB, float32, filled everywhere (inpainted / gutter)
    coverage: Tensor     # (S, S) float32 in [0, 1]: the best cosine a camera saw the texel with, 0 = unseen
    seen: Tensor         # (S, S) bool: at least one photo contributed
    islands: Tensor      # (S, S) bool: the texel lies inside a UV island
    views_used: dict     # camera name -> number of texels it contributed to


def image_sharpness(image: Tensor, mask: Tensor | None = None) -> float:
    """Variance of the Laplacian of the grey image (H, W, 3) inside mask (H, W) bool: higher = sharper."""
    g = image[..., :3].mean(-1)[None, None].float()
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=g.device)[None, None]
    r = tf.conv2d(g, lap, padding=1)[0, 0]
    if mask is not None and bool(mask.any()):
        r = r[mask]
    return float(r.var()) if r.numel() > 1 else 0.0


def push_pull_fill(values: Tensor, weight: Tensor) -> Tensor:
    """Fill texels of zero weight from their neighbourhood (push-pull).

    values (H, W, C), weight (H, W) >= 0 (0 = unknown). Returns (H, W, C): known texels unchanged, unknown
    ones from the nearest known ones at the coarsest pyramid level that has them (smooth).
    """
    known = weight > 0
    if bool(known.all()) or not bool(known.any()):
        return values.clone()
    v = (values * known[..., None]).permute(2, 0, 1)[None]
    w = known.to(values.dtype)[None, None]
    levels = [(v, w)]
    while min(v.shape[-2:]) > 1:
        v = tf.avg_pool2d(v, 2, ceil_mode=True)
        w = tf.avg_pool2d(w, 2, ceil_mode=True)
        levels.append((v, w))
    fill = levels[-1][0] / levels[-1][1].clamp_min(1e-12)
    for v, w in reversed(levels[:-1]):
        up = tf.interpolate(fill, size=v.shape[-2:], mode="bilinear", align_corners=False)
        mean = v / w.clamp_min(1e-12)
        fill = torch.where(w > 0.999, mean, w * mean + (1 - w) * up)
    out = fill[0].permute(1, 2, 0)
    return torch.where(known[..., None], values, out)


def _texels(verts: Tensor, faces: Tensor, uvs: Tensor, face_uvs: Tensor, size: int):
    """Surface point (N, 3) and unit normal (N, 3) of every texel inside a UV island, and their flat indices."""
    frags = uv_fragments(uvs, face_uvs, size)
    idx = frags.mask.reshape(-1).nonzero()[:, 0]
    pos = interpolate(verts, frags, faces).reshape(-1, 3)[idx]
    nrm = tf.normalize(interpolate(vertex_normals(verts, faces), frags, faces).reshape(-1, 3)[idx], dim=-1)
    return pos, nrm, idx


def view_weights(pos: Tensor, nrm: Tensor, cam: Camera, depth: Tensor, valid: Tensor, cfg: BakeConfig):
    """Numeric kernel: for texel points pos (N, 3) world metres / unit normals (N, 3) and one camera with its
    z-buffer depth (H, W) metres and valid-pixel map (H, W) bool: (weight (N,) = cos^k x (focal / depth)^2 where
    the texel is seen, else 0; cos (N,) of the normal and the direction to the camera; pixel grid (N, 2) in
    [-1, 1] for grid_sample). Used by the bake and by `photo_refine`."""
    pc = pos @ cam.R.T + cam.t
    z = pc[:, 2]
    eye = -cam.R.T @ cam.t
    to_cam = tf.normalize(eye - pos, dim=-1)
    cos = (nrm * to_cam).sum(-1)
    px = pc @ cam.K.T
    uvp = px[:, :2] / z.clamp_min(1e-6)[:, None]                      # continuous pixels (centres at +0.5)
    H, W = depth.shape
    xi, yi = torch.floor(uvp[:, 0]).long(), torch.floor(uvp[:, 1]).long()
    inside = (z > 1e-6) & (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
    xi, yi = xi.clamp(0, W - 1), yi.clamp(0, H - 1)
    zbuf = depth[yi, xi]
    f = float(cam.K[0, 0] + cam.K[1, 1]) / 2
    # The z-buffer is read at the nearest pixel: allow the depth change across a pixel of a slanted surface.
    tol = cfg.depth_tolerance * z + cfg.depth_pixels * z / f / cos.clamp_min(cfg.min_cos)
    ok = inside & valid[yi, xi] & (z <= zbuf + tol) & (cos > cfg.min_cos)
    w = cos.clamp_min(0) ** cfg.cos_exponent * (f / z.clamp_min(1e-6)) ** 2
    w = torch.where(ok, w, torch.zeros_like(w))
    grid = torch.stack([uvp[:, 0] / W * 2 - 1, uvp[:, 1] / H * 2 - 1], -1)
    return w, torch.where(ok, cos, torch.zeros_like(cos)), grid


def valid_pixels(depth: Tensor, mask: Tensor | None, margin: int) -> Tensor:
    """(H, W) bool: the mesh (and the person mask, when given) covers the pixel and its margin-neighbourhood."""
    cov = torch.isfinite(depth)
    if mask is not None:
        cov = cov & mask
    if margin > 0:
        k = 2 * margin + 1
        cov = -tf.max_pool2d(-(cov.float()[None, None]), k, stride=1, padding=margin)[0, 0] > 0.5
    return cov


def bake_texture(verts: Tensor, faces: Tensor, uvs: Tensor, face_uvs: Tensor, cameras: Camera,
                 images: Sequence[Tensor] | Callable[[int], Tensor], masks: Sequence[Tensor | None] | None = None,
                 config: BakeConfig | None = None,
                 progress: Callable[[int, int], None] | None = None) -> BakeResult:
    """Bake photos into the mesh's UV space (see the module doc).

    verts (V, 3) world metres (the mesh the photos show), faces (F, 3), uvs (T, 2) v up, face_uvs (F, 3);
    cameras: N pinhole cameras (undistorted); images: N linear-RGB images (H, W, 3) float in [0, 1] at each
    camera's size, or a function i -> image (loads one at a time); masks: N person masks (H, W) bool or None.
    progress(i, N) after each view. Returns a BakeResult (texture in linear RGB).
    """
    cfg = config or BakeConfig()
    verts, faces = check_mesh(verts, faces, "bake_texture")
    uvs = torch.as_tensor(uvs, dtype=verts.dtype, device=verts.device)
    face_uvs = torch.as_tensor(face_uvs, device=verts.device).long()
    check_uv_layout(uvs, face_uvs, faces, "bake_texture")
    cams = cameras.as_batch().to(device=verts.device, dtype=verts.dtype)
    S = int(cfg.size)
    get = images if callable(images) else (lambda i: images[i])
    pos, nrm, idx = _texels(verts, faces, uvs, face_uvs, S)
    acc = torch.zeros(idx.numel(), 3, dtype=torch.float64, device=verts.device)
    wsum = torch.zeros(idx.numel(), dtype=torch.float64, device=verts.device)
    best = torch.zeros(idx.numel(), dtype=verts.dtype, device=verts.device)
    sharp, used = [], {}
    for i, cam in enumerate(cams):
        img = torch.as_tensor(get(i), dtype=verts.dtype, device=verts.device)
        if img.shape[:2] != (cam.height, cam.width):
            raise ValueError(f"bake_texture: image {i} ({cam.name}) is {tuple(img.shape[:2])}, camera is "
                             f"{(cam.height, cam.width)}")
        m = None if masks is None or masks[i] is None else torch.as_tensor(masks[i], device=verts.device).bool()
        with torch.no_grad():
            depth = rasterize(verts, faces, cam).depth[0]
        valid = valid_pixels(depth, m, cfg.edge_margin)
        sharp.append(image_sharpness(img, valid))
        w, cos, grid = view_weights(pos, nrm, cam, depth, valid, cfg)
        col = tf.grid_sample(img[..., :3].permute(2, 0, 1)[None], grid[None, None], mode="bilinear",
                             padding_mode="border", align_corners=False)[0, :, 0].T
        w = w ** cfg.power * max(sharp[-1], 1e-12)      # absolute scale: comparable across views
        acc += (col * w[:, None]).double()
        wsum += w.double()
        best = torch.maximum(best, cos)
        used[str(cam.name)] = int((w > 0).sum())
        if progress:
            progress(i + 1, len(cams))
    return _assemble(acc, wsum, best, idx, S, used)


def _assemble(acc: Tensor, wsum: Tensor, best: Tensor, idx: Tensor, S: int, used: dict) -> BakeResult:
    """Scatter the accumulated texels into S x S maps and inpaint what no camera saw (and the gutter)."""
    dev, dt = acc.device, acc.dtype
    tex = torch.zeros(S * S, 3, dtype=dt, device=dev)
    seen_flat = torch.zeros(S * S, dtype=torch.bool, device=dev)
    seen_t = wsum > 0
    tex[idx[seen_t]] = acc[seen_t] / wsum[seen_t, None]
    seen_flat[idx[seen_t]] = True
    cov = torch.zeros(S * S, dtype=dt, device=dev)
    cov[idx] = best.to(dt)
    islands = torch.zeros(S * S, dtype=torch.bool, device=dev)
    islands[idx] = True
    tex = tex.view(S, S, 3)
    filled = push_pull_fill(tex, seen_flat.view(S, S).to(dt))
    if not bool(seen_flat.any()):
        log.warning("bake_texture: no camera sees the mesh; the texture is grey")
        filled = torch.full_like(tex, 0.18)
    return BakeResult(texture=filled.float().clamp(0, 1), coverage=cov.view(S, S).float(),
                      seen=seen_flat.view(S, S), islands=islands.view(S, S), views_used=used)
