"""FBX mocap clips (Vicon Shogun, Xsens MVN, Rokoko, MotionBuilder, Mixamo) through Blender's own FBX importer, in
the Blender worker process (assets.blender_worker, task ``read_armature``): the animated armature with the most
bones is sampled at every frame of its action, whatever the file's frame rate, unit scale and axes (Blender's
importer applies them); the result comes back as world matrices in Blender's Z-up metres and is turned into
Doppel's frame here. It lives in ``assets`` (beside the worker) because ``mocap_retarget`` sits below ``assets``
in the import order; `read_any_clip` is `mocap_retarget.clips.read_clip` with FBX support plugged in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mocap_retarget.bvh import Motion
from mocap_retarget.clips import MAX_CLIP_FRAMES, ClipError, ClipInfo, motion_from_world, read_clip


def read_any_clip(path: str | Path, units: str = "auto", subject: str | Path | None = None,
                  take: str | None = None) -> tuple[Motion, ClipInfo]:
    """`mocap_retarget.clips.read_clip` for every format, FBX included (through Blender)."""
    return read_clip(path, units=units, fbx_reader=read_fbx_clip, subject=subject, take=take)


def read_fbx_clip(path: str | Path, max_frames: int = MAX_CLIP_FRAMES, take: str | None = None,
                  chosen: dict | None = None, subject: str | None = None) -> Motion:
    """Read ``path`` (.fbx) into a Motion (metres, Doppel frame): the take (animation stack) ``take`` names, else
    the file's first (`mocap_retarget.clip_takes`; ``chosen``, a dict, gets "take" and "takes": name -> frames), of
    the armature ``subject`` names, else the animated one with the most bones.
    Leaf bones' tails become End Sites. Raises ClipError (no animated armature, no such take), BlenderError or
    MissingDependencyError (no bpy)."""
    from assets.blender_worker import BlenderError, run_blender_tasks
    from core.conventions import ZUP_NEGY_FORWARD_TO_DOPPEL as C
    from mocap_retarget.clip_takes import note_skeletons, note_takes

    path = Path(path)
    task = {"kind": "read_armature", "path": str(path.resolve()), "max_frames": int(max_frames), "take": take,
            "subject": subject}
    try:
        (res,) = run_blender_tasks([(task, {})])
    except BlenderError as e:
        raise ClipError(f"{path}: Blender could not read this FBX clip ({e})") from e
    if "clip_error" in res.info:
        raise ClipError(res.info["clip_error"])
    note_skeletons(path, res.info["skeletons"], res.info["skeleton"], subject)
    note_takes(path, res.info["takes"], res.info["take"], take)
    if chosen is not None:
        chosen.update(take=res.info["take"], takes=dict(res.info["takes"]))
    C4 = np.eye(4)
    C4[:3, :3] = C
    rest = C4 @ res.arrays["rest"]
    world = C4 @ res.arrays["world"]
    tails = res.arrays["tails"] @ C.T
    names, parents = list(res.info["names"]), [int(p) for p in res.info["parents"]]
    sites = {j: [tails[j] - rest[j, :3, 3]] for j, leaf in enumerate(res.info["leaf"]) if leaf}
    return motion_from_world(names, parents, rest, world, float(res.info["fps"]), str(path), end_sites=sites)
