"""Multi-view fits of SMPL-X (MediaPipe pose landmarks at its joints) and FLAME (MediaPipe face mesh through
FLAME's own landmark embedding), on synthetic model files the tests write themselves (no licensed file)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reconstruction.body_models import BodyParams, FLAMEModel, SMPLXModel
from reconstruction.fitting import FitConfig, fit_multiview, landmark_spec
from reconstruction.fitting.landmarks import FLAME_EMBEDDING_FILE, flame_face_spec
from reconstruction.fitting.synthetic import synthetic_views
from tests.reconstruction.synthetic_models import write_flame_pkl, write_smplx_npz


def _truth(model, rng, pose_joints, scale=0.25):
    names = model.pose_names
    pose = torch.zeros(1, len(names), 3, dtype=torch.float64)
    for n in pose_joints:
        pose[0, names.index(n)] = torch.as_tensor(rng.normal(0, scale, 3))
    p = BodyParams(shape=torch.as_tensor(rng.normal(0, 0.5, (1, len(model.shape_names)))),
                   pose=pose, root_translation=torch.tensor([[0.05, 0.02, -0.03]], dtype=torch.float64),
                   expression=torch.as_tensor(rng.normal(0, 0.5, (1, len(model.expression_names)))))
    with torch.no_grad():
        out = model.forward(p)
    return out.vertices[0].numpy(), out.joints[0].numpy()


def test_smplx_multiview_fit_recovers_the_landmark_joints(tmp_path):
    model = SMPLXModel(write_smplx_npz(tmp_path / "SMPLX_NEUTRAL.npz"), dtype=torch.float64)
    spec = landmark_spec(model)
    assert len(spec) == 16 and (spec.joint_index >= 0).all()
    rng = np.random.default_rng(0)
    verts, joints = _truth(model, rng, ["left_shoulder", "right_elbow", "left_knee", "spine2"], scale=0.15)
    obs = synthetic_views(verts, model.faces, joints, spec, views=8, size=512, radius=3.0, target=(0, 0.85, 0),
                          noise_px=0.5, drop=0.0, masks=False)
    res = fit_multiview(model, obs, spec, FitConfig(iters_rigid=30, iters_body=200, iters_face=0, iters_all=60))
    err = np.linalg.norm(res.joints[spec.joint_index] - joints[spec.joint_index], axis=1) * 1000
    assert res.reprojection_px < 3.0, res.reprojection_px
    print("smplx landmark joint error mm", err.mean())
    assert err.mean() < 15.0, err


def _write_embedding(path, model, rng, n=105):
    F = len(model.faces)
    b = rng.uniform(0.1, 1.0, (n, 3))
    np.savez(path, lmk_face_idx=rng.integers(0, F, n), lmk_b_coords=b / b.sum(1, keepdims=True),
             landmark_indices=rng.choice(478, n, replace=False))


def test_flame_fit_from_the_face_mesh_through_its_embedding(tmp_path):
    model = FLAMEModel(write_flame_pkl(tmp_path / "flame" / "FLAME_NEUTRAL.pkl"), dtype=torch.float64)
    rng = np.random.default_rng(1)
    with pytest.raises(FileNotFoundError, match="flame.is.tue.mpg.de"):
        flame_face_spec(model)
    _write_embedding(tmp_path / "flame" / FLAME_EMBEDDING_FILE, model, rng)
    spec = flame_face_spec(model)
    assert len(spec) == 105 and (spec.ids >= 1000).all() and np.allclose(spec.reg_weight.sum(1), 1.0)
    verts, joints = _truth(model, rng, ["neck", "jaw"], scale=0.1)
    centre = tuple(verts.mean(0))
    obs = synthetic_views(verts, model.faces, joints, spec, views=6, size=512, radius=0.8, target=centre,
                          noise_px=0.5, drop=0.0, masks=False)
    res = fit_multiview(model, obs, spec, FitConfig(iters_rigid=30, iters_body=150, iters_face=60, iters_all=60))
    assert res.reprojection_px < 3.0, res.reprojection_px
    err = np.linalg.norm(res.vertices - verts, axis=1).mean() * 1000
    with torch.no_grad():
        neutral = model.forward(BodyParams()).vertices[0].numpy()
    err0 = np.linalg.norm(neutral - neutral.mean(0) + verts.mean(0) - verts, axis=1).mean() * 1000
    print("flame vertex error mm", err, "neutral", err0)
    assert err < 0.5 * err0, (err, err0)


def test_flame_embedding_errors(tmp_path):
    model = FLAMEModel(write_flame_pkl(tmp_path / "FLAME_NEUTRAL.pkl"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, lmk_face_idx=np.array([0, 10**7]), lmk_b_coords=np.full((2, 3), 1 / 3),
             landmark_indices=np.array([1, 2]))
    with pytest.raises(ValueError, match="face indices must be in"):
        flame_face_spec(model, bad)
    np.savez(bad, x=np.zeros(2))
    with pytest.raises(ValueError, match="needs"):
        flame_face_spec(model, bad)


def test_cli_fits_a_session_with_smplx(tmp_path):
    from capture.ingest import IngestConfig, ingest
    from doppel.cli import main
    from doppel.synthetic_capture import synthesize_capture

    sc = synthesize_capture(tmp_path / "cap", n_cameras=4, seed=2, size=256, texture_size=128)
    ingest(sc.session_dir, tmp_path / "ingest", IngestConfig(face=False, hands=False))
    file = write_smplx_npz(tmp_path / "models" / "SMPLX_NEUTRAL.npz")
    with pytest.raises(SystemExit) as e:
        main(["fit", str(sc.session_dir), "--landmarks", str(tmp_path / "ingest"), "--out", str(tmp_path / "fit"),
              "--model", "smplx", "--model-file", str(file), "--stages", "10,20,0,5", "--detail-iterations", "3"])
    assert e.value.code == 0
    m = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert m["correspondences"] == "joints" and m["detail"] == "silhouettes"
    assert json.loads((tmp_path / "fit" / "params.json").read_text())["model"] == "smplx"
    with pytest.raises(SystemExit) as e:         # the fitted double's rig
        main(["rig", "--fit", str(tmp_path / "fit"), "--model-file", str(file), "--out", str(tmp_path / "rig")])
    assert e.value.code == 0
    assert json.loads((tmp_path / "rig" / "manifest.json").read_text())["params"]["model"] == "smplx"
