"""Correspondences between 2D landmark sets and a body model's joints and vertices.

MediaPipe pose's 33 landmarks (indices as in ``mediapipe.solutions.pose.PoseLandmark``; "left" is the
person's left) map onto Anny's bone heads where a joint sits at the anatomical point (shoulders, elbows,
wrists, hips, knees, ankles, eyes) and onto template vertices elsewhere (nose tip, ears, heels, toe tips),
chosen geometrically on the neutral template. The joint centres of a body model and MediaPipe's points are
not the same anatomical definition (MediaPipe's hip is lateral of the joint centre, for one): that bias is
not modelled here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# MediaPipe pose index -> Anny bone whose head is the landmark.
MEDIAPIPE_POSE_TO_ANNY: dict[int, str] = {
    2: "eye.L", 5: "eye.R",
    11: "upperarm01.L", 12: "upperarm01.R", 13: "lowerarm01.L", 14: "lowerarm01.R", 15: "wrist.L", 16: "wrist.R",
    23: "upperleg01.L", 24: "upperleg01.R", 25: "lowerleg01.L", 26: "lowerleg01.R", 27: "foot.L", 28: "foot.R",
}
# MediaPipe pose index -> SMPL-X joint (smplx's joint names; "left" is the person's left).
MEDIAPIPE_POSE_TO_SMPLX: dict[int, str] = {
    2: "left_eye_smplhf", 5: "right_eye_smplhf", 11: "left_shoulder", 12: "right_shoulder", 13: "left_elbow",
    14: "right_elbow", 15: "left_wrist", 16: "right_wrist", 23: "left_hip", 24: "right_hip", 25: "left_knee",
    26: "right_knee", 27: "left_ankle", 28: "right_ankle", 31: "left_foot", 32: "right_foot",
}
FLAME_EMBEDDING_FILE = "mediapipe_landmark_embedding.npz"   # FLAME's MediaPipe embedding (flame.is.tue.mpg.de)

# MediaPipe pose index -> a geometric rule on the neutral template ('nose', 'ear.L', 'heel.L', 'toe.L', ...).
MEDIAPIPE_POSE_VERTEX_RULES: dict[int, str] = {0: "nose", 7: "ear.L", 8: "ear.R", 29: "heel.L", 30: "heel.R",
                                               31: "toe.L", 32: "toe.R"}


RELIABILITY_SCALE_MM = 10.0   # calibration error at which a landmark's prior weight is halved


@dataclass(frozen=True)
class LandmarkSpec:
    """L landmarks, each a joint or a vertex of the model.

    ids (L,) int: the landmark ids of the 2D detector (e.g. MediaPipe pose indices; landmark_regressor.py
    for the id space of several sets) in the order of the observations' columns; joint_index (L,) int64, -1
    where the landmark is not a joint; vertex_index (L,) int64, -1 where it is not a vertex; names (L,) for
    reports. reg_index, reg_weight (L, K): where both indices are -1, the landmark is sum_k reg_weight[l, k] *
    vertex[reg_index[l, k]] (a calibrated regressor; None when no landmark uses one). reliability (L,) in
    (0, 1] or None (all 1): a prior weight per landmark (calibrated landmarks: 1 / (1 + (e / 10 mm)^2) with e
    the calibration's leave-one-actor-out error), multiplied into the observations' confidences."""

    ids: np.ndarray
    joint_index: np.ndarray
    vertex_index: np.ndarray
    names: list[str]
    reg_index: np.ndarray | None = None
    reg_weight: np.ndarray | None = None
    reliability: np.ndarray | None = None

    def subset(self, keep) -> LandmarkSpec:
        """The landmarks at positions ``keep`` (indices or a boolean mask), in that order."""
        keep = np.arange(len(self.ids))[np.asarray(keep)]
        pick = lambda a: None if a is None else a[keep]  # noqa: E731
        return LandmarkSpec(ids=self.ids[keep], joint_index=self.joint_index[keep],
                            vertex_index=self.vertex_index[keep], names=[self.names[i] for i in keep],
                            reg_index=pick(self.reg_index), reg_weight=pick(self.reg_weight),
                            reliability=pick(self.reliability))

    def __len__(self) -> int:
        return len(self.ids)

    def joined(self, other: LandmarkSpec) -> LandmarkSpec:
        """This spec's landmarks followed by ``other``'s (e.g. a model's pose joints and its face-mesh points)."""
        both = (self, other)
        K = max((a.reg_index.shape[1] for a in both if a.reg_index is not None), default=0)

        def stacked(what: str, dtype, fill: float):
            parts = [np.full((len(a), K), fill, dtype) if getattr(a, what) is None else
                     np.pad(np.asarray(getattr(a, what), dtype), ((0, 0), (0, K - getattr(a, what).shape[1])))
                     for a in both]
            return np.concatenate(parts) if K else None

        rel = None if all(a.reliability is None for a in both) else \
            np.concatenate([np.ones(len(a)) if a.reliability is None else a.reliability for a in both])
        return LandmarkSpec(ids=np.r_[self.ids, other.ids], joint_index=np.r_[self.joint_index, other.joint_index],
                            vertex_index=np.r_[self.vertex_index, other.vertex_index],
                            names=list(self.names) + list(other.names), reg_index=stacked("reg_index", np.int64, 0),
                            reg_weight=stacked("reg_weight", np.float64, 0.0), reliability=rel)


def _vertex_rule(rule: str, verts: np.ndarray, joints: dict[str, np.ndarray]) -> int:
    """A template vertex (index) for a geometric rule, on the neutral template (Doppel frame, facing +Z)."""
    side = 1.0 if rule.endswith(".L") else -1.0      # the person's left is +X when facing +Z
    if rule == "nose":
        near = np.linalg.norm(verts - joints["head"], axis=1) < 0.16
        cand = np.nonzero(near & (verts[:, 1] > joints["eye.L"][1] - 0.08))[0]
        return int(cand[np.argmax(verts[cand, 2])])
    if rule.startswith("ear"):
        near = np.linalg.norm(verts - joints["head"], axis=1) < 0.16
        cand = np.nonzero(near & (np.abs(verts[:, 1] - joints["eye.L"][1]) < 0.03))[0]
        return int(cand[np.argmax(side * verts[cand, 0])])
    foot = joints["foot" + rule[-2:]]
    near = np.nonzero((np.linalg.norm(verts - foot, axis=1) < 0.3) & (verts[:, 1] < foot[1]))[0]
    if rule.startswith("heel"):
        return int(near[np.argmin(verts[near, 2])])
    if rule.startswith("toe"):
        return int(near[np.argmax(verts[near, 2])])
    raise ValueError(f"unknown landmark rule {rule!r}")


def landmark_spec(model, ids: list[int] | None = None, extra_vertices: dict[int, int] | None = None) -> LandmarkSpec:
    """The MediaPipe-pose correspondences of ``model`` (Anny; SMPL-X/FLAME have no table yet: ValueError).

    ids: the MediaPipe pose indices the observations carry (default: every mapped index, sorted).
    extra_vertices: more landmarks as {id: vertex index} (e.g. face points of a dense face tracker), appended.
    """
    if model.name == "smplx":
        return _joint_table_spec(model, MEDIAPIPE_POSE_TO_SMPLX, ids)
    if model.name != "anny":
        raise ValueError(f"no MediaPipe-pose correspondences for {model.name!r} (anny and smplx have them; FLAME "
                         f"uses the face mesh: flame_face_spec)")
    names = model.pose_names
    from reconstruction.body_models import BodyParams

    with torch.no_grad():
        out = model.forward(BodyParams())
    verts = out.vertices[0].double().cpu().numpy()
    jpos = {n: p for n, p in zip(names, out.joints[0].double().cpu().numpy(), strict=True)}
    table: dict[int, tuple[int, int, str]] = {}
    for i, bone in MEDIAPIPE_POSE_TO_ANNY.items():
        table[i] = (names.index(bone), -1, bone)
    for i, rule in MEDIAPIPE_POSE_VERTEX_RULES.items():
        table[i] = (-1, _vertex_rule(rule, verts, jpos), rule)
    for i, v in (extra_vertices or {}).items():
        if not 0 <= int(v) < len(verts):
            raise ValueError(f"landmark {i}: vertex index {v} out of range [0, {len(verts)})")
        table[int(i)] = (-1, int(v), f"vertex {int(v)}")
    ids = sorted(table) if ids is None else list(ids)
    unknown = [i for i in ids if i not in table]
    if unknown:
        raise ValueError(f"landmark ids {unknown} have no correspondence on {model.name}")
    return LandmarkSpec(ids=np.asarray(ids, np.int64), joint_index=np.array([table[i][0] for i in ids], np.int64),
                        vertex_index=np.array([table[i][1] for i in ids], np.int64), names=[table[i][2] for i in ids])


def _joint_table_spec(model, table: dict[int, str], ids) -> LandmarkSpec:
    names = model.pose_names
    have = {i: j for i, j in table.items() if j in names}
    ids = sorted(have) if ids is None else list(ids)
    unknown = [i for i in ids if i not in have]
    if unknown:
        raise ValueError(f"landmark ids {unknown} have no correspondence on {model.name}")
    return LandmarkSpec(ids=np.asarray(ids, np.int64), joint_index=np.array([names.index(have[i]) for i in ids]),
                        vertex_index=np.full(len(ids), -1, np.int64), names=[have[i] for i in ids])


def flame_embedding_places(folders) -> list:
    """Where FLAME's MediaPipe embedding is looked for, in order: ``folders``' FLAME_EMBEDDING_FILE, then
    $DOPPEL_MODELS_DIR/flame/'s (when that is set). Paths, existing or not."""
    from pathlib import Path

    from reconstruction.body_models.base import models_dir

    roots = [Path(f) for f in folders] + [d for d in (models_dir("flame"),) if d is not None]
    return [r / FLAME_EMBEDDING_FILE for r in roots]


def flame_face_spec(model, embedding=None) -> LandmarkSpec:
    """MediaPipe face-mesh landmarks on FLAME through FLAME's own MediaPipe embedding (105 landmarks, each a
    point on a FLAME triangle: ``lmk_face_idx`` (L,), barycentric ``lmk_b_coords`` (L, 3), MediaPipe ids
    ``landmark_indices`` (L,)). embedding: the .npz, or None: ``mediapipe_landmark_embedding.npz`` beside the
    FLAME model file, else in $DOPPEL_MODELS_DIR/flame/. Ids are landmark_regressor.py's face ids (1000 + i).
    FileNotFoundError saying where it was looked for and how to get it; ValueError for a malformed file."""
    import zipfile
    from pathlib import Path

    from reconstruction.fitting.landmark_regressor import SET_OFFSETS

    candidates = [Path(embedding)] if embedding is not None else \
        flame_embedding_places([Path(getattr(model, "path", ".")).parent])
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise FileNotFoundError(
            f"FLAME's MediaPipe landmark embedding not found (looked for {', '.join(str(c) for c in candidates)}): "
            f"download 'MediaPipe landmark embedding' from https://flame.is.tue.mpg.de (Downloads), unzip "
            f"{FLAME_EMBEDDING_FILE} beside the FLAME model or into $DOPPEL_MODELS_DIR/flame/, or pass its path")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:     # pickled, truncated or not an .npz
        raise ValueError(f"{path}: not a readable plain-array .npz ({type(e).__name__}: {e})") from e
    need = ("lmk_face_idx", "lmk_b_coords", "landmark_indices")
    if any(k not in d for k in need):
        raise ValueError(f"{path}: a FLAME MediaPipe embedding needs {list(need)}, found {sorted(d)}")
    fi = np.asarray(d["lmk_face_idx"], np.int64).reshape(-1)
    bc = np.asarray(d["lmk_b_coords"], np.float64).reshape(len(fi), -1)
    mp = np.asarray(d["landmark_indices"], np.int64).reshape(-1)
    faces = np.asarray(model.faces, np.int64)
    if bc.shape != (len(fi), 3) or len(mp) != len(fi):
        raise ValueError(f"{path}: lmk_face_idx {fi.shape}, lmk_b_coords {bc.shape} and landmark_indices {mp.shape} "
                         f"must describe the same L landmarks (L,), (L, 3), (L,)")
    if len(fi) and (fi.min() < 0 or fi.max() >= len(faces) or mp.min() < 0 or mp.max() >= 478):
        raise ValueError(f"{path}: face indices must be in [0, {len(faces)}) and MediaPipe ids in [0, 478)")
    order = np.argsort(mp, kind="stable")
    L = len(fi)
    return LandmarkSpec(ids=SET_OFFSETS["face"] + mp[order], joint_index=np.full(L, -1, np.int64),
                        vertex_index=np.full(L, -1, np.int64), names=[f"face {int(i)}" for i in mp[order]],
                        reg_index=faces[fi[order]], reg_weight=bc[order] / bc[order].sum(1, keepdims=True))


def calibrated_spec(model, ids=None, regressor=None) -> LandmarkSpec:
    """Every landmark through a calibrated regressor (landmark_regressor.py): ``regressor`` or the one shipped
    for ``model`` (ValueError when there is none). ids: the landmark ids to use, in order (default: all the
    regressor has, sorted)."""
    from reconstruction.fitting.landmark_regressor import default_regressor, landmark_set

    reg = regressor if regressor is not None else default_regressor(model)
    if reg is None:
        raise ValueError(f"no calibrated landmark regressor for {model.name!r} (scripts/calibrate_landmarks.py "
                         f"makes one)")
    if reg.num_vertices != model.num_vertices:
        raise ValueError(f"the landmark regressor was made for {reg.num_vertices} vertices; {model.name} has "
                         f"{model.num_vertices}")
    ids = np.sort(reg.ids) if ids is None else np.asarray(ids, np.int64)
    rows = reg.rows(ids)
    L = len(ids)
    names = [f"{landmark_set(int(i))} {int(i) % 1000}" for i in ids]
    res = np.nan_to_num(reg.residual_mm[rows], nan=RELIABILITY_SCALE_MM)
    return LandmarkSpec(ids=ids, joint_index=np.full(L, -1, np.int64), vertex_index=np.full(L, -1, np.int64),
                        names=names, reg_index=reg.index[rows], reg_weight=reg.weight[rows],
                        reliability=1.0 / (1.0 + (res / RELIABILITY_SCALE_MM) ** 2))


def model_landmarks(vertices: torch.Tensor, joints: torch.Tensor, spec: LandmarkSpec) -> torch.Tensor:
    """vertices (B, V, 3), joints (B, J, 3) -> (B, L, 3) landmark positions (metres), differentiable."""
    dev = vertices.device
    is_joint = torch.as_tensor(spec.joint_index >= 0, device=dev)
    ji = torch.as_tensor(np.maximum(spec.joint_index, 0), device=dev)
    vi = torch.as_tensor(np.maximum(spec.vertex_index, 0), device=dev)
    out = torch.where(is_joint[None, :, None], joints[:, ji], vertices[:, vi])
    if spec.reg_index is None:
        return out
    is_reg = torch.as_tensor((spec.joint_index < 0) & (spec.vertex_index < 0), device=dev)
    ri = torch.as_tensor(spec.reg_index, device=dev)
    rw = torch.as_tensor(spec.reg_weight, device=dev, dtype=vertices.dtype)
    reg = (rw[None, :, :, None] * vertices[:, ri]).sum(2)                      # (B, L, 3)
    return torch.where(is_reg[None, :, None], reg, out)
