"""Render-time camera jitter: a frame drawn as the mean of N renders whose cameras are shifted by a fraction of a
pixel (the principal point moved on a circle), averaged in premultiplied form.

For the CGI renderer this is accumulation anti-aliasing. For the neural renderer it is also a hedge for the views
no camera trained on: there the G-buffer and the photo are out of register by a fraction of a pixel (the fit's
outline is 0.4-0.8 px off at 384 px), the U-Net's sharp answer is wrong by that much, and the mean over sub-pixel
shifts is the answer with the lower squared error (it costs up to 0.5 dB on the training views, which the
model draws exactly; docs/benchmarks.md, "Render-time jitter"). Each offset is a full render: N renders cost N
times one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from torch import Tensor

from capture.camera import Camera
from neural_render.ensemble import mean_rgba

__all__ = ["JITTER_RADIUS", "MAX_JITTER", "jitter_offsets", "shifted_camera", "jittered_render"]

JITTER_RADIUS = 0.5     # output pixels: the circle the N principal points lie on
MAX_JITTER = 16


def jitter_offsets(n: int, radius: float = JITTER_RADIUS) -> list[tuple[float, float]]:
    """n (x, y) principal-point shifts in output pixels: (0, 0) for n = 1, else n points evenly on a circle of
    ``radius`` starting at 45 degrees (n = 4: the corners of a square, the rotated-grid pattern). ValueError for
    n outside 1..MAX_JITTER or a negative radius."""
    if not isinstance(n, int) or not 1 <= n <= MAX_JITTER:
        raise ValueError(f"jitter must be a whole number of renders from 1 to {MAX_JITTER}, got {n!r}")
    if not radius >= 0:
        raise ValueError(f"jitter radius must be >= 0 px, got {radius!r}")
    if n == 1:
        return [(0.0, 0.0)]
    angles = [math.pi / 4 + 2 * math.pi * k / n for k in range(n)]
    return [(radius * math.cos(a), radius * math.sin(a)) for a in angles]


def shifted_camera(camera: Camera, dx: float, dy: float) -> Camera:
    """The camera(s) with the principal point moved by (dx, dy) pixels: the image content moves by (dx, dy)."""
    K = camera.K.clone()
    K[..., 0, 2] += dx
    K[..., 1, 2] += dy
    return replace(camera, K=K)


def jittered_render(render: Callable[[Camera], Tensor], camera: Camera,
                    offsets: list[tuple[float, float]]) -> Tensor:
    """The mean of ``render(shifted camera)`` over the offsets: render returns (..., H, W, 4) straight-alpha RGBA
    (any RGB encoding); the mean is taken in premultiplied form and returned straight (RGB 0 where alpha is 0).
    One offset: render(camera) unchanged."""
    if len(offsets) == 1 and offsets[0] == (0.0, 0.0):
        return render(camera)
    return mean_rgba([render(shifted_camera(camera, dx, dy)) for dx, dy in offsets])
