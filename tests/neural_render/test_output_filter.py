"""The output filter: [w, 1 - 2w, w] on each axis in premultiplied form, checked against scipy's convolution; part of
a model (every render path draws through it), saved with it, and refused outside 0..1/3."""

import json

import numpy as np
import pytest
import torch
from scipy.ndimage import convolve1d

from capture import Camera
from neural_render.neural_double import ModelError, NeuralDouble, NeuralDoubleConfig, load_model, save_model
from neural_render.output_filter import check_output_filter, filter_rgba
from neural_render.strip_render import render_in_strips
from tests.neural_render.scenes import albedo_texture, uv_sphere


def _scipy_reference(rgba: np.ndarray, w: float) -> np.ndarray:
    prem = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], -1)
    k = np.array([w, 1 - 2 * w, w])
    prem = convolve1d(convolve1d(prem, k, axis=2, mode="nearest"), k, axis=1, mode="nearest")
    a = prem[..., 3:]
    return np.concatenate([np.where(a > 1e-6, prem[..., :3] / np.maximum(a, 1e-6), 0.0), a], -1)


def test_the_filter_is_scipys_separable_convolution_in_premultiplied_form():
    gen = torch.Generator().manual_seed(0)
    rgba = torch.rand(2, 9, 11, 4, generator=gen, dtype=torch.float64)
    rgba[..., 3] = torch.where(rgba[..., 3] < 0.3, 0.0, rgba[..., 3])      # transparent pixels among them
    got = filter_rgba(rgba, 0.08)
    np.testing.assert_allclose(got.numpy(), _scipy_reference(rgba.numpy(), 0.08), atol=1e-9)
    assert filter_rgba(rgba, 0.0) is rgba


def test_the_backdrop_does_not_bleed_into_an_edge():
    rgba = torch.zeros(1, 5, 6, 4)
    rgba[..., :3] = torch.tensor([0.0, 1.0, 0.0])      # colour under the transparent half must not count
    rgba[:, :, :3] = torch.tensor([0.8, 0.2, 0.1, 1.0])
    out = filter_rgba(rgba, 0.1)
    torch.testing.assert_close(out[0, 2, 2, :3], torch.tensor([0.8, 0.2, 0.1]))    # the edge keeps its colour
    assert out[0, 2, 2, 3] == pytest.approx(0.9) and out[0, 2, 3, 3] == pytest.approx(0.1)   # alpha spreads
    torch.testing.assert_close(out[0, 2, 3, :3], torch.tensor([0.8, 0.2, 0.1]))
    assert out[0, 2, 5].abs().sum() == 0                                               # far away: nothing


@pytest.mark.parametrize("bad", [-0.01, 0.34, float("nan"), "a"])
def test_out_of_range_weights_are_refused(bad):
    with pytest.raises(ValueError, match="output filter"):
        check_output_filter(bad)
    with pytest.raises(ValueError, match="output filter"):
        NeuralDoubleConfig(output_filter=bad)


def _model(w):
    v, f, uv, fuv = uv_sphere()
    cfg = NeuralDoubleConfig(texture_size=32, channels=8, levels=3, width=8, depth=2, supersample=2,
                             output_filter=w, cameras=["a"])
    m = NeuralDouble(cfg, f, uv, fuv, v, albedo_texture(32), seed=0)
    m.init_from_bake(albedo_texture(32))
    with torch.no_grad():
        for p in m.renderer.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    return m.eval(), v


def test_every_render_path_draws_through_the_models_filter(tmp_path):
    model, v = _model(0.1)
    cam = Camera.look_at((0.4, 0.3, 1.6), (0.0, 0.05, 0.0), width=48, height=40, fov_y_deg=35.0)
    with torch.no_grad():
        filtered = model(v, cam)
        model.config.output_filter = 0.0
        plain = model(v, cam)
        model.config.output_filter = 0.1
        torch.testing.assert_close(filtered, filter_rgba(plain, 0.1))
        assert (filtered - plain).abs().max() > 0.05
        strips = render_in_strips(model, v, cam, samples=4 * 48 * 5)
        assert (strips - filtered).abs().max() < 2e-3
        save_model(tmp_path / "m", model)
        loaded, meta, _ = load_model(tmp_path / "m")
        assert meta["config"]["output_filter"] == 0.1
        torch.testing.assert_close(loaded(v, cam), filtered)


def test_a_model_saved_before_the_filter_loads_without_one_and_a_bad_value_is_refused(tmp_path):
    model, _ = _model(0.0)
    d = save_model(tmp_path / "m", model)
    meta = json.loads((d / "config.json").read_text())
    del meta["config"]["output_filter"]                          # a config.json written before the field existed
    (d / "config.json").write_text(json.dumps(meta))
    assert load_model(d)[0].config.output_filter == 0.0
    meta["config"]["output_filter"] = 0.5
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="output filter"):
        load_model(d)
