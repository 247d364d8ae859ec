"""Texture sampling: bilinear filtering with mip-mapping (trilinear between pyramid levels) for minification,
plus sRGB <-> linear conversions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as tf
from torch import Tensor

__all__ = ["sample_texture", "mip_pyramid", "mip_atlas", "MipTexture", "srgb_to_linear", "linear_to_srgb",
           "uv_footprint_level"]


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


def mip_atlas(levels: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Pack a mip pyramid (``mip_pyramid``'s levels, (N, C, h_l, w_l)) into one image: level 0 on the left, the
    others stacked top-down in a column right of it, zeros elsewhere. Returns (atlas (N, C, Ha, Wa), places (L, 4)
    float: x0, y0, w, h of each level in atlas texels). Differentiable w.r.t. the levels. Sampling every level
    through one atlas (`sample_texture`) takes two ``grid_sample`` calls instead of two per level."""
    first, rest = levels[0], levels[1:]
    H0, W0 = first.shape[-2:]
    places = [(0, 0, W0, H0)]
    if not rest:
        return first, first.new_tensor(places)
    W1 = max(t.shape[-1] for t in rest)
    y = 0
    for t in rest:
        places.append((W0, y, t.shape[-1], t.shape[-2]))
        y += t.shape[-2]
    col = torch.cat([tf.pad(t, (0, W1 - t.shape[-1])) for t in rest], -2)
    Ha = max(H0, y)
    atlas = torch.cat([tf.pad(first, (0, 0, 0, Ha - H0)), tf.pad(col, (0, 0, 0, Ha - y))], -1)
    return atlas, first.new_tensor(places)


def _atlas_grid(uv: Tensor, level: Tensor, places: Tensor, atlas_hw: tuple[int, int]) -> Tensor:
    """grid_sample coordinates (n, 2) in the atlas of texture coordinates uv (n, 2) (u right, v down, in [0, 1])
    on pyramid levels ``level`` (n,) long: each level's texel coordinate clamped to its edge texels (what
    ``padding_mode="border"`` does on the level alone), moved to the level's place."""
    p = places[level]                                          # (n, 4): x0, y0, w, h
    t = (uv * p[:, 2:] - 0.5).clamp_min(0).minimum(p[:, 2:] - 1) + p[:, :2]
    Ha, Wa = atlas_hw
    return (2 * t + 1) / t.new_tensor([Wa, Ha]) - 1


def _trilinear(atlas: Tensor, places: Tensor, pts: Tensor, level: Tensor, view: Tensor, dense: bool) -> Tensor:
    """(n, C) trilinear samples of the mip atlas (`mip_atlas`) at pts (n, 2) (u right, v down, in [0, 1]) on
    fractional pyramid levels level (n,), view (n,) long as in `_sample_atlas`. Level floor(level) is sampled for
    every point, the next one where the fraction is > 0, or for every point when ``dense`` (a GPU: finding those
    points would cost a host synchronisation, the extra samples cost nothing there)."""
    nlev, hw = len(places), atlas.shape[-2:]
    l0 = torch.floor(level).long()
    frac = (level - l0.to(level.dtype))[:, None]
    up = None if dense else (frac[:, 0] > 0).nonzero()[:, 0]
    p1, l1, v1 = (pts, l0, view) if up is None else (pts[up], l0[up], view[up])
    where = torch.cat([_atlas_grid(pts, l0, places, hw), _atlas_grid(p1, (l1 + 1).clamp_max(nlev - 1), places, hw)])
    both = _sample_atlas(atlas, where, torch.cat([view, v1]))
    s0, s1 = both[:len(pts)], both[len(pts):]
    if up is None:
        return s0 + (s1 - s0) * frac
    return s0.index_put((up,), s0[up] + (s1 - s0[up]) * frac[up])


def _sample_atlas(atlas: Tensor, where: Tensor, view: Tensor) -> Tensor:
    """Bilinear samples (n, C) of atlas (N, C, Ha, Wa) at grid coordinates where (n, 2); view (n,) long: which of
    the N textures each sample reads (ignored when N = 1)."""
    if atlas.shape[0] == 1:
        return tf.grid_sample(atlas, where[None, None], mode="bilinear", padding_mode="border",
                              align_corners=False)[0, :, 0].T
    out = where.new_zeros(where.shape[0], atlas.shape[1])
    for b in range(atlas.shape[0]):                            # one texture per view
        sel = (view == b).nonzero()[:, 0]
        if sel.numel():
            out = out.index_put((sel,), _sample_atlas(atlas[b:b + 1], where[sel], view[sel]))
    return out


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
            self.atlas, self.places = mip_atlas(self.levels)

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
    (log2 of the footprint in texels; 0 outside the mask). On the CPU, with a mask, only its bounding box is
    evaluated (pixels outside it have no valid neighbour inside: the same levels, less work for a small subject);
    a GPU evaluates every pixel (finding the box would cost host synchronisations; the arithmetic is nothing there).
    """
    Ht, Wt = tex_hw
    scale = uv.new_tensor([Wt, Ht])
    if mask is None:
        return _footprint_level(uv, scale, torch.ones(uv.shape[:3], dtype=torch.bool, device=uv.device))
    if uv.device.type != "cpu":
        return _footprint_level(uv, scale, mask)
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
        pyramid and atlas reused; its dtype and device must be the UVs').
    mipmap: pick a level per pixel from the UV footprint (``uv_footprint_level``) and blend the two nearest
        pyramid levels (trilinear). Without it: plain bilinear on the full-resolution texture.
    level: (B, H, W) explicit mip level (overrides the footprint estimate).
    mask: (B, H, W) bool, pixels to sample (others are 0 and do not influence the footprint).
    wrap: "border" (clamp to the edge texels) or "repeat".

    Returns (B, H, W, C), differentiable w.r.t. the texture and uv (the level choice is not).
    """
    if wrap not in ("border", "repeat"):
        raise ValueError(f"sample_texture: wrap must be 'border' or 'repeat', got {wrap!r}")
    tex, atlas, places = _texture_levels(uv, texture)
    B, H, W, _ = uv.shape
    C, Ht, Wt = tex.shape[1:]
    if mask is None:
        mask = torch.ones(B, H, W, dtype=torch.bool, device=uv.device)
    if wrap == "repeat":
        uv = uv - torch.floor(uv.detach())
    out = torch.zeros(B * H * W, C, dtype=uv.dtype, device=uv.device)
    if not mipmap and level is None:
        grid = torch.stack([uv[..., 0] * 2 - 1, (1 - 2 * uv[..., 1]) if v_up else (uv[..., 1] * 2 - 1)], -1)
        for b in range(B):
            t = tex[b if tex.shape[0] > 1 else 0][None]
            s = tf.grid_sample(t, grid[b][None], mode="bilinear", padding_mode="border", align_corners=False)
            out.view(B, H * W, C)[b] = s[0].reshape(C, H * W).T
        return (out.view(B, H, W, C) * mask[..., None])
    if atlas is None:
        atlas, places = mip_atlas(mip_pyramid(tex))
    nlev = len(places)
    if level is None:
        level = uv_footprint_level(uv, (Ht, Wt), mask)
    level = level.detach().clamp(0, nlev - 1)
    vis = mask.reshape(-1).nonzero()[:, 0]
    u, v = uv.reshape(-1, 2)[vis].unbind(-1)
    pts = torch.stack([u, 1 - v if v_up else v], -1)           # (n, 2) u right, v down, in [0, 1]
    vals = _trilinear(atlas, places, pts, level.reshape(-1)[vis], vis // (H * W), dense=uv.device.type != "cpu")
    out = out.index_put((vis,), vals)
    return out.view(B, H, W, C)


def _texture_levels(uv: Tensor, texture: Tensor | MipTexture) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """`sample_texture`'s inputs checked: (the texture as (Bt, C, Ht, Wt) in uv's dtype, and its mip atlas and the
    levels' places (`mip_atlas`) when a `MipTexture` brings them, else None, None); ValueError for shapes, dtypes
    or devices that do not fit."""
    if uv.dim() != 4 or uv.shape[-1] != 2:
        raise ValueError(f"sample_texture: uv must be (B, H, W, 2), got {tuple(uv.shape)}")
    atlas = places = None
    if isinstance(texture, MipTexture):
        tex, atlas, places = texture.levels[0], texture.atlas, texture.places
        if tex.dtype != uv.dtype or tex.device != uv.device:
            raise ValueError(f"sample_texture: a MipTexture of {tex.dtype} on {tex.device} sampled with UVs "
                             f"of {uv.dtype} on {uv.device}")
    elif texture.dim() not in (3, 4):
        raise ValueError(f"sample_texture: texture must be (Ht, Wt, C) or (B, Ht, Wt, C), got {tuple(texture.shape)}")
    else:
        tex = (texture if texture.dim() == 4 else texture[None]).to(uv.dtype).permute(0, 3, 1, 2)
    if tex.shape[0] not in (1, uv.shape[0]):
        raise ValueError(f"sample_texture: {tex.shape[0]} textures for {uv.shape[0]} views")
    return tex, atlas, places


def max_mip_levels(h: int, w: int) -> int:
    """Number of pyramid levels of an h x w texture (down to 1 x 1)."""
    return int(math.floor(math.log2(max(h, w)))) + 1
