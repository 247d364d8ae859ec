"""``doppel capture ingest``: validate a session, detect landmarks and masks on every image, triangulate
every landmark, and measure image quality. Writes DIR/landmarks.npz, DIR/triangulated.json, DIR/masks/,
DIR/qc.json and contact-sheet PNGs (the HTML report is composed by the application layer)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from capture.images import read_image
from capture.landmarks import N_FACE, N_HAND, N_POSE, POSE_NAMES, ImageLandmarks, LandmarkDetector, no_landmarks
from capture.npcam import as_np
from capture.qc import ImageQC, cameras_out_of_place, flag_images, image_metrics
from capture.session import Session, load_session
from capture.triangulation import RANSAC_THRESHOLD_PX, thresholds_for, triangulate_points
from core.fileio import read_npz
from core.storage import atomic_write_bytes, atomic_write_json, atomic_write_npz, write_manifest

log = logging.getLogger(__name__)

POSE_MIN_VISIBILITY = 0.5   # pose landmarks below this visibility are not triangulated
THUMB_SIDE = 320            # contact-sheet thumbnail side, px


@dataclass
class IngestConfig:
    threshold_px: float = RANSAC_THRESHOLD_PX  # RANSAC inlier threshold, px of a 1024 px view (in proportion)
    cache_dir: Path | None = None              # landmark cache (default OUT/cache)
    face: bool = True                          # run the face mesh
    hands: bool = True                         # run the hand model
    pose_complexity: int = 1                   # MediaPipe pose model: 0 lite, 1 full, 2 heavy


@dataclass
class IngestResult:
    out: Path
    session: Session
    landmarks: dict[str, dict[str, ImageLandmarks]]     # frame -> camera -> landmarks; their masks are in
                                                        # OUT/masks/, not here (each is (0, 0))
    triangulated: dict                                  # the content of triangulated.json
    qc: list[ImageQC]
    camera_warnings: dict[str, str]
    contact_sheets: dict[str, str]                      # frame -> PNG path relative to out
    timings: dict[str, float] = field(default_factory=dict)
    cache_hits: int = 0                                 # images whose landmarks came from the cache

    @property
    def warnings(self) -> list[str]:
        w = list(self.session.warnings)
        w += [f"{q.frame}/{q.camera}: {m}" for q in self.qc for m in q.warnings]
        w += [f"{c}: {m}" for c, m in self.camera_warnings.items()]
        return w


def _tri_block(cams, uv, conf, names, threshold_px) -> tuple[list[dict], np.ndarray]:
    """Triangulate (V, N, 2) landmarks -> (json rows, per-view residual (V, N) px, NaN where unused)."""
    cams = [as_np(c) for c in cams]
    tri = triangulate_points(cams, uv, conf, threshold_px=thresholds_for(cams, threshold_px))
    rows = []
    resid = np.full(uv.shape[:2], np.nan)
    for n in range(uv.shape[1]):
        row = {"index": n, "name": names[n] if names else str(n), "ok": bool(tri.ok[n])}
        if tri.ok[n]:
            row.update(X=[round(float(v), 6) for v in tri.X[n]], error_px=round(float(tri.error_px[n]), 3),
                       views=[cams[v].name for v in tri.views[n]])
        rows.append(row)
        if tri.ok[n]:
            for v in range(len(cams)):
                if np.all(np.isfinite(uv[v, n])) and conf[v, n] > 0:
                    resid[v, n] = np.linalg.norm(cams[v].project(tri.X[n][None])[0] - uv[v, n])
    return rows, resid


def ingest(session_dir: str | os.PathLike, out: str | os.PathLike, config: IngestConfig | None = None,
           progress: Callable[[str, int, int], None] | None = None,
           provenance: dict | None = None) -> IngestResult:
    """Process a session into ``out`` (see module doc). progress(step, i, total) is called per image;
    provenance (e.g. ``actor_id``, ``consent_id``, ``production`` from a consent gate) is recorded in the
    manifest's params."""
    cfg = config or IngestConfig()
    t0 = time.perf_counter()
    session = load_session(session_dir)
    out = Path(out)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    timings = {"validate": time.perf_counter() - t0}
    cams = session.cameras
    frames = list(session.frames)
    det = LandmarkDetector(cache_dir=cfg.cache_dir or out / "cache", face=cfg.face, hands=cfg.hands,
                           pose_complexity=cfg.pose_complexity)
    t1 = time.perf_counter()
    with det:
        lms, qcs, thumbs = _detect_views(session, det, out, progress)
    timings["landmarks"] = time.perf_counter() - t1
    flag_images(qcs)
    arrays = _write_landmarks(out, cams, frames, lms)
    t2 = time.perf_counter()
    tri_frames, per_cam = _triangulate_frames(cams, frames, arrays, cfg.threshold_px)
    timings["triangulation"] = time.perf_counter() - t2
    cam_warn = cameras_out_of_place(per_cam)
    seen = {c.name: {"face": sum(q.face for q in qcs if q.camera == c.name),
                     "body": sum(q.pose for q in qcs if q.camera == c.name)} for c in cams}
    triangulated = {"units": "m", "frames": tri_frames, "camera_median_residual_px": per_cam,
                    "cameras_seeing": seen, "threshold_px": cfg.threshold_px}
    atomic_write_json(out / "triangulated.json", triangulated)
    atomic_write_json(out / "qc.json", {"images": [asdict(q) for q in qcs], "camera_warnings": cam_warn,
                                        "session_warnings": session.warnings})
    sheets = _write_contact_sheets(out, cams, frames, thumbs, qcs)
    timings["total"] = time.perf_counter() - t0
    write_manifest(out, "capture_ingest", inputs={"calibration": session.root / "calibration.json"},
                   params={"threshold_px": cfg.threshold_px, "face": cfg.face, "hands": cfg.hands,
                           "pose_complexity": cfg.pose_complexity, **dict(provenance or {})},
                   outputs={"landmarks": "landmarks.npz", "triangulated": "triangulated.json", "qc": "qc.json"},
                   extra={"session": str(session.root), "landmark_cache_hits": det.cache_hits})
    return IngestResult(out=out, session=session, landmarks=lms, triangulated=triangulated, qc=qcs,
                        camera_warnings=cam_warn, contact_sheets=sheets, timings=timings, cache_hits=det.cache_hits)


_NO_MASK = np.zeros((0, 0), np.float32)


def _detect_views(session: Session, det: LandmarkDetector, out: Path,
                  progress: Callable[[str, int, int], None] | None):
    """Landmarks, QC and a thumbnail of every image; writes OUT/masks/*.png. Returns (frame -> camera ->
    ImageLandmarks without their masks, [ImageQC], frame -> camera -> thumbnail as JPEG bytes: 0.3 MB a view
    decoded, held for a take's every view until the contact sheets are drawn)."""
    import cv2

    frames = list(session.frames)
    total = sum(len(v) for v in session.frames.values())
    lms: dict[str, dict[str, ImageLandmarks]] = {}
    qcs: list[ImageQC] = []
    thumbs: dict[str, dict[str, bytes]] = {}
    i = 0
    for f in frames:
        lms[f], thumbs[f] = {}, {}
        for cam in session.cameras:
            path = session.frames[f].get(cam.name)
            if path is None:        # a dropped frame: nothing detected, no mask, a blank tile in the sheet
                lms[f][cam.name] = no_landmarks(cam.width, cam.height, mask=False)
                s = THUMB_SIDE / max(cam.width, cam.height)
                thumbs[f][cam.name] = _jpeg(np.full((round(cam.height * s), round(cam.width * s), 3), 48, np.uint8))
                continue
            if progress:
                progress(f"{f}/{cam.name}", i, total)
            i += 1
            lm = det.detect_file(path)
            lms[f][cam.name] = replace(lm, mask=_NO_MASK)     # the mask goes to OUT/masks: a float a pixel
            bgr = read_image(path)                             # kept per view was 67 MB a 17 MP camera
            sharp, expo, clip = image_metrics(bgr)
            qcs.append(ImageQC(camera=cam.name, frame=f, sharpness=sharp, exposure=expo, clipped=clip,
                               mask_fraction=float((lm.mask > 0.5).mean()), face=lm.has_face, pose=lm.has_pose,
                               hands=lm.n_hands()))
            mask_name = f"{cam.name}.png" if len(frames) == 1 else f"{f}_{cam.name}.png"
            ok, buf = cv2.imencode(".png", (lm.mask * 255 + 0.5).astype(np.uint8))
            atomic_write_bytes(out / "masks" / mask_name, buf.tobytes())
            thumbs[f][cam.name] = _jpeg(draw_landmarks(bgr, lm))
    return lms, qcs, thumbs


def _write_landmarks(out: Path, cams, frames: list[str], lms) -> dict[str, np.ndarray]:
    """OUT/landmarks.npz; returns its arrays (F, V, ...) by name."""
    def stack(attr):
        return np.stack([np.stack([getattr(lms[f][c.name], attr) for c in cams]) for f in frames])

    arrays = {k: stack(k) for k in ("face", "face_conf", "pose", "pose_conf", "hands", "hands_conf",
                                    "face_from_crop")}
    atomic_write_npz(out / "landmarks.npz", cameras=np.array([c.name for c in cams]), frames=np.array(frames),
                     image_size=np.array([[c.width, c.height] for c in cams]), **arrays)
    return arrays


def _triangulate_frames(cams, frames: list[str], arrays: dict[str, np.ndarray], threshold_px: float
                        ) -> tuple[dict, dict[str, float]]:
    """Pose, face and hand landmarks triangulated per frame -> (frame -> rows and summary, camera -> median
    reprojection residual px (nan when it saw nothing))."""
    tri_frames, resid_all = {}, {c.name: [] for c in cams}
    for fi, f in enumerate(frames):
        pose_conf = np.where(arrays["pose_conf"][fi] >= POSE_MIN_VISIBILITY, arrays["pose_conf"][fi], 0.0)
        pose_rows, pr = _tri_block(cams, arrays["pose"][fi], pose_conf, POSE_NAMES, threshold_px)
        face_rows, fr = _tri_block(cams, arrays["face"][fi], arrays["face_conf"][fi], None, threshold_px)
        hands = arrays["hands"][fi].reshape(len(cams), 2 * N_HAND, 2)
        hconf = arrays["hands_conf"][fi].reshape(len(cams), 2 * N_HAND)
        hand_names = [f"{side}_{k}" for side in ("left", "right") for k in range(N_HAND)]
        hand_rows, _ = _tri_block(cams, hands, hconf, hand_names, threshold_px)
        for v, c in enumerate(cams):
            resid_all[c.name] += [x for x in np.concatenate([pr[v], fr[v]]) if np.isfinite(x)]
        tri_frames[f] = {"pose": pose_rows, "face": face_rows, "hands": hand_rows,
                         "summary": _summary(pose_rows, face_rows, hand_rows)}
    per_cam = {c: float(np.median(v)) if v else float("nan") for c, v in resid_all.items()}
    return tri_frames, per_cam


def _write_contact_sheets(out: Path, cams, frames: list[str], thumbs, qcs: list[ImageQC]) -> dict[str, str]:
    """OUT/contact_sheet[_FRAME].png; returns frame -> file name."""
    import cv2

    sheets = {}
    for f in frames:
        name = "contact_sheet.png" if len(frames) == 1 else f"contact_sheet_{f}.png"
        qc = {q.camera: q for q in qcs if q.frame == f}
        tiles = [cv2.imdecode(np.frombuffer(thumbs[f][c.name], np.uint8), cv2.IMREAD_COLOR) for c in cams]
        sheet = contact_sheet(tiles,
                              [_caption(c.name, qc[c.name]) if c.name in qc else f"{c.name}: no image (dropped)"
                               for c in cams])
        ok, buf = cv2.imencode(".png", sheet)
        atomic_write_bytes(out / name, buf.tobytes())
        sheets[f] = name
    return sheets


def _summary(pose_rows, face_rows, hand_rows) -> dict:
    def stats(rows):
        e = np.array([r["error_px"] for r in rows if r["ok"]])
        return {"triangulated": int(len(e)), "of": len(rows),
                "median_px": round(float(np.median(e)), 3) if len(e) else None,
                "p95_px": round(float(np.percentile(e, 95)), 3) if len(e) else None}

    return {"pose": stats(pose_rows), "face": stats(face_rows), "hands": stats(hand_rows)}


def _jpeg(bgr: np.ndarray) -> bytes:
    """A thumbnail kept for the contact sheet, as JPEG (quality 92): about a tenth of its pixels' bytes."""
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise ValueError("a thumbnail could not be encoded")
    return buf.tobytes()


def _caption(cam: str, q: ImageQC) -> str:
    flags = ("F" if q.face else "-") + ("B" if q.pose else "-") + str(q.hands)
    return f"{cam} {flags}{' !' if q.warnings else ''}"


def draw_landmarks(bgr: np.ndarray, lm: ImageLandmarks, side: int = THUMB_SIDE) -> np.ndarray:
    """A thumbnail (longest side ``side``) with the mask tinted and landmarks drawn: pose green, face red,
    hands blue. bgr (H, W, 3) uint8 -> (h, w, 3) uint8."""
    import cv2

    s = side / max(bgr.shape[:2])
    img = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA).astype(np.float32)
    m = cv2.resize(lm.mask, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)[..., None]
    img = img * (1 - 0.25 * m) + np.array([255, 0, 255], np.float32) * 0.25 * m
    img = img.astype(np.uint8)
    def dots(pts, color, r):
        for p in pts:
            if np.all(np.isfinite(p)):
                cv2.circle(img, (int(p[0] * s), int(p[1] * s)), r, color, -1, cv2.LINE_AA)

    if lm.has_face:
        dots(lm.face[::3], (40, 40, 230), 1)
    if lm.has_pose:
        dots(lm.pose[lm.pose_conf > POSE_MIN_VISIBILITY], (40, 220, 40), 2)
    for h in range(2):
        if lm.hands_conf[h].max() > 0:
            dots(lm.hands[h], (230, 120, 30), 1)
    return img


def contact_sheet(thumbs: list[np.ndarray], captions: list[str], cols: int | None = None) -> np.ndarray:
    """Tile thumbnails (each (h, w, 3) uint8) with captions under them -> one BGR image."""
    import cv2

    n = len(thumbs)
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    th = max(t.shape[0] for t in thumbs)
    tw = max(t.shape[1] for t in thumbs)
    cap = 22
    sheet = np.full((rows * (th + cap), cols * tw, 3), 30, np.uint8)
    for k, (t, c) in enumerate(zip(thumbs, captions, strict=True)):
        r, q = divmod(k, cols)
        y, x = r * (th + cap), q * tw
        sheet[y:y + t.shape[0], x:x + t.shape[1]] = t
        cv2.putText(sheet, c, (x + 4, y + th + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)
    return sheet


@dataclass
class IngestData:
    """What ``ingest`` wrote, read back (``load_ingest``). F frames, V cameras (ingest order).

    pose (F, V, 33, 2) px (Doppel pixel convention, NaN where not detected), pose_conf (F, V, 33) MediaPipe
    visibility in [0, 1]; face (F, V, 478, 2) px, face_conf (F, V, 478); hands (F, V, 2, 21, 2) px, [left, right]
    as the person's own hands, hands_conf (F, V, 2, 21) (0 where not detected; all 0 for ingests written without
    hands); image_size (V, 2) [width, height]; mask_paths: frame -> camera -> person mask PNG (uint8,
    255 = person) where it exists."""

    root: Path
    cameras: list[str]
    frames: list[str]
    image_size: np.ndarray
    pose: np.ndarray
    pose_conf: np.ndarray
    face: np.ndarray
    face_conf: np.ndarray
    mask_paths: dict[str, dict[str, Path]]
    hands: np.ndarray | None = None
    hands_conf: np.ndarray | None = None

    def __post_init__(self) -> None:
        F, V = len(self.frames), len(self.cameras)
        if self.hands is None or self.hands_conf is None:
            self.hands = np.full((F, V, 2, 21, 2), np.nan)
            self.hands_conf = np.zeros((F, V, 2, 21))

    def frame_index(self, frame: str | None) -> int:
        """Index of ``frame`` (None: the first frame); ValueError naming the frames if unknown."""
        if frame is None:
            return 0
        if frame not in self.frames:
            raise ValueError(f"{self.root}: no frame {frame!r} in landmarks.npz (frames: {', '.join(self.frames)})")
        return self.frames.index(frame)

    def mask(self, frame: str, camera: str) -> np.ndarray:
        """(H, W) float32 person probability in [0, 1]; FileNotFoundError if the ingest wrote none."""
        import cv2

        p = self.mask_paths.get(frame, {}).get(camera)
        if p is None or not p.is_file():
            raise FileNotFoundError(f"{self.root}: no person mask for frame {frame!r}, camera {camera!r}")
        return read_image(p, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0


def load_ingest(root: str | os.PathLike) -> IngestData:
    """Read an ingest folder (``doppel capture ingest`` output). FileNotFoundError if landmarks.npz is
    missing; ValueError naming the field if it is malformed."""
    root = Path(root)
    path = root / "landmarks.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{root}: no landmarks.npz (is this the output folder of `doppel capture ingest`?)")
    d = read_npz(path, "landmark archive")
    need = ("cameras", "frames", "image_size", "pose", "pose_conf", "face", "face_conf")
    missing = [k for k in need if k not in d]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing}")
    cams, frames = [str(c) for c in d["cameras"]], [str(f) for f in d["frames"]]
    F, V = len(frames), len(cams)
    if d["pose"].shape != (F, V, N_POSE, 2) or d["pose_conf"].shape != (F, V, N_POSE):
        raise ValueError(f"{path}: pose must be ({F}, {V}, {N_POSE}, 2) and pose_conf ({F}, {V}, {N_POSE}), got "
                         f"{d['pose'].shape} and {d['pose_conf'].shape}")
    masks: dict[str, dict[str, Path]] = {}
    for f in frames:
        masks[f] = {}
        for c in cams:
            p = root / "masks" / (f"{c}.png" if F == 1 else f"{f}_{c}.png")
            if p.is_file():
                masks[f][c] = p
    return IngestData(root=root, cameras=cams, frames=frames, image_size=d["image_size"].astype(np.int64),
                      pose=d["pose"].astype(np.float64), pose_conf=d["pose_conf"].astype(np.float64),
                      face=d["face"].astype(np.float64), face_conf=d["face_conf"].astype(np.float64),
                      mask_paths=masks, **_hands(d, path, F, V))


def _hands(d: dict, path: Path, F: int, V: int) -> dict:
    if "hands" not in d or "hands_conf" not in d:
        return {}
    if d["hands"].shape != (F, V, 2, 21, 2) or d["hands_conf"].shape[:3] != (F, V, 2):
        raise ValueError(f"{path}: hands must be ({F}, {V}, 2, 21, 2) and hands_conf ({F}, {V}, 2[, 21]), got "
                         f"{d['hands'].shape} and {d['hands_conf'].shape}")
    conf = d["hands_conf"].astype(np.float64)
    if conf.ndim == 3:   # one handedness score per hand
        conf = np.repeat(conf[..., None], 21, axis=-1)
    return {"hands": d["hands"].astype(np.float64), "hands_conf": conf}


__all__ = ["IngestConfig", "IngestResult", "ingest", "IngestData", "load_ingest", "draw_landmarks", "contact_sheet",
           "N_FACE", "N_POSE"]
