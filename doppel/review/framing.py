"""Framing an animated double for `<model-viewer>`: the camera sees the whole clip, not the bind pose.

`<model-viewer>` frames the bounding box of the model as loaded (the bind pose). A clip whose root travels
(a cartwheel, a run) then leaves the frame after a second and shows a hand at the edge of an empty view.
`frame_animation` poses the .glb over the clip (`gltf_eval`), takes the extent of every posed vertex and
returns the camera target, orbit and field of view that keep all of it in view. `write_viewer_glb` writes
the copy the viewer shows: the same file plus a floor grid under the whole extent and a height pole beside
the actor's start (labelled with the actor's height by the page), so that size and travel read at a glance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.storage import atomic_write_bytes
from doppel.review.gltf_eval import GlbScene, load_glb, posed_points

GRID_CELL_M = 0.5          # floor grid spacing, metres
GRID_MARGIN_M = 0.5        # grid beyond the animation's footprint, metres
FIT_MARGIN = 1.06          # the camera stands this much farther than the tightest distance that shows everything
MIN_ASPECT = 1.5           # narrowest viewer (width / height) the framing keeps everything in (the page's is 16:9)


@dataclass(frozen=True)
class Framing:
    lo: tuple[float, float, float]        # min corner of every posed vertex over the clip, metres (world, +Y up)
    hi: tuple[float, float, float]        # max corner, metres
    rest_lo: tuple[float, float, float]   # min corner of the rest (bind) pose, metres
    rest_hi: tuple[float, float, float]   # max corner of the rest pose, metres
    actor_height: float                   # rest pose's vertical extent, metres
    floor_y: float                        # height of the floor grid: the lowest posed point of the clip, metres
    duration: float                       # clip length in seconds (0: no animation)
    samples: int                          # how many times of the clip were posed
    target: tuple[float, float, float]    # camera-target, metres
    theta_deg: float                      # camera-orbit azimuth, degrees
    phi_deg: float                        # camera-orbit polar angle from +Y, degrees
    radius: float                         # camera distance from the target, metres
    fov_deg: float                        # vertical field of view, degrees
    pole: tuple[float, float, float]      # base of the height pole, metres

    @property
    def travel(self) -> float:
        """How far the extent reaches beyond the rest pose horizontally, metres (0 for a clip in place)."""
        lo, hi, rlo, rhi = map(np.asarray, (self.lo, self.hi, self.rest_lo, self.rest_hi))
        return float(max(0.0, *(rlo - lo)[[0, 2]], *(hi - rhi)[[0, 2]]))

    def attributes(self) -> dict[str, str]:
        """`<model-viewer>` attributes that frame the whole clip (camera-target, camera-orbit, field-of-view and
        orbit limits that allow zooming out to twice the framing distance)."""
        t = " ".join(f"{v:.3f}m" for v in self.target)
        return {
            "camera-target": t,
            "camera-orbit": f"{self.theta_deg:.1f}deg {self.phi_deg:.1f}deg {self.radius:.3f}m",
            "field-of-view": f"{self.fov_deg:.1f}deg",
            "min-field-of-view": "5deg",
            "max-field-of-view": f"{max(self.fov_deg, 45.0):.1f}deg",
            "min-camera-orbit": "auto 0deg 0.2m",
            "max-camera-orbit": f"auto 180deg {2 * self.radius:.3f}m",
        }


def frame_animation(scene: GlbScene, samples: int = 64, theta_deg: float = 25.0, phi_deg: float = 72.0,
                    fov_deg: float = 30.0) -> Framing:
    """Pose ``scene`` at ``samples`` evenly spaced times of its first animation (and every key time when there are
    fewer keys) and frame the union of the posed vertices. A model without animation is framed at rest."""
    rest = posed_points(scene, 0.0) if not scene.channels else _rest_points(scene)
    if not len(rest):
        raise ValueError("the glTF has no mesh vertices to frame")
    times = _sample_times(scene, samples)
    lo, hi = rest.min(0), rest.max(0)
    for t in times:
        pts = posed_points(scene, float(t))
        lo, hi = np.minimum(lo, pts.min(0)), np.maximum(hi, pts.max(0))
    rest_lo, rest_hi = rest.min(0), rest.max(0)
    floor = float(lo[1])           # the clip's lowest point touches the ground (Doppel's doubles: y = 0)
    height = float(rest_hi[1] - rest_lo[1])
    pole = (float(rest_lo[0] - 0.3), floor, float((rest_lo[2] + rest_hi[2]) / 2))
    partial = Framing(tuple(map(float, lo)), tuple(map(float, hi)), tuple(map(float, rest_lo)),
                      tuple(map(float, rest_hi)), height, floor, scene.duration, len(times), (0.0, 0.0, 0.0),
                      theta_deg, phi_deg, 0.0, fov_deg, pole)
    grid = grid_lines(partial)
    box_lo = np.minimum(np.minimum(lo, grid.min(0)), [pole[0] - 0.1, floor, pole[2]])
    box_hi = np.maximum(np.maximum(hi, grid.max(0)), [pole[0] + 0.1, floor + height + 0.15, pole[2]])
    center = (box_lo + box_hi) / 2
    radius = fit_distance(box_lo, box_hi, center, theta_deg, phi_deg, fov_deg, MIN_ASPECT) * FIT_MARGIN
    return Framing(tuple(map(float, lo)), tuple(map(float, hi)), tuple(map(float, rest_lo)),
                   tuple(map(float, rest_hi)), height, floor, scene.duration, len(times), tuple(map(float, center)),
                   theta_deg, phi_deg, radius, fov_deg, pole)


def camera_axes(theta_deg: float, phi_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(forward, right, up) unit vectors of model-viewer's orbit camera: it sits at target + r * (sin phi sin theta,
    cos phi, sin phi cos theta) (theta about +Y from +Z, phi from +Y) and looks at the target."""
    th, ph = math.radians(theta_deg), math.radians(phi_deg)
    fwd = -np.array([math.sin(ph) * math.sin(th), math.cos(ph), math.sin(ph) * math.cos(th)])
    right = np.cross(fwd, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    return fwd, right, np.cross(right, fwd)


def fit_distance(box_lo: np.ndarray, box_hi: np.ndarray, target: np.ndarray, theta_deg: float, phi_deg: float,
                 fov_deg: float, aspect: float) -> float:
    """The smallest camera distance from ``target`` at which all 8 corners of the box (metres) are inside a view of
    vertical field ``fov_deg`` and width/height ``aspect``."""
    fwd, right, up = camera_axes(theta_deg, phi_deg)
    corners = np.array([[x, y, z] for x in (box_lo[0], box_hi[0]) for y in (box_lo[1], box_hi[1])
                        for z in (box_lo[2], box_hi[2])]) - target
    t = math.tan(math.radians(fov_deg) / 2)
    need = np.maximum(np.abs(corners @ up) / t, np.abs(corners @ right) / (t * aspect)) - corners @ fwd
    return float(need.max())


def _rest_points(scene: GlbScene) -> np.ndarray:
    """Vertices as the mesh stores them (the bind pose) through their nodes' rest transforms."""
    saved = scene.channels
    try:
        scene.channels = []
        return posed_points(scene, 0.0)
    finally:
        scene.channels = saved


def _sample_times(scene: GlbScene, samples: int) -> np.ndarray:
    if not scene.channels or scene.duration <= 0:
        return np.zeros(1)
    keys = np.unique(np.concatenate([c[2] for c in scene.channels]))
    if len(keys) <= samples:
        return keys
    return np.linspace(0.0, scene.duration, samples)


def grid_lines(framing: Framing) -> np.ndarray:
    """Floor grid segments under the whole extent (and the height pole): (2 * L, 3) float32 line endpoints."""
    lo = np.array([min(framing.lo[0], framing.pole[0]), min(framing.lo[2], framing.pole[2])]) - GRID_MARGIN_M
    hi = np.array([max(framing.hi[0], framing.pole[0]), max(framing.hi[2], framing.pole[2])]) + GRID_MARGIN_M
    lo, hi = np.floor(lo / GRID_CELL_M) * GRID_CELL_M, np.ceil(hi / GRID_CELL_M) * GRID_CELL_M
    y = framing.floor_y
    segs = [[(x, y, lo[1]), (x, y, hi[1])] for x in np.arange(lo[0], hi[0] + 1e-6, GRID_CELL_M)]
    segs += [[(lo[0], y, z), (hi[0], y, z)] for z in np.arange(lo[1], hi[1] + 1e-6, GRID_CELL_M)]
    return np.asarray(segs, np.float32).reshape(-1, 3)


def pole_lines(framing: Framing, tick_m: float = 0.1) -> np.ndarray:
    """The height pole: a vertical segment from the floor to the actor's height with a tick every ``tick_m``
    (longer every metre): (2 * L, 3) float32 line endpoints."""
    x, y0, z = framing.pole
    h = framing.actor_height
    segs = [[(x, y0, z), (x, y0 + h, z)], [(x - 0.08, y0 + h, z), (x + 0.08, y0 + h, z)]]
    for k in range(1, int(h / tick_m) + 1):
        w = 0.06 if k % 10 == 0 else 0.025
        segs.append([(x - w, y0 + k * tick_m, z), (x + w, y0 + k * tick_m, z)])
    return np.asarray(segs, np.float32).reshape(-1, 3)


def write_viewer_glb(src: str | Path, dst: str | Path, framing: Framing) -> Path:
    """Copy ``src`` (.glb) to ``dst`` with two unlit line meshes added at the scene root: the floor grid and the
    height pole. Everything else (meshes, skins, animation, provenance extras) is kept as it is."""
    import pygltflib as g

    from assets.export.gltf import glb_bytes

    gltf = g.GLTF2.load_binary(str(src))
    blob = bytearray(gltf.binary_blob() or b"")
    exts = set(gltf.extensionsUsed or [])
    exts.add("KHR_materials_unlit")
    gltf.extensionsUsed = sorted(exts)
    scene = gltf.scenes[gltf.scene or 0]
    for name, pts, rgba in (("doppel_review_floor_grid", grid_lines(framing), [0.25, 0.28, 0.32, 1.0]),
                            ("doppel_review_height_pole", pole_lines(framing), [0.95, 0.45, 0.1, 1.0])):
        blob += b"\0" * (-len(blob) % 4)
        gltf.bufferViews.append(g.BufferView(buffer=0, byteOffset=len(blob), byteLength=pts.nbytes, target=34962))
        blob += pts.tobytes()
        gltf.accessors.append(g.Accessor(bufferView=len(gltf.bufferViews) - 1, componentType=5126, count=len(pts),
                                         type="VEC3", min=pts.min(0).tolist(), max=pts.max(0).tolist()))
        gltf.materials.append(g.Material(name=name, pbrMetallicRoughness=g.PbrMetallicRoughness(
            baseColorFactor=rgba, metallicFactor=0.0, roughnessFactor=1.0), extensions={"KHR_materials_unlit": {}}))
        gltf.meshes.append(g.Mesh(name=name, primitives=[g.Primitive(
            attributes=g.Attributes(POSITION=len(gltf.accessors) - 1), mode=1, material=len(gltf.materials) - 1)]))
        gltf.nodes.append(g.Node(name=name, mesh=len(gltf.meshes) - 1))
        scene.nodes = [*(scene.nodes or []), len(gltf.nodes) - 1]
    blob += b"\0" * (-len(blob) % 4)
    if not gltf.buffers:
        gltf.buffers.append(g.Buffer(byteLength=0))
    gltf.buffers[0].byteLength = len(blob)
    gltf.set_binary_blob(bytes(blob))
    return atomic_write_bytes(Path(dst), glb_bytes(gltf))


def prepare_viewer(src: str | Path, dst: str | Path, samples: int = 64) -> Framing:
    """Frame ``src`` (.glb) over its whole animation and write the viewer's copy to ``dst``; returns the framing."""
    framing = frame_animation(load_glb(src), samples=samples)
    write_viewer_glb(src, dst, framing)
    return framing
