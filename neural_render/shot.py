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
from neural_render.neural_double import NeuralDouble
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
                       device: str | torch.device = "cpu", codes: Tensor | None = None) -> Iterator[ShotFrame]:
    """Render every (camera, frame): verts (T, V, 3) world metres of the model's topology, cameras (C views,
    one size, sides multiples of the U-Net's multiple for the neural renderer), codes (T, K) or None.
    Yields camera-major ShotFrames, one at a time (memory does not grow with the shot)."""
    if renderer not in RENDERERS:
        raise ValueError(f"renderer must be one of {', '.join(RENDERERS)}, got {renderer!r}")
    model = model.to(device).eval()
    cams = cameras.as_batch()
    for c in range(len(cams)):
        cam = cams[c].to(device=device)
        for t in range(verts.shape[0]):
            v = verts[t].to(device=device, dtype=torch.float32)
            if renderer == "cgi":
                lin = render_cgi(model.surface(v), model.faces, model.uvs, model.face_uvs, cam,
                                 model.cgi_texture)[0].float()
                srgb = torch.cat([linear_to_srgb(lin[..., :3]), lin[..., 3:]], -1)
                prem = lin
            else:
                code = None if codes is None else codes[t:t + 1].to(device)
                with autocast_for(device):
                    srgb = model(v, cam, code)[0].float()
                a = srgb[..., 3:]
                prem = torch.cat([srgb_to_linear(srgb[..., :3].clamp(0, 1)) * a, a], -1)
            yield ShotFrame(c, t, srgb.cpu().numpy(), prem.cpu().numpy())


def write_shot_frame(folder: Path, number: int, frame: ShotFrame) -> tuple[Path, Path]:
    """FOLDER/NNNN.png (sRGB RGBA, straight alpha, 8 bit) and FOLDER/NNNN.exr (linear RGBA, premultiplied,
    half float); returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    png = write_png(folder / f"{number:04d}.png", np.clip(frame.rgba_srgb, 0, 1))
    exr = write_exr(folder / f"{number:04d}.exr", frame.rgba_linear)
    return png, exr
