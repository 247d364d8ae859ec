"""SMPL-X and FLAME behind Doppel's BodyModel interface, from model files the user downloads.

The files are licensed by the Max Planck Institute and never bundled: pass a path, or put them under
``$DOPPEL_MODELS_DIR/smplx/`` and ``$DOPPEL_MODELS_DIR/flame/``. ``.npz`` files are read without
unpickling; ``.pkl`` files through `safe_pickle.RestrictedUnpickler` (chumpy arrays and scipy sparse
matrices become numpy; nothing in the file can run code). The kinematics and skinning are the `smplx`
package's own (``smplx.lbs.lbs`` and ``batch_rigid_transform``), fed with the safely loaded arrays.

Both models are already +Y up and facing +Z in metres, Doppel's frame. Their bind orientations are the
identity, so Doppel's joint-local rotations are exactly SMPL-X / FLAME's axis-angle pose parameters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from reconstruction.body_models.base import (
    MODELS_ENV,
    BindState,
    BodyModel,
    BodyOutput,
    BodyParams,
    ModelFileError,
    Skeleton,
    SkinWeights,
    rotations_to_matrices,
)
from reconstruction.body_models.safe_pickle import load_model_arrays
from reconstruction.body_models.uv_layouts import find_uv_layout

FLAME_JOINT_NAMES = ["global", "neck", "jaw", "left_eye", "right_eye"]


def _smplx_joint_names(num_joints: int) -> list[str]:
    from smplx.joint_names import JOINT_NAMES

    return list(JOINT_NAMES[:num_joints]) if num_joints <= len(JOINT_NAMES) else \
        [f"joint_{i:03d}" for i in range(num_joints)]


def find_model_file(kind: str, path: str | os.PathLike | None, gender: str, candidates: list[str],
                    subdir: str, url: str) -> Path:
    """The model file to load: ``path`` (a file, or a folder holding one of ``candidates``), else
    ``$DOPPEL_MODELS_DIR/subdir/<candidate>``. Raises ModelFileError saying what was expected where and how
    to obtain it."""
    how = (f"{kind} is licensed by the Max Planck Institute and not bundled with Doppel: register at {url}, "
           f"download the model, then put {candidates[0]} in ${MODELS_ENV}/{subdir}/ (or pass its path)")
    looked: list[Path] = []
    if path is not None:
        p = Path(path)
        if p.is_file():
            return p
        if p.is_dir():
            looked = [p / c for c in candidates]
        else:
            raise ModelFileError(f"{kind} model file {p} does not exist. {how}")
    else:
        root = os.environ.get(MODELS_ENV)
        if not root:
            raise ModelFileError(f"{kind} model file not found: no path given and ${MODELS_ENV} is not set "
                                 f"(expected ${MODELS_ENV}/{subdir}/{candidates[0]}). {how}")
        looked = [Path(root) / subdir / c for c in candidates]
    for c in looked:
        if c.is_file():
            return c
    raise ModelFileError(f"{kind} model file not found; looked for {', '.join(str(c) for c in looked)}. {how}")


class _SMPLFamily(BodyModel):
    """Shared machinery of SMPL-X and FLAME (skinned template + shape/expression/pose blendshapes)."""

    SHAPE_SPACE_DIM = 300
    EXPRESSION_SPACE_DIM = 100

    def __init__(self, path: Path, num_betas: int, num_expressions: int, joint_names: list[str],
                 dtype: torch.dtype, device: str | torch.device):
        self.path = Path(path)
        data = load_model_arrays(self.path)
        arr = self._check(data)
        V, J = arr["v_template"].shape[0], arr["weights"].shape[1]
        sd = arr["shapedirs"]
        if sd.shape[-1] >= self.SHAPE_SPACE_DIM + self.EXPRESSION_SPACE_DIM:
            b0, e0, nb_max, ne_max = 0, self.SHAPE_SPACE_DIM, self.SHAPE_SPACE_DIM, self.EXPRESSION_SPACE_DIM
        else:  # the reduced files (10 shape + 10 expression components), as smplx reads them
            b0, e0, nb_max, ne_max = 0, 10, 10, max(0, min(10, sd.shape[-1] - 10))
        self.num_betas = min(num_betas, nb_max)
        self.num_expressions = min(num_expressions, ne_max)
        self.dtype, self.device = dtype, torch.device(device)

        def T(x, dt=dtype):
            return torch.as_tensor(np.ascontiguousarray(x), dtype=dt, device=self.device)

        self._np = {
            "v_template": arr["v_template"].astype(np.float64),
            "shapedirs": sd[:, :, b0:b0 + self.num_betas].astype(np.float64),
            "exprdirs": sd[:, :, e0:e0 + self.num_expressions].astype(np.float64),
            "posedirs": arr["posedirs"].astype(np.float64),
            "J_regressor": arr["J_regressor"].astype(np.float64),
            "weights": arr["weights"].astype(np.float64),
        }
        parents = arr["kintree_table"][0].astype(np.int64).copy()
        parents[0] = -1
        if not all(0 <= p < j for j, p in enumerate(parents[1:], start=1)):
            raise ModelFileError(f"{self.path}: kintree_table: joints are not in topological order")
        self._parents = parents
        self._faces = arr["f"].astype(np.int64)
        self._uv_layout = find_uv_layout(self.name, self.path, self._faces,
                                         {k: data[k] for k in ("vt", "ft") if k in data})
        self._joint_names = joint_names if len(joint_names) == J else [f"joint_{i:03d}" for i in range(J)]
        P = self._np["posedirs"].shape[-1]
        self._t = {
            "v_template": T(self._np["v_template"]),
            "dirs": T(np.concatenate([self._np["shapedirs"], self._np["exprdirs"]], axis=2)),
            "posedirs": T(self._np["posedirs"].reshape(-1, P).T),
            "J_regressor": T(self._np["J_regressor"]),
            "parents": T(parents, torch.long),
            "weights": T(self._np["weights"]),
        }
        self._V, self._J = V, J

    def _check(self, data: dict) -> dict[str, np.ndarray]:
        """Required arrays with consistent shapes; ModelFileError naming the file and key otherwise."""
        need = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
        missing = [k for k in need if k not in data]
        if missing:
            raise ModelFileError(f"{self.path}: not a {self.name} model file: missing {missing} "
                                 f"(has {sorted(data)[:12]})")
        arr = {k: np.asarray(data[k]) for k in need}
        V = arr["v_template"].shape[0] if arr["v_template"].ndim == 2 else -1
        J = arr["weights"].shape[1] if arr["weights"].ndim == 2 else -1
        expect = {"v_template": (V, 3), "weights": (V, J), "J_regressor": (J, V), "kintree_table": (2, J)}
        for k, shape in expect.items():
            if V < 1 or J < 1 or arr[k].shape != shape:
                raise ModelFileError(f"{self.path}: {k} has shape {arr[k].shape}, expected {shape} "
                                     f"(V = {V} vertices, J = {J} joints)")
        if arr["f"].ndim != 2 or arr["f"].shape[1] != 3 or arr["f"].max() >= V:
            raise ModelFileError(f"{self.path}: f must be (F, 3) vertex indices < {V}, got {arr['f'].shape}")
        if arr["shapedirs"].ndim != 3 or arr["shapedirs"].shape[:2] != (V, 3):
            raise ModelFileError(f"{self.path}: shapedirs has shape {arr['shapedirs'].shape}, expected ({V}, 3, S)")
        if arr["posedirs"].shape != (V, 3, (J - 1) * 9):
            raise ModelFileError(f"{self.path}: posedirs has shape {arr['posedirs'].shape}, "
                                 f"expected ({V}, 3, {(J - 1) * 9})")
        for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
            if not np.isfinite(arr[k]).all():
                raise ModelFileError(f"{self.path}: {k} has non-finite values")
        return arr

    # -- interface ----------------------------------------------------------------------------------

    @property
    def faces(self) -> np.ndarray:
        return self._faces

    @property
    def uvs(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(uvs (T, 2) float32 v up, face_uvs (F, 3) int64) from the model file's ``vt`` / ``ft`` or the UV file
        downloaded with it (`uv_layouts`: smplx_uv.obj, FLAME_texture.npz, head_template_mesh.obj) beside it or in
        $DOPPEL_MODELS_DIR; None when there is none. (A UV file of another topology is refused when the model
        is loaded, naming the file.)"""
        return None if self._uv_layout is None else self._uv_layout[:2]

    @property
    def uv_source(self) -> str | None:
        """Where `uvs` came from (a file, or the model file's own arrays), None when there is no layout."""
        return None if self._uv_layout is None else self._uv_layout[2]

    @property
    def skeleton(self) -> Skeleton:
        joints = self._np["J_regressor"] @ self._np["v_template"]
        return Skeleton(list(self._joint_names), self._parents.copy(), joints)

    @property
    def skin_weights(self) -> SkinWeights:
        w = self._np["weights"]
        K = max(1, int((w > 0).sum(1).max()))
        order = np.argsort(-w, axis=1, kind="stable")[:, :K]
        return SkinWeights(order.astype(np.int64), np.take_along_axis(w, order, 1))

    @property
    def shape_names(self) -> list[str]:
        return [f"beta_{i:03d}" for i in range(self.num_betas)]

    @property
    def expression_names(self) -> list[str]:
        return [f"expression_{i:03d}" for i in range(self.num_expressions)]

    def forward(self, params: BodyParams | None = None) -> BodyOutput:
        """Pose through smplx's `lbs` (shape, expression, pose correctives, skinning). See BodyParams."""
        from smplx.lbs import batch_rigid_transform, blend_shapes, lbs, vertices2joints

        params = params or BodyParams()
        B = params.batch_size()
        dt, dev = self.dtype, self.device
        betas = self._batch(params.shape, self.num_betas, B, "shape")
        expr = self._batch(params.expression, self.num_expressions, B, "expression")
        if params.pose is None:
            rot = torch.eye(3, dtype=dt, device=dev).expand(B, self._J, 3, 3).contiguous()
        else:
            rot = rotations_to_matrices(params.pose.to(dtype=dt, device=dev), self._J,
                                        f"{self.name} pose").expand(B, self._J, 3, 3).contiguous()
        coeffs = torch.cat([betas, expr], dim=1)
        t = self._t
        verts, _ = lbs(coeffs, rot.reshape(B, -1, 9), t["v_template"], t["dirs"], t["posedirs"],
                       t["J_regressor"], t["parents"], t["weights"], pose2rot=False)
        rest_joints = vertices2joints(t["J_regressor"], t["v_template"] + blend_shapes(coeffs, t["dirs"]))
        posed_joints, _ = batch_rigid_transform(rot, rest_joints, t["parents"], dtype=dt)
        # batch_rigid_transform's relative transforms carry the rotations; the world rotation of a joint is
        # the product of its chain of local rotations (bind orientations are the identity).
        W = torch.zeros(B, self._J, 4, 4, dtype=dt, device=dev)
        W[..., 3, 3] = 1.0
        Rw = [rot[:, 0]]
        for j in range(1, self._J):
            Rw.append(Rw[int(self._parents[j])] @ rot[:, j])
        W[..., :3, :3] = torch.stack(Rw, dim=1)
        W[..., :3, 3] = posed_joints
        if params.root_translation is not None:
            tr = params.root_translation.to(dtype=dt, device=dev).expand(B, 3)
            verts = verts + tr[:, None]
            W[..., :3, 3] = W[..., :3, 3] + tr[:, None]
        return BodyOutput(vertices=verts, joints=W[..., :3, 3], joint_transforms=W)

    def bind_state(self, shape=None) -> BindState:
        betas = self.vector(shape, self.shape_names, 0.0, "shape")
        n = self._np
        v = n["v_template"] + n["shapedirs"] @ betas
        joints = n["J_regressor"] @ v
        bind = np.tile(np.eye(4), (self._J, 1, 1))
        bind[:, :3, 3] = joints
        expr = np.transpose(n["exprdirs"], (2, 0, 1))                     # (E, V, 3)
        expr_joints = np.einsum("jv,evc->ejc", n["J_regressor"], expr)    # (E, J, 3)
        P = n["posedirs"].shape[-1]
        corr = np.transpose(n["posedirs"], (2, 0, 1)).reshape(P, self._V, 3)
        return BindState(vertices=v, bind_matrices=bind, expression_deltas=expr, expression_joint_deltas=expr_joints,
                         corrective_joints=np.arange(1, self._J), corrective_deltas=corr)

    def _batch(self, x, n: int, B: int, what: str) -> torch.Tensor:
        if x is None:
            return torch.zeros(B, n, dtype=self.dtype, device=self.device)
        x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        if x.dim() != 2 or x.shape[1] != n:
            raise ValueError(f"{self.name}: {what} must be (B, {n}), got {tuple(x.shape)}")
        return x.expand(B, n)

    def shape_vector(self, betas: Mapping[str, float] | None) -> np.ndarray:
        return self.vector(betas, self.shape_names, 0.0, "shape")


class SMPLXModel(_SMPLFamily):
    """SMPL-X (55 joints, 10-300 betas, 10-100 expressions).

    path: the model file (SMPLX_NEUTRAL.npz / .pkl) or its folder; None = $DOPPEL_MODELS_DIR/smplx/.
    gender: "neutral", "male" or "female" (chooses the file in a folder).
    """

    name = "smplx"

    def __init__(self, path: str | os.PathLike | None = None, gender: str = "neutral", num_betas: int = 10,
                 num_expressions: int = 10, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        g = gender.upper()
        file = find_model_file("SMPL-X", path, gender, [f"SMPLX_{g}.npz", f"SMPLX_{g}.pkl"], "smplx",
                               "https://smpl-x.is.tue.mpg.de")
        super().__init__(file, num_betas, num_expressions, _smplx_joint_names(55), dtype, device)


class FLAMEModel(_SMPLFamily):
    """FLAME head model (5 joints: global, neck, jaw, eyes; 10-300 shape, 10-100 expression components).

    path: the model file (FLAME_NEUTRAL.pkl, generic_model.pkl, ...) or its folder; None =
    $DOPPEL_MODELS_DIR/flame/.
    """

    name = "flame"
    full_body = False

    def __init__(self, path: str | os.PathLike | None = None, gender: str = "neutral", num_betas: int = 10,
                 num_expressions: int = 10, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        g = gender.upper()
        file = find_model_file("FLAME", path, gender,
                               [f"FLAME_{g}.pkl", f"FLAME_{g}.npz", "generic_model.pkl", f"{gender.lower()}_model.pkl"],
                               "flame", "https://flame.is.tue.mpg.de")
        super().__init__(file, num_betas, num_expressions, FLAME_JOINT_NAMES, dtype, device)
