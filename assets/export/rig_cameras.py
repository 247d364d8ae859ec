"""A capture rig's calibrated cameras (`capture.Camera`s) as DCC cameras in an Alembic or USD file
(`assets.export.camera_scene`), for layout, matchmove and look-dev: each camera where the calibration put it in
Doppel's world (metres, +Y up), its K as a focal length, filmback and film offset (`assets.export.dcc_camera`).

What a DCC camera cannot hold is said, not dropped silently: lens distortion (the DCC camera sees the undistorted
photo: undistort the plates, e.g. with OpenCV or an ST-map, before lining them up) and non-square pixels or skew
(`pixel_aspect_error`, px at the image corners).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assets.export.camera_scene import CameraScene, SceneCamera, write_camera_scene
from assets.export.dcc_camera import camera_to_world, filmback, pixel_aspect_error

ASPECT_TOL_PX = 0.5          # corners further than this from the DCC camera's: said in the notes


def distorted_lens(cam) -> bool:
    """Whether the single `capture.Camera` ``cam`` has any lens distortion."""
    return cam.dist is not None and float(np.abs(cam.dist.detach().cpu().numpy()).max()) > 0


def rig_camera_scene(cameras, provenance: dict[str, str] | None = None) -> tuple[CameraScene, list[str]]:
    """(the scene of ``cameras`` (an iterable of single `capture.Camera`s), notes on what the files cannot hold)."""
    out, notes, distorted = [], [], []
    for cam in cameras:
        K, R, t = (np.asarray(x.detach().cpu().numpy(), np.float64) for x in (cam.K, cam.R, cam.t))
        size = (int(cam.width), int(cam.height))
        out.append(SceneCamera(str(cam.name), camera_to_world(R, t), filmback(K, size), size))
        if distorted_lens(cam):
            distorted.append(str(cam.name))
        err = pixel_aspect_error(K, size)
        if err > ASPECT_TOL_PX:
            notes.append(f"{cam.name}: fx and fy differ (or K has a skew): its DCC camera puts the image's corners "
                         f"up to {err:.1f} px from where the calibration does")
    if distorted:
        notes.insert(0, f"{len(distorted)} camera(s) with lens distortion ({', '.join(distorted[:4])}"
                        f"{', ...' if len(distorted) > 4 else ''}): a DCC camera has none, so it matches the "
                        "undistorted photos")
    return CameraScene(out, None, provenance=dict(provenance or {})), notes


def export_rig_cameras(cameras, out: str | Path, units: str = "m",
                       provenance: dict[str, str] | None = None) -> list[str]:
    """Write ``cameras`` to ``out`` (.abc, .usd, .usda, .usdc); returns the notes of `rig_camera_scene`."""
    scene, notes = rig_camera_scene(cameras, provenance)
    write_camera_scene(scene, out, units)
    return notes


def write_st_maps(cameras, folder: str | Path, only_distorted: bool = True) -> list[Path]:
    """Each camera's undistort and redistort ST-maps (`capture.st_maps`) as float32 OpenEXR (RGB: s, t, 0) in
    ``folder``: CAMERA_undistort.exr, CAMERA_redistort.exr; cameras without distortion are left out unless
    ``only_distorted`` is False. Returns the files written."""
    from capture.st_maps import redistort_stmap, undistort_stmap
    from neural_render.image_io import write_exr

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for cam in cameras:
        if only_distorted and not distorted_lens(cam):
            continue
        for kind, st in (("undistort", undistort_stmap(cam)), ("redistort", redistort_stmap(cam))):
            rgb = np.concatenate([st, np.zeros(st.shape[:2] + (1,), np.float32)], -1)
            written.append(write_exr(folder / f"{cam.name}_{kind}.exr", rgb, half=False))
    return written
