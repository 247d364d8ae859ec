"""ST-maps of lens distortion (`capture.st_maps`): the undistort map read by an STMap node (bilinear remap) gives
what `cv2.undistort` gives; the redistort map is its inverse to a thousandth of a pixel; no distortion, no change;
`doppel capture cameras --st-maps` writes them as float EXRs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from capture.camera import Camera
from capture.st_maps import apply_stmap, from_st, redistort_stmap, to_st, undistort_stmap
from core.conventions import doppel_to_opencv_K

W, H = 320, 240


def lens(dist=(-0.25, 0.08, 0.001, -0.0015, 0.0)) -> Camera:
    cam = Camera.look_at((0, 1.5, 3), (0, 1, 0), width=W, height=H, focal=260.0, principal=(166.4, 117.3),
                         name="witness", dtype=torch.float64)
    return dataclasses.replace(cam, dist=torch.tensor(dist, dtype=torch.float64))


@pytest.fixture(scope="module")
def photo():
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut(), (W, H), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def distort(x: np.ndarray, y: np.ndarray, K: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's distortion model written out: undistorted pixels (OpenCV convention) -> the lens's pixels."""
    k1, k2, p1, p2, k3 = d
    u, v = (x - K[0, 2]) / K[0, 0], (y - K[1, 2]) / K[1, 1]
    r2 = u * u + v * v
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    ud = u * radial + 2 * p1 * u * v + p2 * (r2 + 2 * u * u)
    vd = v * radial + p1 * (r2 + 2 * v * v) + 2 * p2 * u * v
    return ud * K[0, 0] + K[0, 2], vd * K[1, 1] + K[1, 2]


def test_the_undistort_map_is_the_lens_model_and_opencvs_undistortion(photo):
    import cv2

    cam = lens()
    K = doppel_to_opencv_K(cam.K.numpy())
    st = undistort_stmap(cam)
    x, y = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    wx, wy = distort(x, y, K, cam.dist.numpy())
    gx, gy = from_st(st, W, H)
    assert np.hypot(gx - wx, gy - wy).max() < 2e-3                  # px, float32 ST coordinates
    want = cv2.undistort(photo, K, cam.dist.numpy())                # OpenCV's (1/32 px fixed-point maps)
    got = apply_stmap(photo, st)
    inner = (slice(8, H - 8), slice(8, W - 8))
    assert np.abs(got[inner] - want[inner]).max() < 0.01
    assert np.abs(got[inner] - photo[inner]).max() > 0.2            # the lens does move the picture


def test_the_redistort_map_inverts_the_undistort_map():
    from scipy.ndimage import map_coordinates

    cam = lens()
    und, red = undistort_stmap(cam), redistort_stmap(cam)
    rx, ry = from_st(red, W, H)                          # where each photo pixel is in the undistorted image
    back = np.stack([map_coordinates(und[..., c].astype(np.float64), [ry, rx], order=1) for c in (0, 1)], -1)
    bx, by = from_st(back, W, H)                         # ... and where that point is in the photo (exact bilinear:
                                                         # cv2.remap rounds positions to 1/32 px)
    x, y = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    inner = (rx > 1) & (rx < W - 2) & (ry > 1) & (ry < H - 2)
    assert inner.mean() > 0.8
    err = np.hypot(bx - x, by - y)[inner]
    assert err.max() < 0.002 and np.median(err) < 0.001    # px (0.0004 max measured)


def test_without_distortion_the_maps_are_the_identity():
    cam = lens((0, 0, 0, 0, 0))
    x, y = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    grid = to_st(x, y, W, H)
    assert np.abs(undistort_stmap(cam) - grid).max() < 1e-6
    assert np.abs(redistort_stmap(cam) - grid).max() < 1e-6
    assert grid[0, 0, 1] > grid[-1, 0, 1]                 # t runs upwards: the top row is near 1


def test_capture_cameras_writes_st_maps(tmp_path, capsys):
    from capture.calibration_io import write_doppel_json
    from neural_render.image_io import read_exr
    from tests.cli_runner import run_cli

    write_doppel_json(tmp_path / "calibration.json", [lens(), dataclasses.replace(lens(), name="plain", dist=None)])
    code, out, err = run_cli(capsys, "capture", "cameras", tmp_path / "calibration.json", "--st-maps",
                             tmp_path / "st")
    assert code == 0, err
    assert "wrote 2 ST-map(s) of 1 distorted camera(s)" in out
    assert sorted(p.name for p in (tmp_path / "st").iterdir()) == ["witness_redistort.exr", "witness_undistort.exr"]
    exr = read_exr(tmp_path / "st" / "witness_undistort.exr")
    assert exr.dtype == np.float32 and np.abs(exr[..., :2] - undistort_stmap(lens())).max() < 1e-6
