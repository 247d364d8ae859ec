"""``NeuralTexture``: a learned C-channel texture in the mesh's UV space, stored as a Laplacian pyramid.

Level l holds an (S / 2^l)^2 detail image; the texture is the sum of every level upsampled (bilinear) to S x S.
Coarse levels cover many texels per parameter, so they learn fast from few views; fine levels add detail
(Deferred Neural Rendering, Thies et al. 2019). The texture is sampled through a G-buffer's UVs with
``sample_texture`` (bilinear + trilinear mip-mapping): differentiable w.r.t. the pyramid and the UVs. Without
gradients (rendering a shot, scoring a held-out view) or with the pyramid frozen (``requires_grad_(False)``: the
RGB prior while training the rest) the summed texture and its mip pyramid are built once and kept while the
levels stay the same (`_inference_texture`): the same values, none of the per-frame or per-step rebuilding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as tf
from torch import Tensor, nn

from neural_render.texture import MipTexture, sample_texture

__all__ = ["NeuralTexture"]


class NeuralTexture(nn.Module):
    """A (size x size x channels) texture as ``levels`` Laplacian pyramid levels (parameters ``level{l}``,
    each (1, channels, size / 2^l, size / 2^l)). Initialised with small noise at the coarsest level and zero
    detail, so training starts from a smooth texture."""

    def __init__(self, channels: int = 16, size: int = 256, levels: int = 4, init_std: float = 0.1,
                 generator: torch.Generator | None = None):
        super().__init__()
        if channels < 1 or size < 2 or levels < 1:
            raise ValueError(f"NeuralTexture: need channels >= 1, size >= 2, levels >= 1; got {channels}, {size}, "
                             f"{levels}")
        if size % (2 ** (levels - 1)):
            raise ValueError(f"NeuralTexture: size {size} must be divisible by 2^(levels - 1) = {2 ** (levels - 1)}")
        self.channels, self.size, self.num_levels = channels, size, levels
        for lv in range(levels):
            s = size >> lv
            init = torch.zeros(1, channels, s, s)
            if lv == levels - 1:
                init = torch.randn(1, channels, s, s, generator=generator) * init_std
            self.register_parameter(f"level{lv}", nn.Parameter(init))

    def levels(self) -> list[Tensor]:
        """The pyramid levels, finest first: [(1, C, S, S), (1, C, S/2, S/2), ...]."""
        return [getattr(self, f"level{lv}") for lv in range(self.num_levels)]

    def texture(self) -> Tensor:
        """(S, S, C): the sum of every level upsampled (bilinear) to the full size. Differentiable."""
        lv = self.levels()
        out = lv[0]
        for t in lv[1:]:
            out = out + tf.interpolate(t, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return out[0].permute(1, 2, 0)

    @torch.no_grad()
    def set_channels(self, first: int, image: Tensor) -> None:
        """Initialise channels first:first+K to image (S', S', K) (resized to S x S): the coarsest level gets
        its low frequencies, the finest the rest, the other levels nothing (e.g. a baked RGB texture)."""
        img = image.to(self.level0).permute(2, 0, 1)[None]
        img = tf.interpolate(img, size=(self.size, self.size), mode="area") if img.shape[-1] != self.size else img
        k = img.shape[1]
        coarse = getattr(self, f"level{self.num_levels - 1}")
        low = tf.interpolate(img, size=coarse.shape[-2:], mode="area")
        for lv in range(1, self.num_levels - 1):
            getattr(self, f"level{lv}")[:, first:first + k] = 0
        if self.num_levels == 1:
            self.level0[:, first:first + k] = img
            return
        coarse[:, first:first + k] = low
        up = tf.interpolate(low, size=(self.size, self.size), mode="bilinear", align_corners=False)
        self.level0[:, first:first + k] = img - up

    def forward(self, uv: Tensor, mask: Tensor | None = None, level: Tensor | None = None,
                mipmap: bool = True) -> Tensor:
        """Sample the texture: uv (B, H, W, 2) v up, mask (B, H, W) bool (0 elsewhere), level (B, H, W) explicit
        mip level (default: from the UV footprint). Returns (B, H, W, C), differentiable w.r.t. the pyramid
        and uv (with gradients off or a frozen pyramid, sampled from the cached `_inference_texture`: the same
        values, still differentiable w.r.t. uv)."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.levels()):
            return sample_texture(uv, self.texture().to(uv.dtype), mask=mask, level=level, mipmap=mipmap)
        return sample_texture(uv, self._inference_texture(uv.dtype), mask=mask, level=level, mipmap=mipmap)

    def _inference_texture(self, dtype: torch.dtype) -> MipTexture:
        """The summed texture's `MipTexture` in ``dtype`` on the levels' device, built once and rebuilt when any
        level's values differ from those it was built from (compared exactly: an optimiser step,
        ``load_state_dict``, a write through ``.data`` all count; the comparison costs a few ms, the rebuild
        tens)."""
        lv = [t.detach() for t in self.levels()]
        cached = getattr(self, "_mip_cache", None)
        if (cached is None or cached[0] != (dtype, lv[0].device) or len(cached[1]) != len(lv)
                or any(a.shape != b.shape for a, b in zip(cached[1], lv, strict=True))
                or not _all_equal(cached[1], lv)):
            cached = ((dtype, lv[0].device), [t.clone() for t in lv],
                      MipTexture(self.texture().detach().to(dtype), dtype, lv[0].device))
            self._mip_cache = cached
        return cached[2]


def _all_equal(a: list[Tensor], b: list[Tensor]) -> bool:
    """Whether every a[i] equals b[i] (same shapes), read back once: one host synchronisation on a GPU for all the
    pyramid's levels, not one a level."""
    return bool(torch.stack([(x == y).all() for x, y in zip(a, b, strict=True)]).all())
