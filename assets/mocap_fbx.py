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


def read_any_clip(path: str | Path, units: str = "auto", subject: str | Path | None = None
                  ) -> tuple[Motion, ClipInfo]:
    """`mocap_retarget.clips.read_clip` for every format, FBX included (through Blender)."""
    return read_clip(path, units=units, fbx_reader=read_fbx_clip, subject=subject)


def read_fbx_clip(path: str | Path, max_frames: int = MAX_CLIP_FRAMES) -> Motion:
    """Read ``path`` (.fbx) into a Motion (metres, Doppel frame). Leaf bones' tails become End Sites. Raises
    ClipError (the file has no animated armature), BlenderError or MissingDependencyError (no bpy)."""
    from assets.blender_worker import BlenderError, run_blender_tasks
    from core.conventions import ZUP_NEGY_FORWARD_TO_DOPPEL as C

    path = Path(path)
    task = {"kind": "read_armature", "path": str(path.resolve()), "max_frames": int(max_frames)}
    try:
        (res,) = run_blender_tasks([(task, {})])
    except BlenderError as e:
        raise ClipError(f"{path}: Blender could not read this FBX clip ({e})") from e
    C4 = np.eye(4)
    C4[:3, :3] = C
    rest = C4 @ res.arrays["rest"]
    world = C4 @ res.arrays["world"]
    tails = res.arrays["tails"] @ C.T
    names, parents = list(res.info["names"]), [int(p) for p in res.info["parents"]]
    sites = {j: [tails[j] - rest[j, :3, 3]] for j, leaf in enumerate(res.info["leaf"]) if leaf}
    return motion_from_world(names, parents, rest, world, float(res.info["fps"]), str(path), end_sites=sites)
