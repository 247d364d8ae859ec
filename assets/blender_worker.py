"""Blender (``bpy``) work in a worker process: FBX export and file evaluation (import an FBX or glTF, play its
animation, read back the deformed vertices), so that a crash or a hang inside Blender becomes a clear error
instead of taking the caller down.

Parent side: `run_blender_tasks(tasks)` writes the tasks (JSON + one .npz of arrays per task) into a temporary
folder, runs ``python -m assets.blender_worker FOLDER`` with the same interpreter, and reads one result per task
back. Several tasks share one Blender start-up (a few seconds).

Worker side (this module run as a script, only numpy and bpy): task kinds

- ``export_fbx``: build an armature, a skinned mesh with UVs, shape keys, a textured material and baked
  keyframes from arrays in the file's axes and units, then write an FBX (see assets.export.fbx).
- ``export_alembic``: the same scene, its mesh deformed at every frame written as an Alembic geometry cache
  (see assets.export.alembic).
- ``export_scene_alembic``: static cameras and a mesh whose points are given per frame, as Alembic
  (assets.export.camera_scene: a capture rig's cameras, a swap's face track).
- ``read_cameras``: import an Alembic or USD file, return each camera's projection matrix (Blender's own).
- ``read_armature``: import an FBX mocap clip, sample its animated armature's bone world matrices per frame.
- ``convert_clip``: a BVH through Blender's BVH importer, written by its FBX / glTF / USD exporter (test clips).
- ``render_cycles``: path-trace a textured mesh through Cycles into EXR files (``assets.cycles_scene``).
- ``fbx_properties``: the ``doppel_`` user properties of every Model in a binary FBX, through Blender's own FBX
  parser (``io_scene_fbx.parse_fbx``; nothing is imported into a scene): what `doppel verify` reads.
- ``evaluate``: import a .fbx, .glb or .abc into an empty scene, set frames, return the evaluated (skinned,
  shape-keyed) world-space vertices in metres, Blender axes, plus what the file holds (bones, shape keys,
  custom properties, images).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assets.blender_mesh import action_fcurves
from assets.blender_mesh import reset_scene as _reset
from core.errors import DoppelError

log = logging.getLogger(__name__)

WORKER_TIMEOUT_S = 600.0
_CALLER_CWD = "DOPPEL_BLENDER_CALLER_CWD"
_BPY_INSTALL = "pip install bpy==5.0.1  (Blender as a Python module; Python 3.11, numpy < 2)"


class BlenderError(DoppelError, RuntimeError):
    """Blender failed, crashed or timed out; the message is one line (the worker's last error line, never a
    traceback) and says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(: .*)?$")


def one_line(text: str, limit: int = 400) -> str:
    """A multi-line message (a Blender operator's error carries its Python traceback) reduced to one line: its
    first words up to the traceback, then the innermost exception line (e.g. "OSError: [Errno 28] No space left on
    device"), never file paths of Blender's own scripts."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    if not lines:
        return ""
    msg = lines[0]
    if len(lines) > 1 and any("Traceback" in ln for ln in lines):
        head = msg.split("Traceback")[0].split(":")[0].strip()
        exc = [ln for ln in lines if _EXCEPTION_LINE.match(ln)]
        msg = f"{head}: {exc[-1] if exc else lines[-1]}" if head else (exc[-1] if exc else lines[-1])
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


@dataclass
class TaskResult:
    info: dict[str, Any]                                  # JSON-serialisable results
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def blender_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("bpy") is not None


def run_blender_tasks(tasks: list[tuple[dict[str, Any], dict[str, np.ndarray]]],
                      timeout: float = WORKER_TIMEOUT_S, python: str | None = None) -> list[TaskResult]:
    """Run ``tasks`` ((task dict with a "kind", arrays)) in one Blender worker process; returns their results.

    Raises MissingDependencyError when bpy is not installed and BlenderError when the worker crashes, times out
    or reports an error (the message carries the worker's last lines)."""
    from core.errors import MissingDependencyError

    if python is None and not blender_available():
        raise MissingDependencyError(f"Blender's bpy is not installed, needed for FBX: {_BPY_INSTALL}")
    with tempfile.TemporaryDirectory(prefix="doppel_blender_") as tmp:
        d = Path(tmp).absolute()            # the worker starts in Doppel's folder: a relative tempdir is not there
        for k, (task, arrays) in enumerate(tasks):
            np.savez(d / f"task_{k}.npz", **arrays)
            (d / f"task_{k}.json").write_text(json.dumps(task), encoding="utf-8")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        (d / "tmp").mkdir()
        env["TMPDIR"] = str(d / "tmp")     # Blender's session folder (blender_XXXX) too: gone with d even on a crash
        with contextlib.suppress(OSError):
            env[_CALLER_CWD] = os.getcwd()  # the worker starts in Doppel's root (imports), then works in the caller's
        cmd = [python or sys.executable, "-m", "assets.blender_worker", str(d), str(len(tasks))]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=root)
        except subprocess.TimeoutExpired as e:
            raise BlenderError(f"Blender worker timed out after {timeout:.0f} s: try a shorter clip or a smaller "
                               "rig, or run it again with --debug to see where it stops") from e
        except OSError as e:
            raise BlenderError(f"could not start the Blender worker ({cmd[0]}): {e}") from e
        results = []
        for k in range(len(tasks)):
            rj = d / f"result_{k}.json"
            if not rj.is_file():
                tail = _tail(proc.stderr or proc.stdout)
                if proc.returncode == -9:
                    why = "crashed (signal 9, killed: most often the machine ran out of memory)"
                elif proc.returncode < 0:
                    why = f"crashed (signal {-proc.returncode})"
                else:
                    why = f"failed (exit code {proc.returncode})"
                raise BlenderError(f"Blender worker {why} in task {k} ({tasks[k][0].get('kind')}): {tail}; check the "
                                   f"input file, then run `doppel doctor` (bpy must import: {_BPY_INSTALL})")
            info = json.loads(rj.read_text(encoding="utf-8"))
            if "error" in info:
                raise BlenderError(f"Blender: {one_line(info['error'])}")
            rn = d / f"result_{k}.npz"
            arrays = {}
            if rn.is_file():
                with np.load(rn) as z:
                    arrays = {n: z[n] for n in z.files}
            results.append(TaskResult(info, arrays))
        return results


def _tail(text: str, n: int = 3) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) if lines else "no output"


# ====================================== worker side (runs inside Blender) ======================================

@dataclass
class _SkinnedScene:
    arm_obj: Any
    obj: Any
    rest_rotation_error: float
    rest_position_error: float
    shape_keys: int
    frames: int
    keyed: int


def _build_skinned_scene(bpy, task: dict, a: dict[str, np.ndarray], up: str) -> _SkinnedScene:
    """The armature, skinned mesh, shape keys, material, provenance (custom properties) and baked animation
    (frames 1..T) of an export ``task``, in a fresh scene whose data are in the file's units and ``up`` axes."""
    scale = float(task["scale"])                             # file units per metre (1 or 100)
    _reset(bpy, float(task.get("fps") or 30.0), scale_length=1.0 / scale)
    name, names = task["name"], task["joint_names"]
    arm_obj, rest_err, rest_pos_err = _build_armature(bpy, name, names, a["parents"], a["bind"], scale, up)
    obj, me = _build_mesh(bpy, name, a, arm_obj)
    _add_skin(obj, names, a["skin_indices"], a["skin_weights"], arm_obj)
    bs_names = task.get("blendshape_names", [])
    _add_shape_keys(obj, bs_names, a)
    if task.get("texture"):
        _add_material(bpy, name, me, task["texture"])
    for k, v in task.get("provenance", {}).items():          # exported as the file's user properties
        arm_obj[f"doppel_{k}"] = str(v)
        obj[f"doppel_{k}"] = str(v)
    T = int(task.get("frames", 0))
    hold = task.get("hold_still_channels", True)        # False: every channel keyed (the benchmark's baseline)
    keyed = _animate(bpy, name, arm_obj, me, names, a, bs_names, T, hold) if T else 0
    return _SkinnedScene(arm_obj, obj, rest_err, rest_pos_err, len(bs_names), T, keyed)


def _task_export_fbx(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    """Build the armature, skinned mesh, shape keys, material and baked animation of ``task``, write the FBX."""
    sc = _build_skinned_scene(bpy, task, a, task["up"])
    t0 = time.perf_counter()
    with _skinning_muted(sc.obj, bool(sc.frames) and task.get("mute_skinning", True)):
        _write_fbx(bpy, task["out"], task["up"], bool(sc.frames))
    return TaskResult({"rest_rotation_error": sc.rest_rotation_error, "rest_position_error": sc.rest_position_error,
                       "bones": len(task["joint_names"]), "shape_keys": sc.shape_keys, "frames": sc.frames,
                       "keyed_channels": sc.keyed, "write_s": round(time.perf_counter() - t0, 3)})


def _task_export_alembic(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    """Build the skinned, animated scene of ``task`` in Blender's axes (Z-up) and write its mesh, deformed at every
    frame 1..T (the bind pose alone without an animation), as an Alembic geometry cache: points per frame, UVs,
    normals when asked, the provenance as the mesh's user properties. Blender's writer turns Z-up into Alembic's
    Y-up."""
    sc = _build_skinned_scene(bpy, task, a, "z")
    for o in bpy.context.scene.objects:
        o.select_set(o == sc.obj)
    bpy.context.view_layer.objects.active = sc.obj
    t0 = time.perf_counter()
    last = max(sc.frames, 1)
    bpy.ops.wm.alembic_export(
        filepath=task["out"], start=1, end=last, xsamples=1, gsamples=1, selected=True, flatten=True, uvs=True,
        packuv=False, normals=bool(task.get("normals", True)), vcolors=False, orcos=False, face_sets=False,
        subdiv_schema=False, apply_subdiv=False, triangulate=False, export_hair=False, export_particles=False,
        export_custom_properties=True, evaluation_mode="RENDER", global_scale=1.0, init_scene_frame_range=False,
        as_background_job=False)
    if not Path(task["out"]).is_file():
        return TaskResult({"error": f"{task['out']}: Blender's Alembic exporter wrote no file"})
    return TaskResult({"rest_rotation_error": sc.rest_rotation_error, "rest_position_error": sc.rest_position_error,
                       "bones": len(task["joint_names"]), "shape_keys": sc.shape_keys, "frames": sc.frames,
                       "vertices": len(sc.obj.data.vertices), "write_s": round(time.perf_counter() - t0, 3)})


@contextlib.contextmanager
def _skinning_muted(obj, mute: bool):
    """The mesh's Armature modifiers off while the exporter bakes the animation: its bake sets every frame and
    reads the bones' matrices, and Blender would skin the whole mesh at each of them for nothing (the FBX's skin is
    written from the vertex groups and the modifier's armature, whatever the modifier's display state)."""
    mods = [m for m in obj.modifiers if m.type == "ARMATURE"] if mute else []
    saved = [(m, m.show_viewport, m.show_render) for m in mods]
    for m in mods:
        m.show_viewport = m.show_render = False
    try:
        yield
    finally:
        for m, viewport, render in saved:
            m.show_viewport, m.show_render = viewport, render


def _bone_lengths(pos: np.ndarray, parents: np.ndarray, scale: float) -> np.ndarray:
    """(J,) display lengths of the bones: mean distance to the children, else half the parent's (>= 5 mm)."""
    J = len(parents)
    children: list[list[int]] = [[] for _ in range(J)]
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    lengths = np.zeros(J)
    for j in range(J):
        d = [np.linalg.norm(pos[c] - pos[j]) for c in children[j]]
        lengths[j] = np.mean(d) if d and np.mean(d) > 1e-4 * scale else 0.0
    for j in range(J):
        if lengths[j] == 0.0:
            lengths[j] = 0.5 * lengths[parents[j]] if parents[j] >= 0 and lengths[parents[j]] > 0 else 0.05 * scale
        lengths[j] = max(lengths[j], 0.005 * scale)
    return lengths


def _build_armature(bpy, name: str, names: list[str], parents: np.ndarray, bind: np.ndarray, scale: float,
                    up: str):
    """An armature with one bone per joint whose rest matrix is the bind matrix (bones along their local +Y).
    Returns (object, rest rotation error, rest position error) against ``bind``."""
    from mathutils import Matrix

    scene = bpy.context.scene
    arm = bpy.data.armatures.new(f"{name}_skeleton")
    arm_obj = bpy.data.objects.new(f"{name}_rig", arm)
    scene.collection.objects.link(arm_obj)
    if up == "y":       # Y-up data: stand it up in Blender; the exporter's axis change cancels this
        arm_obj.rotation_euler = (np.pi / 2, 0.0, 0.0)
    bpy.context.view_layer.objects.active = arm_obj
    bpy.ops.object.mode_set(mode="EDIT")
    lengths = _bone_lengths(bind[:, :3, 3], parents, scale)
    bones = []
    for j, n in enumerate(names):
        eb = arm.edit_bones.new(n)
        eb.head = (0.0, 0.0, 0.0)
        eb.tail = (0.0, float(lengths[j]), 0.0)
        eb.matrix = Matrix(bind[j].tolist())
        if parents[j] >= 0:
            eb.parent = bones[parents[j]]
            eb.use_connect = False
        bones.append(eb)
    bpy.ops.object.mode_set(mode="OBJECT")
    rest = np.array([np.array(arm.bones[n].matrix_local) for n in names])
    return (arm_obj, float(np.abs(rest[:, :3, :3] - bind[:, :3, :3]).max()),
            float(np.abs(rest[:, :3, 3] - bind[:, :3, 3]).max()))


def _build_mesh(bpy, name: str, a: dict[str, np.ndarray], arm_obj):
    """The mesh (vertices, triangles, UVs, smooth shading) as a child of the armature: (object, mesh)."""
    from assets.blender_mesh import new_mesh

    obj, me = new_mesh(bpy, name, a)
    obj.parent = arm_obj
    return obj, me


def _add_skin(obj, names: list[str], idx: np.ndarray, w: np.ndarray, arm_obj) -> None:
    groups = [obj.vertex_groups.new(name=n) for n in names]
    for v, k in zip(*np.nonzero(w > 0), strict=True):
        groups[idx[v, k]].add([int(v)], float(w[v, k]), "ADD")
    mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = arm_obj
    mod.use_deform_preserve_volume = False


def _add_shape_keys(obj, bs_names: list[str], a: dict[str, np.ndarray]) -> None:
    if not bs_names:
        return
    verts = a["vertices"]
    obj.shape_key_add(name="Basis", from_mix=False)
    wmin = float(a["blendshape_weights"].min()) if "blendshape_weights" in a else 0.0
    wmax = float(a["blendshape_weights"].max()) if "blendshape_weights" in a else 1.0
    for n, d in zip(bs_names, a["blendshape_deltas"], strict=True):
        kb = obj.shape_key_add(name=n, from_mix=False)
        kb.data.foreach_set("co", (verts + d).astype(np.float32).ravel())
        kb.slider_min = max(-10.0, min(0.0, wmin))
        kb.slider_max = min(10.0, max(1.0, wmax))
        kb.value = 0.0          # Blender 5 makes a new key at 1.0: a file without an animation had every one on


def _add_material(bpy, name: str, me, texture: str) -> None:
    """A principled material with the albedo texture."""
    mat = bpy.data.materials.new(f"{name}_skin")
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = 0.6
    bsdf.inputs["Metallic"].default_value = 0.0
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = bpy.data.images.load(texture)
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    me.materials.append(mat)


def _animate(bpy, name: str, arm_obj, me, names: list[str], a: dict[str, np.ndarray], bs_names: list[str],
             T: int, hold: bool = True) -> int:
    """One linear key per frame, frames 1..T (the scene range too): bone quaternions (local, relative to the
    rest pose), root locations and shape-key weights. A channel that never changes holds its value instead (set
    once, no keys): the exporter's bake reads the same number at every frame, and a take's unmoved bones (fingers,
    toes, eyes) and unused shape keys cost no keyframes (72 bytes each in Blender). Returns the keyed channels."""
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, T
    frames = np.arange(1, T + 1, dtype=np.float32)
    quats, root_loc, parents = a["quaternions_wxyz"], a["root_location"], a["parents"]   # (T, J, 4), (T, J, 3)
    arm_obj.animation_data_create()
    act = bpy.data.actions.new(f"{name}_anim")
    arm_obj.animation_data.action = act
    keyed = 0

    def curve(action, owner, path, i, values, held) -> None:
        nonlocal keyed
        values = values.astype(np.float32)
        if hold and np.all(values == values[0]):
            held[i] = float(values[0])
            return
        fc = action.fcurve_ensure_for_datablock(owner, path, index=i)
        fc.keyframe_points.add(T)
        fc.keyframe_points.foreach_set("co", np.stack([frames, values], 1).ravel())
        fc.keyframe_points.foreach_set("interpolation", np.ones(T, dtype=np.int32))   # LINEAR
        fc.update()
        keyed += 1

    for j, n in enumerate(names):
        pb = arm_obj.pose.bones[n]
        pb.rotation_mode = "QUATERNION"
        for i in range(4):
            curve(act, arm_obj, f'pose.bones["{n}"].rotation_quaternion', i, quats[:, j, i], pb.rotation_quaternion)
        if parents[j] < 0:
            for i in range(3):
                curve(act, arm_obj, f'pose.bones["{n}"].location', i, root_loc[:, j, i], pb.location)
    if bs_names:
        key = me.shape_keys
        key.animation_data_create()
        kact = bpy.data.actions.new(f"{name}_shapes")
        key.animation_data.action = kact
        for k, n in enumerate(bs_names):
            block = key.key_blocks[n]
            curve(kact, key, f'key_blocks["{n}"].value', 0, a["blendshape_weights"][:, k], _ValueSlot(block))
    scene.frame_set(1)
    return keyed


class _ValueSlot:
    """A shape key's ``value`` as a one-item sequence (``slot[0] = v``), like a bone's rotation_quaternion."""

    def __init__(self, block) -> None:
        self.block = block

    def __setitem__(self, i: int, v: float) -> None:
        self.block.value = v


def _write_fbx(bpy, out: str, up: str, animated: bool) -> None:
    axis_forward, axis_up = ("-Z", "Y") if up == "y" else ("Y", "Z")
    bpy.ops.export_scene.fbx(
        filepath=out, use_selection=False, object_types={"ARMATURE", "MESH"}, use_mesh_modifiers=False,
        mesh_smooth_type="FACE", use_tspace=False, use_custom_props=True, add_leaf_bones=False,
        primary_bone_axis="Y", secondary_bone_axis="X", use_armature_deform_only=False, armature_nodetype="NULL",
        bake_anim=animated, bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False,
        bake_anim_use_all_actions=False, bake_anim_force_startend_keying=True, bake_anim_step=1.0,
        bake_anim_simplify_factor=0.0, path_mode="COPY", embed_textures=True, axis_forward=axis_forward,
        axis_up=axis_up, global_scale=1.0, apply_unit_scale=True, apply_scale_options="FBX_SCALE_UNITS",
        bake_space_transform=False)


def _import_bvh_armature(bpy, path: str, scale: float):
    """Import one more BVH clip into the scene (its frame rate and range left to the first); returns its armature
    object."""
    before = set(bpy.context.scene.objects)
    bpy.ops.import_anim.bvh(filepath=path, global_scale=scale, update_scene_fps=False, update_scene_duration=False,
                            rotate_mode="NATIVE")
    (other,) = [o for o in bpy.context.scene.objects if o not in before]
    return other


def _add_takes(bpy, arm, first: str, takes: list, scale: float) -> None:
    """Name ``arm``'s action ``first`` and give it the actions of the BVH clips ``takes`` ([name, path], the same
    skeleton) as more takes: each imported, its action kept (fake user), its armature removed."""
    arm.animation_data.action.name = first
    arm.animation_data.action.use_fake_user = True
    for name, bvh in takes:
        other = _import_bvh_armature(bpy, bvh, scale)
        act = other.animation_data.action
        act.name, act.use_fake_user = name, True
        data = other.data
        bpy.data.objects.remove(other, do_unlink=True)
        bpy.data.armatures.remove(data)


def _task_convert_clip(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    """Import a BVH clip with Blender's BVH importer (scene fps and range from the file) and write it with Blender's
    own FBX, glTF (.glb) or USD exporter (task["out"] by suffix): test clips as a DCC tool writes them. With
    task["takes"] ([[name, bvh path], ...], the same skeleton) those clips become more takes of the file (FBX
    stacks, glTF animations), the first named task["take"]; with task["performers"] ([[name, bvh path], ...]) more
    armatures of their own beside the first (named task["performer"]): performers of one take."""
    _reset(bpy)
    bpy.ops.import_anim.bvh(filepath=task["path"], global_scale=float(task.get("scale", 1.0)),
                            update_scene_fps=True, update_scene_duration=True, rotate_mode="NATIVE")
    scene = bpy.context.scene
    arm = next(o for o in scene.objects if o.type == "ARMATURE")
    scene.frame_start, scene.frame_end = (int(round(f)) for f in arm.animation_data.action.frame_range)
    takes = task.get("takes") or []
    if takes:
        _add_takes(bpy, arm, task.get("take", "take 1"), takes, float(task.get("scale", 1.0)))
    arm.name = task.get("performer", arm.name)
    for name, bvh in task.get("performers") or []:      # more armatures: performers of one take, side by side
        other = _import_bvh_armature(bpy, bvh, float(task.get("scale", 1.0)))
        other.name = name
        other.location.x += 2.0
    bpy.context.view_layer.objects.active = arm
    out = task["out"]
    sfx = Path(out).suffix.lower()
    if sfx == ".fbx":
        # an armature-only FBX has no bind pose: the importer's rest is the node transforms at export time, so
        # export from a frame (0, before the clip) that holds the rest pose, as a mocap take's stance frame does
        for pb in arm.pose.bones:
            pb.location = (0.0, 0.0, 0.0)
            pb.keyframe_insert("location", frame=0)
            if pb.rotation_mode == "QUATERNION":
                pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
                pb.keyframe_insert("rotation_quaternion", frame=0)
            else:
                pb.rotation_euler = (0.0, 0.0, 0.0)
                pb.keyframe_insert("rotation_euler", frame=0)
        scene.frame_set(0)
        bpy.ops.export_scene.fbx(filepath=out, object_types={"ARMATURE"}, add_leaf_bones=False, bake_anim=True,
                                 bake_anim_use_all_actions=bool(takes), bake_anim_use_nla_strips=False,
                                 bake_anim_simplify_factor=0.0, apply_unit_scale=True,
                                 global_scale=float(task.get("fbx_scale", 1.0)))
    elif sfx in (".glb", ".gltf"):
        bpy.ops.export_scene.gltf(filepath=out, export_format="GLB" if sfx == ".glb" else "GLTF_SEPARATE",
                                  export_animations=True, export_force_sampling=True,
                                  export_optimize_animation_size=False)
    elif sfx in (".usd", ".usda", ".usdc"):
        bpy.ops.wm.usd_export(filepath=out, export_animation=True, export_armatures=True,
                              selected_objects_only=False)
    else:
        return TaskResult({"error": f"{out}: unsupported output suffix {sfx}"})
    return TaskResult({"fps": scene.render.fps / scene.render.fps_base, "frame_start": scene.frame_start,
                       "frame_end": scene.frame_end})


def _task_read_armature(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    """Import an FBX clip and sample its animated armature at every frame of a take (task "take", default the
    file's first: `_choose_take`): bone names, parent indices, rest and per-frame world matrices (metres,
    Blender's Z-up axes, object transform and unit scale applied), leaf-bone tails (End Sites) and the file's frame
    rate."""
    path = task["path"]
    _reset(bpy)
    t0 = time.perf_counter()
    bpy.ops.import_scene.fbx(filepath=path, use_anim=True, ignore_leaf_bones=False, automatic_bone_orientation=False)
    t_import = time.perf_counter() - t0
    scene = bpy.context.scene
    arms = [o for o in scene.objects if o.type == "ARMATURE"]
    animated = [o for o in arms if o.animation_data and o.animation_data.action]
    if not animated:
        why = "no armature" if not arms else "its armature has no animation"
        return TaskResult({"error": f"{path}: {why} (an FBX clip needs an animated skeleton)"})
    arm_obj, chosen = _choose_armature(animated, path, task.get("subject"))
    if arm_obj is not None:
        chosen |= _choose_take(bpy, arm_obj, path, task.get("take"))
    if "clip_error" in chosen:                  # the caller's ClipError (what the file holds), not Blender's failure
        return TaskResult(chosen)
    for o in [o for o in scene.objects if o.type == "MESH"]:          # meshes only slow the evaluation down
        bpy.data.objects.remove(o, do_unlink=True)
    bones = list(arm_obj.data.bones)
    index = {b.name: i for i, b in enumerate(bones)}
    parents = [index[b.parent.name] if b.parent else -1 for b in bones]
    M = np.array(arm_obj.matrix_world)
    rest = np.array([M @ np.array(b.matrix_local) for b in bones])
    tails = np.array([M @ np.append(np.array(b.tail_local), 1.0) for b in bones])[:, :3]
    f0, f1 = arm_obj.animation_data.action.frame_range
    frames = _key_times(arm_obj)                  # an FBX take is baked: its keys are its frames
    if frames is None:
        frames = f0 + np.arange(int(round(f1 - f0)) + 1, dtype=np.float64)
    max_frames = int(task.get("max_frames", 10_000_000))
    if len(frames) > max_frames:
        return TaskResult({"error": f"{path}: {len(frames)} frames, over the limit of {max_frames}"})
    pbones = [arm_obj.pose.bones[b.name] for b in bones]
    world, how = None, "frame_set"
    if task.get("sampling", "auto") == "auto":           # "frame_set": the reference path only (tests)
        world, how = _sample_armature_fast(arm_obj, pbones, parents, frames), "fcurves"
    if world is None:
        world, how = _sample_armature_by_frame(bpy, arm_obj, pbones, frames), "frame_set"
    fps = scene.render.fps / scene.render.fps_base
    return TaskResult({"names": [b.name for b in bones], "parents": parents, "fps": fps, "frame_start": float(f0),
                       "frame_end": float(f1), "leaf": [not b.children for b in bones], "sampled_by": how,
                       "import_s": round(t_import, 3), "sample_s": round(time.perf_counter() - t0 - t_import, 3),
                       **chosen}, {"rest": rest, "world": world, "tails": tails})


def _choose_armature(animated: list, path: str, subject: str | None) -> tuple:
    """(the animated armature ``subject`` names (`mocap_retarget.clip_takes.pick_take`), else the one with the most
    bones; {"skeleton": its name, "skeletons": {name: bones}}), or (None, {"clip_error": the message naming
    them})."""
    from mocap_retarget.clip_takes import pick_take
    from mocap_retarget.world_motion import ClipError

    names = [o.name for o in animated]
    default = max(range(len(animated)), key=lambda i: len(animated[i].data.bones))
    try:
        index = pick_take(path, names, subject, default, "skeleton")
    except ClipError as e:
        return None, {"clip_error": str(e)}
    return animated[index], {"skeleton": names[index], "skeletons": {o.name: len(o.data.bones) for o in animated}}


def _choose_take(bpy, arm_obj, path: str, take: str | None) -> dict:
    """Put the FBX take ``take`` names (an animation stack: Blender's importer makes an action of each, named
    'Object|Stack', and gives the object the file's first) on ``arm_obj``; None keeps the first. Returns
    {"take": its name, "takes": {name: frames}}, or {"clip_error": the message naming the file's takes}."""
    from mocap_retarget.clip_takes import pick_take
    from mocap_retarget.world_motion import ClipError

    prefix = f"{arm_obj.name}|"
    current = arm_obj.animation_data.action
    actions = [a for a in bpy.data.actions if a.name.startswith(prefix)] or [current]
    names = [a.name[len(prefix):] if a.name.startswith(prefix) else a.name for a in actions]
    default = actions.index(current) if current in actions else 0
    try:
        index = pick_take(path, names, take, default)
    except ClipError as e:
        return {"clip_error": str(e)}
    act = actions[index]
    if act is not current:
        arm_obj.animation_data.action = act
        if len(getattr(act, "slots", ())):
            arm_obj.animation_data.action_slot = act.slots[0]
    frames = {n: int(round(a.frame_range[1] - a.frame_range[0])) + 1 for n, a in zip(names, actions, strict=True)}
    return {"take": names[index], "takes": frames}


def _key_times(arm_obj) -> np.ndarray | None:
    """The key times shared by every multi-key F-curve of the armature's action (frames, possibly fractional:
    Blender maps FBX times at the file's rate), or None when the curves are keyed at different times."""
    times = None
    for fc in action_fcurves(arm_obj):
        if len(fc.keyframe_points) < 2:
            continue
        co = np.empty(2 * len(fc.keyframe_points))
        fc.keyframe_points.foreach_get("co", co)
        t = co[0::2]
        if times is None:
            times = t
        elif len(t) != len(times) or np.abs(t - times).max() > 1e-4:
            return None
    return times


def _sample_armature_by_frame(bpy, arm_obj, pbones, frames: np.ndarray) -> np.ndarray:
    """(F, J, 4, 4) world matrices of the pose bones, Blender evaluating every frame (the reference path:
    constraints, drivers and any interpolation included)."""
    scene = bpy.context.scene
    world = np.empty((len(frames), len(pbones), 4, 4))
    for i, f in enumerate(frames):
        scene.frame_set(int(np.floor(f)), subframe=float(f - np.floor(f)))
        world[i] = np.array(arm_obj.matrix_world) @ np.array([np.array(pb.matrix) for pb in pbones])
    return world


def _sample_armature_fast(arm_obj, pbones, parents: list[int], frames: np.ndarray) -> np.ndarray | None:
    """(F, J, 4, 4) world matrices computed from the action's keys in numpy (every channel keyed on every frame,
    as an FBX take is), or None when that does not apply (constraints, drivers, keys between the frames, an
    animated armature object). Checked against Blender's own evaluation on three frames."""
    import bpy

    if arm_obj.constraints or any(pb.constraints or pb.rotation_mode == "AXIS_ANGLE" for pb in pbones):
        return None
    ad = arm_obj.animation_data
    if ad.drivers or ad.nla_tracks:
        return None
    curves = {}
    for fc in action_fcurves(arm_obj):
        co = np.empty(2 * len(fc.keyframe_points))
        fc.keyframe_points.foreach_get("co", co)
        t, v = co[0::2], co[1::2]
        if fc.modifiers or (len(t) > 1 and (len(t) != len(frames) or np.abs(t - frames).max() > 1e-3)):
            return None
        curves[(fc.data_path, fc.array_index)] = np.full(len(frames), v[0]) if len(t) == 1 else v
    if any(not p.startswith("pose.bones[") and np.ptp(v) > 1e-9 for (p, _), v in curves.items()):
        return None                              # the armature object itself moves
    local = np.array([_basis_tracks(pb, curves, len(frames)) for pb in pbones])         # (J, F, 4, 4)
    rest = np.array([np.array(pb.bone.matrix_local) for pb in pbones])
    M = np.empty_like(local)
    for j, p in enumerate(parents):
        if not (pbones[j].bone.use_inherit_rotation and pbones[j].bone.inherit_scale == "FULL"):
            return None
        M[j] = rest[j] @ local[j] if p < 0 else M[p] @ (np.linalg.inv(rest[p]) @ rest[j]) @ local[j]
    world = np.array(arm_obj.matrix_world) @ M.transpose(1, 0, 2, 3)
    check = _sample_armature_by_frame(bpy, arm_obj, pbones, frames[[0, len(frames) // 2, -1]])
    if np.abs(check - world[[0, len(frames) // 2, -1]]).max() > 1e-4 * max(1.0, np.abs(check[..., :3, 3]).max()):
        return None
    return world


def _basis_tracks(pb, curves: dict, F: int) -> np.ndarray:
    """(F, 4, 4) a pose bone's matrix_basis per frame (location, rotation in its mode, scale) from the curves."""
    from mathutils import Euler

    base = f'pose.bones["{pb.name}"]'

    def track(prop: str, n: int, default) -> np.ndarray:
        return np.stack([curves.get((f"{base}.{prop}", i), np.full(F, default[i])) for i in range(n)], -1)

    loc = track("location", 3, tuple(pb.location))
    scale = track("scale", 3, tuple(pb.scale))
    if pb.rotation_mode == "QUATERNION":
        q = track("rotation_quaternion", 4, tuple(pb.rotation_quaternion))
        R = _quat_wxyz_to_matrix(q / np.linalg.norm(q, axis=-1, keepdims=True))
    else:
        e = track("rotation_euler", 3, tuple(pb.rotation_euler))
        R = np.array([np.array(Euler(v, pb.rotation_mode).to_matrix()) for v in e])
    out = np.zeros((F, 4, 4))
    out[:, :3, :3] = R * scale[:, None, :]
    out[:, :3, 3] = loc
    out[:, 3, 3] = 1.0
    return out


def _quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
                     np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
                     np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


def _task_evaluate(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    path = task["path"]
    _reset(bpy, task.get("fps"))
    scene = bpy.context.scene
    deformer = "ARMATURE"
    if path.lower().endswith(".fbx"):
        bpy.ops.import_scene.fbx(filepath=path, use_custom_props=True, use_anim=True)
    elif path.lower().endswith(".abc"):             # a geometry cache: points per frame, read by Alembic itself
        bpy.ops.wm.alembic_import(filepath=path, scale=float(task.get("scale", 1.0)), set_frame_range=True,
                                  always_add_cache_reader=True, as_background_job=False)
        deformer = "MESH_SEQUENCE_CACHE"
    elif path.lower().endswith((".usd", ".usda", ".usdc", ".usdz")):   # Blender's own UsdSkel reading and skinning
        bpy.ops.wm.usd_import(filepath=path, import_skeletons=True, import_blendshapes=True, set_frame_range=True)
    else:
        bpy.ops.import_scene.gltf(filepath=path)
    # deformed meshes only (the glTF importer adds an unskinned bone-shape icosphere in a hidden collection)
    meshes = [o for o in scene.objects if o.type == "MESH" and any(m.type == deformer for m in o.modifiers)]
    arms = [o for o in scene.objects if o.type == "ARMATURE"]
    if len(meshes) != 1:
        return TaskResult({"error": f"{path}: expected one mesh after import, found {len(meshes)}"})
    obj = meshes[0]
    start = float(scene.frame_start) if deformer == "MESH_SEQUENCE_CACHE" else None
    for o in arms:
        ad = o.animation_data
        if ad and ad.action:
            start = float(ad.action.frame_range[0])
    M0 = np.array(obj.matrix_world)
    n = len(obj.data.vertices)
    co = np.empty(n * 3, dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    rest = co.reshape(-1, 3).astype(np.float64) @ M0[:3, :3].T + M0[:3, 3]
    frames = list(task.get("frames", []))
    out = np.zeros((len(frames), n, 3))
    if start is None and task.get("static"):            # a file without an animation: its one pose, at frame 0
        start = float(scene.frame_current)
    for i, f in enumerate(frames):
        if start is None:
            return TaskResult({"error": f"{path}: the imported file has no animation"})
        scene.frame_set(int(round(start)) + int(f))
        dg = bpy.context.evaluated_depsgraph_get()
        ev = obj.evaluated_get(dg)
        me = ev.to_mesh()
        if len(me.vertices) != n:
            return TaskResult({"error": f"{path}: evaluated mesh has {len(me.vertices)} vertices, rest {n}"})
        me.vertices.foreach_get("co", co)
        M = np.array(ev.matrix_world)
        out[i] = co.reshape(-1, 3).astype(np.float64) @ M[:3, :3].T + M[:3, 3]
        ev.to_mesh_clear()
    props = {k: str(obj[k]) for k in obj.keys() if isinstance(obj[k], str)}
    for o in arms:
        props.update({k: str(o[k]) for k in o.keys() if isinstance(o[k], str)})
    keys = obj.data.shape_keys
    info = {
        "vertices": n, "bones": sum(len(o.data.bones) for o in arms),
        "bone_names": [b.name for o in arms for b in o.data.bones],
        "shape_keys": [kb.name for kb in keys.key_blocks][1:] if keys else [],
        "custom_properties": props, "vertex_groups": len(obj.vertex_groups),
        "uv_layers": len(obj.data.uv_layers),
        "images": [im.name for im in bpy.data.images if im.size[0] > 0],
        "materials": [m.name for m in obj.data.materials if m],
        "action_start": start,
        "armature_scale": [list(o.scale) for o in arms],
    }
    arrays = {"vertices": out, "rest": rest}
    if task.get("camera_size"):                  # the file's camera: where it draws each evaluated vertex
        from assets.blender_cameras import camera_pixels

        arrays["pixels"] = camera_pixels(bpy, frames, start, out, [int(v) for v in task["camera_size"]])
    return TaskResult(info, arrays)


def _task_render_cycles(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    """Path-trace a mesh through Cycles into EXR files (see assets.cycles_scene)."""
    from assets.cycles_scene import render_cycles

    if os.environ.get("DOPPEL_TEST_CYCLES_CRASH"):   # tests: a worker that dies the way a Blender segfault does
        os.kill(os.getpid(), 9)
    return TaskResult(render_cycles(bpy, task, a))


def _task_render_passes(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    """Cycles' data passes of a mesh (see assets.cycles_passes)."""
    from assets.cycles_passes import render_passes

    return TaskResult(render_passes(bpy, task, a))


def _task_render_cryptomatte(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    """Cycles' Cryptomatte of a mesh's labelled faces (see assets.cycles_passes)."""
    from assets.cycles_passes import render_cryptomatte

    return TaskResult(render_cryptomatte(bpy, task, a))


def _task_render_motion_blur(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    """Cycles' motion blur of a moving mesh (see assets.cycles_passes)."""
    from assets.cycles_passes import render_motion_blur

    return TaskResult(render_motion_blur(bpy, task, a))


def _task_fbx_properties(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    """{"objects": {model name: {key without "doppel_": value}}} of a binary FBX, read by Blender's parser; a file
    it cannot parse is {"unreadable": why} (not an error: the other files of the batch are still read)."""
    from io_scene_fbx import parse_fbx

    try:
        root, version = parse_fbx.parse(task["path"])
    except Exception as e:  # noqa: BLE001 - Blender's parser raises plain exceptions on damaged files
        return TaskResult({"unreadable": one_line(f"{type(e).__name__}: {e}")})
    found: dict[str, dict[str, Any]] = {}
    for objects in (e for e in root.elems if e.id == b"Objects"):
        for model in (e for e in objects.elems if e.id == b"Model" and len(e.props) > 1):
            name = bytes(model.props[1]).split(b"\x00\x01")[0].decode("utf-8", "replace")
            for p in (p for group in model.elems if group.id == b"Properties70" for p in group.elems):
                key = p.props[0] if p.props else b""
                if isinstance(key, bytes) and key.startswith(b"doppel_"):
                    value = p.props[-1]
                    found.setdefault(name, {})[key[7:].decode("utf-8", "replace")] = \
                        value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return TaskResult({"fbx_version": version, "objects": found})


def _task_export_scene_alembic(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    from assets.blender_cameras import export_scene_alembic

    return TaskResult(export_scene_alembic(bpy, task, a))


def _task_read_cameras(bpy, task: dict, a: dict[str, np.ndarray]) -> TaskResult:
    from assets.blender_cameras import read_cameras

    info, arrays = read_cameras(bpy, task)
    return TaskResult(info, arrays)


_TASKS = {"export_fbx": _task_export_fbx, "export_alembic": _task_export_alembic,
          "export_scene_alembic": _task_export_scene_alembic, "read_cameras": _task_read_cameras,
          "evaluate": _task_evaluate,
          "read_armature": _task_read_armature, "convert_clip": _task_convert_clip,
          "render_cycles": _task_render_cycles, "render_passes": _task_render_passes,
          "render_cryptomatte": _task_render_cryptomatte, "render_motion_blur": _task_render_motion_blur,
          "fbx_properties": _task_fbx_properties}


def _worker_main(folder: str, count: int) -> int:
    logging.basicConfig(level=logging.WARNING)
    d = Path(folder).resolve()
    import bpy

    with contextlib.suppress(OSError, KeyError):      # relative paths in the tasks are the caller's
        os.chdir(os.environ[_CALLER_CWD])               # (sys.path[0] stays Doppel's root: `-m` made it absolute)

    for k in range(count):
        task = json.loads((d / f"task_{k}.json").read_text(encoding="utf-8"))
        with np.load(d / f"task_{k}.npz") as z:
            arrays = {n: z[n] for n in z.files}
        try:
            fn = _TASKS[task["kind"]]
            res = fn(bpy, task, arrays)
        except Exception as e:  # noqa: BLE001 - reported to the parent as one line
            res = TaskResult({"error": f"{task.get('kind')}: {type(e).__name__}: {e}"})
        if res.arrays:
            np.savez(d / f"result_{k}.npz", **res.arrays)
        (d / f"result_{k}.json").write_text(json.dumps(res.info), encoding="utf-8")
        if "error" in res.info:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1], int(sys.argv[2])))
