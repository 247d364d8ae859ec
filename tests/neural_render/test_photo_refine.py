"""The fitted mesh refined to the photos before the bake (neural_render.photo_refine) and the neural double's
frozen surface offsets (NeuralDoubleConfig.refine_to_photos)."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as tf

from capture import Camera
from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig, load_model, save_model
from neural_render.photo_refine import PhotoRefineConfig, person_matte, photo_refine, smooth_vertex_field
from neural_render.raster import rasterize
from neural_render.shading import vertex_normals
from neural_render.training import TrainConfig, make_optimizer

BACK, PERSON = torch.tensor([0.45, 0.45, 0.5]), torch.tensor([0.85, 0.55, 0.4])


def icosphere(radius: float, subdivisions: int = 3):
    """(verts (V, 3), faces (F, 3), uvs (V, 2), face_uvs (F, 3)): a watertight sphere, spherical UVs."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    v = torch.tensor(m.vertices, dtype=torch.float32)
    f = torch.tensor(m.faces, dtype=torch.int64)
    d = tf.normalize(v, dim=-1)
    uv = torch.stack([torch.atan2(d[:, 0], d[:, 2]) / (2 * math.pi) + 0.5, torch.acos(d[:, 1].clamp(-1, 1)) / math.pi],
                     -1)
    return v, f, uv, f.clone()


def cameras(n: int = 6, size: int = 96, distance: float = 1.5) -> Camera:
    cams = []
    for i in range(n):
        a = 2 * math.pi * i / n
        eye = (distance * math.sin(a), 0.4 * (i % 2) - 0.2, distance * math.cos(a))
        cams.append(Camera.look_at(eye, (0.0, 0.0, 0.0), width=size, height=size, fov_y_deg=35.0, name=f"c{i}"))
    return Camera.stack(cams)


def photos(verts, faces, cams: Camera, s: int = 4):
    """Anti-aliased photos (N, H, W, 3) of a uniformly coloured mesh over the backdrop and masks (N, H, W)."""
    cov = rasterize(verts, faces, cams.scaled(s)).depth.isfinite().float()
    cov = tf.avg_pool2d(cov[:, None], s)[:, 0]
    img = PERSON * cov[..., None] + BACK * (1 - cov[..., None])
    return img, cov > 0.5


def test_smooth_vertex_field_keeps_constants_and_spreads_a_spike():
    v, f, _, _ = icosphere(1.0, 2)
    const = torch.full((len(v),), 0.7)
    assert torch.allclose(smooth_vertex_field(const, f, 10), const, atol=1e-6)
    spike = torch.zeros(len(v))
    spike[5] = 1.0
    out = smooth_vertex_field(spike, f, 5)
    assert out[5] < 0.3 and out.min() >= 0
    assert (out > 1e-3).sum() > 10                      # reached the neighbours' neighbours
    two = smooth_vertex_field(torch.stack([const, spike], -1), f, 5)
    assert torch.allclose(two[:, 1], out, atol=1e-6)


def test_person_matte_reads_partial_coverage_on_the_backdrop_to_person_line():
    img = BACK.expand(20, 20, 3).clone()
    img[5:15, 5:15] = PERSON
    img[5:15, 15] = 0.3 * PERSON + 0.7 * BACK                # an edge column 30 % person
    mask = torch.zeros(20, 20, dtype=torch.bool)
    mask[5:15, 5:16] = True
    alpha, contrast = person_matte(img, mask)
    assert torch.allclose(alpha[7:13, 15], torch.full((6,), 0.3), atol=1e-4)
    assert alpha[10, 8] == 1.0 and alpha[10, 2] == 0.0 and alpha[0, 0] == 0.0
    assert abs(float(contrast[10, 15]) - float((PERSON - BACK).norm())) < 1e-4


def test_photo_refine_moves_a_shrunken_mesh_out_to_the_photographed_outline():
    torch.manual_seed(0)
    truth, f, uv, fuv = icosphere(0.31)
    fit = truth * (0.30 / 0.31)                          # 1 cm too small everywhere (about 1 px in these views)
    cams = cameras()
    imgs, masks = photos(truth, f, cams)
    res = photo_refine(fit, f, uv, fuv, cams, list(imgs), list(masks),
                       PhotoRefineConfig(steps=90, texels=64, lr=5e-4, w_offset=1e-4, max_offset=0.03))
    refined = fit + res.offsets[:, None] * vertex_normals(fit, f)
    err_before = (fit.norm(dim=-1) - 0.31).abs().mean()
    err_after = (refined.norm(dim=-1) - 0.31).abs().mean()
    assert err_before > 9e-3
    assert err_after < 0.4 * err_before, (float(err_before), float(err_after))
    assert res.loss_after < 0.5 * res.loss_before
    assert res.offsets.mean() > 5e-3                     # outwards
    # the held-out view agrees better too
    hold = cameras(1, 96, 1.4)
    cov = [rasterize(m, f, hold.scaled(4)).depth.isfinite().float().mean() for m in (truth, fit, refined)]
    assert abs(float(cov[2] - cov[0])) < 0.5 * abs(float(cov[1] - cov[0]))


def test_photo_refine_checks_its_inputs():
    v, f, uv, fuv = icosphere(0.3, 1)
    cams = cameras(2, 32)
    imgs, masks = photos(v, f, cams)
    with pytest.raises(ValueError, match="2 cameras, 1 images"):
        photo_refine(v, f, uv, fuv, cams, [imgs[0]], list(masks))
    with pytest.raises(ValueError, match="one entry per level"):
        photo_refine(v, f, uv, fuv, cams, list(imgs), list(masks), PhotoRefineConfig(blur_mm=(4.0,)))


def test_a_refined_model_keeps_its_offsets_frozen_applies_them_and_saves_them(tmp_path):
    v, f, uv, fuv = icosphere(0.3, 2)
    cfg = NeuralDoubleConfig(channels=4, texture_size=8, levels=1, width=4, depth=1, refine_to_photos=True,
                             cameras=["a"])
    m = NeuralDouble(cfg, f, uv, fuv, v, torch.full((4, 4, 3), 0.3))
    assert not m.vertex_offset.requires_grad
    opt = make_optimizer(m, TrainConfig())
    assert all(p is not m.vertex_offset for g in opt.param_groups for p in g["params"])
    with torch.no_grad():
        m.vertex_offset.fill_(0.01)
    cam = cameras(1, 128)
    grown = m.gbuffer(v, cam).mask.float().mean()
    plain = NeuralDouble(NeuralDoubleConfig(channels=4, texture_size=8, levels=1, width=4, depth=1, cameras=["a"]),
                         f, uv, fuv, v, torch.full((4, 4, 3), 0.3)).gbuffer(v, cam).mask.float().mean()
    assert grown > plain * 1.04                          # 1 cm more radius on 30 cm: ~7 % more area
    save_model(tmp_path / "m", m)
    back, _, _ = load_model(tmp_path / "m")
    assert torch.equal(back.vertex_offset, m.vertex_offset) and not back.vertex_offset.requires_grad


def test_render_train_refines_a_shrunken_fit_outwards_and_shots_use_it(tmp_path, capsys):
    from capture.session import write_session
    from doppel.render_stage import TrainRequest, train_session
    from tests.cli_runner import run_cli
    from tests.doppel.sphere_double import fit_folder as _fit_folder
    from tests.neural_render.scenes import ring_cameras, uv_sphere

    torch.set_num_threads(1)
    v, f, uv, fuv = uv_sphere()
    cams = ring_cameras(8, 64)
    imgs, _ = photos(v, f, cams)                                 # anti-aliased, one colour on the backdrop
    write_session(tmp_path / "session", list(cams), {c.name: imgs[i].numpy() for i, c in enumerate(cams)})
    _fit_folder(tmp_path / "fit", v * 0.97, f, uv, fuv)          # 1.5 cm too small (~0.8 px)
    req = TrainRequest(tmp_path / "session", tmp_path / "fit", tmp_path / "m", ["cam3"], 64, iterations=2,
                       refine_to_photos=True, options={"refine_w_offset": 1e-4, "refine_lr": 5e-4})
    train_session(req, tmp_path / "m")
    model, meta, _ = load_model(tmp_path / "m")
    assert meta["config"]["refine_to_photos"] is True
    off = model.vertex_offset.detach()
    assert 5e-3 < float(off.mean()) < 0.025, float(off.mean())  # outwards, towards the photographed 0.5 m
    code, out, err = run_cli(capsys, "render", "shot", tmp_path / "m", "--cameras",
                             tmp_path / "session" / "calibration.json", "--camera", "cam3", "--renderer", "cgi",
                             "--size", "64", "--out", tmp_path / "shot")
    assert code == 0, err
    from PIL import Image

    alpha = np.asarray(Image.open(tmp_path / "shot" / "cam3" / "0000.png"))[..., 3] > 127
    truth = rasterize(v, f, cams[3]).mask[0].numpy()
    shrunk = rasterize(v * 0.97, f, cams[3]).mask[0].numpy()
    assert abs(int(alpha.sum()) - int(truth.sum())) < 0.5 * abs(int(shrunk.sum()) - int(truth.sum()))
    code, out, err = run_cli(capsys, "render", "train", tmp_path / "session", "--fit", tmp_path / "fit", "--out",
                             tmp_path / "m2", "--holdout", "cam3", "--size", "64", "--iterations", "1", "--device",
                             "cpu", "--refine-to-photos")
    assert code == 0, err
    assert json.loads((tmp_path / "m2" / "config.json").read_text())["config"]["refine_to_photos"] is True
    assert float(load_model(tmp_path / "m2")[0].vertex_offset.mean()) > 1e-4     # defaults: a smaller step out
