"""Joint bundle adjustment of a ChArUco rig calibration: every camera's pose, intrinsics and distortion and
every board pose but the reference one, refined together (scipy least squares, Huber loss), with the views
far above the rest flagged as outliers and the problem solved again without them.

Parameters, packed in one vector: per camera [rvec (3), t (3) world-to-camera, fx, fy, cx, cy (Doppel pixel
convention), k1, k2, p1, p2, k3], then per free board pose [rvec (3), t (3)] board-to-world. Residuals: the
reprojection error of every detected corner, px. The Jacobian is computed by finite differences grouped
over its sparsity (a camera's parameters never share a residual with another camera's, nor a board pose's
with another board pose's): 21 residual evaluations per Jacobian whatever the rig size. It is returned dense
so that scipy's exact trust-region solver is used (lsmr, the solver scipy takes for sparse Jacobians,
converges very slowly on this poorly scaled problem).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.conventions import doppel_to_opencv_K, doppel_to_opencv_pixels

log = logging.getLogger(__name__)

CAMERA_PARAMS = 15       # rvec, t, fx, fy, cx, cy, k1, k2, p1, p2, k3
BOARD_PARAMS = 6         # rvec, t


@dataclass(frozen=True)
class BundleAdjustmentConfig:
    loss: str = "huber"              # scipy least_squares robust loss
    max_nfev: int = 200              # residual evaluations per solve (scipy's max_nfev)
    passes: int = 2                  # solves at most; a pass that flags no new outlier is the last
    outlier_rms_px: float = 1.0      # a view whose RMS exceeds max(this, outlier_factor * median) is flagged
    outlier_factor: float = 4.0
    fix_k3: bool = False             # keep k3 at 0


@dataclass(frozen=True)
class Observation:
    """One camera's detection of the board at one moment: uv (n, 2) Doppel pixels of the corners ids (n,)."""

    camera: int
    moment: str
    ids: np.ndarray
    uv: np.ndarray


class BundleAdjustment:
    """The problem: cameras (names), board corners (N, 3) in the board frame (metres), observations, the
    reference moment (its board pose is the world frame and stays fixed) and the initial estimates."""

    def __init__(self, cameras: list[str], corners: np.ndarray, observations: list[Observation],
                 reference_moment: str, config: BundleAdjustmentConfig = BundleAdjustmentConfig()):
        self.cameras = cameras
        self.corners = corners
        self.obs = observations
        self.ref_moment = reference_moment
        self.config = config
        self.moments = sorted({o.moment for o in observations} | {reference_moment})
        self.free_moments = [m for m in self.moments if m != reference_moment]
        self._moment_index = {m: i for i, m in enumerate(self.free_moments)}
        self.T_ref = np.eye(4)
        self.n_params = len(cameras) * CAMERA_PARAMS + len(self.free_moments) * BOARD_PARAMS

    # -- parameters ---------------------------------------------------------------------------------

    def pack(self, T_cw: dict[str, np.ndarray], intrinsics: dict[str, tuple[np.ndarray, np.ndarray]],
             T_wb: dict[str, np.ndarray]) -> np.ndarray:
        """Initial estimates -> the parameter vector. T_cw: camera -> (4, 4) world-to-camera; intrinsics:
        camera -> (K (3, 3) Doppel pixels, dist (5,)); T_wb: moment -> (4, 4) board-to-world (the
        reference moment's is kept as the fixed world frame)."""
        self.T_ref = T_wb[self.ref_moment]
        x = []
        for c in self.cameras:
            K, dist = intrinsics[c]
            x += [*_T_to_rt(T_cw[c]), K[0, 0], K[1, 1], K[0, 2], K[1, 2], *dist[:5]]
        for m in self.free_moments:
            x += list(_T_to_rt(T_wb[m]))
        return np.asarray(x, dtype=np.float64)

    def camera(self, x: np.ndarray, ci: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Camera ci of x -> (rt (6,) world-to-camera rvec + t, K (3, 3) Doppel pixels, dist (5,))."""
        p = x[ci * CAMERA_PARAMS:(ci + 1) * CAMERA_PARAMS]
        K = np.array([[p[6], 0, p[8]], [0, p[7], p[9]], [0, 0, 1.0]])
        dist = p[10:15].copy()
        if self.config.fix_k3:
            dist[4] = 0.0
        return p[:6], K, dist

    def board_pose(self, x: np.ndarray, moment: str) -> np.ndarray:
        """(4, 4) board-to-world at moment."""
        if moment == self.ref_moment:
            return self.T_ref
        j = self._board_column(moment)
        return _rt_to_T(x[j:j + 3], x[j + 3:j + 6])

    def _board_column(self, moment: str) -> int:
        return len(self.cameras) * CAMERA_PARAMS + self._moment_index[moment] * BOARD_PARAMS

    # -- residuals and Jacobian ---------------------------------------------------------------------

    def residuals(self, x: np.ndarray, active: list[bool]) -> np.ndarray:
        """Reprojection errors (2 * corners of the active observations,) px, observation by observation."""
        import cv2

        out = []
        for o, on in zip(self.obs, active, strict=True):
            if not on:
                continue
            rt, K, dist = self.camera(x, o.camera)
            Tb = self.board_pose(x, o.moment)
            Xw = self.corners[o.ids] @ Tb[:3, :3].T + Tb[:3, 3]
            proj, _ = cv2.projectPoints(Xw, rt[:3], rt[3:], doppel_to_opencv_K(K), dist)
            out.append((proj.reshape(-1, 2) - doppel_to_opencv_pixels(o.uv)).ravel())
        return np.concatenate(out)

    def sparsity(self, active: list[bool]) -> tuple[np.ndarray, np.ndarray]:
        """The Jacobian's non-zero pattern: (rows, cols) int64 arrays."""
        rows, cols, r = [], [], 0
        for o, on in zip(self.obs, active, strict=True):
            if not on:
                continue
            k = 2 * len(o.ids)
            block = [np.arange(o.camera * CAMERA_PARAMS, (o.camera + 1) * CAMERA_PARAMS)]
            if o.moment != self.ref_moment:
                j = self._board_column(o.moment)
                block.append(np.arange(j, j + BOARD_PARAMS))
            c = np.concatenate(block)
            rows.append(np.repeat(np.arange(r, r + k), len(c)))
            cols.append(np.tile(c, k))
            r += k
        return np.concatenate(rows), np.concatenate(cols)

    def column_groups(self) -> np.ndarray:
        """(n_params,) group of each parameter: parameters in one group never share a residual, so one
        evaluation gives all their finite differences. Camera parameter p of every camera is group p; board
        parameter q of every board pose is group CAMERA_PARAMS + q."""
        g = np.empty(self.n_params, dtype=np.int64)
        n_cam = len(self.cameras) * CAMERA_PARAMS
        g[:n_cam] = np.tile(np.arange(CAMERA_PARAMS), len(self.cameras))
        g[n_cam:] = CAMERA_PARAMS + np.tile(np.arange(BOARD_PARAMS), len(self.free_moments))
        return g

    def jacobian(self, x: np.ndarray, active: list[bool], pattern: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Dense (residuals, n_params) forward-difference Jacobian, step sqrt(eps) * max(1, |x|) (scipy's
        '2-point' rule), one residual evaluation per column group."""
        rows, cols = pattern
        f0 = self.residuals(x, active)
        h = np.sqrt(np.finfo(np.float64).eps) * np.where(x >= 0, 1.0, -1.0) * np.maximum(1.0, np.abs(x))
        dx = (x + h) - x                                   # the step actually taken in floating point
        groups = self.column_groups()
        J = np.zeros((len(f0), len(x)))
        for g in np.unique(groups):
            in_g = groups == g
            df = self.residuals(x + np.where(in_g, dx, 0.0), active) - f0
            sel = in_g[cols]
            J[rows[sel], cols[sel]] = df[rows[sel]] / dx[cols[sel]]
        return J

    # -- solving ------------------------------------------------------------------------------------

    def solve(self, x0: np.ndarray, active: list[bool]) -> np.ndarray:
        """One robust least-squares solve from x0 over the active observations -> x."""
        from scipy.optimize import least_squares

        pattern = self.sparsity(active)
        res = least_squares(self.residuals, x0, args=(active,), jac=lambda x, a: self.jacobian(x, a, pattern),
                            loss=self.config.loss, tr_solver="exact", f_scale=1.0, x_scale="jac", method="trf",
                            max_nfev=self.config.max_nfev)
        log.info("bundle adjustment: %d evaluations, status %d", res.nfev, res.status)
        return res.x

    def per_view_rms(self, x: np.ndarray, active: list[bool]) -> dict[tuple[int, str], float]:
        """(camera index, moment) -> RMS reprojection error (px) of the active observations."""
        r = self.residuals(x, active)
        out, k = {}, 0
        for o, on in zip(self.obs, active, strict=True):
            if not on:
                continue
            n = 2 * len(o.ids)
            out[(o.camera, o.moment)] = float(np.sqrt(np.mean((r[k:k + n].reshape(-1, 2) ** 2).sum(-1))))
            k += n
        return out

    def refine(self, x0: np.ndarray, outliers: list[tuple[str, str, float]],
               progress: Callable[[str], None] | None = None) -> tuple[np.ndarray, list[bool]]:
        """Solve, flag the views far above the rest (appended to outliers as (camera, moment, RMS px)), solve
        again without them; at most config.passes solves. outliers on entry are left out from the start.
        Returns (x, active per observation)."""
        cfg = self.config
        left_out = {(c, m) for c, m, _ in outliers}
        active = [(self.cameras[o.camera], o.moment) not in left_out for o in self.obs]
        x = x0
        for it in range(cfg.passes):
            if progress:
                progress(f"bundle adjustment (pass {it + 1})")
            x = self.solve(x, active)
            per_view = self.per_view_rms(x, active)
            med = float(np.median(list(per_view.values())))
            new_bad = [(self.cameras[ci], m, e) for (ci, m), e in per_view.items()
                       if e > max(cfg.outlier_rms_px, cfg.outlier_factor * med)]
            if not new_bad:
                break
            for c, m, e in new_bad:
                log.warning("camera %s: view %s flagged as outlier after BA (RMS %.2f px)", c, m, e)
                outliers.append((c, m, e))
                left_out.add((c, m))
            active = [(self.cameras[o.camera], o.moment) not in left_out for o in self.obs]
        return x, active


def _rt_to_T(rvec, tvec) -> np.ndarray:
    """Rodrigues rvec (3,) and t (3,) -> (4, 4) rigid transform."""
    import cv2

    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3, 1))[0]
    T[:3, 3] = np.asarray(tvec, dtype=np.float64).reshape(3)
    return T


def _T_to_rt(T: np.ndarray) -> np.ndarray:
    """(4, 4) rigid transform -> (6,) Rodrigues rvec and t."""
    import cv2

    return np.concatenate([cv2.Rodrigues(T[:3, :3])[0].reshape(3), T[:3, 3]])
