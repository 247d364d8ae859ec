"""The retarget's Animation follows rigging.Rig's pose convention: Rig.forward_kinematics of the
animation's local rotations and root translation puts every joint where the retarget says."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

import rigging.rig as rig_module
from mocap_retarget.retarget import TargetSkeleton, retarget
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk


def test_animation_matches_rig_forward_kinematics():
    import torch

    skel = synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"], rest="A", scale=1.05)
    rest = skel.rest_positions()
    J = skel.num_joints
    B = np.repeat(np.eye(4)[None], J, axis=0)
    B[:, :3, :3] = Rotation.random(J, random_state=0).as_matrix()     # arbitrary bind frames
    B[:, :3, 3] = rest
    verts = rest.astype(np.float32)                                    # one vertex per joint, rigidly bound
    rig = rig_module.Rig(joint_names=skel.names, parents=skel.parents, bind_matrices=B, vertices=verts,
                         faces=np.array([[0, 1, 2]]), skin_indices=np.arange(J)[:, None],
                         skin_weights=np.ones((J, 1), np.float32))
    res = retarget(synthetic_walk(WalkSpec(seconds=1.0, fps=30)), TargetSkeleton.from_rig(rig))
    anim = res.animation
    W = rig.forward_kinematics(torch.as_tensor(anim.local_rotations), torch.as_tensor(anim.root_translation))
    W = W.numpy()
    np.testing.assert_allclose(W[..., :3, 3], res.target_positions, atol=1e-9)
    posed = rig.pose(torch.as_tensor(anim.local_rotations), torch.as_tensor(anim.root_translation)).numpy()
    np.testing.assert_allclose(posed, res.target_positions, atol=1e-6)   # vertices are float32
