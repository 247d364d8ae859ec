"""Worker side of Cycles' data passes of a mesh (task kind ``render_passes``, runs in the Blender worker: numpy and
bpy only), the reference that Doppel's render passes (`neural_render.aovs`) are checked against: the mesh's vertices
in three frames (before, at and after the one drawn; shape keys, so that Cycles' Vector pass sees the motion),
rendered by Cycles from one pinhole camera with its Depth, Position, Normal, UV and Vector passes, one sample a
pixel at the pixel's centre (a box filter 0.01 px wide), into a multilayer EXR; its Cryptomatte (task kind
``render_cryptomatte``: each face a material named by its label); and its motion blur (task kind
``render_motion_blur``: the three frames' shape keys linear in time, Cycles' deformation blur over a shutter).
Caller side: `doppel.reference_passes`.
"""

from __future__ import annotations

import numpy as np

PASSES = ("Depth", "Position", "Normal", "UV", "Vector")


def render_passes(bpy, task: dict, a: dict[str, np.ndarray]) -> dict:
    """Render a["vertices"] (3, V, 3) (frames 1, 2, 3; frame 2 drawn), a["faces"] (F, 3), a["uvs"] (T, 2),
    a["face_uvs"] (F, 3) from task["view"] (K, R, t, width, height) into task["out"] (multilayer EXR)."""
    from assets.blender_mesh import new_mesh
    from assets.cycles_scene import place_camera

    scene, layer = _cycles_scene(bpy, 1, 0.01)
    layer.use_pass_z = layer.use_pass_position = layer.use_pass_normal = True
    layer.use_pass_uv = layer.use_pass_vector = True
    v = np.asarray(a["vertices"], np.float32)
    obj, me = new_mesh(bpy, "mesh", {"vertices": v[1], "faces": a["faces"], "uvs": a["uvs"],
                                     "face_uvs": a["face_uvs"]})
    _three_frames(obj, v)
    place_camera(bpy, task["view"])
    scene.frame_set(2)
    return _render_multilayer(bpy, scene, task["out"])


def _three_frames(obj, v: np.ndarray, linear: bool = False) -> None:
    """Animate ``obj`` (its mesh at v[1]) through v (3, V, 3) at frames 1, 2, 3 by two shape keys ("before",
    "after") keyed 1 / 0 / 0 and 0 / 0 / 1; linear: the keys interpolated linearly in time (Blender's default
    is Bezier, which only the frames themselves agree with)."""
    obj.shape_key_add(name="Basis")
    keys = [obj.shape_key_add(name=n) for n in ("before", "after")]
    for key, frame in zip(keys, (v[0], v[2]), strict=True):
        key.data.foreach_set("co", frame.ravel())
    for f, weights in ((1, (1.0, 0.0)), (2, (0.0, 0.0)), (3, (0.0, 1.0))):
        for key, w in zip(keys, weights, strict=True):
            key.value = w
            key.keyframe_insert("value", frame=f)
    if linear:
        from assets.blender_mesh import make_keys_linear

        make_keys_linear(obj.data.shape_keys)


def render_motion_blur(bpy, task: dict, a: dict[str, np.ndarray]) -> dict:
    """Render a["vertices"] (3, V, 3) (frames 1, 2, 3, linear in time between them; frame 2 drawn), a["faces"]
    (F, 3) from task["view"] with Cycles' motion blur: a shutter open task["shutter"] frames centred on frame 2,
    deformation blur of 2^(task["steps"] - 1) segments, ``task["samples"]`` samples a pixel over a 1 px box;
    shutter 0: no blur. Into task["out"] (multilayer EXR; its Combined.A the coverage)."""
    from assets.blender_mesh import new_mesh
    from assets.cycles_scene import place_camera

    scene, _ = _cycles_scene(bpy, task["samples"], 1.0)
    v = np.asarray(a["vertices"], np.float32)
    obj, _ = new_mesh(bpy, "mesh", {"vertices": v[1], "faces": a["faces"]})
    _three_frames(obj, v, linear=True)                      # linear in time, as Doppel interpolates vertices
    if task["shutter"] > 0:
        scene.render.use_motion_blur, scene.render.motion_blur_shutter = True, float(task["shutter"])
        target = scene.render if hasattr(scene.render, "motion_blur_position") else scene.cycles
        target.motion_blur_position = "CENTER"
        obj.cycles.use_motion_blur = obj.cycles.use_deform_motion = True
        obj.cycles.motion_steps = int(task["steps"])
    place_camera(bpy, task["view"])
    scene.frame_set(2)
    return _render_multilayer(bpy, scene, task["out"])


def _cycles_scene(bpy, samples: int, filter_width: float):
    """(scene, view layer): an empty scene rendered by Cycles on the CPU, ``samples`` a pixel through a box filter
    ``filter_width`` px wide, no denoising, transparent film, no motion blur."""
    from assets.blender_mesh import reset_scene

    reset_scene(bpy)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    cyc = scene.cycles
    cyc.device, cyc.samples, cyc.use_denoising, cyc.use_adaptive_sampling = "CPU", int(samples), False, False
    cyc.pixel_filter_type, cyc.filter_width = "BOX", float(filter_width)
    scene.render.film_transparent, scene.render.use_motion_blur = True, False
    return scene, scene.view_layers[0]


def _render_multilayer(bpy, scene, out: str) -> dict:
    """Render the scene's frame into ``out``, a 32-bit multilayer EXR with every pass."""
    im = scene.render.image_settings
    im.media_type = "MULTI_LAYER_IMAGE"
    im.file_format, im.color_depth, im.exr_codec = "OPEN_EXR_MULTILAYER", "32", "ZIP"
    scene.render.filepath = out
    bpy.ops.render.render(write_still=True)
    return {"out": out}


def render_cryptomatte(bpy, task: dict, a: dict[str, np.ndarray]) -> dict:
    """Render a["vertices"] (V, 3), a["faces"] (F, 3), each face a material named task["names"][a["labels"][f]],
    from task["view"] with Cycles' CryptoMaterial pass (six ranks, ``task["samples"]`` samples a pixel, each
    pixel's samples spread over it by a 1 px box filter: coverage as a share of the pixel's area) into
    task["out"] (multilayer EXR)."""
    from assets.blender_mesh import new_mesh
    from assets.cycles_scene import place_camera

    scene, layer = _cycles_scene(bpy, task["samples"], 1.0)
    layer.use_pass_cryptomatte_material = True
    layer.pass_cryptomatte_depth = 6
    _, me = new_mesh(bpy, "mesh", {"vertices": np.asarray(a["vertices"], np.float32), "faces": a["faces"]})
    if len(me.polygons) != len(a["faces"]):
        raise ValueError(f"Blender kept {len(me.polygons)} of the mesh's {len(a['faces'])} faces")
    for name in task["names"]:
        me.materials.append(bpy.data.materials.new(name))
    me.polygons.foreach_set("material_index", np.asarray(a["labels"], np.int32))
    me.update()
    place_camera(bpy, task["view"])
    return _render_multilayer(bpy, scene, task["out"])
