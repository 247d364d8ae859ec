"""interpolate() and soft_silhouette(): float64 gradcheck, finite differences, usefulness for fitting."""

import torch

from capture import Camera
from neural_render import interpolate, rasterize, soft_silhouette

FD_EPS = 1e-4       # central finite-difference step (metres)
FD_RTOL = 1e-3      # relative error of analytic vs finite-difference gradients


def _scene(dtype=torch.float64):
    cam = Camera.look_at((0, 0, 2), (0, 0, 0), width=20, height=16, fov_y_deg=50, dtype=dtype)
    v = torch.tensor([[-0.5, -0.4, 0], [0.5, -0.3, 0.1], [0.0, 0.5, -0.1], [0.6, 0.5, 0.05]], dtype=dtype)
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])
    return cam, v, f


def test_interpolate_gradcheck_attrs_and_verts():
    cam, v, f = _scene()
    attrs = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    v = v.clone().requires_grad_(True)
    fn = lambda a, x: interpolate(a, rasterize(x, f, cam), f)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (attrs, v), eps=1e-6, atol=1e-6)


def test_interpolate_camera_space_position_gives_depth():
    cam, v, f = _scene()
    fr = rasterize(v, f, cam)
    pc = cam.world_to_camera(v)
    pos = interpolate(pc, fr, f)
    m = fr.mask
    assert torch.allclose(pos[..., 2][m], fr.depth[m], atol=1e-9)
    # the interpolated point lies on the pixel's ray
    rays = cam.pixel_rays()[None]
    assert torch.allclose((pos / pos[..., 2:3])[m], rays[m], atol=1e-9)
    assert (pos[~m] == 0).all()


def test_interpolate_per_view_attrs_and_errors():
    cam, v, f = _scene(torch.float32)
    cams = Camera.stack([cam, cam])
    fr = rasterize(v, f, cams)
    attrs = torch.stack([torch.ones(4, 1), 2 * torch.ones(4, 1)])
    out = interpolate(attrs, fr, f)
    assert torch.allclose(out[0][fr.mask[0]], torch.tensor(1.0)) and torch.allclose(out[1][fr.mask[1]], torch.tensor(2.0))
    import pytest
    with pytest.raises(ValueError, match="face indices"):
        interpolate(torch.ones(2, 1), fr, f)


def test_soft_silhouette_gradcheck():
    cam, v, f = _scene()
    v = v.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: soft_silhouette(x, f, cam, sigma=0.7), (v,), eps=1e-6, atol=1e-6)


def test_soft_silhouette_matches_finite_differences():
    cam, v, f = _scene()
    target = torch.zeros(1, 16, 20, dtype=torch.float64)
    target[:, 3:12, 5:16] = 1
    loss = lambda x: ((soft_silhouette(x, f, cam, sigma=0.7) - target) ** 2).sum()  # noqa: E731
    x = v.clone().requires_grad_(True)
    loss(x).backward()
    num = torch.zeros_like(v)
    for i in range(4):
        for j in range(3):
            d = torch.zeros_like(v)
            d[i, j] = FD_EPS
            num[i, j] = (loss(v + d) - loss(v - d)) / (2 * FD_EPS)
    assert x.grad.abs().max() > 0.1
    assert torch.allclose(x.grad, num, rtol=FD_RTOL, atol=FD_RTOL * num.abs().max())


def test_soft_silhouette_values():
    cam, v, f = _scene()
    s = soft_silhouette(v, f, cam, sigma=0.5)
    hard = rasterize(v, f, cam).mask
    assert ((s > 0.5) == hard).float().mean() > 0.97
    assert (s[hard] > 0.5).all() and (s[~hard] < 0.5).all()
    assert ((s > 0) & (s < 1)).any()


def test_soft_silhouette_fits_a_translation():
    # Move a square to a target mask by gradient descent on its translation only.
    cam = Camera.look_at((0, 0, 2), (0, 0, 0), width=32, height=32, fov_y_deg=50)
    sq = torch.tensor([[-0.3, -0.3, 0], [0.3, -0.3, 0], [0.3, 0.3, 0], [-0.3, 0.3, 0]])
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    target = rasterize(sq + torch.tensor([0.12, -0.08, 0]), f, cam).mask.float()
    shift = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([shift], lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        loss = ((soft_silhouette(sq + shift, f, cam, sigma=1.0) - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert abs(shift[0].item() - 0.12) < 0.01 and abs(shift[1].item() + 0.08) < 0.01
