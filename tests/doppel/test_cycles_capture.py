"""`capture synth --renderer cycles`: the same cameras, calibration and ground truth as the raster renderer,
an EXR (linear half float) beside every PNG, coverage where the raster renderer draws the actor, one-line errors.
Tiny renders: 64 px, 2 samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_runner import run_cli

SIZE = 64


@pytest.fixture(scope="module")
def actor():
    from doppel.virtual_actor import build_virtual_actor

    return build_virtual_actor(0, texture_size=256)


@pytest.fixture(scope="module")
def pair(actor, tmp_path_factory):
    """The same 2-camera, 2-frame capture through both renderers."""
    from doppel.cycles_capture import CyclesSettings
    from doppel.synthetic_capture import synthesize_capture

    root = tmp_path_factory.mktemp("pair")
    r = synthesize_capture(root / "raster", n_cameras=2, size=SIZE, actor=actor, frames=2)
    c = synthesize_capture(root / "cycles", n_cameras=2, size=SIZE, actor=actor, frames=2, renderer="cycles",
                           cycles=CyclesSettings(samples=2))
    return root / "raster", root / "cycles", r, c


def _files(d):
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


def test_same_calibration_and_ground_truth_files(pair):
    rd, cd, _, _ = pair
    for sub in ("ground_truth", "session"):
        r_files = [f for f in _files(rd / sub)]
        c_files = [f for f in _files(cd / sub) if not f.endswith(".exr")]
        assert r_files == c_files
    for f in _files(rd / "ground_truth") + ["calibration.json"]:
        base = rd / "ground_truth" if f != "calibration.json" else rd / "session"
        other = cd / base.relative_to(rd)
        assert (base / f).read_bytes() == (other / f).read_bytes(), f
    exrs = [f for f in _files(cd / "session") if f.endswith(".exr")]
    pngs = [f for f in _files(cd / "session") if f.endswith(".png")]
    assert len(exrs) == len(pngs) == 4 and [e[:-4] for e in exrs] == [p[:-4] for p in pngs]
    info = json.loads((cd / "render.json").read_text())
    assert info["renderer"] == "cycles" and info["settings"]["samples"] == 2 and len(info["view_seconds"]) == 4


def test_exr_is_half_float_linear_and_png_is_its_srgb(pair):
    import cv2
    import OpenEXR

    from doppel.cycles_capture import exr_to_srgb_png_pixels, read_exr_rgba
    from doppel.synthetic_capture import BACKGROUND_SRGB

    _, cd, _, _ = pair
    exr = cd / "session/images/000/ring00.exr"
    with OpenEXR.File(str(exr)) as f:
        types = {str(getattr(ch, "type", lambda: None)()) for ch in f.channels().values()}
        px = next(iter(f.channels().values())).pixels
    assert px.dtype == np.float16, types
    rgba = read_exr_rgba(exr)
    assert rgba.shape == (SIZE, SIZE, 4)
    a = rgba[..., 3]
    assert 0.02 < (a > 0.5).mean() < 0.6            # the actor covers part of the view
    assert np.all(rgba[a == 0, :3] == 0)            # premultiplied: nothing where nothing is covered
    png = cv2.cvtColor(cv2.imread(str(exr.with_suffix(".png"))), cv2.COLOR_BGR2RGB)
    assert np.array_equal(png, exr_to_srgb_png_pixels(rgba, BACKGROUND_SRGB))
    bg = png[a == 0]
    assert np.abs(bg.astype(float) / 255 - np.array(BACKGROUND_SRGB)).max() < 1.0 / 255   # the raster backdrop
    # linear, not display-encoded: a mid-grey sRGB pixel is ~0.2 linear, so the EXR's median lit value is darker
    lit = rgba[a > 0.99, :3]
    assert np.median(lit) < np.median(png[a > 0.99] / 255.0)


@pytest.mark.parametrize("cam_index", [0, 1])
def test_cycles_covers_the_pixels_the_raster_renderer_draws(pair, actor, cam_index):
    """The same camera model: the actor's coverage in Cycles (EXR alpha) and the raster renderer's alpha (4x
    supersampled) agree to a boundary pixel (IoU) and their alpha-weighted centroids to a fraction of a pixel."""
    import torch

    from capture.npcam import as_np
    from capture.session import load_session
    from doppel.cycles_capture import read_exr_rgba
    from neural_render import render_mesh

    _, cd, _, c = pair
    cam = as_np(load_session(c.session_dir).cameras[cam_index])
    with torch.no_grad():
        ra = render_mesh(torch.tensor(actor.vertices), torch.tensor(actor.faces), cam.to_camera(dtype=torch.float32),
                         supersample=4)[0, ..., 3].numpy()
    ca = read_exr_rgba(cd / f"session/images/000/{cam.name}.exr")[..., 3]
    iou = ((ra > 0.5) & (ca > 0.5)).sum() / ((ra > 0.5) | (ca > 0.5)).sum()
    assert iou > 0.85, iou   # 2 samples: Cycles' coverage is quantised at the thin limbs of a 64 px figure
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    c_r = np.array([(ra * ys).sum(), (ra * xs).sum()]) / ra.sum()
    c_c = np.array([(ca * ys).sum(), (ca * xs).sum()]) / ca.sum()
    assert np.linalg.norm(c_r - c_c) < 0.25, (c_r, c_c)
    assert abs(ra.sum() / ca.sum() - 1) < 0.05


def test_camera_conversion_matches_opencv_projection():
    """blender_camera_params: a point projected with Blender's camera model (shift, lens, sensor fit) lands where
    OpenCV's pinhole puts it, for a non-square image and an off-centre principal point."""
    from assets.cycles_scene import blender_camera_params

    W, H = 320, 180
    K = np.array([[400.0, 0, 170.0], [0, 400.0, 80.0], [0, 0, 1]])
    ang = 0.3
    R = np.array([[np.cos(ang), 0, -np.sin(ang)], [0, 1, 0], [np.sin(ang), 0, np.cos(ang)]])
    t = np.array([0.1, -0.2, 3.0])
    p = blender_camera_params(K, R, t, W, H)
    X = np.array([[0.3, 0.2, 0.1], [-0.5, 0.4, -0.2]])
    uv_cv = (K @ (R @ X.T + t[:, None])).T
    uv_cv = uv_cv[:, :2] / uv_cv[:, 2:]
    M = np.linalg.inv(p["matrix_world"])
    Xc = (M[:3, :3] @ X.T + M[:3, 3:4]).T                 # Blender camera frame: looks down -z, y up
    f_px = p["lens"] / p["sensor_width"] * W              # horizontal fit
    side = max(W, H)
    u = W / 2 + f_px * Xc[:, 0] / -Xc[:, 2] - p["shift_x"] * side
    v = H / 2 - f_px * Xc[:, 1] / -Xc[:, 2] + p["shift_y"] * side
    assert np.abs(np.stack([u, v], -1) - uv_cv).max() < 1e-9
    with pytest.raises(ValueError, match="square pixels"):
        blender_camera_params(np.diag([400.0, 420.0, 1.0]), R, t, W, H)


def test_pose_actor_reproduces_the_built_actor(actor):
    from doppel.synthetic_motion import pose_actor

    again = pose_actor(actor, world_pose=actor.pose)
    assert np.abs(again.vertices - actor.vertices).max() < 1e-6
    moved = pose_actor(actor, world_pose={**actor.pose, "neck02": [0.0, 0.8, 0.0]})
    assert np.abs(moved.vertices - actor.vertices).max() > 0.02


def test_material_classes_cover_skin_lips_eyes_cloth_hair(actor):
    from doppel.cycles_capture import MATERIAL_INDEX, material_classes

    m = material_classes(actor)
    counts = np.bincount(m, minlength=len(MATERIAL_INDEX))
    assert counts.sum() == len(actor.faces)
    assert all(counts[MATERIAL_INDEX[k]] > 20 for k in ("skin", "lips", "eyes", "cloth", "hair", "mouth")), counts
    assert counts[MATERIAL_INDEX["skin"]] > counts[MATERIAL_INDEX["cloth"]] > counts[MATERIAL_INDEX["lips"]]


@pytest.mark.parametrize("args,needle", [
    (["--renderer", "vray"], "--renderer must be one of"),
    (["--renderer", "cycles", "--samples", "0"], "--samples must be >= 1"),
    (["--frames", "0"], "--frames must be >= 1"),
    (["--size", "8193"], "--size must be <= 8192"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "capture", "synth", "--out", out, "--cameras", 2, "--size", SIZE, *args)
    assert code != 0 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_unreadable_clip_is_one_line(tmp_path, capsys):
    bad = tmp_path / "animation.npz"
    bad.write_bytes(b"not a zip")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "capture", "synth", "--out", out, "--cameras", 2, "--size", SIZE, "--anim", bad)
    assert code != 0 and str(bad) in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_blender_crash_is_one_line_and_leaves_no_folder(tmp_path, capsys, monkeypatch):
    import tempfile

    monkeypatch.setenv("DOPPEL_TEST_CYCLES_CRASH", "1")
    system_tmp = tmp_path / "system_tmp"          # where the process's (and the worker's) temporary files go
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "capture", "synth", "--out", out, "--cameras", 2, "--size", SIZE,
                           "--renderer", "cycles", "--samples", "1")
    assert code != 0 and "Blender worker crashed" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not any(tmp_path.glob(".out*"))
    assert list(system_tmp.rglob("*blender_*")) == []   # Blender's session folder went with the worker


def test_anim_clip_drives_the_take(actor, tmp_path):
    """A clip on the virtual actor's skeleton (animation.npz) poses each frame: frame 1 turns the head, the
    feet stay; the ground truth of each frame is the clip's pose."""
    import roma
    import torch
    import trimesh

    from doppel.synthetic_capture import synthesize_capture
    from doppel.synthetic_motion import load_clip
    from doppel.virtual_actor import body_model
    from rigging.animation import Animation

    names = list(body_model().skeleton.joint_names)
    R = np.repeat(np.eye(3)[None, None], 3, axis=0).repeat(len(names), axis=1)
    R[1:, names.index("neck02")] = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.9, 0.0], dtype=torch.float64)).numpy()
    Animation(names, R, np.zeros((3, 3)), 30.0).save(tmp_path / "clip")
    clip = load_clip(tmp_path / "clip", 2)
    assert len(clip) == 2
    synthesize_capture(tmp_path / "out", n_cameras=2, size=SIZE, actor=actor, frames=2, clip=clip)
    v0, v1 = (trimesh.load(tmp_path / f"out/ground_truth/frames/00{f}/mesh.ply", process=False).vertices
              for f in (0, 1))
    head = actor.rest_vertices[:, 1] > actor.rest_vertices[:, 1].max() - 0.1
    feet = actor.rest_vertices[:, 1] < 0.05
    assert np.linalg.norm(v1 - v0, axis=1)[head].mean() > 0.03
    assert np.linalg.norm(v1 - v0, axis=1)[feet].max() < 1e-5
    with pytest.raises(ValueError, match="none of its"):
        Animation(["not_a_bone"], R[:, :1], np.zeros((3, 3)), 30.0).save(tmp_path / "other")
        load_clip(tmp_path / "other", 2)


def test_demo_shows_a_cycles_view_beside_the_raster_view(pair, actor, tmp_path):
    import types

    import cv2

    from doppel.pipeline.demo_capture import _cycles_beside_raster

    _, _, r, _ = pair
    ctx = types.SimpleNamespace(out=tmp_path, quick=True, seed=0, state={"actor": actor})
    (tmp_path / "capture").mkdir()
    r0 = types.SimpleNamespace(**{**r.__dict__, "session_dir": tmp_path / "session"})
    (r0.session_dir / "images").mkdir(parents=True)
    for p in (r.session_dir / "images" / "000").glob("*.png"):   # the demo's capture: images/CAMERA.png
        (r0.session_dir / "images" / p.name).write_bytes(p.read_bytes())
    image, line = _cycles_beside_raster(ctx, r0, SIZE)
    assert image is not None and "16 samples" in line, line
    both = cv2.imread(str(tmp_path / image[0]))
    assert both.shape == (SIZE, 2 * SIZE, 3)
    left, right = both[:, :SIZE].astype(float), both[:, SIZE:].astype(float)
    assert 2 < np.abs(left - right).mean() < 60         # the same view, rendered differently


def test_cycles_motion_blur_of_the_mesh_and_of_the_camera_then_sharp_again(actor, tmp_path):
    """Frames with a ShutterMotion in one worker: the mesh sliding sideways (camera still), then the camera
    sliding (mesh still): each frame's coverage is the rasterizer's averaged over the shutter's times (linear
    motion between the keys), far from the sharp coverage; a frame without motion after them is sharp again
    (the shape keys and the camera's keys are cleared), as the first one."""
    import torch

    from capture.npcam import PinholeNP
    from doppel.cycles_capture import (
        CyclesSettings,
        ShutterMotion,
        prepare_actor,
        read_exr_rgba,
        render_frames_cycles,
        shutter_times,
    )
    from neural_render import render_mesh

    K = np.array([[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]])
    centre = actor.vertices.mean(0)

    def cam_at(dx):
        eye = centre + np.array([dx, 0.0, 3.0])
        return PinholeNP.look_at("cam", eye, eye - np.array([0, 0, 1.0]), K, SIZE, SIZE)

    def coverage(verts, cam):
        with torch.no_grad():
            return render_mesh(torch.as_tensor(verts, dtype=torch.float32), torch.as_tensor(actor.faces),
                               cam.to_camera(dtype=torch.float32), supersample=4)[0, ..., 3].numpy()

    times = shutter_times(0.5, 4)
    slide = 0.4 * times[:, None]                                    # metres along x: 0.2 m over the shutter
    moved = np.stack([actor.vertices + np.array([s[0], 0, 0], np.float32) for s in slide]).astype(np.float32)
    cams = [cam_at(s[0]) for s in slide]
    outs = [tmp_path / f"{k}.exr" for k in range(4)]
    frames = [(actor.vertices, [(cam_at(0), outs[0])]),
              (actor.vertices, [(cam_at(0), outs[1])], ShutterMotion(0.5, times, moved, [[cam_at(0)] * 5])),
              (actor.vertices, [(cam_at(0), outs[2])], ShutterMotion(0.5, times, np.stack([actor.vertices] * 5),
                                                                   [cams])),
              (actor.vertices, [(cam_at(0), outs[3])])]
    render_frames_cycles(prepare_actor(actor, tmp_path), frames, CyclesSettings(samples=16, denoise=False))
    alpha = [read_exr_rgba(o)[..., 3] for o in outs]
    sharp = coverage(actor.vertices, cam_at(0))
    fine = np.linspace(-0.25, 0.25, 33)
    want_mesh = np.mean([coverage(actor.vertices + np.array([0.4 * t, 0, 0], np.float32), cam_at(0))
                         for t in fine], 0)
    want_cam = np.mean([coverage(actor.vertices, cam_at(0.4 * t)) for t in fine], 0)
    for got, want in ((alpha[1], want_mesh), (alpha[2], want_cam)):
        band = np.abs(want - sharp) > 0.1
        assert band.sum() > 50
        e_blur, e_sharp = np.abs(got - want)[band].mean(), np.abs(got - sharp)[band].mean()
        assert e_blur < 0.35 * e_sharp, (e_blur, e_sharp)
    for k in (0, 3):
        assert np.abs(alpha[k] - sharp).mean() < 0.02, (k, np.abs(alpha[k] - sharp).mean())
