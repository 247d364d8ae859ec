"""Optional pytorch3d backend behind ``rasterize(..., backend="pytorch3d")``: the same Fragments, computed by
pytorch3d's MeshRasterizer. Used only when pytorch3d is importable (it has no CPU wheel on PyPI)."""

from __future__ import annotations

import torch
from torch import Tensor

from capture.camera import Camera
from core.errors import MissingDependencyError
from neural_render.fragments import Fragments

__all__ = ["pytorch3d_available", "rasterize_pytorch3d"]


def pytorch3d_available() -> bool:
    """True when pytorch3d can be imported."""
    try:
        import pytorch3d.renderer  # noqa: F401
    except ImportError:
        return False
    return True


def rasterize_pytorch3d(verts: Tensor, faces: Tensor, cams: Camera, *, near: float, far: float,
                        cull_backfaces: bool):
    """verts (V, 3) or (B, V, 3), faces (F, 3), cams a batch of B cameras -> Fragments (see ``rasterize``).

    OpenCV cameras are converted with ``pytorch3d.utils.cameras_from_opencv_projection``; near clipping uses
    pytorch3d's ``z_clip_value``; ``far`` is applied to the result (pytorch3d has no far plane here).
    """
    try:
        from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
        from pytorch3d.structures import Meshes
        from pytorch3d.utils import cameras_from_opencv_projection
    except ImportError as e:
        raise MissingDependencyError(
            "rasterize(backend='pytorch3d') needs pytorch3d, which is not installed; build it from source "
            "(pip install 'git+https://github.com/facebookresearch/pytorch3d.git') or use backend='torch'"
        ) from e
    B, H, W = len(cams), cams.height, cams.width
    F = faces.shape[0]
    vb = verts.expand(B, -1, -1) if verts.dim() == 2 else verts
    size = torch.tensor([[H, W]] * B, device=verts.device)
    p3 = cameras_from_opencv_projection(R=cams.R, tvec=cams.t, camera_matrix=cams.K, image_size=size)
    meshes = Meshes(verts=list(vb), faces=[faces] * B)
    settings = RasterizationSettings(image_size=(H, W), blur_radius=0.0, faces_per_pixel=1,
                                     cull_backfaces=cull_backfaces, z_clip_value=near, perspective_correct=True)
    fr = MeshRasterizer(cameras=p3, raster_settings=settings)(meshes)
    p2f = fr.pix_to_face[..., 0]
    offset = (torch.arange(B, device=verts.device) * F)[:, None, None]
    face_idx = torch.where(p2f >= 0, p2f - offset, -1)
    depth = fr.zbuf[..., 0]
    ok = (face_idx >= 0) & (depth <= far)
    face_idx = torch.where(ok, face_idx, -1)
    depth = torch.where(ok, depth, torch.full_like(depth, float("inf")))
    bary = fr.bary_coords[..., 0, :] * ok[..., None]
    return Fragments(face_idx=face_idx.long(), bary=bary.to(verts.dtype), depth=depth.to(verts.dtype))
