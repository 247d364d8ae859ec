"""Rendering shots of a neural double: any camera, any sequence of posed meshes (the fitted pose, or a rig driven
by an animation), with the neural renderer or the CGI baseline, written as sRGB PNGs and linear half-float EXRs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from capture.camera import Camera
from core.meshio import write_png
from neural_render.cgi import render_cgi
from neural_render.deferred import autocast_for
from neural_render.ensemble import mean_rgba
from neural_render.image_io import write_exr
from neural_render.jitter import jitter_offsets, shifted_camera
from neural_render.motion_blur import MotionBlur, SubframePoser, render_schedule
from neural_render.neural_double import NeuralDouble
from neural_render.render_mattes import matted, mesh_zones
from neural_render.strip_render import render_in_strips
from neural_render.texture import linear_to_srgb, srgb_to_linear

__all__ = ["RENDERERS", "ShotFrame", "frames_per_chunk", "movie_frame", "render_shot_frames", "renders_per_frame",
           "straight_srgb", "views_per_call", "write_shot_frame"]

RENDERERS = ("neural", "cgi")


@dataclass(frozen=True)
class ShotFrame:
    """One rendered frame of one camera."""

    camera: int          # index into the shot's cameras
    frame: int           # index into the shot's frames
    rgba_srgb: np.ndarray    # (H, W, 4) float32, sRGB RGB, straight alpha
    rgba_linear: np.ndarray  # (H, W, 4) float32, linear RGB premultiplied by alpha (the OpenEXR convention)


MAX_VIEWS_PER_CALL = 8       # renders drawn by one model call on a GPU, at most
GPU_BYTES_PER_SAMPLE = 1024  # a render's working memory per G-buffer sample, budgeted (strip_render's figure)


def views_per_call(model: NeuralDouble, camera: Camera, device: str | torch.device,
                   requested: int | None = None) -> int:
    """Renders (frames, and each frame's jitter renders) drawn by one model call. requested: as given (>= 1);
    None: 1 on the CPU (one view at a time, in strips: the heap stays bounded), on a GPU as many as fit in half its
    free memory at ``GPU_BYTES_PER_SAMPLE`` per G-buffer sample, at most ``MAX_VIEWS_PER_CALL``. A GPU waits on
    kernel launches, not arithmetic, for one view (docs/benchmarks.md, "First measurement on a GPU"): views drawn
    together share every launch."""
    if requested is not None:
        if not isinstance(requested, int) or requested < 1:
            raise ValueError(f"views per call must be a whole number >= 1, got {requested!r}")
        return requested
    dev = torch.device(device)
    if dev.type != "cuda":
        return 1
    s = model.config.supersample
    samples = camera.width * camera.height * s * s
    free, _ = torch.cuda.mem_get_info(dev)
    return int(max(1, min(MAX_VIEWS_PER_CALL, free // 2 // (samples * GPU_BYTES_PER_SAMPLE))))


def frames_per_chunk(per_call: int, renders: int) -> int:
    """Frames `render_shot_frames` draws together (a chunk's ``renders`` renders a frame, `renders_per_frame`, go
    ``per_call`` views a model call): a shot resumed at a multiple of it draws the chunks an uninterrupted one
    drew."""
    return max(1, per_call // renders)


def renders_per_frame(jitter: int, motion_blur: MotionBlur | None = None) -> int:
    """Renders averaged into each frame: the jitter's sub-pixel shifts and the shutter's times share them
    (`neural_render.motion_blur.render_schedule`)."""
    times = (motion_blur or MotionBlur()).times()
    return len(render_schedule(jitter_offsets(jitter), times))


@torch.no_grad()
def render_shot_frames(model: NeuralDouble, verts: Tensor, cameras: Camera, renderer: str = "neural",
                       device: str | torch.device = "cpu", codes: Tensor | None = None,
                       jitter: int = 1, per_call: int | None = None, motion_blur: MotionBlur | None = None,
                       poser: SubframePoser | None = None) -> Iterator[ShotFrame]:
    """Render every (camera, frame): verts (T, V, 3) world metres of the model's topology, cameras (C views,
    one size, sides multiples of the U-Net's multiple for the neural renderer), codes (T, K) or None; jitter:
    renders per frame at sub-pixel camera shifts, averaged (``neural_render.jitter``; 1 = one render); per_call:
    renders drawn by one model call (``views_per_call``; None: 1 on the CPU, several on a GPU); motion_blur: the
    shutter (`neural_render.motion_blur`; None or an angle of 0: none), with ``poser`` the double at any time of
    the shot (shot frame k's vertices at time k, ``verts[k]``). Yields camera-major ShotFrames in frame order;
    memory grows with per_call, not with the shot."""
    if renderer not in RENDERERS:
        raise ValueError(f"renderer must be one of {', '.join(RENDERERS)}, got {renderer!r}")
    times = (motion_blur or MotionBlur()).times()
    if len(times) > 1 and poser is None:
        raise ValueError("render_shot_frames: motion blur needs a poser (the double between frames)")
    schedule = render_schedule(jitter_offsets(jitter), times)
    model = model.to(device).eval()
    cams = cameras.as_batch()
    per = views_per_call(model, cams[0], device, per_call)
    step = frames_per_chunk(per, len(schedule))
    for c in range(len(cams)):
        cam = cams[c].to(device=device)
        for t0 in range(0, verts.shape[0], step):
            b = min(step, verts.shape[0] - t0)
            if len(times) > 1:
                v = poser.at(np.arange(t0, t0 + b), times).to(device=device, dtype=torch.float32)
            else:
                v = verts[t0:t0 + b, None].to(device=device, dtype=torch.float32)
            code = None if codes is None or renderer == "cgi" else codes[t0:t0 + b].to(device)
            srgb, prem = _render_frames(model, v, cam, renderer, code, schedule, per)
            srgb, prem = srgb.cpu().numpy(), prem.cpu().numpy()
            for i in range(b):
                yield ShotFrame(c, t0 + i, srgb[i], prem[i])


def _render_frames(model: NeuralDouble, v: Tensor, cam: Camera, renderer: str, code: Tensor | None,
                   schedule: list[tuple[tuple[float, float], int]], per: int) -> tuple[Tensor, Tensor]:
    """Frames v (b, S, V, 3) (each frame's S shutter times): ((b, H, W, 4) sRGB straight alpha, (b, H, W, 4)
    linear premultiplied), render k of a frame at schedule[k]'s shift and time (an index into the S), ``per``
    renders a call."""
    b, S = v.shape[:2]
    flat = v.reshape(b * S, *v.shape[2:])
    if renderer == "cgi":
        surface = model.surface(flat)
        lin = _views_averaged(lambda i, k: render_cgi(surface[i], model.faces, model.uvs, model.face_uvs, k,
                                                      model.cgi_texture).float(), b, S, cam, schedule, per)
        a = lin[..., 3:]
        return torch.cat([linear_to_srgb(lin[..., :3]), a], -1), torch.cat([lin[..., :3] * a, a], -1)

    def draw(i: list[int], k: Camera) -> Tensor:
        c = None if code is None else code[[f // S for f in i]]
        if len(i) == 1:     # one view: in strips on the CPU (bounded heap), whole on a GPU
            return render_in_strips(model, flat[i[0]], k, c).float()
        return model(flat[i], k, c).float()

    with autocast_for(v.device):
        srgb = _views_averaged(draw, b, S, cam, schedule, per)
    near, core = mesh_zones(model.surface(flat), model.faces, cam)
    near, core = near.view(b, S, *near.shape[1:]).any(1), core.view(b, S, *core.shape[1:]).all(1)
    srgb = matted(srgb, near, core)          # the sigmoid's 0.0x and 0.9x alpha, over the whole open shutter
    a = srgb[..., 3:]
    return srgb, torch.cat([srgb_to_linear(srgb[..., :3].clamp(0, 1)) * a, a], -1)


def _views_averaged(draw: Callable[[list[int], Camera], Tensor], frames: int, times: int, cam: Camera,
                    renders: list[tuple[tuple[float, float], int]], per: int) -> Tensor:
    """(frames, H, W, 4) straight alpha: every frame drawn once per entry of ``renders`` ((dx, dy) shift, time
    index) (``draw(k pose indices f * times + time, k cameras)`` -> (k, H, W, 4) straight alpha), ``per`` views a
    call, averaged as ``jittered_render`` does (premultiplied). One render at (0, 0): the camera unchanged."""
    shifted = [cam if d == (0.0, 0.0) else shifted_camera(cam, *d) for d, _ in renders]
    views = [(f, k) for f in range(frames) for k in range(len(renders))]
    outs = []
    for a in range(0, len(views), per):
        part = views[a:a + per]
        ks = [shifted[k] for _, k in part]
        outs.append(draw([f * times + renders[k][1] for f, k in part], Camera.stack(ks) if len(ks) > 1 else ks[0]))
    rgba = torch.cat(outs)
    rgba = rgba.view(frames, len(renders), *rgba.shape[1:])
    return rgba[:, 0] if len(renders) == 1 else mean_rgba([rgba[:, k] for k in range(len(renders))])


def write_shot_frame(folder: Path, number: int, frame: ShotFrame, passes: dict[str, np.ndarray] | None = None,
                     attributes: dict | None = None) -> tuple[Path, Path]:
    """FOLDER/NNNN.png (sRGB RGBA, straight alpha, 8 bit) and FOLDER/NNNN.exr (linear RGBA, premultiplied,
    half float, plus ``passes``: channel -> (H, W) float32, `neural_render.aovs`, and header ``attributes``);
    returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    png = write_png(folder / f"{number:04d}.png", np.clip(frame.rgba_srgb, 0, 1))
    exr = write_exr(folder / f"{number:04d}.exr", frame.rgba_linear, extra=passes, attributes=attributes)
    return png, exr


def straight_srgb(rgba_linear: np.ndarray) -> np.ndarray:
    """(H, W, 4) float32 sRGB RGB, straight alpha (a frame's PNG) from rgba_linear (H, W, 4): linear RGB
    premultiplied by alpha (its EXR)."""
    a = np.clip(rgba_linear[..., 3:], 0.0, 1.0)
    straight = np.where(a > 0, rgba_linear[..., :3] / np.maximum(a, 1e-6), 0.0)
    srgb = linear_to_srgb(torch.from_numpy(np.clip(straight, 0.0, 1.0).astype(np.float32))).numpy()
    return np.concatenate([srgb, a], -1).astype(np.float32)


def movie_frame(rgba_linear: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: a frame as its camera's movie shows it, in sRGB over mid grey, from its EXR's values
    (rgba_linear (H, W, 4): linear RGB premultiplied by alpha, taken at the EXR's half-float precision). Drawn from
    what the EXR holds, so that a resumed shot's movie, made from the frames a killed run wrote, is the movie of
    an uninterrupted shot."""
    s = straight_srgb(np.asarray(rgba_linear, dtype=np.float16).astype(np.float32))
    srgb, a = s[..., :3], s[..., 3:]
    return (np.clip(srgb * a + 0.5 * (1.0 - a), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
