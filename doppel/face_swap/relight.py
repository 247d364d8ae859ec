"""The double's head relit by the plate's light: second-order spherical harmonics fitted to the plate's skin.

A face in a plate shows how it is lit: with the tracked head's surface normals at each pixel, the plate's skin
luminance is a smooth function of the normal (Lambertian skin under distant light is, to within a few percent,
a second-order spherical-harmonic function of it; Ramamoorthi & Hanrahan 2001). Those 9 coefficients are fitted
to the plate's skin (skin-coloured pixels of the face: brows, eyes and lips fail the colour test) and the
double's albedo is shaded with
them, clamped to the range of shading the fit saw (normals outside it, under the nose or chin, are not
extrapolated), so its face has the plate's light direction and softness instead of Doppel's preview rig. The
overall colour and level are then matched by the LAB transfer.
"""

from __future__ import annotations

import numpy as np

MIN_FIT_PIXELS = 200      # fewer skin pixels than this: no fit (the preview-lit render is used)
RIDGE = 1e-2              # ridge on the second-order coefficients, relative to the data's scale
CLAMP_PERCENTILES = (2.0, 98.0)   # the shading is kept within these percentiles of the fitted pixels' shading


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """(..., 9) real spherical harmonics up to order 2 (constants folded into the coefficients) of unit normals
    (..., 3)."""
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    return np.stack([np.ones_like(x), x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1], -1)


def fit_sh_shading(luma: np.ndarray, normals: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Coefficients (9,) of the plate's shading: linear luminance luma (H, W) ~ sh_basis(normals (H, W, 3)) @ c
    over mask (H, W) bool, by ridge least squares. None when the mask has fewer than MIN_FIT_PIXELS pixels."""
    sel = np.asarray(mask, bool) & np.isfinite(normals).all(-1)
    if sel.sum() < MIN_FIT_PIXELS:
        return None
    A = sh_basis(normals[sel]).astype(np.float64)
    b = luma[sel].astype(np.float64)
    reg = np.r_[np.zeros(4), np.full(5, RIDGE)] * float(len(b))
    return np.linalg.solve(A.T @ A + np.diag(reg) * max(float(np.mean(b ** 2)), 1e-8), A.T @ b)


def linear_luma(srgb: np.ndarray) -> np.ndarray:
    """(H, W) linear luminance (Rec. 709) of an sRGB image (H, W, 3) float [0, 1] or uint8."""
    import torch

    from neural_render.face_composite import as_float_rgb
    from neural_render.texture import srgb_to_linear

    lin = srgb_to_linear(torch.from_numpy(as_float_rgb(srgb))).numpy()
    return lin @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def head_buffers(double, R: np.ndarray, t: np.ndarray, weights: np.ndarray, K: np.ndarray,
                 box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(albedo (h, w, 3) linear RGB, normals (h, w, 3) unit, camera frame; NaN off the head) of the double's head
    with expression weights (E,) in the crop box of the plate camera K, head pose R, t."""
    import torch

    from doppel.face_swap.crop import crop_camera
    from neural_render.shading import Lighting, render_mesh, vertex_normals
    from neural_render.texture import srgb_to_linear

    cam = crop_camera(K, R, t, box)
    verts = torch.tensor(double.head_mesh(weights), dtype=torch.float32)
    faces = torch.as_tensor(double.head_faces)
    flat = Lighting(ambient=(1.0, 1.0, 1.0), sky=(0.0, 0.0, 0.0), ground=(0.0, 0.0, 0.0), directions=[], colors=[])
    kw = {"cull_backfaces": True, "lighting": flat, "supersample": 2}
    with torch.no_grad():
        if double.albedo is not None and double.uvs is not None:
            alb = render_mesh(verts, faces, cam, uvs=torch.as_tensor(double.uvs),
                              face_uvs=torch.as_tensor(double.face_uvs), texture=torch.as_tensor(double.albedo), **kw)
        else:
            alb = render_mesh(verts, faces, cam, **kw)
        n_cam = vertex_normals(verts, faces) @ torch.tensor(R, dtype=torch.float32).T
        nrm = render_mesh(verts, faces, cam, vertex_colors=(n_cam + 1) / 2, texture_srgb=False, **kw)
    albedo = srgb_to_linear(alb[0, ..., :3]).numpy()
    n = srgb_to_linear(nrm[0, ..., :3]).numpy() * 2 - 1
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
    n[alb[0, ..., 3].numpy() < 0.5] = np.nan
    return albedo.astype(np.float32), n.astype(np.float32)


def relit_head(double, R: np.ndarray, t: np.ndarray, weights: np.ndarray, K: np.ndarray,
               box: tuple[int, int, int, int], plate_box: np.ndarray, skin: np.ndarray, lens=None
               ) -> np.ndarray | None:
    """(h, w, 3) float32 sRGB: the double's head in the box shaded by the plate's light, fitted on the plate's
    skin pixels ``skin`` (h, w) bool of plate_box (h, w, 3); None when too little skin is visible to fit. lens:
    the plate's `PlateLens` (K is its): the head's buffers drawn in its distortion-free image and warped into the
    plate's pixels."""
    import torch

    from neural_render.texture import linear_to_srgb

    if lens is not None and lens.distorted:
        from doppel.face_swap.render_head import ideal_draw

        ideal, Ki, size, s = ideal_draw(lens, K, box)
        albedo, normals = (lens.to_plate(b, ideal, box, s) for b in
                           head_buffers(double, R, t, weights, Ki, (0, 0, size[0] - 1, size[1] - 1)))
    else:
        albedo, normals = head_buffers(double, R, t, weights, K, box)
    coef = fit_sh_shading(linear_luma(plate_box), normals, skin)
    if coef is None:
        return None
    on = np.isfinite(normals).all(-1)
    fitted = sh_basis(normals[skin & on]) @ coef
    lo, hi = np.percentile(fitted, CLAMP_PERCENTILES)
    shading = np.clip(sh_basis(np.nan_to_num(normals)) @ coef, max(lo, 1e-4), max(hi, 2e-4))
    shading = shading / float(np.median(fitted).clip(1e-4))
    # at half exposure (median shading 0.5) so highlights are not clipped before the LAB transfer sets the level
    lin = np.clip(albedo * shading[..., None].astype(np.float32) * 0.5, 0.0, 1.0)
    return linear_to_srgb(torch.from_numpy(lin)).numpy().astype(np.float32)
