"""Anny (NAVER, Apache-2.0 code, CC0 MakeHuman data) behind Doppel's BodyModel interface.

Anny is Z-up with the body facing -Y; this adapter converts once, here, to Doppel's frame (+Y up,
facing +Z) with `core.conventions.ZUP_NEGY_FORWARD_TO_DOPPEL`. Shape parameters are Anny's phenotype
values in [0, 1] (gender, age, muscle, weight, height, proportions; 0.5 = neutral); expressions are
the 52 ARKit-named facial actions, weights in [0, 1]. Pose parameters follow Doppel's convention
(base.py): local rotations relative to the bind (rest) pose in each bone's rest frame; the adapter
turns them into Anny's 'local-bone' delta transforms and lets Anny do its own kinematics and skinning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import torch

from core.conventions import ZUP_NEGY_FORWARD_TO_DOPPEL
from reconstruction.body_models.base import (
    BindState,
    BodyModel,
    BodyOutput,
    BodyParams,
    Skeleton,
    SkinWeights,
    rotations_to_matrices,
)

log = logging.getLogger(__name__)

# Anny's rigs (anny.typing.Rig) that build on the default full-body topology. 'anny' is the default;
# 'default' is accepted as its alias (the name the CLI shows).
ANNY_RIGS = ("anny", "mixamo", "cmu_mb", "game_engine", "makehuman")


def _quiet_warp() -> None:
    os.environ.setdefault("WARP_QUIET", "1")
    try:
        import warp

        warp.config.quiet = True
    except (ImportError, OSError, AttributeError):  # warp is anny's optional skinning backend
        pass


def _usable_cache() -> None:
    """Point anny at a cache folder this user can write. Its default, ~/.cache/anny, is not one for a render
    node's account without a writable home: anny then failed with "Permission denied" on its first model. The
    fallback is $XDG_CACHE_HOME/anny, else a private folder under the temporary folder (the ~1 GB cache is built
    there once, about a minute). ANNY_CACHE_DIR, when set, is left to anny."""
    import anny.paths

    from core.runtime import private_cache_folder, writable_folder

    if os.environ.get("ANNY_CACHE_DIR") or writable_folder(anny.paths.get_anny_cache_path()):
        return
    xdg = os.environ.get("XDG_CACHE_HOME")
    folder = os.path.join(xdg, "anny") if xdg and writable_folder(os.path.join(xdg, "anny")) \
        else private_cache_folder("anny")
    if folder is None:
        return                                   # anny's own error then says which folder it could not make
    logging.getLogger(__name__).warning("anny's cache folder %s cannot be written (no writable home?): using %s; "
                                        "set ANNY_CACHE_DIR to keep the cache elsewhere",
                                        anny.paths.get_anny_cache_path(), folder)
    anny.paths.set_anny_cache_path(folder)


@lru_cache(maxsize=8)
def load_anny(rig: str = "anny", dtype: torch.dtype = torch.float64, skinning_method: str | None = "lbs"):
    """An `anny.Anny` with all 52 facial actions and 'local-bone' pose parameters, on the CPU (one per
    process and argument set). The first use of a rig on a machine builds its cache (about a minute; one process
    at a time, the others wait for it: `anny_cache.whole_cache`).
    skinning_method: anny's 'lbs' (pure torch, the default here: no warp kernel compilation, differentiable on
    any device), 'dqs', or None for anny's own default ('warp_lbs' when NVIDIA warp is installed)."""
    _quiet_warp()
    import anny

    from reconstruction.body_models.anny_cache import whole_cache

    _usable_cache()
    with whole_cache(anny.paths.get_anny_cache_path()):
        model = anny.Anny(rig=rig, facial_actions="all", pose_parameterization="local-bone",
                          skinning_method=skinning_method)
    return model.to(dtype=dtype)


class AnnyModel(BodyModel):
    """Anny in Doppel's frame.

    rig: one of ANNY_RIGS ('default' = 'anny'). dtype/device: of the model's buffers; outputs follow them.
    skinning_method: anny's skinning ('lbs' or 'dqs'), see `load_anny`.
    """

    name = "anny"
    shape_default = 0.5
    shape_bounds = (0.0, 1.0)        # phenotype values
    expression_bounds = (0.0, 1.0)   # ARKit facial-action weights

    def __init__(self, rig: str = "anny", dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                 skinning_method: str = "lbs"):
        rig = "anny" if rig == "default" else rig
        if rig not in ANNY_RIGS:
            raise ValueError(f"anny: unknown rig {rig!r}; choose one of {['default', *ANNY_RIGS[1:]]}")
        self.rig = rig
        base = load_anny(rig, torch.float64, skinning_method)
        # A private copy when the dtype/device differ, so the cached float64 CPU model stays untouched.
        self.model = base if (dtype == torch.float64 and torch.device(device).type == "cpu") else \
            _copy_to(base, dtype, device)
        self.dtype, self.device = dtype, torch.device(device)
        C = torch.as_tensor(ZUP_NEGY_FORWARD_TO_DOPPEL, dtype=dtype, device=self.device)
        self._C = C
        C4 = torch.eye(4, dtype=dtype, device=self.device)
        C4[:3, :3] = C
        self._C4 = C4
        labels = list(self.model.blendshape_labels)
        self._expr_rows = [labels.index(f"facial_action:{n}") for n in self.model.facial_action_labels]
        self._parents = np.asarray(self.model.bone_parents, dtype=np.int64)
        if not all(p < j for j, p in enumerate(self._parents)) or self._parents[0] != -1:
            raise ModelOrderError(f"anny rig {rig!r}: bones are not in topological order")
        self._skeleton: Skeleton | None = None

    # -- interface ----------------------------------------------------------------------------------

    @property
    def faces(self) -> np.ndarray:
        return self.model.faces.detach().cpu().numpy().astype(np.int64)

    @property
    def uvs(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.model.texture_coordinates is None:
            return None
        return (self.model.texture_coordinates.detach().cpu().numpy().astype(np.float32),
                self.model.face_texture_coordinate_indices.detach().cpu().numpy().astype(np.int64))

    @property
    def skeleton(self) -> Skeleton:
        if self._skeleton is None:
            bind = self.bind_state(None)
            self._skeleton = Skeleton(list(self.model.bone_labels), self._parents.copy(),
                                      bind.bind_matrices[:, :3, 3].copy())
        return self._skeleton

    @property
    def skin_weights(self) -> SkinWeights:
        return SkinWeights(self.model.vertex_bone_indices.detach().cpu().numpy().astype(np.int64),
                           self.model.vertex_bone_weights.detach().cpu().numpy().astype(np.float64))

    @property
    def shape_names(self) -> list[str]:
        return list(self.model.phenotype_labels)

    @property
    def expression_names(self) -> list[str]:
        return list(self.model.facial_action_labels)

    def shape_vector(self, phenotype: Mapping[str, float] | None) -> np.ndarray:
        """(S,) phenotype vector from name -> value (missing names: 0.5, Anny's neutral)."""
        return self.vector(phenotype, self.shape_names, 0.5, "phenotype")

    def expression_vector(self, expression: Mapping[str, float] | None) -> np.ndarray:
        """(E,) facial-action weights from ARKit name -> weight (missing names: 0)."""
        return self.vector(expression, self.expression_names, 0.0, "facial action")

    def forward(self, params: BodyParams | None = None) -> BodyOutput:
        """Pose Anny through its own forward pass. See BodyParams for shapes; outputs in Doppel's frame."""
        params = params or BodyParams()
        B = params.batch_size()
        J = len(self._parents)
        dt, dev = self.dtype, self.device
        pheno = self._batch(params.shape, len(self.shape_names), 0.5, B, "shape")
        expr = self._batch(params.expression, len(self.expression_names), 0.0, B, "expression")
        rest = self.model(pose_parameters=None, phenotype_kwargs=pheno, facial_actions=None)
        P = rest["rest_bone_poses"].expand(B, -1, -1, -1)
        R, h = P[..., :3, :3], P[..., :3, 3]
        if params.pose is None:
            delta = torch.eye(3, dtype=dt, device=dev).expand(B, J, 3, 3)
        else:
            delta = rotations_to_matrices(params.pose.to(dtype=dt, device=dev), J, "anny pose").expand(B, J, 3, 3)
        U = self.model.reference_bone_orientations
        U = R if U is None else U.expand(B, J, 3, 3)
        par = torch.as_tensor(np.maximum(self._parents, 0), device=dev)
        # 'local-bone': W_c = W_p (Q_p^-1 Q_c) D_c with reference orientations U; Doppel's convention is
        # W_c = W_p (P_p^-1 P_c) Delta_c with rest orientations R, hence D_c = U_c^T U_p R_p^T R_c Delta_c.
        D = U.transpose(-1, -2) @ U[:, par] @ R[:, par].transpose(-1, -2) @ R @ delta
        t = torch.zeros(B, 3, dtype=dt, device=dev) if params.root_translation is None else \
            params.root_translation.to(dtype=dt, device=dev).expand(B, 3)
        D = torch.cat([(R[:, 0] @ delta[:, 0])[:, None], D[:, 1:]], dim=1)
        d = torch.zeros(B, J, 3, dtype=dt, device=dev)
        d = torch.cat([(h[:, 0] + t @ self._C)[:, None], d[:, 1:]], dim=1)   # t (Doppel) -> C^T t (Anny)
        deltas = torch.eye(4, dtype=dt, device=dev).repeat(B, J, 1, 1)
        deltas[..., :3, :3] = D
        deltas[..., :3, 3] = d
        out = self.model(pose_parameters=deltas, phenotype_kwargs=pheno, facial_actions=expr,
                         pose_parameterization="local-bone")
        W = self._C4 @ out["bone_poses"]
        return BodyOutput(vertices=out["vertices"] @ self._C.T, joints=W[..., :3, 3], joint_transforms=W)

    def reference_pose(self, shape=None, world_aligned: Mapping[str, Sequence[float]] | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Anny's reference pose (its 'local-ref' identity, the pose its default parameterisation starts from),
        optionally with extra rotations, as Doppel pose parameters for one shape.

        shape: (S,) or name -> value (None = neutral). world_aligned: bone -> axis-angle (3,) radians, in the
        world axes of Doppel's frame, applied at the bone on top of its reference orientation as anny's
        'local-ref' parameterisation does (missing bones: none).
        Returns (local_rotations (J, 3, 3) float64 in Doppel's convention (base.py), root_translation (3,)
        float64 metres): `forward` with them reproduces anny's 'local-ref' forward pass.

        With R the rest and U the reference orientations and D the world-aligned deltas (all in Anny's frame),
        'local-ref' chains W_c = W_p U_p^T D_c U_c (W_0 = U_0^T D_0 U_0, head at the origin) while Doppel's
        convention chains W_c = W_p R_p^T R_c Delta_c, hence Delta_c = R_c^T R_p U_p^T D_c U_c and
        Delta_0 = R_0^T U_0^T D_0 U_0, root translation -h_0."""
        import roma

        bind = self.bind_state(shape)
        C = ZUP_NEGY_FORWARD_TO_DOPPEL
        J = len(self._parents)
        names = list(self.model.bone_labels)
        R = C.T @ bind.bind_matrices[:, :3, :3]                              # rest orientations, Anny frame
        U = self.model.reference_bone_orientations
        U = R.copy() if U is None else U.detach().cpu().double().numpy()
        D = np.repeat(np.eye(3)[None], J, axis=0)
        for bone, rotvec in (world_aligned or {}).items():
            if bone not in names:
                raise ValueError(f"anny: unknown bone {bone!r} in world_aligned")
            v = np.asarray(rotvec, dtype=np.float64)
            if v.shape != (3,) or not np.isfinite(v).all():
                raise ValueError(f"anny: world_aligned[{bone!r}] must be 3 finite numbers, got {rotvec!r}")
            D[names.index(bone)] = C.T @ roma.rotvec_to_rotmat(torch.from_numpy(v)).numpy() @ C
        par = np.maximum(self._parents, 0)
        Rt, Ut = R.transpose(0, 2, 1), U.transpose(0, 2, 1)
        local = Rt @ R[par] @ Ut[par] @ D @ U
        local[0] = Rt[0] @ Ut[0] @ D[0] @ U[0]
        return local, -bind.bind_matrices[0, :3, 3].copy()

    def bind_state(self, shape=None) -> BindState:
        """Anny's rest pose for one phenotype, in Doppel's frame (see BindState)."""
        pheno = torch.as_tensor(self.shape_vector(shape) if isinstance(shape, Mapping) or shape is None
                                else self.vector(shape, self.shape_names, 0.5, "phenotype"),
                                dtype=self.dtype, device=self.device)[None]
        with torch.no_grad():
            rest = self.model(pose_parameters=None, phenotype_kwargs=pheno, facial_actions=None)
        C = ZUP_NEGY_FORWARD_TO_DOPPEL
        C4 = np.eye(4)
        C4[:3, :3] = C
        verts = rest["rest_vertices"][0].detach().cpu().double().numpy() @ C.T
        bind = C4 @ rest["rest_bone_poses"][0].detach().cpu().double().numpy()
        deltas = self.model.blendshapes[self._expr_rows].detach().cpu().double().numpy() @ C.T
        return BindState(vertices=verts, bind_matrices=bind, expression_deltas=deltas)

    # -- internals ----------------------------------------------------------------------------------

    def _batch(self, x: torch.Tensor | None, n: int, default: float, B: int, what: str) -> torch.Tensor:
        if x is None:
            return torch.full((B, n), default, dtype=self.dtype, device=self.device)
        x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        if x.dim() != 2 or x.shape[1] != n:
            raise ValueError(f"anny: {what} must be (B, {n}), got {tuple(x.shape)}")
        return x.expand(B, n)


class ModelOrderError(ValueError):
    """A model's bones are not in topological order."""


def _copy_to(model, dtype: torch.dtype, device: str | torch.device):
    import copy

    return copy.deepcopy(model).to(dtype=dtype, device=device)
