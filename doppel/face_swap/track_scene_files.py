"""Writing a `TrackScene` (a swap's plate camera and the double's tracked head) as Alembic or USD
(`assets.export.camera_scene`); see `doppel.face_swap.track_scene` for what the files hold and their conventions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from doppel.face_swap.track_scene import TrackScene


def write_track_scene(scene: TrackScene, out: str | Path, units: str = "m", provenance: dict[str, Any] | None = None,
                      name: str = "double_head") -> Path:
    """Write ``scene`` to ``out`` (.abc, or .usd / .usda / .usdc) in ``units`` ("m" or "cm"); atomic. The camera is
    "plate_camera" at the origin, the head mesh ``name``; the provenance (strings) goes into the file with the frames
    no face was tracked in (``untracked_frames``). Returns the path."""
    from assets.export.camera_scene import CameraScene, PointsMesh, SceneCamera, write_camera_scene
    from assets.export.dcc_camera import filmback

    prov = {k: str(v) for k, v in (provenance or {}).items()}
    prov["untracked_frames"] = ",".join(map(str, scene.untracked_frames))
    half = scene.shutter_deg / 720.0                  # frames either side of the frame (a centred shutter)
    camera = SceneCamera("plate_camera", np.eye(4), filmback(scene.K, scene.size), scene.size,
                         (-half, half) if half > 0 else None)
    mesh = PointsMesh(name, scene.points, scene.faces, scene.uvs, scene.face_uvs)
    return write_camera_scene(CameraScene([camera], mesh, scene.fps, scene.first_frame, prov), out, units)


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
