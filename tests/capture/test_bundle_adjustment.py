"""The bundle adjustment's grouped finite-difference Jacobian against a plain column-by-column one, and a
tiny rig solved back to the truth."""

import numpy as np
import pytest

from capture.bundle_adjustment import (
    CAMERA_PARAMS,
    BundleAdjustment,
    BundleAdjustmentConfig,
    Observation,
    _rt_to_T,
)
from core.conventions import doppel_to_opencv_K, opencv_to_doppel_pixels


def _problem(seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(6) * 0.05, np.arange(4) * 0.05)
    corners = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    K = np.array([[800.0, 0, 320.5], [0, 805.0, 240.5], [0, 0, 1]])
    dist = np.array([0.05, -0.02, 0.001, -0.001, 0.0])
    T_cw = {c: _rt_to_T(rng.normal(0, 0.1, 3), [-0.12 + 0.02 * i, -0.08, 0.9 + 0.1 * i])
            for i, c in enumerate(["a", "b"])}
    T_wb = {"m0": np.eye(4), "m1": _rt_to_T([0.1, -0.15, 0.05], [0.02, 0.01, -0.05]),
            "m2": _rt_to_T([-0.2, 0.1, 0.0], [-0.03, 0.02, 0.04])}
    obs = []
    for ci, c in enumerate(["a", "b"]):
        for m, Tb in T_wb.items():
            Xw = corners @ Tb[:3, :3].T + Tb[:3, 3]
            T = T_cw[c]
            rv = cv2.Rodrigues(T[:3, :3])[0]
            uv, _ = cv2.projectPoints(Xw, rv, T[:3, 3], doppel_to_opencv_K(K), dist)
            obs.append(Observation(ci, m, np.arange(len(corners)), opencv_to_doppel_pixels(uv.reshape(-1, 2))))
    ba = BundleAdjustment(["a", "b"], corners, obs, "m0", BundleAdjustmentConfig(max_nfev=100))
    x_true = ba.pack(T_cw, {"a": (K, dist), "b": (K, dist)}, T_wb)
    return ba, x_true


def test_grouped_jacobian_equals_column_by_column_differences():
    ba, x = _problem()
    active = [True] * len(ba.obs)
    active[3] = False
    J = ba.jacobian(x, active, ba.sparsity(active))
    f0 = ba.residuals(x, active)
    ref = np.zeros_like(J)
    for j in range(len(x)):
        h = np.sqrt(np.finfo(float).eps) * (1.0 if x[j] >= 0 else -1.0) * max(1.0, abs(x[j]))
        xp = x.copy()
        xp[j] += h
        ref[:, j] = (ba.residuals(xp, active) - f0) / (xp[j] - x[j])
    assert np.abs(J).max() > 1.0, "the Jacobian is not trivially zero"
    np.testing.assert_allclose(J, ref, rtol=0, atol=1e-9)


def test_solve_recovers_the_rig_from_a_perturbed_start():
    ba, x_true = _problem()
    rng = np.random.default_rng(1)
    x0 = x_true.copy()
    x0[:2 * CAMERA_PARAMS] += np.tile(np.r_[rng.normal(0, 0.002, 6), [8, -6, 3, -2], np.zeros(5)], 2)
    x0[2 * CAMERA_PARAMS:] += rng.normal(0, 0.001, len(x0) - 2 * CAMERA_PARAMS)
    active = [True] * len(ba.obs)
    assert np.sqrt(np.mean(ba.residuals(x0, active) ** 2)) > 0.5
    x, active = ba.refine(x0, [])
    assert all(active)
    assert max(ba.per_view_rms(x, active).values()) < 1e-4
    _, K, _ = ba.camera(x, 0)
    assert K[0, 0] == pytest.approx(800.0, rel=1e-5) and K[1, 2] == pytest.approx(240.5, abs=1e-3)
