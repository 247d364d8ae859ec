"""Colour on scans: closest-point queries with barycentrics, colour lookup on a scan (vertex colours or a
texture), and the transfer of a scan's colour into a registered template's UV space (the albedo of the rig).

Units: metres; colours sRGB in [0, 1]; textures (H, W, 3) with row 0 at the top and uv v pointing up
(v = 1 is row 0), the convention of Anny's UVs and glTF/OBJ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["closest_on_mesh", "sample_image", "mesh_colors_at", "scan_colors_at", "TextureTransfer",
           "transfer_texture"]


def closest_on_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest surface points of the mesh (vertices (V, 3), faces (F, 3)) to points (P, 3): (face index (P,)
    int64, barycentrics (P, 3) float64 (sum 1, >= 0), distance (P,) metres). Exact (open3d RaycastingScene)."""
    import open3d as o3d

    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
    q = np.asarray(points, np.float64)
    r = scene.compute_closest_points(o3d.core.Tensor(q.astype(np.float32)))
    fi = r["primitive_ids"].numpy().astype(np.int64)
    c = r["points"].numpy().astype(np.float64)
    a, b, cc = v[f[fi, 0]], v[f[fi, 1]], v[f[fi, 2]]
    bary = _barycentric(c, a, b, cc)
    return fi, bary, np.linalg.norm(q - c, axis=1)


def _barycentric(p, a, b, c) -> np.ndarray:
    """Barycentrics (P, 3) of points p (P, 3) in triangles (a, b, c) (P, 3 each), clipped to >= 0, sum 1."""
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) < 1e-30, 1e-30, den)
    w1 = (d11 * d20 - d01 * d21) / den
    w2 = (d00 * d21 - d01 * d20) / den
    w = np.clip(np.stack([1 - w1 - w2, w1, w2], 1), 0.0, None)
    return w / np.maximum(w.sum(1, keepdims=True), 1e-12)


def sample_image(uv: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Bilinear lookup of image (H, W, C) at uv (P, 2) (v up, wrapped into [0, 1)) -> (P, C) float64."""
    img = np.asarray(image, np.float64)
    H, W = img.shape[:2]
    uv = np.mod(np.asarray(uv, np.float64), 1.0)
    x = uv[:, 0] * W - 0.5
    y = (1.0 - uv[:, 1]) * H - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    xa, xb = np.clip(x0, 0, W - 1), np.clip(x0 + 1, 0, W - 1)
    ya, yb = np.clip(y0, 0, H - 1), np.clip(y0 + 1, 0, H - 1)
    return ((img[ya, xa] * (1 - fx) + img[ya, xb] * fx) * (1 - fy) + (img[yb, xa] * (1 - fx) + img[yb, xb] * fx) * fy)


def mesh_colors_at(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, *, colors: np.ndarray | None = None,
                   uvs: np.ndarray | None = None, face_uvs: np.ndarray | None = None,
                   texture: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The colour of a coloured mesh at its closest surface point to each of points (P, 3): by its texture
    (uvs (T, 2) through face_uvs (F, 3), or per vertex through faces when face_uvs is None) or by its vertex
    colours (V, 3). Returns (colours (P, 3) float64 sRGB, distance (P,) metres)."""
    fi, bary, dist = closest_on_mesh(points, vertices, faces)
    if texture is not None and uvs is not None:
        fuv = np.asarray(faces if face_uvs is None else face_uvs, np.int64)
        uv = (np.asarray(uvs, np.float64)[fuv[fi]] * bary[:, :, None]).sum(1)
        return sample_image(uv, texture)[:, :3], dist
    if colors is None:
        raise ValueError("mesh_colors_at: the mesh has neither a texture with uvs nor vertex colours")
    f = np.asarray(faces, np.int64)
    return (np.asarray(colors, np.float64)[f[fi]] * bary[:, :, None]).sum(1), dist


def scan_colors_at(scan, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scan's colour (texture or vertex colours) at its closest point to each of points (P, 3) ->
    (colours (P, 3) sRGB, distance (P,) metres). ValueError when the scan has no colour."""
    if not scan.has_color:
        raise ValueError(f"{scan.path}: the scan has no vertex colours or texture")
    return mesh_colors_at(points, scan.vertices, scan.faces, colors=scan.colors, uvs=scan.uvs,
                          face_uvs=scan.face_uvs, texture=scan.texture)


@dataclass(frozen=True)
class TextureTransfer:
    """texture (S, S, 3) float32 sRGB in [0, 1] in the template's UV layout; covered (S, S) bool: texels
    inside a UV triangle whose surface point found scan colour within ``max_distance_m`` (the rest are
    filled from their neighbours); coverage: covered fraction of the texels inside UV triangles."""

    texture: np.ndarray
    covered: np.ndarray
    coverage: float


def transfer_texture(scan, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray,
                     size: int = 1024, max_distance_m: float = 0.01) -> TextureTransfer:
    """Bake the scan's colour into the UV space of a template registered onto it: vertices (V, 3) registered
    template (scan frame, metres), faces (F, 3), uvs (T, 2) (v up), face_uvs (F, 3). Each texel's surface
    point on the template takes the scan's colour at its closest scan point (when within max_distance_m);
    texels over holes and the gutter between UV islands are filled by dilation from covered texels."""
    import cv2
    import torch

    from capture.camera import Camera
    from neural_render import rasterize

    S = int(size)
    uv = np.asarray(uvs, np.float64)
    # The UV layout seen by a pinhole camera at the origin looking at the plane z = 1: pixel (x, y) = (u S, (1 - v) S).
    pts = torch.as_tensor(np.stack([uv[:, 0], 1.0 - uv[:, 1], np.ones(len(uv))], 1), dtype=torch.float64)
    cam = Camera(K=torch.tensor([[S, 0.0, 0.0], [0.0, S, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64),
                 R=torch.eye(3, dtype=torch.float64), t=torch.zeros(3, dtype=torch.float64), width=S, height=S)
    with torch.no_grad():
        fr = rasterize(pts, torch.as_tensor(np.asarray(face_uvs, np.int64)), cam, near=0.5)
    fidx = fr.face_idx[0].numpy()
    bary = fr.bary[0].double().numpy()
    inside = fidx >= 0
    f = np.asarray(faces, np.int64)[fidx[inside]]
    p3 = (np.asarray(vertices, np.float64)[f] * bary[inside][:, :, None]).sum(1)
    col, dist = scan_colors_at(scan, p3)
    tex = np.zeros((S, S, 3), np.float32)
    covered = np.zeros((S, S), bool)
    good = dist <= max_distance_m
    ys, xs = np.nonzero(inside)
    tex[ys[good], xs[good]] = col[good]
    covered[ys[good], xs[good]] = True
    coverage = float(covered.sum() / max(inside.sum(), 1))
    if covered.any() and not covered.all():
        # Fill the rest from covered texels (holes and gutters): OpenCV's Telea inpainting on 8-bit data.
        img8 = (np.clip(tex, 0, 1) * 255 + 0.5).astype(np.uint8)
        filled = cv2.inpaint(img8, (~covered).astype(np.uint8), 3, cv2.INPAINT_TELEA)
        tex = np.where(covered[..., None], tex, filled.astype(np.float32) / 255.0)
    return TextureTransfer(texture=tex, covered=covered, coverage=coverage)
