"""Multi-view fitter: triangulation, losses, Anny correspondences, the rigid stage and its hand-off."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from capture.camera import Camera
from reconstruction.fitting import FitConfig, ViewObservations, fit_multiview, landmark_spec, reprojection_loss
from reconstruction.fitting.optimizer import triangulate


def _cams(n=4, size=256):
    return Camera.orbit(n, (0.0, 0.0, 0.0), 3.0, 0.4, width=size, height=size, fov_y_deg=45.0)


def test_triangulate_and_reprojection():
    cams = _cams()
    pts = torch.tensor(np.random.default_rng(0).uniform(-0.4, 0.4, (7, 3)), dtype=torch.float32)
    uv, _ = cams.project(pts)
    conf = torch.ones(4, 7)
    conf[0, 2] = conf[1, 2] = conf[2, 2] = 0                       # landmark 2: one view only
    X, ok = triangulate(uv, conf, cams)
    assert ok.tolist() == [True, True, False, True, True, True, True]
    np.testing.assert_allclose(X[ok], pts.numpy()[ok], atol=1e-4)
    assert float(reprojection_loss(pts, uv, conf, cams)) < 1e-8
    far = uv + 1000.0
    loss = float(reprojection_loss(pts, far, conf, cams, robust_px=8.0))
    assert 0.99 < loss <= 1.0                                        # Geman-McClure saturates at 1


@pytest.fixture(scope="module")
def anny():
    from reconstruction.body_models import AnnyModel

    return AnnyModel()


def test_anny_landmark_spec(anny):
    from reconstruction.body_models import BodyParams
    from reconstruction.fitting import model_landmarks

    spec = landmark_spec(anny)
    assert list(spec.ids) == sorted(spec.ids) and 0 in spec.ids and 27 in spec.ids
    out = anny.forward(BodyParams())
    lm = model_landmarks(out.vertices, out.joints, spec)[0].detach().numpy()
    pos = dict(zip(spec.ids.tolist(), lm, strict=True))
    assert pos[0][2] > pos[2][2] and pos[0][1] > pos[11][1]        # the nose is in front, above the shoulders
    assert pos[11][0] > pos[12][0] and pos[7][0] > pos[8][0]        # person's left is +X (facing +Z)
    assert pos[31][2] > pos[29][2]                                  # toes in front of the heel
    with pytest.raises(ValueError, match="no correspondence"):
        landmark_spec(anny, ids=[0, 99])


@pytest.mark.parametrize("ITERS", [0, 20])
def test_rigid_stage_recovers_placement(anny, ITERS):
    """Observations of the neutral body turned 70 degrees and moved: the rigid stage (and the hand-off of its
    world rotation to the root's local rotation) must put every vertex back within a few mm."""
    from reconstruction.body_models import BodyParams

    spec = landmark_spec(anny)
    out = anny.forward(BodyParams())
    B0 = out.joint_transforms[0, 0].double()
    r0 = B0[:3, 3]
    R = roma.rotvec_to_rotmat(torch.tensor([0.1, 1.2, -0.05], dtype=torch.float64))
    t = torch.tensor([0.2, 0.9, -0.1], dtype=torch.float64)
    verts = ((out.vertices[0].double() - r0) @ R.T + r0 + t)
    joints = ((out.joints[0].double() - r0) @ R.T + r0 + t)
    from reconstruction.fitting.synthetic import synthetic_views

    obs = synthetic_views(verts.numpy(), anny.faces, joints.numpy(), spec, views=4, size=256,
                          target=(0.2, 0.9, -0.1), noise_px=0.0, drop=0.0, masks=False)
    res = fit_multiview(anny, obs, spec, FitConfig(iters_rigid=ITERS, iters_body=0, iters_face=0, iters_all=0))
    err = np.linalg.norm(res.vertices - verts.numpy(), axis=1)
    assert err.max() < 5e-3, err.max()
    assert res.reprojection_px < 1.0


def test_fewer_than_two_views(anny):
    spec = landmark_spec(anny)
    cams = _cams(3)
    L = len(spec)
    conf = torch.zeros(3, L)
    conf[0] = 1
    obs = ViewObservations(cams, torch.zeros(3, L, 2), conf)
    with pytest.raises(ValueError, match="fewer than 2 views"):
        fit_multiview(anny, obs, spec)


def test_silhouette_loss_pulls_mesh_onto_mask():
    import trimesh

    from neural_render import rasterize
    from reconstruction.fitting import silhouette_loss

    s = trimesh.creation.icosphere(2, 0.3)
    v = torch.tensor(s.vertices, dtype=torch.float32)
    f = torch.tensor(s.faces)
    cams = _cams(3, 64)
    goal = torch.tensor([0.08, -0.05, 0.04])
    masks = rasterize(v + goal, f, cams).mask.float()
    shift = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([shift], lr=0.005)
    first = None
    for _ in range(80):
        opt.zero_grad()
        loss = silhouette_loss(v + shift, f, cams, masks, sigma=2.0)
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first                     # (a soft outline never matches a hard mask exactly)
    assert float((shift.detach() - goal).norm()) < 0.01


def test_the_fit_does_not_depend_on_the_photos_resolution(anny):
    """The reprojection term's robust scale was a fixed 16 px: at 4096 px, errors still normal for the view cost
    as much as outliers, and the same 16 views fitted 9.3 px (in 1024 px terms) instead of 6.8. The scale now
    follows the view's size: the same views at 512 and 2048 px (their detections' noise in proportion) give one
    fit."""
    from reconstruction.body_models import BodyParams
    from reconstruction.fitting.synthetic import synthetic_views

    spec = landmark_spec(anny)
    pose = torch.zeros(1, len(anny.pose_names), 3, dtype=torch.float64)
    pose[0, 1:8] = torch.tensor([0.3, -0.2, 0.25], dtype=torch.float64)       # a bent body away from the start
    out = anny.forward(BodyParams(pose=pose))
    fits = []
    for size, noise in ((512, 3.0), (2048, 12.0)):
        obs = synthetic_views(out.vertices[0].numpy(), anny.faces, out.joints[0].numpy(), spec, views=6, size=size,
                              noise_px=noise, drop=0.0, masks=False, seed=3)
        res = fit_multiview(anny, obs, spec, FitConfig(iters_rigid=10, iters_body=40, iters_face=0, iters_all=0))
        fits.append((res.vertices, res.reprojection_px / size))
    gap = np.linalg.norm(fits[0][0] - fits[1][0], axis=1).max()
    assert gap < 1e-3, f"the two resolutions' fits differ by up to {gap * 1000:.1f} mm"
    assert abs(fits[0][1] - fits[1][1]) < 1e-4
