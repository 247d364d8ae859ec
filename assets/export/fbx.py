"""FBX export through Blender's own FBX writer (``bpy``, in a worker process: assets.blender_worker).

The scene is built with the data already in the file's axes and units (scene unit scale 1/s, so the FBX
UnitScaleFactor says centimetres or metres and objects keep a scale of 1). For a Z-up file the data are in
Blender's own axes and the exporter changes nothing. For a Y-up file the data are in Doppel's axes and the armature
object is turned +90 degrees about X inside Blender (so the double stands up there); Blender's exporter applies its
Y-up axis change (-90 degrees about X) to that root object, so in the file every object transform is the identity
and the mesh and bones are plain Y-up data, as Maya users expect. Bones carry the rig's bind matrices as their rest
matrices (Blender bones point along their local +Y, as Anny's joints do), so the animation's local rotations
(relative to the bind pose, in each joint's bind frame) are the pose bones' quaternions as they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from assets.export.common import (
    ExportError,
    ExportOptions,
    ExportScene,
    check_output_path,
    quat_xyzw_chunked,
    staged_output,
)

log = logging.getLogger(__name__)
REST_TOL = 1e-4     # how far Blender's bone rest matrices may be from the bind matrices (float32 edit bones)


def blender_scene_options(options: ExportOptions) -> ExportOptions:
    """The frame the Blender scene's data are built in for ``options``: the file's own axes and units."""
    return replace(options)


def fbx_task(scene: ExportScene, out: Path, up: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The worker task that writes ``scene`` (prepared in `blender_scene_options` frame) to ``out``."""
    if scene.options.up != up:
        raise ValueError(f"fbx_task: the scene is prepared {scene.options.up}-up, the file is {up}-up")
    arrays: dict[str, np.ndarray] = {
        "parents": scene.parents, "bind": scene.bind, "vertices": scene.vertices, "faces": scene.faces,
        "skin_indices": scene.skin_indices, "skin_weights": scene.skin_weights,
        "blendshape_deltas": scene.blendshape_deltas}
    if scene.uvs is not None:
        arrays["uvs"], arrays["face_uvs"] = scene.uvs, scene.face_uvs
    T = scene.num_frames
    if T:
        q = quat_xyzw_chunked(scene.rotations)                                  # xyzw, a chunk of frames at a time
        arrays["quaternions_wxyz"] = np.concatenate([q[..., 3:], q[..., :3]], -1)
        loc = np.zeros((T, len(scene.joint_names), 3))
        roots = np.flatnonzero(scene.parents < 0)
        # root pose = rest @ T(loc) @ R and W = T(t) @ rest @ R  =>  loc = rest_rot^T t
        loc[:, roots] = np.einsum("jba,tb->tja", scene.bind[roots, :3, :3], scene.root_translation)
        arrays["root_location"] = loc
        if scene.blendshape_weights is not None:
            arrays["blendshape_weights"] = scene.blendshape_weights
        elif scene.blendshape_names:
            arrays["blendshape_weights"] = np.zeros((T, len(scene.blendshape_names)))
    task = {"kind": "export_fbx", "out": str(out), "name": scene.name, "joint_names": scene.joint_names,
            "blendshape_names": scene.blendshape_names, "scale": scene.options.scale, "fps": scene.fps,
            "frames": T, "up": up, "texture": str(scene.texture.resolve()) if scene.texture else None,
            "provenance": scene.provenance}
    return task, arrays


def export_fbx(scene: ExportScene, out: str | Path, up: str = "y") -> Path:
    """Write ``scene`` (prepared in the file's frame, see `blender_scene_options`) to ``out`` as an FBX whose up
    axis is ``up`` ("y" or "z"); atomic. Returns the path."""
    out = check_output_path(out, (".fbx",))
    with staged_output(out) as staged:
        task, arrays = fbx_task(scene, staged, up)
        run_skinned_task(task, arrays, out, "the FBX", fbx_timeout_s(scene.num_frames, len(scene.joint_names)),
                         scene.options.scale)
        if scene.num_frames:
            set_fbx_time_span(staged, 1, scene.num_frames, scene.fps)
    return out


def run_skinned_task(task: dict, arrays: dict, out: Path, what: str, timeout: float, scale: float):
    """Run a Blender export task that builds the rig's skinned scene (`fbx_task`, or a task made from it); ExportError
    (one line) when Blender fails or its bones' rest matrices are not the bind matrices. Returns the TaskResult."""
    from assets.blender_worker import BlenderError, run_blender_tasks

    try:
        (res,) = run_blender_tasks([(task, arrays)], timeout=timeout)
    except BlenderError as e:
        raise ExportError(f"{out}: Blender could not write {what}: {e}") from e
    err = max(res.info["rest_rotation_error"], res.info["rest_position_error"] / scale)
    if err > REST_TOL:
        raise ExportError(f"{out}: Blender's bone rest matrices differ from the bind pose by {err:.2e}")
    return res


BAKE_S_PER_BONE_FRAME = 100e-6     # the worker's allowance per bone and frame: 4x the slowest measured (23 us)


def fbx_timeout_s(frames: int, bones: int) -> float:
    """Seconds the Blender worker may take to write an FBX of ``frames`` frames of ``bones`` bones: the worker's
    start-up allowance plus the bake's (Blender's exporter sets every frame and reads every bone in Python: 3.5 s
    for 2752 frames x 104 bones, 101 s for 71 552 x 104 on 2 cores, 171 s before the worker held unmoving channels
    and muted the skinning; a 10-minute 120 fps take gets 1344 s)."""
    from assets.blender_worker import WORKER_TIMEOUT_S

    return WORKER_TIMEOUT_S + BAKE_S_PER_BONE_FRAME * frames * bones


FBX_KTIME = 46186158000            # FBX time units per second


def set_fbx_time_span(path: str | Path, first: int, last: int, fps: float) -> None:
    """Write the clip's range (frames first..last at fps) into a binary FBX's GlobalSettings TimeSpanStart/Stop
    (Blender's writer always puts 0 s .. 1 s there, so Maya and MotionBuilder open a 686-frame clip as 1 second).
    The values are patched in place (same size). Raises ExportError when the file lacks them."""
    import struct

    path = Path(path)
    data = bytearray(path.read_bytes())
    for name, frame in (("TimeSpanStart", first), ("TimeSpanStop", last)):
        i = _property_value_offset(bytes(data), name)
        if i is None or data[i:i + 1] != b"L":
            raise ExportError(f"{path}: no GlobalSettings {name} (int64) to set the clip's range")
        struct.pack_into("<q", data, i + 1, int(round(frame / fps * FBX_KTIME)))
    with open(path, "r+b") as f:
        f.write(data)


def _property_value_offset(data: bytes, name: str) -> int | None:
    """Offset of the type code of the value of the Properties70 record ``name`` in a binary FBX, or None."""
    import struct

    key = b"S" + struct.pack("<I", len(name)) + name.encode()
    i = data.find(key)
    if i < 0:
        return None
    i += len(key)
    for _ in range(3):                                   # type, label, flags strings
        if data[i:i + 1] != b"S":
            break
        n = struct.unpack_from("<I", data, i + 1)[0]
        i += 5 + n
    return i


@dataclass
class BlenderEvaluation:
    """What Blender reads back from a file. vertices: (len(frames), V', 3) world positions, metres, Doppel frame;
    rest: (V', 3) the undeformed mesh in the same frame; info: bones, shape keys, custom properties, images."""

    vertices: np.ndarray
    rest: np.ndarray
    info: dict[str, Any]


def evaluation_task(path: str | Path, frames: list[int], fps: float, static: bool = False,
                    scale: float = 1.0) -> tuple[dict, dict]:
    """The worker task of `evaluate_in_blender` for one file; ``scale``: metres per file unit of an Alembic cache
    (the format records none), ``static``: a file without an animation is evaluated in its one pose."""
    return {"kind": "evaluate", "path": str(Path(path).resolve()), "frames": [int(f) for f in frames],
            "fps": float(fps), "static": bool(static), "scale": float(scale)}, {}


def evaluate_in_blender(paths: list[str | Path], frames: list[int], fps: float, static: bool = False,
                        scale: float = 1.0) -> list[BlenderEvaluation]:
    """Import each file (.fbx / .glb / .abc / .usd*) into an empty Blender scene (one worker process for all),
    evaluate the given animation frames (0 = the animation's first frame; with ``static``, a file without an
    animation in its one pose) and return the deformed vertices in Doppel's frame (`evaluation_task`)."""
    from assets.blender_worker import run_blender_tasks
    from core.conventions import zup_to_doppel

    results = run_blender_tasks([evaluation_task(p, frames, fps, static, scale) for p in paths])
    return [BlenderEvaluation(vertices=zup_to_doppel(r.arrays["vertices"]), rest=zup_to_doppel(r.arrays["rest"]),
                              info=r.info) for r in results]


def fbx_global_settings(path: str | Path) -> dict[str, float]:
    """UpAxis, UpAxisSign, FrontAxis, FrontAxisSign, CoordAxis, UnitScaleFactor (centimetres per file unit), TimeMode,
    CustomFrameRate, TimeSpanStart/Stop (FBX time units, FBX_KTIME per second) read from a binary FBX's
    GlobalSettings (a minimal reader of its Properties70 records, for checks and tests)."""
    import struct

    data = Path(path).read_bytes()
    if not data.startswith(b"Kaydara FBX Binary"):
        raise ExportError(f"{path}: not a binary FBX file")
    out: dict[str, float] = {}
    for name in ("UpAxis", "UpAxisSign", "FrontAxis", "FrontAxisSign", "CoordAxis", "UnitScaleFactor", "TimeMode",
                 "CustomFrameRate", "TimeSpanStart", "TimeSpanStop"):
        i = _property_value_offset(data, name)
        if i is None:
            continue
        code = data[i:i + 1]
        if code in (b"I", b"D", b"L"):
            fmt = {b"I": "<i", b"D": "<d", b"L": "<q"}[code]
            out[name] = float(struct.unpack_from(fmt, data, i + 1)[0])
    return out
