"""The virtual actor path-traced by Blender Cycles (in the Blender worker process): physically based materials,
a studio light rig and an environment, linear half-float EXR plus the sRGB PNG per view.

Parent side only: this module decides the materials (a class per face, from the same rules that paint the
albedo: ``doppel.albedo``), the lights (placed from the actor's bounding box) and the cameras (the very
``PinholeNP`` objects the raster renderer uses), sends them to ``assets.cycles_scene`` through
``assets.blender_worker.run_blender_tasks`` and turns each EXR into the session PNG: the premultiplied linear
RGBA is composited over the studio backdrop (``BACKGROUND_SRGB``, linearised) and sRGB-encoded (the Standard
view transform), so the backdrop pixel values are the raster renderer's.

Frames are sent in chunks (``CHUNK_FRAMES`` per worker process): Blender starts once per chunk, the scene is
built once per chunk and only the vertices change between frames; images go straight to disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

RENDERERS = ("raster", "cycles")
MAX_IMAGE_SIDE = 8192
CHUNK_FRAMES = 16        # frames per Blender worker process (bounded temporary files, one start-up per chunk)

# Material classes: index = the slot in the Blender mesh. Values are Principled BSDF inputs (Blender 5 names,
# see assets.cycles_scene._new_principled); subsurface radius in metres per channel (skin scatters red furthest).
MATERIALS = [
    {"name": "skin", "roughness": 0.45, "specular": 0.5, "subsurface": 0.35, "subsurface_scale": 0.004,
     "subsurface_radius": (1.0, 0.35, 0.2), "ior": 1.4, "bump": "skin"},
    {"name": "lips", "roughness": 0.3, "specular": 0.7, "subsurface": 0.4, "subsurface_scale": 0.003,
     "subsurface_radius": (1.0, 0.3, 0.2), "ior": 1.4, "bump": "lips"},
    {"name": "eyes", "roughness": 0.05, "specular": 1.0, "coat": 1.0, "coat_roughness": 0.02, "ior": 1.376,
     "bump": "none"},
    {"name": "cloth", "roughness": 0.85, "specular": 0.3, "sheen": 0.6, "sheen_roughness": 0.4, "bump": "cloth"},
    {"name": "hair", "roughness": 0.75, "specular": 0.4, "bump": "hair"},
    {"name": "mouth", "roughness": 0.4, "specular": 0.5, "subsurface": 0.2, "subsurface_scale": 0.002,
     "subsurface_radius": (1.0, 0.3, 0.2), "bump": "none"},
]
MATERIAL_INDEX = {m["name"]: i for i, m in enumerate(MATERIALS)}


@dataclass(frozen=True)
class CyclesSettings:
    """How Cycles renders (the scene itself is fixed by this module)."""

    samples: int = 32            # path samples per pixel (>= 1), denoised with OpenImageDenoise
    threads: int = 2             # CPU render threads
    device: str = "auto"         # "auto" (CUDA/OptiX when Blender finds one, else CPU), "cpu", "gpu"
    denoise: bool = True         # OpenImageDenoise on the beauty pass
    timeout_s: float = 3600.0    # one worker process (a chunk of frames) may run this long (or 4x its estimate)


@dataclass
class CyclesStats:
    """What the renders cost (filled in while rendering)."""

    view_seconds: list[float] = field(default_factory=list)   # one per rendered view
    setup_seconds: float = 0.0                                  # scene build / vertex updates, summed
    worker_seconds: float = 0.0                                 # worker processes wall time incl. start-up
    device: str = ""


# Cost model of Cycles on 2 CPU cores (see docs/benchmarks.md, "Cycles"; rough, +-50 %)
CYCLES_WORKER_SECONDS = 3.0          # one Blender worker start-up and scene build (per chunk of frames)
CYCLES_VIEW_SECONDS = 0.2            # fixed cost of one view (camera update, denoiser, EXR write)
CYCLES_SECONDS_PER_PX_SAMPLE = 2e-6  # per pixel and sample (1.6-1.8e-6 at load 2-3, 3-9e-6 at load 10-15)


def estimate_cycles_seconds(views: int, width: int, height: int, samples: int, frames: int = 1) -> float:
    """Seconds to render ``views`` images of width x height px at ``samples`` on the CPU (the worker start-ups
    of ceil(frames / CHUNK_FRAMES) chunks included)."""
    chunks = -(-max(1, frames) // CHUNK_FRAMES)
    return chunks * CYCLES_WORKER_SECONDS + views * (CYCLES_VIEW_SECONDS
                                                     + CYCLES_SECONDS_PER_PX_SAMPLE * width * height * samples)


def check_renderer_args(renderer: str, samples: int) -> None:
    """ValueError naming the option for an unknown renderer or samples < 1."""
    if renderer not in RENDERERS:
        raise ValueError(f"--renderer must be one of {', '.join(RENDERERS)}, got {renderer!r}")
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")


def material_classes(actor) -> np.ndarray:
    """(F,) int material index per face of ``actor`` (MATERIALS): eyes, mouth, lips, scalp hair, clothes and
    skin, by the rules ``doppel.albedo`` paints with, evaluated at each face's rest-pose centroid."""
    from doppel import albedo

    R = albedo.REGIONS
    reg = actor.face_regions
    pos = actor.rest_vertices[actor.faces].mean(axis=1).astype(np.float64)
    surf = albedo._surface(actor.rest_vertices.astype(np.float64), actor.faces, reg, pos, reg)
    out = np.full(len(reg), MATERIAL_INDEX["skin"], np.int32)
    on_head = reg == R["head"]
    front = pos[:, 2] > surf.face_front_z - 0.06
    scalp = on_head & ((pos[:, 1] > surf.eye_y + 0.065) |
                       ((pos[:, 1] > surf.eye_y - 0.02) & (pos[:, 2] < surf.eye_l[2] - 0.085)))
    out[scalp] = MATERIAL_INDEX["hair"]
    ux = (pos[:, 0] - surf.mouth[0]) / 0.026
    uy = (pos[:, 1] - (surf.mouth[1] + 0.002)) / 0.009
    out[on_head & front & (np.abs(ux) < 1.0) & (np.abs(uy) < (1.0 - ux ** 2))] = MATERIAL_INDEX["lips"]
    y = pos[:, 1] / surf.height
    torso = reg == R["body"]
    shoulder_x = 0.11 * surf.height
    shirt = torso & (y > 0.56) & (y < 0.81) & (np.abs(pos[:, 0]) < shoulder_x + 0.05)
    out[shirt | (torso & (y > 0.40) & (y <= 0.56))] = MATERIAL_INDEX["cloth"]
    out[np.isin(reg, [R[k] for k in ("eye_front.L", "eye_front.R", "eye_back.L", "eye_back.R")])] = \
        MATERIAL_INDEX["eyes"]
    out[np.isin(reg, [R["eye_cavity.L"], R["eye_cavity.R"], R["mouth_cavity"], R["tongue"]])] = \
        MATERIAL_INDEX["mouth"]
    return out


def studio_lights(lo: np.ndarray, hi: np.ndarray) -> tuple[list[dict], dict]:
    """A three-point studio rig around an actor whose bounding box is lo, hi (3,) metres (Doppel frame,
    facing +Z): key (front-left, above), fill (front-right, lower, softer), rim (behind, above), plus a dim
    uniform environment. -> (lights, world) as ``assets.cycles_scene`` takes them (area sizes m, power W)."""
    c = (lo + hi) / 2
    h = float(hi[1] - lo[1])
    aim = c + np.array([0.0, 0.15 * h, 0.0])
    lights = [
        {"name": "key", "position": (c + np.array([-1.6, 0.9 * h, 2.4])).tolist(), "target": aim.tolist(),
         "size": (1.2, 1.2), "power": 200.0, "color": (1.0, 0.97, 0.92)},
        {"name": "fill", "position": (c + np.array([2.0, 0.35 * h, 2.2])).tolist(), "target": aim.tolist(),
         "size": (1.8, 1.8), "power": 70.0, "color": (0.92, 0.96, 1.0)},
        {"name": "rim", "position": (c + np.array([0.6, 1.0 * h, -2.4])).tolist(), "target": aim.tolist(),
         "size": (0.8, 1.6), "power": 150.0, "color": (1.0, 1.0, 1.0)},
    ]
    return lights, {"color": (0.55, 0.57, 0.62), "strength": 0.35}


def srgb_encode(x: np.ndarray) -> np.ndarray:
    """Linear -> sRGB-encoded (IEC 61966-2-1, the Standard view transform), clamped to [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)


def srgb_decode(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded in [0, 1] -> linear."""
    x = np.asarray(x, np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)


def read_exr_rgba(path) -> np.ndarray:
    """An RGBA EXR -> (H, W, 4) float32 (linear, premultiplied alpha, as Blender writes it)."""
    import OpenEXR

    path = Path(path)
    try:
        with OpenEXR.File(str(path)) as f:
            ch = f.channels()
            if "RGBA" in ch:
                return np.asarray(ch["RGBA"].pixels, np.float32)
            return np.stack([np.asarray(ch[k].pixels, np.float32) for k in "RGBA"], -1)
    except (OSError, RuntimeError, KeyError) as e:
        raise ValueError(f"{path}: not a readable RGBA EXR ({type(e).__name__}: {e})") from e


def clean_denoiser_bleed(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) premultiplied RGBA from Cycles with film transparency -> the same with the denoiser's bleed
    removed: OpenImageDenoise spreads colour into pixels the actor does not cover (alpha 0), which would show as
    a bright fringe over the backdrop. Each channel is capped at alpha * (its maximum over fully covered pixels),
    so uncovered pixels are exactly 0 and edge pixels carry at most their coverage's share."""
    out = np.array(rgba, np.float32, copy=True)
    a = out[..., 3:4]
    full = a[..., 0] >= 0.999
    cap = out[full, :3].max(0) if full.any() else np.full(3, np.inf, np.float32)
    out[..., :3] = np.clip(out[..., :3], 0.0, a * cap)
    return out


def exr_to_srgb_png_pixels(rgba: np.ndarray, background_srgb) -> np.ndarray:
    """(H, W, 4) linear premultiplied RGBA -> (H, W, 3) uint8 sRGB over the constant backdrop."""
    bg = srgb_decode(np.asarray(background_srgb, np.float64))
    a = rgba[..., 3:4].astype(np.float64)
    lin = rgba[..., :3].astype(np.float64) + (1.0 - a) * bg
    return (srgb_encode(lin) * 255.0 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class CyclesActor:
    """What the worker needs of one actor (shared by every frame): topology, UVs, material per face, the albedo
    texture as a PNG path, the light rig."""

    faces: np.ndarray            # (F, 3) int
    uvs: np.ndarray              # (T, 2) float
    face_uvs: np.ndarray         # (F, 3) int
    material_index: np.ndarray   # (F,) int into MATERIALS
    texture_png: str             # sRGB albedo PNG (written by ``prepare_actor``)
    lights: list
    world: dict
    key: str                     # scene key: same key, same scene in one worker


def prepare_actor(actor, work_dir, texture=None, key: str | None = None) -> CyclesActor:
    """Write the actor's albedo (or ``texture`` (H, W, 3) sRGB float) to WORK_DIR/albedo_KEY.png and gather the
    arrays the worker needs. The light rig is placed from the actor's rest bounding box."""
    import cv2

    key = key or f"actor{actor.seed}"
    tex = actor.texture if texture is None else texture
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    png = work_dir / f"albedo_{key}.png"
    cv2.imwrite(str(png), cv2.cvtColor((np.clip(tex, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
    lights, world = studio_lights(actor.rest_vertices.min(0), actor.rest_vertices.max(0))
    return CyclesActor(np.asarray(actor.faces), np.asarray(actor.uvs), np.asarray(actor.face_uvs),
                       material_classes(actor), str(png.resolve()), lights, world, key)


def _view_dict(cam, out: Path) -> dict:
    if np.any(np.asarray(cam.dist)):
        raise ValueError(f"camera {cam.name!r}: Cycles renders of lens distortion are not supported")
    return {"name": cam.name, "K": np.asarray(cam.K).tolist(), "R": np.asarray(cam.R).tolist(),
            "t": np.asarray(cam.t).tolist(), "width": int(cam.width), "height": int(cam.height), "out": str(out)}


@dataclass(frozen=True)
class ShutterMotion:
    """A frame's motion over an open shutter, for Cycles' motion blur: the mesh and each view's camera at ``times``
    (K,) frames relative to the frame's own, evenly from the shutter's opening to its close (Cycles samples time
    continuously between them, linearly)."""

    shutter: float                 # frames the shutter is open, centred on the frame (180 degrees: 0.5)
    times: np.ndarray              # (K,) float64 frames, -shutter/2 .. +shutter/2
    vertices: np.ndarray           # (K, V, 3) float32 metres: the mesh at each time
    cameras: list                  # per view of the frame: K PinholeNP cameras, one per time


def shutter_times(shutter: float, samples: int) -> np.ndarray:
    """(samples + 1,) float64 frames: the times a frame's motion is keyed at for Cycles, evenly from -shutter/2
    to +shutter/2 (a shutter open ``shutter`` frames, centred)."""
    return np.linspace(-shutter / 2, shutter / 2, int(samples) + 1)


def render_frames_cycles(cactor: CyclesActor, frames, settings: CyclesSettings, stats: CyclesStats | None = None,
                         progress=None) -> None:
    """Render frames through Cycles, streamed in chunks of CHUNK_FRAMES per Blender worker.

    frames: an iterable of (vertices (V, 3) float32 metres, [(PinholeNP camera, EXR output path), ...]) or of
    (vertices, views, ShutterMotion): that frame motion-blurred by Cycles (deformation and camera motion);
    consumed lazily, so a long take never holds more than one chunk of vertex arrays. Every EXR is written by
    Blender (linear half float, premultiplied RGBA). progress(done_views) after each chunk.
    Raises BlenderError (one line) when Blender fails or crashes."""
    import time

    from assets.blender_worker import run_blender_tasks

    stats = stats if stats is not None else CyclesStats()
    done = 0
    chunk: list = []

    def flush() -> None:
        nonlocal done
        t0 = time.perf_counter()
        px = sum(v["width"] * v["height"] for task, _ in chunk for v in task["views"])
        expected = len(chunk) * CYCLES_WORKER_SECONDS + px * settings.samples * CYCLES_SECONDS_PER_PX_SAMPLE
        res = run_blender_tasks(chunk, timeout=max(settings.timeout_s, 4 * expected))   # big chunks: more time
        stats.worker_seconds += time.perf_counter() - t0
        for r in res:
            stats.view_seconds += list(r.info["view_s"])
            stats.setup_seconds += float(r.info["setup_s"])
            stats.device = str(r.info.get("device"))
            done += len(r.info["view_s"])
        chunk.clear()
        if progress:
            progress(done)

    base = {"kind": "render_cycles", "scene_key": cactor.key, "samples": int(settings.samples),
            "threads": int(settings.threads), "device": settings.device, "denoise": settings.denoise,
            "materials": MATERIALS, "lights": cactor.lights, "world": cactor.world, "texture": cactor.texture_png}
    for verts, views, *motion in frames:
        task = dict(base, views=[_view_dict(c, Path(p)) for c, p in views])
        arrays = {"vertices": np.asarray(verts, np.float32), "faces": cactor.faces, "uvs": cactor.uvs,
                  "face_uvs": cactor.face_uvs, "material_index": cactor.material_index}
        if motion and motion[0] is not None:
            _add_motion(task, arrays, motion[0])
        chunk.append((task, arrays))
        if len(chunk) >= CHUNK_FRAMES:
            flush()
    if chunk:
        flush()


def _add_motion(task: dict, arrays: dict, m: ShutterMotion) -> None:
    """``task`` and its ``arrays`` with the frame's shutter motion (`assets.cycles_scene.set_deformation_motion`)."""
    if len(m.cameras) != len(task["views"]) or any(len(c) != len(m.times) for c in m.cameras):
        raise ValueError("a shutter's motion needs one camera per view and time")
    task["motion"] = {"shutter": float(m.shutter), "times": [float(t) for t in m.times]}
    arrays["motion_vertices"] = np.asarray(m.vertices, np.float32)
    for view, cams in zip(task["views"], m.cameras, strict=True):
        view["motion"] = [_view_dict(c, Path(view["out"])) for c in cams]


def render_actor_views(actor, cameras, out_dir, background_srgb, settings: CyclesSettings | None = None
                       ) -> list[Path]:
    """Render ``actor`` (a VirtualActor) from ``cameras`` (PinholeNP list) through Cycles into OUT_DIR/NAME.exr
    (linear half float, denoiser bleed removed) and OUT_DIR/NAME.png (sRGB over the constant backdrop
    ``background_srgb`` (3,)) -> PNG paths."""
    import shutil
    import tempfile

    import cv2

    from core.storage import atomic_write_bytes
    from neural_render.image_io import write_exr

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="doppel_cycles_"))
    try:
        cactor = prepare_actor(actor, work)
        views = [(c, out_dir / f"{c.name}.exr") for c in cameras]
        render_frames_cycles(cactor, [(actor.vertices, views)], settings or CyclesSettings())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pngs = []
    for _, exr in views:
        rgba = clean_denoiser_bleed(read_exr_rgba(exr))
        write_exr(exr, rgba)
        ok, buf = cv2.imencode(".png", cv2.cvtColor(exr_to_srgb_png_pixels(rgba, background_srgb), cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"{exr}: could not encode the PNG")
        pngs.append(atomic_write_bytes(exr.with_suffix(".png"), buf.tobytes()))
    return pngs
