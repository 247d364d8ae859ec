"""Normals, Lambert + ambient + hemisphere-environment shading, and ``render_mesh`` for previews."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as tf
from torch import Tensor

from capture.camera import Camera
from neural_render.interpolate import interpolate
from neural_render.raster import Fragments, check_mesh, rasterize
from neural_render.texture import MipTexture, linear_to_srgb, sample_texture, srgb_to_linear

__all__ = ["face_normals", "vertex_normals", "Lighting", "shade", "render_mesh", "composite"]


def face_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """verts (..., V, 3), faces (F, 3) -> (..., F, 3) unit normals, right-handed (counter-clockwise = front).
    Degenerate faces get a zero normal."""
    tri = verts[..., faces, :]
    n = torch.linalg.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :])
    return tf.normalize(n, dim=-1, eps=1e-20)


def vertex_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """verts (..., V, 3), faces (F, 3) -> (..., V, 3) unit vertex normals (area-weighted face normals)."""
    tri = verts[..., faces, :]
    n = torch.linalg.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :])  # 2 * area * normal
    out = torch.zeros_like(verts)
    fl = faces.reshape(-1)
    out = out.index_add(-2, fl, n.repeat_interleave(3, dim=-2))
    return tf.normalize(out, dim=-1, eps=1e-20)


def angle_weighted_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """verts (V, 3), faces (F, 3) -> (V, 3) unit vertex normals: the faces' unit normals weighted by each face's
    angle at the vertex (Blender's vertex normals: a render pass's N matches what DCC tools compute, where the
    area weighting of `vertex_normals` differs by up to ~5 degrees on a dense face mesh)."""
    tri = verts[faces]
    face_n = tf.normalize(torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), dim=-1, eps=1e-20)
    out = torch.zeros_like(verts)
    for k in range(3):
        a = tf.normalize(tri[:, (k + 1) % 3] - tri[:, k], dim=-1, eps=1e-20)
        b = tf.normalize(tri[:, (k + 2) % 3] - tri[:, k], dim=-1, eps=1e-20)
        angle = torch.acos((a * b).sum(-1).clamp(-1.0, 1.0))
        out = out.index_add(0, faces[:, k], face_n * angle[:, None])
    return tf.normalize(out, dim=-1, eps=1e-20)


@dataclass
class Lighting:
    """A simple light rig, linear RGB. Radiance = albedo * (ambient + hemisphere(n) + sum_l max(0, n.l) c_l)."""

    ambient: tuple[float, float, float] = (0.05, 0.05, 0.05)     # constant term
    sky: tuple[float, float, float] = (0.35, 0.37, 0.42)         # hemisphere environment: light from +Y
    ground: tuple[float, float, float] = (0.12, 0.10, 0.09)      # ... and from -Y
    # Directional lights: direction *towards* the light (unit-normalised here) and colour.
    directions: list[tuple[float, float, float]] = field(default_factory=lambda: [(-0.45, -0.6, -1.0)])
    colors: list[tuple[float, float, float]] = field(default_factory=lambda: [(0.85, 0.83, 0.8)])
    camera_relative: bool = True    # directions in each camera's frame (x right, y down, z forward) if True


def shade(normals: Tensor, albedo: Tensor, mask: Tensor, cameras: Camera, lighting: Lighting | None = None,
          two_sided: bool = True, view_dirs: Tensor | None = None) -> Tensor:
    """Lambert shading in linear RGB.

    normals (B, H, W, 3) world-space (need not be unit), albedo (B, H, W, 3) linear, mask (B, H, W) bool,
    cameras: B cameras (for camera-relative lights and two-sided lighting). view_dirs (B, H, W, 3): world
    directions from the camera to each pixel's surface, for two-sided lighting (normals facing away from
    the viewer are flipped). Returns (B, H, W, 3) linear radiance (0 outside the mask).
    """
    lighting = lighting or Lighting()
    cams = cameras.as_batch().to(device=normals.device, dtype=normals.dtype)
    n = tf.normalize(normals, dim=-1, eps=1e-20)
    if two_sided and view_dirs is not None:
        flip = (n * view_dirs).sum(-1, keepdim=True) > 0
        n = torch.where(flip, -n, n)
    B = n.shape[0]
    like = lambda x: torch.as_tensor(x, dtype=n.dtype, device=n.device)  # noqa: E731
    up = n[..., 1:2]
    irr = like(lighting.ambient) + like(lighting.sky) * (0.5 + 0.5 * up) + like(lighting.ground) * (0.5 - 0.5 * up)
    if lighting.directions:
        dirs = tf.normalize(like(lighting.directions).reshape(-1, 3), dim=-1)      # (L, 3)
        cols = like(lighting.colors).reshape(-1, 3)
        if cols.shape[0] != dirs.shape[0]:
            raise ValueError(f"Lighting: {dirs.shape[0]} directions but {cols.shape[0]} colours")
        if lighting.camera_relative:
            dirs = torch.einsum("bji,lj->bli", cams.R, dirs)                     # camera -> world: R^T d
        else:
            dirs = dirs[None].expand(B, -1, -1)
        cos = torch.einsum("bhwi,bli->bhwl", n, dirs).clamp_min(0)
        irr = irr + torch.einsum("bhwl,lc->bhwc", cos, cols)
    return albedo * irr * mask[..., None]


def composite(rgba: Tensor, background=(1.0, 1.0, 1.0)) -> Tensor:
    """Straight-alpha RGBA (..., 4) over a constant background colour -> (..., 3)."""
    bg = torch.as_tensor(background, dtype=rgba.dtype, device=rgba.device)
    a = rgba[..., 3:4]
    return rgba[..., :3] * a + bg * (1 - a)


def render_mesh(verts: Tensor, faces: Tensor, cameras: Camera, *, uvs: Tensor | None = None,
                face_uvs: Tensor | None = None, texture: Tensor | MipTexture | None = None,
                vertex_colors: Tensor | None = None, color=(0.72, 0.72, 0.72), texture_srgb: bool = True,
                lighting: Lighting | None = None, smooth: bool = True, supersample: int = 1,
                cull_backfaces: bool = False, near: float = 0.01, return_fragments: bool = False):
    """Shaded preview render: (B, H, W, 4) straight-alpha RGBA, sRGB-encoded in [0, 1].

    verts (V, 3) or (B, V, 3) world metres, faces (F, 3), cameras (see ``rasterize`` for batching).
    Albedo, first match: ``texture`` (Ht, Wt, 3) (or a `MipTexture` of it, in verts' dtype and device: its
    pyramid reused) sampled at ``uvs`` (T, 2) through ``face_uvs`` (F, 3)
    (or through ``faces`` when face_uvs is None), bilinear + mip-mapped; ``vertex_colors`` (V, 3); the
    constant ``color``. Colours are sRGB-encoded when ``texture_srgb`` (converted to linear for shading).
    smooth: interpolated vertex normals (else flat face normals). supersample: render s x s samples per
    pixel and box-filter them (antialiased edges and alpha). Two-sided lighting.
    Returns rgba, or (rgba, fragments at the supersampled resolution) when ``return_fragments``.
    """
    verts, faces = check_mesh(verts, faces, "render_mesh")
    if supersample < 1 or int(supersample) != supersample:
        raise ValueError(f"render_mesh: supersample must be a positive integer, got {supersample}")
    ss = int(supersample)
    cams = cameras.as_batch().to(device=verts.device, dtype=verts.dtype)
    if verts.dim() == 3 and len(cams) == 1 and verts.shape[0] > 1:
        cams = Camera.stack([cams] * verts.shape[0])       # B meshes seen by one camera
    cams_ss = cams.scaled(ss) if ss > 1 else cams
    frags: Fragments = rasterize(verts, faces, cams_ss, near=near, cull_backfaces=cull_backfaces)
    mask = frags.mask
    B = mask.shape[0]
    if smooth:
        normals = interpolate(vertex_normals(verts, faces), frags, faces)
    else:
        fn = face_normals(verts, faces)
        fi = frags.face_idx.clamp_min(0)
        normals = (fn[fi] if fn.dim() == 2 else torch.gather(fn, 1, fi.reshape(B, -1, 1).expand(-1, -1, 3))
                   .view(B, *fi.shape[1:], 3)) * mask[..., None]
    if texture is not None:
        if uvs is None:
            raise ValueError("render_mesh: a texture needs uvs")
        tex = texture if isinstance(texture, MipTexture) else torch.as_tensor(texture, dtype=verts.dtype,
                                                                                device=verts.device)
        uvs = torch.as_tensor(uvs, dtype=verts.dtype, device=verts.device)
        fuv = faces if face_uvs is None else torch.as_tensor(face_uvs, device=verts.device)
        if fuv.shape != faces.shape:
            raise ValueError(f"render_mesh: face_uvs must be {tuple(faces.shape)} like faces, got {tuple(fuv.shape)}")
        uv_img = interpolate(uvs, frags, fuv)
        albedo = sample_texture(uv_img, tex, mask=mask)
    elif vertex_colors is not None:
        vc = torch.as_tensor(vertex_colors, dtype=verts.dtype, device=verts.device)
        albedo = interpolate(vc, frags, faces)
    else:
        albedo = torch.as_tensor(color, dtype=verts.dtype, device=verts.device).expand(*mask.shape, 3)
    if texture_srgb:
        albedo = srgb_to_linear(albedo)
    # World-space view directions for two-sided lighting.
    rays = cams_ss.pixel_rays()                                    # (B, H, W, 3) camera frame
    view = torch.einsum("bji,bhwj->bhwi", cams_ss.R, rays)
    lin = shade(normals, albedo, mask, cams_ss, lighting, view_dirs=view)
    rgb = linear_to_srgb(lin)
    alpha = mask.to(rgb.dtype)[..., None]
    rgba = torch.cat([rgb * alpha, alpha], -1)
    if ss > 1:
        rgba = tf.avg_pool2d(rgba.permute(0, 3, 1, 2), ss).permute(0, 2, 3, 1)
        a = rgba[..., 3:4]
        rgba = torch.cat([rgba[..., :3] / a.clamp_min(1e-8) * (a > 0), a], -1)
    return (rgba, frags) if return_fragments else rgba
