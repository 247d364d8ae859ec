"""A take's fit as a mocap clip: markerless motion capture from the capture rig.

`doppel fit SESSION --frame all` fits the body model to every frame of a take (`reconstruction.session_fit`); its
folder holds each frame's pose and root translation (params.json, exact float64). Posed through the body model with
the first frame's shape, the joints' world matrices of every frame are a skeletal clip like an FBX's
(`mocap_retarget.world_motion.motion_from_world`), so `doppel retarget FIT_DIR --rig RIG --out ANIM` puts the
actor's own performance onto any rig (their double's, or another's) with the retargeter's mapping, scaling and
foot cleanup, and from there into exports and shots. A capture session carries no frame rate: ``fps`` gives it
(default `DEFAULT_TAKE_FPS`, said).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from mocap_retarget.bvh import Motion
from mocap_retarget.clips import ClipInfo
from mocap_retarget.world_motion import ClipError, motion_from_world
from rigging.animation import snap_fps

log = logging.getLogger(__name__)

DEFAULT_TAKE_FPS = 24.0
FORWARD_CHUNK = 64           # frames posed in one call of the body model


def is_take_fit(path: str | Path) -> bool:
    """Whether ``path`` is the fit folder of a take (`doppel fit --frame all`: metrics.json lists its frames)."""
    p = Path(path)
    if not (p.is_dir() and (p / "params.json").is_file() and (p / "metrics.json").is_file()):
        return False
    try:
        frames = json.loads((p / "metrics.json").read_text(encoding="utf-8")).get("frames")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(frames, dict) and len(frames) > 0


def read_take_clip(fit_dir: str | Path, fps: float | None = None) -> tuple[Motion, ClipInfo]:
    """The take fitted in ``fit_dir`` as a Motion of the body model's skeleton (metres, Doppel frame; every frame in
    the take's order) and its ClipInfo (format "take"). fps: the take's frame rate (None: `DEFAULT_TAKE_FPS`, with
    a warning). ClipError (one line) for a fit of a model other than Anny, a frame folder without params.json, or
    a bad frame rate."""
    from reconstruction.fit_folder import FitFolder

    fit_dir = Path(fit_dir)
    if fps is None:
        log.warning("%s: a capture take carries no frame rate: %g fps assumed (--fps gives the take's)", fit_dir,
                    DEFAULT_TAKE_FPS)
        fps = DEFAULT_TAKE_FPS
    if not (np.isfinite(fps) and fps > 0):
        raise ClipError(f"{fit_dir}: --fps must be a frame rate > 0, got {fps}")
    frames = json.loads((fit_dir / "metrics.json").read_text(encoding="utf-8"))["frames"]
    params = []
    for name, row in frames.items():
        folder = fit_dir / str(row.get("folder", f"frames/{name}"))
        try:
            params.append(FitFolder(folder).read_params())
        except (OSError, ValueError) as e:
            raise ClipError(f"{fit_dir}: frame {name} of the take cannot be read ({e})") from e
    if params[0].model != "anny":
        raise ClipError(f"{fit_dir}: a take fitted with {params[0].model}: only an Anny take reads as a clip for now")
    if any(p.pose is None or p.root_translation is None for p in params):
        raise ClipError(f"{fit_dir}: a frame of the take has no pose (params.json)")
    names, parents, rest, world = _posed_joints(params)
    motion = motion_from_world(names, parents, rest, world, float(fps), str(fit_dir))
    return motion, ClipInfo(format="take", fps_file=float(fps), fps=snap_fps(fps))


def _posed_joints(params: list) -> tuple[list[str], list[int], np.ndarray, np.ndarray]:
    """(joint names, parents, bind world matrices (J, 4, 4), posed world matrices (F, J, 4, 4)) of the frames'
    parameters posed through Anny with the first frame's shape (a take keeps one shape)."""
    import torch

    from reconstruction.body_models import AnnyModel
    from reconstruction.body_models.base import BodyParams

    model = AnnyModel()
    shape = model.shape_vector(params[0].shape)
    bind = model.bind_state(shape)
    dt = model.dtype
    out = []
    for i in range(0, len(params), FORWARD_CHUNK):
        chunk = params[i:i + FORWARD_CHUNK]
        with torch.no_grad():
            o = model(BodyParams(shape=torch.as_tensor(shape, dtype=dt)[None].expand(len(chunk), -1),
                                 pose=torch.as_tensor(np.stack([p.pose for p in chunk]), dtype=dt),
                                 root_translation=torch.as_tensor(np.stack([p.root_translation for p in chunk]),
                                                                  dtype=dt)))
        out.append(o.joint_transforms.double().cpu().numpy())
    return (list(model.skeleton.joint_names), [int(p) for p in model.skeleton.parents], bind.bind_matrices,
            np.concatenate(out))
