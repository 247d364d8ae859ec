"""Scenes, triangle meshes and their keyframes in Blender (runs inside the worker process, where ``bpy`` is loaded):
shared by the exporters (`assets.blender_worker`, `assets.blender_cameras`) and the Cycles renderer
(`assets.cycles_scene`, `assets.cycles_passes`)."""

from __future__ import annotations

import numpy as np


def new_mesh(bpy, name: str, a: dict[str, np.ndarray]):
    """(object, mesh) named ``name`` from a["vertices"] (V, 3), a["faces"] (F, 3) and, when present, a["uvs"]
    (T, 2) through a["face_uvs"] (F, 3); smooth shaded, linked to the scene, unparented."""
    verts, faces = a["vertices"], a["faces"]
    me = bpy.data.meshes.new(f"{name}_mesh")
    me.vertices.add(len(verts))
    me.vertices.foreach_set("co", verts.astype(np.float32).ravel())
    me.loops.add(faces.size)
    me.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    me.polygons.add(len(faces))
    me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    if "uvs" in a:
        uv = me.uv_layers.new(name="UVMap")
        uv.data.foreach_set("uv", a["uvs"][a["face_uvs"]].astype(np.float32).ravel())
    me.update()
    me.validate(clean_customdata=False)
    me.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    obj = bpy.data.objects.new(name, me)
    bpy.context.scene.collection.objects.link(obj)
    return obj, me


def reset_scene(bpy, fps: float | None = None, scale_length: float = 1.0) -> None:
    """An empty scene: metric units (``scale_length`` metres per Blender unit), ``fps`` frames per second."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.unit_settings.system = "METRIC"
    scene.unit_settings.scale_length = scale_length
    scene.unit_settings.length_unit = "CENTIMETERS" if abs(scale_length - 0.01) < 1e-12 else "METERS"
    if fps:
        scene.render.fps = max(1, int(round(fps)))
        scene.render.fps_base = scene.render.fps / fps


def action_fcurves(owner) -> list:
    """The F-curves of ``owner``'s action (Blender 4.4+ keeps them in the action's layers, strips and channel
    bags; earlier ones in ``action.fcurves``)."""
    action = owner.animation_data.action
    if len(getattr(action, "fcurves", None) or []):
        return list(action.fcurves)
    return [fc for layer in getattr(action, "layers", []) for strip in layer.strips
            for bag in getattr(strip, "channelbags", []) for fc in bag.fcurves]


def make_keys_linear(owner) -> None:
    """Every keyframe of ``owner``'s action interpolated linearly (Blender's default is Bezier, which only the
    keyed frames themselves agree with)."""
    for fc in action_fcurves(owner):
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"
