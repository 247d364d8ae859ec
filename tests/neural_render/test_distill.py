"""Distillation: cameras between cameras lie between them, the teacher's views are its jittered renders over the
backdrop, and a student distilled from an ensemble draws closer to the ensemble than the member it started from."""

import copy
import math

import pytest
import torch

from capture.camera import Camera
from neural_render.distill import DistilConfig, between_cameras, distil, teacher_views
from neural_render.ensemble import NeuralEnsemble, mean_rgba
from neural_render.jitter import jitter_offsets, shifted_camera
from neural_render.training import TrainConfig
from tests.neural_render.scenes import ring_cameras
from tests.neural_render.test_ensemble import members  # noqa: F401 - the fixture (two trained members)
from tests.neural_render.test_neural_double import scene  # noqa: F401 - the fixture


def _angle(Ra, Rb):
    c = ((Ra.T @ Rb).trace() - 1) / 2
    return float(torch.arccos(c.clamp(-1, 1)))


def test_cameras_between_neighbours_lie_between_them():
    cams = ring_cameras(8, 48)                       # a ring: each camera's two nearest are its ring neighbours
    out = between_cameras(cams, neighbours=2, positions=(0.0, 1 / 3, 2 / 3))
    assert len(out) == 8 + 8 * 2                     # the cameras themselves, then 8 joins x 2 positions
    assert torch.equal(out.K[:8], cams.K) and torch.equal(out.R[:8], cams.R)
    mid = between_cameras(cams, neighbours=2, positions=(0.5,))
    assert len(mid) == 8
    a, b = mid.name[0].split("@")[0].split("~")
    ia, ib = cams.name.index(a), cams.name.index(b)
    assert torch.allclose(mid.center[0], (cams.center[ia] + cams.center[ib]) / 2, atol=1e-5)
    half = _angle(cams.R[ia], cams.R[ib]) / 2
    assert half > 0.1
    assert math.isclose(_angle(cams.R[ia], mid.R[0]), half, rel_tol=1e-4)
    assert math.isclose(_angle(mid.R[0], cams.R[ib]), half, rel_tol=1e-4)
    two = between_cameras(Camera.stack([cams[0], cams[1]]), neighbours=2, positions=(0.0, 0.5))
    assert two.name == ("cam0", "cam1", "cam0~cam1@0.50")   # more neighbours asked than there are: one join
    for bad in ({"positions": (1.0,)}, {"neighbours": 0}):
        with pytest.raises(ValueError):
            between_cameras(cams, **bad)
    with pytest.raises(ValueError):
        between_cameras(ring_cameras(1, 48))


def test_teacher_views_are_its_jittered_renders_over_the_backdrop(scene, members):  # noqa: F811
    v, cams = scene[0], scene[4]
    (m0, _), _ = members
    bg = torch.tensor([0.2, 0.4, 0.6])
    tv = teacher_views(m0, v, Camera.stack([cams[0], cams[1]]), bg, jitter=4)
    with torch.no_grad():
        want = mean_rgba([m0(v, shifted_camera(cams[1], dx, dy)) for dx, dy in jitter_offsets(4)])[0]
    a = want[..., 3:]
    assert torch.allclose(tv.alpha[1], want[..., 3], atol=1e-6)
    assert torch.allclose(tv.images[1], want[..., :3] * a + bg * (1 - a), atol=1e-6)
    assert torch.allclose(tv.images[1][tv.alpha[1] == 0], bg.expand(int((tv.alpha[1] == 0).sum()), 3))
    assert len(tv.centres[0]) == int((tv.alpha[0] > 0.5).sum()) > 0


def test_a_student_distilled_from_two_members_draws_closer_to_them(scene, members):  # noqa: F811
    v, cams = scene[0], scene[4]
    pair, views = members
    teacher = NeuralEnsemble(pair).eval()
    joined = between_cameras(Camera.stack([cams[i] for i in range(8) if i not in (3, 7)]), positions=(0.0, 0.5))
    tv = teacher_views(teacher, v, joined, torch.tensor([0.5, 0.5, 0.5]), jitter=2)
    student = copy.deepcopy(pair[0])

    def gap(model):                                  # mean squared difference to the teacher's views, on the mesh
        with torch.no_grad():
            d = [((model(v, joined[i])[0, ..., :3] - tv.images[i]) ** 2)[tv.alpha[i] > 0.5].mean()
                 for i in range(len(joined))]
        return float(torch.stack(d).mean())

    before = gap(student.eval())
    res = distil(student, tv, views, DistilConfig(steps=60, eval_every=20, patience=10, lr_scale=1.0),
                 train=TrainConfig(batch=2, crop=64, diverged_db=0.0))
    assert res.steps == 60 and len(res.history) == 4 and res.history[0]["step"] == 0
    assert res.best_holdout_psnr >= res.history[0]["holdout_psnr"] - 1e-3   # the start counts: never worse kept
    after = gap(student.eval())
    assert after < 0.8 * before, (before, after)
    assert not isinstance(student, NeuralEnsemble)


def test_teacher_views_draw_each_view_on_its_own_mesh(scene, members):  # noqa: F811
    v, cams = scene[0], scene[4]
    (m0, _), _ = members
    cam = Camera.stack([cams[0], cams[0]])
    moved = torch.stack([v, v + torch.tensor([0.0, 0.3, 0.0])])          # the second frame's mesh, 0.3 m along y
    tv = teacher_views(m0, moved, cam, torch.zeros(3), jitter=1)
    ys = [float((tv.alpha[k] > 0.5).nonzero()[:, 0].float().mean()) for k in range(2)]
    assert abs(ys[0] - ys[1]) > 3                      # drawn where each mesh is (rows move; image y points down)
    with torch.no_grad():
        assert torch.allclose(tv.alpha[1], m0(moved[1], cam[1])[0, ..., 3], atol=1e-6)
    with pytest.raises(ValueError, match="3 meshes for 2 cameras"):
        teacher_views(m0, moved[[0, 1, 1]], cam, torch.zeros(3))
