"""The synthetic capture rig: cameras placed around the virtual actor, and exact renders of a ChArUco
board seen by those cameras (for calibration tests and the calibration demo).

A planar board seen by a pinhole camera is exactly a homography of the board's image, so board views
are rendered with OpenCV warps (supersampled, then area-averaged), with lens distortion applied by
remapping through ``cv2.undistortPoints``. Renders of the actor itself need the rasterizer from
``neural_render`` (see ``render_actor_session``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from capture.charuco import BoardSpec
from capture.npcam import PinholeNP, as_np
from core.conventions import (
    PIXEL_CENTER_OFFSET,
    doppel_to_opencv_K,
    doppel_to_opencv_pixels,
    opencv_to_doppel_pixels,
)
from core.limits import ResourceEstimate

log = logging.getLogger(__name__)

BOARD_PX_PER_SQUARE = 200  # resolution of the board texture that is warped into each view


def intrinsics(width: int, height: int, fov_x_deg: float) -> np.ndarray:
    """(3, 3) K for a centred principal point (Doppel convention: centre at W/2, H/2) and a horizontal FOV."""
    fx = 0.5 * width / np.tan(np.radians(fov_x_deg) / 2)
    return np.array([[fx, 0, width / 2], [0, fx, height / 2], [0, 0, 1.0]])


def board_texture(spec: BoardSpec, px_per_square: int = BOARD_PX_PER_SQUARE) -> np.ndarray:
    """(H, W) uint8 image of the board, exactly squares * px_per_square pixels, no margin."""
    w, h = spec.squares_x * px_per_square, spec.squares_y * px_per_square
    return spec.board().generateImage((w, h), marginSize=0, borderBits=1)


def ideal_pixel_grid(camera: PinholeNP, supersample: int = 3) -> np.ndarray:
    """(H*ss, W*ss, 2) ideal (undistorted) continuous pixel positions of every supersampled output pixel of
    a distorted camera. Depends on the camera only: compute once, reuse for every board pose."""
    import cv2

    camera = as_np(camera)
    ss = int(supersample)
    W, H = camera.width * ss, camera.height * ss
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    pts = np.stack([xs + PIXEL_CENTER_OFFSET, ys + PIXEL_CENTER_OFFSET], -1).reshape(-1, 1, 2) / ss
    Kcv = doppel_to_opencv_K(camera.K)  # OpenCV's own functions use its pixel-centre convention
    und = cv2.undistortPointsIter(doppel_to_opencv_pixels(pts), Kcv, camera.dist, None, Kcv,
                                  (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 1e-6)).reshape(H, W, 2)
    return opencv_to_doppel_pixels(und)


def render_plane(texture: np.ndarray, texel_m: float, camera: PinholeNP, T_world_plane: np.ndarray,
                 supersample: int = 3, background=128, ideal_grid: np.ndarray | None = None) -> np.ndarray:
    """Render a flat textured rectangle (a board, a printed photo) exactly, through a homography.

    texture (h, w) or (h, w, 3) uint8; texel_m: side of one texel in metres; T_world_plane (4, 4): plane
    frame -> world. Plane frame: origin at the texture's top-left corner, x along its columns, y along
    its rows, z into it (the printed face is seen from -z). Texel (i, j) centre at ((j + 0.5) s, (i + 0.5) s).
    Returns the view, (H, W) or (H, W, 3) uint8, pixel centres at integer + 0.5, with lens distortion.
    """
    import cv2

    camera = as_np(camera)
    s = texel_m
    ss = int(supersample)
    W, H = camera.width * ss, camera.height * ss
    T_cb = np.eye(4)
    T_cb[:3, :3], T_cb[:3, 3] = camera.R, camera.t
    T_cb = T_cb @ T_world_plane
    H_bm = camera.K @ np.column_stack([T_cb[:3, 0], T_cb[:3, 1], T_cb[:3, 3]])   # plane metric -> ideal px
    A = np.array([[s, 0, 0.5 * s], [0, s, 0.5 * s], [0, 0, 1.0]])                # texel index -> metric
    B = np.array([[1 / ss, 0, 0.5 / ss], [0, 1 / ss, 0.5 / ss], [0, 0, 1.0]])    # output index -> px
    bg = background if np.ndim(background) else (background,) * (3 if texture.ndim == 3 else 1)
    if not np.any(camera.dist):
        M = np.linalg.inv(A) @ np.linalg.inv(H_bm) @ B
        img = cv2.warpPerspective(texture, M, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=bg)
    else:
        und = ideal_pixel_grid(camera, ss) if ideal_grid is None else ideal_grid
        M = (np.linalg.inv(A) @ np.linalg.inv(H_bm)).astype(np.float32)
        u32 = und.astype(np.float32)
        hx = u32[..., 0] * M[0, 0] + u32[..., 1] * M[0, 1] + M[0, 2]
        hy = u32[..., 0] * M[1, 0] + u32[..., 1] * M[1, 1] + M[1, 2]
        hz = u32[..., 0] * M[2, 0] + u32[..., 1] * M[2, 1] + M[2, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([hx / hz, hy / hz], -1)
        uv[~(hz > 0)] = -1.0  # beyond the plane's horizon: background
        img = cv2.remap(texture, uv[..., 0], uv[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=bg)
    if ss > 1:
        img = cv2.resize(img, (camera.width, camera.height), interpolation=cv2.INTER_AREA)
    return img


def render_board_view(spec: BoardSpec, camera: PinholeNP, T_world_board: np.ndarray, supersample: int = 3,
                      background: int = 128, texture: np.ndarray | None = None,
                      px_per_square: int = BOARD_PX_PER_SQUARE, ideal_grid: np.ndarray | None = None) -> np.ndarray:
    """Render the ChArUco board (pose T_world_board (4, 4): board frame -> world) in ``camera`` -> (H, W)
    uint8. Board frame = the plane frame of ``render_plane`` (origin at the top-left chessboard corner)."""
    tex = board_texture(spec, px_per_square) if texture is None else texture
    return render_plane(tex, spec.square / px_per_square, camera, T_world_board, supersample, background,
                        ideal_grid)


@dataclass
class BoardRig:
    """A synthetic calibration set: cameras, board poses (moment -> (4, 4) board -> world), renders."""

    cameras: list[PinholeNP]        # the true cameras (numpy; .to_camera() gives capture.Camera)
    board_poses: dict[str, np.ndarray]
    spec: BoardSpec


def board_calibration_rig(n_cameras: int = 8, n_poses: int = 10, seed: int = 0, width: int = 800,
                          height: int = 600, fov_x_deg: float = 50.0, distortion: bool = True,
                          spec: BoardSpec | None = None) -> BoardRig:
    """Cameras on an arc 1.0-1.25 m in front of a ChArUco board near the world origin, each board pose a
    random tilt (up to ~40 degrees) and offset facing the rig. World: +Y up, cameras looking roughly along -Z."""
    spec = spec or BoardSpec()
    rng = np.random.default_rng(seed)
    bw, bh = spec.size_m
    cams = []
    for i in range(n_cameras):
        az = np.radians(-40 + 80 * i / max(1, n_cameras - 1)) + rng.uniform(-0.05, 0.05)
        r = rng.uniform(1.0, 1.25)
        eye = np.array([r * np.sin(az), rng.uniform(-0.3, 0.3), r * np.cos(az)])
        K = intrinsics(width, height, fov_x_deg * rng.uniform(0.95, 1.05))
        K[0, 2] += rng.uniform(-8, 8)
        K[1, 2] += rng.uniform(-8, 8)
        cam = PinholeNP.look_at(f"cam{i:02d}", eye, rng.uniform(-0.05, 0.05, 3), K, width, height)
        if distortion:
            cam.dist = np.array([rng.uniform(-0.15, 0.05), rng.uniform(-0.05, 0.1), rng.uniform(-5e-4, 5e-4),
                                 rng.uniform(-5e-4, 5e-4), 0.0])
        cams.append(cam)
    poses = {}
    import cv2

    for j in range(n_poses):
        # board facing +Z (its -z face toward the cameras): board z axis = world -Z, x = world +X, y = -Y
        R0 = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]]).T
        tilt = cv2.Rodrigues(rng.uniform(-0.7, 0.7, 3) * np.array([1.0, 1.0, 0.5]))[0]
        R = tilt @ R0
        centre = rng.uniform(-1, 1, 3) * np.array([0.2, 0.15, 0.1])
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = centre - R @ np.array([bw / 2, bh / 2, 0.0])
        poses[f"{j:03d}"] = T
    return BoardRig(cameras=cams, board_poses=poses, spec=spec)


def write_board_rig_images(rig: BoardRig, out_dir, supersample: int = 3, noise_std: float = 0.0,
                           seed: int = 0) -> None:
    """Write OUT_DIR/CAMERA/MOMENT.png for every camera and board pose (the `doppel capture calibrate`
    layout). noise_std: Gaussian pixel noise in grey levels (0-255)."""
    from pathlib import Path

    import cv2

    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    tex = board_texture(rig.spec)
    for cam in rig.cameras:
        d = out_dir / cam.name
        d.mkdir(parents=True, exist_ok=True)
        grid = ideal_pixel_grid(cam, supersample) if np.any(cam.dist) else None
        for m, T in rig.board_poses.items():
            img = render_board_view(rig.spec, cam, T, supersample=supersample, texture=tex, ideal_grid=grid)
            if noise_std > 0:
                img = np.clip(img + rng.normal(0, noise_std, img.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(d / f"{m}.png"), img)


# ------------------------------------------------------------------------------------------------------
# The synthetic capture of the virtual actor (rendered with neural_render's rasterizer)

# COCO keypoints (anny's regressor) -> MediaPipe pose index, for comparing triangulated body landmarks
COCO_TO_MEDIAPIPE_POSE = {
    "nose": 0, "left_eye": 2, "right_eye": 5, "left_ear": 7, "right_ear": 8, "left_shoulder": 11,
    "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14, "left_wrist": 15, "right_wrist": 16,
    "left_hip": 23, "right_hip": 24, "left_knee": 25, "right_knee": 26, "left_ankle": 27, "right_ankle": 28,
    "left_heel": 29, "right_heel": 30, "left_big_toe": 31, "right_big_toe": 32,
}
BACKGROUND_SRGB = (0.46, 0.47, 0.5)   # the studio backdrop colour of the synthetic renders


@dataclass
class SyntheticCapture:
    session_dir: object                 # Path of DIR/session (images/ + calibration.json)
    ground_truth_dir: object            # Path of DIR/ground_truth (no pipeline stage reads it)
    cameras: list                       # capture.Camera, one per view
    keypoints3d: dict[str, list[float]]  # COCO keypoint name -> (3,) world position, metres
    timings: dict[str, float]


def rig_layout(n_cameras: int, head: np.ndarray, body_centre: np.ndarray, size: int,
               seed: int = 0) -> list[PinholeNP]:
    """N cameras around an actor facing +Z: about half on a ring at chest height (3 m), a quarter on a
    higher dome ring (looking down), a quarter as face close-ups in a frontal arc. head, body_centre:
    (3,) world points the face and body cameras aim at."""
    rng = np.random.default_rng(seed)
    n_face = max(1, n_cameras // 4) if n_cameras >= 4 else 0
    n_dome = max(1, n_cameras // 4) if n_cameras >= 6 else 0
    n_ring = n_cameras - n_face - n_dome
    cams: list[PinholeNP] = []
    K_body = intrinsics(size, size, 40.0)
    K_face = intrinsics(size, size, 24.0)
    for i in range(n_ring):
        a = 2 * np.pi * i / n_ring + rng.uniform(-0.03, 0.03)
        eye = body_centre + np.array([3.0 * np.sin(a), 0.25 + rng.uniform(-0.05, 0.05), 3.0 * np.cos(a)])
        cams.append(PinholeNP.look_at(f"ring{i:02d}", eye, body_centre, K_body, size, size))
    for i in range(n_dome):
        a = 2 * np.pi * (i + 0.5) / n_dome
        eye = body_centre + np.array([2.6 * np.sin(a), 1.4, 2.6 * np.cos(a)])
        cams.append(PinholeNP.look_at(f"dome{i:02d}", eye, body_centre, K_body, size, size))
    for i in range(n_face):
        a = np.radians(-45 + 90 * i / max(1, n_face - 1)) if n_face > 1 else 0.0
        eye = head + np.array([1.0 * np.sin(a), 0.05 + 0.05 * (i % 2), 1.0 * np.cos(a)])
        cams.append(PinholeNP.look_at(f"face{i:02d}", eye, head, K_face, size, size))
    return cams


def coco_keypoints(actor) -> dict[str, np.ndarray]:
    """anny's COCO keypoint regressor on the actor's posed vertices -> name -> (3,) world metres."""
    import torch
    from anny.keypoints import KeypointsRegressor

    from doppel.virtual_actor import _anny_model

    reg = KeypointsRegressor.coco(_anny_model())
    W = reg.regression_weights.detach().cpu().numpy()
    if W.shape[1] != len(actor.vertices):
        raise ValueError(f"COCO regressor expects {W.shape[1]} vertices, the actor has {len(actor.vertices)}")
    kp = W @ actor.vertices.astype(np.float64)  # weights sum to 1: commutes with the frame change and shift
    del torch
    return {name: kp[i] for i, name in enumerate(reg.labels)}


def motion_pose(base: dict[str, list[float]], t: float) -> dict[str, list[float]]:
    """The virtual actor's pose at time t in [0, 1] of a smooth motion: every seeded rotation (arms out,
    elbows, neck, head) grows by 80 % from t = 0 to t = 1 (the arms rise, the head turns further)."""
    return {k: [float(x) * (1.0 + 0.8 * t) for x in v] for k, v in base.items()}


# Cost model of a synthetic capture (measured on CPU, see docs/benchmarks.md; rough, +-50 %)
SYNTH_BASE_BYTES = 1.3e9            # the actor, anny's model and torch: resident before the first render
SYNTH_RENDER_BYTES_PER_PX = 160.0   # rasterizer buffers per rendered (supersampled) pixel
SYNTH_PNG_BYTES_PER_PX = 1.0        # an 8-bit RGB PNG of a render, upper bound
SYNTH_ACTOR_SECONDS = 8.0           # building the virtual actor of one frame
SYNTH_VIEW_SECONDS = 1.0            # fixed cost of one view
SYNTH_SECONDS_PER_PX = 1.6e-6       # per rendered pixel
SYNTH_GROUND_TRUTH_BYTES = 5e6      # mesh.ply + joints.json of one frame


def estimate_synthetic_capture(n_cameras: int, size: int, frames: int = 1, supersample: int = 1,
                               texture_size: int = 1024) -> ResourceEstimate:
    """Memory, disk and time of ``synthesize_capture`` with these arguments, before any work. Views are
    rendered and written one at a time, so memory does not grow with cameras or frames."""
    px = float(size) * size * supersample * supersample
    texture = 3.0 * 4 * texture_size * texture_size * 2           # float texture + its tensor copy
    memory = SYNTH_BASE_BYTES + texture + SYNTH_RENDER_BYTES_PER_PX * px + 3 * 4 * float(size) * size
    disk = frames * (n_cameras * SYNTH_PNG_BYTES_PER_PX * size * size + SYNTH_GROUND_TRUTH_BYTES)
    seconds = frames * (SYNTH_ACTOR_SECONDS + n_cameras * (SYNTH_VIEW_SECONDS + SYNTH_SECONDS_PER_PX * px))
    what = f"capture synth: {n_cameras} cameras x {frames} frame(s) at {size}x{size} px"
    return ResourceEstimate(what, memory, disk, seconds)


def check_synthetic_capture_args(n_cameras: int, size: int, frames: int) -> None:
    """ValueError naming the option when a synthetic capture's arguments are out of range."""
    if n_cameras < 2:
        raise ValueError(f"--cameras must be >= 2 (triangulation needs two views), got {n_cameras}")
    if size < 64:
        raise ValueError(f"--size must be >= 64 px, got {size}")
    if size > 8192:
        raise ValueError(f"--size must be <= 8192 px, got {size}")
    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")


@dataclass
class _Scene:
    """What every view of a synthetic capture shares: the cameras and the actor's mesh buffers."""

    cams_np: list[PinholeNP]
    keypoints: dict[str, np.ndarray]  # COCO name -> (3,) world metres, frame 000
    faces: object                     # (F, 3) int64 tensor
    uvs: object                       # (T, 2) float tensor
    face_uvs: object                  # (F, 3) int64 tensor
    texture: object                   # (H, W, 3) float tensor, sRGB


def _build_scene(actor, n_cameras: int, size: int, seed: int) -> _Scene:
    """Place the cameras around ``actor`` (aimed at its head and body centre) and share its mesh buffers."""
    import torch

    kp = coco_keypoints(actor)
    head = (kp["left_eye"] + kp["right_eye"]) / 2 * 0.6 + kp["nose"] * 0.4
    lo, hi = actor.vertices.min(0), actor.vertices.max(0)
    cams_np = rig_layout(n_cameras, head, (lo + hi) / 2, size, seed)
    return _Scene(cams_np, kp, torch.tensor(actor.faces), torch.tensor(actor.uvs), torch.tensor(actor.face_uvs),
                  torch.tensor(actor.texture))


def _render_view(scene: _Scene, verts, cam: PinholeNP, supersample: int) -> np.ndarray:
    """One view of the actor (verts (V, 3) float32 tensor) -> (H, W, 3) uint8 sRGB over the backdrop."""
    import torch

    from neural_render import composite, render_mesh

    with torch.no_grad():
        rgba = render_mesh(verts, scene.faces, cam.to_camera(dtype=torch.float32), uvs=scene.uvs,
                           face_uvs=scene.face_uvs, texture=scene.texture, supersample=supersample)
    rgb = composite(rgba, BACKGROUND_SRGB)[0].clamp(0, 1).numpy()
    return (rgb * 255 + 0.5).astype(np.uint8)


def _write_view_png(path, rgb: np.ndarray) -> None:
    """(H, W, 3) uint8 RGB -> PNG at ``path`` (atomic), the layout ``capture.session.write_session`` writes."""
    import cv2

    from core.storage import atomic_write_bytes

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: image could not be encoded as PNG")
    atomic_write_bytes(path, buf.tobytes())


def _write_frame_ground_truth(folder, act) -> None:
    """FOLDER/mesh.ply and FOLDER/joints.json of one frame's posed actor."""
    from core.meshio import write_ply
    from core.storage import atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    write_ply(folder / "mesh.ply", act.vertices, act.faces)
    atomic_write_json(folder / "joints.json", {
        "units": "m", "pose": act.pose,
        "joints": {n: [round(float(x), 6) for x in q] for n, q in zip(act.joint_names, act.joints, strict=True)}})


def _write_ground_truth(gt, actor, kp: dict[str, np.ndarray], params: dict) -> None:
    """GT/mesh.ply (frame 000), GT/params.json (``params`` + the actor's parameters), GT/landmarks3d.json."""
    from core.meshio import write_ply
    from core.storage import atomic_write_json

    gt.mkdir(parents=True, exist_ok=True)
    write_ply(gt / "mesh.ply", actor.vertices, actor.faces)
    atomic_write_json(gt / "params.json", {"seed": params["seed"], "phenotype": actor.phenotype,
                                           "expression": actor.expression, "pose": actor.pose, **params,
                                           "frame": "Doppel: metres, +Y up, facing +Z"})
    atomic_write_json(gt / "landmarks3d.json", {
        "units": "m", "coco": {k: [round(float(x), 6) for x in v] for k, v in kp.items()},
        "coco_to_mediapipe_pose": COCO_TO_MEDIAPIPE_POSE,
        "joints": {n: [round(float(x), 6) for x in p] for n, p in zip(actor.joint_names, actor.joints, strict=True)}})


def synthesize_capture(out, n_cameras: int = 16, seed: int = 0, size: int = 1024, supersample: int = 1,
                       texture_size: int = 1024, progress=None, actor=None, frames: int = 1,
                       renderer: str = "raster", cycles=None, clip=None) -> SyntheticCapture:
    """Render the virtual actor (seed) from ``n_cameras`` calibrated cameras into OUT/session (exactly a
    real capture's layout) and write OUT/ground_truth (mesh.ply, params.json, landmarks3d.json).

    progress(step, i, total) is called before each view is rendered (i counts views over all frames, total =
    frames * cameras). actor: an already built ``VirtualActor`` for ``seed`` (skips building it again).
    frames > 1: a take of that many frames of a smooth motion (``motion_pose``), images/FRAME/CAMERA.png with
    FRAME = 000, 001, ...; the ground truth of every frame in OUT/ground_truth/frames/FRAME/ (mesh.ply,
    joints.json), OUT/ground_truth/mesh.ply = frame 000. Frames are built, rendered and written one view at
    a time: memory does not grow with cameras or frames (``estimate_synthetic_capture``).

    renderer: "raster" (neural_render, Lambert) or "cycles" (Blender Cycles path tracing with physically based
    materials, ``doppel.cycles_capture``; cycles: its ``CyclesSettings``): the same cameras, calibration and
    ground truth files either way; Cycles also writes a linear half-float CAMERA.exr beside each CAMERA.png.
    clip: ``frames`` poses of a clip (``doppel.synthetic_motion.load_clip``) instead of the built-in motion
    (frame 000, the ground truth's mesh.ply and keypoints, is the clip's first frame).
    """
    import time
    from pathlib import Path

    import torch

    from capture.session import write_session
    from doppel.cycles_capture import check_renderer_args
    from doppel.synthetic_motion import pose_actor
    from doppel.virtual_actor import build_virtual_actor

    check_synthetic_capture_args(n_cameras, size, frames)
    check_renderer_args(renderer, 1 if cycles is None else cycles.samples)
    if clip is not None and len(clip) != frames:
        raise ValueError(f"clip: {len(clip)} poses given for {frames} frames")
    out = Path(out)
    t0 = time.perf_counter()
    actor = actor if actor is not None else build_virtual_actor(seed, texture_size=texture_size)
    if clip is not None:
        actor = pose_actor(actor, local=clip[0])
    scene = _build_scene(actor, n_cameras, size, seed)
    timings = {"actor": time.perf_counter() - t0, "render": 0.0}
    session, gt = out / "session", out / "ground_truth"
    total = frames * n_cameras

    def frame_actors():
        for f in range(frames):
            if f == 0:
                act = actor
            elif clip is not None:
                act = pose_actor(actor, local=clip[f])
            else:
                act = pose_actor(actor, world_pose=motion_pose(actor.pose, f / (frames - 1)))
            fname = f"{f:03d}" if frames > 1 else None
            folder = session / "images" / fname if fname else session / "images"
            folder.mkdir(parents=True, exist_ok=True)
            if fname:
                _write_frame_ground_truth(gt / "frames" / fname, act)
            yield f, fname, folder, act

    if renderer == "cycles":
        _render_cycles_frames(out, actor, scene, frame_actors(), cycles, timings, progress, total)
    else:
        for f, fname, folder, act in frame_actors():
            verts = torch.tensor(act.vertices, dtype=torch.float32)
            t1 = time.perf_counter()
            for i, c in enumerate(scene.cams_np):
                if progress:
                    progress(c.name if fname is None else f"{fname}/{c.name}", f * n_cameras + i, total)
                _write_view_png(folder / f"{c.name}.png", _render_view(scene, verts, c, supersample))
            timings["render"] += time.perf_counter() - t1
    cameras = [c.to_camera() for c in scene.cams_np]
    write_session(session, cameras, {}, synthetic={"seed": seed, "frames": frames,
                                                   "note": "virtual actor, no consent needed"})
    _write_ground_truth(gt, actor, scene.keypoints, {"seed": seed, "size": size, "n_cameras": n_cameras,
                                                     "frames": frames, "supersample": supersample})

    return SyntheticCapture(session_dir=session, ground_truth_dir=gt, cameras=cameras,
                            keypoints3d={k: v.tolist() for k, v in scene.keypoints.items()}, timings=timings)


def _render_cycles_frames(out, actor, scene: _Scene, frame_actors, cycles, timings: dict, progress,
                          total: int) -> None:
    """Render the frames of ``frame_actors`` ((f, frame name, images folder, actor) per frame, lazily) through
    Cycles: FOLDER/CAMERA.exr from Blender, then FOLDER/CAMERA.png (sRGB over the backdrop) from each EXR."""
    import dataclasses
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from core.storage import atomic_write_json
    from doppel.cycles_capture import (
        CyclesSettings,
        CyclesStats,
        clean_denoiser_bleed,
        exr_to_srgb_png_pixels,
        prepare_actor,
        read_exr_rgba,
        render_frames_cycles,
    )
    from neural_render.image_io import write_exr

    settings = cycles or CyclesSettings()
    stats = CyclesStats()
    written: list = []
    work = Path(tempfile.mkdtemp(prefix="doppel_cycles_"))
    try:
        cactor = prepare_actor(actor, work)

        def frames():
            for f, fname, folder, act in frame_actors:
                if progress:
                    progress(fname or "cycles", f * len(scene.cams_np), total)
                views = [(c, folder / f"{c.name}.exr") for c in scene.cams_np]
                written.extend(p for _, p in views)
                yield act.vertices, views

        t1 = time.perf_counter()
        render_frames_cycles(cactor, frames(), settings, stats)
        for p in written:          # one image in memory at a time
            rgba = clean_denoiser_bleed(read_exr_rgba(p))
            write_exr(p, rgba)
            _write_view_png(p.with_suffix(".png"), exr_to_srgb_png_pixels(rgba, BACKGROUND_SRGB))
        timings["render"] += time.perf_counter() - t1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # how the images were made: OUT/render.json, beside (not inside) the ground truth shared with the raster renderer
    atomic_write_json(Path(out) / "render.json", {
        "renderer": "cycles", "settings": dataclasses.asdict(settings), "device": stats.device,
        "view_seconds": stats.view_seconds, "worker_seconds": round(stats.worker_seconds, 3)})
