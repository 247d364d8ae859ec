"""Registration of a body model to a raw scan or point cloud (photogrammetry export, Poisson mesh).

Three steps, each usable alone:

1. ``rigid_align``: centroid + turns about +Y (or principal-axes) initialisation, each candidate
   refined by open3d's point-to-plane ICP -> a 4x4 world transform of the template onto the scan.
2. ``fit_model_to_scan``: the body model's shape, pose and global transform optimised (Adam, torch) to
   minimise a robust two-sided chamfer distance to the scan (nearest neighbours from scipy's cKDTree,
   re-queried every iteration), with pose and shape priors.
3. ``nonrigid_register``: optimal-step non-rigid ICP (Amberg et al. 2007, trimesh's ``nricp_amberg``) of
   the fitted template onto the scan: per-vertex affine transforms with a stiffness term that is relaxed
   step by step. The template's topology and UVs are kept (only vertex positions change).

Units: metres, Doppel's frame (+Y up). Scans are trimesh/open3d-readable ``.ply`` / ``.obj`` files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.errors import DoppelError

log = logging.getLogger(__name__)

__all__ = ["Scan", "ScanError", "load_scan", "check_scan", "RigidResult", "rigid_align", "ScanFitConfig",
           "ScanFitResult", "fit_model_to_scan", "nonrigid_register", "surface_distance", "BODY_JOINTS"]

# Joints whose rotation the scan and multi-view fits optimise (the rest stay at the bind pose): the
# trunk, neck, head, limbs and feet. Fingers and toes are left to the detail/non-rigid stages.
BODY_JOINTS = ("root", "pelvis.L", "pelvis.R", "upperleg01.L", "upperleg02.L", "lowerleg01.L", "lowerleg02.L",
               "foot.L", "upperleg01.R", "upperleg02.R", "lowerleg01.R", "lowerleg02.R", "foot.R", "spine05",
               "spine04", "spine03", "spine02", "spine01", "clavicle.L", "shoulder01.L", "upperarm01.L",
               "upperarm02.L", "lowerarm01.L", "lowerarm02.L", "wrist.L", "clavicle.R", "shoulder01.R",
               "upperarm01.R", "upperarm02.R", "lowerarm01.R", "lowerarm02.R", "wrist.R", "neck01", "neck02",
               "neck03", "head")


class ScanError(DoppelError):
    """A scan file is missing, unreadable, empty, or holds NaN/infinite values."""


@dataclass(frozen=True)
class Scan:
    """A scan: vertices (N, 3) float64 metres; faces (F, 3) int64 (may be empty for a point cloud only when
    allowed); normals (N, 3) float64 unit vertex normals."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    path: str = "<memory>"

    def trimesh(self):
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=False)


def check_scan(vertices: np.ndarray, faces: np.ndarray | None, what: str = "scan") -> Scan:
    """Validate a scan given as arrays; vertices (N, 3), faces (F, 3). Raises ScanError naming ``what``."""
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
    return Scan(vertices=v, faces=f, normals=n, path=what)


def load_scan(path: str | Path) -> Scan:
    """Read a scan mesh (.ply / .obj / .stl / .off / .glb) with trimesh; see ``check_scan``."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: scan file not found")
    try:
        mesh = trimesh.load(path, process=False)
        if isinstance(mesh, trimesh.Scene):
            mesh = mesh.to_mesh()
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one clear error
        raise ScanError(f"{path}: cannot read the scan: {e}") from e
    if isinstance(mesh, trimesh.PointCloud):
        return check_scan(np.asarray(mesh.vertices), None, str(path))
    return check_scan(np.asarray(mesh.vertices), np.asarray(getattr(mesh, "faces", np.zeros((0, 3)))), str(path))


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
    iterations: int = 80              # Adam steps of the model fit
    lr: float = 0.02                  # Adam learning rate (radians / phenotype units / metres per step scale)
    joints: Sequence[str] = BODY_JOINTS  # joints whose rotation is optimised (unknown names are ignored)
    fit_shape: bool = True            # optimise the shape parameters
    trunc: float = 0.05               # chamfer distances above this (metres) are down-weighted (robust)
    scan_samples: int = 8000          # scan points used for the scan -> model term per iteration
    w_pose_prior: float = 1e-4        # weight of sum of squared joint rotations (radians^2)
    w_shape_prior: float = 1e-4       # weight of squared distance of the shape from the model's neutral
    seed: int = 0                     # subsampling seed


@dataclass(frozen=True)
class ScanFitResult:
    """shape (S,), pose (J, 3) axis-angle, root_translation (3,), all float64 numpy (BodyParams order);
    vertices (V, 3) the fitted posed mesh in the scan's frame; chamfer_m: final mean two-sided distance;
    history: loss per iteration."""

    shape: np.ndarray
    pose: np.ndarray
    root_translation: np.ndarray
    vertices: np.ndarray
    chamfer_m: float
    history: list[float] = field(default_factory=list)


def _robust(d2: torch.Tensor, trunc: float) -> torch.Tensor:
    """Geman-McClure on squared distances (metres^2) with scale ``trunc``."""
    return d2 / (d2 + trunc * trunc) * (trunc * trunc)


def fit_model_to_scan(model, scan: Scan, rigid: RigidResult | None = None, config: ScanFitConfig | None = None,
                      progress: Callable[[int, int, float], None] | None = None) -> ScanFitResult:
    """Fit ``model`` (a BodyModel) to ``scan`` by a robust two-sided chamfer distance.

    rigid: the template-to-scan transform from ``rigid_align`` (None = identity). The root rotation and
    translation absorb it; the fit runs in the model's dtype/device.
    progress(iteration, total, loss) is called every iteration.
    """
    import roma
    from scipy.spatial import cKDTree

    from reconstruction.body_models import BodyParams

    cfg = config or ScanFitConfig()
    dt, dev = model.dtype, model.device
    names = model.pose_names
    sel = [names.index(j) for j in cfg.joints if j in names]
    if 0 not in sel:
        sel = [0, *sel]                  # the root always moves (global rotation)
    sel = sorted(set(sel))
    T = np.eye(4) if rigid is None else np.asarray(rigid.transform, np.float64)
    S = len(model.shape_names)
    with torch.no_grad():
        B0 = model.forward(BodyParams()).joint_transforms[0, 0].double().cpu().numpy()
    # The rigid transform x -> R x + t as a root rotation about the root joint r0 (expressed in the root's
    # bind frame Rb: R_local = Rb^T R Rb) and a root translation t + R r0 - r0.
    R0, r0, Rb = T[:3, :3], B0[:3, 3], B0[:3, :3]
    t_root = R0 @ r0 + T[:3, 3] - r0
    base_root = roma.rotmat_to_rotvec(torch.as_tensor(Rb.T @ R0 @ Rb, dtype=dt, device=dev))[None]
    delta = torch.zeros(1, len(sel), 3, dtype=dt, device=dev, requires_grad=True)
    trans = torch.as_tensor(t_root, dtype=dt, device=dev)[None].clone().requires_grad_(True)
    neutral_shape = torch.full((1, S), model.shape_default, dtype=dt, device=dev)
    shape = neutral_shape.clone().requires_grad_(cfg.fit_shape)
    params = [delta, trans] + ([shape] if cfg.fit_shape else [])
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sel_t = torch.as_tensor(sel, device=dev)
    tree = cKDTree(scan.vertices)
    rng = np.random.default_rng(cfg.seed)
    scan_t = torch.as_tensor(scan.vertices, dtype=dt, device=dev)
    history: list[float] = []

    def pose_of() -> torch.Tensor:
        p = torch.zeros(1, len(names), 3, dtype=dt, device=dev).index_put((torch.zeros_like(sel_t), sel_t), delta[0])
        root = roma.rotvec_composition([delta[:, 0], base_root])
        return torch.cat([root[:, None], p[:, 1:]], 1)

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

    for it in range(cfg.iterations):
        opt.zero_grad()
        sh = model.clamp_shape(shape)
        out = model.forward(BodyParams(shape=sh, pose=pose_of(), root_translation=trans))
        loss, plain = chamfer(out.vertices)
        reg = cfg.w_pose_prior * (delta[:, 1:] ** 2).sum() + cfg.w_shape_prior * ((shape - neutral_shape) ** 2).sum()
        (loss + reg).backward()
        opt.step()
        history.append(float(loss.detach()))
        if progress:
            progress(it + 1, cfg.iterations, plain)
    with torch.no_grad():
        sh = model.clamp_shape(shape)
        out = model.forward(BodyParams(shape=sh, pose=pose_of(), root_translation=trans))
        _, plain = chamfer(out.vertices)
        return ScanFitResult(shape=sh[0].double().cpu().numpy(), pose=pose_of()[0].double().cpu().numpy(),
                             root_translation=trans[0].double().cpu().numpy(),
                             vertices=out.vertices[0].double().cpu().numpy(), chamfer_m=plain, history=history)


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
