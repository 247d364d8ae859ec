"""Rendering shots of a neural double: any camera, any sequence of posed meshes (the fitted pose, or a rig driven
by an animation), with the neural renderer or the CGI baseline, written as sRGB PNGs and linear half-float EXRs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from capture.camera import Camera
from core.meshio import write_png
from neural_render.cgi import render_cgi
from neural_render.deferred import autocast_for
from neural_render.image_io import write_exr
from neural_render.jitter import jitter_offsets, jittered_render
from neural_render.neural_double import NeuralDouble
from neural_render.strip_render import render_in_strips
from neural_render.texture import linear_to_srgb, srgb_to_linear

__all__ = ["RENDERERS", "ShotFrame", "render_shot_frames", "write_shot_frame"]

RENDERERS = ("neural", "cgi")


@dataclass(frozen=True)
class ShotFrame:
    """One rendered frame of one camera."""

    camera: int          # index into the shot's cameras
    frame: int           # index into the shot's frames
    rgba_srgb: np.ndarray    # (H, W, 4) float32, sRGB RGB, straight alpha
    rgba_linear: np.ndarray  # (H, W, 4) float32, linear RGB premultiplied by alpha (the OpenEXR convention)


@torch.no_grad()
def render_shot_frames(model: NeuralDouble, verts: Tensor, cameras: Camera, renderer: str = "neural",
                       device: str | torch.device = "cpu", codes: Tensor | None = None,
                       jitter: int = 1) -> Iterator[ShotFrame]:
    """Render every (camera, frame): verts (T, V, 3) world metres of the model's topology, cameras (C views,
    one size, sides multiples of the U-Net's multiple for the neural renderer), codes (T, K) or None; jitter:
    renders per frame at sub-pixel camera shifts, averaged (``neural_render.jitter``; 1 = one render).
    Yields camera-major ShotFrames, one at a time (memory does not grow with the shot)."""
    if renderer not in RENDERERS:
        raise ValueError(f"renderer must be one of {', '.join(RENDERERS)}, got {renderer!r}")
    offsets = jitter_offsets(jitter)
    model = model.to(device).eval()
    cams = cameras.as_batch()
    for c in range(len(cams)):
        cam = cams[c].to(device=device)
        for t in range(verts.shape[0]):
            v = verts[t].to(device=device, dtype=torch.float32)
            code = None if codes is None or renderer == "cgi" else codes[t:t + 1].to(device)
            srgb, prem = _render_frame(model, v, cam, renderer, code, offsets)
            yield ShotFrame(c, t, srgb.cpu().numpy(), prem.cpu().numpy())


def _render_frame(model: NeuralDouble, v: Tensor, cam: Camera, renderer: str, code: Tensor | None,
                  offsets: list[tuple[float, float]]) -> tuple[Tensor, Tensor]:
    """One frame: ((H, W, 4) sRGB straight alpha, (H, W, 4) linear premultiplied), drawn at every offset."""
    if renderer == "cgi":
        surface = model.surface(v)
        lin = jittered_render(lambda k: render_cgi(surface, model.faces, model.uvs, model.face_uvs, k,
                                                   model.cgi_texture)[0].float(), cam, offsets)
        a = lin[..., 3:]
        return torch.cat([linear_to_srgb(lin[..., :3]), a], -1), torch.cat([lin[..., :3] * a, a], -1)
    with autocast_for(v.device):
        srgb = jittered_render(lambda k: render_in_strips(model, v, k, code)[0].float(), cam, offsets)
    a = srgb[..., 3:]
    return srgb, torch.cat([srgb_to_linear(srgb[..., :3].clamp(0, 1)) * a, a], -1)


def write_shot_frame(folder: Path, number: int, frame: ShotFrame) -> tuple[Path, Path]:
    """FOLDER/NNNN.png (sRGB RGBA, straight alpha, 8 bit) and FOLDER/NNNN.exr (linear RGBA, premultiplied,
    half float); returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    png = write_png(folder / f"{number:04d}.png", np.clip(frame.rgba_srgb, 0, 1))
    exr = write_exr(folder / f"{number:04d}.exr", frame.rgba_linear)
    return png, exr
