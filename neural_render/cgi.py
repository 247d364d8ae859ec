"""The CGI renderer: a baked texture on the posed mesh with Doppel's existing shading. It is the baseline the
neural renderer has to beat, and the look of the double in DCC tools (the same texture goes into the exports)."""

from __future__ import annotations

import torch
from torch import Tensor

from capture.camera import Camera
from neural_render.gbuffer import gbuffer
from neural_render.shading import Lighting, shade
from neural_render.texture import sample_texture

__all__ = ["render_cgi"]


def render_cgi(verts: Tensor, faces: Tensor, uvs: Tensor, face_uvs: Tensor, cameras: Camera, texture: Tensor,
               lighting: Lighting | None = None) -> Tensor:
    """Render the textured mesh: (B, H, W, 4) straight-alpha RGBA, linear RGB.

    verts (V, 3) or (B, V, 3) world metres, faces (F, 3), uvs (T, 2) v up, face_uvs (F, 3), cameras (B views);
    texture (Ht, Wt, 3) linear RGB, bilinear + mip-mapped. lighting None: the texture is radiance as baked from
    the photos (the photogrammetry convention: the capture's lighting is in the texture); a ``Lighting``: the
    texture is albedo, Lambert-shaded with it (``shade``). Alpha is the mesh coverage (0 or 1).
    """
    g = gbuffer(verts, faces, uvs, face_uvs, cameras)
    tex = torch.as_tensor(texture, dtype=g.uv.dtype, device=g.uv.device)
    col = sample_texture(g.uv, tex, mask=g.mask)
    if lighting is not None:
        cams = cameras.as_batch().to(device=g.uv.device, dtype=g.uv.dtype)
        if len(cams) == 1 and g.mask.shape[0] > 1:
            cams = Camera.stack([cams] * g.mask.shape[0])
        col = shade(g.normal, col, g.mask, cams, lighting, view_dirs=g.view_dir)
    alpha = g.mask.to(col.dtype)[..., None]
    return torch.cat([col * alpha, alpha], -1)
