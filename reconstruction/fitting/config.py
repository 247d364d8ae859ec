"""The fitter's configuration (the CLI builds it; the library takes it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from reconstruction.scan_registration import BODY_JOINTS

# The multi-view fit's joints: the scan fit's minus Anny's pelvis.L/.R (root -> hip-joint bones). Rotating them
# moves the hip joints, and the fit traded that against the thighs' rotation (+-0.5 rad each, 30 mm errors on
# the legs of dev seeds 21-23) since the hip landmarks cannot tell them apart.
# SMPL-X's body joints (smplx's names; the root "pelvis" is always fitted) and FLAME's neck and jaw: the fit
# keeps the names the model has.
SMPLX_BODY_JOINTS = ("left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
                     "right_ankle", "spine3", "neck", "left_collar", "right_collar", "head", "left_shoulder",
                     "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw")
FIT_JOINTS = tuple(dict.fromkeys([j for j in BODY_JOINTS if not j.startswith("pelvis.")] + list(SMPLX_BODY_JOINTS)))


@dataclass
class FitConfig:
    # iterations per stage: rigid (root rotation + translation), body (shape + pose), face (expression),
    # all (everything together). A stage with 0 iterations is skipped.
    iters_rigid: int = 40
    iters_body: int = 300
    iters_face: int = 100
    iters_all: int = 100
    lr: float = 0.01                     # Adam learning rate (radians, phenotype units, metres)
    lr_rigid_factor: float = 0.1         # the rigid stage's learning rate is lr * this (the Kabsch start is close)
    lr_all_factor: float = 0.3           # the last stage (everything together) runs at lr * this
    joints: tuple[str, ...] = FIT_JOINTS   # joints whose rotation is optimised (unknown names ignored)
    robust_px: float = 16.0              # Geman-McClure scale of the reprojection error, pixels of a view 1024 px
    # on its long side; a view of another size gets it in proportion (losses.robust_px_at)
    w_landmarks: float = 1.0             # weight of the reprojection term (mean of robust px^2 / robust_px^2)
    w_silhouette: float = 0.0            # weight of the mean squared silhouette disagreement per pixel. Off by
    # default: at 1.0 it made the 16-view benchmark worse (42 mm vs 5-7 mm, docs/benchmarks.md); not tuned yet.
    silhouette_size: int = 192           # masks are compared at this long side (pixels); 0 = no silhouettes
    silhouette_sigma: float = 1.0        # softness of the rendered silhouette outline, pixels
    w_pose_prior: float = 3e-2           # sum of squared local rotations (radians^2) of the optimised joints
    w_joint_limits: float = 1.0          # squared excess of any rotation beyond joint_limit_rad
    joint_limit_rad: float = 2.0         # no local rotation may exceed this angle (radians)
    w_shape_prior: float = 1e-2          # squared distance of the shape from the model's neutral
    w_expression_prior: float = 3e-3     # squared expression weights (dev seeds 21-23: fewer false weights)
    expression_names: tuple[str, ...] = field(default_factory=tuple)  # () = all of the model's expressions
    # Session fits: "calibrated" = every MediaPipe set (pose, face mesh, hands) through the calibrated landmark
    # regressor (landmark_regressor.py); "joints" = the 21 pose landmarks at Anny joints / vertex rules
    # (landmarks.py); "auto" = calibrated where a regressor exists for the model, else joints.
    correspondences: str = "auto"
    landmark_embedding: str | None = None  # FLAME: its MediaPipe embedding .npz (None: beside the model file)
    # Total weight of each landmark set relative to the pose set (each landmark of a set of n gets
    # weight * 33 / n times its detector confidence).
    w_temporal: float = 1.0              # sequences: weight of the change from the previous frame's fit (see
    # fit_multiview's `previous`); 0 = frames fitted independently (still warm-started)
    temporal_translation_var_m2: float = 0.01   # the temporal term divides |t - t_prev|^2 by this ((0.1 m)^2)
    # Session fits: silhouette detail after the model fit (reconstruction/silhouette_detail.py): Adam iterations
    # (0 = none) and the long side of the compared masks, pixels.
    detail_iterations: int = 60
    detail_size: int = 256
    # Landmark sets the body stage sees (the face and all stages see every set): the sparse pose landmarks place
    # the limbs before the dense face-mesh and hand points join.
    body_stage_sets: tuple[str, ...] = ("pose", "hand.L", "hand.R")
    set_weights: dict[str, float] = field(default_factory=lambda: {"pose": 1.0, "face": 1.0, "hand.L": 0.5,
                                                                   "hand.R": 0.5})

    def __post_init__(self) -> None:
        """Check every field (library callers get the CLI's checks): ValueError naming the field."""
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("iters_") or f.name in ("silhouette_size", "detail_iterations", "detail_size"):
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise ValueError(f"FitConfig.{f.name} must be a non-negative integer, got {v!r}")
            elif isinstance(v, float | int) and not isinstance(v, bool):
                if not math.isfinite(v):
                    raise ValueError(f"FitConfig.{f.name} must be a finite number, got {v!r}")
                if v < 0:
                    raise ValueError(f"FitConfig.{f.name} must be >= 0, got {v!r}")
        for name in ("lr", "lr_rigid_factor", "lr_all_factor", "robust_px", "silhouette_sigma", "joint_limit_rad",
                     "temporal_translation_var_m2"):
            if not getattr(self, name) > 0:
                raise ValueError(f"FitConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.correspondences not in ("auto", "calibrated", "joints"):
            raise ValueError(f"FitConfig.correspondences must be auto, calibrated or joints, got "
                             f"{self.correspondences!r}")
        bad = {k: w for k, w in self.set_weights.items() if not (math.isfinite(w) and w >= 0)}
        if bad:
            raise ValueError(f"FitConfig.set_weights must be finite and >= 0, got {bad}")


def resolve_device(device: str, option: str = "--device") -> str:
    """'auto' (CUDA when available, else CPU), 'cpu' or 'cuda' -> 'cpu' or 'cuda'. 'cuda' on a machine
    without a usable CUDA device is a ValueError naming the option (not a crash deep in torch)."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"{option} must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{option} cuda: no CUDA device is available on this machine (torch "
                         f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use --device cpu or auto")
    return "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
