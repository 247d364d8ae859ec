"""Garbage and core mattes of a neural render: the sigmoid's faint alpha cleared where the double cannot be, and
its near-opaque alpha made opaque where the double's body surely is.

The deferred renderer's alpha is a sigmoid: never exactly 0 nor 1. Measured on the studio run of stop 52 (a
neural double trained 3 minutes at 192 px, shot at 128 px): more than 20 px from the silhouette the alpha averages
0.0003 and reaches 0.0155; inside the body (the silhouette eroded by 3 px) it is 0.98-0.99. In a comp the first is
a veil over the whole plate and the second lets the plate show through the double by 1-2 % (an "alpha check"
shows both). A compositor's garbage and core mattes remove them: alpha below ``ALPHA_FLOOR`` is set to 0 outside
the mesh's coverage grown by ``margin_px``, and alpha above ``1 - CORE_GAP`` to 1 inside the coverage shrunk by it;
anything else (learned hair and edges, a surface the network made transparent) is kept as drawn.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from capture.camera import Camera
from neural_render.raster import rasterize

ALPHA_FLOOR = 0.02       # alpha below this (about 5/255) is cleared away from the mesh
CORE_GAP = 0.1           # alpha above 1 - this is made opaque well inside the mesh
MARGIN_FRACTION = 0.02   # the mesh's coverage is grown / shrunk by this fraction of the image's longer side...
MIN_MARGIN_PX = 4        # ...and by at least this many pixels


def margin_px(width: int, height: int) -> int:
    """How far (pixels) from the mesh's coverage faint alpha is kept, and how far inside it near-opaque alpha is
    left as drawn, for an image of width x height."""
    return max(MIN_MARGIN_PX, round(MARGIN_FRACTION * max(width, height)))


def mesh_zones(surface: Tensor, faces: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
    """((B, H, W) bool near, (B, H, W) bool core): pixels within ``margin_px`` of the coverage of ``surface``
    (B, V, 3) world metres (the surface the renderer draws) in ``camera`` (one view, undistorted), and pixels of
    the coverage at least that far from its edge."""
    frags = rasterize(surface, faces, camera)
    covered = (frags.face_idx >= 0).to(torch.int32)
    m = margin_px(camera.width, camera.height)
    near = _square_count(covered, m) > 0
    core = _square_count(1 - covered, m) == 0
    return near, core


def _square_count(x: Tensor, r: int) -> Tensor:
    """(B, H, W) int32: the sum of x (B, H, W) int32 over each pixel's (2r+1)^2 square, pixels beyond the image
    counting 0, by running sums along rows then columns (a square max pool of the same result cost 135 ms at
    512 px on 2 CPU cores, this about 5)."""
    for dim in (2, 1):
        n = x.shape[dim]
        c = F.pad(x.cumsum(dim, dtype=torch.int32), (1, 0) if dim == 2 else (0, 0, 1, 0))   # c[i] = sum x[:i]
        hi = torch.arange(n, device=x.device).add(r + 1).clamp(max=n)
        lo = torch.arange(n, device=x.device).sub(r).clamp(min=0)
        x = c.index_select(dim, hi) - c.index_select(dim, lo)
    return x


def matted(rgba: Tensor, near: Tensor, core: Tensor) -> Tensor:
    """rgba (B, H, W, 4) straight alpha -> the same with alpha set to 0 (RGB too) where it is below ALPHA_FLOOR
    and not ``near`` the mesh, and to 1 where it is above 1 - CORE_GAP in the ``core`` (both (B, H, W) bool)."""
    a = rgba[..., 3]
    away = (~near.to(rgba.device)) & (a < ALPHA_FLOOR)
    solid = core.to(rgba.device) & (a > 1.0 - CORE_GAP)
    out = rgba.masked_fill(away[..., None], 0.0)
    out[..., 3] = out[..., 3].masked_fill(solid, 1.0)
    return out
