"""Cameras and point caches inside the Blender worker (``bpy`` only; `assets.blender_worker` runs these tasks):
writing static cameras and a mesh whose points are given per frame as Alembic (`assets.export.camera_scene`), and
reading back where a file's cameras draw points, by Blender's own camera matrices (the tests' and benchmarks'
independent check of the files).

Cameras are built with a horizontal sensor fit: Alembic's and USD's apertures are the image's width and height,
and Blender's Alembic writer scales both film shifts by the sensor's width. Blender's importers leave an imported
camera's fit on Auto, which turns a portrait camera's apertures sideways: the readers here set it to Horizontal.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np

from assets.blender_mesh import reset_scene


def export_scene_alembic(bpy, task: dict, a: dict[str, np.ndarray]) -> dict:
    """Static cameras and (optionally) a mesh whose points are given per frame, written as Alembic.
    a["points"] (F, V, 3) in the file's Y-up frame and units, a["faces"], optional a["uvs"] / a["face_uvs"];
    task["cameras"]: each camera's lens, sensor, shift, clip range and 4x4 transform (Y-up frame); task["size"]: the
    render resolution; frames task["first_frame"]...; the provenance as user properties (the mesh's, else each
    camera's). The points reach Blender through a PC2 point cache and a Mesh Cache modifier."""
    from mathutils import Matrix

    first, F = int(task["first_frame"]), int(task["frames"])
    reset_scene(bpy, float(task["fps"]))
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = (int(v) for v in task["size"])
    scene.frame_start, scene.frame_end = first, first + F - 1
    up = Matrix.Rotation(np.pi / 2, 4, "X")           # the Y-up data stood up in Blender; the writer turns it back
    with tempfile.TemporaryDirectory(prefix="doppel_pc2_") as tmp:
        owners = [_add_camera(bpy, c, up @ Matrix(c["matrix"])) for c in task["cameras"]]
        if "points" in a:
            owners = [_add_points_mesh(bpy, task["mesh_name"], a, np.array(up)[:3, :3], first, Path(tmp))]
        for o in owners:
            for k, v in task.get("provenance", {}).items():
                o[f"doppel_{k}"] = str(v)
        bpy.ops.wm.alembic_export(
            filepath=task["out"], start=first, end=first + F - 1, selected=False, flatten=True, uvs=True,
            normals=False, face_sets=False, export_custom_properties=True, evaluation_mode="RENDER",
            global_scale=1.0, init_scene_frame_range=False, export_hair=False, export_particles=False,
            as_background_job=False)
    return {"frames": F, "cameras": len(task["cameras"])}


def _add_points_mesh(bpy, name: str, a: dict[str, np.ndarray], yup_to_blender: np.ndarray, first: int, tmp: Path):
    """The mesh of a["points"][0] with a Mesh Cache modifier playing every frame's points from a PC2 file in
    ``tmp`` (kept until the export is written)."""
    from assets.blender_mesh import new_mesh

    pts = a["points"] @ yup_to_blender.T
    F, V = pts.shape[:2]
    cache = tmp / "points.pc2"
    with open(cache, "wb") as f:
        f.write(struct.pack("<12siiffi", b"POINTCACHE2\0", 1, V, float(first), 1.0, F))
        f.write(pts.astype("<f4").tobytes())
    mesh_arrays = {"vertices": pts[0], "faces": a["faces"]}
    if "uvs" in a:
        mesh_arrays |= {"uvs": a["uvs"], "face_uvs": a["face_uvs"]}
    obj, _ = new_mesh(bpy, name, mesh_arrays)
    mod = obj.modifiers.new("points", "MESH_CACHE")
    mod.cache_format, mod.filepath, mod.deform_mode = "PC2", str(cache), "OVERWRITE"
    mod.frame_start, mod.frame_scale, mod.interpolation = float(first), 1.0, "NONE"
    return obj


def _add_camera(bpy, c: dict, matrix_world):
    """A camera placed by ``matrix_world`` from c: name, lens, sensor_width, sensor_height (mm), shift_x, shift_y
    (fractions of the sensor's width: its fit is horizontal), clip_start, clip_end (scene units)."""
    data = bpy.data.cameras.new(c["name"])
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width, data.sensor_height, data.lens = c["sensor_width"], c["sensor_height"], c["lens"]
    data.shift_x, data.shift_y = c["shift_x"], c["shift_y"]
    data.clip_start, data.clip_end = c["clip_start"], c["clip_end"]
    obj = bpy.data.objects.new(c["name"], data)
    bpy.context.scene.collection.objects.link(obj)
    obj.matrix_world = matrix_world
    bpy.context.scene.camera = obj
    return obj


def _projection(bpy, cam, size: list[int]) -> np.ndarray:
    """(4, 4) Blender's world (its axes, file units) -> clip space of camera object ``cam`` at a (W, H) render,
    its sensor fitted horizontally."""
    cam.data.sensor_fit = "HORIZONTAL"
    dg = bpy.context.evaluated_depsgraph_get()
    ev = cam.evaluated_get(dg)
    return np.array(ev.calc_matrix_camera(dg, x=size[0], y=size[1])) @ np.array(ev.matrix_world.inverted())


def _pixels(P: np.ndarray, points: np.ndarray, size: list[int]) -> np.ndarray:
    """(N, 2) px (Doppel's convention: the image spans [0, W] x [0, H]) of ``points`` (N, 3) through ``P``."""
    h = np.c_[points, np.ones(len(points))] @ P.T
    ndc = h[:, :2] / h[:, 3:4]
    return np.stack([(ndc[:, 0] + 1) / 2 * size[0], (1 - ndc[:, 1]) / 2 * size[1]], -1)


def read_cameras(bpy, task: dict) -> tuple[dict, dict]:
    """Import task["path"] (Alembic or USD) and return ({"cameras": names}, {"projection": (N, 4, 4)}): each
    camera's projection (`_projection`) at task["size"] (W, H), cameras sorted by name."""
    path = task["path"]
    reset_scene(bpy)
    if path.lower().endswith(".abc"):
        bpy.ops.wm.alembic_import(filepath=path, scale=1.0, as_background_job=False)
    else:
        bpy.ops.wm.usd_import(filepath=path, scale=1.0)
    scene = bpy.context.scene
    size = [int(v) for v in task["size"]]
    scene.render.resolution_x, scene.render.resolution_y = size
    cams = sorted((o for o in scene.objects if o.type == "CAMERA"), key=lambda o: o.name)
    mats = [_projection(bpy, o, size) for o in cams]
    return {"cameras": [o.name for o in cams]}, {"projection": np.array(mats).reshape(-1, 4, 4)}


def camera_pixels(bpy, frames: list[int], start: float | None, points: np.ndarray, size: list[int]) -> np.ndarray:
    """(len(frames), V, 2) px of ``points`` (len(frames), V, 3) (world, Blender axes) through the scene's one camera
    at a (W, H) render, frame by frame (frame ``start + f``)."""
    scene = bpy.context.scene
    cams = [o for o in scene.objects if o.type == "CAMERA"]
    if len(cams) != 1:
        raise ValueError(f"expected one camera in the file, found {len(cams)}")
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    out = np.zeros(points.shape[:2] + (2,))
    for i, f in enumerate(frames):
        scene.frame_set(int(round(start or 0)) + int(f))
        out[i] = _pixels(_projection(bpy, cams[0], size), points[i], size)
    return out
