"""The neural double on a tiny view-dependent scene: it beats a constant and the CGI baseline on held-out views;
save/load is bit-exact; training resumes from a checkpoint; CPU and CUDA agree (gpu)."""

import math

import pytest
import torch

from capture import Camera
from neural_render.bake import BakeConfig, bake_texture
from neural_render.cgi import render_cgi
from neural_render.metrics import masked_psnr
from neural_render.neural_double import ModelError, NeuralDouble, NeuralDoubleConfig, load_model, save_model
from neural_render.texture import linear_to_srgb, srgb_to_linear
from neural_render.training import (
    TrainConfig,
    load_optimizer_state,
    make_optimizer,
    prepare_views,
    render_views,
    train_neural_double,
)
from tests.neural_render.scenes import albedo_texture, photograph, ring_cameras, uv_sphere

HOLDOUT = (3, 7)
MARGIN_DB = 3.0          # the goal: neural >= CGI baseline + 3 dB on held-out views


@pytest.fixture(scope="module")
def scene():
    torch.manual_seed(0)
    v, f, uv, fuv = uv_sphere()
    cams = ring_cameras(8, 64)
    imgs, masks = photograph(v, f, uv, fuv, cams, albedo_texture(64))
    train = [i for i in range(8) if i not in HOLDOUT]
    bake = bake_texture(v, f, uv, fuv, Camera.stack([cams[i] for i in train]),
                        [srgb_to_linear(imgs[i]) for i in train], [masks[i] for i in train], BakeConfig(size=64))
    return v, f, uv, fuv, cams, imgs, masks, train, bake.texture


def _model(scene, seed=0):
    v, f, uv, fuv, cams, imgs, masks, train, cgi = scene
    cfg = NeuralDoubleConfig(channels=8, texture_size=64, levels=3, width=12, depth=3,
                             cameras=[f"cam{i}" for i in train])
    m = NeuralDouble(cfg, f, uv, fuv, v, cgi, seed=seed)
    m.texture.set_channels(0, linear_to_srgb(cgi))
    ci = torch.tensor([train.index(i) if i in train else -1 for i in range(8)])
    views = prepare_views(m, v[None].expand(8, -1, -1), cams, imgs, masks.float(), ci, None,
                          [f"0/cam{i}" for i in range(8)])
    return m, views


@pytest.fixture(scope="module")
def trained(scene):
    torch.set_num_threads(1)
    m, views = _model(scene)
    # 300 steps: at 150 the +3 dB over the constant image depended on the seed's luck (2 of seeds 0-3 fell under
    # it, before and after the mip atlas changed the sampling's rounding); at 300 seeds 0-3 clear it by 0.6-11 dB.
    res = train_neural_double(m, views, TrainConfig(iterations=300, batch=2, crop=64, eval_every=50, patience=10))
    return m, views, res


def test_neural_beats_constant_and_cgi_on_held_out_views(scene, trained):
    v, f, uv, fuv, cams, imgs, masks, train, cgi = scene
    m, views, res = trained
    neural = render_views(m, views, torch.tensor(HOLDOUT), "cpu")
    cgi_img = linear_to_srgb(render_cgi(v, f, uv, fuv, Camera.stack([cams[i] for i in HOLDOUT]), cgi)[..., :3])
    for k, i in enumerate(HOLDOUT):
        mk = masks[i]
        p_neural = float(masked_psnr(neural[k, ..., :3], imgs[i], mk))
        p_cgi = float(masked_psnr(cgi_img[k], imgs[i], mk))
        const = imgs[i][mk].mean(0).expand_as(imgs[i])
        p_const = float(masked_psnr(const, imgs[i], mk))
        assert p_neural >= p_cgi + MARGIN_DB, (i, p_neural, p_cgi)
        assert p_neural >= p_const + MARGIN_DB, (i, p_neural, p_const)
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert math.isfinite(res.best_holdout_psnr) and res.best_step > 0


def test_save_load_is_bit_exact(tmp_path, scene, trained):
    m, views, _ = trained
    save_model(tmp_path / "m", m, extra={"note": "test"})
    m2, meta, _ = load_model(tmp_path / "m")
    ids = torch.tensor([0, 3])
    assert torch.equal(render_views(m, views, ids, "cpu"), render_views(m2, views, ids, "cpu"))
    assert meta["note"] == "test" and meta["signature"] == m.signature()
    for (k, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)


def test_corrupt_or_mismatched_model_is_refused(tmp_path, trained):
    m, _, _ = trained
    save_model(tmp_path / "m", m)
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="unreadable"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelError, match="not a neural double model folder"):
        load_model(tmp_path / "nothing")


def test_training_resumes_from_a_checkpoint(tmp_path, scene):
    torch.set_num_threads(1)
    cfg = TrainConfig(iterations=6, batch=1, crop=32, eval_every=3, patience=10, checkpoint_every=3)
    m, views = _model(scene)
    train_neural_double(m, views, cfg, checkpoint=lambda mm, o, st: save_model(tmp_path / "ck", mm, {"training": st},
                                                                                optimizer=o))
    m2, meta, opt_t = load_model(tmp_path / "ck", optimizer_for=True)
    assert meta["training"]["step"] == 6
    opt = make_optimizer(m2, cfg)
    load_optimizer_state(m2, opt, opt_t, meta["optimizer_steps"])
    state = opt.state[m2.texture.level0]
    assert float(state["exp_avg_sq"].abs().sum()) > 0 and float(state["step"]) == 6
    before = m2.texture.level0.detach().clone()
    res = train_neural_double(m2, views, TrainConfig(iterations=9, batch=1, crop=32, eval_every=3, patience=10),
                              optimizer=opt, start_step=6)
    assert res.steps == 9 and not torch.equal(before, m2.texture.level0)


@pytest.mark.gpu
def test_cuda_matches_cpu(scene, trained):
    m, views, _ = trained
    ids = torch.tensor([3])
    cpu = render_views(m, views, ids, "cpu")
    gpu = render_views(m.to("cuda"), views, ids, "cuda")      # bfloat16 autocast on CUDA
    m.to("cpu")
    assert float((cpu - gpu).abs().mean()) < 0.02


@pytest.mark.gpu
def test_cuda_training_with_mixed_precision_lowers_the_loss(scene):
    m, views = _model(scene, seed=1)
    m = m.to("cuda")
    res = train_neural_double(m, views, TrainConfig(iterations=40, batch=2, crop=64, eval_every=20, patience=10),
                              device="cuda")
    assert res.history[-1]["loss"] < res.history[0]["loss"] and math.isfinite(res.best_holdout_psnr)


def test_rgb_prior_texture_starts_at_the_bake_and_round_trips(tmp_path, scene):
    v, f, uv, fuv, cams, imgs, masks, train, cgi = scene
    cfg = NeuralDoubleConfig(channels=4, texture_size=16, levels=2, width=8, depth=2, rgb_texture_size=64,
                             cameras=["a"])
    m = NeuralDouble(cfg, f, uv, fuv, v, cgi)
    m.init_from_bake(cgi)
    with torch.no_grad():
        out = m(v, cams[3])
    ref = linear_to_srgb(render_cgi(v, f, uv, fuv, cams[3], cgi)[..., :3])
    inside = out[..., 3] > 0.5
    assert float(masked_psnr(out[..., :3], ref, inside)) > 35          # step 0 renders the CGI look
    save_model(tmp_path / "m", m)
    m2, _, _ = load_model(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(m2(v, cams[3]), out)


def test_a_frozen_rgb_prior_trains_the_same_steps_without_its_gradient(scene, monkeypatch):
    """The RGB prior texture is not optimised by default: training freezes it (no gradient, its pyramid built
    once), and the trained weights are those of a run where it still took gradients, bit for bit; with
    lr_rgb_texture > 0 it takes gradients and moves."""
    import neural_render.training as training

    v, f, uv, fuv, cams, imgs, masks, train, cgi = scene

    def run(cfg_train):
        torch.manual_seed(0)
        cfg = NeuralDoubleConfig(channels=4, texture_size=16, levels=2, width=8, depth=2, rgb_texture_size=32,
                                 cameras=[f"cam{i}" for i in train])
        m = NeuralDouble(cfg, f, uv, fuv, v, cgi, seed=0)
        m.init_from_bake(cgi)
        ci = torch.tensor([train.index(i) if i in train else -1 for i in range(8)])
        views = prepare_views(m, v[None].expand(8, -1, -1), cams, imgs, masks.float(), ci, None,
                              [f"0/cam{i}" for i in range(8)])
        prior = [p.detach().clone() for p in m.rgb_texture.parameters()]
        train_neural_double(m, views, cfg_train)
        return m, prior

    short = TrainConfig(iterations=12, batch=2, crop=32, eval_every=6, patience=10)
    frozen, prior = run(short)
    assert not any(p.requires_grad for p in frozen.rgb_texture.parameters())
    assert all(torch.equal(a, b) for a, b in zip(prior, frozen.rgb_texture.parameters(), strict=True))
    monkeypatch.setattr(training, "freeze_unoptimised_prior", lambda model, opt: None)
    with_grad, _ = run(short)                                # the prior takes (unused) gradients, as before
    assert all(p.requires_grad for p in with_grad.rgb_texture.parameters())
    assert all(torch.equal(a, b) for a, b in zip(frozen.state_dict().values(), with_grad.state_dict().values(),
                                                 strict=True))
    monkeypatch.undo()
    moved, prior = run(TrainConfig(iterations=6, batch=2, crop=32, eval_every=6, lr_rgb_texture=1e-2))
    assert all(p.requires_grad for p in moved.rgb_texture.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(prior, moved.rgb_texture.parameters(), strict=True))
