"""benchmarks/neural_double.py's novel-pose mesh: the fit posed by its rig into a later frame of the capture's motion
(the fit's shape and detail displacements kept)."""

import json
import sys
from pathlib import Path

import numpy as np

from tests.anny_fit import write_posed_anny_fit

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import neural_double
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return neural_double


def test_rig_posed_fit_reproduces_frame_0_and_moves_with_the_motion(tmp_path):

    from doppel.synthetic_capture import motion_pose
    from reconstruction.body_models import AnnyModel

    nd = _bench()
    model = AnnyModel()
    J = len(model.skeleton.joint_names)
    gt_pose = {"upperarm01.L": [0.0, 0.0, -0.6], "neck02": [0.0, 0.05, 0.0]}
    pheno = {"height": 0.6, "weight": 0.4}
    (tmp_path / "cap" / "ground_truth").mkdir(parents=True)
    (tmp_path / "cap" / "ground_truth" / "params.json").write_text(json.dumps({"phenotype": pheno, "pose": gt_pose}))
    fit = tmp_path / "fit"
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 0.02, (J, 3))
    shape = {"height": 0.55, "weight": 0.45}                 # the fit's shape: not the ground truth's
    v0, disp = write_posed_anny_fit(fit, model, pose, shape, np.array([0.01, 0.9, -0.02]), 0.003, rng)  # 3 mm detail

    f0 = nd.rig_posed_fit(fit, tmp_path / "cap", 0, 4).numpy()
    assert np.abs(f0 - (v0 + disp)).max() < 1e-5              # frame 0: the fit itself
    f3 = nd.rig_posed_fit(fit, tmp_path / "cap", 3, 4).numpy()
    moved = np.linalg.norm(f3 - f0, axis=1)
    names = model.skeleton.joint_names
    forearm = [names.index(n) for n in ("lowerarm01.L", "lowerarm02.L")]
    skin = model.skin_weights
    on_forearm = (skin.weights * np.isin(skin.indices, forearm)).sum(1) > 0.5
    assert on_forearm.sum() > 50 and moved[on_forearm].min() > 0.05   # the left arm rises (rotation x 1.8)
    feet = f0[:, 1] < f0[:, 1].min() + 0.05
    assert moved[feet].max() < 1e-4                           # the legs do not move in this motion
    assert motion_pose(gt_pose, 1.0)["upperarm01.L"][2] == -0.6 * 1.8
