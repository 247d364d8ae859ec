"""The output filter: a neural double's render smoothed by a 3-tap kernel on each axis, in premultiplied form.

On views no camera trained on, the G-buffer is out of register with the photo by a fraction of a pixel, and the
U-Net's sharp edges are wrong by that much; render-time jitter (``neural_render.jitter``) hedges by averaging N
sub-pixel-shifted renders, at N times the cost. This filter is the hedge's cheap part: one render convolved with
[w, 1 - 2w, w] along x and then y (edge pixels repeated), RGB weighted by alpha so the backdrop never bleeds in.
It costs two 3-tap passes over the output (nothing beside the U-Net) and is part of the model
(``NeuralDoubleConfig.output_filter``: every render, training's crops and held-out scores included, draws
through it). On the Cycles benchmark, six students distilled through w = 0.08 scored +3.03 to +3.21 dB over the
CGI baseline on the held-out views, drawn once (three of them +2.86 to +3.05 without it; docs/benchmarks.md, "The
output filter"). `doppel render distil` sets it (``--output-filter``, default 0.08); `doppel render train` only
when asked (``--output-filter``, default 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["MAX_OUTPUT_FILTER", "filter_rgba", "check_output_filter"]

MAX_OUTPUT_FILTER = 1 / 3   # w above this weights the neighbours more than the pixel itself


def check_output_filter(w: float) -> float:
    """w as a float; ValueError unless 0 <= w <= MAX_OUTPUT_FILTER."""
    try:
        w = float(w)
    except (TypeError, ValueError):
        raise ValueError(f"output filter must be a number from 0 to 1/3, got {w!r}") from None
    if not 0.0 <= w <= MAX_OUTPUT_FILTER + 1e-9:
        raise ValueError(f"output filter must be from 0 to 1/3 (the neighbours' weight on each axis), got {w}")
    return w


def filter_rgba(rgba: Tensor, w: float) -> Tensor:
    """rgba (B, H, W, 4) straight alpha (any RGB encoding) -> the same shape: premultiplied RGBA convolved with
    [w, 1 - 2w, w] along x and y (edges repeated), RGB divided back by the filtered alpha (0 where it is 0).
    w = 0 returns rgba itself. Differentiable in rgba."""
    if w <= 0:
        return rgba
    a = rgba[..., 3:]
    prem = torch.cat([rgba[..., :3] * a, a], -1)                               # (B, H, W, 4)
    for dim in (2, 1):                                                          # x, then y
        n = prem.shape[dim]
        before = torch.cat([prem.narrow(dim, 0, 1), prem.narrow(dim, 0, n - 1)], dim)
        after = torch.cat([prem.narrow(dim, 1, n - 1), prem.narrow(dim, n - 1, 1)], dim)
        prem = prem * (1.0 - 2.0 * w) + (before + after) * w
    alpha = prem[..., 3:]
    rgb = torch.where(alpha > 1e-6, prem[..., :3] / alpha.clamp_min(1e-6), torch.zeros_like(prem[..., :3]))
    return torch.cat([rgb, alpha], -1)
