"""The neural double's generalisation aids: new views get the mean training camera's colour correction, the
residual and texture-detail regularisers, feature dropout (training only)."""

import pytest
import torch

from capture import Camera
from neural_render.gbuffer import gbuffer
from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig
from neural_render.training import TrainConfig, regularisers
from tests.neural_render.scenes import ring_cameras, uv_sphere


@pytest.fixture(scope="module")
def sphere():
    torch.manual_seed(0)
    v, f, uv, fuv = uv_sphere()
    cams = ring_cameras(4, 32)
    return v, f, uv, fuv, cams


def _model(sphere, dropout=0.0, cameras=("a", "b"), channels=6):
    v, f, uv, fuv, _ = sphere
    cfg = NeuralDoubleConfig(channels=channels, texture_size=16, levels=2, width=8, depth=2, dropout=dropout,
                             cameras=list(cameras))
    m = NeuralDouble(cfg, f, uv, fuv, v, torch.full((8, 8, 3), 0.3), seed=1)
    with torch.no_grad():                       # a network that does something: non-zero output layer
        torch.nn.init.normal_(m.renderer.out.weight, std=0.5)
    return m


def _g(sphere, i=0):
    v, f, uv, fuv, cams = sphere
    return gbuffer(v, f, uv, fuv, Camera.stack([cams[i]]))


def test_new_views_get_the_mean_training_camera_colour_correction(sphere):
    m = _model(sphere).eval()
    g = _g(sphere)
    with torch.no_grad():
        raw = m.render_gbuffer(g)                               # identity corrections: the network's output
        m.color_A[0] = torch.eye(3) * 0.7
        m.color_A[1] = torch.eye(3) * 0.9
        m.color_b[0] = torch.tensor([0.1, 0.0, -0.1])
        m.color_b[1] = torch.tensor([0.3, 0.2, 0.1])
        new = m.render_gbuffer(g)                               # a new view: the mean correction
        cam1 = m.render_gbuffer(g, camera_index=torch.tensor([1]))
    assert torch.allclose(new[..., :3], raw[..., :3] * 0.8 + torch.tensor([0.2, 0.1, 0.0]), atol=1e-6)
    assert torch.allclose(cam1[..., :3], raw[..., :3] * 0.9 + torch.tensor([0.3, 0.2, 0.1]), atol=1e-6)
    assert torch.equal(new[..., 3], raw[..., 3])                 # alpha is never colour-corrected


def test_residual_regulariser_counts_the_rgb_residual_inside_the_mesh_only():
    cfg = TrainConfig(w_color_reg=0.0, w_residual=0.5)
    m = NeuralDouble(NeuralDoubleConfig(channels=4, texture_size=8, levels=1, width=4, depth=1, cameras=["a"]),
                     torch.tensor([[0, 1, 2]]), torch.rand(3, 2), torch.tensor([[0, 1, 2]]), torch.rand(3, 3))
    res = torch.zeros(1, 4, 4, 4)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :2] = True                                          # 8 of 16 pixels on the mesh
    res[0, :2, :, :3] = 2.0                                     # residual 2 on the mesh: 0.5 * 2^2 = 2
    res[0, 2:, :, :3] = 100.0                                   # off the mesh: ignored
    res[..., 3] = 50.0                                          # alpha residual: not regularised
    assert float(regularisers(m, res, mask, cfg).detach()) == pytest.approx(2.0)
    assert float(regularisers(m, torch.zeros_like(res), mask, cfg).detach()) == 0.0


def test_texture_detail_regulariser_leaves_the_coarsest_level_free():
    cfg = TrainConfig(w_color_reg=0.0, w_texture_detail=2.0)
    m = NeuralDouble(NeuralDoubleConfig(channels=3, texture_size=8, levels=3, width=4, depth=1, cameras=["a"]),
                     torch.tensor([[0, 1, 2]]), torch.rand(3, 2), torch.tensor([[0, 1, 2]]), torch.rand(3, 3))
    res, mask = torch.zeros(1, 2, 2, 4), torch.ones(1, 2, 2, dtype=torch.bool)
    with torch.no_grad():
        for lv in m.texture.levels():
            lv.zero_()
        m.texture.level2.fill_(5.0)                              # coarsest: free
        assert float(regularisers(m, res, mask, cfg).detach()) == 0.0
        m.texture.level0.fill_(0.5)                              # finest: mean of squares 0.25, x 2
        m.texture.level1.fill_(1.0)                              # middle: 1, x 2
    assert float(regularisers(m, res, mask, cfg).detach()) == pytest.approx(2.5)


def test_feature_dropout_acts_in_training_only(sphere):
    torch.manual_seed(3)
    m = _model(sphere, dropout=0.5, channels=16)       # 13 droppable channels: equal masks by chance 1 / 8192
    ref = _model(sphere, dropout=0.0, channels=16)
    ref.load_state_dict(m.state_dict())
    g = _g(sphere, 1)
    with torch.no_grad():
        m.eval()
        ref.eval()
        assert torch.equal(m.render_gbuffer(g), ref.render_gbuffer(g))
        m.train()
        a, b = m.render_gbuffer(g), m.render_gbuffer(g)
    assert float((a - b).abs().max()) > 1e-4                     # random channel masks differ between calls


def test_supersampled_model_starts_from_the_antialiased_cgi_render(sphere):
    """supersample 2: the G-buffer is rasterized at 2x, the neural texture averaged per pixel; at step 0 (zero
    residual) the render is the CGI render at 2x, area-averaged: fractional alpha on the silhouette."""
    from neural_render.cgi import render_cgi
    from neural_render.texture import linear_to_srgb

    v, f, uv, fuv, cams = sphere
    ramp = torch.linspace(0.1, 0.9, 32)                 # smooth: sRGB-then-interpolate ~ interpolate-then-sRGB
    tex = torch.stack([ramp[:, None].expand(32, 32), ramp[None].expand(32, 32), torch.full((32, 32), 0.4)], -1)
    cfg = NeuralDoubleConfig(channels=4, texture_size=32, levels=1, width=4, depth=2, supersample=2,
                             rgb_texture_size=32, cameras=["a"])
    m = NeuralDouble(cfg, f, uv, fuv, v, tex)
    m.init_from_bake(tex)
    cam = Camera.stack([cams[2]])
    with torch.no_grad():
        out = m(v, cam)[0]
        hi = render_cgi(v, f, uv, fuv, cam.scaled(2), tex)[0]
    srgb = torch.cat([linear_to_srgb(hi[..., :3]) * hi[..., 3:], hi[..., 3:]], -1)       # premultiplied
    ref = torch.nn.functional.avg_pool2d(srgb.permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0)
    assert out.shape == (32, 32, 4)
    cov = ref[..., 3]
    edge = (cov > 0.2) & (cov < 0.8)
    assert int(edge.sum()) >= 10                                       # the sphere's silhouette is anti-aliased
    assert float((out[..., 3] - cov).abs().max()) < 0.02               # alpha = coverage (logit prior, +-4 clamp)
    inside = cov > 0.99
    rgb_ref = ref[..., :3] / cov.clamp_min(1e-6)[..., None]
    assert float((out[..., :3] - rgb_ref)[inside].abs().mean()) < 0.01
    assert float((out[..., :3] - rgb_ref)[edge].abs().mean()) < 0.03


def test_view_jitter_rotates_each_views_directions_rigidly(sphere):
    from neural_render.training import jitter_view

    g = gbuffer(*sphere[:4], Camera.stack([sphere[4][0], sphere[4][1]]))
    gen = torch.Generator().manual_seed(0)
    j = jitter_view(g, 0.1, gen)
    assert jitter_view(g, 0.0, gen) is g
    assert torch.allclose(j.view_dir.norm(dim=-1), torch.ones(2, 32, 32), atol=1e-5)
    angle = torch.acos((j.view_dir * g.view_dir).sum(-1).clamp(-1, 1))          # (2, H, W)
    assert 0.005 < float(angle.max()) < 0.5                                       # moved, by a few degrees
    # a rotation: the angle between two pixels' directions is kept
    a0 = (g.view_dir[:, 0, 0] * g.view_dir[:, -1, -1]).sum(-1)
    a1 = (j.view_dir[:, 0, 0] * j.view_dir[:, -1, -1]).sum(-1)
    assert torch.allclose(a0, a1, atol=1e-5)
    assert torch.equal(j.normal, g.normal) and torch.equal(j.mask, g.mask)


def test_gbuffer_shift_moves_each_crop_against_its_photo_by_whole_samples(sphere):
    """TrainConfig.gbuffer_shift: each crop's G-buffer is the view's G-buffer cut k samples away from the photo
    crop's place (|k| <= shift per axis, clamped inside the view); shift 0 cuts it in register."""
    from neural_render.gbuffer import GBuffer
    from neural_render.training import TrainViews, _batch

    v, f, uv, fuv, cams = sphere
    g = gbuffer(v, f, uv, fuv, Camera.stack([cams[0], cams[1]]))
    n, H, W = g.mask.shape
    views = TrainViews(images=torch.rand(n, H, W, 3), masks=g.mask.float(), g=g,
                       camera_index=torch.tensor([0, 1]), codes=None, names=["a", "b"])
    ids, crop = torch.tensor([0, 1]), 16

    def offsets(shift, seed):
        gen = torch.Generator().manual_seed(seed)
        img, _, gc, _, _ = _batch(views, ids, crop, gen, "cpu", shift=shift)
        out = []
        for k in range(len(ids)):
            # the photo crop's corner, then where in the view the G-buffer crop was cut
            y0, x0 = [int(t[0]) for t in torch.nonzero((views.images[k] == img[k, 0, 0]).all(-1), as_tuple=True)]
            hits = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                    if 0 <= y0 + dy <= H - crop and 0 <= x0 + dx <= W - crop
                    and torch.equal(GBuffer.crop(g.index([k]), y0 + dy, x0 + dx, crop, crop).uv, gc.index([k]).uv)]
            out.append(hits)
        return out

    assert all((0, 0) in h for h in offsets(0, 1))
    seen = [h for s in range(8) for h in offsets(2, s)]
    assert all(any(max(abs(a), abs(b)) <= 2 for a, b in h) for h in seen)
    assert any((0, 0) not in h for h in seen)                   # moved, at least once in 16 crops
    from neural_render.training import train_neural_double

    with pytest.raises(ValueError, match="gbuffer_shift must be >= 0"):
        train_neural_double(_model(sphere), views, TrainConfig(iterations=1, gbuffer_shift=-1))
