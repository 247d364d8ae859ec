"""Body models behind one interface: Anny in Doppel's frame, SMPL-X / FLAME from synthetic files vs smplx."""

import numpy as np
import pytest
import roma
import torch

from reconstruction.body_models import AnnyModel, BodyParams, FLAMEModel, ModelFileError, SMPLXModel
from tests.reconstruction.synthetic_models import write_flame_pkl, write_smplx_npz

TOL_M = 1e-7   # float64 agreement between an adapter and the library it wraps, metres


@pytest.fixture(scope="session")
def anny64():
    return AnnyModel(dtype=torch.float64)


def test_anny_interface_and_frame(anny64):
    m = anny64
    sk = m.skeleton
    J = len(sk.joint_names)
    assert J == len(sk.parents) == sk.rest_joints.shape[0] and sk.parents[0] == -1
    assert all(p < j for j, p in enumerate(sk.parents))
    assert m.faces.shape == (27420, 3) and m.faces.max() < m.num_vertices
    uvs, face_uvs = m.uvs
    assert face_uvs.shape == m.faces.shape and uvs.shape[1] == 2
    assert len(m.expression_names) == 52 and "jawOpen" in m.expression_names
    assert m.shape_names[:2] == ["gender", "age"]
    sw = m.skin_weights
    assert np.allclose(sw.weights.sum(1), 1.0, atol=1e-6)
    out = m()
    v = out.vertices[0].numpy()
    names = sk.joint_names
    head, foot = out.joints[0, names.index("head")], out.joints[0, names.index("foot.L")]
    assert head[1] > foot[1] + 1.0, "+Y up"
    assert out.joints[0, names.index("wrist.L"), 0] > 0 > out.joints[0, names.index("wrist.R"), 0], "left is +X"
    nose_z = v[np.linalg.norm(v[:, [0, 1]] - head[[0, 1]].numpy(), axis=1) < 0.12, 2].max()
    assert nose_z > head[2] + 0.05, "facing +Z"
    assert 1.4 < v[:, 1].max() - v[:, 1].min() < 2.1


def test_anny_identity_pose_is_bind_pose(anny64):
    pheno = {"gender": 0.8, "height": 0.3}
    bind = anny64.bind_state(pheno)
    out = anny64(BodyParams(shape=torch.tensor(anny64.shape_vector(pheno))[None]))
    assert np.abs(out.vertices[0].numpy() - bind.vertices).max() < TOL_M
    assert np.abs(out.joint_transforms[0].numpy() - bind.bind_matrices).max() < TOL_M


def test_anny_root_translation_and_rotation(anny64):
    J = len(anny64.pose_names)
    pose = torch.zeros(1, J, 3, dtype=torch.float64)
    pose[0, 0] = torch.tensor([0.0, np.pi / 2, 0.0])
    t = torch.tensor([[0.5, 0.0, -1.0]], dtype=torch.float64)
    out = anny64(BodyParams(pose=pose, root_translation=t))
    rest = anny64()
    root = rest.joints[0, 0]
    Ry = roma.rotvec_to_rotmat(torch.tensor([0.0, np.pi / 2, 0.0], dtype=torch.float64))
    Rb = rest.joint_transforms[0, 0, :3, :3]
    expect = (Rb @ Ry @ Rb.T @ (rest.vertices[0] - root).T).T + root + t[0]
    assert (out.vertices[0] - expect).abs().max() < 1e-6


def test_anny_bad_parameters(anny64):
    with pytest.raises(ValueError, match="unknown phenotype name.*'heigth'"):
        anny64.bind_state({"heigth": 0.5})
    with pytest.raises(ValueError, match="unknown rig"):
        AnnyModel(rig="nope")
    with pytest.raises(ValueError, match=r"expected \(B, \d+, 3\)"):
        anny64(BodyParams(pose=torch.zeros(1, 3, 3, dtype=torch.float64)))


def _smplx_peer(path):
    import smplx  # a required dependency: missing = a failure, not a skip
    peer = smplx.SMPLX(str(path), ext="npz", use_pca=False, flat_hand_mean=True, num_betas=10,
                       num_expression_coeffs=10, dtype=torch.float64)
    # smplx adds joints at fixed vertex ids of the real 10475-vertex mesh; the synthetic mesh is smaller.
    peer.vertex_joint_selector.extra_joints_idxs = torch.zeros(0, dtype=torch.long)
    return peer


def _random_smplx_params(B, J, seed):
    g = torch.Generator().manual_seed(seed)
    pose = torch.randn(B, J, 3, generator=g, dtype=torch.float64) * 0.4
    betas = torch.randn(B, 10, generator=g, dtype=torch.float64)
    expr = torch.randn(B, 10, generator=g, dtype=torch.float64)
    transl = torch.randn(B, 3, generator=g, dtype=torch.float64)
    return pose, betas, expr, transl


def _smplx_forward(peer, pose, betas, expr, transl):
    return peer(betas=betas, global_orient=pose[:, 0], body_pose=pose[:, 1:22].reshape(len(pose), -1),
                jaw_pose=pose[:, 22], leye_pose=pose[:, 23], reye_pose=pose[:, 24],
                left_hand_pose=pose[:, 25:40].reshape(len(pose), -1),
                right_hand_pose=pose[:, 40:55].reshape(len(pose), -1), expression=expr, transl=transl)


def test_smplx_adapter_matches_smplx(tmp_path, capsys):
    path = write_smplx_npz(tmp_path / "smplx" / "SMPLX_NEUTRAL.npz")
    model = SMPLXModel(path, dtype=torch.float64)
    assert len(model.pose_names) == 55 and model.pose_names[15] == "head"
    peer = _smplx_peer(path)
    pose, betas, expr, transl = _random_smplx_params(3, 55, 0)
    ours = model(BodyParams(shape=betas, pose=pose, expression=expr, root_translation=transl))
    ref = _smplx_forward(peer, pose, betas, expr, transl)
    assert (ours.vertices - ref.vertices).abs().max() < TOL_M
    assert (ours.joints - ref.joints[:, :55]).abs().max() < TOL_M


def test_models_dir_env_and_missing_file_message(tmp_path, monkeypatch):
    write_smplx_npz(tmp_path / "smplx" / "SMPLX_NEUTRAL.npz")
    monkeypatch.setenv("DOPPEL_MODELS_DIR", str(tmp_path))
    assert SMPLXModel().path == tmp_path / "smplx" / "SMPLX_NEUTRAL.npz"
    with pytest.raises(ModelFileError) as e:
        SMPLXModel(gender="female")
    msg = str(e.value)
    assert "SMPLX_FEMALE.npz" in msg and str(tmp_path / "smplx") in msg and "smpl-x.is.tue.mpg.de" in msg
    monkeypatch.delenv("DOPPEL_MODELS_DIR")
    with pytest.raises(ModelFileError, match="DOPPEL_MODELS_DIR is not set.*flame/FLAME_NEUTRAL.pkl"):
        FLAMEModel()
    with pytest.raises(ModelFileError, match="does not exist"):
        FLAMEModel(tmp_path / "nope.pkl")


def test_wrong_model_file_names_the_key(tmp_path):
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    write_smplx_npz(path)
    data = dict(np.load(path))
    data["posedirs"] = data["posedirs"][:, :, :10]
    np.savez(path, **data)
    with pytest.raises(ModelFileError, match=r"SMPLX_NEUTRAL.npz: posedirs has shape .*expected"):
        SMPLXModel(path)
    del data["weights"]
    np.savez(path, **data)
    with pytest.raises(ModelFileError, match=r"missing \['weights'\]"):
        SMPLXModel(path)


def test_flame_pkl_adapter_matches_smplx(tmp_path):
    import smplx  # a required dependency: missing = a failure, not a skip
    path = write_flame_pkl(tmp_path / "FLAME_NEUTRAL.pkl")
    model = FLAMEModel(tmp_path, dtype=torch.float64)
    assert model.pose_names == ["global", "neck", "jaw", "left_eye", "right_eye"]
    peer = smplx.FLAME(str(tmp_path), num_expression_coeffs=10, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    pose = torch.randn(2, 5, 3, generator=g, dtype=torch.float64) * 0.3
    betas = torch.randn(2, 10, generator=g, dtype=torch.float64)
    expr = torch.randn(2, 10, generator=g, dtype=torch.float64)
    ours = model(BodyParams(shape=betas, pose=pose, expression=expr))
    ref = peer(betas=betas, global_orient=pose[:, 0], neck_pose=pose[:, 1], jaw_pose=pose[:, 2],
               leye_pose=pose[:, 3], reye_pose=pose[:, 4], expression=expr)
    assert (ours.vertices - ref.vertices).abs().max() < TOL_M
    assert path.is_file()


def test_anny_float32_follows_float64(anny64):
    m32 = AnnyModel(dtype=torch.float32)
    g = torch.Generator().manual_seed(4)
    pose = torch.randn(2, len(m32.pose_names), 3, generator=g) * 0.3
    expr = torch.rand(2, 52, generator=g)
    out32 = m32(BodyParams(pose=pose, expression=expr))
    out64 = anny64(BodyParams(pose=pose.double(), expression=expr.double()))
    assert out32.vertices.dtype == torch.float32
    assert (out32.vertices.double() - out64.vertices).abs().max() < 1e-5   # metres: float32 round-off
