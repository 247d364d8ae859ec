"""Shots drawn several renders a model call (``neural_render.shot.views_per_call``): the frames are those drawn one
render at a time (frames, jitter renders, per-frame codes, both renderers, a chunk that does not divide the shot),
in order; the renders of a call share its operations (what a GPU waits on); bad counts are refused; on CUDA the
automatic count draws several views and agrees with the CPU (gpu)."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig
from neural_render.shot import MAX_VIEWS_PER_CALL, render_shot_frames, views_per_call
from tests.neural_render.scenes import albedo_texture, ring_cameras, uv_sphere


def _model(code_dim: int = 0) -> tuple[NeuralDouble, torch.Tensor]:
    """A small untrained model with a non-zero U-Net output (so the network's part of a render is exercised), and
    5 frames of its mesh moving."""
    v, f, uv, fuv = uv_sphere()
    torch.manual_seed(0)
    cams = ring_cameras(2, 32)
    m = NeuralDouble(NeuralDoubleConfig(texture_size=32, channels=8, levels=2, width=8, depth=2, code_dim=code_dim,
                                        cameras=list(cams.name), output_filter=0.05), f, uv, fuv, v,
                     albedo_texture(32)).eval()
    with torch.no_grad():
        for p in m.renderer.out.parameters():
            p.normal_(0, 0.3)
        if m.renderer.code is not None:
            m.renderer.code.weight.normal_(0, 3)
    frames = torch.stack([v * (1 + 0.05 * t) + torch.tensor([0.02 * t, 0.0, 0.0], dtype=v.dtype)
                          for t in range(5)])
    return m, frames


def _frames(model, frames, cams, **kw):
    return list(render_shot_frames(model, frames, cams, **kw))


@pytest.mark.parametrize("renderer,jitter", [("neural", 1), ("neural", 4), ("cgi", 1), ("cgi", 2)])
def test_several_renders_a_call_give_the_frames_of_one_at_a_time(renderer, jitter):
    model, frames = _model()
    cams = ring_cameras(2, 32)
    one = _frames(model, frames, cams, renderer=renderer, jitter=jitter, per_call=1)
    assert [(f.camera, f.frame) for f in one] == [(c, t) for c in range(2) for t in range(5)]
    for per in (3, 8):          # 3: chunks that split a frame's jitter renders (jitter 4) or the shot unevenly
        many = _frames(model, frames, cams, renderer=renderer, jitter=jitter, per_call=per)
        assert [(f.camera, f.frame) for f in many] == [(f.camera, f.frame) for f in one]
        for a, b in zip(one, many, strict=True):
            assert abs(a.rgba_srgb - b.rgba_srgb).max() < 1e-5
            assert abs(a.rgba_linear - b.rgba_linear).max() < 1e-5
    assert not (one[0].rgba_srgb == one[4].rgba_srgb).all()          # the frames differ


def test_per_frame_codes_follow_their_frames():
    model, frames = _model(code_dim=3)
    cams = ring_cameras(2, 32)[:1]
    codes = torch.randn(5, 3, generator=torch.Generator().manual_seed(1)) * 3
    one = _frames(model, frames, cams, codes=codes, per_call=1)
    many = _frames(model, frames, cams, codes=codes, per_call=4)
    for a, b in zip(one, many, strict=True):
        assert abs(a.rgba_srgb - b.rgba_srgb).max() < 1e-5
    swapped = _frames(model, frames, cams, codes=codes.flip(0), per_call=4)
    assert abs(swapped[0].rgba_srgb - one[0].rgba_srgb).max() > 1e-3      # the code is part of the render


def _operations(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for e in prof.events() if e.name.startswith("aten::"))


def test_the_renders_of_a_call_share_its_operations():
    """What a GPU pays for a frame is mostly launches (one per operation): four frames drawn in one call run
    under half the operations of four calls."""
    model, frames = _model()
    cams = ring_cameras(2, 32)[:1]
    _frames(model, frames[:4], cams, per_call=4)                      # warm (the texture's cache)
    one = _operations(lambda: _frames(model, frames[:4], cams, per_call=1))
    four = _operations(lambda: _frames(model, frames[:4], cams, per_call=4))
    assert four < 0.5 * one, (four, one)


def test_views_per_call_defaults_and_refusals():
    model, _ = _model()
    cam = ring_cameras(2, 32)[0]
    assert views_per_call(model, cam, "cpu") == 1                    # the CPU draws one view, in strips
    assert views_per_call(model, cam, "cpu", 6) == 6
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="views per call"):
            views_per_call(model, cam, "cpu", bad)


@pytest.mark.gpu
def test_cuda_draws_several_views_a_call_like_the_cpu():
    model, frames = _model()
    cams = ring_cameras(2, 32)
    assert 1 < views_per_call(model, cams[0], "cuda") <= MAX_VIEWS_PER_CALL
    cpu = _frames(model, frames, cams, per_call=1)
    gpu = _frames(model, frames, cams, device="cuda")
    for a, b in zip(cpu, gpu, strict=True):
        assert abs(a.rgba_srgb - b.rgba_srgb).mean() < 0.02     # bfloat16 U-Net on CUDA, as the parity tests
