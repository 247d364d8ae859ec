"""TrainConfig.plateau_drops: at a plateau of the held-out PSNR the best state comes back with lower learning rates
(as many times as asked) before the run stops early."""

import pytest
import torch

import neural_render.training as training
from neural_render.training import TrainConfig, make_optimizer, train_neural_double
from tests.neural_render.scenes import small_training_views

# held-out PSNR of each evaluation (every 2 steps): best at step 4, a plateau of 2, better at step 10, a plateau
PSNRS = [20.0, 21.0, 20.5, 20.4, 21.5, 21.2, 21.1, 21.3, 21.0]


def _run(monkeypatch, drops: int):
    m, views = small_training_views(seed=2)
    scores, states, restored = iter(PSNRS), {}, []

    def scripted_psnr(model, views, device, composite=False):
        step = len(states) * 2 + 2
        states[step] = model.texture.level0.detach().clone()
        return next(scores)

    real_restore = training.restore_best

    def spy(model, opt, best_state, lr_scale, why, level=20):
        out = real_restore(model, opt, best_state, lr_scale, why, level)
        restored.append((model.texture.level0.detach().clone(), len(opt.state), lr_scale))
        return out

    monkeypatch.setattr(training, "holdout_psnr", scripted_psnr)
    monkeypatch.setattr(training, "restore_best", spy)
    cfg = TrainConfig(iterations=18, batch=1, crop=24, eval_every=2, patience=2, plateau_drops=drops,
                      plateau_factor=0.3)
    opt = make_optimizer(m, cfg)
    res = train_neural_double(m, views, cfg, optimizer=opt)
    return res, states, restored, opt


def test_without_drops_the_run_stops_at_the_first_plateau(monkeypatch):
    res, states, restored, _ = _run(monkeypatch, 0)
    assert res.stopped == "early_stopping" and res.steps == 8 and res.best_step == 4 and restored == []


def test_a_plateau_drop_restores_the_best_state_lowers_the_learning_rates_and_trains_on(monkeypatch):
    res, states, restored, opt = _run(monkeypatch, 1)
    assert len(restored) == 1
    weights, adam_entries, scale = restored[0]
    assert torch.equal(weights, states[4])                    # the best state (step 4) came back at step 8
    assert adam_entries == 0 and scale == pytest.approx(0.3)  # moments cleared, learning rates x 0.3
    assert res.best_step == 10 and res.best_holdout_psnr == 21.5
    assert res.stopped == "early_stopping" and res.steps == 14  # the second plateau (steps 12, 14) ends it
    for group in opt.param_groups:
        assert group["lr"] == pytest.approx(group["initial_lr"] * 0.3)
    assert not torch.equal(states[10], states[4])            # it trained on after the drop
