"""Landmarks on a scan without a person clicking: the scan is rendered from a ring of virtual cameras
(neural_render's rasterizer, with the scan's vertex colours or texture when it has them, shaded grey
geometry otherwise), MediaPipe's pose, face-mesh and hand landmarks are detected on the renders
(capture.landmarks), and each landmark is triangulated robustly (capture.triangulation: RANSAC over the
views, reprojection-error gated) in the scan's frame.

The triangulated points are what the calibrated landmark regressor was made from (renders of the virtual
actor, triangulated the same way), so ``reconstruction.fitting.landmarks.calibrated_spec`` compares like
with like: the model fit and the non-rigid stage use them as correspondences.

Two rings: the whole body (pose and hands), then a ring of head close-ups around the face direction the
first ring found (the face mesh needs the face large in the frame).

Landmark ids: landmark_regressor.py's id space (pose i, face 1000 + i, hand.L 2000 + i, hand.R 3000 + i).
Units: metres, the scan's frame. The rings circle +Y; a scan standing along another axis (Z-up, as many
photogrammetry tools export) is found lying on the renders, turned upright by the body's up the pose landmarks
give, and detected again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["ScanLandmarkConfig", "ScanLandmarks", "detect_scan_landmarks", "ring_cameras", "render_scan"]

SCAN_BACKGROUND_SRGB = (0.46, 0.47, 0.5)   # the synthetic captures' backdrop (what the regressor was calibrated on)
MAX_TILT_DEG = 35.0     # a body whose up (shoulders over ankles) is further than this from +Y is turned upright
UPRIGHT_KEEP = 0.8      # ... and its landmarks found upright are kept unless fewer than this share of the first's
SNAP_DEG = 20.0         # a body's up this close to a coordinate axis is taken as that axis (`_snapped`)


@dataclass
class ScanLandmarkConfig:
    views: int = 8                 # cameras on the whole-body ring (evenly spaced about +Y)
    size: int = 640                # whole-body render width = height, pixels
    head_views: int = 5            # head close-ups, spread over +-head_spread_deg around the face direction
    head_spread_deg: float = 70.0  # half-angle of the head ring about the face direction, degrees
    head_size: int = 384           # head close-up width = height, pixels
    supersample: int = 2           # anti-aliasing samples per pixel side of the renders
    max_error_px: float = 6.0      # landmarks triangulated with a larger RMS reprojection error are dropped
    min_pose_visibility: float = 0.5  # MediaPipe pose visibility below this: the view does not count
    hands: bool = True             # detect hand landmarks on the whole-body ring


@dataclass(frozen=True)
class ScanLandmarks:
    """Landmarks found on a scan. ids (L,) int64 landmark ids; points (L, 3) float64 triangulated positions
    (metres, scan frame); error_px (L,) RMS reprojection error; n_views (L,) views used; renders: a few
    (H, W, 3) uint8 views with the detections drawn (for the report); seconds: timings."""

    ids: np.ndarray
    points: np.ndarray
    error_px: np.ndarray
    n_views: np.ndarray
    renders: list[np.ndarray] = field(default_factory=list, repr=False)
    seconds: dict[str, float] = field(default_factory=dict)
    up: np.ndarray | None = None      # (3,) the body's up in the scan's frame when it was not +Y
    turned: bool = False              # found on the scan turned upright (it stood along ``up``)

    def __len__(self) -> int:
        return len(self.ids)

    def counts(self) -> dict[str, int]:
        """Number of landmarks per set ('pose', 'face', 'hand.L', 'hand.R')."""
        from reconstruction.fitting.landmark_regressor import landmark_set

        out = {"pose": 0, "face": 0, "hand.L": 0, "hand.R": 0}
        for i in self.ids:
            out[landmark_set(int(i))] += 1
        return out


def ring_cameras(target: np.ndarray, extent_m: float, n: int, size: int, *, fov_y_deg: float = 40.0,
                 start_deg: float = 0.0, spread_deg: float = 360.0, elevation: float = 0.1):
    """``n`` look-at cameras (a capture.Camera batch, float32) on a horizontal circle about +Y around ``target``
    (3,) metres, at the distance where a sphere of diameter ``extent_m`` fills the frame; azimuths from
    start_deg - spread/2 to start_deg + spread/2 (full circle when spread_deg = 360); elevation: camera height
    above the target as a fraction of the distance."""
    import torch

    from capture.camera import Camera

    radius = 0.5 * extent_m / np.tan(np.radians(fov_y_deg) / 2) * 1.1
    if spread_deg >= 360.0:
        az = start_deg + 360.0 * np.arange(n) / n
    else:
        az = start_deg + (np.linspace(-0.5, 0.5, n) * spread_deg if n > 1 else np.zeros(1))
    cams = []
    for i, a in enumerate(np.radians(az)):
        eye = np.asarray(target, np.float64) + radius * np.array([np.sin(a), elevation, np.cos(a)])
        cams.append(Camera.look_at(eye, target, width=size, height=size, fov_y_deg=fov_y_deg, name=f"ring{i:02d}",
                                   dtype=torch.float32))
    return Camera.stack(cams)


def render_scan(scan, cameras, supersample: int = 2) -> np.ndarray:
    """The scan seen by ``cameras`` (B views) -> (B, H, W, 3) uint8 sRGB over the studio backdrop. Albedo: the
    scan's texture, else its vertex colours, else a uniform grey (shaded geometry)."""
    import torch

    from neural_render import composite, render_mesh

    v = torch.as_tensor(scan.vertices, dtype=torch.float32)
    f = torch.as_tensor(scan.faces)
    kw: dict = {}
    if scan.texture is not None and scan.uvs is not None:
        kw = {"uvs": torch.as_tensor(scan.uvs, dtype=torch.float32), "texture": torch.as_tensor(scan.texture)}
        if scan.face_uvs is not None:
            kw["face_uvs"] = torch.as_tensor(scan.face_uvs)
    elif scan.colors is not None:
        kw = {"vertex_colors": torch.as_tensor(scan.colors, dtype=torch.float32)}
    out = []
    with torch.no_grad():
        for i in range(len(cameras)):          # one view at a time: bounded memory
            rgba = render_mesh(v, f, cameras[i], supersample=supersample, **kw)
            rgb = composite(rgba, SCAN_BACKGROUND_SRGB)[0].clamp(0, 1).numpy()
            out.append((rgb * 255 + 0.5).astype(np.uint8))
    return np.stack(out)


def _observations(dets, cfg: ScanLandmarkConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections of V views -> (ids (N,), uv (V, N, 2) NaN = unseen, conf (V, N))."""
    from reconstruction.fitting.landmark_regressor import SET_OFFSETS

    V = len(dets)
    ids = np.concatenate([np.arange(33), SET_OFFSETS["face"] + np.arange(478), SET_OFFSETS["hand.L"] + np.arange(21),
                          SET_OFFSETS["hand.R"] + np.arange(21)])
    uv = np.full((V, len(ids), 2), np.nan)
    conf = np.zeros((V, len(ids)))
    for k, d in enumerate(dets):
        if d.has_pose:
            ok = d.pose_conf >= cfg.min_pose_visibility
            uv[k, :33][ok], conf[k, :33][ok] = d.pose[ok], d.pose_conf[ok]
        if d.has_face:
            uv[k, 33:511], conf[k, 33:511] = d.face, 1.0
        for side in range(2):
            if d.hands_conf[side].max(initial=0) > 0:
                sl = slice(511 + 21 * side, 532 + 21 * side)
                uv[k, sl], conf[k, sl] = d.hands[side], d.hands_conf[side]
    return ids, uv, conf


def _triangulate(cams, dets, cfg: ScanLandmarkConfig, only: tuple[int, int] | None = None):
    """(ids, X (N, 3), err (N,), n_views (N,), ok (N,)) from the detections of the views ``cams``."""
    from capture.npcam import PinholeNP
    from capture.triangulation import triangulate_points

    ids, uv, conf = _observations(dets, cfg)
    if only is not None:
        keep = (ids >= only[0]) & (ids < only[1])
        ids, uv, conf = ids[keep], uv[:, keep], conf[:, keep]
    pins = []
    for i in range(len(cams)):
        c = cams[i]
        pins.append(PinholeNP(name=c.name, K=c.K.double().numpy(), R=c.R.double().numpy(), t=c.t.double().numpy(),
                              width=c.width, height=c.height))
    tri = triangulate_points(pins, uv, conf, threshold_px=cfg.max_error_px)
    ok = tri.ok & (tri.error_px <= cfg.max_error_px) & (tri.n_views >= 2)
    return ids, tri.X, tri.error_px, tri.n_views, ok


def detect_scan_landmarks(scan, config: ScanLandmarkConfig | None = None, detector=None,
                          progress: Callable[[str, float], None] | None = None) -> ScanLandmarks:
    """Render ``scan`` (a scan_registration.Scan) from the two camera rings, detect MediaPipe landmarks and
    triangulate them; see the module docstring. A scan that does not stand up +Y (a photogrammetry export is often
    Z-up) is found lying on the renders: the body's up is read from the pose landmarks found there (shoulders over
    ankles), and when it is more than ``MAX_TILT_DEG`` off +Y the scan is turned upright and detected again (the
    points are returned in the scan's own frame; ``ScanLandmarks.up`` says which way was up). detector: a
    capture.landmarks.LandmarkDetector to reuse (None = a new one, closed at the end). progress(step, fraction)."""
    from capture.landmarks import LandmarkDetector

    cfg = config or ScanLandmarkConfig()
    report = progress or (lambda *_: None)
    own = detector is None
    det = detector or LandmarkDetector(mask=False, hands=cfg.hands)
    try:
        res = _detect_rings(scan, cfg, det, report)
        up = body_up(res)
        if up is not None and np.degrees(np.arccos(np.clip(up[1], -1, 1))) > MAX_TILT_DEG:
            R = _rotation_to_y(_snapped(up))             # the scan turned upright: X_upright = X @ R.T
            log.info("%s: the body's up is (%.2f, %.2f, %.2f) in the scan's frame, not +Y: landmarks detected again "
                     "on the scan turned upright", getattr(scan, "path", "scan"), *up)
            report("the scan lies on its side: turned upright", 0.0)
            upright = dataclasses.replace(scan, vertices=scan.vertices @ R.T, normals=scan.normals @ R.T)
            again = _detect_rings(upright, cfg, det, report)
            # the upright renders are what MediaPipe and the head ring expect: kept unless they lost much
            # both passes' timings are the run's: the first pass's keep their names, the upright one's "upright_"
            secs = {**res.seconds, **{f"upright_{k}": v for k, v in again.seconds.items()}}
            if len(again) >= UPRIGHT_KEEP * len(res):
                res = dataclasses.replace(again, points=again.points @ R, up=up, turned=True, seconds=secs)
            else:
                log.warning("%s: fewer landmarks found on the scan turned upright (%d) than as it lies (%d): the "
                            "first kept", getattr(scan, "path", "scan"), len(again), len(res))
                res = dataclasses.replace(res, up=up, seconds=secs)
    finally:
        if own:
            det.close()
    log.info("scan landmarks: %s", res.counts())
    report("scan landmarks done", 1.0)
    return res


def body_up(found: ScanLandmarks) -> np.ndarray | None:
    """(3,) unit vector, the body's up in the frame of ``found``'s points: from the ankles' midpoint (else the
    hips') to the shoulders' (MediaPipe pose 27/28, 23/24, 11/12); None when those were not triangulated."""
    pos = {int(i): found.points[k] for k, i in enumerate(found.ids) if i < 33}
    if 11 not in pos or 12 not in pos:
        return None
    top = (pos[11] + pos[12]) / 2
    low = next(((pos[a] + pos[b]) / 2 for a, b in ((27, 28), (23, 24)) if a in pos and b in pos), None)
    if low is None or np.linalg.norm(top - low) < 0.1:
        return None
    return (top - low) / np.linalg.norm(top - low)


def nearest_axis(up: np.ndarray) -> tuple[np.ndarray, str] | None:
    """The signed coordinate axis ((3,), its name "+Z") nearest the unit vector ``up`` (3,) when within
    ``SNAP_DEG`` of it, else None: the axis a scan was exported standing along."""
    k = int(np.argmax(np.abs(up)))
    axis = np.zeros(3)
    axis[k] = np.sign(up[k])
    if np.degrees(np.arccos(np.clip(float(up @ axis), -1.0, 1.0))) >= SNAP_DEG:
        return None
    return axis, f"{'+' if axis[k] > 0 else '-'}{'XYZ'[k]}"


def _snapped(up: np.ndarray) -> np.ndarray:
    """The signed coordinate axis nearest ``up`` (3,) when within ``SNAP_DEG`` of it, else up itself. A scan is
    exported with an axis up (Z-up, X-up, -Y); the body's own up (shoulders over ankles) leans a degree or two with
    its posture, and turning by it would tilt the scan off the upright the rings (and MediaPipe's face mesh, on the
    head ring) see best."""
    near = nearest_axis(up)
    return up if near is None else near[0]


def _rotation_to_y(up: np.ndarray) -> np.ndarray:
    """(3, 3) the smallest rotation taking the unit vector ``up`` to +Y (a half turn about +X when up is -Y)."""
    from scipy.spatial.transform import Rotation

    y = np.array([0.0, 1.0, 0.0])
    axis = np.cross(up, y)
    if np.linalg.norm(axis) < 1e-9:
        return np.eye(3) if up[1] > 0 else np.diag([1.0, -1.0, -1.0])
    angle = np.arccos(np.clip(float(up @ y), -1.0, 1.0))
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()


def _detect_rings(scan, cfg: ScanLandmarkConfig, det, report) -> ScanLandmarks:
    """The body ring, then the head ring around the face the body ring found, on ``scan`` as it stands (+Y up
    assumed): the landmarks triangulated in its frame."""
    import time

    from capture.landmarks import LandmarkDetector

    secs: dict[str, float] = {}
    t = time.perf_counter()
    lo, hi = scan.vertices.min(0), scan.vertices.max(0)
    centre = (lo + hi) / 2
    body_cams = ring_cameras(centre, float(np.linalg.norm(hi - lo)) * 0.92, cfg.views, cfg.size)
    report("rendering the scan (body ring)", 0.0)
    imgs = render_scan(scan, body_cams, cfg.supersample)
    secs["render_body_s"] = time.perf_counter() - t
    t = time.perf_counter()
    dets = []
    for k, im in enumerate(imgs):
        report(f"landmarks on body view {k + 1}/{len(imgs)}", 0.1 + 0.5 * k / len(imgs))
        dets.append(det.detect(im))
    secs["detect_body_s"] = time.perf_counter() - t
    ids, X, err, nv, ok = _triangulate(body_cams, dets, cfg)
    found = {"ids": [ids[ok]], "X": [X[ok]], "err": [err[ok]], "nv": [nv[ok]]}
    previews = [_draw(imgs[k], dets[k]) for k in range(0, len(imgs), max(1, len(imgs) // 4))][:4]
    head = _head_frame(ids, X, ok)
    if head is not None and cfg.head_views > 0:
        t = time.perf_counter()
        report("rendering the scan (head ring)", 0.6)
        c, az, extent = head
        head_cams = ring_cameras(c, extent, cfg.head_views, cfg.head_size, fov_y_deg=30.0, start_deg=az,
                                 spread_deg=2 * cfg.head_spread_deg, elevation=0.05)
        himgs = render_scan(scan, head_cams, cfg.supersample)
        hdet = LandmarkDetector(mask=False, pose=False, hands=False, face=True)
        try:
            hdets = [hdet.detect(im) for im in himgs]
        finally:
            hdet.close()
        hid, hX, herr, hnv, hok = _triangulate(head_cams, hdets, cfg, only=(1000, 2000))
        face = (ids >= 1000) & (ids < 2000)
        keep = ~np.isin(found["ids"][0], hid[hok]) | ~face[ok]
        for k, arr in (("ids", hid), ("X", hX), ("err", herr), ("nv", hnv)):
            found[k] = [found[k][0][keep], arr[hok]]
        previews.append(_draw(himgs[len(himgs) // 2], hdets[len(himgs) // 2]))
        secs["head_ring_s"] = time.perf_counter() - t
    order = np.argsort(np.concatenate(found["ids"]), kind="stable")
    return ScanLandmarks(ids=np.concatenate(found["ids"])[order].astype(np.int64),
                         points=np.concatenate(found["X"])[order], error_px=np.concatenate(found["err"])[order],
                         n_views=np.concatenate(found["nv"])[order], renders=previews, seconds=secs)


def _head_frame(ids: np.ndarray, X: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """(head centre (3,), azimuth of the face direction in degrees (0 = +Z, +X at 90), head ring extent in
    metres) from the triangulated pose landmarks (nose 0, ears 7 and 8), or None when they are missing."""
    pos = {int(i): X[k] for k, i in enumerate(ids) if ok[k] and i < 33}
    if not all(k in pos for k in (0, 7, 8)):
        return None
    ears = (pos[7] + pos[8]) / 2
    fwd = pos[0] - ears
    fwd[1] = 0.0
    if np.linalg.norm(fwd) < 1e-6:
        return None
    width = float(np.linalg.norm(pos[7] - pos[8]))
    return ears + 0.3 * (pos[0] - ears), float(np.degrees(np.arctan2(fwd[0], fwd[2]))), max(2.4 * width, 0.25)


def _draw(img: np.ndarray, det) -> np.ndarray:
    """A copy of ``img`` with the detections drawn: pose green, face red, hands blue (2 px dots)."""
    out = img.copy()
    H, W = out.shape[:2]
    for pts, ok, col in ((det.pose, det.pose_conf > 0.5, (40, 220, 40)), (det.face, det.face_conf > 0, (230, 40, 40)),
                         (det.hands.reshape(-1, 2), det.hands_conf.reshape(-1) > 0, (40, 90, 240))):
        for u, v in pts[ok]:
            x, y = int(u), int(v)
            if 0 <= x < W and 0 <= y < H:
                out[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = col
    return out
