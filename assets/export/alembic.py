"""Alembic (.abc) geometry caches through Blender's own Alembic writer (``bpy``, in a worker process:
assets.blender_worker): the double's mesh deformed at every frame of the animation, for the departments that take
baked geometry rather than a rig (cloth and hair simulation, FX, lighting in Houdini, Katana, Nuke, Maya).

What the file holds: one PolyMesh (the rig's vertex order and triangles) whose points are sampled at every frame
(frames 1..T at the animation's rate; the bind pose alone without an animation), its UVs, its normals (optional:
about two thirds of a cache's bytes), and the export's provenance as the mesh's user properties (``doppel_*``,
read back by `assets.export.alembic_read`). No skeleton, no material: an Alembic cache is geometry; the texture
travels beside it (the rig's albedo.png). The deformation is Blender's armature skinning of the rig's weights
plus its shape keys, the same scene the FBX export writes, checked against `Rig.pose` in the tests.

Axes and units: Alembic has neither in its metadata; its files are Y-up by convention (Maya, Houdini, Katana and
Nuke all read them so), so an Alembic export is always Y-up (``--up z`` is refused). Units are the reader's:
metres by default (Houdini, Katana), ``--units cm`` or ``--preset maya`` for Maya, whose scene unit is the
centimetre. The scene is built in Blender's own axes and Blender's writer turns it Y-up.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from assets.export.common import ExportOptions, ExportScene, check_output_path, staged_output

log = logging.getLogger(__name__)
ABC_SUFFIXES = (".abc",)
EVAL_S_PER_MVERTEX_FRAME = 2.0       # the worker's allowance per million vertex-frames (see `alembic_timeout_s`)


def check_alembic_options(options: ExportOptions) -> ExportOptions:
    """``options`` when they fit an Alembic file (Y-up); ValueError (one line) for a Z-up request."""
    if options.up != "y":
        raise ValueError("Alembic files are Y-up by convention (the format records no up axis, and Maya, Houdini, "
                         "Katana and Nuke read them Y-up): leave --up / --preset unreal out, or export FBX or USD "
                         "for a Z-up file")
    return options


def blender_scene_options(options: ExportOptions) -> ExportOptions:
    """The frame the Blender scene is built in for an Alembic file of ``options``: Blender's Z-up axes in the
    file's units (Blender's Alembic writer turns them Y-up)."""
    return replace(check_alembic_options(options), up="z")


def cache_bytes(frames: int, vertices: int) -> int:
    """About how many bytes an Alembic cache of ``frames`` frames of ``vertices`` points takes: 12 per point and
    frame (float32 x, y, z; Blender writes no normals for a smooth mesh, the topology and UVs once)."""
    return 12 * max(frames, 1) * vertices


def check_cache_fits(out: Path, frames: int, vertices: int) -> None:
    """ResourceLimitError (one line) before any work when the cache cannot fit on the disk of ``out`` (a 10-minute
    take at 120 fps onto the default double is 11.8 GB)."""
    from core.limits import ResourceLimitError, format_bytes, free_disk_bytes

    need, free = cache_bytes(frames, vertices), free_disk_bytes(out.parent)
    if need > free:
        raise ResourceLimitError(f"{out}: an Alembic cache of {frames} frames of {vertices} vertices takes about "
                                 f"{format_bytes(need)}, {format_bytes(free)} free there; export a range of the take "
                                 "(`doppel retarget --frames A:B`) or write it elsewhere")


def alembic_timeout_s(frames: int, vertices: int) -> float:
    """Seconds the Blender worker may take: its start-up allowance plus the skinning and writing of every frame
    (Blender evaluates the armature and the shape keys of the whole mesh at each)."""
    from assets.blender_worker import WORKER_TIMEOUT_S

    return WORKER_TIMEOUT_S + EVAL_S_PER_MVERTEX_FRAME * max(frames, 1) * vertices / 1e6


def alembic_task(scene: ExportScene, out: Path, normals: bool = True) -> tuple[dict, dict]:
    """The worker task that writes ``scene`` (prepared in `blender_scene_options` frame) to ``out``."""
    from assets.export.fbx import fbx_task

    if scene.options.up != "z":
        raise ValueError("alembic_task: the scene must be prepared in Blender's axes (blender_scene_options)")
    task, arrays = fbx_task(scene, out, "z")      # the same armature, skin, shape keys and keys as the FBX
    task.update(kind="export_alembic", normals=bool(normals), texture=None)
    return task, arrays


def export_alembic(scene: ExportScene, out: str | Path, normals: bool = True) -> Path:
    """Write ``scene`` (prepared in the `blender_scene_options` frame) to ``out`` (.abc) as a Y-up geometry cache
    of every animation frame; atomic. Returns the path. ExportError (one line) when Blender fails."""
    from assets.export.fbx import run_skinned_task

    out = check_output_path(out, ABC_SUFFIXES)
    check_cache_fits(out, scene.num_frames, len(scene.vertices))
    with staged_output(out) as staged:
        task, arrays = alembic_task(scene, staged, normals)
        res = run_skinned_task(task, arrays, out, "the Alembic file",
                               alembic_timeout_s(scene.num_frames, len(scene.vertices)), scene.options.scale)
        log.info("alembic: %d frames of %d vertices written in %.1f s", res.info["frames"], res.info["vertices"],
                 res.info["write_s"])
    return out
