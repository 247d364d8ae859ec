"""Mesh refinement of the neural double (learned vertex offsets along the normal, fixed-visibility G-buffers per
training step) and the training options of the generalisation work: viewpoint inputs, cosine learning-rate
schedule, view sampling by person area."""

import math

import pytest
import torch

import neural_render.training as training
from capture import Camera
from neural_render.gbuffer import gbuffer
from neural_render.metrics import masked_ssim
from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig, load_model, save_model
from neural_render.raster import fragments_for_faces, rasterize
from neural_render.training import (
    TrainConfig,
    _batch,
    backdrop_colours,
    lr_factor,
    mesh_laplacian,
    photometric_loss,
    prepare_views,
    regularisers,
    resolve_schedule,
    train_neural_double,
    view_probabilities,
)
from tests.neural_render.scenes import albedo_texture, photograph, ring_cameras, uv_sphere


@pytest.fixture(scope="module")
def sphere():
    torch.manual_seed(0)
    v, f, uv, fuv = uv_sphere()
    return v, f, uv, fuv, ring_cameras(4, 32)


def _model(sphere, refine=True, view_inputs="full", supersample=1, cameras=("a", "b", "c")):
    v, f, uv, fuv, _ = sphere
    cfg = NeuralDoubleConfig(channels=6, texture_size=16, levels=2, width=8, depth=2, refine_mesh=refine,
                             view_inputs=view_inputs, supersample=supersample, cameras=list(cameras))
    m = NeuralDouble(cfg, f, uv, fuv, v, torch.full((8, 8, 3), 0.3), seed=1)
    with torch.no_grad():
        torch.nn.init.normal_(m.renderer.out.weight, std=0.5)
    return m


def test_fragments_for_faces_match_the_rasterizer_and_follow_small_vertex_motions(sphere):
    v, f, uv, fuv, cams = sphere
    ref = rasterize(v, f, cams)
    again = fragments_for_faces(v, f, cams, ref.face_idx)
    m = ref.mask
    assert torch.allclose(again.bary[m], ref.bary[m], atol=1e-5)
    assert torch.allclose(again.depth[m], ref.depth[m], atol=1e-6)
    moved = v * 1.002                                       # a 1 mm inflation: same faces visible in the middle
    exact, approx = rasterize(moved, f, cams), fragments_for_faces(moved, f, cams, ref.face_idx)
    same = m & (exact.face_idx == ref.face_idx)
    assert same.sum() > 0.9 * m.sum()
    assert torch.allclose(approx.bary[same], exact.bary[same], atol=1e-4)
    assert (approx.depth[same] - ref.depth[same]).abs().mean() > 5e-4     # it did move
    with pytest.raises(ValueError, match="face_idx"):
        fragments_for_faces(v, f, cams, ref.face_idx[:, :-1])


def test_refining_model_starts_at_the_fit_and_its_crops_match_the_stored_gbuffer(sphere):
    v, f, uv, fuv, cams = sphere
    m = _model(sphere, supersample=2)
    assert m.vertex_offset is not None and float(m.vertex_offset.detach().abs().sum()) == 0
    imgs, masks = torch.rand(4, 32, 32, 3), torch.ones(4, 32, 32)
    views = prepare_views(m, v[None].expand(4, -1, -1), cams, imgs, masks, torch.tensor([0, 1, 2, -1]), None,
                          [f"0/c{i}" for i in range(4)])
    assert views.face_idx.shape == (4, 64, 64)
    gen = torch.Generator().manual_seed(0)
    ids = torch.tensor([1, 2])
    _, _, g_refine, _, _ = _batch(views, ids, 16, gen, "cpu", m)
    _, _, g_stored, _, _ = _batch(views, ids, 16, torch.Generator().manual_seed(0), "cpu", None)
    assert g_refine.mask.shape == (2, 32, 32) and torch.equal(g_refine.mask, g_stored.mask)
    assert torch.allclose(g_refine.uv, g_stored.uv, atol=1e-5)
    assert torch.allclose(g_refine.view_dir, g_stored.view_dir, atol=1e-5)
    cam = cams[0].cropped(5, 7, 10, 12)
    assert (cam.width, cam.height) == (10, 12) and float(cam.K[0, 2]) == float(cams[0].K[0, 2]) - 5


def test_vertex_offsets_move_the_render_and_survive_save_load(tmp_path, sphere):
    v, f, uv, fuv, cams = sphere
    m = _model(sphere)
    before = m(v, Camera.stack([cams[0]])).detach()
    with torch.no_grad():
        m.vertex_offset.fill_(0.05)                         # 5 cm outwards: a bigger sphere
    after = m(v, Camera.stack([cams[0]])).detach()
    assert (after[..., 3] > 0.5).sum() > (before[..., 3] > 0.5).sum()
    save_model(tmp_path / "m", m)
    m2, _, _ = load_model(tmp_path / "m")
    assert torch.equal(m2.vertex_offset, m.vertex_offset)
    assert torch.equal(m2(v, Camera.stack([cams[0]])), after)
    plain = _model(sphere, refine=False)
    assert plain.vertex_offset is None and "vertex_offset" not in plain.state_dict()


def test_laplacian_and_offset_regulariser(sphere):
    v, f, uv, fuv, cams = sphere
    x = torch.full((v.shape[0],), 2.0)
    assert float(mesh_laplacian(x, f).abs().max()) < 1e-6
    x[10] = 3.0
    lap = mesh_laplacian(x, f)
    assert math.isclose(float(lap[10]), 1.0, rel_tol=1e-5) and float(lap[11]) < 0
    m = _model(sphere)
    cfg = TrainConfig(w_color_reg=0.0, w_offset_smooth=1.0, w_offset=0.5)
    zero = float(regularisers(m, torch.zeros(1, 2, 2, 4), torch.ones(1, 2, 2, dtype=torch.bool), cfg).detach())
    with torch.no_grad():
        m.vertex_offset.fill_(0.002)                        # 2 mm everywhere: smooth, only the L2 term
    flat = float(regularisers(m, torch.zeros(1, 2, 2, 4), torch.ones(1, 2, 2, dtype=torch.bool), cfg).detach())
    assert zero == 0.0 and math.isclose(flat, 0.5 * 4.0, rel_tol=1e-4)


def test_training_moves_a_too_small_fit_outwards():
    """Photos of a sphere of radius 0.5 m, fitted by one of 0.48 m: the learned offsets grow outwards."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    v, f, uv, fuv = uv_sphere(16, 32)
    cams = ring_cameras(6, 64)
    imgs, masks = photograph(v, f, uv, fuv, cams, albedo_texture(64), specular=0.0)
    cfg = NeuralDoubleConfig(channels=6, texture_size=64, levels=3, width=8, depth=2, refine_mesh=True,
                             view_inputs="none", cameras=[f"c{i}" for i in range(6)])
    fit = v * 0.96
    m = NeuralDouble(cfg, f, uv, fuv, fit, torch.full((8, 8, 3), 0.5), seed=0)
    m.texture.set_channels(0, albedo_texture(64))          # the sphere's texture, registered to the true surface
    views = prepare_views(m, fit[None].expand(6, -1, -1), cams, imgs, masks.float(), torch.arange(6), None,
                          [f"0/c{i}" for i in range(6)])
    train_neural_double(m, views, TrainConfig(iterations=60, crop=64, lr_texture=0.0, lr_network=0.0,
                                              lr_offset=2e-3, w_offset=0.0, w_offset_smooth=1e-3, eval_every=1000))
    front = (fit[:, 2].abs() < 0.3)                         # the equator, which the ring cameras see
    assert float(m.vertex_offset.detach()[front].mean()) > 0.005, float(m.vertex_offset.detach()[front].mean())


def test_view_inputs_none_makes_the_render_independent_of_the_view_direction(sphere):
    v, f, uv, fuv, cams = sphere
    g = gbuffer(v, f, uv, fuv, Camera.stack([cams[0]]))
    turned = type(g)(g.mask, g.uv, g.normal, -g.normal_cam, -g.view_dir, g.depth)
    feats = torch.rand(1, 32, 32, 6)
    for mode, same in (("none", True), ("mesh", False), ("full", False)):
        r = _model(sphere, refine=False, view_inputs=mode).renderer
        with torch.no_grad():
            torch.nn.init.normal_(r.out.weight, std=0.5)
            a, b = r(feats, g), r(feats, turned)
        assert torch.equal(a, b) == same, mode
    with pytest.raises(ValueError, match="view_inputs"):
        _model(sphere, view_inputs="sideways")


def test_cosine_schedule_follows_steps_or_the_time_budget():
    cfg = TrainConfig(iterations=100, lr_schedule="cosine", lr_final=0.1)
    assert lr_factor(cfg, 0, 0.0) == 1.0
    assert math.isclose(lr_factor(cfg, 50, 0.0), 0.55)
    assert math.isclose(lr_factor(cfg, 100, 0.0), 0.1)
    timed = TrainConfig(iterations=10 ** 7, max_seconds=60.0, lr_schedule="cosine", lr_final=0.0)
    assert math.isclose(lr_factor(timed, 10, 30.0), 0.5) and lr_factor(timed, 10, 90.0) == 0.0
    assert lr_factor(TrainConfig(lr_schedule="constant"), 99, 1e6) == 1.0
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_factor(TrainConfig(lr_schedule="step"), 1, 1.0)
    with pytest.raises(ValueError, match="resolve_schedule"):
        lr_factor(TrainConfig(), 1, 1.0)                       # auto: the run decides (held-out views or not)
    assert resolve_schedule(TrainConfig(), held_out=True).lr_schedule == "constant"
    assert resolve_schedule(TrainConfig(), held_out=False).lr_schedule == "cosine"
    assert resolve_schedule(TrainConfig(lr_schedule="constant"), held_out=False).lr_schedule == "constant"


def test_a_run_without_held_out_views_decays_its_learning_rates_and_one_with_them_does_not(sphere):
    """The default schedule (auto): without held-out views nothing ends the run early or keeps a best state, and
    at a constant rate such runs collapsed late on the demo capture, so the rates follow the cosine; with held-out
    views they stay constant (early stopping and the best held-out state)."""
    v, f, uv, fuv, cams = sphere
    lrs = {}
    for held in (False, True):
        m = _model(sphere, refine=False)
        ci = torch.tensor([0, 1, 2, -1 if held else 0])
        views = prepare_views(m, v[None].expand(4, -1, -1), cams, torch.rand(4, 32, 32, 3), torch.ones(4, 32, 32),
                              ci, None, [f"0/c{i}" for i in range(4)])
        opt = training.make_optimizer(m, TrainConfig())
        res = train_neural_double(m, views, TrainConfig(iterations=10, crop=32, eval_every=5, patience=10),
                                  optimizer=opt)
        lrs[held] = (res.lr_schedule, [g["lr"] / g["initial_lr"] for g in opt.param_groups])
    schedule, factors = lrs[False]
    assert schedule == "cosine" and all(math.isclose(f, lr_factor(TrainConfig(iterations=10, lr_schedule="cosine"),
                                                                  9, 0.0)) for f in factors)
    assert lrs[True] == ("constant", [1.0] * len(factors))
    with pytest.raises(ValueError, match="alpha_eps"):             # clamp(eps, 1 - eps) needs eps < 0.5
        train_neural_double(m, views, TrainConfig(iterations=1, crop=32, alpha_eps=0.5))


def test_view_probabilities_follow_the_person_area(sphere):
    v, f, uv, fuv, cams = sphere
    m = _model(sphere, refine=False)
    masks = torch.zeros(4, 32, 32)
    masks[0, :4], masks[1, :16], masks[2, :8] = 1, 1, 1            # 128, 512, 256 px; view 3 held out
    views = prepare_views(m, v[None].expand(4, -1, -1), cams, torch.rand(4, 32, 32, 3), masks,
                          torch.tensor([0, 1, 2, -1]), None, [f"0/c{i}" for i in range(4)])
    assert torch.allclose(view_probabilities(views, 0.0), torch.full((3,), 1 / 3))
    assert torch.allclose(view_probabilities(views, 1.0), torch.tensor([1, 4, 2]) / 7.0)
    assert torch.allclose(view_probabilities(views, 0.5), torch.tensor([1, 2, 2 ** 0.5]) / (3 + 2 ** 0.5))


def test_composite_loss_matches_antialiased_edges_that_the_straight_loss_cannot():
    person, backdrop = torch.tensor([0.9, 0.6, 0.5]), torch.tensor([0.4, 0.4, 0.45])
    mask = torch.zeros(1, 16, 16)
    mask[:, :, :8], mask[:, :, 8] = 1.0, 0.5                     # an edge column half covered
    img = backdrop.expand(1, 16, 16, 3).clone()
    img[:, :, :8] = person
    img[:, :, 8] = 0.5 * person + 0.5 * backdrop
    rgba = torch.cat([person.expand(1, 16, 16, 3), mask[..., None]], -1)   # right colour, right coverage
    cfg = TrainConfig()                                              # the default since 2026-12-02
    assert cfg.composite_loss and cfg.grad_clip > 0
    assert float(photometric_loss(rgba, img, mask, cfg, backdrop[None])) < 1e-6
    straight = TrainConfig(composite_loss=False)
    assert float(photometric_loss(rgba, img, mask, straight, backdrop[None])) > 1e-3
    wrong = rgba.clone()
    wrong[:, :, 9, 3] = 0.5                                          # alpha leaking one pixel outside
    assert float(photometric_loss(wrong, img, mask, cfg, backdrop[None])) > 1e-3
    masks = torch.stack([mask[0], torch.ones(16, 16)])
    bgs = backdrop_colours(torch.cat([img, img]), masks)
    assert torch.allclose(bgs[0], backdrop) and torch.equal(bgs[1], torch.zeros(3))


def test_a_divergence_restores_the_best_state_and_halves_the_learning_rates(sphere, monkeypatch):
    v, f, uv, fuv, cams = sphere
    m = _model(sphere, refine=False)
    views = prepare_views(m, v[None].expand(4, -1, -1), cams, torch.rand(4, 32, 32, 3), torch.ones(4, 32, 32),
                          torch.tensor([0, 1, 2, -1]), None, [f"0/c{i}" for i in range(4)])
    scores = iter([20.0, 25.0, 12.0, 24.0])                  # step 3: 13 dB below the best
    monkeypatch.setattr(training, "holdout_psnr", lambda *a, **k: next(scores))
    seen = {}

    def progress(step, total, loss, psnr):
        seen[step] = m.texture.level0.detach().clone()

    opt = training.make_optimizer(m, TrainConfig())
    res = train_neural_double(m, views, TrainConfig(iterations=4, crop=32, eval_every=1, patience=10), optimizer=opt,
                              progress=progress)
    assert torch.equal(seen[3], seen[2]) and not torch.equal(seen[2], seen[1])
    assert res.best_step == 2 and res.best_holdout_psnr == 25.0
    assert all(math.isclose(g["lr"], g["initial_lr"] * 0.5) for g in opt.param_groups)


def test_without_held_out_views_a_jump_of_the_training_loss_restores_the_last_healthy_state(sphere, monkeypatch,
                                                                                            caplog):
    """No held-out camera (the CLI's default): a window of steps whose loss jumps past `diverged_loss` x the
    lowest window's is a divergence: the state before it is restored, learning rates halved, and the state kept
    at the end is never one taken right after a jump."""
    from neural_render.training import LossGuard

    v, f, uv, fuv, cams = sphere
    m = _model(sphere, refine=False)
    views = prepare_views(m, v[None].expand(4, -1, -1), cams, torch.rand(4, 32, 32, 3), torch.ones(4, 32, 32),
                          torch.tensor([0, 1, 2, 0]), None, [f"0/c{i}" for i in range(4)])
    scripted = iter([0.05, 0.04, 0.03, 0.03, 0.3, 0.3, 0.3, 0.3])          # windows of 2: the third jumps
    real = training._step
    monkeypatch.setattr(training, "_step", lambda *a, **k: real(*a, **k) * 0 + next(scripted))
    seen = {}

    def progress(step, total, loss, psnr):
        seen[step] = m.texture.level0.detach().clone()

    opt = training.make_optimizer(m, TrainConfig())
    res = train_neural_double(m, views, TrainConfig(iterations=8, crop=32, eval_every=2, patience=10,
                                                    lr_schedule="constant"), optimizer=opt, progress=progress)
    assert torch.equal(seen[6], seen[4]) and not torch.equal(seen[4], seen[2])     # step 6 restored step 4
    assert torch.equal(m.texture.level0, seen[4]) and res.best_step == 4           # the jump at 8 is not kept
    assert [d["step"] for d in res.divergences] == [6, 8] and "training loss 0.3" in res.divergences[0]["why"]
    assert all(math.isclose(g["lr"], g["initial_lr"] * 0.5) for g in opt.param_groups)   # steps 7-8: halved
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.levelname == "WARNING"] == [
        "training loss 0.3 in the steps before 6, more than 3 x the lowest window's 0.03",
        "training loss 0.3 in the steps before 8, more than 3 x the lowest window's 0.03"]
    guard = LossGuard(3.0)
    assert guard.healthy([0.05] * 20) and math.isclose(guard.lowest, 0.05)
    assert not guard.healthy([0.03] * 30 + [0.3] * 20)        # the window's mean passes, its last steps do not
    assert guard.healthy([0.14] * 20) and not guard.healthy([float("nan")])
    assert LossGuard(0.0).healthy([1.0]) and LossGuard(0.0).healthy([1e9])


def test_alpha_eps_ends_the_pull_towards_a_saturated_alpha():
    """The composite loss and the alpha L1 pull alpha towards exactly 1 on the person, which a sigmoid reaches only
    at an infinite logit (Adam turns that vanishing gradient into full steps). With alpha_eps the pull stops within
    eps; without it (the default) it never does, and the default loss is the plain one."""
    torch.manual_seed(0)
    rgb = torch.rand(1, 8, 8, 3) * 0.5 + 0.25
    bg, mask = torch.tensor([[0.1, 0.2, 0.9]]), torch.ones(1, 8, 8)
    for logit, saturated in ((8.0, True), (3.0, False)):           # alpha 0.99966 / 0.953
        grads = {}
        for eps in (0.0, 0.002):
            z = torch.full((1, 8, 8, 1), logit, requires_grad=True)
            photometric_loss(torch.cat([rgb, torch.sigmoid(z)], -1), rgb, mask, TrainConfig(alpha_eps=eps),
                             bg).backward()
            grads[eps] = float(z.grad.abs().sum())
        assert grads[0.0] > 0
        assert (grads[0.002] == 0) == saturated and (grads[0.002] > 0) != saturated
    rgba = torch.cat([rgb, torch.full((1, 8, 8, 1), 0.9)], -1)
    plain = photometric_loss(rgba, rgb, mask, TrainConfig(), bg)
    comp = rgb * 0.9 + bg[:, None, None] * 0.1
    expected = 0.8 * (comp - rgb).abs().mean() + 0.2 * (1 - masked_ssim(comp, rgb, mask > 0)) + 0.1 * 0.1
    assert torch.isclose(plain, expected, atol=1e-6)
