"""Worker side of Cycles renders (runs inside the Blender worker process: numpy and bpy only).

Task kind ``render_cycles`` (see ``assets.blender_worker``): a textured triangle mesh with a material per face
class, a studio light rig and an environment, rendered by Cycles from pinhole cameras into linear half-float
RGBA EXR files (film transparent: alpha is the exact coverage; the caller composites the backdrop).

Scene axes are the caller's (Doppel's: metres, +Y up): nothing here rotates the world. Cameras arrive in the
OpenCV convention (K 3x3 pixels, world-to-camera R, t; x right, y down, z forward, pixel centres at integer +
0.5), which maps exactly onto Blender's pinhole camera: camera-to-world rotation R^T diag(1, -1, -1), focal
length lens = fx * sensor_width / W with a horizontal sensor fit, principal point through shift_x / shift_y.

Tasks that share a ``scene_key`` in one worker process reuse the scene (materials, lights, BVH settings) and only
replace the vertex positions, so a take of many frames pays Blender's start-up and shader compilation once.
"""

from __future__ import annotations

import time

import numpy as np

SENSOR_WIDTH_MM = 36.0
MOTION_FRAME = 100         # the scene frame every render draws; a shutter's keys lie around it
_STATE: dict = {}          # scene_key -> (mesh object) of the scene built in this process


def blender_camera_params(K: np.ndarray, R: np.ndarray, t: np.ndarray, width: int, height: int) -> dict:
    """OpenCV pinhole (K (3, 3) px, R (3, 3), t (3,) world-to-camera) -> Blender camera settings: lens (mm),
    sensor width (mm, horizontal fit), shift_x, shift_y (fractions of the larger image side), matrix_world
    (4, 4) camera-to-world with Blender's camera axes (x right, y up, looking down -z). Pure numpy (testable
    without Blender). ValueError for non-square pixels or skew."""
    K = np.asarray(K, np.float64)
    if abs(K[0, 0] - K[1, 1]) > 1e-6 * K[0, 0] or abs(K[0, 1]) > 1e-9:
        raise ValueError(f"Cycles cameras need square pixels and no skew, got K={K.tolist()}")
    side = float(max(width, height))
    M = np.eye(4)
    Rt = np.asarray(R, np.float64).T
    M[:3, :3] = Rt @ np.diag([1.0, -1.0, -1.0])
    M[:3, 3] = -Rt @ np.asarray(t, np.float64)
    sensor_fit_w = SENSOR_WIDTH_MM if width >= height else SENSOR_WIDTH_MM * width / height
    return {"lens": float(K[0, 0] * sensor_fit_w / width), "sensor_width": SENSOR_WIDTH_MM,
            "sensor_fit": "HORIZONTAL" if width >= height else "VERTICAL",
            "shift_x": float((width / 2 - K[0, 2]) / side), "shift_y": float((K[1, 2] - height / 2) / side),
            "matrix_world": M}


def _new_principled(bpy, name: str, spec: dict, tex_node_image=None):
    """A Principled BSDF material from ``spec`` (see ``doppel.cycles_capture.MATERIALS``): base colour from
    the albedo texture (sRGB), subsurface, roughness, specular, sheen, coat, and a procedural bump."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nt = mat.node_tree
    nodes, links = nt.nodes, nt.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    if tex_node_image is not None:
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = tex_node_image
        tex.interpolation = "Linear"
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        if spec.get("subsurface", 0.0) > 0:
            bsdf.subsurface_method = "RANDOM_WALK"
    inputs = {"Roughness": "roughness", "Specular IOR Level": "specular", "Subsurface Weight": "subsurface",
              "Subsurface Scale": "subsurface_scale", "Sheen Weight": "sheen", "Sheen Roughness": "sheen_roughness",
              "Coat Weight": "coat", "Coat Roughness": "coat_roughness", "IOR": "ior"}
    for sock, key in inputs.items():
        if key in spec and sock in bsdf.inputs:
            bsdf.inputs[sock].default_value = float(spec[key])
    if "subsurface_radius" in spec:
        bsdf.inputs["Subsurface Radius"].default_value = tuple(float(x) for x in spec["subsurface_radius"])
    bump = _bump_pattern(nodes, links, spec.get("bump", "none"))
    if bump is not None:
        links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    return mat


def _bump_pattern(nodes, links, kind: str):
    """Procedural micro-detail as a Bump node (object-space coordinates in metres), or None.

    skin: pores (Voronoi cells, ~1.2 mm) plus fine wrinkles (stretched noise); cloth: a woven pattern (two
    crossed sine waves, ~1.5 mm threads); hair: strand-like stretched noise; lips: vertical lip lines."""
    if kind == "none":
        return None
    coord = nodes.new("ShaderNodeTexCoord")
    bump = nodes.new("ShaderNodeBump")
    if kind == "skin":
        vor = nodes.new("ShaderNodeTexVoronoi")
        vor.feature = "F1"
        vor.inputs["Scale"].default_value = 800.0
        links.new(coord.outputs["Object"], vor.inputs["Vector"])
        noise = nodes.new("ShaderNodeTexNoise")
        noise.inputs["Scale"].default_value = 300.0
        noise.inputs["Detail"].default_value = 4.0
        links.new(coord.outputs["Object"], noise.inputs["Vector"])
        mix = nodes.new("ShaderNodeMath")
        mix.operation = "MULTIPLY_ADD"
        links.new(noise.outputs["Fac"], mix.inputs[0])
        mix.inputs[1].default_value = 0.5
        links.new(vor.outputs["Distance"], mix.inputs[2])
        links.new(mix.outputs["Value"], bump.inputs["Height"])
        bump.inputs["Strength"].default_value = 0.12
        bump.inputs["Distance"].default_value = 0.0004
    else:
        wave_a = nodes.new("ShaderNodeTexWave")
        wave_a.bands_direction = "X" if kind in ("cloth", "lips") else "Y"
        wave_a.inputs["Scale"].default_value = {"cloth": 420.0, "lips": 250.0, "hair": 900.0}.get(kind, 400.0)
        links.new(coord.outputs["Object"], wave_a.inputs["Vector"])
        src = wave_a.outputs["Fac"]
        if kind == "cloth":
            wave_b = nodes.new("ShaderNodeTexWave")
            wave_b.bands_direction = "Y"
            wave_b.inputs["Scale"].default_value = 420.0
            links.new(coord.outputs["Object"], wave_b.inputs["Vector"])
            mul = nodes.new("ShaderNodeMath")
            mul.operation = "MULTIPLY"
            links.new(wave_a.outputs["Fac"], mul.inputs[0])
            links.new(wave_b.outputs["Fac"], mul.inputs[1])
            src = mul.outputs["Value"]
        links.new(src, bump.inputs["Height"])
        bump.inputs["Strength"].default_value = {"cloth": 0.35, "lips": 0.15, "hair": 0.5}.get(kind, 0.2)
        bump.inputs["Distance"].default_value = 0.0005
    return bump


def _look_at_matrix(pos, target) -> np.ndarray:
    """(4, 4) world matrix of a Blender light/camera at ``pos`` whose -Z axis points at ``target``."""
    pos, target = np.asarray(pos, np.float64), np.asarray(target, np.float64)
    back = pos - target
    back /= np.linalg.norm(back)
    up = np.array([0.0, 1.0, 0.0]) if abs(back[1]) < 0.99 else np.array([0.0, 0.0, 1.0])
    x = np.cross(up, back)
    x /= np.linalg.norm(x)
    y = np.cross(back, x)
    M = np.eye(4)
    M[:3, 0], M[:3, 1], M[:3, 2], M[:3, 3] = x, y, back, pos
    return M


def _add_lights(bpy, lights: list[dict], world: dict) -> None:
    """Area lights (name, position, target, size m, power W, colour) and a uniform environment colour."""
    from mathutils import Matrix

    scene = bpy.context.scene
    for spec in lights:
        data = bpy.data.lights.new(spec["name"], "AREA")
        data.shape = "RECTANGLE"
        data.size, data.size_y = float(spec["size"][0]), float(spec["size"][1])
        data.energy = float(spec["power"])
        data.color = tuple(float(c) for c in spec.get("color", (1.0, 1.0, 1.0)))
        obj = bpy.data.objects.new(spec["name"], data)
        obj.matrix_world = Matrix(_look_at_matrix(spec["position"], spec["target"]).tolist())
        scene.collection.objects.link(obj)
    w = bpy.data.worlds.new("studio")
    w.use_nodes = True
    bg = w.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (*[float(c) for c in world["color"]], 1.0)
    bg.inputs["Strength"].default_value = float(world["strength"])
    scene.world = w


def _configure_cycles(bpy, task: dict) -> str:
    """Cycles settings: samples, OpenImageDenoise, transparent film, Standard view, threads, device (GPU when
    asked for and present, else CPU). Returns the device used ("CPU", "CUDA", "OPTIX")."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    cyc = scene.cycles
    cyc.samples = int(task["samples"])
    cyc.use_adaptive_sampling = False
    cyc.use_denoising = bool(task.get("denoise", True))
    if cyc.use_denoising:
        cyc.denoiser = "OPENIMAGEDENOISE"
    cyc.max_bounces, cyc.diffuse_bounces, cyc.glossy_bounces = 8, 3, 3
    cyc.transparent_max_bounces = 4
    cyc.seed = int(task.get("seed", 0))
    cyc.pixel_filter_type, cyc.filter_width = "BOX", 1.0     # area coverage per pixel, as the raster renderer
    scene.render.film_transparent = True
    scene.render.use_persistent_data = True
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.threads_mode = "FIXED"
    scene.render.threads = max(1, int(task.get("threads", 2)))
    im = scene.render.image_settings
    im.file_format = "OPEN_EXR"
    im.color_depth = "16"
    im.color_mode = "RGBA"
    im.exr_codec = "ZIP"
    return _pick_device(bpy, cyc, task.get("device", "auto"))


def _pick_device(bpy, cyc, want: str) -> str:
    """CUDA / OptiX when ``want`` allows it and Blender finds such a device, else CPU."""
    if want == "cpu":
        cyc.device = "CPU"
        return "CPU"
    try:
        prefs = bpy.context.preferences.addons["cycles"].preferences
        for kind in ("OPTIX", "CUDA"):
            try:
                prefs.compute_device_type = kind
            except TypeError:
                continue
            prefs.get_devices()
            devs = [d for d in prefs.devices if d.type == kind]
            if devs:
                for d in prefs.devices:
                    d.use = d.type == kind
                cyc.device = "GPU"
                return kind
    except (KeyError, AttributeError, RuntimeError):
        pass
    if want == "gpu":
        raise RuntimeError("a GPU was asked for (--device gpu) but Blender finds no CUDA/OptiX device")
    cyc.device = "CPU"
    return "CPU"


def _build_mesh(bpy, a: dict[str, np.ndarray], materials: list[dict], texture: str | None):
    """The actor mesh (smooth shaded, UVs, one material slot per class, ``material_index`` per face)."""
    from assets.blender_mesh import new_mesh

    obj, me = new_mesh(bpy, "actor", a)
    image = bpy.data.images.load(texture) if texture else None
    if image is not None:
        image.colorspace_settings.name = "sRGB"
    for k, spec in enumerate(materials):
        me.materials.append(_new_principled(bpy, f"m{k}_{spec['name']}", spec, image))
    me.polygons.foreach_set("material_index", a["material_index"].astype(np.int32))
    me.update()
    return obj


def place_camera(bpy, view: dict):
    """The scene's camera (made if there is none) set to ``view``'s pinhole (K, R, t, width, height: OpenCV's
    convention, `blender_camera_params`), and the render resolution to its image."""
    from mathutils import Matrix

    scene = bpy.context.scene
    p = blender_camera_params(np.array(view["K"]), np.array(view["R"]), np.array(view["t"]),
                              int(view["width"]), int(view["height"]))
    cam = scene.camera
    if cam is None:
        cam = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
        scene.collection.objects.link(cam)
        scene.camera = cam
    cam.animation_data_clear()                          # the last motion-blurred view's keys
    cam.data.type = "PERSP"
    cam.data.sensor_fit = p["sensor_fit"]
    cam.data.sensor_width = cam.data.sensor_height = p["sensor_width"]
    cam.data.lens = p["lens"]
    cam.data.shift_x, cam.data.shift_y = p["shift_x"], p["shift_y"]
    cam.data.clip_start, cam.data.clip_end = 0.01, 100.0
    cam.matrix_world = Matrix(p["matrix_world"].tolist())
    scene.render.resolution_x, scene.render.resolution_y = int(view["width"]), int(view["height"])
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0


def set_deformation_motion(bpy, obj, motion: dict | None, vertices: np.ndarray | None) -> None:
    """Cycles' motion blur of ``obj`` over a shutter: ``motion`` {"shutter": frames open, centred on MOTION_FRAME;
    "times": (K,) frames relative to it, the shutter's span from its opening to its close}, ``vertices`` (K, V, 3)
    the mesh at those times, one shape key each, keyed 1 at its own time and 0 at the others, linear between:
    Cycles, which samples time continuously over the shutter, sees the mesh move linearly from one keyed time
    to the next. None: no motion blur (the scene drawn at MOTION_FRAME)."""
    import math

    scene = bpy.context.scene
    scene.render.use_motion_blur = bool(motion)
    if motion:
        from assets.blender_mesh import make_keys_linear

        times = [float(t) for t in motion["times"]]
        obj.shape_key_add(name="Basis")
        keys = []
        for k, v in enumerate(np.asarray(vertices, np.float32)):
            key = obj.shape_key_add(name=f"shutter{k}")
            key.data.foreach_set("co", v.ravel())
            keys.append(key)
        for k, t in enumerate(times):
            for j, key in enumerate(keys):
                key.value = float(j == k)
                key.keyframe_insert("value", frame=MOTION_FRAME + t)
        make_keys_linear(obj.data.shape_keys)
        scene.render.motion_blur_shutter = float(motion["shutter"])
        target = scene.render if hasattr(scene.render, "motion_blur_position") else scene.cycles
        target.motion_blur_position = "CENTER"
        obj.cycles.use_motion_blur = obj.cycles.use_deform_motion = True
        obj.cycles.motion_steps = min(7, 1 + math.ceil(math.log2(max(2, len(times) - 1))))
    scene.frame_set(MOTION_FRAME)


def key_camera_motion(bpy, views: list[dict], times) -> None:
    """Key the scene camera's placement at each of ``times`` (frames relative to MOTION_FRAME) to ``views``' R, t
    (the same K, OpenCV's convention), location and quaternion linear between keys (Cycles' camera motion blur)."""
    from mathutils import Matrix

    from assets.blender_mesh import make_keys_linear

    cam = bpy.context.scene.camera
    cam.rotation_mode = "QUATERNION"
    last = None
    for view, t in zip(views, times, strict=True):
        p = blender_camera_params(np.array(view["K"]), np.array(view["R"]), np.array(view["t"]),
                                  int(view["width"]), int(view["height"]))
        cam.matrix_world = Matrix(p["matrix_world"].tolist())
        q = cam.matrix_world.to_quaternion()
        if last is not None and q.dot(last) < 0:           # the short way round between keys
            q.negate()
        cam.rotation_quaternion, last = q, q.copy()
        cam.keyframe_insert("location", frame=MOTION_FRAME + float(t))
        cam.keyframe_insert("rotation_quaternion", frame=MOTION_FRAME + float(t))
    make_keys_linear(cam)
    cam.cycles.use_motion_blur = True
    cam.cycles.motion_steps = min(7, 1 + int(np.ceil(np.log2(max(2, len(views) - 1)))))
    bpy.context.scene.frame_set(MOTION_FRAME)


def render_cycles(bpy, task: dict, a: dict[str, np.ndarray]) -> dict:
    """Build (or reuse) the scene of ``task["scene_key"]``, set the vertices, render every view of
    ``task["views"]`` (name, K, R, t, width, height, out: an .exr path) -> info (seconds per view, device).
    With ``task["motion"]`` (`set_deformation_motion`) and a["motion_vertices"] the frame is motion-blurred, each
    view's camera moving through its view["motion"] (one R, t per time)."""
    key = task["scene_key"]
    t0 = time.perf_counter()
    obj = _STATE.get(key)
    if obj is None:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        _STATE.clear()
        device = _configure_cycles(bpy, task)
        _add_lights(bpy, task["lights"], task["world"])
        obj = _build_mesh(bpy, a, task["materials"], task.get("texture"))
        _STATE[key] = obj
        _STATE["device"] = device
    else:
        if obj.data.shape_keys is not None:            # the last task's shutter keys
            obj.shape_key_clear()
        obj.data.vertices.foreach_set("co", a["vertices"].astype(np.float32).ravel())
        obj.data.update()
        bpy.context.scene.cycles.samples = int(task["samples"])
    motion = task.get("motion")
    set_deformation_motion(bpy, obj, motion, a.get("motion_vertices"))
    setup = time.perf_counter() - t0
    seconds = []
    for view in task["views"]:
        t1 = time.perf_counter()
        place_camera(bpy, view)
        if motion:
            key_camera_motion(bpy, view["motion"], motion["times"])
        bpy.context.scene.render.filepath = view["out"]
        bpy.ops.render.render(write_still=True)
        seconds.append(time.perf_counter() - t1)
    return {"setup_s": round(setup, 3), "view_s": [round(s, 3) for s in seconds], "device": _STATE.get("device")}
