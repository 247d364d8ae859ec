"""Motion of the virtual actor: re-posing a built actor frame by frame (new pose and expression, same body,
texture and floor offset, no repainting), and reading a clip (``animation.npz`` of a retarget onto the virtual
actor's skeleton) into per-frame poses.

Two pose forms, both Anny's skeleton (``doppel.virtual_actor.body_model().skeleton.joint_names``):
- world-aligned: bone -> axis-angle (radians, Doppel world axes) on Anny's reference pose, the form of
  ``VirtualActor.pose`` (``AnnyModel.reference_pose``);
- local: (J, 3, 3) rotations relative to the bind pose in each bone's bind frame plus a (3,) root offset in
  metres (Doppel's rig / ``rigging.Animation`` convention), the form a retargeted clip carries.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LocalPose:
    """One frame of a clip on the virtual actor's skeleton."""

    rotations: np.ndarray    # (J, 3, 3) float64, relative to the bind pose (Animation convention)
    root_offset: np.ndarray  # (3,) float64 metres, root displacement from its bind position (Doppel frame)


def pose_actor(base, world_pose: dict | None = None, expression: dict | None = None,
               local: LocalPose | None = None):
    """``base`` (a VirtualActor) re-posed -> a VirtualActor with new vertices (V, 3) float32 and joints (J, 3),
    metres, the same phenotype, texture and floor shift (feet of the rest pose on y = 0).

    world_pose: bone -> axis-angle (world-aligned form; None = base.pose); expression: ARKit name -> weight
    (None = base.expression); local: a LocalPose instead of world_pose (clip frames)."""
    import torch

    from doppel.virtual_actor import body_model
    from reconstruction.body_models.base import BodyParams

    model = body_model()
    expr = dict(base.expression if expression is None else expression)
    shape = torch.from_numpy(model.shape_vector(base.phenotype))[None]
    rest_R, t = model.reference_pose(base.phenotype, None)
    if local is not None:
        R = np.asarray(local.rotations, np.float64)
        if R.shape != rest_R.shape:
            raise ValueError(f"local pose: rotations {R.shape}, the virtual actor's skeleton needs {rest_R.shape}")
        t = t + np.asarray(local.root_offset, np.float64)
        pose_dict = base.pose
    else:
        pose_dict = base.pose if world_pose is None else {k: [float(x) for x in v] for k, v in world_pose.items()}
        R, t = model.reference_pose(base.phenotype, pose_dict)
    with torch.no_grad():
        out = model(BodyParams(shape=shape, pose=torch.from_numpy(R)[None], root_translation=torch.from_numpy(t)[None],
                               expression=torch.from_numpy(model.expression_vector(expr))[None]))
        rest = model(BodyParams(shape=shape, pose=torch.from_numpy(rest_R)[None],
                                root_translation=torch.from_numpy(model.reference_pose(base.phenotype, None)[1])[None]))
    shift = np.array([0.0, -rest.vertices[0, :, 1].min().item(), 0.0])
    verts = out.vertices[0].numpy() + shift
    joints = out.joints[0].numpy() + shift
    return dataclasses.replace(base, pose=pose_dict, expression=expr, vertices=verts.astype(np.float32),
                               joints=joints.astype(np.float32))


def load_clip(path, frames: int) -> list[LocalPose]:
    """A clip for the virtual actor -> ``frames`` LocalPose, sampled evenly over the clip (nearest frame).

    path: an animation folder or ``animation.npz`` (``doppel retarget`` output) whose joints are the virtual
    actor's (Anny's default rig); joints it does not list stay at the bind pose. ValueError naming the file when
    it cannot be read or shares no joint with the actor."""
    from doppel.virtual_actor import body_model
    from rigging.animation import Animation, AnimationError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: clip not found (--anim takes an animation folder or animation.npz)")
    try:
        anim = Animation.load(path)
    except (AnimationError, OSError, KeyError) as e:
        raise ValueError(f"{path}: not a readable clip ({e})") from e
    names = list(body_model().skeleton.joint_names)
    index = {n: i for i, n in enumerate(names)}
    shared = [(k, index[n]) for k, n in enumerate(anim.joint_names) if n in index]
    if not shared:
        raise ValueError(f"{path}: none of its {len(anim.joint_names)} joints is a joint of the virtual actor "
                         "(retarget the clip onto a rig of the virtual actor first)")
    T = anim.local_rotations.shape[0]
    picks = np.round(np.linspace(0, T - 1, frames)).astype(int) if frames > 1 else np.array([0])
    out = []
    for f in picks:
        R = np.repeat(np.eye(3)[None], len(names), axis=0)
        for k, j in shared:
            R[j] = anim.local_rotations[f, k]
        out.append(LocalPose(R, anim.root_translation[f] - anim.root_translation[0]))
    return out
