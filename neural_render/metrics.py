"""Image-quality metrics in torch, inside a mask: PSNR and SSIM (Gaussian window, Wang et al. 2004)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as tf
from torch import Tensor

__all__ = ["masked_psnr", "ssim_map", "masked_ssim"]

SSIM_WINDOW = 11       # Gaussian window side (pixels)
SSIM_SIGMA = 1.5       # its standard deviation (pixels)
SSIM_C1 = 0.01 ** 2    # stabilisers for a data range of 1
SSIM_C2 = 0.03 ** 2


def masked_psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """PSNR in dB for values in [0, 1]: pred, target (..., H, W, C), mask (..., H, W) bool/float (all pixels when
    None). Returns a scalar over everything given (inf when equal)."""
    err = (pred - target) ** 2
    if mask is None:
        mse = err.mean()
    else:
        m = mask.to(err.dtype)[..., None].expand_as(err)
        mse = (err * m).sum() / m.sum().clamp_min(1)
    return -10 * torch.log10(mse.clamp_min(1e-20)) if mse > 0 else torch.tensor(math.inf)


def _gauss(dtype, device) -> Tensor:
    x = torch.arange(SSIM_WINDOW, dtype=dtype, device=device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-x ** 2 / (2 * SSIM_SIGMA ** 2))
    return g / g.sum()


def ssim_map(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel SSIM of (B, H, W, C) images in [0, 1] (mean over channels): (B, H, W). Reflect padding."""
    B, H, W, C = pred.shape
    x = pred.permute(0, 3, 1, 2).reshape(B * C, 1, H, W)
    y = target.permute(0, 3, 1, 2).reshape(B * C, 1, H, W)
    g = _gauss(pred.dtype, pred.device)
    p = SSIM_WINDOW // 2

    def blur(t: Tensor) -> Tensor:
        t = tf.pad(t, (p, p, p, p), mode="reflect" if min(H, W) > p else "replicate")
        t = tf.conv2d(t, g.view(1, 1, 1, -1))
        return tf.conv2d(t, g.view(1, 1, -1, 1))

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + SSIM_C1) * (2 * sxy + SSIM_C2)) / ((mx * mx + my * my + SSIM_C1) * (sxx + syy + SSIM_C2))
    return s.view(B, C, H, W).mean(1)


def masked_ssim(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean SSIM of (B, H, W, C) images over mask (B, H, W) (all pixels when None): a scalar."""
    s = ssim_map(pred, target)
    if mask is None:
        return s.mean()
    m = mask.to(s.dtype)
    return (s * m).sum() / m.sum().clamp_min(1)
