"""Reading a mocap clip of any supported format into a `Motion` (the BVH reader's type, so the same mapping,
retargeting and cleanup follow): BVH; FBX through Blender's importer in the worker process; glTF 2.0 skins with
animation (pygltflib); USD ``SkelAnimation`` (pxr.UsdSkel); Xsens MVN's MVNX (XML); C3D optical markers of the
Plug-in Gait / CMU full-body set, solved to a skeleton (`mocap_retarget.clip_c3d`; another marker set is refused:
solve it in the capture software first).

Every non-BVH reader produces per-frame joint world matrices plus the rest (bind) world matrices; `motion_from_world`
turns them into BVH's convention (rest rotations identity, offsets in world axes), in Doppel's frame (metres, +Y up).
The frame rate is snapped to a standard rate (`rigging.animation.snap_fps`); `ClipInfo` records what the file said.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mocap_retarget.bvh import Motion, read_bvh
from mocap_retarget.world_motion import ClipError, motion_from_world, unique_names
from rigging.animation import snap_fps

log = logging.getLogger(__name__)

__all__ = ["CLIP_SUFFIXES", "MAX_CLIP_FRAMES", "ClipError", "ClipInfo", "motion_from_world", "read_clip",
           "unique_names"]

CLIP_SUFFIXES = (".bvh", ".fbx", ".glb", ".gltf", ".usd", ".usda", ".usdc", ".usdz", ".mvnx", ".c3d")
MAX_CLIP_FRAMES = 10_000_000     # beyond any real take; a larger count is a corrupt file
TAKE_SUFFIXES = (".fbx", ".glb", ".gltf")     # formats whose files may hold several named takes
SKELETON_SUFFIXES = (*TAKE_SUFFIXES, ".usd", ".usda", ".usdc", ".usdz")    # ... and several skeletons


@dataclass(frozen=True)
class ClipInfo:
    """What a clip file said about its timing: fps_file as read (1 / Frame Time for BVH), fps the rate used
    (snapped to a standard rate when within 0.05 %, or the rate it was plotted at: resampled_from), format (bvh,
    fbx, gltf, usd, mvnx, c3d); take and takes where the format names its takes (`mocap_retarget.clip_takes`)."""

    format: str
    fps_file: float
    fps: float
    resampled_from: float | None = None     # the clip's rate before `doppel retarget --resample` plotted it at fps
    solve: dict | None = None               # a marker take's solve quality (`mocap_retarget.marker_qc`)
    take: str | None = None                 # the take read, in a format that names them (glTF, FBX)
    takes: dict[str, int] | None = None     # every take of that file: name -> frames

    def as_dict(self) -> dict:
        out = {"format": self.format, "fps_file": round(self.fps_file, 6), "fps": self.fps,
               "snapped": self.fps != self.fps_file}
        if self.resampled_from is not None:
            out |= {"resampled_from": self.resampled_from, "snapped": self.resampled_from != self.fps_file}
        return out


def read_clip(path: str | Path, units: str = "auto", fbx_reader: Callable[..., Motion] | None = None,
              subject: str | Path | None = None, take: str | None = None) -> tuple[Motion, ClipInfo]:
    """Read a mocap clip (see CLIP_SUFFIXES) into a Motion in metres (BVH: ``units`` as read_bvh; other formats
    carry their own units and axes) with its frame rate snapped. FBX needs ``fbx_reader`` (Blender lives above this
    package: `assets.mocap_fbx.read_any_clip` plugs it in). ``subject``: a C3D take's performer, their Vicon
    subject file (.vsk: their Plug-in Gait measurements) or their subject name (`clip_c3d.read_c3d_clip`); a C3D's
    solve quality comes back in ``ClipInfo.solve``; an FBX's, glTF's or USD's skeleton of several, by name
    (`mocap_retarget.clip_takes`). ``take``: which of a glTF's animations or an FBX's stacks to
    read (`mocap_retarget.clip_takes`); ``ClipInfo.take`` / ``takes`` say which was read and what else the file
    holds. Raises FileNotFoundError or ClipError/BvhError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: clip file not found")
    sfx = path.suffix.lower()
    if sfx not in CLIP_SUFFIXES:
        raise ClipError(f"{path}: unsupported clip format {sfx or '(no suffix)'!r}; expected one of "
                        f"{', '.join(CLIP_SUFFIXES)}")
    if subject is not None and sfx not in (".c3d", *SKELETON_SUFFIXES):
        raise ClipError(f"{path}: --subject names the performer of a C3D take (a Vicon .vsk or a subject name) or "
                        f"the skeleton of an FBX, glTF or USD file of several; a {sfx} clip holds one")
    if sfx != ".bvh" and units != "auto":
        raise ClipError(f"{path}: --units applies to BVH only ({sfx} files carry their own unit scale)")
    if take is not None and sfx not in TAKE_SUFFIXES:
        raise ClipError(f"{path}: --take names one of a glTF's animations or an FBX's takes; a {sfx} clip holds one")
    solve: dict | None = None                      # a C3D take's solve quality
    chosen: dict = {}                              # the take read, where the format names them
    if sfx == ".bvh":
        motion, fmt = read_bvh(path, units=units), "bvh"
    elif sfx == ".fbx":
        if fbx_reader is None:
            raise ClipError(f"{path}: FBX clips are read through Blender: use assets.mocap_fbx.read_any_clip")
        motion, fmt = fbx_reader(path, take=take, chosen=chosen, subject=_name(subject)), "fbx"
    elif sfx in (".glb", ".gltf"):
        from mocap_retarget.clip_gltf import read_gltf_clip

        motion, fmt = read_gltf_clip(path, take, chosen, _name(subject)), "gltf"
    elif sfx == ".c3d":
        from mocap_retarget.clip_c3d import read_c3d_clip

        solve = {}
        motion, fmt = read_c3d_clip(path, subject, solve), "c3d"
    elif sfx == ".mvnx":
        from mocap_retarget.clip_mvnx import read_mvnx_clip

        motion, fmt = read_mvnx_clip(path), "mvnx"
    else:
        from mocap_retarget.clip_usd import read_usd_clip

        motion, fmt = read_usd_clip(path, _name(subject)), "usd"
    fps_file = motion.fps
    fps = snap_fps(fps_file)
    motion.frame_time = 1.0 / fps
    if fps != fps_file:
        log.info("%s: %.6g fps snapped to the standard %.6g fps", path, fps_file, fps)
    return motion, ClipInfo(fmt, fps_file, fps, solve=solve, take=chosen.get("take"), takes=chosen.get("takes"))


def _name(subject: str | Path | None) -> str | None:
    """A skeleton's name as given on the command line (a Path there: --subject is also a C3D's .vsk file)."""
    return None if subject is None else str(subject)


def estimate_retarget_bytes(frames: int, source_joints: int, target_joints: int) -> int:
    """Peak memory of a retarget (and its metrics and outputs), bytes: about 3 float64 (F, Js, 3, 3)-sized arrays of
    the source (parse, forward kinematics) and 3 of the target (world rotations during the cleanup, local
    rotations, positions). Measured, `doppel retarget` end to end (outputs and previews written), 71 552 frames, 31
    -> 104 joints: 1.90 GB above the process's start (estimate 2.09 GB); 4.7 GB before its outputs were written a
    chunk at a time and its result kept the take's world rotations (stop 67)."""
    per_joint_frame = 9 * 8                                    # one 3x3 float64
    return int(frames * per_joint_frame * (3 * source_joints + 3 * target_joints))


LARGE_RETARGET_BYTES = 2e9     # an estimate above this is announced (a warning) before the work starts


def default_memory_limit_bytes() -> int:
    """The default limit of a retarget's estimated peak: the smaller of half the machine's physical memory and
    80 % of the memory available now."""
    from core.limits import available_memory_bytes, total_memory_bytes

    return int(min(0.5 * total_memory_bytes(), 0.8 * available_memory_bytes()))


def check_retarget_memory(frames: int, source_joints: int, target_joints: int, max_memory_gb: float | None,
                          clip: str | Path) -> None:
    """Refuse a retarget whose estimated peak memory is over ``max_memory_gb`` (None: `default_memory_limit_bytes`)
    with one line (ValueError: what, how much, the limit, how to override); log a warning when it needs more than
    LARGE_RETARGET_BYTES."""
    import math

    if max_memory_gb is None:
        max_memory_gb = default_memory_limit_bytes() / 1e9
    if not (math.isfinite(max_memory_gb) and max_memory_gb > 0):
        raise ValueError(f"--max-memory-gb must be a number > 0, got {max_memory_gb}")
    need = estimate_retarget_bytes(frames, source_joints, target_joints) / 1e9
    if need > max_memory_gb:
        raise ValueError(f"{clip}: {frames} frames x {source_joints} joints onto {target_joints} joints needs about "
                         f"{need:.3g} GB, over the limit of {max_memory_gb:g} GB; retarget it in parts (--frames A:B) "
                         f"or raise --max-memory-gb")
    if need * 1e9 > LARGE_RETARGET_BYTES:
        log.warning("%s: %d frames: this retarget needs about %.1f GB of memory (limit %.1f GB, --max-memory-gb)",
                    clip, frames, need, max_memory_gb)
