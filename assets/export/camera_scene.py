"""Cameras (static) and a mesh whose points move per frame, written as Alembic (Blender's own writer in the worker
process) or USD (usd-core): a capture rig's calibrated cameras (`doppel capture cameras CALIB --out rig.abc`), a
face swap's plate camera and tracked head (`doppel.face_swap.track_scene`).

The files are Y-up, in metres or centimetres; each camera is a DCC camera (`assets.export.dcc_camera`: looking
down -Z, the K as a focal length on a 36 mm filmback and a film offset) placed by its transform; the mesh's points
are sampled at frames ``first_frame``... at ``fps``. The provenance (strings) goes into the file: the mesh's (else
each camera's) user properties in Alembic, the root layer's customLayerData in USD.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assets.export.common import UNIT_SCALE, ExportError, check_output_path, staged_output
from assets.export.dcc_camera import Filmback

SCENE_FORMATS = {".abc": "abc", ".usd": "usd", ".usda": "usd", ".usdc": "usd"}
CLIP_M = (0.01, 1000.0)           # the cameras' clipping range, metres


@dataclass
class SceneCamera:
    """name; matrix (4, 4) the DCC camera's transform to the world (`dcc_camera.camera_to_world`), metres, Y-up;
    filmback; size (W, H) px of its image; shutter: (open, close) frames relative to each frame (USD's
    shutter:open / shutter:close; Alembic through Blender keeps none), or None."""

    name: str
    matrix: np.ndarray
    filmback: Filmback
    size: tuple[int, int]
    shutter: tuple[float, float] | None = None


@dataclass
class PointsMesh:
    """name; points (F, V, 3) metres per frame; faces (Fc, 3); uvs (T, 2) and face_uvs (Fc, 3) or None."""

    name: str
    points: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None = None
    face_uvs: np.ndarray | None = None


@dataclass
class CameraScene:
    cameras: list[SceneCamera]
    mesh: PointsMesh | None = None
    fps: float = 24.0
    first_frame: int = 1
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return 1 if self.mesh is None else len(self.mesh.points)


def write_camera_scene(scene: CameraScene, out: str | Path, units: str = "m") -> Path:
    """Write ``scene`` to ``out`` (.abc, .usd, .usda, .usdc) in ``units`` ("m" or "cm"); atomic. Returns the path."""
    out = check_output_path(out, tuple(SCENE_FORMATS))
    if units not in UNIT_SCALE:
        raise ValueError(f"--units must be cm or m, got {units!r}")
    names = [c.name for c in scene.cameras]
    if len(set(names)) != len(names):
        raise ValueError(f"camera names must differ: {names}")
    with staged_output(out) as staged:
        if SCENE_FORMATS[out.suffix.lower()] == "abc":
            _write_alembic(scene, staged, UNIT_SCALE[units])
        else:
            staged.unlink()
            _write_usd(scene, staged, units)
    return out


def blender_camera(cam: SceneCamera, scale: float) -> dict:
    """The Blender camera of ``cam`` (its sensor fitted horizontally, as Alembic's apertures are): lens and sensor in
    mm, shifts in fractions of the sensor's width (what Blender's Alembic writer multiplies them by, both axes),
    the clipping range and the transform in file units."""
    fb = cam.filmback
    M = np.array(cam.matrix, np.float64)
    M[:3, 3] *= scale
    return {"name": cam.name, "lens": fb.focal_mm, "sensor_width": fb.h_aperture_mm,
            "sensor_height": fb.v_aperture_mm, "shift_x": fb.h_offset_mm / fb.h_aperture_mm,
            "shift_y": fb.v_offset_mm / fb.h_aperture_mm,
            "clip_start": CLIP_M[0] * scale, "clip_end": CLIP_M[1] * scale, "matrix": M.tolist()}


def _write_alembic(scene: CameraScene, out: Path, scale: float) -> None:
    from assets.blender_worker import BlenderError, run_blender_tasks
    from assets.export.alembic import alembic_timeout_s

    arrays: dict[str, np.ndarray] = {}
    m = scene.mesh
    if m is not None:
        arrays = {"points": (m.points * scale).astype(np.float32), "faces": m.faces.astype(np.int64)}
        if m.uvs is not None and m.face_uvs is not None:
            arrays |= {"uvs": m.uvs.astype(np.float32), "face_uvs": m.face_uvs.astype(np.int64)}
    W, H = scene.cameras[0].size if scene.cameras else (1920, 1080)
    task = {"kind": "export_scene_alembic", "out": str(out), "mesh_name": m.name if m else None, "fps": scene.fps,
            "first_frame": scene.first_frame, "frames": scene.frames, "size": [W, H],
            "provenance": scene.provenance, "cameras": [blender_camera(c, scale) for c in scene.cameras]}
    try:
        run_blender_tasks([(task, arrays)], timeout=alembic_timeout_s(scene.frames, 0 if m is None
                                                                       else m.points.shape[1]))
    except BlenderError as e:
        raise ExportError(f"{out}: Blender could not write the Alembic file: {e}") from e


def _write_usd(scene: CameraScene, out: Path, units: str) -> None:
    """A USD layer: /scene (default prim) holding the cameras and the mesh (points time-sampled per frame)."""
    from pxr import Usd, UsdGeom

    scale = UNIT_SCALE[units]
    stage = Usd.Stage.CreateNew(str(out))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0 / scale)
    stage.SetTimeCodesPerSecond(scene.fps)
    stage.SetStartTimeCode(scene.first_frame)
    stage.SetEndTimeCode(scene.first_frame + scene.frames - 1)
    root = UsdGeom.Xform.Define(stage, "/scene")
    stage.SetDefaultPrim(root.GetPrim())
    stage.GetRootLayer().customLayerData = {"doppel": dict(scene.provenance)}
    for cam in scene.cameras:
        _usd_camera(stage, cam, scale)
    if scene.mesh is not None:
        _usd_mesh(stage, scene.mesh, scene.first_frame, scale)
    stage.GetRootLayer().Save()


def usd_name(name: str) -> str:
    from pxr import Tf

    return Tf.MakeValidIdentifier(name)


def _usd_camera(stage, cam: SceneCamera, scale: float) -> None:
    from pxr import Gf, UsdGeom

    fb = cam.filmback
    c = UsdGeom.Camera.Define(stage, f"/scene/{usd_name(cam.name)}")
    c.CreateFocalLengthAttr(fb.focal_mm)
    c.CreateHorizontalApertureAttr(fb.h_aperture_mm)
    c.CreateVerticalApertureAttr(fb.v_aperture_mm)
    c.CreateHorizontalApertureOffsetAttr(fb.h_offset_mm)
    c.CreateVerticalApertureOffsetAttr(fb.v_offset_mm)
    c.CreateClippingRangeAttr(Gf.Vec2f(CLIP_M[0] * scale, CLIP_M[1] * scale))
    if cam.shutter is not None:
        c.CreateShutterOpenAttr(float(cam.shutter[0]))
        c.CreateShutterCloseAttr(float(cam.shutter[1]))
    M = np.array(cam.matrix, np.float64)
    M[:3, 3] *= scale
    c.AddTransformOp().Set(Gf.Matrix4d(M.T.tolist()))           # USD's matrices act on row vectors
    c.GetPrim().SetCustomDataByKey("doppel:image_size", Gf.Vec2i(*cam.size))
    c.GetPrim().SetCustomDataByKey("doppel:name", cam.name)


def _usd_mesh(stage, m: PointsMesh, first_frame: int, scale: float) -> None:
    from pxr import Sdf, UsdGeom, Vt

    mesh = UsdGeom.Mesh.Define(stage, f"/scene/{usd_name(m.name)}")
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray([3] * len(m.faces)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray(m.faces.astype(np.int32).ravel().tolist()))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    points = mesh.CreatePointsAttr()
    for k in range(len(m.points)):
        points.Set(Vt.Vec3fArray.FromNumpy((m.points[k] * scale).astype(np.float32)), first_frame + k)
    if m.uvs is not None and m.face_uvs is not None:
        st = UsdGeom.PrimvarsAPI(mesh.GetPrim()).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray,
                                                               UsdGeom.Tokens.faceVarying)
        st.Set(Vt.Vec2fArray.FromNumpy(m.uvs[m.face_uvs.ravel()].astype(np.float32)))
