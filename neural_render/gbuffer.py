"""G-buffers of a textured mesh for deferred rendering: per-pixel UVs, normals, view directions and coverage,
plus the UV-space rasterization (which face and barycentrics cover each texel) used by texture baking.

Everything here takes plain tensors (vertices, faces, UVs, cameras), never a rig."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as tf
from torch import Tensor

from capture.camera import Camera
from neural_render.fragments import Fragments
from neural_render.interpolate import interpolate
from neural_render.raster import check_mesh, fragments_for_faces, full_precision, rasterize
from neural_render.shading import vertex_normals

__all__ = ["GBuffer", "gbuffer", "gbuffer_fragments", "uv_fragments", "check_uv_layout"]


@dataclass(frozen=True)
class GBuffer:
    """Per-pixel surface attributes of B views of H x W pixels (0 where no face is visible).

    mask (B, H, W) bool: a face is visible. uv (B, H, W, 2): texture coordinates (v up).
    normal (B, H, W, 3): world-space unit normals. normal_cam (B, H, W, 3): the same in each camera's frame.
    view_dir (B, H, W, 3): world-space unit direction from the camera through each pixel (every pixel).
    depth (B, H, W): camera z in metres, +inf on background.
    """

    mask: Tensor
    uv: Tensor
    normal: Tensor
    normal_cam: Tensor
    view_dir: Tensor
    depth: Tensor

    def crop(self, y0: int, x0: int, h: int, w: int) -> GBuffer:
        """The same G-buffer restricted to rows y0:y0+h and columns x0:x0+w."""
        return GBuffer(*(t[:, y0:y0 + h, x0:x0 + w] for t in (self.mask, self.uv, self.normal, self.normal_cam,
                                                              self.view_dir, self.depth)))

    def index(self, idx) -> GBuffer:
        """Views ``idx`` (a list or tensor of view indices) of the G-buffer."""
        return GBuffer(*(t[idx] for t in (self.mask, self.uv, self.normal, self.normal_cam, self.view_dir,
                                          self.depth)))

    def to(self, device) -> GBuffer:
        """The same G-buffer on ``device`` (no copy where it is there already)."""
        return GBuffer(*(t.to(device) for t in (self.mask, self.uv, self.normal, self.normal_cam, self.view_dir,
                                                self.depth)))

    @staticmethod
    def cat(items: list[GBuffer]) -> GBuffer:
        """Concatenate G-buffers of the same H x W along the view axis."""
        return GBuffer(*(torch.cat([getattr(g, k) for g in items]) for k in ("mask", "uv", "normal", "normal_cam",
                                                                             "view_dir", "depth")))


def check_uv_layout(uvs: Tensor, face_uvs: Tensor, faces: Tensor, what: str = "mesh") -> None:
    """ValueError naming ``what`` unless uvs (T, 2) is finite and face_uvs (F, 3) indexes it like faces (F, 3)."""
    if uvs.dim() != 2 or uvs.shape[1] != 2 or not bool(torch.isfinite(uvs).all()):
        raise ValueError(f"{what}: uvs must be finite (T, 2), got {tuple(uvs.shape)}")
    if face_uvs.shape != faces.shape:
        raise ValueError(f"{what}: face_uvs must be {tuple(faces.shape)} like faces, got {tuple(face_uvs.shape)}")
    if face_uvs.numel() and (int(face_uvs.min()) < 0 or int(face_uvs.max()) >= uvs.shape[0]):
        raise ValueError(f"{what}: face_uvs index outside [0, {uvs.shape[0]})")


def gbuffer(verts: Tensor, faces: Tensor, uvs: Tensor, face_uvs: Tensor, cameras: Camera,
            near: float = 0.01) -> GBuffer:
    """Rasterize a mesh into the G-buffer of every camera.

    verts (V, 3) seen by every camera, or (B, V, 3) one mesh per camera, world metres; faces (F, 3);
    uvs (T, 2) v up; face_uvs (F, 3) into uvs; cameras: B pinhole cameras (one size).
    Differentiable w.r.t. verts (through the barycentrics) but usually used without autograd.
    """
    return gbuffer_fragments(verts, faces, uvs, face_uvs, cameras, near)[0]


@full_precision
def gbuffer_fragments(verts: Tensor, faces: Tensor, uvs: Tensor, face_uvs: Tensor, cameras: Camera,
                      near: float = 0.01, face_idx: Tensor | None = None) -> tuple[GBuffer, Fragments]:
    """(G-buffer, its Fragments) as ``gbuffer``; with face_idx (B, H, W) (the visible faces of an earlier
    rasterization, -1 = background) visibility is not recomputed: the barycentrics of those faces are
    re-evaluated for verts (``fragments_for_faces``: a cheap first-order G-buffer for small vertex motions)."""
    verts, faces = check_mesh(verts, faces, "gbuffer")
    uvs = torch.as_tensor(uvs, dtype=verts.dtype, device=verts.device)
    face_uvs = torch.as_tensor(face_uvs, device=verts.device).long()
    check_uv_layout(uvs, face_uvs, faces, "gbuffer")
    cams = cameras.as_batch().to(device=verts.device, dtype=verts.dtype)
    if verts.dim() == 3 and len(cams) == 1 and verts.shape[0] > 1:
        cams = Camera.stack([cams] * verts.shape[0])
    frags = rasterize(verts, faces, cams, near=near) if face_idx is None else \
        fragments_for_faces(verts, faces, cams, face_idx)
    mask = frags.mask
    uv = interpolate(uvs, frags, face_uvs)
    n = tf.normalize(interpolate(vertex_normals(verts, faces), frags, faces), dim=-1, eps=1e-12)
    rays = tf.normalize(cams.pixel_rays(), dim=-1)                          # (B, H, W, 3) camera frame
    view = torch.einsum("bji,bhwj->bhwi", cams.R, rays)                     # world: R^T d
    # Two-sided surfaces: a normal facing away from the viewer is flipped (the back of a thin part).
    flip = (n * view).sum(-1, keepdim=True) > 0
    n = torch.where(flip, -n, n) * mask[..., None]
    n_cam = torch.einsum("bij,bhwj->bhwi", cams.R, n)
    return GBuffer(mask=mask, uv=uv, normal=n, normal_cam=n_cam, view_dir=view, depth=frags.depth), frags


def uv_fragments(uvs: Tensor, face_uvs: Tensor, size: int) -> Fragments:
    """Rasterize the UV layout into a size x size texel grid: which face covers each texel, and where.

    uvs (T, 2) v up, face_uvs (F, 3). Texel (row i, column j) has its centre at u = (j + 0.5) / size,
    v = 1 - (i + 0.5) / size (row 0 at the top, as images and ``sample_texture`` store textures).
    Returns Fragments of shape (1, size, size): face_idx (-1 outside every UV island) and barycentrics that
    interpolate any per-vertex attribute of the face (through ``faces``) at the texel centre.
    """
    uvs = torch.as_tensor(uvs)
    dt = uvs.dtype if uvs.is_floating_point() else torch.float32
    # Points (u, 1 - v, 1) seen by a pinhole at the origin with K = diag(size, size, 1): pixel = size * (u, 1 - v).
    pts = torch.stack([uvs[:, 0], 1 - uvs[:, 1], torch.ones_like(uvs[:, 0])], -1).to(torch.float64)
    K = torch.diag(torch.tensor([float(size), float(size), 1.0], dtype=torch.float64))
    cam = Camera(K=K, R=torch.eye(3, dtype=torch.float64), t=torch.zeros(3, dtype=torch.float64),
                 width=size, height=size, name="uv")
    frags = rasterize(pts.to(uvs.device), torch.as_tensor(face_uvs, device=uvs.device).long(),
                      cam.to(device=uvs.device), near=0.5)
    return Fragments(face_idx=frags.face_idx, bary=frags.bary.to(dt), depth=frags.depth.to(dt))
