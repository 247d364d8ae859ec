"""capture.Camera: projection against OpenCV, conversions, look-at, batches, validation."""

import cv2
import numpy as np
import pytest
import torch

from capture import Camera

TOL_PX = 1e-3  # pixels, float64 projections


def _random_camera(rng, dist=True, dtype=torch.float64):
    K = np.array([[rng.uniform(300, 900), 0, rng.uniform(200, 440)],
                  [0, rng.uniform(300, 900), rng.uniform(150, 330)], [0, 0, 1]])
    rvec = rng.normal(size=3) * 0.5
    tvec = np.array([rng.normal() * 0.2, rng.normal() * 0.2, rng.uniform(2.5, 4)])
    d = np.array([-0.2, 0.05, 0.001, -0.002, 0.01]) * rng.uniform(0.5, 1.5) if dist else None
    cam = Camera.from_opencv(K, d, rvec, tvec, width=640, height=480, name="c")
    return cam.to(dtype=dtype), K, d, rvec, tvec


@pytest.mark.parametrize("dist", [False, True])
def test_project_matches_cv2(dist):
    rng = np.random.default_rng(0)
    cam, K, d, rvec, tvec = _random_camera(rng, dist)
    pts = rng.normal(size=(50, 3)) * 0.4
    ref = cv2.projectPoints(pts, rvec, tvec, K, d if d is not None else np.zeros(5))[0][:, 0]
    uv, z = cam.project(torch.from_numpy(pts))
    assert np.abs(uv.numpy() - ref).max() < TOL_PX
    Rm = cv2.Rodrigues(rvec)[0]
    assert np.allclose(z.numpy(), (pts @ Rm.T + tvec)[:, 2])


def test_opencv_roundtrip():
    rng = np.random.default_rng(1)
    cam, K, d, rvec, tvec = _random_camera(rng)
    K2, d2, r2, t2 = cam.to_opencv()
    assert np.allclose(K2, K) and np.allclose(d2, d) and np.allclose(t2, tvec)
    assert np.allclose(cv2.Rodrigues(r2)[0], cv2.Rodrigues(rvec)[0], atol=1e-6)
    cam2 = Camera.from_opencv(K2, d2, R=cv2.Rodrigues(r2)[0], tvec=t2, width=640, height=480)
    assert torch.allclose(cam2.R.double(), cam.R.double(), atol=1e-6)


def test_look_at_orientation():
    cam = Camera.look_at((0, 1.6, 3), (0, 1.0, 0), width=640, height=480, fov_y_deg=40, dtype=torch.float64)
    uv, z = cam.project(torch.tensor([[0, 1.0, 0], [0, 1.5, 0], [0.5, 1.0, 0]], dtype=torch.float64))
    assert torch.allclose(uv[0], torch.tensor([320.0, 240.0], dtype=torch.float64), atol=1e-9)
    assert uv[1, 1] < 240            # world up is image up (y down)
    assert uv[2, 0] > 320            # seen from +Z, world +X is on the right
    assert torch.allclose(cam.center, torch.tensor([0, 1.6, 3.0], dtype=torch.float64))
    assert torch.allclose(cam.fov_y_deg, torch.tensor(40.0, dtype=torch.float64))
    assert torch.allclose(torch.linalg.det(cam.R), torch.tensor(1.0, dtype=torch.float64))


def test_batches():
    cams = Camera.orbit(5, (0, 1, 0), 3.0, 0.5, width=64, height=48, dtype=torch.float64)
    assert cams.is_batch and len(cams) == 5 and cams.name[2] == "orbit02"
    pts = torch.randn(7, 3, dtype=torch.float64) * 0.3 + torch.tensor([0, 1.0, 0], dtype=torch.float64)
    uv, z = cams.project(pts)
    assert uv.shape == (5, 7, 2) and z.shape == (5, 7)
    for i, c in enumerate(cams):
        uvi, zi = c.project(pts)
        assert torch.allclose(uvi, uv[i]) and torch.allclose(zi, z[i])
    uvb, _ = cams.project(pts[None].expand(5, -1, -1))
    assert torch.allclose(uvb, uv)
    both = Camera.stack([cams, cams[0]])
    assert len(both) == 6 and both.name[-1] == "orbit00"
    assert (cams.center.norm(dim=-1) > 2.9).all()


def test_scaled_and_rays():
    cam = Camera.look_at((0, 0, 2), (0, 0, 0), width=40, height=30, fov_y_deg=50)
    big = cam.scaled(2)
    assert (big.width, big.height) == (80, 60)
    p = torch.tensor([[0.1, -0.2, 0.3]])
    assert torch.allclose(big.project(p)[0], cam.project(p)[0] * 2, atol=1e-4)
    rays = cam.pixel_rays()
    assert rays.shape == (30, 40, 3) and torch.allclose(rays[..., 2], torch.ones(30, 40))


def test_cropped_projects_into_the_window():
    cam = Camera.look_at((0, 0, 2), (0, 0, 0), width=40, height=30, fov_y_deg=50)
    win = cam.cropped(7, 4, 20, 16)
    assert (win.width, win.height) == (20, 16) and (cam.width, cam.height) == (40, 30)
    p = torch.tensor([[0.1, -0.2, 0.3], [-0.05, 0.1, 0.0]])
    assert torch.allclose(win.project(p)[0], cam.project(p)[0] - torch.tensor([7.0, 4.0]), atol=1e-5)


def test_gradients_flow_to_pose():
    cam = Camera.look_at((0, 0, 2), (0, 0, 0), width=40, height=30, fov_y_deg=50, dtype=torch.float64)
    t = cam.t.clone().requires_grad_(True)
    c2 = Camera(K=cam.K, R=cam.R, t=t, width=40, height=30)
    uv, _ = c2.project(torch.tensor([[0.1, 0.2, 0.0]], dtype=torch.float64))
    uv.sum().backward()
    assert t.grad is not None and t.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(K=[[0, 0, 5], [0, 100, 5], [0, 0, 1]]), "focal"),
    (dict(K=[[100, 0, 5], [0, -100, 5], [0, 0, 1]]), "focal"),
    (dict(R=[[1, 0, 0], [0, 1, 0], [0, 0, 2]]), "rotation"),
    (dict(t=[0, float("nan"), 0]), "NaN"),
    (dict(K=[[100, 0, 5], [0, 100, 5]]), "K must be"),
    (dict(width=0), "positive"),
    (dict(dist=[0.1, 0.0]), "dist"),
])
def test_validation(kwargs, match):
    base = dict(K=[[100, 0, 5], [0, 100, 5], [0, 0, 1]], R=np.eye(3), t=[0, 0, 1], width=10, height=10)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Camera(**base)


def test_look_at_errors():
    with pytest.raises(ValueError, match="parallel"):
        Camera.look_at((0, 2, 0), (0, 0, 0), width=10, height=10, fov_y_deg=40)
    with pytest.raises(ValueError, match="exactly one"):
        Camera.look_at((0, 0, 2), (0, 0, 0), width=10, height=10)


def test_cameras_derived_from_validated_ones_skip_the_value_checks(monkeypatch):
    """Cameras that Camera's own methods derive from a validated camera (index, batch, stack, to, scaled, cropped,
    undistorted) are not checked again (the checks read values back: host synchronisations on a GPU); a camera
    built from values is, also right after a derivation (the flag does not leak, not even through an error)."""
    import capture.camera as camera_mod

    cam = Camera.look_at((0, 1.6, 3.0), (0, 1.0, 0), width=64, height=48, fov_y_deg=40)
    checked = []
    real = camera_mod._check_values
    monkeypatch.setattr(camera_mod, "_check_values", lambda *a: (checked.append(1), real(*a)))
    batch = Camera.stack([cam, cam.scaled(1)])
    batch[1].to(dtype=torch.float64).cropped(2, 3, 10, 12).undistorted().as_batch()
    assert checked == []
    with pytest.raises(ValueError, match="whole image size"):
        cam.scaled(0.3)
    with pytest.raises(ValueError, match="focal length"):
        Camera(K=torch.tensor([[-1.0, 0, 1], [0, 1, 1], [0, 0, 1]]), R=torch.eye(3), t=torch.zeros(3),
               width=4, height=4)
    assert checked == [1]
