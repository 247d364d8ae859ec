"""Snapshots: a run keeps its K best held-out states (copies, best first, never the kept best twice), and a model
folder whose members list their own snapshots loads as one flat ensemble."""

import json
import math

import pytest
import torch
from torch import nn

from neural_render.ensemble import MEMBERS_KEY, NeuralEnsemble, load_double, member_folders
from neural_render.neural_double import save_model
from neural_render.snapshots import Snapshots
from neural_render.training import TrainConfig, render_views, train_neural_double
from tests.neural_render.test_neural_double import _model, scene  # noqa: F401 - the fixture


def test_the_k_best_states_are_kept_as_copies():
    lin = nn.Linear(1, 1, bias=False)
    pool = Snapshots(3)
    for step, psnr in enumerate([20.0, 23.0, 21.0, float("nan"), 25.0, 22.0, 21.5]):
        with torch.no_grad():
            lin.weight.fill_(psnr if math.isfinite(psnr) else -1.0)
        pool.offer(psnr, step, lin)
    assert [s.psnr for s in pool.items] == [25.0, 23.0, 22.0]
    assert [float(s.state["weight"]) for s in pool.items] == [25.0, 23.0, 22.0]    # copies, not the live weights
    assert [s.step for s in pool.others(best_step=4)] == [1, 5]
    assert [s.step for s in pool.others(best_step=99)] == [4, 1]                  # at most k - 1
    assert not Snapshots(1).offer(30.0, 0, lin)
    with pytest.raises(ValueError, match="snapshots"):
        Snapshots(0)


def test_training_returns_the_next_best_states(scene):  # noqa: F811
    torch.set_num_threads(1)
    m, views = _model(scene, seed=0)
    res = train_neural_double(m, views, TrainConfig(iterations=60, batch=2, crop=64, eval_every=10, patience=10,
                                                    snapshots=3))
    assert len(res.snapshots) == 2
    steps = [s.step for s in res.snapshots]
    assert res.best_step not in steps and len(set(steps)) == 2
    scored = {h["step"]: h["holdout_psnr"] for h in res.history}
    for s in res.snapshots:
        assert s.psnr <= res.best_holdout_psnr and scored[s.step] == pytest.approx(s.psnr, abs=1e-3)
    assert not torch.equal(res.snapshots[0].state["texture.level0"], m.state_dict()["texture.level0"])


def test_members_with_their_own_snapshots_load_flat(tmp_path, scene):  # noqa: F811
    models = [_model(scene, seed=s)[0].eval() for s in (0, 1, 2)]
    views = _model(scene, seed=0)[1]
    root = tmp_path / "m"
    save_model(root, models[0], extra={MEMBERS_KEY: ["members/1"]})
    save_model(root / "members" / "1", models[1], extra={MEMBERS_KEY: ["snapshots/1"]})
    save_model(root / "members" / "1" / "snapshots" / "1", models[2])
    assert [f.relative_to(root).as_posix() for f in member_folders(root)] == \
        [".", "members/1", "members/1/snapshots/1"]
    back, meta = load_double(root)
    assert isinstance(back, NeuralEnsemble) and len(back) == 3 and meta[MEMBERS_KEY] == ["members/1"]
    ids = torch.tensor([0, 1])
    assert torch.equal(render_views(back, views, ids, "cpu"), render_views(NeuralEnsemble(models), views, ids, "cpu"))
    (root / "members" / "1" / "config.json").write_text(json.dumps(
        {**json.loads((root / "members" / "1" / "config.json").read_text()), MEMBERS_KEY: ["../../elsewhere"]}))
    with pytest.raises(Exception, match="outside the model folder"):
        load_double(root)
