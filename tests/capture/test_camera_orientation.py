"""A camera calibrated on images as stored, turned to its images as shown (`capture.camera_orientation`): checked
against `capture.frame_files.oriented`, the turn every stage reads images through."""

import numpy as np
import pytest

from capture.camera_orientation import as_shown
from capture.frame_files import oriented
from capture.npcam import PinholeNP

W, H = 64, 48


def pixel_map(orientation):
    """(3, 3) affine map of continuous pixel coordinates, stored -> shown, read off `oriented` at every pixel
    centre (the stored index carried through the turn)."""
    rows, cols = np.mgrid[0:H, 0:W]
    shown = oriented(np.stack([cols, rows], -1), orientation)          # (H', W', 2): stored (col, row) per pixel
    r2, c2 = np.mgrid[0:shown.shape[0], 0:shown.shape[1]]
    src = np.stack([shown[..., 0] + 0.5, shown[..., 1] + 0.5, np.ones(r2.shape)], -1).reshape(-1, 3)
    dst = np.stack([c2 + 0.5, r2 + 0.5], -1).reshape(-1, 2)
    A, *_ = np.linalg.lstsq(src, dst, rcond=None)
    assert np.abs(src @ A - dst).max() < 1e-9                           # a turn is affine
    return A


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_the_turned_camera_sees_the_turned_image(orientation):
    K = np.array([[70.0, 0, 30.25], [0, 66.0, 25.5], [0, 0, 1]])
    cam = PinholeNP.look_at("side", [0.4, 1.3, 2.0], [0, 1, 0], K, W, H)
    cam.dist = np.array([-0.12, 0.05, 2e-3, -3e-3, 0.01])
    shown = as_shown(cam, orientation)
    assert (shown.width, shown.height) == ((W, H) if orientation == 3 else (H, W))
    rng = np.random.default_rng(orientation)
    X = cam.center + (np.stack([rng.uniform(-.3, .3, 200), rng.uniform(-.25, .25, 200), np.ones(200)], -1)
                      * rng.uniform(1.5, 3, (200, 1))) @ cam.R
    stored_uv = cam.project(X)
    want = np.concatenate([stored_uv, np.ones((len(X), 1))], 1) @ pixel_map(orientation)
    assert np.abs(shown.project(X) - want).max() < 1e-9
    np.testing.assert_allclose(shown.center, cam.center, atol=1e-12)    # the same camera, turned on its axis


def test_mirror_and_skew_are_refused():
    cam = PinholeNP.look_at("m", [0, 1, 2], [0, 1, 0], np.array([[70.0, 0, 32], [0, 70, 24], [0, 0, 1]]), W, H)
    assert as_shown(cam, 1) is cam
    with pytest.raises(ValueError, match="mirror image"):
        as_shown(cam, 5)
    cam.K[0, 1] = 0.5
    with pytest.raises(ValueError, match="skewed"):
        as_shown(cam, 6)
