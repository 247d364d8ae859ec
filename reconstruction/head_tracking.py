"""A head's pose and expression through a shot, fitted to 2D face landmarks with the identity held fixed.

The head is given as a `FaceBasis`: its face landmarks (MediaPipe face-mesh points, placed on the double's mesh
by the calibrated landmark regressor) as a linear function of expression weights, in the double's bind frame.
Per frame f the model is x_f = K (R_f (n + sum_e w_fe d_e) + t_f), compared with the plate's landmarks. All
frames of a shot are solved together: the data term (robust, in units of the face's inter-ocular distance)
plus the fitter's temporal term (squared second differences of rotation, translation and expression between
consecutive frames), so the track does not jitter with MediaPipe's frame-to-frame noise (about 0.01-0.02
inter-ocular distances, RESEARCH-NOTES.md), and a prior pulling expressions to 0. It is solved in two exact
steps: every frame by a bounded trust-region least-squares (scipy, soft-L1 loss, expression weights in [0, 1]),
then the temporal term by Whittaker-Henderson smoothing of the per-frame parameters (a banded linear solve).
Frames without a face have no data term: they are bridged by the temporal term and reported as not valid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# MediaPipe face-mesh indices of the eye corners (the person's right eye outer/inner, left eye inner/outer),
# used for the inter-ocular distance that normalises errors.
RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER = 33, 133, 362, 263


def inter_ocular(face: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners of face landmarks (..., 478, D) -> (...)."""
    return np.linalg.norm(face[..., RIGHT_EYE_OUTER, :] - face[..., LEFT_EYE_OUTER, :], axis=-1)


@dataclass(frozen=True)
class FaceBasis:
    """ids (L,) MediaPipe face-mesh indices; neutral (L, 3) metres, the double's landmarks in its bind frame;
    deltas (E, L, 3) metres, how each expression moves them; names (E,) expression (blendshape) names."""

    ids: np.ndarray
    neutral: np.ndarray
    deltas: np.ndarray
    names: tuple[str, ...]

    def points(self, weights: np.ndarray | None = None) -> np.ndarray:
        """(L, 3) landmarks for expression weights (E,) (None: neutral)."""
        if weights is None:
            return self.neutral
        return self.neutral + np.einsum("e,elc->lc", weights, self.deltas)


@dataclass
class HeadTrackConfig:
    """How the shot is solved."""

    temporal_weight: float | None = None  # weight of squared 2nd differences (rotation rad, translation / depth,
                                          # weights); None: chosen per parameter by cross-validation (`gcv_smoothing`)
    expression_prior: float = 0.002   # weight of squared expression weights (per landmark-residual unit)
    robust_scale: float = 0.05        # soft-L1 scale of landmark residuals, in inter-ocular distances
    iterations: int = 50              # function evaluations per frame (trust-region solver)
    smoothing_tolerance: float = 0.002  # IOD a frame's error may grow by smoothing before its data weighs more
    identity_rounds: int = 1          # rigid fit, then this many (identity offsets, full fit) rounds (0 = no offsets)
    identity_ridge: float = 2e3       # ridge of the offsets (IOD^2 / m^2): ~2 cm of offset costs like 1 IOD


@dataclass(frozen=True)
class HeadTrack:
    """Per frame (F frames): rotation (F, 3, 3) and translation (F, 3) metres map the double's bind frame to
    the camera (OpenCV); expression (F, E) weights in [0, 1]; valid (F,) frames with landmarks; error (F,) mean
    landmark reprojection error of the double's face / inter-ocular distance (NaN where not valid: it includes
    how the performer's face differs from the double's); focal_px the camera's focal; fit_error (F,) the same
    error with the shot's identity offsets (how well the head is tracked; what QC flags)."""

    rotation: np.ndarray
    translation: np.ndarray
    expression: np.ndarray
    valid: np.ndarray
    error: np.ndarray
    focal_px: float
    fit_error: np.ndarray | None = None


def intrinsics(focal_px: float, width: int, height: int) -> np.ndarray:
    """(3, 3) pinhole K, principal point at the image centre (Doppel pixel convention)."""
    return np.array([[focal_px, 0, width / 2], [0, focal_px, height / 2], [0, 0, 1]], np.float64)


def _pnp(points: np.ndarray, pixels: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(rvec (3,), t (3,), mean px error) of a rigid pose, OpenCV's SQPnP then Levenberg-Marquardt."""
    import cv2

    Kc = np.asarray(K, np.float64)   # K and pixels both in Doppel's convention: the pinhole model is the same
    obj, img = points.astype(np.float64), pixels.astype(np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, Kc, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise ValueError("head pose: PnP failed")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, Kc, None, rvec, tvec)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, Kc, None)
    err = float(np.linalg.norm(proj.reshape(-1, 2) - img, axis=1).mean())
    return rvec.reshape(3), tvec.reshape(3), err


def estimate_focal(landmarks: np.ndarray, valid: np.ndarray, width: int, height: int, basis: FaceBasis,
                   max_frames: int = 12) -> float:
    """The plate camera's focal length (px) that best explains the face landmarks (F, 478, 2) with the double's
    neutral face: a log-spaced search of 0.5-4 x max(W, H) on up to max_frames frames spread over the shot, then
    a parabola through the best three. Biased when the performer's face differs from the double's (it cannot be
    otherwise from one face): give --focal-px when the camera is known."""
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        raise ValueError("no face in the plate: cannot estimate the camera's focal length")
    idx = idx[np.linspace(0, len(idx) - 1, min(max_frames, len(idx))).round().astype(int)]
    base = max(width, height)
    grid = base * np.geomspace(0.5, 4.0, 19)
    pts = basis.neutral

    def cost(f: float) -> float:
        K = intrinsics(f, width, height)
        errs = [_pnp(pts, landmarks[i][basis.ids], K)[2] / max(inter_ocular(landmarks[i]), 1.0) for i in idx]
        return float(np.mean(errs))

    costs = np.array([cost(f) for f in grid])
    b = int(np.clip(np.argmin(costs), 1, len(grid) - 2))
    x = np.log(grid[b - 1:b + 2])
    c = np.polyfit(x, costs[b - 1:b + 2], 2)
    f = float(np.exp(-c[1] / (2 * c[0]))) if c[0] > 0 else float(grid[np.argmin(costs)])
    return float(np.clip(f, grid[0], grid[-1]))


def _initial_poses(landmarks: np.ndarray, valid: np.ndarray, K: np.ndarray, basis: FaceBasis):
    """Per-frame PnP (rvec, t) for valid frames, linearly interpolated across frames without a face."""
    F = len(landmarks)
    rv, tv = np.zeros((F, 3)), np.zeros((F, 3))
    idx = np.flatnonzero(valid)
    for i in idx:
        rv[i], tv[i], _ = _pnp(basis.neutral, landmarks[i][basis.ids], K)
    rv[idx] = _unwrap_rotvecs(rv[idx])      # continuous before interpolating across frames without a face
    for k in range(3):
        rv[:, k] = np.interp(np.arange(F), idx, rv[idx, k])
        tv[:, k] = np.interp(np.arange(F), idx, tv[idx, k])
    return rv, tv


def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    z = np.zeros(v.shape[:-1])
    return np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1), np.stack([v[..., 2], z, -v[..., 0]], -1),
                     np.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def _left_jacobian(rv: np.ndarray) -> np.ndarray:
    """SO(3) left Jacobian J_l(rv) (3, 3): R(rv + d) = exp([J_l d]x) R(rv) to first order."""
    a = float(np.linalg.norm(rv))
    S = _skew(rv)
    if a < 1e-6:
        return np.eye(3) + 0.5 * S
    return np.eye(3) + (1 - np.cos(a)) / a ** 2 * S + (a - np.sin(a)) / a ** 3 * (S @ S)


def _residuals(p: np.ndarray, basis: FaceBasis, K: np.ndarray, obs: np.ndarray, iod: float, prior: float) -> np.ndarray:
    """Per-frame residuals: reprojection (2L,) in inter-ocular distances, then sqrt(prior) x expression weights."""
    from scipy.spatial.transform import Rotation

    R = Rotation.from_rotvec(p[:3]).as_matrix()
    cam = basis.points(p[6:]) @ R.T + p[3:6]
    uv = cam @ K.T
    uv = uv[:, :2] / np.maximum(uv[:, 2:3], 1e-6)
    return np.concatenate([((uv - obs) / iod).ravel(), np.sqrt(prior) * p[6:]])


def _jacobian(p: np.ndarray, basis: FaceBasis, K: np.ndarray, obs: np.ndarray, iod: float, prior: float
              ) -> np.ndarray:
    """d residuals / d params (2L + E, 6 + E), analytic (rotation through the SO(3) left Jacobian)."""
    from scipy.spatial.transform import Rotation

    R = Rotation.from_rotvec(p[:3]).as_matrix()
    rot = basis.points(p[6:]) @ R.T
    cam = rot + p[3:6]
    z = np.maximum(cam[:, 2], 1e-6)
    L, E = len(cam), len(p) - 6
    P = np.zeros((L, 2, 3))                               # d(u, v) / d(camera point)
    P[:, 0, 0], P[:, 0, 2] = K[0, 0] / z, -K[0, 0] * cam[:, 0] / z ** 2
    P[:, 1, 1], P[:, 1, 2] = K[1, 1] / z, -K[1, 1] * cam[:, 1] / z ** 2
    P[:, 0, 1] = K[0, 1] / z
    J = np.zeros((2 * L + E, 6 + E))
    J[:2 * L, :3] = (P @ (-_skew(rot) @ _left_jacobian(p[:3]))).reshape(2 * L, 3)
    J[:2 * L, 3:6] = P.reshape(2 * L, 3)
    if E:
        dX = np.einsum("ij,elj->lie", R, basis.deltas)    # (L, 3, E)
        J[:2 * L, 6:] = (P @ dX).reshape(2 * L, E)
        J[2 * L:, 6:] = np.sqrt(prior) * np.eye(E)
    J[:2 * L] /= iod
    return J


def _fit_frames(landmarks, valid, K, basis, rv0, t0, cfg) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame pose + expression (bounded Levenberg-Marquardt-style trust region, robust loss), each frame
    starting from the previous one's solution: params (F, 6 + E) and error (F,) in inter-ocular distances."""
    from scipy.optimize import least_squares

    F, E = len(landmarks), len(basis.names)
    params = np.zeros((F, 6 + E))
    params[:, :3], params[:, 3:6] = rv0, t0
    err = np.full(F, np.nan)
    lo = np.r_[np.full(6, -np.inf), np.zeros(E)]
    hi = np.r_[np.full(6, np.inf), np.ones(E)]
    prev = None
    for f in np.flatnonzero(valid):
        obs = landmarks[f, basis.ids]
        iod = max(float(inter_ocular(landmarks[f])), 1.0)
        x0 = params[f].copy()
        if prev is not None:
            x0[6:] = prev[6:]
        r = least_squares(_residuals, x0, bounds=(lo, hi), loss="soft_l1", f_scale=cfg.robust_scale,
                          args=(basis, K, obs, iod, cfg.expression_prior), max_nfev=cfg.iterations, x_scale="jac",
                          jac=_jacobian)
        params[f], prev = r.x, r.x
        err[f] = float(np.linalg.norm(r.fun[:2 * len(obs)].reshape(-1, 2), axis=1).mean())
    return params, err


def _second_difference_gram(F: int):
    """D^T D (F, F) of the second-difference operator D ((F-2) x F), as a scipy sparse matrix (5 bands)."""
    from scipy import sparse

    D = sparse.diags([np.ones(F - 2), -2 * np.ones(F - 2), np.ones(F - 2)], [0, 1, 2], shape=(F - 2, F))
    return (D.T @ D).tocsr()


def _banded(A) -> np.ndarray:
    """(5, F) LAPACK band storage of a sparse pentadiagonal matrix A (F, F)."""
    F = A.shape[0]
    ab = np.zeros((5, F))
    for k in range(-2, 3):
        d = A.diagonal(k)
        if k >= 0:
            ab[2 - k, k:] = d
        else:
            ab[2 - k, :k] = d
    return ab


def smooth_track(params: np.ndarray, weight: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Whittaker-Henderson smoothing (the temporal term, solved exactly): per column c, the x minimising
    sum_f weight_f (x_f - params_fc)^2 + lam_c sum_f (x_{f-1} - 2 x_f + x_{f+1})^2. params (F, P), weight (F,)
    (0 = no data: bridged by the smoothness term), lam (P,) -> (F, P). A banded solve, O(F) time and memory."""
    from scipy import sparse
    from scipy.linalg import solve_banded

    F, P = params.shape
    if F < 3:
        return params.copy()
    DtD = _second_difference_gram(F)
    weight = np.asarray(weight, np.float64) + 1e-9    # a frame with no data and no smoothing keeps its value
    W = sparse.diags(weight)
    out = np.empty_like(params)
    lam = np.broadcast_to(np.asarray(lam, np.float64), (P,))
    for value in np.unique(lam):               # columns that share a weight share one factorisation
        cols = np.flatnonzero(lam == value)
        out[:, cols] = solve_banded((2, 2), _banded(W + value * DtD), weight[:, None] * params[:, cols])
    return out


GCV_GRID = 10.0 ** np.arange(-2.0, 5.01, 0.25)   # smoothing weights tried by `gcv_smoothing` (dimensionless)
_DENSE_TRACE_FRAMES = 1500                        # exact hat-matrix trace up to this many frames, else estimated


def _hat_trace(weight: np.ndarray, lam: float, DtD, probes: int = 24) -> float:
    """tr((W + lam D^T D)^-1 W): the smoother's effective number of parameters. Exact (dense) for short shots,
    else Hutchinson's estimate with Rademacher probes (fixed seed: deterministic)."""
    from scipy import sparse
    from scipy.linalg import solve_banded

    F = len(weight)
    A = sparse.diags(weight) + lam * DtD
    if F <= _DENSE_TRACE_FRAMES:
        return float(np.trace(np.linalg.solve(A.toarray(), np.diag(weight))))
    ab = _banded(A)
    z = np.random.default_rng(0).choice([-1.0, 1.0], size=(F, probes))
    return float(np.einsum("fp,fp->", z, solve_banded((2, 2), ab, weight[:, None] * z)) / probes)


def gcv_smoothing(params: np.ndarray, weight: np.ndarray, grid: np.ndarray = GCV_GRID) -> np.ndarray:
    """Per column of params (F, P), the Whittaker smoothing weight (P,) from ``grid`` that minimises generalised
    cross-validation, GCV = (weighted RSS / n) / (1 - tr(H) / n)^2 with n the frames with data (Craven & Wahba;
    Eilers 2003, "A perfect smoother"): fast, real motion keeps its detail, noise on a slow shot is removed."""
    F, P = params.shape
    w = np.asarray(weight, np.float64) + 1e-9
    n = float((np.asarray(weight) > 0).sum())
    if F < 3 or n < 4:
        return np.full(P, float(grid[0]))
    DtD = _second_difference_gram(F)
    scores = np.empty((len(grid), P))
    for g, lam in enumerate(grid):
        sm = smooth_track(params, weight, np.full(P, lam))
        rss = (w[:, None] * (sm - params) ** 2).sum(0) / n
        scores[g] = rss / max(1.0 - _hat_trace(w, float(lam), DtD) / n, 1e-3) ** 2
    return grid[np.argmin(scores, axis=0)].astype(np.float64)


def identity_offsets(params: np.ndarray, landmarks: np.ndarray, valid: np.ndarray, K: np.ndarray,
                     basis: FaceBasis, ridge: float) -> np.ndarray:
    """Per-landmark 3D offsets (L, 3) metres, shared by every frame of the shot, that best explain the residuals
    of the current poses: the performer's face is not the double's, and without them that difference biases the
    head pose (roll and pitch follow the mismatch instead of the head). Linearised projection, one 3 x 3 ridge
    solve per landmark (ridge in inter-ocular-distance^2 per metre^2)."""
    from scipy.spatial.transform import Rotation

    L = len(basis.ids)
    A = np.zeros((L, 3, 3))
    b = np.zeros((L, 3))
    for f in np.flatnonzero(valid):
        R = Rotation.from_rotvec(params[f, :3]).as_matrix()
        cam = basis.points(params[f, 6:]) @ R.T + params[f, 3:6]
        z = np.maximum(cam[:, 2], 1e-6)
        fx, fy = K[0, 0], K[1, 1]
        # d(u, v)/d(camera point), (L, 2, 3), then through R to the head frame
        J = np.zeros((L, 2, 3))
        J[:, 0, 0], J[:, 0, 2] = fx / z, -fx * cam[:, 0] / z ** 2
        J[:, 1, 1], J[:, 1, 2] = fy / z, -fy * cam[:, 1] / z ** 2
        J = J @ R
        uv = cam @ K.T
        r = landmarks[f, basis.ids] - uv[:, :2] / z[:, None]
        w = 1.0 / max(float(inter_ocular(landmarks[f])), 1.0) ** 2
        A += w * np.einsum("lki,lkj->lij", J, J)
        b += w * np.einsum("lki,lk->li", J, r)
    A += ridge * np.eye(3)
    return np.linalg.solve(A, b[..., None])[..., 0]


def _shot_error(sm: np.ndarray, landmarks: np.ndarray, valid: np.ndarray, K: np.ndarray, basis: FaceBasis
                ) -> np.ndarray:
    err = np.full(len(landmarks), np.nan)
    for f in np.flatnonzero(valid):
        iod = max(float(inter_ocular(landmarks[f])), 1.0)
        r = _residuals(sm[f], basis, K, landmarks[f, basis.ids], iod, 0.0)[:2 * len(basis.ids)]
        err[f] = float(np.linalg.norm(r.reshape(-1, 2), axis=1).mean())
    return err


def fit_head_track(landmarks: np.ndarray, valid: np.ndarray, K: np.ndarray, basis: FaceBasis,
                   config: HeadTrackConfig | None = None) -> HeadTrack:
    """Solve a shot. landmarks (F, 478, 2) px (rows of frames without a face are ignored), valid (F,) bool,
    K (3, 3) the plate camera (Doppel convention), basis: the double's face. Per-frame fits alternating with the
    shot's identity offsets (`identity_offsets`, used for tracking only: the double is rendered as it is), then
    the temporal term (`smooth_track`: rotation vectors, translation / depth and expression weights; frames without
    a face are bridged). Returns a HeadTrack: error is the double's landmarks vs the plate's (what a viewer sees),
    fit_error the same with the offsets (how well the head was tracked)."""
    from scipy.spatial.transform import Rotation

    cfg = config or HeadTrackConfig()
    landmarks = np.asarray(landmarks, np.float64)
    valid = np.asarray(valid, bool) & np.isfinite(landmarks[:, basis.ids]).all((1, 2))
    E = len(basis.names)
    if not valid.any():
        raise ValueError("no face in the plate: nothing to track")
    rv0, t0 = _initial_poses(landmarks, valid, K, basis)
    # rigid first: the shot's identity offsets must absorb how the performer's face differs from the double's
    # before expressions are fitted, or a lower lip or narrower eyes become "jaw open" or "blink" every frame
    rigid = FaceBasis(basis.ids, basis.neutral, basis.deltas[:0], ())
    params, _ = _fit_frames(landmarks, valid, K, rigid, rv0, t0, cfg)
    params = np.concatenate([params, np.zeros((len(params), E))], axis=1)
    tracking = basis
    for _ in range(max(cfg.identity_rounds, 0)):
        off = identity_offsets(params, landmarks, valid, K, basis, cfg.identity_ridge)   # total, not incremental
        tracking = FaceBasis(basis.ids, basis.neutral + off, basis.deltas, basis.names)
        params, _ = _fit_frames(landmarks, valid, K, tracking, params[:, :3], params[:, 3:6], cfg)
    if cfg.identity_rounds <= 0:
        params, _ = _fit_frames(landmarks, valid, K, basis, params[:, :3], params[:, 3:6], cfg)
    params[:, :3] = _unwrap_rotvecs(params[:, :3])
    sm = _smooth_where_it_fits(params, landmarks, valid, K, tracking, cfg)
    R = Rotation.from_rotvec(sm[:, :3]).as_matrix()
    return HeadTrack(R, sm[:, 3:6].copy(), sm[:, 6:].copy(), valid, _shot_error(sm, landmarks, valid, K, basis),
                     float(K[0, 0]), _shot_error(sm, landmarks, valid, K, tracking))


SMOOTHING_ROUNDS = 4       # reweightings of the frames the temporal term pulls off the face (8^4 at most)


def _smooth_where_it_fits(params: np.ndarray, landmarks: np.ndarray, valid: np.ndarray, K: np.ndarray,
                          basis: FaceBasis, cfg: HeadTrackConfig) -> np.ndarray:
    """The temporal term, kept from pulling the head off the face: smooth (Whittaker), and wherever that made a
    frame's landmark error worse than its own fit by more than cfg.smoothing_tolerance (a fast turn), weight that
    frame's data 8x more and smooth again (up to SMOOTHING_ROUNDS times); a frame still worse after that keeps
    its own fit. Returns (F, 6 + E) smoothed parameters."""
    E = params.shape[1] - 6
    depth = float(np.median(params[valid, 5]))
    if cfg.temporal_weight is None:
        lam = gcv_smoothing(params, valid.astype(np.float64))
    else:
        lam = np.r_[np.full(3, cfg.temporal_weight), np.full(3, cfg.temporal_weight * depth ** 2),
                    np.full(E, cfg.temporal_weight)]
    own = _shot_error(params, landmarks, valid, K, basis)
    weight = valid.astype(np.float64)
    for _ in range(SMOOTHING_ROUNDS):
        sm = smooth_track(params, weight, lam)
        sm[:, 6:] = sm[:, 6:].clip(0, 1)
        worse = valid & (_shot_error(sm, landmarks, valid, K, basis) > own + cfg.smoothing_tolerance)
        if not worse.any():
            return sm
        weight[worse] *= 8.0
    # still pulled off the face (a short shot turning tens of degrees a frame, whose per-frame fits trade depth for
    # identity offsets: a fraction of a degree moves its landmarks by inter-ocular distances): its own fit
    sm[worse] = params[worse]
    return sm


def _unwrap_rotvecs(rv: np.ndarray) -> np.ndarray:
    """Rotation vectors made continuous frame to frame (r and r - 2 pi r/|r| are the same rotation)."""
    out = rv.copy()
    for f in range(1, len(out)):
        n = np.linalg.norm(out[f])
        if n > 1e-9:
            alt = out[f] - 2 * np.pi * out[f] / n
            if np.linalg.norm(alt - out[f - 1]) < np.linalg.norm(out[f] - out[f - 1]):
                out[f] = alt
    return out


def yaw_pitch_deg(rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yaw (about the camera's y) and pitch (about x) in degrees of the head's facing direction for rotations
    (F, 3, 3) mapping a +Z-facing head frame to the camera (0, 0 = looking straight into the lens)."""
    d = rotation[:, :, 2]                   # the head's +Z (facing) axis in the camera; facing it = (0, 0, -1)
    yaw = np.degrees(np.arctan2(d[:, 0], -d[:, 2]))
    pitch = np.degrees(np.arctan2(-d[:, 1], np.hypot(d[:, 0], d[:, 2])))
    return yaw, pitch
