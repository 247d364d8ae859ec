"""Robust multi-view triangulation: RANSAC over pairs of views, DLT on the inliers, then nonlinear
refinement (Gauss-Newton / Levenberg-Marquardt on the reprojection error, scipy least squares).

Image points are in Doppel pixels (centres at integer + 0.5) of distorted images; they are undistorted
with each camera's coefficients before the DLT, and the refinement reprojects with distortion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capture.camera import Camera
from capture.npcam import PinholeNP, as_np

RANSAC_THRESHOLD_PX = 8.0   # inlier reprojection threshold of a view, px (ingest: of a 1024 px view, in proportion
                            # for others: ``thresholds_for``)
THRESHOLD_REFERENCE_SIDE = 1024
MIN_VIEWS = 2


@dataclass(frozen=True)
class TriangulatedPoint:
    X: np.ndarray               # (3,) world position, metres (NaN when it could not be triangulated)
    views: tuple[int, ...]      # indices of the views (cameras) used
    reproj: np.ndarray          # (len(views),) reprojection error per used view, px
    ok: bool                    # False when fewer than MIN_VIEWS consistent views were found

    @property
    def error_px(self) -> float:
        """RMS reprojection error over the views used, px (NaN when not ok)."""
        return float(np.sqrt(np.mean(self.reproj ** 2))) if self.ok and len(self.reproj) else float("nan")


def dlt(Ps: np.ndarray, uv: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Linear triangulation. Ps (V, 3, 4) projection matrices, uv (V, 2) undistorted pixels in the same
    convention as the Ps, weights (V,) optional -> (3,) point. Rows are normalised for conditioning."""
    rows = []
    w = np.ones(len(Ps)) if weights is None else weights
    for P, (u, v), wi in zip(Ps, uv, w, strict=True):
        for r in (u * P[2] - P[0], v * P[2] - P[1]):
            rows.append(wi * r / max(np.linalg.norm(r), 1e-12))
    _, _, Vt = np.linalg.svd(np.asarray(rows))
    Xh = Vt[-1]
    return Xh[:3] / Xh[3] if abs(Xh[3]) > 1e-15 else np.full(3, np.nan)


def _project_ideal(Ps: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    Xh = np.append(X, 1.0)
    p = Ps @ Xh
    return p[:, :2] / p[:, 2:3], p[:, 2]


def thresholds_for(cameras: list, threshold_px: float = RANSAC_THRESHOLD_PX) -> np.ndarray:
    """(V,) inlier thresholds, px: ``threshold_px`` for a view THRESHOLD_REFERENCE_SIDE px on its long side, in
    proportion for others. A fixed 8 px was a quarter as tolerant at 4096 px, where MediaPipe's scatter is four
    times as many pixels: the rig median residual rose from 3.3 px (1024 px views) to 5.4 px in 1024 px terms, and
    two misplaced cameras flagged at 1024 px went unflagged."""
    return np.array([threshold_px * max(c.width, c.height) / THRESHOLD_REFERENCE_SIDE for c in cameras])


def triangulate_point(cameras: list[Camera | PinholeNP], uv: np.ndarray, conf: np.ndarray | None = None,
                      threshold_px: float | np.ndarray = RANSAC_THRESHOLD_PX, refine: bool = True,
                      rng: np.random.Generator | None = None, max_pairs: int = 200,
                      _cache: dict | None = None) -> TriangulatedPoint:
    """Triangulate one point seen in some views.

    cameras: V cameras; uv (V, 2) pixels, NaN where the point is not seen; conf (V,) in [0, 1] optional
    (views with conf <= 0 are ignored; confidences weight the DLT); threshold_px: the inlier threshold, one for
    every view or (V,) one a view. Returns a TriangulatedPoint whose ``views`` index into ``cameras``.
    """
    cameras = [as_np(c) for c in cameras]
    uv = np.asarray(uv, dtype=np.float64)
    V = len(cameras)
    if uv.shape != (V, 2):
        raise ValueError(f"uv must be ({V}, 2) for {V} cameras, got {uv.shape}")
    c = np.ones(V) if conf is None else np.asarray(conf, dtype=np.float64)
    seen = np.flatnonzero(np.all(np.isfinite(uv), axis=1) & (c > 0))
    fail = TriangulatedPoint(np.full(3, np.nan), (), np.zeros(0), False)
    if len(seen) < MIN_VIEWS:
        return fail
    cache = _cache if _cache is not None else {}
    Ps = np.stack([cache.setdefault(("P", i), cameras[i].P) for i in seen])
    und = np.stack([cameras[i].undistort_points(uv[i][None])[0] for i in seen])
    w = c[seen]
    threshold_px = np.broadcast_to(np.asarray(threshold_px, dtype=np.float64), (V,))[seen]
    # RANSAC over pairs of views (all pairs when few): the hypothesis with most inliers (then lowest error)
    pairs = [(a, b) for a in range(len(seen)) for b in range(a + 1, len(seen))]
    if len(pairs) > max_pairs:
        rng = rng or np.random.default_rng(0)
        pairs = [pairs[k] for k in rng.choice(len(pairs), max_pairs, replace=False)]
    best, best_key = None, None
    for a, b in pairs:
        X = dlt(Ps[[a, b]], und[[a, b]])
        if not np.all(np.isfinite(X)):
            continue
        proj, z = _project_ideal(Ps, X)
        err = np.linalg.norm(proj - und, axis=1)
        inl = (err < threshold_px) & (z > 0)
        if inl.sum() < MIN_VIEWS:
            continue
        key = (int(inl.sum()), -float(np.sum(np.minimum(err, threshold_px) ** 2)))
        if best_key is None or key > best_key:
            best, best_key = inl, key
    if best is None:
        return fail
    X = dlt(Ps[best], und[best], w[best])
    # re-collect inliers around the DLT on all inliers (one more round), then refine
    proj, z = _project_ideal(Ps, X)
    inl = (np.linalg.norm(proj - und, axis=1) < threshold_px) & (z > 0)
    if inl.sum() >= MIN_VIEWS:
        X = dlt(Ps[inl], und[inl], w[inl])
    else:
        inl = best
    if refine:
        X = _refine(Ps[inl], und[inl], w[inl], X)
    proj, z = _project_ideal(Ps[inl], X)
    if not np.all(z > 0):
        return fail
    # report errors in the original (distorted) images
    used = seen[inl]
    reproj = np.array([np.linalg.norm(cameras[i].project(X[None])[0] - uv[i]) for i in used])
    return TriangulatedPoint(X=X, views=tuple(int(i) for i in used), reproj=reproj, ok=True)


def _refine(Ps: np.ndarray, uv: np.ndarray, w: np.ndarray, X0: np.ndarray, iters: int = 10) -> np.ndarray:
    """Levenberg-Marquardt on sum_i w_i |proj_i(X) - uv_i|^2 with an analytic Jacobian. (3,) -> (3,)."""
    X = X0.copy()
    lam = 1e-3
    sw = np.sqrt(w)[:, None]

    def cost_and_jac(X):
        Xh = np.append(X, 1.0)
        p = Ps @ Xh                         # (V, 3)
        proj = p[:, :2] / p[:, 2:3]
        r = (proj - uv) * sw                # (V, 2)
        # d proj / dX = (P[:2, :3] * z - p[:2] outer P[2, :3]) / z^2
        J = (Ps[:, :2, :3] * p[:, 2, None, None] - p[:, :2, None] * Ps[:, 2, None, :3]) / p[:, 2, None, None] ** 2
        return r.ravel(), (J * sw[:, :, None]).reshape(-1, 3)

    r, J = cost_and_jac(X)
    cost = r @ r
    for _ in range(iters):
        H = J.T @ J
        g = J.T @ r
        step = np.linalg.solve(H + lam * np.diag(np.diag(H) + 1e-12), -g)
        Xn = X + step
        rn, Jn = cost_and_jac(Xn)
        cn = rn @ rn
        if cn < cost:
            X, r, J, cost = Xn, rn, Jn, cn
            lam *= 0.3
            if np.linalg.norm(step) < 1e-10:
                break
        else:
            lam *= 10
    return X


@dataclass(frozen=True)
class Triangulation:
    X: np.ndarray          # (N, 3) metres, NaN where not triangulated
    error_px: np.ndarray   # (N,) RMS reprojection error over the views used, px (NaN where not)
    n_views: np.ndarray    # (N,) number of views used
    views: list[tuple[int, ...]]  # per point, the view indices used
    ok: np.ndarray         # (N,) bool


def triangulate_points(cameras: list[Camera | PinholeNP], uv: np.ndarray, conf: np.ndarray | None = None,
                       threshold_px: float | np.ndarray = RANSAC_THRESHOLD_PX, refine: bool = True
                       ) -> Triangulation:
    """uv (V, N, 2) pixels (NaN = not seen), conf (V, N) optional -> Triangulation of the N points."""
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 3 or uv.shape[0] != len(cameras) or uv.shape[2] != 2:
        raise ValueError(f"uv must be (V={len(cameras)}, N, 2), got {uv.shape}")
    N = uv.shape[1]
    cameras = [as_np(c) for c in cameras]
    rng = np.random.default_rng(0)
    cache: dict = {}
    pts = [triangulate_point(cameras, uv[:, n], None if conf is None else conf[:, n], threshold_px, refine,
                             rng, _cache=cache) for n in range(N)]
    return Triangulation(
        X=np.stack([p.X for p in pts]) if N else np.zeros((0, 3)),
        error_px=np.array([p.error_px for p in pts]),
        n_views=np.array([len(p.views) for p in pts], dtype=np.int64),
        views=[p.views for p in pts],
        ok=np.array([p.ok for p in pts], dtype=bool),
    )
