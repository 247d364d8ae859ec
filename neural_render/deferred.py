"""``DeferredNeuralRenderer``: a compact U-Net that turns a G-buffer (sampled neural-texture features, view
direction, normals, coverage and an optional per-frame code such as pose or expression weights) into RGB and
alpha. Pure PyTorch: the same module trains on CUDA (with mixed precision, see ``autocast_for``) and on the CPU
at small sizes."""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as tf
from torch import Tensor, nn

from neural_render.gbuffer import GBuffer

__all__ = ["DeferredNeuralRenderer", "round_size", "autocast_for"]

PRIOR_ALPHA_LOGIT = 4.0    # alpha starts at sigmoid(+-4) = 0.98 / 0.02 on / off the mesh
GEOMETRY_CHANNELS = 10     # view direction (3), world normal (3), camera-frame normal (3), coverage (1)
VIEW_INPUTS = ("full", "mesh", "none")  # see DeferredNeuralRenderer.inputs


def round_size(px: int, multiple: int) -> int:
    """px rounded to the nearest multiple of ``multiple`` (at least one multiple)."""
    return max(multiple, int(math.floor(px / multiple + 0.5)) * multiple)


def autocast_for(device: torch.device | str):
    """Mixed precision (bfloat16 autocast) on CUDA; a no-op context on the CPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.2))


class DeferredNeuralRenderer(nn.Module):
    """U-Net of ``depth`` down/up steps, ``width`` channels at full resolution (doubling per step, capped at
    4 x width). Input: features (B, H, W, feature_channels) + the G-buffer's geometry channels (+ code (B, K)
    through a small linear layer, broadcast at the bottleneck). Output: (B, H, W, 4) RGBA in [0, 1], the
    sigmoid of the network's residual plus ``prior`` (the first three features as RGB, the coverage as alpha)
    (straight alpha; RGB in the encoding of the training photos, sRGB). H and W must be multiples of
    ``multiple`` = 2^depth (``round_size``)."""

    def __init__(self, feature_channels: int = 16, width: int = 16, depth: int = 3, code_dim: int = 0,
                 code_channels: int = 8, dropout: float = 0.0, view_inputs: str = "full"):
        super().__init__()
        if view_inputs not in VIEW_INPUTS:
            raise ValueError(f"DeferredNeuralRenderer: view_inputs must be one of {VIEW_INPUTS}, got {view_inputs!r}")
        self.view_inputs = view_inputs
        if feature_channels < 3:
            raise ValueError(f"DeferredNeuralRenderer: needs >= 3 feature channels (RGB prior), got {feature_channels}")
        self.feature_channels, self.width, self.depth = feature_channels, width, depth
        self.code_dim, self.code_channels = code_dim, code_channels if code_dim > 0 else 0
        self.dropout = float(dropout)
        # training only: drops whole learned feature channels (not the RGB prior) so that the U-Net cannot rely
        # on any single channel of the neural texture (a regulariser against memorising the training views)
        self.feature_drop = nn.Dropout2d(self.dropout) if self.dropout > 0 else None
        ch = [min(width * 2 ** i, width * 4) for i in range(depth + 1)]
        self.inp = _block(feature_channels + GEOMETRY_CHANNELS, ch[0])
        self.down = nn.ModuleList([nn.Sequential(nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1),
                                                 nn.LeakyReLU(0.2), nn.Conv2d(ch[i + 1], ch[i + 1], 3, padding=1),
                                                 nn.LeakyReLU(0.2)) for i in range(depth)])
        self.code = nn.Linear(code_dim, self.code_channels) if code_dim > 0 else None
        self.mid = _block(ch[depth] + self.code_channels, ch[depth])
        self.up = nn.ModuleList([_block(ch[i + 1] + ch[i], ch[i]) for i in reversed(range(depth))])
        self.out = nn.Conv2d(ch[0], 4, 1)
        nn.init.zeros_(self.out.weight)       # start from the prior (see ``forward``): a working render at step 0
        nn.init.zeros_(self.out.bias)

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this."""
        return 2 ** self.depth

    def config(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return {"feature_channels": self.feature_channels, "width": self.width, "depth": self.depth,
                "code_dim": self.code_dim, "code_channels": self.code_channels, "dropout": self.dropout,
                "view_inputs": self.view_inputs}

    def inputs(self, features: Tensor, g: GBuffer, coverage: Tensor | None = None) -> Tensor:
        """(B, feature_channels + GEOMETRY_CHANNELS, H, W): features and geometry (zero where g.mask is False,
        except the view direction, which every pixel has), weighted by the coverage (B, H, W) in [0, 1] when
        given (a supersampled G-buffer), else by the mask. ``view_inputs``: "full" gives the view direction at
        every pixel and the camera-frame normal; "mesh" the view direction on the mesh only (the background's
        ray pattern identifies the camera); "none" zeroes both (the render cannot depend on the viewpoint
        except through what the U-Net sees of the image: no per-view memorising of the training cameras)."""
        m = (g.mask if coverage is None else coverage).to(features.dtype)[..., None]
        view, n_cam = g.view_dir.to(features.dtype), g.normal_cam.to(features.dtype) * m
        if self.view_inputs == "mesh":
            view = view * m
        elif self.view_inputs == "none":
            view, n_cam = torch.zeros_like(view), torch.zeros_like(n_cam)
        x = torch.cat([features * m, view, g.normal.to(features.dtype) * m, n_cam, m], -1)
        return x.permute(0, 3, 1, 2)

    def forward(self, features: Tensor, g: GBuffer, code: Tensor | None = None,
                with_residual: bool = False, coverage: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """features (B, H, W, C) sampled from the neural texture, g: the G-buffer of the same pixels, code (B, K)
        or None -> (B, H, W, 4) RGBA in [0, 1]; with_residual: also the network's output (B, H, W, 4), the
        logits added to ``prior`` (zero for a network that learned nothing: the render is then the prior);
        coverage (B, H, W) in [0, 1]: the mesh's fractional pixel coverage (anti-aliased edges) or None (g.mask)."""
        B, H, W, C = features.shape
        if C != self.feature_channels:
            raise ValueError(f"DeferredNeuralRenderer: {C} feature channels, the network takes {self.feature_channels}")
        if H % self.multiple or W % self.multiple:
            raise ValueError(f"DeferredNeuralRenderer: image {W}x{H} px; sides must be multiples of {self.multiple}")
        x = self.inputs(features, g, coverage)
        if self.feature_drop is not None and self.training and C > 3:
            x = torch.cat([x[:, :3], self.feature_drop(x[:, 3:C]), x[:, C:]], 1)
        x = self.inp(x)
        skips = [x]
        for d in self.down:
            x = d(x)
            skips.append(x)
        if self.code is not None:
            if code is None or code.shape != (B, self.code_dim):
                raise ValueError(f"DeferredNeuralRenderer: needs a code of shape ({B}, {self.code_dim}), got "
                                 f"{None if code is None else tuple(code.shape)}")
            c = self.code(code.to(x.dtype))[:, :, None, None].expand(-1, -1, *x.shape[-2:])
            x = torch.cat([x, c], 1)
        x = self.mid(x)
        for i, u in enumerate(self.up):
            skip = skips[-2 - i]
            x = tf.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = u(torch.cat([x, skip], 1))
        res = self.out(x).float()
        rgba = torch.sigmoid(res + self.prior(features, g, coverage)).permute(0, 2, 3, 1)
        return (rgba, res.permute(0, 2, 3, 1)) if with_residual else rgba

    @staticmethod
    def prior(features: Tensor, g: GBuffer, coverage: Tensor | None = None) -> Tensor:
        """(B, 4, H, W) logits the network's output is added to: RGB = the first three feature channels (the
        baked texture they start from, see NeuralDouble), alpha = the mesh coverage (+-PRIOR_ALPHA_LOGIT).
        The network learns the residual: view-dependent effects and what the mesh gets wrong."""
        rgb = torch.logit(features[..., :3].float().clamp(0.01, 0.99)) * g.mask[..., None]
        if coverage is None:
            alpha = (g.mask.float() * 2 - 1)[..., None] * PRIOR_ALPHA_LOGIT
        else:                                  # logit of the coverage: +-PRIOR_ALPHA_LOGIT at 1 / 0
            eps = 1.0 / (1.0 + math.exp(PRIOR_ALPHA_LOGIT))
            alpha = torch.logit(coverage.float().clamp(eps, 1 - eps))[..., None]
        return torch.cat([rgb, alpha], -1).permute(0, 3, 1, 2)
