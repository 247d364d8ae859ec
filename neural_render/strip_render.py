"""A neural double's view too large to build at once: the G-buffer and its features in strips, the U-Net whole.

Rasterizing a view and sampling the neural texture allocate about 1 kB of temporaries per G-buffer sample; a 4K
plate's face box at the training default of 2 x 2 supersampling is 2.5 M samples, so drawn in one piece it
allocates gigabytes every frame. What the U-Net reads (`NeuralDouble.pooled_features`) is per pixel but for the
texture's mip level, which a sample reads from its neighbours; so it is built here in full-width horizontal strips
of at most ``samples`` samples, each with one pixel row more on either side (dropped again) so a strip's edge rows
see their neighbours as in one piece, and joined. The U-Net then runs on strips too, each with rows of context
beyond its receptive field (``features_rendered_in_strips``). The result equals ``model(verts, camera, code)``
(tested to float tolerance).
"""

from __future__ import annotations

from dataclasses import fields

import torch
from torch import Tensor

from capture.camera import Camera
from neural_render.gbuffer import GBuffer

STRIP_SAMPLES = 2 ** 19     # G-buffer samples a strip (about 0.5 GB of temporaries)
UNET_PIXELS = 2 ** 20       # output pixels of a U-Net strip, its halo not counted (about 0.9 kB of activations each)
UNET_HALO_MULTIPLES = 16    # rows of context either side of a U-Net strip, in multiples of the U-Net's 2^depth: 128
                            # at depth 3, beyond its receptive field (about 70 px), so a strip's rows are the whole's


def strip_rows(height: int, width: int, supersample: int, samples: int = STRIP_SAMPLES) -> list[tuple[int, int]]:
    """Output rows [r0, r1) of each strip of a ``height`` x ``width`` view, top to bottom: at most ``samples``
    G-buffer samples (supersample^2 a pixel) a strip, at least one row."""
    rows = max(1, samples // (supersample * supersample * width))
    return [(r, min(r + rows, height)) for r in range(0, height, rows)]


def _rows(g: GBuffer, a: int, b: int) -> GBuffer:
    return GBuffer(**{f.name: getattr(g, f.name)[:, a:b] for f in fields(g)})


def _joined(parts: list[GBuffer]) -> GBuffer:
    return GBuffer(**{f.name: torch.cat([getattr(p, f.name) for p in parts], 1) for f in fields(parts[0])})


@torch.no_grad()
def render_in_strips(model, verts: Tensor, camera: Camera, code: Tensor | None = None,
                     samples: int | None = None) -> Tensor:
    """(1, H, W, 4) RGBA, sRGB, straight alpha: ``model(verts, camera, code)`` for one camera (H x W, a multiple
    of the U-Net's) with the G-buffer and features built in strips (module doc). model: a `NeuralDouble` or a
    `NeuralEnsemble` (every member reads the one G-buffer; their renders are averaged as the ensemble does).
    verts (V, 3) world metres. samples: G-buffer samples a strip; None: `STRIP_SAMPLES` on the CPU, the whole
    view in one piece on a GPU (its memory is not the process heap, and one launch keeps it busy). Inference
    only: no gradients (training draws its crops with the model itself)."""
    from neural_render.ensemble import NeuralEnsemble, mean_rgba

    if samples is None:
        if verts.device.type != "cpu":
            return model(verts, camera, code)
        samples = STRIP_SAMPLES
    members = list(model.members) if isinstance(model, NeuralEnsemble) else [model]
    H, W = camera.height, camera.width
    feats: list[list[Tensor]] = [[] for _ in members]
    gs, covs = [], []
    for r0, r1 in strip_rows(H, W, model.config.supersample, samples):
        a, b = max(r0 - 1, 0), min(r1 + 1, H)
        g_strip = members[0].gbuffer(verts, camera.cropped(0, a, W, b - a))
        for k, m in enumerate(members):
            f, g, cov = m.pooled_features(g_strip)      # g, cov: the pooled G-buffer, the same for every member
            feats[k].append(f[:, r0 - a:r1 - a])
        gs.append(_rows(g, r0 - a, r1 - a))
        covs.append(None if cov is None else cov[:, r0 - a:r1 - a])
    g, cov = _joined(gs), None if covs[0] is None else torch.cat(covs, 1)
    rgbas = [features_rendered_in_strips(m, torch.cat(feats[k], 1), g, cov, code) for k, m in enumerate(members)]
    return mean_rgba(rgbas) if isinstance(model, NeuralEnsemble) else rgbas[0]


def features_rendered_in_strips(model, feats: Tensor, g: GBuffer, cov: Tensor | None, code: Tensor | None,
                                pixels: int = UNET_PIXELS) -> Tensor:
    """``model.render_features(feats, g, cov, code)`` (a `NeuralDouble`; feats (1, H, W, C)) with the U-Net run on
    full-width strips of about ``pixels`` output pixels (at least 4 halos of rows), each with UNET_HALO_MULTIPLES x
    2^depth rows of context either side that are dropped again: its activations (about 0.9 kB a pixel) made a
    2048 px shot take 3.7 GB whole. Strips start on the U-Net's 2^depth grid, so every strip pools and upsamples
    as the whole view does; the result equals the whole (the demo's model at 2048 px: to the bit)."""
    H, W = feats.shape[1:3]
    mult = model.renderer.multiple
    halo, out = UNET_HALO_MULTIPLES * mult, []
    rows = max(4 * halo, pixels // W // mult * mult)      # at least 4 halos: the context costs at most half again
    if rows >= H:
        return model.render_features(feats, g, cov, code)
    for r0 in range(0, H, rows):
        r1 = min(r0 + rows, H)
        a, b = max(r0 - halo, 0), min(r1 + halo, H)
        part = model.render_features(feats[:, a:b], _rows(g, a, b), None if cov is None else cov[:, a:b], code)
        out.append(part[:, r0 - a:r1 - a])
    return torch.cat(out, 1)
