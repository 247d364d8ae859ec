"""The calibrated landmark regressor: fitting recovers a known one, file round trip and validation, the shipped
MediaPipe -> Anny regressor is valid, and the fitter's landmarks through it equal the regressor's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reconstruction.fitting import LandmarkRegressor, calibrated_spec, default_regressor, fit_regressor, model_landmarks
from reconstruction.fitting.landmark_regressor import DEFAULT_PATH, SET_OFFSETS, landmark_set


def _actors(rng, n_actors=8, V=400, L=12):
    """Random 'meshes' (a base point cloud, scaled, sheared and shifted per actor) and a hidden regressor: each
    landmark a convex combination of 3 vertices near each other."""
    base = rng.normal(size=(V, 3))
    idx = np.stack([np.argsort(np.linalg.norm(base - base[c], axis=1))[:3] for c in rng.choice(V, L, replace=False)])
    w = rng.dirichlet(np.ones(3), size=L)
    verts, targets = [], []
    for _ in range(n_actors):
        A = np.eye(3) + 0.2 * rng.normal(size=(3, 3))
        v = base @ A.T + rng.normal(size=3)
        verts.append(v)
        targets.append(np.einsum("lk,lkc->lc", w, v[idx]))
    return verts, targets, idx, w


def test_fit_regressor_recovers_landmarks_on_an_unseen_actor():
    rng = np.random.default_rng(0)
    verts, targets, idx, w = _actors(rng, n_actors=9)
    ok = [np.ones(len(idx), bool)] * 8
    ids = np.arange(len(idx))
    reg = fit_regressor(verts[:8], targets[:8], ok, ids, candidates=16, scale_m=1.0)
    assert np.allclose(reg.weight.sum(1), 1.0) and (reg.weight >= 0).all()
    err = np.linalg.norm(reg.apply(verts[8]) - targets[8], axis=1)
    assert err.max() < 0.05, err                      # units of the point cloud (std 1)
    assert np.nanmax(reg.residual_mm) < 0.05 * 1000   # leave-one-out error, reported in "mm" of scale_m = 1


def test_fit_regressor_skips_unseen_landmarks_and_uses_only_trusted_actors():
    rng = np.random.default_rng(1)
    verts, targets, idx, _ = _actors(rng, n_actors=4, L=5)
    ok = [np.array([True, True, False, True, True])] * 4
    targets = [t.copy() for t in targets]
    targets[0][0] += 100.0                             # a wild triangulation, flagged untrusted below
    ok[0] = ok[0].copy()
    ok[0][0] = False
    reg = fit_regressor(verts, targets, ok, np.arange(5) + 7, scale_m=1.0)
    assert list(reg.ids) == [7, 8, 10, 11]
    assert np.linalg.norm(reg.apply(verts[1])[0] - targets[1][0]) < 0.1
    with pytest.raises(ValueError, match="same non-zero length"):
        fit_regressor(verts, targets[:2], ok, np.arange(5))


def test_save_load_round_trip_and_bad_files(tmp_path):
    reg = LandmarkRegressor(ids=np.array([0, 1000]), index=np.array([[1, 2], [3, 0]]),
                            weight=np.array([[0.25, 0.75], [1.0, 0.0]]), residual_mm=np.array([3.0, np.nan]),
                            num_vertices=4, meta={"calibration_seeds": [1, 2]})
    reg.save(tmp_path / "r.npz")
    back = LandmarkRegressor.load(tmp_path / "r.npz")
    assert np.array_equal(back.ids, reg.ids) and np.allclose(back.weight, reg.weight)
    assert back.meta["calibration_seeds"] == [1, 2] and np.isnan(back.residual_mm[1])
    bad = LandmarkRegressor(ids=reg.ids, index=np.array([[1, 9], [3, 0]]), weight=reg.weight,
                            residual_mm=reg.residual_mm, num_vertices=4)
    bad.save(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match=r"vertex indices outside \[0, 4\)"):
        LandmarkRegressor.load(tmp_path / "bad.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "r.npz").read_bytes()[:200])      # a truncated download
    with pytest.raises(ValueError, match="not a readable landmark regressor"):
        LandmarkRegressor.load(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a landmark regressor"):
        LandmarkRegressor.load(tmp_path / "other.npz")
    with pytest.raises(KeyError, match=r"no landmarks \[5\]"):
        reg.rows([0, 5])


def test_landmark_ids():
    assert landmark_set(0) == "pose" and landmark_set(32) == "pose" and landmark_set(1477) == "face"
    assert landmark_set(SET_OFFSETS["hand.L"] + 20) == "hand.L" and landmark_set(3000) == "hand.R"
    for bad in (33, 1478, 2021, 4000):
        with pytest.raises(ValueError):
            landmark_set(bad)


def test_shipped_anny_regressor_is_valid_and_drives_the_fitters_landmarks():
    from reconstruction.body_models import AnnyModel

    anny_model = AnnyModel(dtype=torch.float64)
    assert DEFAULT_PATH.is_file()
    reg = default_regressor(anny_model)
    assert reg is not None and reg.num_vertices == anny_model.num_vertices
    assert len(reg) == 33 + 478 + 21 + 21
    assert np.allclose(reg.weight.sum(1), 1.0, atol=1e-5) and (reg.weight >= 0).all()
    assert reg.meta["calibration_seeds"] and not set(reg.meta["calibration_seeds"]) & {11, 12, 31, 32, 33}
    spec = calibrated_spec(anny_model)
    v = torch.randn(1, anny_model.num_vertices, 3, dtype=torch.float64)
    lm = model_landmarks(v, torch.zeros(1, len(anny_model.pose_names), 3, dtype=torch.float64), spec)[0]
    assert np.allclose(lm.numpy(), reg.apply(v[0].numpy())[reg.rows(spec.ids)])
    assert spec.reliability is not None and ((spec.reliability > 0) & (spec.reliability <= 1)).all()
    sub = spec.subset([landmark_set(int(i)) == "pose" for i in spec.ids])
    assert len(sub) == 33 and sub.reg_index.shape[0] == 33
