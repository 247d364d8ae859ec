"""neural_render: a pure-PyTorch rasterizer (CPU and CUDA) with differentiable G-buffers, soft silhouettes,
texture sampling and shading.

    from capture import Camera
    from neural_render import rasterize, interpolate, render_mesh

    frags = rasterize(verts, faces, cameras)          # Fragments: face_idx, bary, depth (B, H, W)
    uv = interpolate(uvs, frags, face_uvs)            # (B, H, W, 2), differentiable
    rgba = render_mesh(verts, faces, cameras, uvs=uvs, face_uvs=face_uvs, texture=albedo)
"""

import core  # noqa: F401 - first: OpenMP's passive wait policy before torch loads (core/runtime.py)
from neural_render.bake import BakeConfig, BakeResult, bake_texture
from neural_render.cgi import render_cgi
from neural_render.deferred import DeferredNeuralRenderer
from neural_render.ensemble import NeuralEnsemble, load_double
from neural_render.gbuffer import GBuffer, gbuffer, uv_fragments
from neural_render.interpolate import interpolate
from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig, load_model, save_model
from neural_render.neural_texture import NeuralTexture
from neural_render.p3d_backend import pytorch3d_available
from neural_render.raster import Fragments, check_mesh, rasterize
from neural_render.shading import Lighting, composite, face_normals, render_mesh, shade, vertex_normals
from neural_render.silhouette import soft_silhouette
from neural_render.texture import MipTexture, linear_to_srgb, mip_pyramid, sample_texture, srgb_to_linear

__all__ = [
    "Fragments", "rasterize", "check_mesh", "interpolate",
    "sample_texture", "mip_pyramid", "MipTexture", "srgb_to_linear", "linear_to_srgb",
    "face_normals", "vertex_normals", "Lighting", "shade", "render_mesh", "composite",
    "soft_silhouette", "pytorch3d_available",
    "GBuffer", "gbuffer", "uv_fragments", "BakeConfig", "BakeResult", "bake_texture", "render_cgi",
    "NeuralTexture", "DeferredNeuralRenderer", "NeuralDouble", "NeuralDoubleConfig", "load_model", "save_model",
    "NeuralEnsemble", "load_double",
]
