"""The one interface every body model (Anny, SMPL-X, FLAME) offers, in Doppel's frame.

Conventions (ARCHITECTURE.md): metres, right-handed, +Y up, the body facing +Z. Skeletons are joint
names, ``parents`` (root = -1) in topological order, and bind (rest) world matrices. Pose parameters
are *local rotations relative to the bind pose, in the joint's own bind frame*: a joint's posed world
matrix is ``W_c = W_p @ (B_p^-1 @ B_c) @ [R_c | 0]`` with ``B`` the bind world matrices and ``R_c``
the joint's local rotation; the root's is ``W_0 = [I | t] @ B_0 @ [R_0 | 0]`` with ``t`` the root
translation (a world-space offset, metres). All-identity rotations and ``t = 0`` give the bind pose.
`rigging.Rig` uses exactly the same convention, so a Rig built from a model poses like the model.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import DoppelError

MODELS_ENV = "DOPPEL_MODELS_DIR"   # the folder of the user's licensed model files: smplx/, flame/


class ModelFileError(DoppelError):
    """A body-model file is missing, unreadable, unsafe or has the wrong content."""


def models_dir(model: str):
    """$DOPPEL_MODELS_DIR/<model> ("smplx", "flame") as a Path, or None when the variable is not set."""
    import os
    from pathlib import Path

    root = os.environ.get(MODELS_ENV)
    return Path(root) / model if root else None


@dataclass(frozen=True)
class Skeleton:
    """A joint hierarchy. joint_names (J,); parents (J,) int64, -1 = root, parents[j] < j;
    rest_joints (J, 3) float64, the joint positions of the model's template (metres, Doppel frame)."""

    joint_names: list[str]
    parents: np.ndarray
    rest_joints: np.ndarray


@dataclass(frozen=True)
class SkinWeights:
    """Sparse skinning weights: each vertex's influences. indices (V, K) int64 joint indices,
    weights (V, K) float, rows sum to 1; unused slots have weight 0."""

    indices: np.ndarray
    weights: np.ndarray

    def dense(self, num_joints: int) -> np.ndarray:
        """(V, num_joints) dense weight matrix."""
        out = np.zeros((len(self.indices), num_joints), dtype=np.float64)
        np.add.at(out, (np.arange(len(self.indices))[:, None], self.indices), self.weights)
        return out


@dataclass
class BodyParams:
    """Parameters of a batch of bodies. Every field is optional (None = the model's neutral value).

    shape: (B, S) float, in the model's ``shape_names`` order (Anny: phenotype values in [0, 1];
        SMPL-X / FLAME: betas).
    pose: (B, J, 3) axis-angle (radians) or (B, J, 3, 3) rotation matrices: local rotations relative to
        the bind pose, in each joint's bind frame (see the module docstring).
    root_translation: (B, 3) metres, world-space offset of the root joint.
    expression: (B, E) float, in the model's ``expression_names`` order (Anny: ARKit weights in [0, 1]).
    """

    shape: torch.Tensor | None = None
    pose: torch.Tensor | None = None
    root_translation: torch.Tensor | None = None
    expression: torch.Tensor | None = None

    def batch_size(self) -> int:
        sizes = {int(x.shape[0]) for x in (self.shape, self.pose, self.root_translation, self.expression)
                 if x is not None}
        sizes.discard(1)
        if len(sizes) > 1:
            raise ValueError(f"BodyParams: batch sizes differ across fields: {sorted(sizes)}")
        return sizes.pop() if sizes else 1


@dataclass(frozen=True)
class BodyOutput:
    """A posed batch, in Doppel's frame.

    vertices: (B, V, 3) metres; joints: (B, J, 3) posed joint positions, metres;
    joint_transforms: (B, J, 4, 4) posed world matrices of the joints.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    joint_transforms: torch.Tensor


@dataclass(frozen=True)
class BindState:
    """What a rig needs from a body model for one shape (numpy, float64, Doppel frame).

    vertices (V, 3): the bind mesh (shape applied, neutral expression, bind pose).
    bind_matrices (J, 4, 4): joint world matrices in the bind pose.
    expression_deltas (E, V, 3): per-expression vertex offsets (linear blendshapes).
    expression_joint_deltas (E, J, 3) or None: how each expression moves the bind joint positions
        (SMPL-X / FLAME regress joints from the expression-deformed mesh; Anny's expressions move none).
    corrective_joints (P,) or None: joints whose local rotation drives the pose correctives;
    corrective_deltas (P * 9, V, 3) or None: vertex offsets per entry of (R_j - I), row-major.
    """

    vertices: np.ndarray
    bind_matrices: np.ndarray
    expression_deltas: np.ndarray
    expression_joint_deltas: np.ndarray | None = None
    corrective_joints: np.ndarray | None = None
    corrective_deltas: np.ndarray | None = None


class BodyModel(abc.ABC):
    """A parametric body model in Doppel's frame. Subclasses: AnnyModel, SMPLXModel, FLAMEModel."""

    name: str = "body"
    full_body: bool = True       # a whole body standing on its feet (False: a head model, FLAME)
    shape_default: float = 0.0   # the neutral value of every shape parameter
    shape_bounds: tuple[float, float] | None = None        # (low, high) of every shape parameter; None = unbounded
    expression_bounds: tuple[float, float] | None = None   # (low, high) of every expression weight; None = unbounded

    def clamp_shape(self, shape: torch.Tensor) -> torch.Tensor:
        """shape (B, S) clamped to shape_bounds (unchanged when unbounded; differentiable inside the bounds)."""
        return shape if self.shape_bounds is None else shape.clamp(*self.shape_bounds)

    def clamp_expression(self, expression: torch.Tensor) -> torch.Tensor:
        """expression (B, E) clamped to expression_bounds (unchanged when unbounded)."""
        return expression if self.expression_bounds is None else expression.clamp(*self.expression_bounds)

    @property
    @abc.abstractmethod
    def faces(self) -> np.ndarray:
        """(F, 3) int64 triangles, counter-clockwise seen from outside."""

    @property
    def uvs(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(uvs (T, 2) float32 v up, face_uvs (F, 3) int64) or None when the model has no UV layout."""
        return None

    @property
    @abc.abstractmethod
    def skeleton(self) -> Skeleton:
        """The joint hierarchy with the template's rest joint positions."""

    @property
    @abc.abstractmethod
    def skin_weights(self) -> SkinWeights:
        """Sparse skinning weights (V, K)."""

    @property
    @abc.abstractmethod
    def shape_names(self) -> list[str]:
        """Names of the shape parameters (columns of BodyParams.shape)."""

    @property
    def pose_names(self) -> list[str]:
        """Names of the posable joints (rows of BodyParams.pose): the skeleton's joints."""
        return list(self.skeleton.joint_names)

    @property
    @abc.abstractmethod
    def expression_names(self) -> list[str]:
        """Names of the expression parameters (columns of BodyParams.expression)."""

    @property
    def num_vertices(self) -> int:
        return int(self.skin_weights.indices.shape[0])

    @abc.abstractmethod
    def forward(self, params: BodyParams | None = None) -> BodyOutput:
        """Pose the model; see BodyParams for shapes. Device and dtype follow the model."""

    def __call__(self, params: BodyParams | None = None) -> BodyOutput:
        return self.forward(params)

    @abc.abstractmethod
    def bind_state(self, shape: torch.Tensor | np.ndarray | Mapping[str, float] | None = None) -> BindState:
        """The bind mesh, bind skeleton, expression and corrective deltas for one shape ((S,) or
        name -> value; None = neutral)."""

    # -- helpers shared by the adapters -------------------------------------------------------------

    def vector(self, values: Mapping[str, float] | Sequence[float] | np.ndarray | torch.Tensor | None,
               names: Sequence[str], default: float, what: str) -> np.ndarray:
        """A (len(names),) float64 vector from a name -> value mapping or a sequence; unknown names raise."""
        if values is None:
            return np.full(len(names), default, dtype=np.float64)
        if isinstance(values, Mapping):
            unknown = sorted(set(values) - set(names))
            if unknown:
                raise ValueError(f"{self.name}: unknown {what} name(s) {unknown}; known: {list(names)}")
            return np.array([float(values.get(n, default)) for n in names], dtype=np.float64)
        arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        arr = np.asarray(arr, dtype=np.float64).reshape(-1)
        if arr.shape != (len(names),):
            raise ValueError(f"{self.name}: {what} must have {len(names)} values, got {arr.shape[0]}")
        return arr


def rotations_to_matrices(pose: torch.Tensor, num_joints: int, what: str = "pose") -> torch.Tensor:
    """pose (B, J, 3) axis-angle or (B, J, 3, 3) rotation matrices -> (B, J, 3, 3)."""
    import roma

    if pose.dim() == 3 and pose.shape[1:] == (num_joints, 3):
        return roma.rotvec_to_rotmat(pose)
    if pose.dim() == 4 and pose.shape[1:] == (num_joints, 3, 3):
        return pose
    raise ValueError(f"{what}: expected (B, {num_joints}, 3) axis-angle or (B, {num_joints}, 3, 3) rotation "
                     f"matrices, got {tuple(pose.shape)}")


def topological_levels(parents: np.ndarray) -> list[np.ndarray]:
    """Joints grouped by depth: levels[0] = roots, levels[d] = joints whose parent is in levels[d-1].
    parents (J,) with parents[j] < j (topological order)."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for j, p in enumerate(parents):
        depth[j] = 0 if p < 0 else depth[p] + 1
    return [np.nonzero(depth == d)[0] for d in range(int(depth.max()) + 1 if len(depth) else 0)]
