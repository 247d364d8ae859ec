"""Triangulation against known 3D points with pixel noise and gross outliers; DLT checked against OpenCV."""

import numpy as np
import pytest

from capture.npcam import PinholeNP as Camera
from capture.triangulation import dlt, triangulate_point, triangulate_points

NOISE_PX = 0.5
TOL_3D_M = 0.006   # worst 3D error allowed with 0.5 px noise, ~5 clean views at ~2.5 m, f = 800 px (~1.6 mm/px)
ORACLE_TOL_M = 1e-5  # agreement with a least-squares oracle that knows which views are clean
# with lens distortion ours minimises the error in undistorted pixels, the oracle in distorted ones
ORACLE_TOL_DIST_M = 5e-5


def ring(n=8, radius=2.5, f=800.0, dist=False, seed=0):
    rng = np.random.default_rng(seed)
    K = np.array([[f, 0, 320.0], [0, f, 240.0], [0, 0, 1]])
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        c = Camera.look_at(f"c{i}", [radius * np.sin(a), 1.0 + 0.3 * np.cos(3 * a), radius * np.cos(a)],
                           [0, 1.0, 0], K, 640, 480)
        if dist:
            c.dist = np.array([rng.uniform(-0.1, 0.1), 0.01, 1e-4, -1e-4, 0])
        cams.append(c)
    return cams


def test_dlt_matches_opencv():
    import cv2

    cams = ring(2)
    X = np.array([[0.1, 1.2, -0.05]])
    uv = np.stack([c.project(X)[0] for c in cams])
    ours = dlt(np.stack([c.P for c in cams]), uv)
    Xh = cv2.triangulatePoints(cams[0].P, cams[1].P, uv[0][:, None], uv[1][:, None]).ravel()
    np.testing.assert_allclose(ours, Xh[:3] / Xh[3], atol=1e-9)
    np.testing.assert_allclose(ours, X[0], atol=1e-9)


@pytest.mark.parametrize("dist", [False, True])
def test_noise_and_outliers(dist):
    rng = np.random.default_rng(1)
    cams = ring(8, dist=dist)
    X = rng.uniform([-0.3, 0.5, -0.3], [0.3, 1.6, 0.3], (60, 3))
    uv = np.stack([c.project(X) for c in cams])                      # (V, N, 2)
    uv += rng.normal(0, NOISE_PX, uv.shape)
    outlier = rng.random(uv.shape[:2]) < 0.2                          # 20 % gross outliers
    uv[outlier] += rng.uniform(30, 150, (outlier.sum(), 2)) * rng.choice([-1, 1], (outlier.sum(), 2))
    hidden = rng.random(uv.shape[:2]) < 0.1
    uv[hidden] = np.nan
    tri = triangulate_points(cams, uv)
    assert tri.ok.all()
    err = np.linalg.norm(tri.X - X, axis=1)
    assert np.median(err) < TOL_3D_M / 3 and err.max() < TOL_3D_M
    # the outlier views are excluded and every clean view is kept
    for n in range(len(X)):
        used = set(tri.views[n])
        assert not any(outlier[v, n] for v in used)
        clean = {v for v in range(len(cams)) if not outlier[v, n] and not hidden[v, n]}
        assert used == clean
    assert np.median(tri.error_px) < 2 * NOISE_PX
    # the same point as scipy's least squares on the clean views with distortion (the best one can do)
    from scipy.optimize import least_squares

    for n in range(0, len(X), 6):
        clean = [v for v in range(len(cams)) if not outlier[v, n] and not hidden[v, n]]
        oracle = least_squares(lambda p, n=n, clean=clean: np.concatenate(
            [cams[v].project(p[None])[0] - uv[v, n] for v in clean]), X[n], xtol=1e-14, ftol=1e-14).x
        np.testing.assert_allclose(tri.X[n], oracle, atol=ORACLE_TOL_DIST_M if dist else ORACLE_TOL_M)
    # plain DLT on all views is much worse: the robust path is doing the work
    naive = []
    for n in range(len(X)):
        seen = np.flatnonzero(~hidden[:, n])
        und = np.stack([cams[v].undistort_points(uv[v, n][None])[0] for v in seen])
        naive.append(np.linalg.norm(dlt(np.stack([cams[v].P for v in seen]), und) - X[n]))
    assert np.median(naive) > 5 * np.median(err)


def test_too_few_views_and_behind():
    cams = ring(4)
    uv = np.full((4, 2), np.nan)
    uv[0] = [320, 240]
    p = triangulate_point(cams, uv)
    assert not p.ok and np.isnan(p.X).all() and np.isnan(p.error_px)
    with pytest.raises(ValueError, match="uv must be"):
        triangulate_point(cams, np.zeros((3, 2)))


def test_the_inlier_threshold_follows_the_views_size():
    """The RANSAC threshold was 8 px at any size: a quarter as tolerant at 4096 px, where a detector's scatter is
    four times as many pixels, so good views were dropped (the 16-view capture at 4096 px: rig median residual
    5.4 px in 1024 px terms against 3.3 at 1024 px). Now it is 8 px of a 1024 px view, in proportion: the same
    views at 1024 and 4096 px (their scatter in proportion) keep the same inliers."""
    from capture.triangulation import thresholds_for

    X = np.array([0.1, 1.2, -0.05])
    rng = np.random.default_rng(5)
    scatter = rng.normal(0, 3.0, (8, 2)) * np.array([[1.0]] * 6 + [[4.0]] * 2)   # 3 px (and two views at 12)
    views = {}
    for scale in (1, 4):
        K = np.array([[1100.0 * scale, 0, 512.0 * scale], [0, 1100.0 * scale, 512.0 * scale], [0, 0, 1]])
        cams = [Camera.look_at(f"c{i}", [2.5 * np.sin(2 * np.pi * i / 8), 1.2, 2.5 * np.cos(2 * np.pi * i / 8)],
                               [0, 1.2, 0], K, 1024 * scale, 1024 * scale) for i in range(8)]
        uv = np.stack([c.project(X[None])[0] for c in cams]) + scatter * scale
        assert np.allclose(thresholds_for(cams), 8.0 * scale)
        views[scale] = triangulate_point(cams, uv, threshold_px=thresholds_for(cams)).views
        if scale == 4:
            fixed = triangulate_point(cams, uv).views                  # the old fixed 8 px
    assert views[1] == views[4] and len(views[4]) > len(fixed)
