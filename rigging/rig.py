"""`Rig`: skeleton, bind mesh with UVs, sparse skin weights, blendshapes, optional pose correctives;
LBS and DQS posing; save/load as ``rig.npz`` + ``manifest.json``; validation.

Pose convention (the same as `reconstruction.body_models`): ``local_rotations`` are relative to the bind
pose, in each joint's own bind frame. With ``B_j`` the bind world matrices (Doppel frame: metres, +Y up,
facing +Z) the posed world matrices are

    W_root = [I | t] @ B_root @ [R_root | 0]          (t = root_translation, world offset in metres)
    W_c    = W_p @ (B_p^-1 @ B_c) @ [R_c | 0]

so identity rotations and t = 0 give the bind pose. That is the usual DCC convention (a joint's local
rotation in FBX / USD / glTF is its bind local rotation times R_c). `local_from_world_aligned` converts
rotations expressed in world axes (as many mocap files give them) to this convention.

Skinning transforms are ``T_j = W_j @ B_j^-1``. LBS: v' = sum_k w_k T_{j_k} v. DQS: the T_j as unit dual
quaternions, blended with signs aligned to each vertex's first influence, normalised, applied to v.
Before skinning, v = bind vertices + sum_n weight_n * blendshape_n + pose correctives.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rigging.skinning as skinning
from core.conventions import invalid_rotations, rotation_errors
from core.errors import DoppelError, ManifestError
from core.fileio import read_npz
from core.storage import atomic_write_bytes, read_manifest, sha256_file, write_manifest
from reconstruction.body_models.base import rotations_to_matrices
from rigging.skinning import LbsBackend, PosingState, SkinningMethod

log = logging.getLogger(__name__)

RIG_SCHEMA_VERSION = 1
RIG_FILE = "rig.npz"
RIG_STAGE = "rig"
# Tolerances of validate(), stated once.
WEIGHT_SUM_TOL = 1e-4          # |sum of a vertex's weights - 1|


class RigError(DoppelError):
    """A rig is invalid, or its files are missing, corrupted or of an unknown schema."""


@dataclass(eq=False)
class Rig:
    """A skinned, blendshaped character ready to pose and export. Arrays are numpy.

    joint_names: J unique names; parents: (J,) int64, -1 = root, parents[j] < j (topological order).
    bind_matrices: (J, 4, 4) float64 joint world matrices in the bind pose (rigid, Doppel frame, metres).
    vertices: (V, 3) float32 bind mesh, metres; faces: (F, 3) int64.
    uvs: (T, 2) float32 (v up) and face_uvs: (F, 3) int64, or both None.
    skin_indices: (V, K) int64 joint indices; skin_weights: (V, K) float32, rows sum to 1 (0 = unused slot).
    blendshape_names: N names; blendshape_deltas: (N, V, 3) float32 vertex offsets, metres.
    blendshape_joint_deltas: (N, J, 3) float32 or None: how each blendshape moves the bind joints
        (SMPL-X / FLAME expressions do; Anny's facial actions do not).
    corrective_joints: (P,) int64 or None; corrective_deltas: (P * 9, V, 3) float32 or None: vertex offsets
        per entry of (R_j - I) (row-major) of the local rotations of those joints (SMPL-style pose correctives).
    metadata: JSON-serialisable description (source model, parameters); written to the manifest.

    Posing caches the arrays as tensors per (device, dtype); call `clear_cache()` after editing arrays in place.
    """

    joint_names: list[str]
    parents: np.ndarray
    bind_matrices: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    skin_indices: np.ndarray
    skin_weights: np.ndarray
    uvs: np.ndarray | None = None
    face_uvs: np.ndarray | None = None
    blendshape_names: list[str] = field(default_factory=list)
    blendshape_deltas: np.ndarray | None = None
    blendshape_joint_deltas: np.ndarray | None = None
    corrective_joints: np.ndarray | None = None
    corrective_deltas: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.joint_names = [str(n) for n in self.joint_names]
        self.blendshape_names = [str(n) for n in self.blendshape_names]
        self.parents = np.asarray(self.parents, dtype=np.int64)
        self.bind_matrices = np.asarray(self.bind_matrices, dtype=np.float64)
        self.vertices = np.asarray(self.vertices, dtype=np.float32)
        self.faces = np.asarray(self.faces, dtype=np.int64)
        self.skin_indices = np.asarray(self.skin_indices, dtype=np.int64)
        self.skin_weights = np.asarray(self.skin_weights, dtype=np.float32)
        if self.uvs is not None:
            self.uvs = np.asarray(self.uvs, dtype=np.float32)
            self.face_uvs = np.asarray(self.face_uvs, dtype=np.int64)
        if self.blendshape_deltas is None:
            self.blendshape_deltas = np.zeros((0, len(self.vertices), 3), dtype=np.float32)
        self.blendshape_deltas = np.asarray(self.blendshape_deltas, dtype=np.float32)
        if self.blendshape_joint_deltas is not None:
            self.blendshape_joint_deltas = np.asarray(self.blendshape_joint_deltas, dtype=np.float32)
        if self.corrective_joints is not None:
            self.corrective_joints = np.asarray(self.corrective_joints, dtype=np.int64)
            self.corrective_deltas = np.asarray(self.corrective_deltas, dtype=np.float32)
        self._cache: dict[tuple[str, torch.dtype], PosingState] = {}

    def clear_cache(self) -> None:
        """Forget the tensors cached for posing (needed after editing the rig's arrays in place)."""
        self._cache.clear()

    def posing_state(self, device: torch.device, dtype: torch.dtype) -> PosingState:
        """The rig's arrays as tensors for posing on ``device`` in ``dtype`` (built once, then cached)."""
        key = (str(device), dtype)
        if key not in self._cache:
            self._cache[key] = skinning.posing_state(self, torch.device(device), dtype)
        return self._cache[key]

    # -- sizes and views ----------------------------------------------------------------------------

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    @property
    def bind_joints(self) -> np.ndarray:
        """(J, 3) float64 bind joint positions, metres."""
        return self.bind_matrices[:, :3, 3].copy()

    def joint_index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"rig has no joint {name!r} (joints: {', '.join(self.joint_names[:8])}, ...)") from None

    # -- building -----------------------------------------------------------------------------------

    @classmethod
    def from_body_model(cls, model, shape: Mapping[str, float] | Sequence[float] | np.ndarray | None = None,
                        top_k: int | None = None, feet_on_floor: bool | None = None) -> Rig:
        """The rig of a body model (reconstruction.body_models.BodyModel) for one shape.

        shape: the model's shape parameters ((S,) or name -> value; None = neutral). top_k: keep the k largest
        influences per vertex and renormalise (None = keep all of the model's influences, exact). feet_on_floor:
        the rig stands with its lowest bind vertex on y = 0, the ground plane of every DCC scene it is exported to
        (Anny's own origin is at the hips, 0.8 m above its feet); False keeps the model's own frame; None (default):
        True for a full body, False for a head model (FLAME)."""
        bind = model.bind_state(shape)
        if feet_on_floor if feet_on_floor is not None else getattr(model, "full_body", True):
            bind = _on_the_floor(bind)
        skin = model.skin_weights
        idx, w = skin.indices, skin.weights
        if top_k is not None:
            idx, w = _top_k(idx, w, top_k)
        uv = model.uvs
        shape_vec = model.vector(shape, model.shape_names, model.shape_default, "shape")
        meta = {"source": {"model": model.name, "rig": getattr(model, "rig", None),
                           "shape": dict(zip(model.shape_names, [round(float(x), 6) for x in shape_vec],
                                             strict=True)),
                           "top_k": top_k}}
        return cls(
            joint_names=model.skeleton.joint_names, parents=model.skeleton.parents,
            bind_matrices=bind.bind_matrices, vertices=bind.vertices, faces=model.faces,
            uvs=None if uv is None else uv[0], face_uvs=None if uv is None else uv[1],
            skin_indices=idx, skin_weights=w,
            blendshape_names=model.expression_names, blendshape_deltas=bind.expression_deltas,
            blendshape_joint_deltas=bind.expression_joint_deltas,
            corrective_joints=bind.corrective_joints, corrective_deltas=bind.corrective_deltas,
            metadata=meta,
        )

    # -- posing -------------------------------------------------------------------------------------

    def blendshape_vector(self, weights: Mapping[str, float]) -> np.ndarray:
        """(N,) float32 blendshape weights from name -> weight (missing names: 0)."""
        unknown = sorted(set(weights) - set(self.blendshape_names))
        if unknown:
            raise KeyError(f"rig has no blendshape(s) {unknown}")
        return np.array([float(weights.get(n, 0.0)) for n in self.blendshape_names], dtype=np.float32)

    def local_from_world_aligned(self, rotations: torch.Tensor) -> torch.Tensor:
        """rotations (B, J, 3, 3) relative to the bind pose but expressed in world axes -> (B, J, 3, 3) in each
        joint's bind frame (this rig's convention): R_local = Rb^T R_world Rb."""
        Rb = self.posing_state(rotations.device, rotations.dtype).bind_rot
        return Rb.transpose(-1, -2) @ rotations @ Rb

    def forward_kinematics(self, local_rotations, root_translation=None, blendshape_weights=None) -> torch.Tensor:
        """Posed joint world matrices (B, J, 4, 4). Arguments as in `pose`."""
        R, t, w, state = self._inputs(local_rotations, root_translation, blendshape_weights)
        A, wpos = skinning.fk(R, t, w, state)
        W = torch.zeros(*A.shape[:2], 4, 4, dtype=A.dtype, device=A.device)
        W[..., :3, :3] = A @ state.bind_rot
        W[..., :3, 3] = wpos
        W[..., 3, 3] = 1.0
        return W

    def pose(self, local_rotations, root_translation=None, blendshape_weights=None,
             method: SkinningMethod = "lbs", backend: LbsBackend = "auto") -> torch.Tensor:
        """Posed vertices (B, V, 3), metres, Doppel frame.

        local_rotations: (B, J, 3) axis-angle (radians) or (B, J, 3, 3) rotation matrices, relative to the bind
            pose in each joint's bind frame; torch or numpy. (J, 3) / (J, 3, 3) is taken as B = 1.
        root_translation: (B, 3) metres or None. blendshape_weights: (B, N) or None (all 0).
        method: "lbs" (linear blend skinning) or "dqs" (dual-quaternion skinning).
        backend (LBS): "auto" (the fused numba kernel on the CPU when no gradient is needed, else torch), "torch"
            (the differentiable reference path, any device) or "numba" (an error where it cannot run).
        Device and dtype follow local_rotations when it is a tensor (numpy input: float32, CPU).
        """
        if method not in ("lbs", "dqs"):
            raise ValueError(f"pose: method must be 'lbs' or 'dqs', got {method!r}")
        if backend not in skinning.LBS_BACKENDS:
            raise ValueError(f"pose: backend must be one of {skinning.LBS_BACKENDS}, got {backend!r}")
        R, t, w, state = self._inputs(local_rotations, root_translation, blendshape_weights)
        A, wpos = skinning.fk(R, t, w, state)
        h = skinning.bind_positions(w, state)                              # (B|1, J, 3)
        trans = wpos - (A @ h[..., None])[..., 0]                          # T_j = [A_j | w_j - A_j h_j]
        offsets = skinning.offsets(R, w, state)                            # (V_moved, 3, B) or None
        if method == "lbs":
            return skinning.lbs_with_backend(offsets, A, trans, state, backend)
        v = state.verts[None].expand(R.shape[0], -1, -1)
        if offsets is not None:
            v = v.index_add(1, state.moved_rows, offsets.permute(2, 0, 1))
        return skinning.dqs(v, A, trans, state)

    def _inputs(self, local_rotations, root_translation, blendshape_weights
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, PosingState]:
        """Checked pose inputs as tensors: R (B, J, 3, 3), t (B|1, 3) or None, w (B, N) or None, the state."""
        if isinstance(local_rotations, torch.Tensor):
            dev, dt = local_rotations.device, local_rotations.dtype
            if not dt.is_floating_point:
                raise ValueError(f"pose: local_rotations must be floating point, got {dt}")
        else:
            dev, dt = torch.device("cpu"), torch.float32
        J = self.num_joints
        R = torch.as_tensor(local_rotations, dtype=dt, device=dev)
        if R.shape in ((J, 3), (J, 3, 3)):
            R = R[None]
        R = rotations_to_matrices(R, J, "pose: local_rotations")
        B = R.shape[0]
        state = self.posing_state(dev, dt)
        t = None
        if root_translation is not None:
            t = torch.as_tensor(root_translation, dtype=dt, device=dev)
            if t.shape == (3,):
                t = t[None]
            if t.dim() != 2 or t.shape[1] != 3 or t.shape[0] not in (1, B):
                raise ValueError(f"pose: root_translation must be (B, 3) with B = {B}, got {tuple(t.shape)}")
        w = None
        if blendshape_weights is not None:
            w = torch.as_tensor(blendshape_weights, dtype=dt, device=dev)
            n = len(self.blendshape_names)
            if w.dim() == 1:
                w = w[None]
            if w.dim() != 2 or w.shape[1] != n or w.shape[0] not in (1, B):
                raise ValueError(f"pose: blendshape_weights must be (B, {n}) with B = {B}, got {tuple(w.shape)}")
            w = w.expand(B, n)
        return R, t, w, state


    def validate(self) -> Rig:
        """Check the rig; raises RigError listing every problem with where it is. Returns self."""
        problems: list[str] = []
        J, V = self.num_joints, self.num_vertices
        names = self.joint_names
        if J == 0:
            problems.append("skeleton: no joints")
        if len(set(names)) != J:
            dup = sorted({n for n in names if names.count(n) > 1})
            problems.append(f"joint_names: duplicated {dup[:5]}")
        if self.parents.shape != (J,):
            problems.append(f"parents: shape {self.parents.shape}, expected ({J},)")
        else:
            bad = [j for j, p in enumerate(self.parents) if not (-1 <= p < j)]
            if bad:
                j = bad[0]
                problems.append(f"parents: {len(bad)} joint(s) not in topological order or with an invalid parent "
                                f"(joint {j} {names[j]!r} has parent {int(self.parents[j])}; parents must be -1 or "
                                f"an earlier joint, which also rules out cycles)")
            if J and self.parents[0] != -1:
                problems.append(f"parents: the first joint {names[0]!r} must be a root (-1)")
        if self.bind_matrices.shape != (J, 4, 4):
            problems.append(f"bind_matrices: shape {self.bind_matrices.shape}, expected ({J}, 4, 4)")
        else:
            M = self.bind_matrices
            if not np.isfinite(M).all():
                problems.append(f"bind_matrices: non-finite values at joint(s) {_first(~np.isfinite(M).all((1, 2)))}")
            else:
                R = M[:, :3, :3]
                err, _ = rotation_errors(R)
                det = np.linalg.det(R)
                bad = invalid_rotations(R) | \
                    (np.abs(M[:, 3] - [0, 0, 0, 1]).max(1) > 1e-9)
                if bad.any():
                    j = int(np.argmax(bad))
                    problems.append(f"bind_matrices: {int(bad.sum())} joint(s) not rigid (joint {j} {names[j]!r}: "
                                    f"|R^T R - I| = {err[j]:.2e}, det = {det[j]:.4f})")
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            problems.append(f"vertices: shape {self.vertices.shape}, expected (V, 3)")
        elif not np.isfinite(self.vertices).all():
            problems.append(f"vertices: non-finite values at vertex {_first(~np.isfinite(self.vertices).all(1))}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            problems.append(f"faces: shape {self.faces.shape}, expected (F, 3)")
        elif self.faces.size and (self.faces.min() < 0 or self.faces.max() >= V):
            problems.append(f"faces: indices outside [0, {V}) (min {self.faces.min()}, max {self.faces.max()})")
        if (self.uvs is None) != (self.face_uvs is None):
            problems.append("uvs/face_uvs: give both or neither")
        elif self.uvs is not None:
            if self.uvs.ndim != 2 or self.uvs.shape[1] != 2 or not np.isfinite(self.uvs).all():
                problems.append(f"uvs: expected finite (T, 2), got shape {self.uvs.shape}")
            if self.face_uvs.shape != self.faces.shape:
                problems.append(f"face_uvs: shape {self.face_uvs.shape}, expected {self.faces.shape} (as faces)")
            elif self.face_uvs.size and (self.face_uvs.min() < 0 or self.face_uvs.max() >= len(self.uvs)):
                problems.append(f"face_uvs: indices outside [0, {len(self.uvs)})")
        problems += self._validate_skin(J, V)
        N = len(self.blendshape_names)
        if len(set(self.blendshape_names)) != N:
            problems.append("blendshape_names: duplicated names")
        if self.blendshape_deltas.shape != (N, V, 3):
            problems.append(f"blendshape_deltas: shape {self.blendshape_deltas.shape}, expected ({N}, {V}, 3)")
        elif not np.isfinite(self.blendshape_deltas).all():
            bad = ~np.isfinite(self.blendshape_deltas).all((1, 2))
            problems.append(f"blendshape_deltas: non-finite values in {self.blendshape_names[_first(bad)]!r}")
        if self.blendshape_joint_deltas is not None and (self.blendshape_joint_deltas.shape != (N, J, 3)
                                                         or not np.isfinite(self.blendshape_joint_deltas).all()):
            problems.append(f"blendshape_joint_deltas: expected finite ({N}, {J}, 3), got "
                            f"{self.blendshape_joint_deltas.shape}")
        if (self.corrective_joints is None) != (self.corrective_deltas is None):
            problems.append("corrective_joints/corrective_deltas: give both or neither")
        elif self.corrective_joints is not None:
            P = len(self.corrective_joints)
            if P and (self.corrective_joints.min() < 0 or self.corrective_joints.max() >= J):
                problems.append(f"corrective_joints: indices outside [0, {J})")
            if self.corrective_deltas.shape != (P * 9, V, 3) or not np.isfinite(self.corrective_deltas).all():
                problems.append(f"corrective_deltas: expected finite ({P * 9}, {V}, 3), got "
                                f"{self.corrective_deltas.shape}")
        if problems:
            raise RigError("invalid rig: " + "; ".join(problems))
        return self

    def _validate_skin(self, J: int, V: int) -> list[str]:
        idx, w = self.skin_indices, self.skin_weights
        if idx.ndim != 2 or idx.shape != w.shape or idx.shape[0] != V:
            return [f"skin_indices/skin_weights: shapes {idx.shape} / {w.shape}, expected equal (V={V}, K)"]
        out = []
        if not np.isfinite(w).all():
            return [f"skin_weights: non-finite values at vertex {_first(~np.isfinite(w).all(1))}"]
        used = w > 0
        if ((idx < 0) | (idx >= J))[used].any():
            v = _first(((idx < 0) | (idx >= J)) & used)
            out.append(f"skin_indices: joint index outside [0, {J}) at vertex {v}")
        if (w < 0).any():
            out.append(f"skin_weights: negative weights at vertex {_first((w < 0).any(1))}")
        s = w.astype(np.float64).sum(1)
        none = ~used.any(1)
        if none.any():
            out.append(f"skin_weights: {int(none.sum())} vertices have no influence (first: vertex {_first(none)})")
        off = np.abs(s - 1) > WEIGHT_SUM_TOL
        if off.any():
            v = _first(off)
            out.append(f"skin_weights: {int(off.sum())} vertices' weights do not sum to 1 (vertex {v}: {s[v]:.6f})")
        return out

    # -- files --------------------------------------------------------------------------------------

    def save(self, directory: str | Path, extra_outputs: Mapping[str, str] | None = None,
             params: Mapping[str, Any] | None = None, inputs: Mapping[str, str | Path] | None = None) -> Path:
        """Write ``directory/rig.npz`` and ``directory/manifest.json`` (atomic; the folder is created).
        extra_outputs: name -> file already written in ``directory`` to list (and hash) in the manifest;
        inputs: name -> input file (e.g. a model file) hashed into the manifest; params: recorded parameters
        (default: ``metadata``). Returns the folder."""
        self.validate()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "schema_version": np.array(RIG_SCHEMA_VERSION, dtype=np.int64),
            "joint_names": np.array(self.joint_names, dtype=np.str_),
            "parents": self.parents, "bind_matrices": self.bind_matrices,
            "vertices": self.vertices, "faces": self.faces,
            "skin_indices": self.skin_indices, "skin_weights": self.skin_weights,
            "blendshape_names": np.array(self.blendshape_names, dtype=np.str_).reshape(-1),
            "blendshape_deltas": self.blendshape_deltas,
        }
        for k in ("uvs", "face_uvs", "blendshape_joint_deltas", "corrective_joints", "corrective_deltas"):
            if getattr(self, k) is not None:
                arrays[k] = getattr(self, k)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(d / RIG_FILE, buf.getvalue())
        outputs = {"rig": RIG_FILE, **dict(extra_outputs or {})}
        summary = {"schema_version": RIG_SCHEMA_VERSION, "joints": self.num_joints, "vertices": self.num_vertices,
                   "triangles": int(len(self.faces)), "influences_per_vertex": int(self.skin_indices.shape[1]),
                   "blendshapes": len(self.blendshape_names), "has_uvs": self.uvs is not None,
                   "pose_correctives": 0 if self.corrective_joints is None else int(len(self.corrective_joints)),
                   "frame": "metres, right-handed, +Y up, facing +Z",
                   "pose_convention": "local rotations relative to the bind pose, in each joint's bind frame"}
        write_manifest(d, RIG_STAGE, inputs=inputs, params=dict(params or self.metadata), outputs=outputs,
                       extra={"rig": summary, "rig_schema_version": RIG_SCHEMA_VERSION})
        return d

    @classmethod
    def load(cls, directory: str | Path) -> Rig:
        """Read a rig written by `save`; checks the manifest, the schema version, the file hash, then validates."""
        d = Path(directory)
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: rig folder does not exist")
        try:
            manifest = read_manifest(d)
        except ManifestError as e:
            raise RigError(str(e)) from e
        mpath = d / "manifest.json"
        if manifest.get("stage") != RIG_STAGE:
            raise RigError(f"{mpath}: stage {manifest.get('stage')!r}, expected {RIG_STAGE!r} (not a rig folder)")
        version = manifest.get("rig_schema_version")
        if version != RIG_SCHEMA_VERSION:
            raise RigError(f"{mpath}: rig_schema_version {version!r}, this Doppel reads {RIG_SCHEMA_VERSION}")
        path = d / RIG_FILE
        if not path.is_file():
            raise RigError(f"{path}: missing (the manifest lists it)")
        entry = manifest.get("outputs", {}).get("rig")
        if not entry or entry.get("sha256") != sha256_file(path):
            raise RigError(f"{path}: content does not match the SHA-256 in {mpath} (modified or corrupted)")
        try:
            data = read_npz(path, "rig archive")
        except ValueError as e:
            raise RigError(str(e)) from e
        required = ("schema_version", "joint_names", "parents", "bind_matrices", "vertices", "faces",
                    "skin_indices", "skin_weights", "blendshape_names", "blendshape_deltas")
        missing = [k for k in required if k not in data]
        if missing:
            raise RigError(f"{path}: missing arrays {missing}")
        if int(data["schema_version"]) != RIG_SCHEMA_VERSION:
            raise RigError(f"{path}: schema_version {int(data['schema_version'])}, expected {RIG_SCHEMA_VERSION}")
        rig = cls(
            joint_names=data["joint_names"].tolist(), parents=data["parents"], bind_matrices=data["bind_matrices"],
            vertices=data["vertices"], faces=data["faces"], skin_indices=data["skin_indices"],
            skin_weights=data["skin_weights"], uvs=data.get("uvs"), face_uvs=data.get("face_uvs"),
            blendshape_names=data["blendshape_names"].tolist(), blendshape_deltas=data["blendshape_deltas"],
            blendshape_joint_deltas=data.get("blendshape_joint_deltas"),
            corrective_joints=data.get("corrective_joints"), corrective_deltas=data.get("corrective_deltas"),
            metadata=dict(manifest.get("params", {})),
        )
        try:
            return rig.validate()
        except RigError as e:
            raise RigError(f"{path}: {e}") from e



def _on_the_floor(bind):
    """A body model's BindState moved up so that its lowest vertex is at y = 0 (vertices and joint positions;
    deltas are offsets and stay)."""
    import dataclasses

    floor = float(np.asarray(bind.vertices)[:, 1].min())
    verts = np.array(bind.vertices, dtype=np.float64, copy=True)
    mats = np.array(bind.bind_matrices, dtype=np.float64, copy=True)
    verts[:, 1] -= floor
    mats[:, 1, 3] -= floor
    return dataclasses.replace(bind, vertices=verts, bind_matrices=mats)

def _top_k(idx: np.ndarray, w: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the k largest weights per vertex, renormalised. idx, w (V, K) -> (V, min(k, K))."""
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= idx.shape[1]:
        return idx, w
    order = np.argsort(-w, axis=1, kind="stable")[:, :k]
    idx_k = np.take_along_axis(idx, order, 1)
    w_k = np.take_along_axis(w, order, 1).astype(np.float64)
    w_k = w_k / w_k.sum(1, keepdims=True)
    return idx_k, w_k


def _first(mask: np.ndarray) -> int:
    mask = np.asarray(mask)
    return int(np.argwhere(mask)[0][0])
