"""Ensembles of neural doubles: the mean is taken in premultiplied form, two members trained apart score at least
as well as the worse of them on held-out views (and better than their mean error), and a model folder with members
loads back bit-exact; mismatched members are refused."""

import json

import pytest
import torch

from neural_render.ensemble import MEMBERS_KEY, NeuralEnsemble, load_double, mean_rgba
from neural_render.metrics import masked_psnr
from neural_render.neural_double import ModelError, NeuralDouble, NeuralDoubleConfig, save_model
from neural_render.training import TrainConfig, render_views, train_neural_double
from tests.neural_render.test_neural_double import HOLDOUT, _model, scene  # noqa: F401 - the fixture


def test_mean_rgba_is_the_mean_of_premultiplied_colours():
    a = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    b = torch.tensor([[0.0, 0.0, 1.0, 0.0]])          # transparent: its colour must not count
    c = torch.tensor([[0.0, 1.0, 0.0, 0.5]])
    assert torch.allclose(mean_rgba([a, b]), torch.tensor([[1.0, 0.0, 0.0, 0.5]]))
    out = mean_rgba([a, c])                             # premultiplied mean (0.5, 0.25, 0) over alpha 0.75
    assert torch.allclose(out, torch.tensor([[2 / 3, 1 / 3, 0.0, 0.75]]))
    assert torch.equal(mean_rgba([b, b])[..., 3], torch.zeros(1))


@pytest.fixture(scope="module")
def members(scene):  # noqa: F811
    torch.set_num_threads(1)
    out = []
    for seed in (0, 1):
        m, views = _model(scene, seed=seed)
        train_neural_double(m, views, TrainConfig(iterations=60, batch=2, crop=64, eval_every=30, patience=10,
                                                  seed=seed))
        out.append(m.eval())
    return out, views


def _psnr(rgba, scene_imgs, masks):
    return [float(masked_psnr(rgba[k, ..., :3], scene_imgs[i], masks[i])) for k, i in enumerate(HOLDOUT)]


def test_two_members_beat_the_mean_error_of_either(scene, members):  # noqa: F811
    _, _, _, _, _, imgs, masks, _, _ = scene
    (m0, m1), views = members
    ids = torch.tensor(HOLDOUT)
    r0, r1 = render_views(m0, views, ids, "cpu"), render_views(m1, views, ids, "cpu")
    assert not torch.equal(r0, r1)                     # different seeds: different members
    ens = render_views(NeuralEnsemble([m0, m1]), views, ids, "cpu")
    for k, i in enumerate(HOLDOUT):
        mk = masks[i]
        e0, e1, e = (((r[k, ..., :3] - imgs[i]) ** 2)[mk].mean() for r in (r0, r1, ens))
        assert e <= 0.5 * (e0 + e1) + 1e-7, (i, float(e), float(e0), float(e1))   # alpha 1 inside: Jensen
    p0, p1, pe = _psnr(r0, imgs, masks), _psnr(r1, imgs, masks), _psnr(ens, imgs, masks)
    assert all(pe[k] >= min(p0[k], p1[k]) for k in range(len(HOLDOUT)))


def test_a_model_folder_with_members_loads_back_bit_exact(tmp_path, members):
    (m0, m1), views = members
    save_model(tmp_path / "m", m0)
    save_model(tmp_path / "m" / "members" / "1", m1)
    cfg = tmp_path / "m" / "config.json"
    meta = json.loads(cfg.read_text())
    single, _ = load_double(tmp_path / "m")
    assert isinstance(single, NeuralDouble)             # no members listed: the plain model
    cfg.write_text(json.dumps({**meta, MEMBERS_KEY: ["members/1"]}))
    back, _ = load_double(tmp_path / "m")
    assert isinstance(back, NeuralEnsemble) and len(back) == 2
    ids = torch.tensor([0, 3])
    assert torch.equal(render_views(back, views, ids, "cpu"), render_views(NeuralEnsemble([m0, m1]), views, ids, "cpu"))
    assert back.signature() == m0.signature() and torch.equal(back.cgi_texture, m0.cgi_texture)
    cfg.write_text(json.dumps({**meta, MEMBERS_KEY: ["members/2"]}))
    with pytest.raises(ModelError, match="not a neural double model folder"):
        load_double(tmp_path / "m")
    cfg.write_text(json.dumps({**meta, MEMBERS_KEY: ["../elsewhere"]}))
    with pytest.raises(ModelError, match="outside the model folder"):
        load_double(tmp_path / "m")


def test_members_of_other_cameras_or_topology_are_refused(members):
    (m0, m1), _ = members
    other = NeuralDouble(NeuralDoubleConfig(**{**m1.config.__dict__, "cameras": ["x"]}), m1.faces, m1.uvs,
                         m1.face_uvs, m1.fitted_verts)
    with pytest.raises(ModelError, match="trained on cameras"):
        NeuralEnsemble([m0, other])
    cut = NeuralDouble(m1.config, m1.faces[:-1], m1.uvs, m1.face_uvs[:-1], m1.fitted_verts)
    with pytest.raises(ModelError, match="topology"):
        NeuralEnsemble([m0, cut])
    with pytest.raises(ValueError, match="with_residual"):
        NeuralEnsemble([m0, m1]).render_gbuffer(None, with_residual=True)
