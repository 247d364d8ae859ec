"""Writing a `TrackScene` (a swap's camera and the double's tracked head) as Alembic, through Blender's own
Alembic writer in a worker process, or as USD (usd-core): see `doppel.face_swap.track_scene` for what the files
hold and their conventions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from assets.export.common import UNIT_SCALE, check_output_path, staged_output
from doppel.face_swap.track_scene import TRACK_FORMATS, Filmback, TrackScene, filmback

CLIP_M = (0.01, 1000.0)           # the camera's clipping range, metres


def write_track_scene(scene: TrackScene, out: str | Path, units: str = "m", provenance: dict[str, Any] | None = None,
                      name: str = "double_head") -> Path:
    """Write ``scene`` to ``out`` (.abc, or .usd / .usda / .usdc) in ``units`` ("m" or "cm"); atomic. The
    provenance (strings) goes into the file: the mesh's user properties (Alembic), the layer's customLayerData
    (USD), with the frames no face was tracked in. Returns the path."""
    out = check_output_path(out, tuple(TRACK_FORMATS))
    if units not in UNIT_SCALE:
        raise ValueError(f"--units must be cm or m, got {units!r}")
    prov = {k: str(v) for k, v in (provenance or {}).items()}
    prov["untracked_frames"] = ",".join(map(str, scene.untracked_frames))
    with staged_output(out) as staged:
        if TRACK_FORMATS[out.suffix.lower()] == "abc":
            _write_alembic(scene, staged, UNIT_SCALE[units], prov, name)
        else:
            staged.unlink()
            _write_usd(scene, staged, units, prov, name)
    return out


def blender_camera(fb: Filmback, scale: float) -> dict[str, float]:
    """The Blender camera of ``fb``: lens and sensor in mm, shifts in fractions of the larger sensor side, the
    clipping range in file units."""
    side = max(fb.h_aperture_mm, fb.v_aperture_mm)
    return {"lens": fb.focal_mm, "sensor_width": fb.h_aperture_mm, "sensor_height": fb.v_aperture_mm,
            "shift_x": fb.h_offset_mm / side, "shift_y": fb.v_offset_mm / side,
            "clip_start": CLIP_M[0] * scale, "clip_end": CLIP_M[1] * scale, "name": "plate_camera"}


def _write_alembic(scene: TrackScene, out: Path, scale: float, prov: dict[str, str], name: str) -> None:
    from assets.blender_worker import BlenderError, run_blender_tasks
    from assets.export.alembic import alembic_timeout_s
    from assets.export.common import ExportError

    arrays = {"points": (scene.points * scale).astype(np.float32), "faces": scene.faces.astype(np.int64)}
    if scene.uvs is not None and scene.face_uvs is not None:
        arrays |= {"uvs": scene.uvs.astype(np.float32), "face_uvs": scene.face_uvs.astype(np.int64)}
    task = {"kind": "export_points_alembic", "out": str(out), "name": name, "fps": scene.fps,
            "first_frame": scene.first_frame, "size": list(scene.size), "provenance": prov,
            "camera": blender_camera(filmback(scene.K, scene.size), scale)}
    try:
        run_blender_tasks([(task, arrays)], timeout=alembic_timeout_s(*scene.points.shape[:2]))
    except BlenderError as e:
        raise ExportError(f"{out}: Blender could not write the Alembic file: {e}") from e


def _write_usd(scene: TrackScene, out: Path, units: str, prov: dict[str, str], name: str) -> None:
    """A USD layer: /track (default prim) with the camera and the head mesh (points time-sampled per frame)."""
    from pxr import Gf, Sdf, Usd, UsdGeom, Vt

    scale = UNIT_SCALE[units]
    stage = Usd.Stage.CreateNew(str(out))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0 / scale)
    F = len(scene.points)
    stage.SetTimeCodesPerSecond(scene.fps)
    stage.SetStartTimeCode(scene.first_frame)
    stage.SetEndTimeCode(scene.first_frame + F - 1)
    root = UsdGeom.Xform.Define(stage, "/track")
    stage.SetDefaultPrim(root.GetPrim())
    stage.GetRootLayer().customLayerData = {"doppel": prov}
    stage.GetRootLayer().documentation = "Doppel face track: the plate camera, the double's head where the swap put it"
    fb = filmback(scene.K, scene.size)
    cam = UsdGeom.Camera.Define(stage, "/track/plate_camera")
    cam.CreateFocalLengthAttr(fb.focal_mm)
    cam.CreateHorizontalApertureAttr(fb.h_aperture_mm)
    cam.CreateVerticalApertureAttr(fb.v_aperture_mm)
    cam.CreateHorizontalApertureOffsetAttr(fb.h_offset_mm)
    cam.CreateVerticalApertureOffsetAttr(fb.v_offset_mm)
    cam.CreateClippingRangeAttr(Gf.Vec2f(CLIP_M[0] * scale, CLIP_M[1] * scale))
    mesh = UsdGeom.Mesh.Define(stage, f"/track/{name}")
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray([3] * len(scene.faces)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray(scene.faces.astype(np.int32).ravel().tolist()))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    points = mesh.CreatePointsAttr()
    for k in range(F):
        points.Set(Vt.Vec3fArray.FromNumpy((scene.points[k] * scale).astype(np.float32)), scene.first_frame + k)
    if scene.uvs is not None and scene.face_uvs is not None:
        st = UsdGeom.PrimvarsAPI(mesh.GetPrim()).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray,
                                                               UsdGeom.Tokens.faceVarying)
        st.Set(Vt.Vec2fArray.FromNumpy(scene.uvs[scene.face_uvs.ravel()].astype(np.float32)))
    stage.GetRootLayer().Save()


def export_track(rig_dir: str | Path, track: str | Path, out: str | Path, work_dir: Path, units: str = "m",
                 first_frame: int | None = None, provenance: dict[str, Any] | None = None) -> TrackScene:
    """Write the face track ``track`` (a swap folder or its tracks.npz) on the double of ``rig_dir`` (the rig the
    swap used: for a neural double, the rig built from the same fit) to ``out`` (.abc / .usd / .usda / .usdc);
    ``work_dir``: scratch space. Returns the scene written (frames, untracked frames)."""
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.track_scene import read_tracks, track_scene

    check_track_double(rig_dir)
    data = read_tracks(track)
    double = load_face_double(rig_dir, work_dir, albedo_size=64)       # the geometry; its texture is not written
    scene = track_scene(data, double, str(track), first_frame)
    write_track_scene(scene, out, units, provenance, name="double_head")
    return scene


def check_track_double(rig_dir: str | Path) -> None:
    """ValueError (one line) when ``rig_dir`` is a neural double's model folder instead of a rig."""
    from doppel.face_swap.neural_head import is_model_dir

    if is_model_dir(rig_dir):
        raise ValueError(f"{rig_dir} is a neural double's model folder: give the rig built from the same fit (the "
                         "swap's --rig), whose head the track moves")
