"""Render-time camera jitter: the offsets lie on a centred circle, a shifted camera moves the image by exactly the
shift, a jittered frame is the premultiplied mean of its shifted renders, and jittered CGI coverage is closer to
the true (supersampled) pixel coverage than one sample is."""

import math

import pytest
import torch

from neural_render.cgi import render_cgi
from neural_render.ensemble import mean_rgba
from neural_render.jitter import JITTER_RADIUS, MAX_JITTER, jitter_offsets, jittered_render, shifted_camera
from neural_render.shading import render_mesh
from neural_render.shot import render_shot_frames
from tests.neural_render.scenes import albedo_texture, ring_cameras, uv_sphere


def test_offsets_are_a_centred_circle():
    assert jitter_offsets(1) == [(0.0, 0.0)]
    for n in (2, 4, 8):
        off = jitter_offsets(n)
        assert len(off) == n and len(set(off)) == n
        assert all(math.isclose(math.hypot(x, y), JITTER_RADIUS) for x, y in off)
        assert abs(sum(x for x, _ in off)) < 1e-9 and abs(sum(y for _, y in off)) < 1e-9   # no net shift
    assert all(math.isclose(abs(x), abs(y)) for x, y in jitter_offsets(4))               # the rotated grid
    for bad in (0, MAX_JITTER + 1, 2.5):
        with pytest.raises(ValueError, match="jitter must be a whole number"):
            jitter_offsets(bad)
    with pytest.raises(ValueError, match="radius"):
        jitter_offsets(4, -1.0)


def test_a_shifted_camera_moves_the_image_by_the_shift():
    cam = ring_cameras(2, 64)[0]
    pts = torch.tensor([[0.1, 0.2, 0.0], [-0.3, 0.0, 0.2]])
    uv, _ = cam.project(pts)
    uv2, _ = shifted_camera(cam, 0.25, -0.5).project(pts)
    assert torch.allclose(uv2 - uv, torch.tensor([0.25, -0.5]).expand_as(uv), atol=1e-5)
    assert torch.equal(cam.K, ring_cameras(2, 64)[0].K)                                  # the original untouched


def _cgi(cam, verts, faces, uvs, fuv, tex):
    return render_cgi(verts, faces, uvs, fuv, cam, tex)[0]


def test_jittered_render_is_the_premultiplied_mean_of_the_shifted_renders():
    v, f, uv, fuv = uv_sphere()
    tex = albedo_texture(64)
    cam = ring_cameras(2, 32)[0]
    off = jitter_offsets(4)
    out = jittered_render(lambda k: _cgi(k, v, f, uv, fuv, tex), cam, off)
    ref = mean_rgba([_cgi(shifted_camera(cam, dx, dy), v, f, uv, fuv, tex) for dx, dy in off])
    assert torch.equal(out, ref)
    assert torch.equal(jittered_render(lambda k: _cgi(k, v, f, uv, fuv, tex), cam, [(0.0, 0.0)]),
                       _cgi(cam, v, f, uv, fuv, tex))                                     # one offset: one render
    a = out[..., 3]
    assert ((a > 0) & (a < 1)).any()                                                      # fractional edges


def test_jittered_coverage_is_closer_to_the_true_pixel_coverage():
    """At the outline the mean of 8 shifted renders estimates how much of each pixel the sphere covers (the
    alpha of a 8 x 8 supersampled render): its error is well under the single sample's 0 / 1 alpha."""
    v, f, _, _ = uv_sphere(24, 48)
    cam = ring_cameras(2, 48)[0]
    truth = render_mesh(v, f, cam, supersample=8)[0][..., 3]
    one = render_mesh(v, f, cam)[0][..., 3]
    jit = jittered_render(lambda k: render_mesh(v, f, k)[0], cam, jitter_offsets(8))[..., 3]
    edge = (truth > 0.02) & (truth < 0.98)
    assert edge.sum() > 20
    e1, ej = (one - truth)[edge].abs().mean(), (jit - truth)[edge].abs().mean()
    assert ej < 0.6 * e1, (float(ej), float(e1))


def test_shot_frames_draw_jittered_renders_for_both_renderers():
    from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig

    v, f, uv, fuv = uv_sphere()
    torch.manual_seed(0)
    cams = ring_cameras(2, 32)
    model = NeuralDouble(NeuralDoubleConfig(texture_size=32, channels=8, levels=2, width=8, depth=2,
                                            cameras=list(cams.name)), f, uv, fuv, v, albedo_texture(32)).eval()
    for renderer in ("cgi", "neural"):
        one = next(render_shot_frames(model, v[None], cams[:1], renderer))
        four = next(render_shot_frames(model, v[None], cams[:1], renderer, jitter=4))
        assert one.rgba_srgb.shape == four.rgba_srgb.shape == (32, 32, 4)
        assert not (one.rgba_srgb == four.rgba_srgb).all()
        a = four.rgba_linear[..., 3]
        assert abs(a.sum() - one.rgba_linear[..., 3].sum()) < 0.1 * one.rgba_linear[..., 3].sum()   # same coverage
    with pytest.raises(ValueError, match="jitter must be"):
        next(render_shot_frames(model, v[None], cams[:1], "cgi", jitter=0))
