"""The weights' moving average (neural_render.weight_average) and the trainer keeping it (TrainConfig.ema_decay)."""

import pytest
import torch
from torch import nn

from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig
from neural_render.training import TrainConfig, prepare_views, train_neural_double
from neural_render.weight_average import WeightAverage
from tests.neural_render.scenes import ring_cameras, uv_sphere


def test_the_average_follows_the_closed_form_ema_and_puts_the_live_weights_back():
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    avg = WeightAverage(lin, decay=0.5)
    expected = torch.zeros(1, 2)
    for k, value in enumerate([1.0, 3.0, -2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]):
        with torch.no_grad():
            lin.weight.fill_(value)
        avg.update(lin)
        d = min(0.5, (1 + k) / (10 + k))
        expected = d * expected + (1 - d) * value
    assert torch.allclose(avg.average["weight"], expected)
    assert 3.9 < float(expected[0, 0]) < 4.0                 # it converges to the recent weights
    with avg.applied(lin):
        assert torch.allclose(lin.weight, expected)
    assert torch.equal(lin.weight, torch.full((1, 2), 4.0))  # live weights back
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(lin, 1.0)


def test_the_trainer_scores_and_keeps_the_averaged_weights(monkeypatch):
    import neural_render.training as training

    v, f, uv, fuv = uv_sphere()
    cams = ring_cameras(4, 32)
    cfg = NeuralDoubleConfig(channels=6, texture_size=16, levels=2, width=8, depth=2, cameras=["a", "b", "c"])
    m = NeuralDouble(cfg, f, uv, fuv, v, torch.full((8, 8, 3), 0.3), seed=1)
    views = prepare_views(m, v[None].expand(4, -1, -1), cams, torch.rand(4, 32, 32, 3), torch.ones(4, 32, 32),
                          torch.tensor([0, 1, 2, -1]), None, [f"0/c{i}" for i in range(4)])
    scored = []

    def score(model, *a, **k):                               # the weights the trainer scores, recorded
        scored.append(model.texture.level0.detach().clone())
        return [20.0, 25.0, 21.0][len(scored) - 1]           # the second evaluation is the best

    monkeypatch.setattr(training, "holdout_psnr", score)
    live = []
    res = train_neural_double(m, views, TrainConfig(iterations=3, crop=32, eval_every=1, patience=10, ema_decay=0.9),
                              progress=lambda *a: live.append(m.texture.level0.detach().clone()))
    assert res.best_step == 2
    assert not torch.allclose(scored[1], live[1])            # it scored the average, not the live weights
    assert torch.equal(m.texture.level0, scored[1])          # and kept the average it scored best
