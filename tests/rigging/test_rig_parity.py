"""Rig.pose against the peers' own forward passes: anny (LBS and DQS) and smplx (SMPL-X, FLAME)."""

import numpy as np
import pytest
import roma
import torch

from core.conventions import ZUP_NEGY_FORWARD_TO_DOPPEL
from reconstruction.body_models import FLAMEModel, SMPLXModel
from rigging import Rig
from tests.reconstruction.synthetic_models import write_flame_pkl, write_smplx_npz
from tests.reconstruction.test_body_models import _random_smplx_params, _smplx_forward, _smplx_peer
from tests.rigging.conftest import PHENOTYPE

PARITY_MM = 0.1   # the bar: max vertex error in millimetres


def _anny_native(skinning_method):
    from reconstruction.body_models.anny_cache import whole_cache
    from reconstruction.body_models.anny_model import _quiet_warp

    _quiet_warp()
    import anny

    # anny's own defaults: 'local-ref' pose parameters; under the cache's lock, as Doppel builds it (the test
    # processes of `make test` may start on a machine without the cache)
    with whole_cache(anny.paths.get_anny_cache_path()):
        return anny.Anny(facial_actions="all", skinning_method=skinning_method).to(dtype=torch.float64)


def _rig_params_from_anny_output(out, parents):
    """Doppel joint-local rotations and root translation reproducing anny's posed bone matrices: solved from
    anny's world matrices W and rest matrices P (R_c = (P_p^-1 P_c)^-1 W_p^-1 W_c), not from anny's inputs."""
    W, P = out["bone_poses"], out["rest_bone_poses"].expand_as(out["bone_poses"])
    par = torch.as_tensor(np.maximum(parents, 0))
    local = torch.linalg.inv(P[:, par]) @ P
    rel = torch.linalg.inv(W[:, par]) @ W
    R = (torch.linalg.inv(local) @ rel)[..., :3, :3].clone()
    R[:, 0] = P[:, 0, :3, :3].transpose(-1, -2) @ W[:, 0, :3, :3]
    C = torch.as_tensor(ZUP_NEGY_FORWARD_TO_DOPPEL)
    t = (W[:, 0, :3, 3] - P[:, 0, :3, 3]) @ C.T
    return roma.special_procrustes(R), t


@pytest.mark.parametrize("method", ["lbs", "dqs"])
def test_anny_parity_random_poses_and_expressions(anny_rig, method):
    native = _anny_native(method)
    B, J = 4, anny_rig.num_joints
    g = torch.Generator().manual_seed(7)
    deltas = torch.eye(4, dtype=torch.float64).repeat(B, J, 1, 1)
    deltas[..., :3, :3] = roma.rotvec_to_rotmat(torch.randn(B, J, 3, generator=g, dtype=torch.float64) * 0.35)
    deltas[:, 0, :3, 3] = torch.randn(B, 3, generator=g, dtype=torch.float64)
    expr = torch.rand(B, 52, generator=g, dtype=torch.float64)
    pheno = {k: torch.tensor([v], dtype=torch.float64) for k, v in PHENOTYPE.items()}
    with torch.no_grad():
        out = native(pose_parameters=deltas, phenotype_kwargs=pheno, facial_actions=expr)
    R, t = _rig_params_from_anny_output(out, anny_rig.parents)
    ref = out["vertices"] @ torch.as_tensor(ZUP_NEGY_FORWARD_TO_DOPPEL).T
    for dtype in (torch.float64, torch.float32):
        v = anny_rig.pose(R.to(dtype), t.to(dtype), expr.to(dtype), method=method)
        assert v.dtype == dtype
        err_mm = (v.double() - ref).norm(dim=-1).max().item() * 1000
        assert err_mm < PARITY_MM, f"{method} {dtype}: {err_mm:.4f} mm"
    # and the poses are not trivial: the body moved by decimetres
    assert (ref - torch.as_tensor(anny_rig.vertices, dtype=torch.float64)).norm(dim=-1).max() > 0.3


def test_anny_rig_joints_match_anny(anny_rig, anny_model):
    from reconstruction.body_models import BodyParams

    g = torch.Generator().manual_seed(3)
    pose = torch.randn(2, anny_rig.num_joints, 3, generator=g, dtype=torch.float64) * 0.3
    t = torch.randn(2, 3, generator=g, dtype=torch.float64)
    shape = torch.tensor(anny_model.shape_vector(PHENOTYPE))[None]
    out = anny_model(BodyParams(shape=shape, pose=pose, root_translation=t))
    W = anny_rig.forward_kinematics(pose, t)
    assert (W - out.joint_transforms).abs().max() < 1e-9
    assert (anny_rig.pose(pose, t) - out.vertices).norm(dim=-1).max() * 1000 < PARITY_MM


def test_smplx_parity(tmp_path):
    path = write_smplx_npz(tmp_path / "SMPLX_NEUTRAL.npz", seed=4)
    model = SMPLXModel(path, dtype=torch.float64)
    peer = _smplx_peer(path)
    pose, betas, expr, transl = _random_smplx_params(3, 55, 11)
    betas = betas[:1].expand(3, -1)
    rig = Rig.from_body_model(model, betas[0].numpy(), feet_on_floor=False).validate()
    assert rig.corrective_joints is not None and len(rig.blendshape_names) == 10
    ref = _smplx_forward(peer, pose, betas, expr, transl).vertices
    for method_dtype in (torch.float64, torch.float32):
        v = rig.pose(pose.to(method_dtype), transl.to(method_dtype), expr.to(method_dtype))
        err_mm = (v.double() - ref).norm(dim=-1).max().item() * 1000
        assert err_mm < PARITY_MM, f"SMPL-X {method_dtype}: {err_mm:.4f} mm"
    assert (ref - torch.as_tensor(rig.vertices, dtype=torch.float64)).norm(dim=-1).max() > 0.1


def test_flame_parity(tmp_path):
    import smplx  # a required dependency: missing = a failure, not a skip
    write_flame_pkl(tmp_path / "FLAME_NEUTRAL.pkl", seed=5)
    model = FLAMEModel(tmp_path, dtype=torch.float64)
    peer = smplx.FLAME(str(tmp_path), num_expression_coeffs=10, dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    pose = torch.randn(2, 5, 3, generator=g, dtype=torch.float64) * 0.3
    betas = torch.randn(1, 10, generator=g, dtype=torch.float64).expand(2, -1)
    expr = torch.randn(2, 10, generator=g, dtype=torch.float64)
    rig = Rig.from_body_model(model, betas[0].numpy())
    ref = peer(betas=betas, global_orient=pose[:, 0], neck_pose=pose[:, 1], jaw_pose=pose[:, 2],
               leye_pose=pose[:, 3], reye_pose=pose[:, 4], expression=expr).vertices
    err_mm = (rig.pose(pose, None, expr) - ref).norm(dim=-1).max().item() * 1000
    assert err_mm < PARITY_MM


def test_a_body_rig_stands_on_the_ground_a_head_keeps_its_origin(anny_model, tmp_path):
    """A full-body rig is moved so its feet are on y = 0 (Anny's origin is at the hips: every rig, and so every
    FBX / USD / glTF double, stood 0.82 m below the ground plane); posing is the model's, moved by that much; a
    FLAME head keeps the model's origin."""
    from assets.export import export_rig

    native = Rig.from_body_model(anny_model, PHENOTYPE, feet_on_floor=False)
    rig = Rig.from_body_model(anny_model, PHENOTYPE)
    lift = -float(np.asarray(native.vertices)[:, 1].min())
    assert lift > 0.5 and abs(float(np.asarray(rig.vertices)[:, 1].min())) < 1e-9
    g = torch.Generator().manual_seed(1)
    pose = torch.randn(2, rig.num_joints, 3, generator=g, dtype=torch.float64) * 0.3
    t = torch.randn(2, 3, generator=g, dtype=torch.float64)
    moved = native.pose(pose, t) + torch.tensor([0.0, lift, 0.0], dtype=torch.float64)
    assert (rig.pose(pose, t) - moved).norm(dim=-1).max() < 1e-6        # a micrometre: the rig stores float32
    import pygltflib

    export_rig(rig.validate(), "glb", tmp_path / "d.glb", None, texture=None, provenance={"actor_id": "virtual"})
    g2 = pygltflib.GLTF2.load_binary(str(tmp_path / "d.glb"))
    assert abs(g2.accessors[g2.meshes[0].primitives[0].attributes.POSITION].min[1]) < 1e-6
    write_flame_pkl(tmp_path / "FLAME_NEUTRAL.pkl", seed=5)
    head = FLAMEModel(tmp_path, dtype=torch.float64)
    assert np.allclose(Rig.from_body_model(head).vertices, head.bind_state(None).vertices)
