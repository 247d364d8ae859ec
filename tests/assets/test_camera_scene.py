"""DCC cameras (`assets.export.dcc_camera`, `camera_scene`, `rig_cameras`): a calibrated rig written as USD and
Alembic and read back by usd-core's camera and by Blender's importers and camera matrices; points seen through the
file's cameras must land where Doppel's cameras project them. Blender processes: 1 write + 2 reads + the CLI's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from assets.export.dcc_camera import camera_to_world, filmback, pixel_aspect_error, project_gl
from assets.export.rig_cameras import export_rig_cameras, rig_camera_scene
from capture.camera import Camera
from core.conventions import zup_to_doppel

POINTS = np.random.default_rng(0).uniform(-0.6, 0.6, (50, 3)) + np.array([0.0, 1.0, 0.0])


def rig() -> list[Camera]:
    """Three cameras around the actor: landscape, portrait, an off-centre principal point, one with distortion."""
    cams = [Camera.look_at((2.5, 1.6, 2.0), (0, 1.0, 0), width=640, height=480, focal=700.0, name="cam_a",
                           principal=(341.3, 228.9), dtype=torch.float64),
            Camera.look_at((-2.0, 1.2, 2.4), (0, 1.1, 0), width=480, height=720, focal=900.0, name="cam_b",
                           dtype=torch.float64),
            Camera.look_at((0.3, 2.2, -3.0), (0, 0.9, 0), width=800, height=450, focal=650.0, name="cam_c",
                           principal=(372.0, 241.5), dtype=torch.float64)]
    cams[2] = dataclasses.replace(cams[2], dist=torch.tensor([0.05, -0.01, 0, 0, 0], dtype=torch.float64))
    return cams


def doppel_pixels(cam: Camera) -> np.ndarray:
    undistorted = dataclasses.replace(cam, dist=None)               # a DCC camera sees the undistorted image
    uv, _ = undistorted.project(torch.from_numpy(POINTS))
    return uv.numpy()


def test_the_dcc_camera_is_the_calibrated_one():
    for cam in rig():
        K, R, t = (x.numpy() for x in (cam.K, cam.R, cam.t))
        M = camera_to_world(R, t)
        local = (POINTS - M[:3, 3]) @ M[:3, :3]                     # world -> the DCC camera's frame
        px = project_gl(local, filmback(K, (cam.width, cam.height)), (cam.width, cam.height))
        assert np.abs(px - doppel_pixels(cam)).max() < 1e-9, cam.name
    K = np.array([[700.0, 2.0, 320], [0, 690.0, 240], [0, 0, 1]])
    assert pixel_aspect_error(np.diag([700.0, 700.0, 1.0]) + np.array([[0, 0, 320], [0, 0, 240], [0, 0, 0]]),
                              (640, 480)) < 1e-9
    assert pixel_aspect_error(K, (640, 480)) > 3                     # fx != fy and a skew: said


def test_usd_cameras_read_back_by_usd(tmp_path):
    from pxr import Gf, Usd, UsdGeom

    cams = rig()
    notes = export_rig_cameras(cams, tmp_path / "rig.usda", units="cm", provenance={"calibration": "c.json"})
    assert len(notes) == 1 and "1 camera(s) with lens distortion (cam_c)" in notes[0]
    stage = Usd.Stage.Open(str(tmp_path / "rig.usda"))
    assert UsdGeom.GetStageMetersPerUnit(stage) == pytest.approx(0.01)
    for cam in cams:
        g = UsdGeom.Camera(stage.GetPrimAtPath(f"/scene/{cam.name}")).GetCamera(Usd.TimeCode.Default())
        view_proj = g.frustum.ComputeViewMatrix() * g.frustum.ComputeProjectionMatrix()
        ndc = np.array([view_proj.Transform(Gf.Vec3d(*(100.0 * p))) for p in POINTS])[:, :2]
        px = np.stack([(ndc[:, 0] + 1) / 2 * cam.width, (1 - ndc[:, 1]) / 2 * cam.height], 1)
        assert np.abs(px - doppel_pixels(cam)).max() < 1e-4, cam.name


@pytest.mark.parametrize("suffix", [".abc", ".usda"])
def test_cameras_read_back_by_blender(tmp_path, suffix):
    from assets.blender_worker import run_blender_tasks
    from assets.export_verify import read_export_provenance

    cams = rig()
    out = tmp_path / f"rig{suffix}"
    export_rig_cameras(cams, out, units="m", provenance={"calibration": "c.json"})
    tasks = [({"kind": "read_cameras", "path": str(out), "size": [c.width, c.height]}, {}) for c in cams]
    results = run_blender_tasks(tasks)
    zup = np.stack([POINTS[:, 0], -POINTS[:, 2], POINTS[:, 1]], 1)       # Doppel's Y-up -> Blender's Z-up
    assert np.allclose(zup_to_doppel(zup), POINTS)
    blender_world = np.c_[zup, np.ones(len(POINTS))]
    for cam, res in zip(cams, results, strict=True):
        assert sorted(res.info["cameras"]) == sorted(c.name for c in cams)
        P = res.arrays["projection"][res.info["cameras"].index(cam.name)]
        h = blender_world @ P.T
        ndc = h[:, :2] / h[:, 3:4]
        px = np.stack([(ndc[:, 0] + 1) / 2 * cam.width, (1 - ndc[:, 1]) / 2 * cam.height], 1)
        assert np.abs(px - doppel_pixels(cam)).max() < 1e-3, (suffix, cam.name)
    if suffix == ".abc":
        assert read_export_provenance(out) == {"calibration": "c.json"}


def test_capture_cameras_writes_dcc_cameras(tmp_path, capsys):
    from capture.calibration_io import write_doppel_json
    from tests.cli_runner import run_cli

    write_doppel_json(tmp_path / "calibration.json", rig())
    code, out, err = run_cli(capsys, "capture", "cameras", tmp_path / "calibration.json", "--out",
                             tmp_path / "rig.usdc", "--units", "cm")
    assert code == 0, err
    assert "wrote 3 cameras (Y-up, cm)" in out and "lens distortion (cam_c)" in out
    scene, _ = rig_camera_scene(rig())
    assert [c.name for c in scene.cameras] == ["cam_a", "cam_b", "cam_c"]
    code, _, err = run_cli(capsys, "capture", "cameras", tmp_path / "calibration.json", "--out", tmp_path / "r.fbx")
    assert code == 1 and "write a calibration as .json, or its cameras as .abc, .usd, .usda or .usdc" in err
    # written again over its own file: replaced; over a file Doppel did not write: refused unless --force (any file
    # of the name was replaced without a word)
    cams = ("capture", "cameras", tmp_path / "calibration.json", "--out")
    assert run_cli(capsys, *cams, tmp_path / "rig.usdc")[0] == 0
    (tmp_path / "layout.usda").write_text("#usda 1.0\n(doc = \"the layout artist's\")\n")
    code, _, err = run_cli(capsys, *cams, tmp_path / "layout.usda")
    assert code == 1 and "Doppel did not write it" in err and "layout artist" in (tmp_path / "layout.usda").read_text()
    assert run_cli(capsys, *cams, tmp_path / "layout.usda", "--force")[0] == 0
    (tmp_path / "vendor.json").write_text('{"cams": []}')
    code, _, err = run_cli(capsys, *cams, tmp_path / "vendor.json")
    assert code == 1 and "is not a Doppel calibration" in err
    assert (tmp_path / "vendor.json").read_text() == '{"cams": []}'
