"""ChArUco rig calibration with OpenCV's aruco module: detection, per-camera intrinsics, extrinsics of
every camera in one frame, and a joint bundle adjustment (scipy least squares, Huber loss) of
intrinsics, distortion, camera poses and board poses. Outlier views are flagged and left out.

Layout of the input (``calibrate_rig_from_folder``): ``IMAGES_DIR/CAMERA/*.png|jpg``, one folder per
camera; files with the same name across cameras were taken at the same moment.

World frame of the result: the board's own frame at the reference moment (the first moment, in name
order, at which the reference camera sees the board): origin at the board's top-left chessboard
corner, x along the squares_x side, y along the squares_y side, z into the board, metres. Image
coordinates follow Doppel's convention (pixel centres at integer + 0.5): OpenCV's detections (pixel
centres at integers) are shifted by +0.5.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture.bundle_adjustment import BundleAdjustment, BundleAdjustmentConfig, Observation, _rt_to_T
from capture.camera import Camera
from capture.images import read_image
from capture.npcam import PinholeNP
from core.conventions import doppel_to_opencv_pixels, opencv_to_doppel_K, opencv_to_doppel_pixels
from core.errors import DoppelError

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MIN_CORNERS = 6          # fewest ChArUco corners for a view to be used
OUTLIER_RMS_PX = 1.0     # a view whose RMS exceeds max(this, OUTLIER_FACTOR * median) is flagged
OUTLIER_FACTOR = 4.0
BA_LOSS = "huber"
BA_MAX_NFEV = 200
SUBPIX_WIN = (3, 3)      # largest cornerSubPix half window, px (measured best of 3/5/7 on exact renders)
SUBPIX_SPACING_FRACTION = 0.1  # half window = this x the median corner spacing in the image, px


class CalibrationFailed(DoppelError):
    """Rig calibration could not produce cameras (too few detections, a camera never sees the board...)."""


@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board. Sizes in metres."""

    squares_x: int = 7        # chessboard squares along x
    squares_y: int = 5        # chessboard squares along y
    square: float = 0.08      # square side, m
    marker: float = 0.06      # ArUco marker side, m
    dict: str = "DICT_5X5_100"  # cv2.aruco predefined dictionary name

    @staticmethod
    def parse(text: str) -> BoardSpec:
        """'charuco:squares_x=7,squares_y=5,square=0.08,marker=0.06,dict=DICT_5X5_100' -> BoardSpec."""
        m = re.fullmatch(r"\s*charuco\s*(?::(.*))?", text)
        if not m:
            raise ValueError(f"board {text!r}: expected 'charuco:squares_x=7,squares_y=5,square=0.08,"
                             "marker=0.06,dict=DICT_5X5_100'")
        kw: dict = {}
        for part in filter(None, (m.group(1) or "").split(",")):
            if "=" not in part:
                raise ValueError(f"board {text!r}: {part!r} is not key=value")
            k, v = (s.strip() for s in part.split("=", 1))
            if k in ("squares_x", "squares_y"):
                kw[k] = int(v)
            elif k in ("square", "marker"):
                kw[k] = float(v)
            elif k == "dict":
                kw[k] = v
            else:
                raise ValueError(f"board {text!r}: unknown key {k!r} (squares_x, squares_y, square, marker, dict)")
        spec = BoardSpec(**kw)
        spec.validate()
        return spec

    def validate(self) -> None:
        import cv2

        if self.squares_x < 2 or self.squares_y < 2:
            raise ValueError(f"board: needs at least 2x2 squares, got {self.squares_x}x{self.squares_y}")
        if not 0 < self.marker < self.square:
            raise ValueError(f"board: marker ({self.marker} m) must be positive and smaller than square "
                             f"({self.square} m)")
        if not hasattr(cv2.aruco, self.dict):
            raise ValueError(f"board: unknown ArUco dictionary {self.dict!r} (e.g. DICT_5X5_100)")

    def board(self):
        """The cv2.aruco.CharucoBoard."""
        import cv2

        self.validate()
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dict))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square, self.marker, d)

    @property
    def corners3d(self) -> np.ndarray:
        """(N, 3) ChArUco corner positions in the board frame, metres (z = 0)."""
        return np.asarray(self.board().getChessboardCorners(), dtype=np.float64).reshape(-1, 3)

    @property
    def size_m(self) -> tuple[float, float]:
        return self.squares_x * self.square, self.squares_y * self.square


@dataclass
class Detection:
    ids: np.ndarray       # (n,) int ChArUco corner ids
    uv: np.ndarray        # (n, 2) float64 pixels (Doppel convention, centres at +0.5)


def detect_charuco(image: np.ndarray, spec: BoardSpec, detector=None) -> Detection | None:
    """image (H, W) or (H, W, 3) uint8 -> the ChArUco corners found, or None when fewer than MIN_CORNERS."""
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if detector is None:
        detector = cv2.aruco.CharucoDetector(spec.board())
    cc, ci, _, _ = detector.detectBoard(image)
    if cc is None or ci is None or len(cc) < MIN_CORNERS:
        return None
    # CharucoDetector's corners come out about +0.5 px off OpenCV's own pixel convention (measured on exact
    # renders, see tests/capture/test_charuco.py); cornerSubPix from there lands on the true saddle point.
    # The window must stay inside the white gap between a corner and the nearest marker (1/8 of a square on
    # the default board): it scales with the corner spacing in the image, up to SUBPIX_WIN.
    pts = cc.reshape(-1, 2)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    half = int(np.clip(SUBPIX_SPACING_FRACTION * np.median(d.min(1)), 1, SUBPIX_WIN[0]))
    cc = cv2.cornerSubPix(image, cc.astype(np.float32).reshape(-1, 1, 2).copy(), (half, half), (-1, -1),
                          (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-6))
    return Detection(ids=ci.reshape(-1).astype(np.int64),
                     uv=opencv_to_doppel_pixels(cc.reshape(-1, 2).astype(np.float64)))


@dataclass
class RigCalibration:
    cameras: list[Camera]                          # calibrated cameras, world = board frame at the reference moment
    rms: dict[str, float]                          # camera -> RMS reprojection error after BA, px
    views_used: dict[str, list[str]]               # camera -> moments (file stems) used
    outlier_views: list[tuple[str, str, float]]    # (camera, moment, RMS px) flagged and left out
    missing_views: dict[str, list[str]]            # camera -> moments where the board was not detected
    reference: tuple[str, str]                     # (camera, moment) that fixes the world frame
    board_poses: dict[str, np.ndarray] = field(default_factory=dict)  # moment -> (4, 4) board-to-world
    initial_rms: dict[str, float] = field(default_factory=dict)       # per-camera RMS of cv2.calibrateCamera
    moments_matched_by: str = "file name"          # how photos of one moment were told: capture.rig_moments.RULES

    def summary(self) -> dict:
        return {"rms_px": {k: round(v, 4) for k, v in self.rms.items()},
                "views_used": {k: len(v) for k, v in self.views_used.items()},
                "outlier_views": [list(o) for o in self.outlier_views],
                "missing_views": self.missing_views,
                "reference": list(self.reference), "moments_matched_by": self.moments_matched_by}


def _calibrate_intrinsics(spec: BoardSpec, dets: dict[str, Detection], size: tuple[int, int], cam: str):
    """cv2.calibrateCamera on one camera's views -> (K, dist, {moment: T_cam_board}, {moment: rms})."""
    import cv2

    obj = spec.corners3d
    moments = sorted(dets)
    if len(moments) < 3:
        raise CalibrationFailed(f"camera {cam!r}: the board was detected in only {len(moments)} image(s); "
                                "need at least 3 for intrinsics")
    objp = [obj[dets[m].ids].astype(np.float32) for m in moments]
    imgp = [doppel_to_opencv_pixels(dets[m].uv).astype(np.float32).reshape(-1, 1, 2) for m in moments]
    w, h = size
    rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(objp, imgp, (w, h), None, None)
    poses, errs = {}, {}
    for m, rv, tv, op, ip in zip(moments, rvecs, tvecs, objp, imgp, strict=True):
        proj, _ = cv2.projectPoints(op, rv, tv, K, dist)
        errs[m] = float(np.sqrt(np.mean(np.sum((proj - ip) ** 2, axis=-1))))
        poses[m] = _rt_to_T(rv, tv)
    log.info("camera %s: initial intrinsics RMS %.3f px over %d views", cam, rms, len(moments))
    # The principal point from cv2 is in OpenCV's pixel-centre convention: shift to ours.
    return opencv_to_doppel_K(K), dist.reshape(-1)[:5], poses, errs, float(rms)


def calibrate_rig(spec: BoardSpec, detections: dict[str, dict[str, Detection]],
                  image_sizes: dict[str, tuple[int, int]], reference_camera: str | None = None,
                  fix_k3: bool = False, progress: Callable[[str], None] | None = None) -> RigCalibration:
    """Calibrate a rig from ChArUco detections.

    detections: camera -> moment -> Detection (uv in Doppel pixels); image_sizes: camera -> (W, H).
    Steps: intrinsics per camera (with per-view outlier rejection), initial extrinsics through the camera /
    moment graph, then the joint bundle adjustment (capture.bundle_adjustment).
    Returns cameras whose world frame is the board at the reference moment (see module doc).
    """
    cams = sorted(detections)
    if not cams:
        raise CalibrationFailed("no cameras with detections")
    intr, cam_board, outliers, init_rms = _initial_intrinsics(spec, detections, image_sizes, progress)
    ref_cam = reference_camera or max(cams, key=lambda c: (len(cam_board[c]), -cams.index(c)))
    if ref_cam not in cam_board:
        raise CalibrationFailed(f"reference camera {ref_cam!r} has no detections")
    ref_m = sorted(cam_board[ref_cam])[0]
    T_cw, T_wb = _initial_extrinsics(cams, cam_board, ref_cam, ref_m)
    obs = [Observation(ci, m, detections[c][m].ids, detections[c][m].uv)
           for ci, c in enumerate(cams) for m in sorted(cam_board[c])]
    config = BundleAdjustmentConfig(loss=BA_LOSS, max_nfev=BA_MAX_NFEV, outlier_rms_px=OUTLIER_RMS_PX,
                                    outlier_factor=OUTLIER_FACTOR, fix_k3=fix_k3)
    ba = BundleAdjustment(cams, spec.corners3d, obs, ref_m, config)
    x, active = ba.refine(ba.pack(T_cw, intr, T_wb), outliers, progress)
    cameras, rms, used = _calibrated_cameras(ba, x, active, image_sizes)
    return RigCalibration(cameras=cameras, rms=rms, views_used=used, outlier_views=outliers,
                          missing_views={c: [] for c in cams}, reference=(ref_cam, ref_m),
                          board_poses={m: ba.board_pose(x, m) for m in ba.moments}, initial_rms=init_rms)


def _initial_intrinsics(spec: BoardSpec, detections: dict[str, dict[str, Detection]],
                        image_sizes: dict[str, tuple[int, int]], progress: Callable[[str], None] | None):
    """cv2.calibrateCamera per camera, again without the views far above the rest when enough remain.
    Returns (camera -> (K, dist), camera -> moment -> T_cam_board, [(camera, moment, RMS px) outliers],
    camera -> RMS px)."""
    intr, cam_board, outliers, init_rms = {}, {}, [], {}
    for c in sorted(detections):
        if progress:
            progress(f"intrinsics {c}")
        dets = detections[c]
        K, dist, poses, errs, rms = _calibrate_intrinsics(spec, dets, image_sizes[c], c)
        med = float(np.median(list(errs.values())))
        bad = [m for m, e in errs.items() if e > max(OUTLIER_RMS_PX, OUTLIER_FACTOR * med)]
        if bad and len(dets) - len(bad) >= 3:
            for m in bad:
                outliers.append((c, m, errs[m]))
                log.warning("camera %s: view %s flagged as outlier (RMS %.2f px)", c, m, errs[m])
            dets = {m: d for m, d in dets.items() if m not in bad}
            K, dist, poses, errs, rms = _calibrate_intrinsics(spec, dets, image_sizes[c], c)
        intr[c] = (K, dist)
        cam_board[c] = poses
        init_rms[c] = rms
    return intr, cam_board, outliers, init_rms


def _initial_extrinsics(cams: list[str], cam_board: dict[str, dict[str, np.ndarray]], ref_cam: str, ref_m: str
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Breadth-first over the camera / moment graph from (ref_cam, ref_m), whose board frame is the world.
    Returns (camera -> (4, 4) world-to-camera, moment -> (4, 4) board-to-world)."""
    T_cw: dict[str, np.ndarray] = {ref_cam: cam_board[ref_cam][ref_m].copy()}
    T_wb: dict[str, np.ndarray] = {}
    changed = True
    while changed:
        changed = False
        for c in list(T_cw):
            for m, T_cb in cam_board[c].items():
                if m not in T_wb:
                    T_wb[m] = np.linalg.inv(T_cw[c]) @ T_cb
                    changed = True
        for c in cams:
            if c in T_cw:
                continue
            shared = [m for m in cam_board[c] if m in T_wb]
            if shared:
                T_cw[c] = cam_board[c][shared[0]] @ np.linalg.inv(T_wb[shared[0]])
                changed = True
    unreached = [c for c in cams if c not in T_cw]
    if unreached:
        raise CalibrationFailed(f"cameras {unreached} never see the board at a moment shared (through other "
                                "cameras) with the reference camera; cannot place them in one frame")
    return T_cw, T_wb


def _calibrated_cameras(ba: BundleAdjustment, x: np.ndarray, active: list[bool],
                        image_sizes: dict[str, tuple[int, int]]):
    """The solved cameras -> (cameras, camera -> RMS px over its used corners, camera -> moments used)."""
    per_view = ba.per_view_rms(x, active)
    n_corners = {(o.camera, o.moment): len(o.ids) for o in ba.obs}
    cameras, rms, used = [], {}, {}
    for ci, c in enumerate(ba.cameras):
        rt, K, dist = ba.camera(x, ci)
        T = _rt_to_T(rt[:3], rt[3:])
        w, h = image_sizes[c]
        cameras.append(PinholeNP(name=c, K=K, R=T[:3, :3], t=T[:3, 3], width=w, height=h, dist=dist).to_camera())
        sq = [(e ** 2, n_corners[(cj, m)]) for (cj, m), e in per_view.items() if cj == ci]
        rms[c] = float(np.sqrt(sum(a * n for a, n in sq) / max(1, sum(n for _, n in sq))))
        used[c] = sorted(m for (cj, m) in per_view if cj == ci)
    return cameras, rms, used


def list_rig_images(images_dir: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """IMAGES_DIR/CAMERA/*.png|jpg -> camera -> moment (file stem) -> path."""
    root = Path(images_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: calibration images folder does not exist")
    from capture.rig_moments import photos_by_camera

    out = photos_by_camera(root, IMAGE_EXTS)
    if not out:
        raise FileNotFoundError(f"{root}: no camera folders with images (expected {root}/CAMERA/*.png)")
    return out


def read_image_checked(path: Path, flags: int | None = None) -> np.ndarray:
    """The decoded image with a clear error for a missing, corrupt or oversized file (capture.images)."""
    return read_image(path, flags)


def calibrate_rig_from_folder(images_dir: str | os.PathLike, spec: BoardSpec,
                              reference_camera: str | None = None,
                              progress: Callable[[str], None] | None = None,
                              num_threads: int | None = None) -> RigCalibration:
    """Detect the board in IMAGES_DIR/CAMERA/*.png and calibrate the rig (see ``calibrate_rig``). Photos of one
    moment are told by their file names (``capture.rig_moments.match_moments``): the same name in every camera
    folder, or the same name once the camera's name is taken out, or the same frame number. The photos are read
    and searched for the board on ``num_threads`` threads (default: every core this process may use); each photo's
    detection is its own, so any number gives the same calibration."""
    from capture.images import check_threads
    from capture.rig_moments import RULES, match_moments

    check_threads(num_threads)                       # before the photos are listed: a -1 is refused at once
    files, matched_by = match_moments(list_rig_images(images_dir))
    if matched_by != RULES[0]:
        log.info("%s: photos of one moment matched by %s (file names differ per camera)", images_dir, matched_by)
    detections: dict[str, dict[str, Detection]] = {cam: {} for cam in files}
    sizes: dict[str, tuple[int, int]] = {}
    missing: dict[str, list[str]] = {cam: [] for cam in files}
    unreadable: list[str] = []
    for (cam, m, path), (size, det, problem) in _detect_photos(files, spec, num_threads, progress):
        if problem is not None:
            unreadable.append(problem)
            continue
        if sizes.setdefault(cam, size) != size:
            raise ValueError(f"{path}: image is {size[0]}x{size[1]} but camera {cam!r}'s other images are "
                             f"{sizes[cam][0]}x{sizes[cam][1]}")
        if det is None:
            missing[cam].append(m)
        else:
            detections[cam][m] = det
    if unreadable:
        total = sum(map(len, files.values()))
        raise ValueError(f"{len(unreadable)} of {total} photos cannot be read: {'; '.join(unreadable)}. Copy them "
                         "again from the card, or remove them")
    result = calibrate_rig(spec, detections, sizes, reference_camera=reference_camera, progress=progress)
    result.missing_views = missing
    result.moments_matched_by = matched_by
    return result


def _detect_photos(files: dict[str, dict[str, Path]], spec: BoardSpec, num_threads: int | None,
                   progress: Callable[[str], None] | None) -> Iterator[tuple[tuple[str, str, Path], tuple]]:
    """((camera, moment, path), (size (W, H) or None, Detection or None, why it cannot be read or None)) for every
    photo, in the order of ``files``, read and searched on ``num_threads`` threads (`capture.images.map_photos`;
    each thread has its own detector); progress named as each photo's result comes."""
    import threading

    import cv2

    from capture.images import map_photos

    local = threading.local()

    def one(job: tuple[str, str, Path]) -> tuple:
        if not hasattr(local, "detector"):
            local.detector = cv2.aruco.CharucoDetector(spec.board())
        try:
            img = read_image_checked(job[2], cv2.IMREAD_GRAYSCALE)
        except ValueError as e:          # named by the caller, with the others, in one line
            return None, None, str(e)
        return (img.shape[1], img.shape[0]), detect_charuco(img, spec, local.detector), None

    jobs = [(cam, m, path) for cam, frames in files.items() for m, path in frames.items()]
    for job, result in zip(jobs, map_photos(one, jobs, num_threads), strict=True):
        if progress:
            progress(f"detect {job[0]}/{job[2].name}")
        yield job, result
