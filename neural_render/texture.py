"""Texture sampling: bilinear filtering with mip-mapping (trilinear between pyramid levels) for minification,
plus sRGB <-> linear conversions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as tf
from torch import Tensor

__all__ = ["sample_texture", "mip_pyramid", "MipTexture", "srgb_to_linear", "linear_to_srgb", "uv_footprint_level"]


def srgb_to_linear(x: Tensor) -> Tensor:
    """sRGB-encoded values in [0, 1] -> linear (IEC 61966-2-1), same shape."""
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Tensor) -> Tensor:
    """Linear values -> sRGB-encoded in [0, 1] (clamped), same shape."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def mip_pyramid(texture: Tensor) -> list[Tensor]:
    """texture (N, C, H, W) -> [level 0 (the texture), level 1 (half size, 2x2 box filter), ..., 1 x 1].

    Odd sizes are handled by area interpolation to ceil(size / 2). Differentiable."""
    levels = [texture]
    t = texture
    while t.shape[-1] > 1 or t.shape[-2] > 1:
        h, w = t.shape[-2:]
        if h % 2 == 0 and w % 2 == 0:
            t = tf.avg_pool2d(t, 2)
        else:
            t = tf.interpolate(t, size=(max(1, (h + 1) // 2), max(1, (w + 1) // 2)), mode="area")
        levels.append(t)
    return levels


class MipTexture:
    """A texture with its mip pyramid built once, for a texture that is sampled many times unchanged (a
    double's albedo drawn every frame of a shot): `sample_texture` takes it in place of the tensor and skips
    rebuilding the pyramid (21 ms a call for a 1024^2 RGB texture on one CPU thread).

    texture: (Ht, Wt, C) or (B, Ht, Wt, C) float, as `sample_texture` takes it; dtype / device: where the
    levels live (they must match the UVs it is sampled with). Not differentiable w.r.t. the texture (the
    levels are built without gradient): a texture being optimised is passed as a tensor."""

    def __init__(self, texture: Tensor, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        t = torch.as_tensor(texture)
        if t.dim() not in (3, 4):
            raise ValueError(f"MipTexture: texture must be (Ht, Wt, C) or (B, Ht, Wt, C), got {tuple(t.shape)}")
        t = t if t.dim() == 4 else t[None]
        with torch.no_grad():
            self.levels = mip_pyramid(t.to(device=device, dtype=dtype).permute(0, 3, 1, 2).contiguous())

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(Bt, Ht, Wt, C) of the full-resolution level."""
        b, c, h, w = self.levels[0].shape
        return b, h, w, c


def uv_footprint_level(uv: Tensor, tex_hw: tuple[int, int], mask: Tensor | None = None) -> Tensor:
    """Mip level per pixel from screen-space UV derivatives.

    uv (B, H, W, 2) image of texture coordinates; tex_hw (Ht, Wt) texels; mask (B, H, W) bool of valid pixels.
    The derivative along x (and y) is the smaller of the forward and backward differences with valid
    neighbours (so UV seams and silhouettes do not blur). Returns (B, H, W) float level >= 0
    (log2 of the footprint in texels; 0 outside the mask). With a mask only its bounding box is evaluated
    (pixels outside it have no valid neighbour inside: the same levels, less work for a small subject).
    """
    Ht, Wt = tex_hw
    scale = uv.new_tensor([Wt, Ht])
    if mask is None:
        return _footprint_level(uv, scale, torch.ones(uv.shape[:3], dtype=torch.bool, device=uv.device))
    rows, cols = mask.any(2).any(0).nonzero()[:, 0], mask.any(1).any(0).nonzero()[:, 0]
    out = torch.zeros(uv.shape[:3], dtype=uv.dtype, device=uv.device)
    if rows.numel() == 0:
        return out
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    out[:, y0:y1, x0:x1] = _footprint_level(uv[:, y0:y1, x0:x1], scale, mask[:, y0:y1, x0:x1])
    return out


def _footprint_level(uv: Tensor, scale: Tensor, valid: Tensor) -> Tensor:
    """`uv_footprint_level` of uv (B, h, w, 2) times scale (2,) texels, valid (B, h, w) bool."""
    uvt = uv.detach() * scale
    inf = torch.tensor(float("inf"), dtype=uv.dtype, device=uv.device)

    def deriv(dim: int) -> Tensor:
        if uvt.shape[dim] < 2:                                 # one row (or column): no neighbour along dim
            return uvt.new_zeros(uvt.shape[:3])
        d = uvt.diff(dim=dim).norm(dim=-1)                     # between neighbours along dim
        ok = valid.narrow(dim, 1, valid.shape[dim] - 1) & valid.narrow(dim, 0, valid.shape[dim] - 1)
        d = torch.where(ok, d, inf)
        pad = torch.full_like(d.narrow(dim, 0, 1), float("inf"))
        fwd = torch.cat([d, pad], dim)
        bwd = torch.cat([pad, d], dim)
        m = torch.minimum(fwd, bwd)
        return torch.where(torch.isfinite(m), m, torch.zeros_like(m))

    rho = torch.maximum(deriv(2), deriv(1))                    # footprint in texels (x: dim 2, y: dim 1)
    return torch.log2(rho.clamp_min(1.0))


def sample_texture(uv: Tensor, texture: Tensor | MipTexture, *, mipmap: bool = True, level: Tensor | None = None,
                   mask: Tensor | None = None, v_up: bool = True, wrap: str = "border") -> Tensor:
    """Sample a texture at UV coordinates, bilinear, with mip-mapping for minification.

    uv: (B, H, W, 2) texture coordinates in [0, 1] (u right; v up when ``v_up``, the OBJ/glTF-UV convention
        of the virtual actor; v down otherwise), usually ``interpolate(uvs, fragments, face_uvs)``.
    texture: (Ht, Wt, C) shared, or (B, Ht, Wt, C) one per view; float; or a `MipTexture` of either (its
        pyramid reused; its dtype and device must be the UVs').
    mipmap: pick a level per pixel from the UV footprint (``uv_footprint_level``) and blend the two nearest
        pyramid levels (trilinear). Without it: plain bilinear on the full-resolution texture.
    level: (B, H, W) explicit mip level (overrides the footprint estimate).
    mask: (B, H, W) bool, pixels to sample (others are 0 and do not influence the footprint).
    wrap: "border" (clamp to the edge texels) or "repeat".

    Returns (B, H, W, C), differentiable w.r.t. the texture and uv (the level choice is not).
    """
    if wrap not in ("border", "repeat"):
        raise ValueError(f"sample_texture: wrap must be 'border' or 'repeat', got {wrap!r}")
    tex, pyr = _texture_levels(uv, texture)
    B, H, W, _ = uv.shape
    C, Ht, Wt = tex.shape[1:]
    if mask is None:
        mask = torch.ones(B, H, W, dtype=torch.bool, device=uv.device)
    if wrap == "repeat":
        uv = uv - torch.floor(uv.detach())
    grid = torch.stack([uv[..., 0] * 2 - 1, (1 - 2 * uv[..., 1]) if v_up else (uv[..., 1] * 2 - 1)], -1)
    out = torch.zeros(B * H * W, C, dtype=uv.dtype, device=uv.device)
    if not mipmap and level is None:
        for b in range(B):
            t = tex[b if tex.shape[0] > 1 else 0][None]
            s = tf.grid_sample(t, grid[b][None], mode="bilinear", padding_mode="border", align_corners=False)
            out.view(B, H * W, C)[b] = s[0].reshape(C, H * W).T
        return (out.view(B, H, W, C) * mask[..., None])
    pyr = pyr if pyr is not None else mip_pyramid(tex)
    nlev = len(pyr)
    if level is None:
        level = uv_footprint_level(uv, (Ht, Wt), mask)
    level = level.detach().clamp(0, nlev - 1)
    flat_mask = mask.reshape(-1)
    vis = flat_mask.nonzero()[:, 0]
    lv = level.reshape(-1)[vis]
    l0 = torch.floor(lv).long()
    frac = (lv - l0.to(lv.dtype))[:, None]
    g = grid.reshape(-1, 2)[vis]
    bidx = vis // (H * W)
    vals = torch.zeros(vis.numel(), C, dtype=uv.dtype, device=uv.device)
    per_view_tex = tex.shape[0] > 1
    for lo in range(nlev):
        sel_lo = (l0 == lo).nonzero()[:, 0]
        if sel_lo.numel() == 0:
            continue
        hi = min(lo + 1, nlev - 1)
        for b in (range(B) if per_view_tex else [None]):
            sel = sel_lo if b is None else sel_lo[bidx[sel_lo] == b]
            if sel.numel() == 0:
                continue
            tb = 0 if b is None else b
            gg = g[sel][None, None]                             # (1, 1, n, 2)
            s0 = tf.grid_sample(pyr[lo][tb:tb + 1], gg, mode="bilinear", padding_mode="border",
                                align_corners=False)[0, :, 0].T
            between = (frac[sel, 0] > 0).nonzero()[:, 0] if hi != lo else sel[:0]
            if between.numel():                                 # the others sit on level lo exactly
                s1 = tf.grid_sample(pyr[hi][tb:tb + 1], gg[:, :, between], mode="bilinear", padding_mode="border",
                                    align_corners=False)[0, :, 0].T
                s0 = s0.index_put((between,), s0[between] + (s1 - s0[between]) * frac[sel[between]])
            vals = vals.index_put((sel,), s0)
    out = out.index_put((vis,), vals)
    return out.view(B, H, W, C)


def _texture_levels(uv: Tensor, texture: Tensor | MipTexture) -> tuple[Tensor, list[Tensor] | None]:
    """`sample_texture`'s inputs checked: (the texture as (Bt, C, Ht, Wt) in uv's dtype, its mip pyramid when a
    `MipTexture` brings one, else None); ValueError for shapes, dtypes or devices that do not fit."""
    if uv.dim() != 4 or uv.shape[-1] != 2:
        raise ValueError(f"sample_texture: uv must be (B, H, W, 2), got {tuple(uv.shape)}")
    pyr = None
    if isinstance(texture, MipTexture):
        pyr = texture.levels
        if pyr[0].dtype != uv.dtype or pyr[0].device != uv.device:
            raise ValueError(f"sample_texture: a MipTexture of {pyr[0].dtype} on {pyr[0].device} sampled with UVs "
                             f"of {uv.dtype} on {uv.device}")
        tex = pyr[0]
    elif texture.dim() not in (3, 4):
        raise ValueError(f"sample_texture: texture must be (Ht, Wt, C) or (B, Ht, Wt, C), got {tuple(texture.shape)}")
    else:
        tex = (texture if texture.dim() == 4 else texture[None]).to(uv.dtype).permute(0, 3, 1, 2)
    if tex.shape[0] not in (1, uv.shape[0]):
        raise ValueError(f"sample_texture: {tex.shape[0]} textures for {uv.shape[0]} views")
    return tex, pyr


def max_mip_levels(h: int, w: int) -> int:
    """Number of pyramid levels of an h x w texture (down to 1 x 1)."""
    return int(math.floor(math.log2(max(h, w)))) + 1
