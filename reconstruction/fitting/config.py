"""The fitter's configuration (the CLI builds it; the library takes it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconstruction.scan_registration import BODY_JOINTS


@dataclass
class FitConfig:
    # iterations per stage: rigid (root rotation + translation), body (shape + pose), face (expression),
    # all (everything together). A stage with 0 iterations is skipped.
    iters_rigid: int = 40
    iters_body: int = 80
    iters_face: int = 30
    iters_all: int = 30
    lr: float = 0.01                     # Adam learning rate (radians, phenotype units, metres)
    joints: tuple[str, ...] = BODY_JOINTS  # joints whose rotation is optimised (unknown names ignored)
    robust_px: float = 16.0              # Geman-McClure scale of the reprojection error, pixels
    w_landmarks: float = 1.0             # weight of the reprojection term (mean of robust px^2 / robust_px^2)
    w_silhouette: float = 0.0            # weight of the mean squared silhouette disagreement per pixel. Off by
    # default: at 1.0 it made the 16-view benchmark worse (42 mm vs 5-7 mm, docs/benchmarks.md); not tuned yet.
    silhouette_size: int = 192           # masks are compared at this long side (pixels); 0 = no silhouettes
    silhouette_sigma: float = 1.0        # softness of the rendered silhouette outline, pixels
    w_pose_prior: float = 1e-3           # sum of squared local rotations (radians^2) of the optimised joints
    w_joint_limits: float = 1.0          # squared excess of any rotation beyond joint_limit_rad
    joint_limit_rad: float = 2.0         # no local rotation may exceed this angle (radians)
    w_shape_prior: float = 1e-2          # squared distance of the shape from the model's neutral
    w_expression_prior: float = 1e-3     # squared expression weights
    expression_names: tuple[str, ...] = field(default_factory=tuple)  # () = all of the model's expressions
