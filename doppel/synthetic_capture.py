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
    pts = np.stack([(xs + 0.5) / ss, (ys + 0.5) / ss], -1).reshape(-1, 1, 2)
    Kcv = camera.K.copy()
    Kcv[:2, 2] -= 0.5  # OpenCV pixel-centre convention for its own functions
    und = cv2.undistortPointsIter(pts - 0.5, Kcv, camera.dist, None, Kcv,
                                  (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 1e-6)).reshape(H, W, 2)
    return und + 0.5


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
