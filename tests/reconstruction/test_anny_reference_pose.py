"""AnnyModel.reference_pose against anny's own 'local-ref' forward pass (the convention the virtual actor's
seeded pose is written in)."""

import numpy as np
import pytest
import torch

from core.conventions import ZUP_NEGY_FORWARD_TO_DOPPEL as C
from reconstruction.body_models.anny_model import AnnyModel
from reconstruction.body_models.base import BodyParams


@pytest.fixture(scope="module")
def model():
    return AnnyModel(dtype=torch.float64)


@pytest.mark.parametrize("with_rotations", [False, True])
def test_reference_pose_reproduces_anny_local_ref(model, with_rotations):
    import roma

    shape = {"height": 0.7, "weight": 0.4}
    rot = {"upperarm01.L": [0.1, -0.2, 0.6], "neck02": [0.0, 0.3, 0.0], "root": [0.0, 0.4, 0.0]} \
        if with_rotations else {}
    local, t = model.reference_pose(shape, rot)
    assert local.shape == (model.skeleton.parents.shape[0], 3, 3)
    np.testing.assert_allclose(local @ local.transpose(0, 2, 1), np.broadcast_to(np.eye(3), local.shape), atol=1e-12)
    ours = model(BodyParams(shape=torch.from_numpy(model.shape_vector(shape))[None],
                            pose=torch.from_numpy(local)[None], root_translation=torch.from_numpy(t)[None]))
    names = list(model.model.bone_labels)
    deltas = torch.eye(4, dtype=torch.float64).repeat(1, len(names), 1, 1)
    for bone, v in rot.items():   # Doppel world axes -> Anny's: D_anny = C^T D C
        D = roma.rotvec_to_rotmat(torch.tensor(v, dtype=torch.float64)).numpy()
        deltas[0, names.index(bone), :3, :3] = torch.from_numpy(C.T @ D @ C)
    pheno = torch.from_numpy(model.shape_vector(shape))[None]
    with torch.no_grad():
        ref = model.model(pose_parameters=deltas, phenotype_kwargs=pheno, pose_parameterization="local-ref")
    np.testing.assert_allclose(ours.vertices[0].numpy(), ref["vertices"][0].numpy() @ C.T, atol=1e-9)
    np.testing.assert_allclose(ours.joints[0].numpy(), ref["bone_poses"][0, :, :3, 3].numpy() @ C.T, atol=1e-9)


def test_reference_pose_rejects_unknown_bone_and_bad_values(model):
    with pytest.raises(ValueError, match="unknown bone 'tail'"):
        model.reference_pose(None, {"tail": [0, 0, 1]})
    with pytest.raises(ValueError, match="3 finite numbers"):
        model.reference_pose(None, {"head": [0, float("nan"), 0]})
