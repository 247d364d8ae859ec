"""Synthetic plates for face replacement: actor B (the performer) acting in front of a moving film camera, and
the exact answer a perfect face replacement returns (actor A's head on B's performance), with per-frame head
pose, face landmarks and masks. The test bed of ``doppel`` face replacement.

Layout written by ``render_plate`` into OUT:

- ``plate/frames/NNNNNN.png`` (sRGB over the studio backdrop; a plate ``doppel swap`` reads as it is; with
  ``--renderer cycles`` also ``plate/frames_exr/NNNNNN.exr``, Cycles' render itself: linear half-float RGBA,
  premultiplied, transparent where no actor is, its frame rate and shutter in the header (`exr_attributes`), in a
  folder of its own so that each folder is one sequence), ``plate/plate.mp4`` (H.264, yuv420p, the plate's fps),
  ``plate/cameras.json`` (the film camera of every frame: K, R, t (OpenCV, world-to-camera, metres), distortion,
  size, fps).
- ``ground_truth/frames/NNNNNN.png`` (+ ``ground_truth/frames_exr/NNNNNN.exr``) and
  ``ground_truth/ground_truth.mp4``: the same shot and camera with A's head region on B: vertices
  ``(1 - w) * B + w * (A + neck_B - neck_A)``, where A is posed with B's very pose and expression, ``neck_X`` is
  actor X's posed ``neck01`` joint (A's head is carried to B's neck), and ``w`` (``ground_truth/blend_weights.npy``,
  (V,) in [0, 1]) is a smoothstep over the rest pose's height from B's ``neck01`` joint (w = 0) to half way to its
  ``head`` joint (w = 1), limited to the neck column; the albedo is blended by the same weights through the UV map
  (A's face texture).
- ``ground_truth/masks/face_NNNNNN.png``: visible pixels of the face region (the replaced head's triangles in
  front of the ears, below the hairline: eyes, brows, nose, mouth, cheeks, chin); ``occlusion_NNNNNN.png``:
  pixels where the face region lies behind something else (a hand). 8-bit, 255 = in the mask, exact
  rasterization (1 sample per pixel centre) of the ground-truth geometry in the frame's camera.
- ``ground_truth/annotations.npz``: per frame ``head_R`` (T, 3, 3) and ``head_t`` (T, 3) (world; the rigid
  motion of B's skull vertices from the neutral, not turned head: Kabsch), ``head_ypr_deg`` (T, 3) yaw (about
  +Y, + = towards the actor's left), pitch (+ = up), roll in the world, ``head_R_cam`` (T, 3, 3) the head
  rotation in the camera frame, ``landmarks3d`` (T, 478, 3) the ground truth's face landmarks (the shipped
  Anny-MediaPipe landmark regressor: MediaPipe face-mesh index i = row i), ``landmarks2d`` (T, 478, 2) pixels,
  ``landmarks_visible`` (T, 478) (inside the image and not hidden by a surface in front), ``occluded_fraction``
  (T,) share of the face region hidden, ``performer_landmarks2d`` (T, 478, 2) pixels: the same regressor on the
  performer B's own face (what a perfect face detector reads on the plate; B's face is not A's, so a tracker
  that follows it exactly still lands A's face this far from the ground truth's: the benchmark's ideal-tracker
  floor); ``annotations.json`` summarises it (ranges, frames with occlusion).

With a shutter (``PlateConfig.shutter_deg``) each plate and ground-truth frame is exposed over the open shutter
centred on the frame (the performance, the hands and the film camera all move between frames: ``_frame`` takes
any time): the raster renderer averages renders at ``shutter_samples`` times in linear light; Cycles gets the
mesh and the camera keyed at ``shutter_samples`` + 1 times from the shutter's opening to its close and blurs
them with its own motion blur (time sampled per path, linear between the keys). The annotations and masks are
the frame's own.

Frames are built, rendered and written one at a time (Cycles: in chunks of ``CHUNK_FRAMES``): memory does not
grow with the length of the shot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PLATE_CAMERAS = ("static", "handheld", "dolly")
# "talk": talking, smiles and brows drifting, two blinks (the brows rise with the head's pitch, the blinks come in
# profile); "expressive": the same head and hands, the brows moving on their own rhythm, blinks and a pucker near
# frontal, every expression independent of the head's turns (for measuring expressions read from a plate)
PLATE_PERFORMANCES = ("talk", "expressive")
YAW_DEG, PITCH_DEG = 65.0, 28.0         # head turn amplitudes over a shot
# Arm poses (world-aligned axis-angle on Anny's reference pose) that bring the right hand in front of the face
# (solved once for seed 1 by matching the wrist and middle fingertip to points in front of the nose; the left
# arm is its mirror image). Hands of other actors land within a few centimetres: the masks measure what happens.
HAND_TO_FACE_R = {"upperarm01.R": (-0.272, 1.854, -0.209), "lowerarm01.R": (-1.586, -0.006, -0.687)}
HAND_TO_FACE_L = {"upperarm01.L": (-0.272, -1.854, 0.209), "lowerarm01.L": (-1.586, 0.006, 0.687)}
HAND_WINDOWS = ((0.30, 0.48, HAND_TO_FACE_R), (0.70, 0.86, HAND_TO_FACE_L))   # (start, end) of the shot, pose


@dataclass(frozen=True)
class PlateConfig:
    """A synthetic plate: who, how long, which camera, which renderer."""

    performer_seed: int = 1        # actor B: performs the shot (the plate)
    double_seed: int = 0           # actor A: whose head the ground truth puts on B
    frames: int = 120              # frames in the shot (>= 1)
    width: int = 1280              # image width, px (16..8192)
    height: int = 720              # image height, px (16..8192)
    fps: float = 24.0              # frames per second of plate.mp4
    camera: str = "handheld"       # "static", "handheld" (smooth jitter) or "dolly" (a tracking move)
    renderer: str = "raster"       # "raster" or "cycles"
    samples: int = 32              # cycles: samples per pixel
    texture_size: int = 1024       # albedo size, texels
    fov_x_deg: float = 32.0        # horizontal field of view of the film camera
    distance_m: float = 1.35       # camera to head distance
    clip: str | None = None        # a clip on the virtual actor's skeleton (animation.npz / folder) for the body
    performance: str = "talk"      # the face's performance: PLATE_PERFORMANCES
    distortion: tuple = (0.0, 0.0, 0.0, 0.0, 0.0)   # the film lens's OpenCV k1, k2, p1, p2, k3 (raster only)
    offset: tuple = (0.0, 0.0)     # where the head is framed: a fraction of the half width / height right / down
                                   # of the centre (a lens distorts most towards the frame's edge)
    shutter_deg: float = 0.0       # motion blur: the film camera's shutter angle, centred on the frame
    shutter_samples: int = 8       # raster: renders over the open shutter, averaged in linear light; cycles: the
                                   # motion keyed at this many + 1 times over it


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H); ValueError naming --size."""
    try:
        w, h = (int(x) for x in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must be WIDTHxHEIGHT (e.g. 1280x720), got {text!r}") from None
    return w, h


def check_plate_config(cfg: PlateConfig) -> None:
    """ValueError naming the option when a plate's settings are out of range."""
    from doppel.cycles_capture import MAX_IMAGE_SIDE, check_renderer_args

    check_renderer_args(cfg.renderer, cfg.samples)
    if cfg.frames < 1:
        raise ValueError(f"--frames must be >= 1, got {cfg.frames}")
    if not (16 <= cfg.width <= MAX_IMAGE_SIDE and 16 <= cfg.height <= MAX_IMAGE_SIDE):
        raise ValueError(f"--size must be between 16 and {MAX_IMAGE_SIDE} px per side, got {cfg.width}x{cfg.height}")
    if cfg.camera not in PLATE_CAMERAS:
        raise ValueError(f"--camera must be one of {', '.join(PLATE_CAMERAS)}, got {cfg.camera!r}")
    if cfg.performer_seed < 0 or cfg.double_seed < 0:
        raise ValueError("--performer-seed and --double-seed must be >= 0")
    if cfg.performance not in PLATE_PERFORMANCES:
        raise ValueError(f"--performance must be one of {', '.join(PLATE_PERFORMANCES)}, got {cfg.performance!r}")
    _check_lens(cfg)
    if not 5.0 <= cfg.fov_x_deg <= 150.0:
        raise ValueError(f"--fov must be between 5 and 150 degrees, got {cfg.fov_x_deg}")
    if not (0.3 <= cfg.distance_m <= 30.0):
        raise ValueError(f"--distance must be between 0.3 and 30 metres, got {cfg.distance_m}")


def _check_lens(cfg: PlateConfig) -> None:
    """ValueError naming the option for a lens the plate cannot be drawn through."""
    d, o = np.asarray(cfg.distortion, np.float64), np.asarray(cfg.offset, np.float64)
    if d.shape != (5,) or not np.isfinite(d).all() or np.abs(d).max() > 2.0:
        raise ValueError(f"--distortion must be up to five finite OpenCV coefficients k1,k2,p1,p2,k3 within +-2, "
                         f"got {list(cfg.distortion)}")
    if o.shape != (2,) or not (np.abs(o) <= 0.9).all():
        raise ValueError(f"--offset must be X,Y fractions of the half frame within +-0.9, got {list(cfg.offset)}")
    if d.any() and cfg.renderer != "raster":
        raise ValueError("--distortion needs --renderer raster (Cycles' cameras have no OpenCV lens model)")
    from neural_render.motion_blur import MotionBlur

    try:
        MotionBlur(cfg.shutter_deg, cfg.shutter_samples)
    except ValueError as e:
        raise ValueError(f"--shutter: {e}") from None


def parse_numbers(text: str, option: str, count: int) -> tuple[float, ...]:
    """'a,b,...' -> up to ``count`` floats, zeros after the given ones; ValueError naming ``option``."""
    try:
        vals = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated numbers, got {text!r}") from None
    if not 1 <= len(vals) <= count:
        raise ValueError(f"{option} takes 1 to {count} comma-separated numbers, got {text!r}")
    return tuple(vals + [0.0] * (count - len(vals)))


def _rotvec(M: np.ndarray) -> list[float]:
    import roma
    import torch

    return roma.rotmat_to_rotvec(torch.as_tensor(M, dtype=torch.float64)).tolist()


def _rotmat(v) -> np.ndarray:
    import roma
    import torch

    return roma.rotvec_to_rotmat(torch.as_tensor(v, dtype=torch.float64)).numpy()


def _window(t: float, start: float, end: float) -> float:
    """0 outside [start, end], a smooth sin^2 bump inside (1 at the middle)."""
    if not start < t < end:
        return 0.0
    return float(np.sin(np.pi * (t - start) / (end - start)) ** 2)


def performance(base_pose: dict, t: float, kind: str = "talk") -> tuple[dict, dict, dict]:
    """The performer's frame at shot time t in [0, 1] -> (world-aligned pose, expression, info).

    Head: yaw YAW_DEG sin(2 pi t) (split 40/60 between neck02 and head), pitch PITCH_DEG sin(4 pi t + 0.6);
    face (`face_expression`): kind "talk": jawOpen at ~3.5 syllables per second of a 5 s shot, smiles and brows
    drifting, two blinks; "expressive": see `PLATE_PERFORMANCES`; hands: the right hand in front of the face around
    t = 0.39, the left around t = 0.78 (HAND_WINDOWS). info: the commanded yaw / pitch (degrees) and hand
    weights."""
    yaw = np.radians(YAW_DEG) * np.sin(2 * np.pi * t)
    pitch = np.radians(PITCH_DEG) * np.sin(4 * np.pi * t + 0.6)
    pose = {k: list(v) for k, v in base_pose.items()}
    Ry = _rotmat([0.0, 0.4 * yaw, 0.0])
    pose["neck02"] = _rotvec(Ry)
    pose["head"] = _rotvec(_rotmat([0.0, 0.6 * yaw, 0.0]) @ _rotmat([-pitch, 0.0, 0.0]))
    hands = []
    for start, end, target in HAND_WINDOWS:
        e = _window(t, start, end)
        hands.append(e)
        for bone, rv in target.items():
            b = np.asarray(pose.get(bone, (0.0, 0.0, 0.0)), np.float64)
            pose[bone] = ((1 - e) * b + e * np.asarray(rv)).tolist()
    return pose, face_expression(t, kind), {"yaw_deg": float(np.degrees(yaw)), "pitch_deg": float(np.degrees(pitch)),
                                            "hands": hands}


def face_expression(t: float, kind: str = "talk") -> dict[str, float]:
    """The performer's ARKit expression weights at shot time t in [0, 1] (`performance`)."""
    talk = 0.5 + 0.5 * np.sin(2 * np.pi * 17 * t)
    if kind == "expressive":                  # independent of the head: yaw ~ sin(2 pi t), pitch ~ sin(4 pi t)
        blink = max(_window(t, 0.03, 0.06), _window(t, 0.47, 0.50), _window(t, 0.95, 0.98))
        expression = {"jawOpen": 0.05 + 0.35 * talk ** 2,
                      "mouthSmileLeft": 0.25 + 0.25 * np.sin(2 * np.pi * 3.3 * t + 2.0),
                      "mouthSmileRight": 0.25 + 0.25 * np.sin(2 * np.pi * 3.3 * t + 2.4),
                      "browInnerUp": 0.2 + 0.2 * np.sin(2 * np.pi * 5.3 * t + 1.1),
                      "mouthPucker": 0.5 * _window(t, 0.52, 0.60), "eyeBlinkLeft": blink, "eyeBlinkRight": blink}
    else:
        blink = max(_window(t, 0.2, 0.24), _window(t, 0.62, 0.66))
        expression = {"jawOpen": 0.05 + 0.35 * talk ** 2,
                      "mouthSmileLeft": 0.3 + 0.25 * np.sin(2 * np.pi * 1.3 * t),
                      "mouthSmileRight": 0.3 + 0.25 * np.sin(2 * np.pi * 1.3 * t + 0.4),
                      "browInnerUp": 0.15 + 0.15 * np.sin(2 * np.pi * 2.1 * t),
                      "mouthFunnel": 0.2 * _window(t, 0.5, 0.6), "eyeBlinkLeft": blink, "eyeBlinkRight": blink}
    return {k: float(np.clip(v, 0.0, 1.0)) for k, v in expression.items()}


def film_camera(cfg: PlateConfig, head: np.ndarray, f: float):
    """The film camera of frame f (a frame number, or a time between two: motion blur's): a PinholeNP aimed at
    ``head`` (3,) from ``distance_m`` in front, slightly above; handheld: smooth seeded jitter (+-1.5 cm, +-0.8
    degrees); dolly: a lateral tracking move of 0.8 m that also pushes in 0.3 m."""
    from capture.npcam import PinholeNP

    t = (f + 0.5) / cfg.frames
    fx = 0.5 * cfg.width / np.tan(np.radians(cfg.fov_x_deg) / 2)
    K = np.array([[fx, 0, cfg.width / 2], [0, fx, cfg.height / 2], [0, 0, 1.0]])
    eye = head + np.array([0.0, 0.08, cfg.distance_m])
    half_w = cfg.distance_m * np.tan(np.radians(cfg.fov_x_deg) / 2)      # the frame's half width at the head
    target = head - np.array([cfg.offset[0] * half_w, -cfg.offset[1] * half_w * cfg.height / cfg.width, 0.0])
    if cfg.camera == "dolly":
        eye = eye + np.array([-0.4 + 0.8 * t, 0.0, -0.3 * t])
    elif cfg.camera == "handheld":
        rng = np.random.default_rng([cfg.performer_seed, 0x9A7E])
        ph = rng.uniform(0, 2 * np.pi, (6, 3))
        sec = f / cfg.fps
        jitter = sum(np.sin(2 * np.pi * fr * sec + ph[k]) for k, fr in enumerate((0.31, 0.73, 1.7))) / 3
        wobble = sum(np.sin(2 * np.pi * fr * sec + ph[k + 3]) for k, fr in enumerate((0.23, 0.57, 1.3))) / 3
        eye = eye + 0.015 * jitter
        target = target + np.tan(np.radians(0.8)) * cfg.distance_m * wobble
    cam = PinholeNP.look_at(f"film{int(round(f)):06d}", eye, target, K, cfg.width, cfg.height)
    cam.dist = np.asarray(cfg.distortion, np.float64)
    return cam


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def blend_weights(actor) -> np.ndarray:
    """(V,) float64 in [0, 1]: how much of the double's head replaces the performer's at each vertex (see the
    module docstring): a smoothstep over the reference pose's height from the neck01 joint (0) to half way to
    the head joint (1), times a smoothstep that is 1 within 16 cm of the neck column and 0 beyond 20 cm."""
    from doppel.synthetic_motion import pose_actor
    from doppel.virtual_actor import body_model

    names = list(body_model().skeleton.joint_names)
    ref = pose_actor(actor, world_pose={}, expression={})
    neck, head = ref.joints[names.index("neck01")], ref.joints[names.index("head")]
    v = actor.rest_vertices.astype(np.float64)
    y0, y1 = float(neck[1]), float(neck[1] + 0.5 * (head[1] - neck[1]))
    r = np.hypot(v[:, 0] - neck[0], v[:, 2] - neck[2])
    return smoothstep((v[:, 1] - y0) / (y1 - y0)) * smoothstep((0.20 - r) / 0.04)


def blend_texture(actor_b, actor_a, weights: np.ndarray) -> np.ndarray:
    """(H, W, 3) albedo: B's texture with A's where the blend weights (V,) say, through the UV map."""
    from doppel import albedo

    size = actor_b.texture.shape[0]
    ta = actor_a.texture
    if ta.shape != actor_b.texture.shape:
        import cv2

        ta = cv2.resize(ta, (size, size), interpolation=cv2.INTER_AREA)
    face, bary = albedo.rasterize_uv(actor_b.uvs[actor_b.face_uvs], size)
    wt = np.zeros((size, size))
    cov = face >= 0
    wt[cov] = np.einsum("nk,nk->n", bary[cov], weights[actor_b.faces[face[cov]]])
    return (actor_b.texture * (1 - wt[..., None]) + ta * wt[..., None]).astype(np.float32)


@dataclass
class _Plate:
    """What every frame of a plate shares."""

    cfg: PlateConfig
    actor_b: object                   # VirtualActor: the performer
    actor_a: object                   # VirtualActor: the double
    weights: np.ndarray               # (V,) blend weights
    texture_gt: np.ndarray            # (H, W, 3) blended albedo
    face_faces: np.ndarray            # (F,) bool: the face region (masks)
    occluder_faces: np.ndarray        # (F,) bool: triangles that count as occluders (not the head)
    skull: np.ndarray                 # (S,) vertex indices of B's skull (head pose)
    skull0: np.ndarray                # (S, 3) those vertices with the head not turned, neutral face
    lm_index: np.ndarray              # (478, K) landmark regressor vertex indices
    lm_weight: np.ndarray             # (478, K) weights
    neck: int                         # joint index of neck01
    head_centre: np.ndarray           # (3,) where the film camera aims
    clip: list | None = None          # LocalPose per frame (--anim), else None (the built-in performance)
    bind_rot: np.ndarray | None = None  # (J, 3, 3) B's bind orientations (turning the head of a clip)
    lens: _Lens | None = None         # the film lens's overscan and warp (--distortion), else None


@dataclass(frozen=True)
class _Lens:
    """A distorted film lens: frames are rasterized through a distortion-free camera of intrinsics K (3, 3) and
    size (width, height) that sees all the lens sees (`neural_render.lens.lens_overscan`), then warped into the
    lens's image (`neural_render.lens.redistortion`)."""

    K: np.ndarray
    width: int
    height: int
    warp: object                      # neural_render.lens.LensWarp

    def draw_camera(self, cam):
        """The frame's film camera ``cam`` (PinholeNP, distorted) as the distortion-free overscan camera."""
        from capture.npcam import PinholeNP

        return PinholeNP(cam.name, self.K, cam.R, cam.t, self.width, self.height)


def _film_lens(cfg: PlateConfig, head: np.ndarray) -> _Lens | None:
    """The plate's `_Lens` (None without distortion): K and the distortion are the same in every frame."""
    if not np.any(cfg.distortion):
        return None
    import torch

    from neural_render.lens import lens_overscan, redistortion

    lens = film_camera(cfg, head, 0).to_camera(dtype=torch.float64)
    try:
        over = lens_overscan(lens)[0]
    except ValueError as e:                       # the model folds over inside the frame
        raise ValueError(f"--distortion {list(cfg.distortion)} at --fov {cfg.fov_x_deg:g}: {e}; give a milder "
                         "lens or a narrower field of view") from None
    return _Lens(over.K.numpy(), over.width, over.height, redistortion(lens, over))


def _prepare(cfg: PlateConfig, actor_b=None, actor_a=None) -> _Plate:
    from doppel import albedo
    from doppel.cycles_capture import MATERIAL_INDEX, material_classes
    from doppel.synthetic_capture import coco_keypoints
    from doppel.synthetic_motion import pose_actor
    from doppel.virtual_actor import body_model, build_virtual_actor
    from reconstruction.fitting.landmark_regressor import default_regressor

    b = actor_b or build_virtual_actor(cfg.performer_seed, texture_size=cfg.texture_size)
    a = actor_a or build_virtual_actor(cfg.double_seed, texture_size=cfg.texture_size)
    w = blend_weights(b)
    R = albedo.REGIONS
    mat = material_classes(b)
    head_like = np.isin(b.face_regions, [R[k] for k in R if k.startswith(("head", "eye", "mouth", "tongue"))])
    head_v = np.unique(b.faces[b.face_regions == R["head"]])
    front = b.rest_vertices[b.faces].mean(1)[:, 2] > b.rest_vertices[head_v, 2].max() - 0.06
    face = head_like & front & (mat != MATERIAL_INDEX["hair"])
    eye_v = np.unique(b.faces[np.isin(b.face_regions, [R["eye_front.L"], R["eye_front.R"]])])
    eyes_y = b.rest_vertices[eye_v, 1].mean()
    skull = head_v[b.rest_vertices[head_v, 1] > eyes_y + 0.04]
    neutral_pose = {k: v for k, v in b.pose.items() if k not in ("neck02", "head")}
    skull0 = pose_actor(b, world_pose=neutral_pose, expression={}).vertices[skull].astype(np.float64)
    reg = default_regressor(body_model())
    if reg is None:
        raise ValueError("the Anny-MediaPipe landmark regressor is missing (reconstruction/fitting/data)")
    rows = reg.rows(range(1000, 1478))
    kp = coco_keypoints(b)
    head_centre = (kp["left_eye"] + kp["right_eye"]) / 2 * 0.5 + kp["nose"] * 0.5 + np.array([0.0, -0.03, 0.0])
    names = list(body_model().skeleton.joint_names)
    clip = bind_rot = None
    if cfg.clip is not None:
        from doppel.synthetic_motion import load_clip

        clip = load_clip(cfg.clip, cfg.frames)
        bind_rot = body_model().bind_state(b.phenotype).bind_matrices[:, :3, :3].astype(np.float64)
    return _Plate(cfg, b, a, w, blend_texture(b, a, w), face, ~head_like, skull, skull0, reg.index[rows],
                  reg.weight[rows], names.index("neck01"), head_centre, clip, bind_rot, _film_lens(cfg, head_centre))


@dataclass
class _Frame:
    f: int
    cam: object                # PinholeNP: the film camera of this frame
    verts_b: np.ndarray        # (V, 3) float32 the performer (plate)
    verts_gt: np.ndarray       # (V, 3) float32 the ground truth (A's head on B)
    info: dict                 # commanded yaw / pitch (degrees), hand weights


def _frame(P: _Plate, f: float) -> _Frame:
    """Frame f of the plate (a frame number, or a time between two: motion blur's sub-frames)."""
    from doppel.synthetic_motion import pose_actor

    t = (f + 0.5) / P.cfg.frames            # mid-frame times: short shots still sample the turns
    pose, expr, info = performance(P.actor_b.pose, t, P.cfg.performance)
    info["expression"] = expr
    if P.clip is None:
        b = pose_actor(P.actor_b, world_pose=pose, expression=expr)
        a = pose_actor(P.actor_a, world_pose=pose, expression=expr)
    else:
        local = _clip_with_head_turn(P, f, pose)
        info["hands"] = [0.0 for _ in info["hands"]]          # the clip's own arms
        b = pose_actor(P.actor_b, local=local, expression=expr)
        a = pose_actor(P.actor_a, local=local, expression=expr)
    shift = b.joints[P.neck].astype(np.float64) - a.joints[P.neck]
    w = P.weights[:, None]
    gt = (1 - w) * b.vertices + w * (a.vertices + shift)
    return _Frame(int(round(f)), film_camera(P.cfg, P.head_centre, f), b.vertices, gt.astype(np.float32), info)


def _clip_with_head_turn(P: _Plate, f: int, pose: dict):
    """Frame f of the clip with the performance's neck02 / head turn added: a world-axes rotation D at a bone
    becomes W^T D W in its bind frame (W: the bone's bind orientation; exact when its ancestors are at bind,
    close otherwise; annotations.npz records the head pose actually rendered)."""
    from doppel.synthetic_motion import LocalPose
    from doppel.virtual_actor import body_model

    names = list(body_model().skeleton.joint_names)
    lp = _clip_at(P.clip, f)
    R = np.array(lp.rotations, copy=True)
    for bone in ("neck02", "head"):
        j = names.index(bone)
        Wb = P.bind_rot[j]
        R[j] = R[j] @ Wb.T @ _rotmat(pose[bone]) @ Wb
    return LocalPose(R, lp.root_offset)


def _clip_at(clip: list, f: float):
    """The clip's LocalPose at frame f: a frame's own, or between two its rotations along the shortest arc and its
    root offset linearly (clamped to the clip)."""
    from doppel.synthetic_motion import LocalPose
    from neural_render.motion_blur import interpolate_frames, slerp_frames

    if f == round(f):
        return clip[min(max(int(round(f)), 0), len(clip) - 1)]
    t = np.array([f])
    R = slerp_frames(np.stack([c.rotations for c in clip]), t)[0]
    return LocalPose(R, interpolate_frames(np.stack([c.root_offset for c in clip]), t)[0])


@dataclass
class _Annotations:
    """Per-frame ground truth, small arrays gathered over the shot (images go to disk as they are made)."""

    head_R: list
    head_t: list
    head_ypr: list
    head_R_cam: list
    lm3: list
    lm2: list
    visible: list
    performer_lm2: list
    occluded: list
    commanded: list
    expression: list


def head_angles(R: np.ndarray) -> tuple[float, float, float]:
    """World head rotation (3, 3) -> (yaw about +Y, pitch (+ = looking up), roll) in degrees, for a head
    whose neutral forward is +Z and up +Y: R = Ry(yaw) Rx(-pitch) Rz(roll)."""
    fwd = R[:, 2]
    yaw = np.arctan2(fwd[0], fwd[2])
    pitch = np.arcsin(np.clip(fwd[1], -1, 1))
    R0 = _rotmat([0.0, yaw, 0.0]) @ _rotmat([-pitch, 0.0, 0.0])
    Rr = R0.T @ R
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(np.arctan2(Rr[1, 0], Rr[0, 0])))


def _annotate(P: _Plate, fr: _Frame, gt_dir: Path, ann: _Annotations) -> None:
    """Masks (written), landmarks, visibility and head pose of one frame (gathered in ``ann``)."""
    import roma
    import torch

    from neural_render import rasterize

    faces = torch.as_tensor(P.actor_b.faces)
    verts = torch.as_tensor(fr.verts_gt)
    cam = (fr.cam if P.lens is None else P.lens.draw_camera(fr.cam)).to_camera(dtype=torch.float32)
    with torch.no_grad():
        full = rasterize(verts, faces, cam)
        sub = rasterize(verts, faces[torch.as_tensor(P.face_faces)], cam)
    fi, depth, sub_fi = full.face_idx[0].numpy(), full.depth[0].numpy(), sub.face_idx[0].numpy()
    if P.lens is not None:                  # into the lens's image: nearest (indices and depths are not blended)
        w = P.lens.warp
        fi = w.image(fi.astype(np.float32), nearest=True, fill=-1).astype(np.int64)
        sub_fi = w.image(sub_fi.astype(np.float32), nearest=True, fill=-1).astype(np.int64)
        depth = w.image(depth, nearest=True, fill=np.inf)
    hit = fi >= 0
    face_mask = hit & P.face_faces[np.maximum(fi, 0)]
    occ = (sub_fi >= 0) & hit & P.occluder_faces[np.maximum(fi, 0)]
    _write_mask(gt_dir / "masks" / f"face_{fr.f:06d}.png", face_mask)
    _write_mask(gt_dir / "masks" / f"occlusion_{fr.f:06d}.png", occ)
    covered = int((sub_fi >= 0).sum())
    ann.occluded.append(float(occ.sum()) / covered if covered else 0.0)
    L3 = np.einsum("lk,lkc->lc", P.lm_weight, fr.verts_gt.astype(np.float64)[P.lm_index])
    uv = fr.cam.project(L3)
    z = fr.cam.depth(L3)
    W, H = P.cfg.width, P.cfg.height
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H) & (z > 0)
    px = np.clip(np.floor(uv).astype(int), 0, [W - 1, H - 1])
    ann.visible.append(inside & (z <= depth[px[:, 1], px[:, 0]] + 0.01))
    ann.lm3.append(L3.astype(np.float32))
    ann.lm2.append(uv.astype(np.float32))
    ann.performer_lm2.append(fr.cam.project(np.einsum("lk,lkc->lc", P.lm_weight,
                                                      fr.verts_b.astype(np.float64)[P.lm_index])).astype(np.float32))
    R, t = roma.rigid_points_registration(torch.as_tensor(P.skull0), torch.as_tensor(
        fr.verts_b[P.skull].astype(np.float64)))
    R, t = R.numpy(), t.numpy()
    ann.head_R.append(R)
    ann.head_t.append(t)
    ann.head_ypr.append(head_angles(R))
    ann.head_R_cam.append(fr.cam.R @ R)
    ann.commanded.append([fr.info["yaw_deg"], fr.info["pitch_deg"], *fr.info["hands"]])
    ann.expression.append(fr.info["expression"])


def _write_mask(path: Path, mask: np.ndarray) -> None:
    import cv2

    from core.storage import atomic_write_bytes

    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise ValueError(f"{path}: mask could not be encoded as PNG")
    atomic_write_bytes(path, buf.tobytes())


class _Video:
    """An H.264 MP4 written frame by frame through imageio-ffmpeg (yuv420p, tagged and encoded BT.709: the frames
    are drawn in sRGB; odd sizes padded by one pixel)."""

    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        import imageio_ffmpeg

        from capture.video_header import RENDERED, encoder_options

        options, vf = encoder_options(RENDERED)
        self.path = path
        self._gen = imageio_ffmpeg.write_frames(
            str(path), (width, height), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            macro_block_size=1, quality=None, bitrate=None,
            output_params=["-vf", f"pad=ceil(iw/2)*2:ceil(ih/2)*2,{vf}", "-crf", "18", *options],
            ffmpeg_log_level="error")
        self._gen.send(None)

    def add(self, rgb: np.ndarray) -> None:
        self._gen.send(np.ascontiguousarray(rgb, np.uint8))

    def close(self) -> None:
        self._gen.close()


@dataclass
class PlateResult:
    out: Path                  # OUT (plate/ and ground_truth/ inside)
    frames: int
    timings: dict              # seconds: prepare, plate, ground_truth, annotate, total
    summary: dict              # what annotations.json holds (ranges, frames with occlusion)


def _raster_rgb(P: _Plate, verts: np.ndarray, cam, texture) -> np.ndarray:
    """(H, W, 3) float sRGB in [0, 1]: the mesh over the backdrop through the frame's camera (and lens)."""
    import torch

    from doppel.synthetic_capture import BACKGROUND_SRGB
    from neural_render import composite, render_mesh

    b = P.actor_b
    draw = cam if P.lens is None else P.lens.draw_camera(cam)
    with torch.no_grad():
        rgba = render_mesh(torch.as_tensor(verts), torch.as_tensor(b.faces), draw.to_camera(dtype=torch.float32),
                           uvs=torch.as_tensor(b.uvs), face_uvs=torch.as_tensor(b.face_uvs), texture=texture,
                           supersample=2)
    rgb = composite(rgba, BACKGROUND_SRGB)[0].clamp(0, 1).numpy()
    if P.lens is not None:                  # over a flat backdrop: bilinear on the composite is exact at the edge
        rgb = P.lens.warp.image(rgb)
    return np.clip(rgb, 0, 1)


def _shutter_frames(P: _Plate, fr: _Frame) -> list[_Frame]:
    """The plate at the times its shutter is open over frame ``fr`` (`neural_render.motion_blur`, centred; the
    film camera moves too): [fr] without a shutter."""
    from neural_render.motion_blur import MotionBlur

    times = MotionBlur(P.cfg.shutter_deg, P.cfg.shutter_samples).times()
    return [fr] if len(times) == 1 else [_frame(P, fr.f + dt) for dt in times]


def _exposed_rgb(P: _Plate, frames: list[_Frame], ground_truth: bool, texture) -> np.ndarray:
    """(H, W, 3) uint8 sRGB: the plate (or ground truth) drawn at each of ``frames``, averaged in linear light."""
    import torch

    from neural_render.texture import linear_to_srgb, srgb_to_linear

    rgbs = [_raster_rgb(P, x.verts_gt if ground_truth else x.verts_b, x.cam, texture) for x in frames]
    if len(rgbs) > 1:
        rgbs = [linear_to_srgb(torch.stack([srgb_to_linear(torch.as_tensor(x)) for x in rgbs]).mean(0)).numpy()]
    return (np.clip(rgbs[0], 0, 1) * 255 + 0.5).astype(np.uint8)


def _render_raster(P: _Plate, dirs: tuple[Path, Path], videos, ann: _Annotations, cams: list, timings: dict,
                   progress) -> None:
    import time

    import torch

    from doppel.synthetic_capture import _write_view_png

    tex_b, tex_gt = torch.as_tensor(P.actor_b.texture), torch.as_tensor(P.texture_gt)
    for f in range(P.cfg.frames):
        t0 = time.perf_counter()
        fr = _frame(P, f)
        cams.append(fr.cam)
        _annotate(P, fr, dirs[1], ann)
        exposed = _shutter_frames(P, fr)
        t1 = time.perf_counter()
        for d, gt, tex, video, key in ((dirs[0], False, tex_b, videos[0], "plate"),
                                       (dirs[1], True, tex_gt, videos[1], "ground_truth")):
            t2 = time.perf_counter()
            rgb = _exposed_rgb(P, exposed, gt, tex)
            _write_view_png(d / "frames" / f"{f:06d}.png", rgb)
            video.add(rgb)
            timings[key] += time.perf_counter() - t2
        timings["annotate"] += t1 - t0
        if progress:
            progress(f + 1, P.cfg.frames)


def _render_cycles(P: _Plate, dirs: tuple[Path, Path], videos, ann: _Annotations, cams: list, timings: dict,
                   progress) -> None:
    """Two passes through Cycles (the plate, then the ground truth), each streamed in chunks of frames; the
    EXRs become PNGs and video frames in order after each pass."""
    import shutil
    import tempfile
    import time

    from doppel.cycles_capture import (
        CyclesSettings,
        clean_denoiser_bleed,
        exr_to_srgb_png_pixels,
        material_classes,
        prepare_actor,
        read_exr_rgba,
        render_frames_cycles,
    )
    from doppel.synthetic_capture import BACKGROUND_SRGB, _write_view_png
    from neural_render.image_io import write_exr

    settings = CyclesSettings(samples=P.cfg.samples)
    work = Path(tempfile.mkdtemp(prefix="doppel_plate_"))
    try:
        cb = prepare_actor(P.actor_b, work, key=f"plate{P.cfg.performer_seed}")
        face_w = P.weights[P.actor_b.faces].mean(1)
        mats = np.where(face_w > 0.5, material_classes(P.actor_a), cb.material_index)
        cg = prepare_actor(P.actor_b, work, texture=P.texture_gt, key="ground_truth")
        cg = type(cg)(**{**cg.__dict__, "material_index": mats})
        for k, (d, cactor, video, key) in enumerate(((dirs[0], cb, videos[0], "plate"),
                                                     (dirs[1], cg, videos[1], "ground_truth"))):
            t0, a0 = time.perf_counter(), timings["annotate"]

            def frames(k=k, d=d):
                for f in range(P.cfg.frames):
                    ta = time.perf_counter()
                    fr = _frame(P, f)
                    if k == 0:
                        cams.append(fr.cam)
                        _annotate(P, fr, dirs[1], ann)
                    timings["annotate"] += time.perf_counter() - ta
                    yield ((fr.verts_b if k == 0 else fr.verts_gt), [(fr.cam, d / "frames_exr" / f"{f:06d}.exr")],
                           _cycles_motion(P, f, ground_truth=k == 1))

            render_frames_cycles(cactor, frames(), settings,
                                 progress=(lambda n, k=k: progress(k * P.cfg.frames + n, 2 * P.cfg.frames))
                                 if progress else None)
            for f in range(P.cfg.frames):
                exr = d / "frames_exr" / f"{f:06d}.exr"
                rgba = clean_denoiser_bleed(read_exr_rgba(exr))
                write_exr(exr, rgba, attributes=exr_attributes(P.cfg))
                rgb = exr_to_srgb_png_pixels(rgba, BACKGROUND_SRGB)
                _write_view_png(d / "frames" / f"{f:06d}.png", rgb)
                video.add(rgb)
            timings[key] += time.perf_counter() - t0 - (timings["annotate"] - a0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def exr_attributes(cfg: PlateConfig) -> dict:
    """A Cycles plate's EXR header attributes: OpenEXR's ``framesPerSecond`` (a rational) and, with a shutter,
    ``expTime`` (seconds it was open): what `doppel swap` reads for the sequence's frame rate and ``--shutter
    auto`` for its shutter angle."""
    from capture.plate_io import exr_timing_attributes
    from neural_render.motion_blur import MotionBlur

    return exr_timing_attributes(cfg.fps, cfg.shutter_deg if MotionBlur(cfg.shutter_deg, cfg.shutter_samples).on
                                 else 0.0)


def _cycles_motion(P: _Plate, f: int, ground_truth: bool):
    """Frame f's motion over the open shutter for Cycles (`doppel.cycles_capture.ShutterMotion`: the performer
    or the ground truth and the film camera at ``shutter_samples`` + 1 times from the shutter's opening to its
    close), or None without a shutter."""
    from doppel.cycles_capture import ShutterMotion, shutter_times
    from neural_render.motion_blur import MotionBlur

    if not MotionBlur(P.cfg.shutter_deg, P.cfg.shutter_samples).on:
        return None
    span = P.cfg.shutter_deg / 360.0
    times = shutter_times(span, P.cfg.shutter_samples)
    at = [_frame(P, f + t) for t in times]
    verts = np.stack([x.verts_gt if ground_truth else x.verts_b for x in at])
    return ShutterMotion(span, times, verts, [[x.cam for x in at]])


def _write_annotations(P: _Plate, out: Path, ann: _Annotations, cams: list) -> dict:
    """plate/cameras.json, ground_truth/annotations.npz and annotations.json -> the summary."""
    import dataclasses
    import io

    from capture.calibration_io import write_doppel_json
    from core.storage import atomic_write_bytes, atomic_write_json

    cfg = P.cfg
    atomic_write_json(out / "plate" / "cameras.json", {
        "convention": "OpenCV pinhole: K px, world-to-camera R, t (metres, Doppel world: +Y up, actor faces +Z), "
                      "pixel centres at integer + 0.5", "fps": cfg.fps, "width": cfg.width, "height": cfg.height,
        "frames": [{"frame": i, "K": c.K.tolist(), "R": c.R.tolist(), "t": c.t.tolist(),
                    "dist": np.asarray(c.dist).tolist()} for i, c in enumerate(cams)]})
    film = cams[0].to_camera()
    write_doppel_json(out / "plate" / "lens.json", [dataclasses.replace(film, name="film")],
                      note="the film camera: K and lens distortion of every frame; R, t of frame 0 (each frame's in "
                           "cameras.json); for `doppel swap --plate-camera`")
    ypr = np.array(ann.head_ypr)
    occ = np.array(ann.occluded)
    arrays = {"head_R": np.array(ann.head_R), "head_t": np.array(ann.head_t), "head_ypr_deg": ypr,
              "head_R_cam": np.array(ann.head_R_cam), "landmarks3d": np.array(ann.lm3),
              "landmarks2d": np.array(ann.lm2), "landmarks_visible": np.array(ann.visible),
              "occluded_fraction": occ, "commanded_yaw_pitch_hands": np.array(ann.commanded),
              "performer_landmarks2d": np.array(ann.performer_lm2),
              "expression_names": np.array(list(ann.expression[0]), dtype=np.str_),
              "expression_weights": np.array([list(e.values()) for e in ann.expression], np.float32)}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(out / "ground_truth" / "annotations.npz", buf.getvalue())
    summary = {
        "frames": cfg.frames, "size": [cfg.width, cfg.height], "fps": cfg.fps, "camera": cfg.camera,
        "distance_m": cfg.distance_m, "fov_x_deg": cfg.fov_x_deg, "distortion": list(cfg.distortion),
        "offset": list(cfg.offset), "shutter_deg": cfg.shutter_deg,
        "shutter_samples": cfg.shutter_samples if cfg.shutter_deg > 0 else None,
        "renderer": cfg.renderer, "samples": cfg.samples if cfg.renderer == "cycles" else None,
        "body_motion": cfg.clip or "built-in performance", "performance": cfg.performance,
        "performer_seed": cfg.performer_seed, "double_seed": cfg.double_seed,
        "yaw_range_deg": [round(float(ypr[:, 0].min()), 2), round(float(ypr[:, 0].max()), 2)],
        "pitch_range_deg": [round(float(ypr[:, 1].min()), 2), round(float(ypr[:, 1].max()), 2)],
        "frames_with_occlusion": int((occ > 0.02).sum()),
        "max_occluded_fraction": round(float(occ.max()), 4),
        "mean_visible_landmarks": round(float(np.array(ann.visible).sum(1).mean()), 1),
        "blend": "ground truth vertices = (1 - w) B + w (A + neck01_B - neck01_A), A posed with B's pose and "
                 "expression; w = ground_truth/blend_weights.npy; albedo blended by w through the UVs",
        "head_pose": "rigid motion (Kabsch) of the performer's skull vertices from the neutral head; yaw about +Y "
                     "(+ = towards the actor's left), pitch + = up, roll; world frame",
        "landmarks": "478 MediaPipe face-mesh points of the ground truth mesh from the Anny-MediaPipe regressor",
        "performer_landmarks": "performer_landmarks2d: the same points of the performer's own face (the plate)",
        "expression": "expression_names / expression_weights (F, E): the ARKit weights both heads were posed with",
        "occlusion": "occluded_fraction = share of the face region's projection hidden by non-head triangles; "
                     "a frame counts as occluded above 2 %"}
    atomic_write_json(out / "ground_truth" / "annotations.json", summary)
    return summary


def render_plate(out, cfg: PlateConfig, progress=None, actor_b=None, actor_a=None) -> PlateResult:
    """Render a synthetic plate and its face-replacement ground truth into OUT (layout: the module docstring).

    cfg: PlateConfig (checked first: ValueError naming the option). progress(done, total) after each frame of
    each pass. actor_b / actor_a: already built VirtualActors for the performer / double seeds (skips building
    them). Raises BlenderError (one line) when Cycles fails."""
    import time

    check_plate_config(cfg)
    out = Path(out)
    t0 = time.perf_counter()
    P = _prepare(cfg, actor_b, actor_a)
    dirs = (out / "plate", out / "ground_truth")
    exr = ("frames_exr",) if cfg.renderer == "cycles" else ()
    for d in [dirs[0] / n for n in ("frames", *exr)] + [dirs[1] / n for n in ("frames", "masks", *exr)]:
        d.mkdir(parents=True, exist_ok=True)
    np.save(dirs[1] / "blend_weights.npy", P.weights.astype(np.float32))
    timings = {"prepare": time.perf_counter() - t0, "plate": 0.0, "ground_truth": 0.0, "annotate": 0.0}
    ann = _Annotations(*([] for _ in range(11)))
    cams: list = []
    videos = (_Video(dirs[0] / "plate.mp4", cfg.width, cfg.height, cfg.fps),
              _Video(dirs[1] / "ground_truth.mp4", cfg.width, cfg.height, cfg.fps))
    try:
        render = _render_cycles if cfg.renderer == "cycles" else _render_raster
        render(P, dirs, videos, ann, cams, timings, progress)
    finally:
        for v in videos:
            v.close()
    summary = _write_annotations(P, out, ann, cams)
    timings["total"] = time.perf_counter() - t0
    return PlateResult(out, cfg.frames, {k: round(v, 3) for k, v in timings.items()}, summary)
