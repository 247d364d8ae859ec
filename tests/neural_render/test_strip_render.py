"""render_in_strips: a view built in strips (G-buffer and features) and drawn by the U-Net whole equals the view
drawn in one piece, for supersampled and plain models and for ensembles; the strips are bounded."""

import pytest
import torch

from capture import Camera
from neural_render.ensemble import NeuralEnsemble
from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig
from neural_render.strip_render import render_in_strips, strip_rows
from tests.neural_render.scenes import albedo_texture, uv_sphere


def _model(supersample, seed=0, rgb_texture_size=32):
    v, f, uv, fuv = uv_sphere()
    cfg = NeuralDoubleConfig(texture_size=32, channels=8, levels=3, width=8, depth=2, supersample=supersample,
                             rgb_texture_size=rgb_texture_size, cameras=["a"])
    m = NeuralDouble(cfg, f, uv, fuv, v, albedo_texture(32), seed=seed)
    m.init_from_bake(albedo_texture(32))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():     # away from the start (whose U-Net output is zero), so every feature and layer matters
        for p in [*m.texture.parameters(), *m.renderer.parameters()]:
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return m.eval(), v


def _same(a, b):
    """Equal but for the rasterizer's rounding with a shifted principal point (a sample on a triangle's edge can
    fall to its neighbour; the perturbed U-Net amplifies it): under half an 8-bit level anywhere, ~0 on average."""
    d = (a - b).abs()
    assert d.max() < 2e-3 and d.mean() < 1e-5, (d.max(), d.mean())


def test_strip_rows_cover_the_view_and_bound_the_samples():
    rows = strip_rows(100, 64, 2, samples=2 * 2 * 64 * 7)
    assert rows[0] == (0, 7) and rows[-1] == (98, 100) and all(a < b for a, b in rows)
    assert [r for a, b in rows for r in range(a, b)] == list(range(100))
    assert strip_rows(5, 10_000, 4, samples=16) == [(r, r + 1) for r in range(5)]      # at least a row


@pytest.mark.parametrize("supersample", [1, 2])
def test_strips_draw_the_view_of_one_piece(supersample):
    model, v = _model(supersample)
    cam = Camera.look_at((0.4, 0.3, 1.6), (0.0, 0.05, 0.0), width=64, height=48, fov_y_deg=35.0)
    with torch.no_grad():
        whole = model(v, cam)
        for samples in (supersample ** 2 * 64 * 5, 1):            # strips of 5 rows; of one row
            strips = render_in_strips(model, v, cam, samples=samples)
            assert strips.shape == whole.shape == (1, 48, 64, 4)
            _same(strips, whole)
    assert whole[..., 3].gt(0.5).sum() > 500              # the sphere is in view


def test_an_ensemble_draws_in_strips_as_in_one_piece():
    (m0, v), (m1, _) = _model(2, seed=0), _model(2, seed=1)
    ens = NeuralEnsemble([m0, m1]).eval()
    cam = Camera.look_at((-0.5, 0.2, 1.5), (0.0, 0.0, 0.0), width=48, height=40, fov_y_deg=40.0)
    with torch.no_grad():
        whole, strips = ens(v, cam), render_in_strips(ens, v, cam, samples=4 * 48 * 3)
        _same(strips, whole)
        assert (m0(v, cam) - whole).abs().mean() > 0.05          # both members are drawn


def test_the_unet_drawn_in_strips_with_context_equals_it_whole():
    """The U-Net ran on the whole view (its activations: 3.7 GB for a 2048 px shot); it now runs on strips with
    rows of context beyond its receptive field, starting on its pooling grid: the same pixels."""
    from neural_render.strip_render import UNET_HALO_MULTIPLES, features_rendered_in_strips

    model, v = _model(2)
    halo = UNET_HALO_MULTIPLES * model.renderer.multiple
    cam = Camera.look_at((0.0, 0.0, 1.2), (0.0, 0.0, 0.0), width=32, height=5 * halo, fov_y_deg=120.0)
    with torch.no_grad():
        f, g, cov = model.pooled_features(model.gbuffer(v, cam))
        whole = model.render_features(f, g, cov)
        strips = features_rendered_in_strips(model, f, g, cov, None, pixels=1)    # strips of 4 halos' rows
    assert torch.equal(strips, whole) or (strips - whole).abs().max() < 1e-6
    assert whole[..., 3].gt(0.5).sum() > 300
