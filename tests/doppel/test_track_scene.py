"""A swap's face track as a scene (`doppel.face_swap.track_scene`): the plate camera and the double's head, written
as USD and Alembic and read back by usd-core's camera and by Blender's Alembic reader and camera matrices; the head
must project where the swap draws it (`render_head.project`) at every frame. Blender processes: 1 write + 1 read."""

from __future__ import annotations

import numpy as np
import pytest

from assets.export.dcc_camera import filmback, project_gl
from doppel.face_swap.render_head import project
from doppel.face_swap.track_scene import TrackSceneError, read_tracks, track_scene
from doppel.face_swap.track_scene_files import write_track_scene

W, H, F = 640, 360, 6


def fake_tracks(double, path, cx=W / 2 + 37.0, cy=H / 2 - 21.0):
    """A face track of F frames of the double: turning and nodding, moving, talking; an off-centre principal point;
    plate frames 10..15, frame 12 without a face."""
    import roma
    import torch

    k = np.arange(F)
    rotvec = np.stack([0.1 * np.sin(k), 0.4 * np.cos(0.7 * k) + np.pi, 0.05 * k], 1)
    R = roma.rotvec_to_rotmat(torch.from_numpy(rotvec)).numpy()
    t = np.stack([0.02 * k - 0.05, -0.01 * k, 0.9 + 0.03 * k], 1)
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 0.6, (F, len(double.basis.names)))
    K = np.array([[900.0, 0, cx], [0, 900.0, cy], [0, 0, 1]])
    valid = np.ones(F, bool)
    valid[2] = False
    np.savez(path, rotation=R, translation=t, expression=w, expression_names=np.array(double.basis.names),
             valid=valid, K=K, size=np.array([W, H]), fps=np.float64(24.0), frame=np.arange(10, 10 + F))
    return R, t, w, K


def swap_pixels(double, R, t, w, K):
    return np.stack([project(double.head_mesh(w[f]), R[f], t[f], K) for f in range(F)])


def test_the_scene_projects_where_the_swap_draws(double, tmp_path):
    R, t, w, K = fake_tracks(double, tmp_path / "tracks.npz")
    scene = track_scene(read_tracks(tmp_path), double)
    want = swap_pixels(double, R, t, w, K)
    got = project_gl(scene.points, filmback(scene.K, scene.size), scene.size)
    assert np.abs(got - want).max() < 1e-6
    assert scene.first_frame == 11 and scene.untracked_frames == [13]
    assert np.abs(want - want.mean()).max() > 50                   # the head moves and spans the frame


def test_usd_camera_and_head_read_back_by_usd(double, tmp_path):
    from pxr import Gf, Usd, UsdGeom

    R, t, w, K = fake_tracks(double, tmp_path / "tracks.npz")
    scene = track_scene(read_tracks(tmp_path / "tracks.npz"), double)
    out = write_track_scene(scene, tmp_path / "track.usda", units="cm", provenance={"actor_id": "a-1"})
    stage = Usd.Stage.Open(str(out))
    assert UsdGeom.GetStageMetersPerUnit(stage) == pytest.approx(0.01) and UsdGeom.GetStageUpAxis(stage) == "Y"
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode(), stage.GetTimeCodesPerSecond()) == (11, 16, 24)
    assert stage.GetRootLayer().customLayerData["doppel"] == {"actor_id": "a-1", "untracked_frames": "13"}
    cam = UsdGeom.Camera(stage.GetPrimAtPath("/scene/plate_camera")).GetCamera(11)
    proj = cam.frustum.ComputeProjectionMatrix()
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/scene/double_head"))
    want = swap_pixels(double, R, t, w, K)
    for f in range(F):
        pts = np.array(mesh.GetPointsAttr().Get(11 + f), np.float64)
        ndc = np.array([proj.Transform(Gf.Vec3d(*p)) for p in pts])[:, :2]      # USD's own projection
        px = np.stack([(ndc[:, 0] + 1) / 2 * W, (1 - ndc[:, 1]) / 2 * H], 1)
        assert np.abs(px - want[f]).max() < 0.01, f
    usd_cam = UsdGeom.Camera(stage.GetPrimAtPath("/scene/plate_camera"))
    assert not usd_cam.GetShutterOpenAttr().HasAuthoredValue()          # a sharp swap: no shutter written
    data = dict(np.load(tmp_path / "tracks.npz"))
    np.savez(tmp_path / "blurred.npz", **data, shutter_deg=np.float64(180.0))   # `doppel swap --shutter 180`
    scene = track_scene(read_tracks(tmp_path / "blurred.npz"), double)
    stage = Usd.Stage.Open(str(write_track_scene(scene, tmp_path / "blurred.usda")))
    usd_cam = UsdGeom.Camera(stage.GetPrimAtPath("/scene/plate_camera"))
    assert (usd_cam.GetShutterOpenAttr().Get(), usd_cam.GetShutterCloseAttr().Get()) == (-0.25, 0.25)


def test_alembic_camera_and_head_read_back_by_blender(double, tmp_path):
    from assets.blender_worker import run_blender_tasks
    from assets.export.fbx import evaluation_task
    from assets.export_verify import read_export_provenance

    R, t, w, K = fake_tracks(double, tmp_path / "tracks.npz", cx=W / 2 - 55.0, cy=H / 2 + 30.0)
    scene = track_scene(read_tracks(tmp_path / "tracks.npz"), double)
    out = write_track_scene(scene, tmp_path / "track.abc", units="cm", provenance={"actor_id": "a-1"})
    task, arrays = evaluation_task(out, list(range(F)), 24.0, scale=0.01)
    task["camera_size"] = [W, H]
    (res,) = run_blender_tasks([(task, arrays)])
    assert res.info["action_start"] == 11                    # the plate's frame 10 is frame 11 in the file
    want = swap_pixels(double, R, t, w, K)
    assert res.arrays["pixels"].shape == want.shape
    assert np.abs(res.arrays["pixels"] - want).max() < 0.01   # Blender's camera on the file's camera and points
    assert read_export_provenance(out) == {"actor_id": "a-1", "untracked_frames": "13"}


def test_a_track_of_another_double_or_a_broken_one_is_refused(double, tmp_path):
    fake_tracks(double, tmp_path / "tracks.npz")
    data = dict(np.load(tmp_path / "tracks.npz"))
    data["expression_names"] = np.array([f"shape{i}" for i in range(len(double.basis.names))])
    np.savez(tmp_path / "other.npz", **data)
    with pytest.raises(TrackSceneError, match="solved on another double"):
        track_scene(read_tracks(tmp_path / "other.npz"), double, "other.npz")
    data["translation"] = data["translation"].copy()
    data["translation"][3, 2] = np.nan                       # a frame whose pose is not a number
    np.savez(tmp_path / "nan.npz", **data)
    with pytest.raises(TrackSceneError, match=r"nan\.npz: its head poses, expressions or camera are not finite"):
        read_tracks(tmp_path / "nan.npz")
    del data["K"]
    np.savez(tmp_path / "old.npz", **data)
    with pytest.raises(TrackSceneError, match=r"not a swap's face track \(K missing\)"):
        read_tracks(tmp_path / "old.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TrackSceneError, match="not a readable face track"):
        read_tracks(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="no tracks.npz"):
        read_tracks(tmp_path / "nowhere")


def test_export_track_command(double, rig_dir, tmp_path, capsys):
    from pxr import Usd

    from assets.export_verify import read_export_provenance
    from tests.cli_runner import run_cli

    (tmp_path / "swap").mkdir()
    fake_tracks(double, tmp_path / "swap" / "tracks.npz")
    code, out, err = run_cli(capsys, "export", rig_dir, "--track", tmp_path / "swap", "--out",
                             tmp_path / "head.usda", "--first-frame", 1001, "--preset", "maya")
    assert code == 0, err
    assert "face track (usda, Y-up, cm): plate camera and the double's head, frames 1001-1006 at 24 fps" in out
    assert "no face tracked at 1 frame(s)" in out
    stage = Usd.Stage.Open(str(tmp_path / "head.usda"))
    assert stage.GetStartTimeCode() == 1001
    prov = read_export_provenance(tmp_path / "head.usda")
    assert prov["untracked_frames"] == "1003" and prov["animation"].endswith("swap")
    for args, why in (((("--anim", tmp_path / "swap")), "--anim and --track are two different exports"),
                      (("--up", "z"), "a face track is written Y-up"),
                      (("--units", "mm"), "--units must be cm or m, got 'mm'"),
                      ((), "expected a file ending in .abc or .usd or .usda or .usdc")):
        outfile = tmp_path / ("head.fbx" if not args else "head2.abc")
        code, _, err = run_cli(capsys, "export", rig_dir, "--track", tmp_path / "swap", "--out", outfile, *args)
        assert code == 1 and why in err, err
        assert not outfile.exists()
    code, _, err = run_cli(capsys, "export", rig_dir, "--out", tmp_path / "x.abc", "--first-frame", 1001)
    assert code == 1 and "--first-frame is for --track" in err
    code, _, err = run_cli(capsys, "export", rig_dir, "--track", tmp_path / "swap", "--out", tmp_path / "x.abc",
                           "--format", "fbx")
    assert code == 1 and "--format fbx with --track" in err
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "model" / "model.safetensors").write_bytes(b"")
    code, _, err = run_cli(capsys, "export", tmp_path / "model", "--track", tmp_path / "swap", "--out",
                           tmp_path / "x.abc")
    assert code == 1 and "is a neural double's model folder: give the rig built from the same fit" in err, err
