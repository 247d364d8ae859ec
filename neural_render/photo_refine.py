"""The fitted mesh refined to the calibrated photos before the bake and the neural double's training.

A fit is a few millimetres off the actor (the body model's shape space, the pose, noisy landmarks); on the
Cycles capture its outlines are 0.5-0.8 px off at 384 px in every camera, and half of a face close-up's error
sits in the 2-pixel band along the outline. ``photo_refine`` moves every vertex along its normal by a smooth
offset (V,) metres:

- outline term (on by default): points of the mesh's silhouette edges in each camera should lie on the
  half-coverage contour of that photo's matte (``person_matte``: each pixel's position on the line from the
  backdrop colour to the nearest person colour), blurred coarse to fine; only points on the person's outer
  outline, where the person's colour differs from the backdrop, count;
- photo term (``w_photo``, off by default): the robust spread of the colours the cameras see at each surface
  point (texels of a UV grid, the bake's visibility) around their weighted mean, the photos blurred by the same
  footprint in millimetres on the body in every camera. On the Cycles capture this spread is dominated by
  view-dependent shading (the ground-truth mesh scores only 3 % better than the fit) and the optimiser moved
  the outline inward instead; a mask term keeps seen points inside the person masks.

The offsets are a smoothed field of free variables (``smooth_vertex_field``: a linear low-pass, so every step is
smooth), clamped to ``max_offset`` by a tanh, with a small L2 towards the fit. Only the cameras given are used
(the trainer gives the training cameras, never held-out ones); topology and UV layout are unchanged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as tf
from torch import Tensor

from capture.camera import Camera
from neural_render.bake import BakeConfig, push_pull_fill, valid_pixels, view_weights
from neural_render.gbuffer import uv_fragments
from neural_render.raster import check_mesh, rasterize
from neural_render.shading import vertex_normals
from neural_render.silhouette import mesh_edges, silhouette_edges

log = logging.getLogger(__name__)

__all__ = ["PhotoRefineConfig", "PhotoRefineResult", "photo_refine", "smooth_vertex_field", "photo_consistency"]


@dataclass
class PhotoRefineConfig:
    """Settings of ``photo_refine``."""

    steps: int = 150              # Adam steps in all, split evenly over the blur levels
    lr: float = 2e-4              # Adam learning rate of the free variables (metres per step, before smoothing)
    texels: int = 384             # side of the UV grid whose covered texels are the surface sample points
    blur_mm: tuple[float, ...] = (8.0, 4.0, 2.0)  # coarse-to-fine Gaussian blur of the photos: its standard
                                                  # deviation in millimetres on the body (pixels = mm * f / depth)
    smooth_iterations: int = 20   # neighbour-averaging passes that turn the free variables into the offsets
    max_offset: float = 0.02      # metres: offsets are clamped to +- this
    w_mask: float = 1.0           # mean squared (1 - person mask) at the projections of the seen points
    w_offset: float = 2e-3        # mean squared offset in mm (stay near the fit where the photos say nothing)
    robust: float = 0.02          # Charbonnier scale of the colour differences (sRGB units)
    min_views: int = 2            # points seen by fewer cameras do not count
    edge_margin: int = 2          # pixels of each silhouette (mesh or mask) whose colours are not used
    w_photo: float = 0.0          # weight of the colour spread (0 = off: on the Cycles capture it moved the outline
                                  # inward by about a pixel and cost the held-out face close-up 3 dB)
    w_outline: float = 1.0        # weight of the outline term: mean squared (matte - 0.5) at the mesh's outline
    outline_blur_px: tuple[float, ...] = (2.0, 1.0, 0.5)  # Gaussian blur of the mattes per level (pixels)
    outline_max_px_per_mm: float = 0.0  # > 0: cameras that see the person at more pixels per millimetre than this
                                        # (close-ups; at their median depth) do not contribute to the outline
                                        # term: their hair and skin rims span pixels and bias the matte inward
    min_contrast: float = 0.1     # outline points whose person colour is closer than this (sRGB) to the backdrop's
                                  # do not count (the matte is unreliable there: a grey highlight on grey)


@dataclass(frozen=True)
class PhotoRefineResult:
    """What ``photo_refine`` found."""

    offsets: Tensor               # (V,) float32 metres along the unrefined mesh's vertex normals
    loss_before: float            # photo-consistency at the finest blur level, unrefined mesh
    loss_after: float             # ... refined mesh
    points: int                   # surface sample points seen by at least min_views cameras
    history: list[float]          # loss of every step (each blur level's own scale)


def smooth_vertex_field(x: Tensor, faces: Tensor, iterations: int) -> Tensor:
    """x (V,) or (V, C) averaged ``iterations`` times with its mesh neighbours (faces (F, 3)): each pass gives
    every vertex the mean of itself and its edge neighbours (weighted by the faces sharing the edge). Linear
    and differentiable; a constant field is unchanged."""
    if iterations <= 0:
        return x
    f = faces.reshape(-1)
    cols = x if x.dim() == 2 else x[:, None]
    count = torch.zeros(len(x), 1, dtype=cols.dtype, device=cols.device).index_add(
        0, f, torch.full((len(f), 1), 2.0, dtype=cols.dtype, device=cols.device)) + 1.0
    a, b = faces.roll(1, 1).reshape(-1), faces.roll(-1, 1).reshape(-1)
    for _ in range(iterations):
        cols = (cols + torch.zeros_like(cols).index_add(0, f, cols[a] + cols[b])) / count
    return cols if x.dim() == 2 else cols[:, 0]


def _gaussian_blur(img: Tensor, sigma: float) -> Tensor:
    """img (C, H, W) blurred by a separable Gaussian of ``sigma`` pixels (unchanged below 0.3)."""
    if sigma < 0.3:
        return img
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = img.shape[0]
    out = tf.conv2d(tf.pad(img[None], (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1),
                    groups=c)
    out = tf.conv2d(tf.pad(out, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return out[0]


@dataclass
class _Pairs:
    """The (point, camera) observations: for camera k, rows ``sel[k]`` of the points and their weights."""

    sel: list[Tensor]             # per camera: (P_k,) long indices of the points it sees
    weight: list[Tensor]          # per camera: (P_k,) weights (cos^2 of the view angle)
    depth: list[float]            # per camera: median depth of its points (metres)


def _observations(verts: Tensor, faces: Tensor, pos: Tensor, nrm: Tensor, cams: Camera,
                  masks: Sequence[Tensor], cfg: PhotoRefineConfig) -> _Pairs:
    """Which cameras see which sample points on the unrefined mesh (the bake's visibility test)."""
    bake = BakeConfig()
    sel, weight, depth = [], [], []
    for k, cam in enumerate(cams):
        with torch.no_grad():
            zbuf = rasterize(verts, faces, cam).depth[0]
        valid = valid_pixels(zbuf, masks[k], cfg.edge_margin)
        w, cos, _ = view_weights(pos, nrm, cam, zbuf, valid, bake)
        idx = (w > 0).nonzero()[:, 0]
        sel.append(idx)
        weight.append(cos[idx] ** 2)
        z = (pos[idx] @ cam.R.T + cam.t)[:, 2]
        depth.append(float(z.median()) if len(z) else 1.0)
    return _Pairs(sel, weight, depth)


def _project(points: Tensor, cam: Camera) -> Tensor:
    """(N, 2) grid_sample coordinates in [-1, 1] (align_corners=False) of world points (N, 3) in a pinhole
    camera (``Camera.project`` without distortion: its pixel coordinates put pixel centres at integer + 0.5)."""
    uv = cam.project(points, distort=False)[0]
    return torch.stack([uv[:, 0] / cam.width * 2 - 1, uv[:, 1] / cam.height * 2 - 1], -1)


def photo_consistency(points: Tensor, cams: Camera, images: Sequence[Tensor], masks: Sequence[Tensor],
                      pairs: _Pairs, cfg: PhotoRefineConfig) -> tuple[Tensor, Tensor]:
    """(colour spread, mask term): scalars for sample points (N, 3) and the cameras' (blurred) images (3, H, W)
    and person masks (1, H, W): the weighted mean Charbonnier distance of each observation's colour to the
    weighted mean colour of its point (points seen by >= min_views cameras), and the mean squared (1 - mask)
    at the observations."""
    n = len(points)
    cols, ws, ids, outside = [], [], [], []
    for k, cam in enumerate(cams):
        if len(pairs.sel[k]) == 0:
            continue
        g = _project(points[pairs.sel[k]], cam)[None, None]
        cols.append(tf.grid_sample(images[k][None], g, mode="bilinear", padding_mode="border",
                                   align_corners=False)[0, :, 0].T)
        m = tf.grid_sample(masks[k][None], g, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0, 0]
        outside.append((1 - m) ** 2)
        ws.append(pairs.weight[k])
        ids.append(pairs.sel[k])
    col, w, idx = torch.cat(cols), torch.cat(ws), torch.cat(ids)
    wsum = torch.zeros(n, dtype=w.dtype, device=w.device).index_add(0, idx, w)
    cnt = torch.zeros(n, dtype=w.dtype, device=w.device).index_add(0, idx, torch.ones_like(w))
    mean = torch.zeros(n, 3, dtype=col.dtype, device=col.device).index_add(0, idx, col * w[:, None])
    mean = mean / wsum.clamp_min(1e-12)[:, None]
    keep = (cnt[idx] >= cfg.min_views).to(w.dtype) * w
    d2 = ((col - mean[idx]) ** 2).sum(-1)
    spread = (torch.sqrt(d2 + cfg.robust ** 2) - cfg.robust) * keep
    return spread.sum() / keep.sum().clamp_min(1e-12), torch.cat(outside).mean()


def person_matte(image: Tensor, mask: Tensor, erode: int = 2) -> tuple[Tensor, Tensor]:
    """(alpha (H, W) in [0, 1], contrast (H, W) sRGB distance of the person colour from the backdrop) of a photo
    (H, W, 3) sRGB in front of a uniform backdrop with its person mask (H, W) bool: the backdrop colour is the
    median outside the mask, the person colour at every pixel the nearest colour of the mask eroded by
    ``erode`` pixels (push-pull fill), and alpha the pixel's position on the line backdrop -> person colour
    (an anti-aliased edge pixel that is 30 % person gets 0.3). 1 inside the eroded mask, 0 farther than 3
    pixels outside the mask."""
    img = torch.as_tensor(image)[..., :3].float()
    m = torch.as_tensor(mask).bool()
    bg = img[~m].median(0).values if bool((~m).any()) else torch.zeros(3)
    k = 2 * erode + 1
    inner = -tf.max_pool2d(-m.float()[None, None], k, stride=1, padding=erode)[0, 0] > 0.5
    fg = push_pull_fill(img * inner[..., None], inner.float()) if bool(inner.any()) else img
    d = fg - bg
    n2 = (d * d).sum(-1)
    alpha = (((img - bg) * d).sum(-1) / n2.clamp_min(1e-6)).clamp(0, 1)
    near = tf.max_pool2d(m.float()[None, None], 7, stride=1, padding=3)[0, 0] > 0.5
    alpha = torch.where(inner, torch.ones_like(alpha), torch.where(near, alpha, torch.zeros_like(alpha)))
    return alpha, n2.sqrt()


@dataclass
class _Outline:
    """Per camera: the blurred matte (1, H, W) of the current level, where the person's outline is (1, H, W:
    the key mask blurred, in (0, 1) near the outline) and the matte's contrast (1, H, W)."""

    matte: list[Tensor | None]
    near: list[Tensor]
    contrast: list[Tensor]


def outline_term(verts: Tensor, faces: Tensor, edges: Tensor, face_edge: Tensor, cams: Camera, ol: _Outline,
                 min_contrast: float) -> Tensor:
    """Mean squared (matte - 0.5) at points (1/4, 1/2, 3/4) of the mesh's silhouette edges in every camera that
    lie on the person's outer outline (the blurred key mask between 0.02 and 0.98 there, the matte's contrast
    above ``min_contrast``): zero when the mesh's outline runs along the photos' half-coverage contour.
    verts (V, 3) world metres (differentiable), faces (F, 3), edges / face_edge from ``mesh_edges``."""
    terms = []
    for k, cam in enumerate(cams):
        if ol.matte[k] is None:
            continue
        pc = verts @ cam.R.T + cam.t
        _, se = silhouette_edges(pc[None], faces, edges, face_edge, 0.01)
        if len(se) == 0:
            continue
        a, b = verts[edges[se, 0]], verts[edges[se, 1]]
        pts = torch.cat([a + (b - a) * t for t in (0.25, 0.5, 0.75)])
        g = _project(pts, cam)[None, None]
        with torch.no_grad():
            near = tf.grid_sample(ol.near[k][None], g, align_corners=False)[0, 0, 0]
            con = tf.grid_sample(ol.contrast[k][None], g, align_corners=False)[0, 0, 0]
            keep = (near > 0.02) & (near < 0.98) & (con > min_contrast)
        if bool(keep.any()):
            val = tf.grid_sample(ol.matte[k][None], g[:, :, keep], align_corners=False)[0, 0, 0]
            terms.append((val - 0.5) ** 2)
    if not terms:
        return verts.sum() * 0
    return torch.cat(terms).mean()


def _sample_points(verts: Tensor, faces: Tensor, uvs: Tensor, face_uvs: Tensor, size: int):
    """(face index (N,), barycentrics (N, 3)) of the texels of a size x size UV grid inside a UV island."""
    fr = uv_fragments(uvs, face_uvs, size)
    m = fr.face_idx.reshape(-1) >= 0
    return fr.face_idx.reshape(-1)[m], fr.bary.reshape(-1, 3)[m].to(verts.dtype)


def _level_data(images: Sequence[Tensor], mk: list[Tensor], cams: Camera, depth: list[float], mm: float,
                px: float, mattes: list[tuple[Tensor, Tensor]],
                max_px_per_mm: float) -> tuple[list[Tensor], list[Tensor], _Outline]:
    """The photos and masks of one coarse-to-fine level (blurred by ``mm`` on the body) and the outline maps
    (mattes blurred by ``px`` pixels)."""
    imgs, msks, ol = [], [], _Outline([], [], [])
    for k, cam in enumerate(cams):
        s = mm / 1000.0 * float(cam.K[0, 0] + cam.K[1, 1]) / 2 / depth[k]
        img = torch.as_tensor(images[k], dtype=torch.float32)[..., :3].permute(2, 0, 1)
        imgs.append(_gaussian_blur(img, s))
        msks.append(_gaussian_blur(mk[k].float()[None], s))
        close = 0 < max_px_per_mm < float(cam.K[0, 0] + cam.K[1, 1]) / 2 / depth[k] / 1000.0
        ol.matte.append(None if close else _gaussian_blur(mattes[k][0][None], px))
        ol.near.append(_gaussian_blur(mk[k].float()[None], 2.0))
        ol.contrast.append(mattes[k][1][None])
    return imgs, msks, ol


def photo_refine(verts: Tensor, faces: Tensor, uvs: Tensor, face_uvs: Tensor, cameras: Camera,
                 images: Sequence[Tensor], masks: Sequence[Tensor], config: PhotoRefineConfig | None = None,
                 progress: Callable[[int, int, float], None] | None = None) -> PhotoRefineResult:
    """Normal offsets (V,) metres that make the mesh agree with the photos (see the module doc).

    verts (V, 3) world metres, faces (F, 3), uvs (T, 2), face_uvs (F, 3); cameras: N undistorted pinholes;
    images: N sRGB (H, W, 3) float in [0, 1] at each camera's size; masks: N person masks (H, W) bool.
    progress(step, steps, loss) after each step. The refined mesh is verts + offsets[:, None] * normals with
    ``vertex_normals(verts, faces)``; loss_before / loss_after are of the outline term (the photo term when
    the outline is off) at the finest level."""
    cfg = config or PhotoRefineConfig()
    verts, faces = check_mesh(verts, faces, "photo_refine")
    verts = verts.detach().float()
    cams = cameras.as_batch().to(dtype=verts.dtype, device=verts.device)
    if len(images) != len(cams) or len(masks) != len(cams):
        raise ValueError(f"photo_refine: {len(cams)} cameras, {len(images)} images, {len(masks)} masks")
    if len(cfg.blur_mm) != len(cfg.outline_blur_px):
        raise ValueError("PhotoRefineConfig: blur_mm and outline_blur_px need one entry per level each")
    normals = vertex_normals(verts, faces)
    fidx, bary = _sample_points(verts, faces, torch.as_tensor(uvs), torch.as_tensor(face_uvs).long(), cfg.texels)
    tri = faces[fidx]
    edges, face_edge = mesh_edges(faces)

    def points(v: Tensor) -> Tensor:
        return (v[tri] * bary[:, :, None]).sum(1)

    with torch.no_grad():
        pos0 = points(verts)
        nrm0 = tf.normalize((normals[tri] * bary[:, :, None]).sum(1), dim=-1)
    mk = [torch.as_tensor(m, device=verts.device).bool() for m in masks]
    pairs = _observations(verts, faces, pos0, nrm0, cams, mk, cfg)
    mattes = [person_matte(images[k], mk[k]) for k in range(len(cams))]
    u = torch.zeros(len(verts), dtype=verts.dtype, device=verts.device, requires_grad=True)
    opt = torch.optim.Adam([u], lr=cfg.lr)
    per = max(1, cfg.steps // len(cfg.blur_mm))

    def offsets() -> Tensor:
        o = smooth_vertex_field(u, faces, cfg.smooth_iterations)
        return cfg.max_offset * torch.tanh(o / cfg.max_offset)

    def objective(o: Tensor, data) -> tuple[Tensor, Tensor]:
        v = verts + o[:, None] * normals
        main = cfg.w_outline * outline_term(v, faces, edges, face_edge, cams, data[2], cfg.min_contrast)
        if cfg.w_photo > 0:
            spread, outside = photo_consistency(points(v), cams, data[0], data[1], pairs, cfg)
            main = main + cfg.w_photo * (spread + cfg.w_mask * outside)
        return main, main + cfg.w_offset * ((o * 1000) ** 2).mean()

    history = []
    for li, (mm, px) in enumerate(zip(cfg.blur_mm, cfg.outline_blur_px, strict=True)):
        data = _level_data(images, mk, cams, pairs.depth, mm, px, mattes, cfg.outline_max_px_per_mm)
        if li == 0:
            with torch.no_grad():
                before = float(objective(torch.zeros_like(u), data)[0])
        for it in range(per):
            loss = objective(offsets(), data)[1]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            if progress:
                progress(li * per + it + 1, per * len(cfg.blur_mm), history[-1])
    with torch.no_grad():
        o = offsets()
        after = float(objective(o, data)[0])
        before_fine = float(objective(torch.zeros_like(o), data)[0])
    log.info("mesh refinement: objective %.5f -> %.5f (finest level; %.5f at the coarsest before), offsets mean "
             "|%.2f| mm, max %.2f mm", before_fine, after, before, float(o.abs().mean()) * 1000,
             float(o.abs().max()) * 1000)
    return PhotoRefineResult(o.detach().float(), before_fine, after, len(pos0), history)
