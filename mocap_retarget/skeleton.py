"""`TargetSkeleton`: the skeleton a motion is retargeted onto, as plain arrays (joint names, parents in topological
order, bind world matrices in Doppel's frame), built from a rig, a BVH rest pose or a body model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap_retarget.bvh import Motion, forward_kinematics
from rigging.animation import Animation

MAX_TARGET_JOINTS = 2000     # a humanoid rig has a few hundred joints at most (Anny: 163); more is not a character


@dataclass
class TargetSkeleton:
    """The skeleton to retarget onto, in Doppel's frame (metres, +Y up, facing +Z).

    names: J joint names; parents (J,) int64 topological (-1 = root); bind_world (J, 4, 4) float64 bind
    (rest) world matrices (rotation + joint position); floor_y: height of the floor under the bind pose.
    """

    names: list[str]
    parents: np.ndarray
    bind_world: np.ndarray
    floor_y: float = 0.0
    source: str = "target skeleton"

    def __post_init__(self) -> None:
        self.parents = np.asarray(self.parents, dtype=np.int64)
        self.bind_world = np.asarray(self.bind_world, dtype=np.float64)
        J = len(self.names)
        where = self.source
        if self.parents.shape != (J,) or self.bind_world.shape != (J, 4, 4):
            raise ValueError(f"{where}: {J} names, parents {self.parents.shape}, bind_world "
                             f"{self.bind_world.shape}; expected ({J},) and ({J}, 4, 4)")
        if J > MAX_TARGET_JOINTS:
            raise ValueError(f"{where}: {J} joints; a character rig has at most {MAX_TARGET_JOINTS}")
        if (self.parents >= np.arange(J)).any():
            raise ValueError(f"{where}: parents must be in topological order (parent index < child)")
        if len(set(self.names)) != J:
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"{where}: duplicated joint names {dup[:5]}")
        if not np.isfinite(self.bind_world).all() or not np.isfinite(self.floor_y):
            raise ValueError(f"{where}: bind matrices or floor height are not finite")

    @classmethod
    def from_rig(cls, rig) -> TargetSkeleton:
        """From a ``rigging.Rig`` (its pose convention is this module's: local rotations relative to the
        bind pose in each joint's bind frame, root translation a world offset). The floor is the lowest
        bind vertex."""
        floor = float(np.asarray(rig.vertices)[:, 1].min()) if len(rig.vertices) else 0.0
        return cls(list(rig.joint_names), np.asarray(rig.parents), np.asarray(rig.bind_matrices), floor)

    @classmethod
    def from_motion(cls, motion: Motion, floor_y: float | None = None) -> TargetSkeleton:
        """A BVH skeleton's rest pose as a target (bind rotations identity, as in BVH). floor_y defaults
        to the lowest rest point (End Sites included)."""
        if motion.num_joints > MAX_TARGET_JOINTS:
            raise ValueError(f"{motion.source}: {motion.num_joints} joints; a target rig has at most "
                             f"{MAX_TARGET_JOINTS}")
        rest = motion.rest_positions()
        B = np.repeat(np.eye(4)[None], motion.num_joints, axis=0)
        B[:, :3, 3] = rest
        if floor_y is None:
            pts = [rest] + [rest[j] + np.asarray(o)[None] for j, v in motion.end_sites.items() for o in v]
            floor_y = float(np.vstack(pts)[:, 1].min())
        return cls(list(motion.names), motion.parents.copy(), B, floor_y, source=motion.source or "target")

    @classmethod
    def from_body_model(cls, model, shape=None, feet_on_floor: bool = True) -> TargetSkeleton:
        """A body model's bind skeleton (``reconstruction.body_models.BodyModel``, already in Doppel's frame) for
        ``shape`` (the model's shape values or name -> value; None = neutral). feet_on_floor: move it so the lowest
        bind vertex is at y = 0 (floor_y 0); else floor_y is that vertex's height."""
        bind = model.bind_state(shape)
        B = np.array(bind.bind_matrices, dtype=np.float64)
        floor = float(np.asarray(bind.vertices)[:, 1].min())
        if feet_on_floor:
            B[:, 1, 3] -= floor
            floor = 0.0
        sk = model.skeleton
        return cls(list(sk.joint_names), np.asarray(sk.parents, dtype=np.int64), B, floor,
                   source=f"{getattr(model, 'name', 'body model')} skeleton")

    @property
    def bind_rot(self) -> np.ndarray:
        return self.bind_world[:, :3, :3]

    @property
    def bind_pos(self) -> np.ndarray:
        return self.bind_world[:, :3, 3]

    def bind_local(self) -> tuple[np.ndarray, np.ndarray]:
        """Bind rotation (J, 3, 3) and translation (J, 3) of each joint in its parent's bind frame."""
        R, t = self.bind_rot.copy(), self.bind_pos.copy()
        for j, p in enumerate(self.parents):
            if p >= 0:
                R[j] = self.bind_rot[p].T @ self.bind_rot[j]
                t[j] = self.bind_rot[p].T @ (self.bind_pos[j] - self.bind_pos[p])
        return R, t

    def pose(self, anim: Animation) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (F, J, 3, 3) and joint positions (F, J, 3) of ``anim`` (on this skeleton's joints, in
        this skeleton's order) posed on this skeleton."""
        if list(anim.joint_names) != list(self.names):
            raise ValueError(f"{anim.source or 'animation'}: its joints are not this skeleton's ({self.source})")
        Rb, tb = self.bind_local()
        F = anim.num_frames
        lrot = Rb[None] @ anim.local_rotations
        ltr = np.broadcast_to(tb, (F, *tb.shape)).copy()
        root = self.parents < 0
        ltr[:, root] = tb[root] + anim.root_translation[:, None]
        return forward_kinematics(self.parents, lrot, ltr)
