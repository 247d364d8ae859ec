"""Issue 15's render-speed goal as a gpu-marked benchmark: a 1024 px shot of a model the size of the virtual actor's
(27 k faces, a 16-channel neural texture, a 1024 px RGB prior, the U-Net `render train` makes, 2 x 2 G-buffer
samples a pixel, a student's output filter) drawn as `render shot` draws it on CUDA (several renders a model call,
frames copied to host memory) at >= 60 frames/s. It prints the figure. On the CPU the shot path's correctness is
tested in test_shot_views.py; the CPU's ms a frame at 512 px is reported by benchmarks/neural_double.py."""

import time

import pytest
import torch

from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig
from neural_render.shot import render_shot_frames, views_per_call
from tests.neural_render.scenes import albedo_texture, ring_cameras, uv_sphere

GOAL_FRAMES_PER_S = 60.0


def actor_sized_model(size: int) -> tuple[NeuralDouble, torch.Tensor, object]:
    """(model, 32 frames of its mesh turning, one size x size camera): the sphere has the virtual actor's face count
    and covers about a fifth of the frame (the actor's full-body ring view covers a tenth)."""
    v, f, uv, fuv = uv_sphere(98, 140)
    cams = ring_cameras(2, size, distance=3.0)
    model = NeuralDouble(NeuralDoubleConfig(texture_size=256, rgb_texture_size=1024, channels=16, levels=4, width=16,
                                            depth=3, supersample=2, output_filter=0.08, cameras=list(cams.name)),
                         f, uv, fuv, v, albedo_texture(256)).eval()
    turn = torch.linspace(0, 0.5, 32, dtype=v.dtype)
    c, s = torch.cos(turn), torch.sin(turn)
    rot = torch.zeros(32, 3, 3, dtype=v.dtype)
    rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1, -s, c
    return model, torch.einsum("tij,vj->tvi", rot, v), cams[:1]


def shot_frames_per_s(model, frames, camera, device: str) -> float:
    """Frames/s of `render_shot_frames` over ``frames`` after a warm-up shot of 8 frames."""
    for _ in render_shot_frames(model, frames[:8], camera, device=device):
        pass
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = sum(1 for _ in render_shot_frames(model, frames, camera, device=device))
    return n / (time.perf_counter() - t0)


@pytest.mark.gpu
def test_a_1024px_shot_renders_at_60_frames_per_second_on_cuda():
    model, frames, cam = actor_sized_model(1024)
    assert 27000 < model.faces.shape[0] < 28000
    fps = shot_frames_per_s(model, frames, cam, "cuda")
    print(f"\n1024 px shot on {torch.cuda.get_device_name()}: {fps:.1f} frames/s "
          f"({views_per_call(model, cam[0], 'cuda')} renders a call)")
    assert fps >= GOAL_FRAMES_PER_S, f"{fps:.1f} frames/s at 1024 px (goal {GOAL_FRAMES_PER_S})"
