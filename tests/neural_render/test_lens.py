"""Shots through a calibrated lens (neural_render/lens.py): the overscan holds every pixel of the lens's image, the
warp puts each of them where the camera's own projection (OpenCV's distortion model) does, and the passes of a
plane seen through the lens are the plane's."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from capture.camera import Camera
from neural_render.aovs import frame_aovs
from neural_render.lens import lens_overscan, redistortion


def _lens(k1: float, width=96, height=64, f=70.0) -> Camera:
    K = np.array([[f, 0, width / 2 + 1.5], [0, f, height / 2 - 1.0], [0, 0, 1]])
    cam = Camera.from_opencv(K, R=np.eye(3), tvec=np.zeros(3), width=width, height=height)
    return replace(cam, dist=torch.tensor([k1, 0.01, 0.002, -0.001, 0.0], dtype=cam.dtype))


@pytest.mark.parametrize("k1", [-0.12, 0.1], ids=["barrel", "pincushion"])
def test_each_lens_pixel_is_where_the_cameras_projection_puts_it(k1):
    lens = _lens(k1)
    over = lens_overscan(lens.as_batch(), multiple=8)
    assert over.width % 8 == 0 and over.height % 8 == 0 and not over.has_distortion
    if k1 < 0:          # barrel: the corners see beyond the same K without distortion
        assert over.width > lens.width and over.height > lens.height
    warp = redistortion(lens, over[0])
    assert warp.map_x.min() >= 0 and warp.map_x.max() <= over.width - 1
    assert warp.map_y.min() >= 0 and warp.map_y.max() <= over.height - 1
    # the ray of each overscan position, projected by the lens camera (its own distortion model), lands on the
    # lens pixel's centre
    o = over[0].to(dtype=torch.float64)
    pix = torch.stack([torch.as_tensor(warp.map_x, dtype=torch.float64) + 0.5,
                       torch.as_tensor(warp.map_y, dtype=torch.float64) + 0.5, torch.ones(warp.map_x.shape,
                                                                                          dtype=torch.float64)], -1)
    rays = pix.reshape(-1, 3) @ torch.linalg.inv(o.K).T
    uv, _ = lens.to(dtype=torch.float64).project(rays * 2.0, distort=True)
    ys, xs = np.mgrid[0:lens.height, 0:lens.width]
    centres = torch.as_tensor(np.stack([xs, ys], -1).reshape(-1, 2) + 0.5)
    assert (uv - centres).abs().max() < 1e-3


def test_a_plane_through_the_lens_has_its_depth_position_and_motion():
    lens = _lens(-0.12)
    over = lens_overscan(lens.as_batch())[0]
    v = torch.tensor([[-3.0, -3.0, 2.0], [3.0, -3.0, 2.0], [3.0, 3.0, 2.0], [-3.0, 3.0, 2.0]], dtype=torch.float64)
    f = torch.tensor([[0, 2, 1], [0, 3, 2]])
    uv = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    step = torch.tensor([0.05, 0.02, 0.0], dtype=torch.float64)
    surf = torch.stack([v - step, v, v + step])
    out = frame_aovs(surf, 1, f, uv, f, over, ("depth", "position", "motion"), lens=lens)
    warp = redistortion(lens, over)
    got = {k: warp.image(x.numpy(), nearest=True) for k, x in out.items()}
    assert np.allclose(got["Z"], 2.0)                      # a plane filling the view, at 2 m, everywhere
    P = torch.as_tensor(np.stack([got["P.X"], got["P.Y"], got["P.Z"]], -1), dtype=torch.float64)
    uvp, _ = lens.to(dtype=torch.float64).project(P.reshape(-1, 3), distort=True)
    ys, xs = np.mgrid[0:lens.height, 0:lens.width]
    centres = torch.as_tensor(np.stack([xs, ys], -1).reshape(-1, 2) + 0.5)
    assert (uvp - centres).abs().max() < 0.75              # the point under each pixel (nearest sample of the overscan)
    ahead, _ = lens.to(dtype=torch.float64).project(P.reshape(-1, 3) + step, distort=True)
    d = (ahead - uvp).reshape(lens.height, lens.width, 2).numpy()
    assert np.abs(got["forward.u"] - d[..., 0]).max() < 0.02 and np.abs(got["forward.v"] + d[..., 1]).max() < 0.02
    assert np.ptp(got["forward.u"]) > 0.1                  # the lens bends the motion: not one vector everywhere


def test_a_lens_whose_model_folds_over_inside_the_image_is_refused():
    """k1 -0.3 on a 69-degree lens: the model's image radius falls as the angle grows before the corners, where
    OpenCV's inversion diverged (points 100 px off, silently) before the check."""
    with pytest.raises(ValueError, match=r"cannot be inverted at the image's edge \(.* px off\)$"):
        lens_overscan(_lens(-0.3).as_batch())

