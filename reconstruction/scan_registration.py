"""Registration of a body model to a raw scan or point cloud (photogrammetry export, Poisson mesh).

Three steps, each usable alone:

1. ``rigid_align``: centroid + turns about +Y (or principal-axes) initialisation, each candidate
   refined by open3d's point-to-plane ICP -> a 4x4 world transform of the template onto the scan.
2. ``fit_model_to_scan``: the body model's shape, pose and global transform optimised (Adam, torch) to
   minimise a robust two-sided chamfer distance to the scan (nearest neighbours from scipy's cKDTree,
   re-queried every iteration), with pose and shape priors; then (``refine_iterations``, issue 22) ICP rounds:
   closest points both ways fixed per round, robust point-to-plane + correspondences solved by L-BFGS.
3. ``nonrigid_register``: optimal-step non-rigid ICP (Amberg et al. 2007, trimesh's ``nricp_amberg``) of
   the fitted template onto the scan: per-vertex affine transforms with a stiffness term that is relaxed
   step by step. The template's topology and UVs are kept (only vertex positions change).
4. ``nonrigid_anchored`` (issue 22): the non-rigid stage that keeps correspondence: point-to-plane data,
   a membrane stiffness schedule, anchors (``ScanCorrespondences``: scan landmarks through the calibrated
   regressor, control points) and a penalty on sliding along the model fit's surface; reports the sliding.

Correspondences (``ScanCorrespondences``) also give the rigid start (``rigid_from_correspondences``) and a
term of the model fit (``fit_model_to_scan(..., correspondences=...)``); scan_pipeline.py chains it all.

Units: metres, Doppel's frame (+Y up). Scans are trimesh/open3d-readable ``.ply`` / ``.obj`` files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from core.errors import DoppelError
from reconstruction.scan_units import scan_unit_scale

log = logging.getLogger(__name__)

__all__ = ["Scan", "ScanError", "load_scan", "check_scan", "RigidResult", "rigid_align", "ScanFitConfig",
           "ScanCorrespondences", "correspondences_from_landmarks", "rigid_from_correspondences", "ScanFitResult",
           "fit_model_to_scan", "nonrigid_register", "surface_distance", "BODY_JOINTS",
           "NonrigidConfig", "NonrigidResult", "nonrigid_anchored", "start_vertices"]

# Joints whose rotation the scan and multi-view fits optimise (the rest stay at the bind pose): the
# trunk, neck, head, limbs and feet. Fingers and toes are left to the detail/non-rigid stages.
BODY_JOINTS = ("root", "pelvis.L", "pelvis.R", "upperleg01.L", "upperleg02.L", "lowerleg01.L", "lowerleg02.L",
               "foot.L", "upperleg01.R", "upperleg02.R", "lowerleg01.R", "lowerleg02.R", "foot.R", "spine05",
               "spine04", "spine03", "spine02", "spine01", "clavicle.L", "shoulder01.L", "upperarm01.L",
               "upperarm02.L", "lowerarm01.L", "lowerarm02.L", "wrist.L", "clavicle.R", "shoulder01.R",
               "upperarm01.R", "upperarm02.R", "lowerarm01.R", "lowerarm02.R", "wrist.R", "neck01", "neck02",
               "neck03", "head")

# Joints a scanning stance rarely moves (shoulder girdle, spine segments, hips, the twist bones): a prior keeps
# the pose's motion on the main limb joints rather than spread along the chain (which slides the skin).
STIFF_JOINTS = ("pelvis.L", "pelvis.R", "upperleg02.L", "lowerleg02.L", "upperleg02.R", "lowerleg02.R", "spine05",
                "spine04", "spine03", "spine02", "spine01", "clavicle.L", "shoulder01.L", "upperarm02.L",
                "lowerarm02.L", "clavicle.R", "shoulder01.R", "upperarm02.R", "lowerarm02.R", "neck01", "neck03")

# Share of the correspondence weight of each landmark set (landmark_regressor.py's sets), split evenly over the
# landmarks of the set that were found on the scan.
LANDMARK_SET_SHARE = {"pose": 1.0, "face": 0.5, "hand.L": 0.5, "hand.R": 0.5}


class ScanError(DoppelError):
    """A scan file is missing, unreadable, empty, or holds NaN/infinite values."""


@dataclass(frozen=True)
class Scan:
    """A scan: vertices (N, 3) float64 metres; faces (F, 3) int64 (may be empty for a point cloud only when
    allowed); normals (N, 3) float64 unit vertex normals. Colour, when the scan has it: colors (N, 3) float32
    sRGB in [0, 1] (vertex colours), or a texture (Ht, Wt, 3) float32 sRGB in [0, 1] with uvs (T, 2) (v up)
    and face_uvs (F, 3) int64 indices into uvs (None: uvs are per vertex, indexed by faces). units: the file's
    length unit (``scan_units``), unit_scale its metres per unit (the vertices are already in metres)."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    path: str = "<memory>"
    colors: np.ndarray | None = None
    uvs: np.ndarray | None = None
    face_uvs: np.ndarray | None = None
    texture: np.ndarray | None = None
    units: str = "m"
    unit_scale: float = 1.0

    @property
    def has_color(self) -> bool:
        return self.colors is not None or (self.texture is not None and self.uvs is not None)

    def trimesh(self):
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=False)


def check_scan(vertices: np.ndarray, faces: np.ndarray | None, what: str = "scan", *, colors: np.ndarray | None = None,
               uvs: np.ndarray | None = None, texture: np.ndarray | None = None) -> Scan:
    """Validate a scan given as arrays; vertices (N, 3), faces (F, 3); optional colors (N, 3) sRGB in [0, 1]
    (uint8 is scaled), uvs (N, 3) per-vertex texture coordinates with texture (Ht, Wt, 3) sRGB. Raises
    ScanError naming ``what``."""
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ScanError(f"{what}: vertices must be a non-empty (N, 3) array, got shape {v.shape}")
    if not np.isfinite(v).all():
        bad = int((~np.isfinite(v).all(1)).sum())
        raise ScanError(f"{what}: {bad} vertices are NaN or infinite; clean the scan (e.g. remove them in "
                        "MeshLab / open3d) and try again")
    f = np.zeros((0, 3), np.int64) if faces is None else np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(f) == 0:
        raise ScanError(f"{what}: the scan has no faces; mesh the point cloud first (e.g. open3d Poisson "
                        "reconstruction) and pass the mesh")
    if f.min() < 0 or f.max() >= len(v):
        raise ScanError(f"{what}: face indices out of range [0, {len(v)})")
    import trimesh

    n = np.array(trimesh.Trimesh(v, f, process=False).vertex_normals, dtype=np.float64)
    col = None if colors is None else _unit_rgb(colors, len(v), what, "vertex colours")
    if (uvs is None) != (texture is None):
        raise ScanError(f"{what}: a texture needs per-vertex uvs and uvs need a texture")
    if uvs is not None:
        uvs = np.asarray(uvs, np.float32)
        if uvs.shape != (len(v), 2) or not np.isfinite(uvs).all():
            raise ScanError(f"{what}: uvs must be finite ({len(v)}, 2), got {uvs.shape}")
        tex = np.asarray(texture)
        if tex.ndim != 3 or tex.shape[2] < 3:
            raise ScanError(f"{what}: the texture must be an (H, W, 3) image, got {tex.shape}")
        texture = _unit_rgb(tex[..., :3].reshape(-1, 3), None, what, "texture").reshape(*tex.shape[:2], 3)
    return Scan(vertices=v, faces=f, normals=n, path=what, colors=col, uvs=uvs, texture=texture)


def _unit_rgb(c, n: int | None, what: str, name: str) -> np.ndarray:
    """(M, 3+) colours (uint8 0-255 or float 0-1) -> (M, 3) float32 in [0, 1]; ScanError when malformed."""
    c = np.asarray(c)
    if c.ndim != 2 or c.shape[1] < 3 or (n is not None and len(c) != n):
        raise ScanError(f"{what}: {name} must be ({n if n is not None else 'M'}, 3), got {c.shape}")
    c = c[:, :3].astype(np.float32) / 255.0 if c.dtype == np.uint8 else c[:, :3].astype(np.float32)
    if not np.isfinite(c).all():
        raise ScanError(f"{what}: {name} hold NaN or infinite values")
    return np.clip(c, 0.0, 1.0)


def load_scan(path: str | Path, units: str = "auto") -> Scan:
    """Read a scan mesh (.ply / .obj / .stl / .off / .glb) with trimesh; see ``check_scan``. units: the file's
    length unit, 'auto' (from the scan's size: ``scan_units.detect_scan_units``) or m / cm / mm / inch; the
    returned vertices are in metres."""
    scan = _read_scan(path)
    unit, scale = scan_unit_scale(units, scan.vertices, str(path))
    if scale == 1.0:
        return replace(scan, units=unit)
    return replace(scan, vertices=scan.vertices * scale, units=unit, unit_scale=scale)


def _read_scan(path: str | Path) -> Scan:
    """The scan file as check_scan gives it, in the file's units."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: scan file not found")
    try:
        mesh = trimesh.load(path, process=False)
        if isinstance(mesh, trimesh.Scene):
            mesh = mesh.to_mesh()
    except Exception as e:  # any reader failure becomes one clear error (re-raised as ScanError)
        raise ScanError(f"{path}: cannot read the scan: {e}") from e
    if isinstance(mesh, trimesh.PointCloud):
        return check_scan(np.asarray(mesh.vertices), None, str(path))
    colors, uvs, texture = _scan_colour(mesh)
    return check_scan(np.asarray(mesh.vertices), np.asarray(getattr(mesh, "faces", np.zeros((0, 3)))), str(path),
                      colors=colors, uvs=uvs, texture=texture)


def _scan_colour(mesh) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(vertex colours (N, 4) uint8 or None, per-vertex uvs (N, 2) or None, texture (H, W, 3) uint8 or None) of a
    trimesh mesh: an OBJ with a material image gives uvs + texture; PLY/OBJ vertex colours give colours."""
    vis = getattr(mesh, "visual", None)
    kind = getattr(vis, "kind", None)
    if kind == "texture" and getattr(vis, "uv", None) is not None:
        img = getattr(getattr(vis, "material", None), "image", None)
        if img is None:
            img = getattr(getattr(vis, "material", None), "baseColorTexture", None)
        if img is not None and len(vis.uv) == len(mesh.vertices):
            return None, np.asarray(vis.uv, np.float32), np.asarray(img.convert("RGB"))
        return None, None, None
    if kind == "vertex":
        vc = np.asarray(vis.vertex_colors)
        if len(vc) == len(mesh.vertices) and np.ptp(vc[:, :3]) > 0:   # trimesh's default grey is no colour
            return vc, None, None
    return None, None, None


# ------------------------------------------------------------------------------------------------ rigid


@dataclass(frozen=True)
class RigidResult:
    """transform (4, 4) float64: maps template points onto the scan (x_scan = T @ x_template);
    rmse: ICP inlier RMSE in metres; fitness: fraction of template points with a scan point within the
    ICP threshold."""

    transform: np.ndarray
    rmse: float
    fitness: float


def _pca(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = p.mean(0)
    _, _, vt = np.linalg.svd(p - c, full_matrices=False)
    if np.linalg.det(vt) < 0:
        vt[2] *= -1                # a right-handed frame
    return c, vt  # rows: principal axes, largest variance first


def _o3d_cloud(points: np.ndarray, normals: np.ndarray | None = None):
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.array(points, np.float64)))
    if normals is not None:
        pc.normals = o3d.utility.Vector3dVector(np.array(normals, np.float64))
    return pc


def rigid_align(source: np.ndarray, target: Scan, *, init: str = "up", threshold: float = 0.05,
                max_iterations: int = 60) -> RigidResult:
    """Rigidly align template points ``source`` (V, 3) to the scan ``target``.

    init: "up" (the scan is +Y up, Doppel's frame: 8 turns about +Y, each refined by ICP, the best by
    two-sided mean distance kept), "pca" (any orientation: principal axes, 8 candidates) or "identity"
    (ICP from the given placement, for scans already roughly in place).
    threshold: ICP correspondence distance in metres.
    """
    import open3d as o3d

    src = np.asarray(source, np.float64)
    tgt = _o3d_cloud(target.vertices, target.normals)
    src_pc = _o3d_cloud(src)
    reg = o3d.pipelines.registration
    inits: list[np.ndarray] = []
    cs, ct = src.mean(0), target.vertices.mean(0)
    if init == "identity":
        inits.append(np.eye(4))
    elif init == "up":
        # Scans in Doppel's frame (+Y up): centroids matched, 8 turns about +Y tried (front/back unknown).
        for k in range(8):
            a = 2 * np.pi * k / 8
            T = np.eye(4)
            T[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
            T[:3, 3] = ct - T[:3, :3] @ cs
            inits.append(T)
    elif init == "pca":
        # Any orientation: the first principal axis is taken as the long axis (this fails when the arms
        # are spread as wide as the body is tall); 4 turns about it, both signs.
        _, As = _pca(src)
        _, At = _pca(target.vertices)
        for up in (1.0, -1.0):
            for k in range(4):
                a = 2 * np.pi * k / 4
                turn = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
                R = At.T @ turn @ np.diag([up, up, 1.0]) @ As   # det +1
                T = np.eye(4)
                T[:3, :3] = R
                T[:3, 3] = ct - R @ cs
                inits.append(T)
    else:
        raise ValueError(f"rigid_align: init must be 'up', 'pca' or 'identity', got {init!r}")
    from scipy.spatial import cKDTree

    tree_t = cKDTree(target.vertices)
    sub = np.random.default_rng(0).choice(len(target.vertices), min(5000, len(target.vertices)), replace=False)
    best = None
    for T0 in inits:
        # Coarse-to-fine: point-to-point ICP, then point-to-plane.
        r1 = reg.registration_icp(src_pc, tgt, 4 * threshold, T0, reg.TransformationEstimationPointToPoint(),
                                  reg.ICPConvergenceCriteria(max_iteration=max_iterations // 2))
        r2 = reg.registration_icp(src_pc, tgt, threshold, r1.transformation, reg.TransformationEstimationPointToPlane(),
                                  reg.ICPConvergenceCriteria(max_iteration=max_iterations))
        Tm = np.asarray(r2.transformation)
        moved = src @ Tm[:3, :3].T + Tm[:3, 3]
        # Score: two-sided mean distance (the scan's points must be covered too, which tells front from back).
        score = tree_t.query(moved)[0].mean() + cKDTree(moved).query(target.vertices[sub])[0].mean()
        if best is None or score < best[0]:
            best = (score, r2)
    r = best[1]
    return RigidResult(transform=np.asarray(r.transformation).copy(), rmse=float(r.inlier_rmse),
                       fitness=float(r.fitness))


# ------------------------------------------------------------------------------------------------ model fit


@dataclass
class ScanFitConfig:
    iterations: int = 80              # Adam steps of the model fit (chamfer + correspondences)
    lr: float = 0.02                  # Adam learning rate (radians / phenotype units / metres per step scale)
    joints: Sequence[str] = BODY_JOINTS  # joints whose rotation is optimised (unknown names are ignored)
    fit_shape: bool = True            # optimise the shape parameters
    trunc: float = 0.05               # chamfer distances above this (metres) are down-weighted (robust)
    scan_samples: int = 8000          # scan points used for the scan -> model term per iteration
    w_pose_prior: float = 1e-4        # weight of sum of squared joint rotations (radians^2)
    w_shape_prior: float = 1e-4       # weight of squared distance of the shape from the model's neutral
    seed: int = 0                     # subsampling seed
    landmark_iterations: int = 0      # Adam steps on the correspondences alone before the chamfer steps
    landmark_lr: float = 0.005        # Adam learning rate of the correspondence-only steps
    landmark_stage_min: int = 20      # fewer correspondences (a few control points): no correspondence-only steps
    #                                   (they would leave shape and pose free), only the term beside the chamfer
    landmark_trunc_start: float = 0.1  # robust scale (metres) of the correspondences in the correspondence-only steps
    w_landmarks: float = 0.2          # weight of the correspondence term beside the chamfer term (per unit weight)
    landmark_trunc: float = 0.02      # robust scale (metres) of the correspondences beside the chamfer term
    lr_end: float = 1.0               # the chamfer steps' learning rate decays linearly to lr x lr_end (1 = constant)
    init_pose: str = "rest"           # 'rest' (the model's bind pose) or 'reference' (Anny's arms-down stance)
    w_twist_prior: float = 0.0        # extra weight on each joint's twist about its bone (local +Y, radians^2):
    #                                   the chamfer term cannot see a limb's twist, the vertices slide with it
    stiff_joints: Sequence[str] = STIFF_JOINTS  # joints that rarely move in a scanning stance (prior w_stiff_prior)
    w_stiff_prior: float = 0.0        # weight of the squared rotation of the stiff joints (radians^2): an L2 pose
    #                                   prior alone spreads a raised arm over clavicle, shoulder and upper arm
    fit_expression: bool = False      # optimise the facial expression too (models with expressions)
    w_expression_prior: float = 1e-5  # weight of the squared expression weights
    refine_iterations: int = 0        # ICP rounds of the refinement after the Adam steps (0 = none): closest points
    #                                   fixed per round, the parameters solved by L-BFGS (converges where Adam stalls)
    refine_inner: int = 10            # L-BFGS iterations per ICP round
    refine_trunc: float = 0.02        # robust scale (metres) of the refinement's point-to-plane and landmark residuals
    refine_pose_prior: float = 1e-3   # weight of the squared joint rotations (radians^2) against the mean squared
    #                                   residual in mm^2 (small: the priors above pull a raised arm down by ~2 cm)
    refine_tol_m: float = 2.5e-4      # stop when a round moves the vertices less than this on average (metres)


@dataclass(frozen=True)
class ScanCorrespondences:
    """L correspondences between the model and the scan. Model side: sum_k weight[l, k] * vertex[index[l, k]]
    (index, weight (L, K); a vertex is one slot of weight 1, a calibrated landmark several); scan side:
    targets (L, 3) metres in the scan's frame; strength (L,) >= 0 the weight of each (user control points
    above automatic landmarks); names (L,) for reports; user (L,) bool, True for control points of a pairs file."""

    index: np.ndarray
    weight: np.ndarray
    targets: np.ndarray
    strength: np.ndarray
    names: list[str]
    user: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def model_points(self, vertices: np.ndarray) -> np.ndarray:
        """vertices (V, 3) -> (L, 3) the model-side points."""
        return np.einsum("lk,lkc->lc", self.weight, np.asarray(vertices)[self.index])

    @staticmethod
    def concat(parts: Sequence[ScanCorrespondences]) -> ScanCorrespondences | None:
        """One set from several (slot counts padded with weight-0 slots); None when there are none."""
        parts = [p for p in parts if p is not None and len(p)]
        if not parts:
            return None
        K = max(p.index.shape[1] for p in parts)
        pad = lambda a, v: np.pad(a, ((0, 0), (0, K - a.shape[1])), constant_values=v)  # noqa: E731
        return ScanCorrespondences(index=np.concatenate([pad(p.index, 0) for p in parts]),
                                   weight=np.concatenate([pad(p.weight, 0.0) for p in parts]),
                                   targets=np.concatenate([p.targets for p in parts]),
                                   strength=np.concatenate([p.strength for p in parts]),
                                   names=[n for p in parts for n in p.names],
                                   user=np.concatenate([p.user for p in parts]))


def correspondences_from_landmarks(model, ids: np.ndarray, points: np.ndarray, strength: float = 1.0,
                                   error_px: np.ndarray | None = None) -> ScanCorrespondences | None:
    """Scan landmarks (ids (L,) landmark_regressor.py ids, points (L, 3) triangulated, scan frame) through the
    model's calibrated regressor (landmarks it lacks are dropped). Strength: ``strength`` x the calibration's
    reliability x 1 / (1 + (error_px / 3)^2) when error_px (L,) is given x the set's share (LANDMARK_SET_SHARE,
    split over its landmarks; mean 1 over the sets present). None when the model has no regressor."""
    from reconstruction.fitting.landmark_regressor import default_regressor, landmark_set
    from reconstruction.fitting.landmarks import calibrated_spec

    reg = default_regressor(model)
    if reg is None or len(ids) == 0:
        return None
    have = np.isin(np.asarray(ids), reg.ids)
    if not have.any():
        return None
    spec = calibrated_spec(model, ids=np.asarray(ids)[have], regressor=reg)
    # Each set carries a fixed share of the weight, however many of its landmarks were found: 478 face points
    # must not outvote 33 body points (the body would be left where the face alone puts it).
    sets = np.array([landmark_set(int(i)) for i in spec.ids])
    share = np.array([LANDMARK_SET_SHARE[k] / (sets == k).sum() for k in sets])
    w = strength * spec.reliability * share * len(sets) / sum(LANDMARK_SET_SHARE[k] for k in set(sets.tolist()))
    if error_px is not None:
        w = w / (1.0 + (np.asarray(error_px)[have] / 3.0) ** 2)
    return ScanCorrespondences(index=spec.reg_index, weight=spec.reg_weight,
                               targets=np.asarray(points, np.float64)[have], strength=w,
                               names=list(spec.names), user=np.zeros(int(have.sum()), bool))


def rigid_from_correspondences(template: np.ndarray, corr: ScanCorrespondences, ids: Sequence[str] | None = None
                               ) -> RigidResult:
    """Weighted Kabsch of the template's model-side points onto the scan targets -> RigidResult (rmse: weighted
    RMS residual, fitness: 1). ids: the correspondence names to use (None: all). The template's pose may differ
    from the scan's, so pass the points of the trunk and head (they move least)."""
    keep = np.ones(len(corr), bool) if ids is None else np.isin(np.asarray(corr.names), list(ids))
    if keep.sum() < 3:
        raise ValueError(f"rigid_from_correspondences: {int(keep.sum())} correspondences, 3 are needed")
    src, dst, w = corr.model_points(template)[keep], corr.targets[keep], corr.strength[keep]
    w = w / w.sum()
    cs, cd = w @ src, w @ dst
    H = ((src - cs) * w[:, None]).T @ (dst - cd)
    U, _, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, cd - R @ cs
    res = (src @ R.T + T[:3, 3]) - dst
    return RigidResult(transform=T, rmse=float(np.sqrt((w * (res ** 2).sum(1)).sum())), fitness=1.0)


@dataclass(frozen=True)
class ScanFitResult:
    """shape (S,), pose (J, 3) axis-angle, root_translation (3,), all float64 numpy (BodyParams order);
    expression (E,) or None when not fitted; vertices (V, 3) the fitted posed mesh in the scan's frame;
    chamfer_m: final mean two-sided distance; landmark_mm: final mean correspondence residual (NaN without);
    history: loss per Adam iteration, then per refinement round (its own scale: mm^2)."""

    shape: np.ndarray
    pose: np.ndarray
    root_translation: np.ndarray
    vertices: np.ndarray
    chamfer_m: float
    history: list[float] = field(default_factory=list)
    expression: np.ndarray | None = None
    landmark_mm: float = float("nan")


def _robust(d2: torch.Tensor, trunc: float) -> torch.Tensor:
    """Geman-McClure on squared distances (metres^2) with scale ``trunc``."""
    return d2 / (d2 + trunc * trunc) * (trunc * trunc)


class _FitVars:
    """The variables of the model fit: per-joint rotation deltas on a starting pose, root translation, shape
    and (optionally) expression, with the rigid transform absorbed into the root."""

    def __init__(self, model, rigid: RigidResult | None, cfg: ScanFitConfig):
        import roma

        from reconstruction.body_models import BodyParams

        self.model, dt, dev = model, model.dtype, model.device
        names = model.pose_names
        sel = sorted({0, *[names.index(j) for j in cfg.joints if j in names]})   # the root always moves
        T = np.eye(4) if rigid is None else np.asarray(rigid.transform, np.float64)
        S = len(model.shape_names)
        start = np.zeros((len(names), 3))
        if cfg.init_pose == "reference" and hasattr(model, "reference_pose"):
            start = roma.rotmat_to_rotvec(torch.as_tensor(model.reference_pose(None, None)[0])).numpy()
        elif cfg.init_pose not in ("rest", "reference"):
            raise ValueError(f"ScanFitConfig.init_pose must be 'rest' or 'reference', got {cfg.init_pose!r}")
        self.start = torch.as_tensor(start, dtype=dt, device=dev)[None]
        with torch.no_grad():
            out0 = model.forward(BodyParams(pose=self.start.clone()))
        B0 = out0.joint_transforms[0, 0].double().cpu().numpy()
        # The rigid transform x -> R x + t as a root rotation about the root joint r0 (expressed in the root's
        # start frame Rb: R_local = Rb^T R Rb, composed with the start's own root rotation) and a root
        # translation t + R r0 - r0.
        R0, r0, Rb = T[:3, :3], B0[:3, 3], B0[:3, :3]
        self.base_root = roma.rotvec_composition([self.start[:, 0], roma.rotmat_to_rotvec(
            torch.as_tensor(Rb.T @ R0 @ Rb, dtype=dt, device=dev))[None]])
        self.sel = torch.as_tensor(sel, device=dev)
        self.stiff = torch.as_tensor([names[j] in set(cfg.stiff_joints) for j in sel], device=dev, dtype=dt)
        self.delta = torch.zeros(1, len(sel), 3, dtype=dt, device=dev, requires_grad=True)
        self.trans = torch.as_tensor(R0 @ r0 + T[:3, 3] - r0, dtype=dt, device=dev)[None].clone().requires_grad_(True)
        self.neutral = torch.full((1, S), model.shape_default, dtype=dt, device=dev)
        self.shape = self.neutral.clone().requires_grad_(cfg.fit_shape)
        E = len(getattr(model, "expression_names", []) or []) if cfg.fit_expression else 0
        self.expr = torch.zeros(1, E, dtype=dt, device=dev, requires_grad=True) if E else None
        self.params = [self.delta, self.trans] + ([self.shape] if cfg.fit_shape else []) + \
            ([self.expr] if self.expr is not None else [])

    def pose(self) -> torch.Tensor:
        import roma

        p = self.start.index_put((torch.zeros_like(self.sel), self.sel),
                                 roma.rotvec_composition([self.start[0, self.sel], self.delta[0]]))
        root = roma.rotvec_composition([self.base_root, self.delta[:, 0]])
        return torch.cat([root[:, None], p[:, 1:]], 1)

    def expression(self) -> torch.Tensor | None:
        return None if self.expr is None else self.model.clamp_expression(self.expr)

    def forward(self):
        from reconstruction.body_models import BodyParams

        return self.model.forward(BodyParams(shape=self.model.clamp_shape(self.shape), pose=self.pose(),
                                             root_translation=self.trans, expression=self.expression()))

    def prior(self, cfg: ScanFitConfig) -> torch.Tensor:
        r = cfg.w_pose_prior * (self.delta[:, 1:] ** 2).sum()
        r = r + cfg.w_shape_prior * ((self.shape - self.neutral) ** 2).sum()
        r = r + cfg.w_twist_prior * (self.delta[:, 1:, 1] ** 2).sum()
        r = r + cfg.w_stiff_prior * (self.stiff[None, :, None] * self.delta ** 2).sum()
        return r + (cfg.w_expression_prior * (self.expr ** 2).sum() if self.expr is not None else 0.0)


def _landmark_term(verts: torch.Tensor, corr: ScanCorrespondences | None, trunc: float) -> tuple[torch.Tensor, float]:
    """Robust weighted mean of the correspondence residuals of verts (V, 3) -> (loss, mean residual mm)."""
    if corr is None or len(corr) == 0:
        return verts.new_zeros(()), float("nan")
    dev, dt = verts.device, verts.dtype
    idx = torch.as_tensor(corr.index, device=dev)
    w = torch.as_tensor(corr.weight, device=dev, dtype=dt)
    p = (w[..., None] * verts[idx]).sum(1)
    d2 = ((p - torch.as_tensor(corr.targets, device=dev, dtype=dt)) ** 2).sum(-1)
    s = torch.as_tensor(corr.strength, device=dev, dtype=dt)
    loss = (s * _robust(d2, trunc)).sum() / s.sum().clamp_min(1e-12)
    return loss, float(d2.detach().sqrt().mean()) * 1000


def fit_model_to_scan(model, scan: Scan, rigid: RigidResult | None = None, config: ScanFitConfig | None = None,
                      progress: Callable[[int, int, float], None] | None = None,
                      correspondences: ScanCorrespondences | None = None) -> ScanFitResult:
    """Fit ``model`` (a BodyModel) to ``scan`` by a robust two-sided chamfer distance, plus (when given)
    ``correspondences``: model points that must land on scan targets (scan landmarks, control points).

    rigid: the template-to-scan transform from ``rigid_align`` / ``rigid_from_correspondences`` (None =
    identity). The root rotation and translation absorb it; the fit runs in the model's dtype/device.
    With correspondences, ``config.landmark_iterations`` steps fit them alone first (pose and shape reach the
    right basin), then ``config.iterations`` steps minimise chamfer + w_landmarks x correspondences, then up to
    ``config.refine_iterations`` ICP rounds solve point-to-plane + correspondences by L-BFGS (``_refine_round``).
    progress(iteration, total, loss) is called every iteration.
    """
    from scipy.spatial import cKDTree

    cfg = config or ScanFitConfig()
    dev = model.device
    fv = _FitVars(model, rigid, cfg)
    tree = cKDTree(scan.vertices)
    rng = np.random.default_rng(cfg.seed)
    scan_t = torch.as_tensor(scan.vertices, dtype=model.dtype, device=dev)
    history: list[float] = []

    def chamfer(verts: torch.Tensor) -> tuple[torch.Tensor, float]:
        v = verts[0]
        vn = v.detach().double().cpu().numpy()
        _, i1 = tree.query(vn)
        d1 = ((v - scan_t[torch.as_tensor(i1, device=dev)]) ** 2).sum(-1)
        k = min(cfg.scan_samples, len(scan.vertices))
        pick = rng.choice(len(scan.vertices), k, replace=False)
        _, i2 = cKDTree(vn).query(scan.vertices[pick])
        d2 = ((scan_t[torch.as_tensor(pick, device=dev)] - v[torch.as_tensor(i2, device=dev)]) ** 2).sum(-1)
        loss = _robust(d1, cfg.trunc).mean() + _robust(d2, cfg.trunc).mean()
        plain = 0.5 * (float(d1.detach().sqrt().mean()) + float(d2.detach().sqrt().mean()))
        return loss, plain

    enough = correspondences is not None and len(correspondences) >= cfg.landmark_stage_min
    n_lm = cfg.landmark_iterations if enough else 0
    total = n_lm + cfg.iterations
    opt = torch.optim.Adam(fv.params, lr=cfg.landmark_lr if n_lm else cfg.lr)
    for it in range(total):
        opt.zero_grad()
        verts = fv.forward().vertices
        if it < n_lm:
            loss, _ = _landmark_term(verts[0], correspondences, cfg.landmark_trunc_start)
            plain = float("nan")
        else:
            if it == n_lm and n_lm:
                opt = torch.optim.Adam(fv.params, lr=cfg.lr)
            for g in opt.param_groups:      # linear decay for a fine finish
                g["lr"] = cfg.lr * (1.0 - (1.0 - cfg.lr_end) * (it - n_lm) / max(cfg.iterations - 1, 1))
            loss, plain = chamfer(verts)
            loss = loss + cfg.w_landmarks * _landmark_term(verts[0], correspondences, cfg.landmark_trunc)[0]
        (loss + fv.prior(cfg)).backward()
        opt.step()
        history.append(float(loss.detach()))
        if progress:
            progress(it + 1, total + cfg.refine_iterations, plain)
    lbfgs = torch.optim.LBFGS(fv.params, lr=1.0, max_iter=cfg.refine_inner, line_search_fn="strong_wolfe",
                              history_size=20)   # one optimiser over the rounds: its curvature memory carries on
    pick = rng.choice(len(scan.vertices), min(cfg.scan_samples, len(scan.vertices)), replace=False)  # fixed: the
    # rounds then minimise one objective, and the motion test below measures convergence, not resampling noise
    for k in range(cfg.refine_iterations):
        moved, loss = _refine_round(fv, scan, tree, correspondences, cfg, pick, lbfgs)
        history.append(loss)
        if progress:
            progress(total + k + 1, total + cfg.refine_iterations, float("nan"))
        if moved < cfg.refine_tol_m:
            break
    with torch.no_grad():
        verts = fv.forward().vertices
        _, plain = chamfer(verts)
        _, lm_mm = _landmark_term(verts[0], correspondences, cfg.landmark_trunc)
        expr = fv.expression()
        np_ = lambda x: x.double().cpu().numpy()  # noqa: E731
        return ScanFitResult(shape=np_(model.clamp_shape(fv.shape)[0]), pose=np_(fv.pose()[0]),
                             root_translation=np_(fv.trans[0]),
                             vertices=verts[0].double().cpu().numpy(), chamfer_m=plain, history=history,
                             expression=None if expr is None else expr[0].double().cpu().numpy(), landmark_mm=lm_mm)


def _refine_round(fv: _FitVars, scan: Scan, tree, corr: ScanCorrespondences | None, cfg: ScanFitConfig,
                  pick: np.ndarray, opt: torch.optim.LBFGS) -> tuple[float, float]:
    """One ICP round of the refinement (numeric kernel): closest points both ways fixed (model vertex -> scan
    vertex, the scan vertices ``pick`` (S,) -> model vertex; pairs farther than 4 x refine_trunc or with normals more
    than ~70 degrees apart dropped), then ``cfg.refine_inner`` L-BFGS iterations on the robust point-to-plane
    residuals (+ 0.1 x point-to-point, mm^2), the correspondences (x w_landmarks) and a small pose prior, by
    ``opt`` (an L-BFGS over fv.params, kept across rounds).
    Returns (mean vertex motion of the round in metres, final loss)."""
    import trimesh
    from scipy.spatial import cKDTree

    dev, dt = fv.trans.device, fv.trans.dtype
    faces = np.asarray(fv.model.faces)
    with torch.no_grad():
        v0 = fv.forward().vertices[0].double().cpu().numpy()
    vn = np.asarray(trimesh.Trimesh(v0, faces, process=False).vertex_normals)
    far = 4 * cfg.refine_trunc
    d1, i1 = tree.query(v0)
    ok1 = (d1 < far) & ((scan.normals[i1] * vn).sum(1) > 0.3)
    d2, i2 = cKDTree(v0).query(scan.vertices[pick])
    ok2 = (d2 < far) & ((scan.normals[pick] * vn[i2]).sum(1) > 0.3)
    t = lambda a, **kw: torch.as_tensor(a, device=dev, **kw)  # noqa: E731
    q1, n1, m1 = t(scan.vertices[i1], dtype=dt), t(scan.normals[i1], dtype=dt), t(ok1, dtype=dt)
    q2, n2, j2 = t(scan.vertices[pick[ok2]], dtype=dt), t(scan.normals[pick[ok2]], dtype=dt), t(i2[ok2])
    c2 = cfg.refine_trunc ** 2

    def residual(r: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return _robust((r * n).sum(-1) ** 2 + 0.1 * (r ** 2).sum(-1), cfg.refine_trunc) / c2

    def closure() -> torch.Tensor:
        opt.zero_grad()
        v = fv.forward().vertices[0]
        data = (m1 * residual(v - q1, n1)).sum() / m1.sum().clamp_min(1.0)
        data = data + (residual(q2 - v[j2], n2).mean() if len(j2) else 0.0)
        lm = _landmark_term(v, corr, cfg.refine_trunc)[0] / c2
        prior = cfg.refine_pose_prior * (fv.delta[:, 1:] ** 2).sum()
        if fv.expr is not None:
            prior = prior + cfg.refine_pose_prior * (fv.expr ** 2).sum()
        loss = c2 * 1e6 * (data + cfg.w_landmarks * lm) + prior
        loss.backward()
        return loss

    loss = float(opt.step(closure).detach())
    with torch.no_grad():
        v1 = fv.forward().vertices[0].double().cpu().numpy()
    return float(np.linalg.norm(v1 - v0, axis=1).mean()), loss


# ------------------------------------------------------------------------------------------------ non-rigid


def nonrigid_register(vertices: np.ndarray, faces: np.ndarray, scan: Scan, *,
                      steps: Sequence[Sequence[float]] | None = None, distance_threshold: float = 0.05) -> np.ndarray:
    """Optimal-step non-rigid ICP (Amberg 2007) of the template (vertices (V, 3), faces (F, 3)) onto the scan.

    steps: rows (stiffness, landmark weight, normal weight, iterations) as in trimesh's ``nricp_amberg``;
    the default relaxes the stiffness from 0.02 to 0.002 (metres-scale meshes).
    Returns (V, 3) float64: the registered vertices, same topology (faces and UVs of the template hold).
    """
    import trimesh
    from trimesh.registration import nricp_amberg

    steps = [list(s) for s in (steps or [[0.02, 0, 0.5, 6], [0.01, 0, 0.5, 6], [0.003, 0, 0.5, 6]])]
    src = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
    out = nricp_amberg(src, scan.trimesh(), steps=steps, distance_threshold=distance_threshold, use_faces=False)
    out = np.asarray(out, np.float64)
    if not np.isfinite(out).all():
        raise ScanError("non-rigid registration diverged (NaN vertices); try a larger stiffness")
    return out


def surface_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unsigned distance (P,) in metres from points (P, 3) to the triangle mesh (vertices, faces), exact
    (open3d RaycastingScene)."""
    import open3d as o3d

    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(vertices, np.float64)),
                                  o3d.utility.Vector3iVector(np.asarray(faces, np.int32)))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(m))
    return scene.compute_distance(o3d.core.Tensor(np.asarray(points, np.float32))).numpy().astype(np.float64)


# ------------------------------------------------------------------------------------------------ anchored non-rigid


@dataclass
class NonrigidConfig:
    stiffness: Sequence[float] = (1000.0, 300.0, 100.0, 30.0, 10.0, 3.0, 1.0)  # membrane stiffness per step
    #                                   (weight of the change of edge vectors), relaxed: near-rigid first
    iterations_per_step: int = 2     # correspondence updates (closest points) per stiffness step
    w_sliding: float = 0.005         # weight of the tangential displacement from the model fit (sliding); small by
    #                                   default: where the model fit itself is off along the surface, the membrane
    #                                   pulls vertices back towards correspondence and a large weight keeps the error
    w_point: float = 0.05            # weight of point-to-point beside point-to-plane in the data term
    w_anchor: float = 2.0            # weight of the correspondences (x their own strength: automatic landmarks
    #                                   about 0.5, control points 10 by default)
    auto_anchor_scale: float = 0.025  # extra factor on the automatic landmarks (their calibration error is ~5-10 mm:
    #                                   they place the model fit; in this stage they only keep it from drifting)
    max_distance_m: float = 0.01     # model vertices farther than this from the scan get no data term: holes, and
    #                                   what lies under them (an eyeball under a hole was pulled 25 mm at 0.02);
    #                                   raise it for scans whose surface is far from the body (clothing, hair)
    min_normal_dot: float = 0.5      # ... and those whose normal disagrees with the scan's by more than ~60 degrees
    cg_iterations: int = 100         # conjugate-gradient iterations per solve (warm-started; 300 gave the same
    #                                   registration within 0.01 mm on the benchmark at twice the time)


@dataclass(frozen=True)
class NonrigidResult:
    """vertices (V, 3) registered (model topology, scan frame, metres); sliding (V,) metres: each vertex's
    displacement from the model fit along the fit's surface (tangential part); normal_offset (V,) metres: the
    part along the fit's normal (signed); observed (V,) bool: the vertex had scan data in the last step."""

    vertices: np.ndarray
    sliding: np.ndarray
    normal_offset: np.ndarray
    observed: np.ndarray


def _edges(faces: np.ndarray) -> np.ndarray:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(e, 1), axis=0)


def _tangent_basis(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.where(np.abs(n[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    t1 = np.cross(n, a)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    return t1, np.cross(n, t1)


def nonrigid_anchored(vertices: np.ndarray, faces: np.ndarray, scan: Scan,
                      correspondences: ScanCorrespondences | None = None, config: NonrigidConfig | None = None,
                      progress: Callable[[int, int], None] | None = None) -> NonrigidResult:
    """Non-rigid registration of the model fit (vertices (V, 3), faces (F, 3)) onto the scan that keeps
    correspondence (numeric kernel). Per step, with closest scan points fixed, the quadratic energy

        sum_i w_i ((m_i . (x_i - q_i))^2 + w_point |x_i - q_i|^2)          data: point-to-plane to the scan
      + stiffness sum_(i,j) |(x_i - x_j) - (x0_i - x0_j)|^2                 membrane, relaxed step by step
      + w_sliding sum_i |(I - n_i n_i^T)(x_i - x0_i)|^2                     sliding along the model fit's surface
      + w_anchor sum_l s_l |sum_k a_lk x_(i_lk) - t_l|^2                     anchors: landmarks, control points

    is minimised by conjugate gradients on the normal equations (x0, n: the model fit and its normals; q_i,
    m_i: closest scan point and its normal; w_i = 0 over holes and back-facing matches). Returns a
    NonrigidResult with the per-vertex sliding. progress(step, total)."""
    import scipy.sparse as sp
    import trimesh
    from scipy.sparse.linalg import cg
    from scipy.spatial import cKDTree

    cfg = config or NonrigidConfig()
    x0 = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    V = len(x0)
    n0 = np.asarray(trimesh.Trimesh(x0, f, process=False).vertex_normals, np.float64)
    t1, t2 = _tangent_basis(n0)
    E = _edges(f)
    # Constant blocks: membrane (graph Laplacian, per coordinate) and sliding (tangent projector per vertex).
    ne = len(E)
    rows = np.r_[np.arange(ne), np.arange(ne)]
    D = sp.csr_matrix((np.r_[np.ones(ne), -np.ones(ne)], (rows, np.r_[E[:, 0], E[:, 1]])), shape=(ne, V))
    L = (D.T @ D).tocsr()
    Lb = sp.kron(L, sp.eye(3), format="csr")                      # unknowns ordered x0, y0, z0, x1, ...
    P = np.einsum("vi,vj->vij", t1, t1) + np.einsum("vi,vj->vij", t2, t2)
    Pb = _block_diag(P)
    rhs_smooth = Lb @ x0.reshape(-1)
    rhs_slide = Pb @ x0.reshape(-1)
    Ab, rhs_a = _anchor_system(correspondences, V, cfg.w_anchor, cfg.auto_anchor_scale)
    tree = cKDTree(scan.vertices)
    x = x0.copy()
    steps = [s for s in cfg.stiffness for _ in range(cfg.iterations_per_step)]
    obs = np.zeros(V, bool)
    for k, stiff in enumerate(steps):
        nx = np.asarray(trimesh.Trimesh(x, f, process=False).vertex_normals, np.float64)
        d, i = tree.query(x)
        q, m = scan.vertices[i], scan.normals[i]
        obs = (d < cfg.max_distance_m) & ((m * nx).sum(1) > cfg.min_normal_dot)
        w = obs.astype(np.float64)
        Mb = _block_diag(w[:, None, None] * (np.einsum("vi,vj->vij", m, m) + cfg.w_point * np.eye(3)[None]))
        rhs_data = Mb @ q.reshape(-1)
        A = Mb + stiff * Lb + cfg.w_sliding * Pb + Ab
        b = rhs_data + stiff * rhs_smooth + cfg.w_sliding * rhs_slide + rhs_a
        diag = A.diagonal()
        pre = sp.diags(1.0 / np.where(diag > 0, diag, 1.0))
        sol, _ = cg(A, b, x0=x.reshape(-1), maxiter=cfg.cg_iterations, M=pre)
        x = sol.reshape(V, 3)
        if progress:
            progress(k + 1, len(steps))
    if not np.isfinite(x).all():
        raise ScanError("non-rigid registration diverged (NaN vertices); try a larger stiffness")
    dx = x - x0
    normal = (dx * n0).sum(1)
    return NonrigidResult(vertices=x, sliding=np.linalg.norm(dx - normal[:, None] * n0, axis=1),
                          normal_offset=normal, observed=obs)


def _block_diag(blocks: np.ndarray):
    """(V, 3, 3) -> the (3V, 3V) sparse block-diagonal matrix."""
    import scipy.sparse as sp

    V = len(blocks)
    r = (np.arange(V)[:, None, None] * 3 + np.arange(3)[None, :, None]).repeat(3, 2)
    c = (np.arange(V)[:, None, None] * 3 + np.arange(3)[None, None, :]).repeat(3, 1)
    return sp.csr_matrix((blocks.reshape(-1), (r.reshape(-1), c.reshape(-1))), shape=(3 * V, 3 * V))


def _anchor_system(corr: ScanCorrespondences | None, V: int, weight: float, auto_scale: float):
    """The anchor term's normal-equation block (3V, 3V) and right-hand side (3V,)."""
    import scipy.sparse as sp

    if corr is None or len(corr) == 0:
        return sp.csr_matrix((3 * V, 3 * V)), np.zeros(3 * V)
    s = corr.strength * weight * np.where(corr.user, 1.0, auto_scale)
    Lc, K = corr.index.shape
    rows = (np.arange(Lc)[:, None, None] * 3 + np.arange(3)[None, None, :]).repeat(K, 1)     # (L, K, 3)
    cols = corr.index[:, :, None] * 3 + np.arange(3)[None, None, :]
    vals = np.repeat(corr.weight[:, :, None], 3, 2)
    J = sp.csr_matrix((vals.reshape(-1), (rows.reshape(-1), cols.reshape(-1))), shape=(3 * Lc, 3 * V))
    S = sp.diags(np.repeat(s, 3))
    return (J.T @ S @ J).tocsr(), J.T @ (S @ corr.targets.reshape(-1))


def start_vertices(model, init_pose: str = "rest") -> np.ndarray:
    """(V, 3) float64: the model's neutral shape at the fit's starting pose (ScanFitConfig.init_pose), no rigid
    transform: what ``rigid_align`` / ``rigid_from_correspondences`` should align to the scan."""
    fv = _FitVars(model, None, ScanFitConfig(init_pose=init_pose))
    with torch.no_grad():
        return fv.forward().vertices[0].double().cpu().numpy()
