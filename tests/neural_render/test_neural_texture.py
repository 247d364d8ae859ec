"""NeuralTexture (Laplacian pyramid, mip-mapped sampling: gradient checks) and the deferred U-Net's contract."""

import pytest
import torch

from neural_render.deferred import DeferredNeuralRenderer, round_size
from neural_render.gbuffer import GBuffer
from neural_render.neural_texture import NeuralTexture


def _tex(dtype=torch.float64, size=8, channels=2, levels=3):
    t = NeuralTexture(channels, size, levels, generator=torch.Generator().manual_seed(0)).to(dtype)
    with torch.no_grad():
        for p in t.levels():
            p.copy_(torch.randn(p.shape, dtype=dtype, generator=torch.Generator().manual_seed(p.shape[-1])))
    return t


def test_texture_is_the_sum_of_upsampled_levels():
    t = _tex()
    lv = t.levels()
    expect = lv[0] + torch.nn.functional.interpolate(lv[1], size=(8, 8), mode="bilinear", align_corners=False) \
        + torch.nn.functional.interpolate(lv[2], size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(t.texture(), expect[0].permute(1, 2, 0), atol=1e-12)


def test_set_channels_reproduces_an_image_and_leaves_other_channels():
    t = NeuralTexture(5, 16, 3).double()
    before = t.texture()[..., 3:].clone()
    img = torch.rand(16, 16, 3, dtype=torch.float64)
    t.set_channels(0, img)
    assert torch.allclose(t.texture()[..., :3], img, atol=1e-6)
    assert torch.equal(t.texture()[..., 3:], before)


def test_sampling_without_gradients_reuses_the_pyramid_until_a_level_changes():
    """Under no_grad the texture and its mip pyramid are built once (the same values as the differentiable
    path) and rebuilt after an optimiser step, load_state_dict or a write through .data changes a level."""
    t = _tex(torch.float32, size=16, channels=3)
    uv = torch.rand(1, 6, 5, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        first = t(uv)
        cached = t._mip_cache[2]
        assert torch.equal(t(uv), first) and t._mip_cache[2] is cached        # built once
    assert torch.equal(t(uv).detach(), first)                                # the differentiable path agrees
    opt = torch.optim.SGD(t.parameters(), lr=0.5)
    t(uv).square().sum().backward()
    opt.step()
    with torch.no_grad():
        after = t(uv)
        assert t._mip_cache[2] is not cached and not torch.equal(after, first)
    assert torch.equal(t(uv).detach(), after)                                # rebuilt from the new levels
    t.load_state_dict(_tex(torch.float32, size=16, channels=3).state_dict())
    with torch.no_grad():
        assert torch.equal(t(uv), first)                                      # the first state, read back
    t.level2.data.mul_(2.0)                                                  # not seen by the version counter
    with torch.no_grad():
        doubled = t(uv)
    assert not torch.equal(doubled, first) and torch.equal(doubled, t(uv).detach())


def test_gradcheck_texture_sampling_wrt_the_pyramid():
    t = _tex()
    uv = torch.rand(1, 3, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    mask = torch.ones(1, 3, 4, dtype=torch.bool)
    params = tuple(t.levels())

    # the module's sampling as a function of the pyramid tensors (gradcheck needs them as inputs)
    def g(l0, l1, l2):
        tex = l0 + torch.nn.functional.interpolate(l1, size=(8, 8), mode="bilinear", align_corners=False) \
            + torch.nn.functional.interpolate(l2, size=(8, 8), mode="bilinear", align_corners=False)
        from neural_render.texture import sample_texture
        return sample_texture(uv, tex[0].permute(1, 2, 0), mask=mask)

    assert torch.allclose(t(uv, mask), g(*[p.detach() for p in params]))
    inputs = tuple(p.detach().clone().requires_grad_(True) for p in params)
    assert torch.autograd.gradcheck(g, inputs, eps=1e-6, atol=1e-6)


def test_gradcheck_texture_sampling_wrt_uv_with_a_fixed_mip_level():
    t = _tex()
    tex = t.texture().detach()
    level = torch.full((1, 2, 3), 0.6, dtype=torch.float64)          # trilinear between levels 0 and 1
    uv = (torch.rand(1, 2, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 0.7 + 0.15)

    def f(u):
        from neural_render.texture import sample_texture
        return sample_texture(u, tex, level=level)

    assert torch.autograd.gradcheck(f, (uv.requires_grad_(True),), eps=1e-7, atol=1e-5)


def test_neural_texture_gradients_reach_every_level():
    t = _tex(torch.float32)
    uv = torch.rand(1, 16, 16, 2)
    t(uv).sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in t.levels())


def _gbuffer(B, H, W):
    gen = torch.Generator().manual_seed(3)
    r = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    return GBuffer(torch.ones(B, H, W, dtype=torch.bool), r(B, H, W, 2), r(B, H, W, 3), r(B, H, W, 3), r(B, H, W, 3),
                   torch.ones(B, H, W))


def test_unet_output_and_size_contract():
    net = DeferredNeuralRenderer(feature_channels=4, width=8, depth=2)
    out = net(torch.rand(2, 16, 24, 4), _gbuffer(2, 16, 24))
    assert out.shape == (2, 16, 24, 4) and float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 18, 24, 4), _gbuffer(1, 18, 24))
    with pytest.raises(ValueError, match="feature channels"):
        net(torch.rand(1, 16, 24, 3), _gbuffer(1, 16, 24))
    assert round_size(250, 8) == 248 and round_size(3, 8) == 8 and round_size(252, 8) == 256


def test_unet_starts_from_the_prior():
    net = DeferredNeuralRenderer(feature_channels=4, width=8, depth=2)
    f, g = torch.rand(1, 8, 8, 4) * 0.9 + 0.05, _gbuffer(1, 8, 8)
    g.mask[0, :, :4] = False
    with torch.no_grad():
        out = net(f, g)
    assert torch.allclose(out[0, :, 4:, :3], f[0, :, 4:, :3], atol=1e-5)
    assert float(out[0, :, 4:, 3].min()) > 0.98 and float(out[0, :, :4, 3].max()) < 0.02


def test_unet_code_changes_the_output():
    torch.manual_seed(0)
    net = DeferredNeuralRenderer(feature_channels=4, width=8, depth=2, code_dim=5)
    torch.nn.init.normal_(net.out.weight, std=0.1)     # zero at init: the output is the prior
    f, g = torch.rand(1, 8, 8, 4), _gbuffer(1, 8, 8)
    a = net(f, g, torch.zeros(1, 5))
    b = net(f, g, torch.ones(1, 5))
    assert float((a - b).detach().abs().max()) > 1e-7
    net(f, g, torch.ones(1, 5, requires_grad=True)).sum().backward()
    assert float(net.code.weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="code of shape"):
        net(f, g)
