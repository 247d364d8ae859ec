"""A swap through a calibrated plate lens (`doppel swap --plate-camera`): the lens's points against OpenCV's own
projection, the double's head drawn through it against the shot renderer's lens warp (`neural_render.lens`), the
calibration read, scaled to a proxy and refused where it cannot serve."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cli_runner import run_cli

W, H = 320, 180


def _lens(k1=-0.2, k2=0.04, p=(0.001, -0.0015), f=200.0, width=W, height=H):
    from doppel.face_swap.plate_lens import PlateLens

    K = np.array([[f, 0, width / 2 + 3.5], [0, f * 1.01, height / 2 - 2.0], [0, 0, 1]])
    return PlateLens(K, [k1, k2, *p, 0.0], width, height, "film")


def test_points_go_through_the_lens_as_opencv_projects_them_and_back():
    import cv2

    lens = _lens()
    rng = np.random.default_rng(0)
    rays = np.concatenate([rng.uniform(-0.7, 0.7, (200, 2)), np.ones((200, 1))], 1)
    ideal = rays @ lens.K.T
    ideal = ideal[:, :2] / ideal[:, 2:]
    want = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), lens.K, lens.dist)[0][:, 0]
    inside = (want >= 0).all(1) & (want[:, 0] <= W) & (want[:, 1] <= H)
    got = lens.distort(ideal)
    assert inside.sum() > 50 and np.abs(got[inside] - want[inside]).max() < 1e-9
    assert np.abs(lens.undistort(got[inside]) - ideal[inside]).max() < 1e-6
    assert np.abs(got - ideal).max() > 5                     # a real lens: points move
    pts = np.array([[np.nan, np.nan], [10.0, 20.0]])
    assert np.isnan(lens.distort(pts)[0]).all() and np.isnan(lens.undistort(pts)[0]).all()
    # far outside the frame the polynomial folds back towards the centre: carried on outwards instead
    far = lens.K[:2, 2] + np.array([[1.0, 0.6]]) * np.linspace(1, 12, 12)[:, None] * 300
    r = np.linalg.norm(lens.distort(far) - lens.K[:2, 2], axis=1)
    assert (np.diff(r) > 0).all() and r[-1] > 5 * W


def test_without_distortion_the_lens_is_the_identity():
    from doppel.face_swap.plate_lens import PlateLens

    lens = PlateLens(np.array([[300.0, 0, 150], [0, 300, 90], [0, 0, 1]]), np.zeros(5), 300, 180)
    pts = np.array([[3.0, 4.0], [250.5, 170.25]])
    assert not lens.distorted and (lens.distort(pts) == pts).all() and (lens.undistort(pts) == pts).all()


def test_a_proxy_of_the_calibrated_frames_scales_the_lens_and_another_aspect_is_refused():
    lens = _lens()
    assert lens.fitted(W, H) is lens
    half = lens.fitted(W // 2, H // 2)
    assert np.allclose(half.K[:2], lens.K[:2] / 2) and (half.dist == lens.dist).all()
    p = np.array([[40.0, 30.0], [300.0, 160.0]])
    assert np.abs(half.distort(p / 2) - lens.distort(p) / 2).max() < 1e-9     # the same lens, half the pixels
    with pytest.raises(ValueError, match=r"calibrated for 320x180 frames, the plate's are 320x240"):
        lens.fitted(320, 240)
    with pytest.raises(ValueError, match="cannot be inverted at the image's edge"):
        _lens(k1=-0.45, k2=0.0, f=120.0).fitted(W, H)                 # folds over before the corners


def test_the_head_drawn_through_the_lens_is_where_the_shot_renderers_lens_warp_puts_it(double):
    """render_head through the lens, in a box near the frame's corner, against the whole frame drawn by the
    shot path (`neural_render.lens`: an overscan pinhole warped by OpenCV's inverted model): the same head
    outline; the pinhole head in the same box is off by several pixels there."""
    import torch

    from capture.camera import Camera
    from doppel.face_swap.render_head import head_box, render_head
    from neural_render.lens import lens_overscan, redistortion
    from neural_render.shading import render_mesh

    lens = _lens(k1=-0.3, k2=0.08, f=160.0)
    import cv2

    R = np.diag([1.0, -1.0, -1.0]) @ cv2.Rodrigues(np.array([0.0, 0.35, 0.0]))[0]     # facing it, turned 20 deg
    head = double.head_mesh(np.zeros(len(double.basis.names)))
    centre = head.mean(0)
    ray = np.linalg.inv(lens.K) @ np.array([W * 0.84, H * 0.78, 1.0])
    t = ray / ray[2] * 0.45 - R @ centre                       # the head 45 cm away, near the bottom right
    w = np.zeros(len(double.basis.names))
    box = head_box(double, R, t, w, lens.K, W, H, lens=lens)
    assert box is not None and box[2] - box[0] > 30
    _, alpha = render_head(double, R, t, w, lens.K, box, lens=lens)
    _, pinhole = render_head(double, R, t, w, lens.K, box)

    cam = Camera(K=torch.tensor(lens.K), R=torch.tensor(R), t=torch.tensor(t), width=W, height=H,
                 dist=torch.tensor(lens.dist))
    over = lens_overscan(cam.as_batch())[0]
    rgba = render_mesh(torch.tensor(head, dtype=torch.float32), torch.as_tensor(double.head_faces),
                       over.to(dtype=torch.float32), supersample=2, cull_backfaces=True)[0].numpy()
    ref = redistortion(cam, over).image(rgba[..., 3])
    x0, y0, x1, y1 = box
    ref = ref[y0:y1 + 1, x0:x1 + 1]
    edge = (ref > 0.02) & (ref < 0.98) | (alpha > 0.02) & (alpha < 0.98)
    assert np.abs(alpha - ref).mean() < 0.01 and np.abs(alpha - ref)[~edge].max() < 0.05
    assert np.abs(pinhole - ref).mean() > 5 * np.abs(alpha - ref).mean()


def _maps_of(lens, folder):
    """The lens's ST-maps written as `doppel capture cameras --st-maps` writes them (OpenCV), their paths."""
    from doppel.face_swap.plate_lens import write_lens_maps

    return sorted(write_lens_maps(lens, folder), key=lambda p: "redistort" in p.name)     # undistort first


def test_a_lens_given_by_its_st_maps_moves_points_as_its_coefficients_do(tmp_path):
    """ST-maps of an OpenCV lens (principal point at the centre, as an undistorted plate has it) make a lens whose
    points go where the coefficients send them (bilinear in the maps: 0.02 px); a proxy of the plate reads the same
    maps; one map given twice, or maps of another lens, are refused."""
    from doppel.face_swap.plate_lens import PlateLens, plate_lens_from_st_maps

    K = np.array([[200.0, 0, W / 2], [0, 200.0, H / 2], [0, 0, 1]])
    lens = PlateLens(K, [-0.2, 0.04, 0.0, 0.0, 0.0], W, H, "film")
    u, d = _maps_of(lens, tmp_path / "maps")
    maps = plate_lens_from_st_maps(u, d, 200.0).fitted(W, H)
    assert np.allclose(maps.K, K) and maps.name == "film" and maps.distorted
    xs, ys = np.meshgrid(np.linspace(4, W - 4, 40), np.linspace(4, H - 4, 25))
    p = np.stack([xs.ravel(), ys.ravel()], 1)
    assert np.abs(maps.undistort(p) - lens.undistort(p)).max() < 0.02
    ideal = lens.undistort(p)
    assert np.abs(maps.distort(ideal) - lens.distort(ideal)).max() < 0.02
    many = np.random.default_rng(1).uniform([0, 0], [W, H], (40000, 2))     # more than cv2.remap's 32767 rows,
    assert np.abs(maps.undistort(many) - lens.undistort(many)).max() < 0.05    # to the frame's very edge
    assert maps.key() == plate_lens_from_st_maps(u, d, 200.0).key()     # what a resumed swap must match
    other_maps = plate_lens_from_st_maps(_maps_of(PlateLens(K, [-0.1, 0, 0, 0, 0], W, H, "b"), tmp_path / "b")[0],
                                         d, 200.0)
    assert other_maps.key() != maps.key() and maps.files == (str(u), str(d))
    half = maps.fitted(W // 2, H // 2)
    assert np.abs(half.undistort(p / 2) - lens.undistort(p) / 2).max() < 0.02
    with pytest.raises(ValueError, match="the undistort map does not undo the redistort map"):
        plate_lens_from_st_maps(d, d, 200.0).fitted(W, H)
    other = PlateLens(K, [0.15, 0.0, 0.0, 0.0, 0.0], W, H, "other")
    u2, _ = _maps_of(other, tmp_path / "other")
    with pytest.raises(ValueError, match="the undistort map does not undo the redistort map"):
        plate_lens_from_st_maps(u2, d, 200.0).fitted(W, H)
    with pytest.raises(ValueError, match="needs --focal-px"):
        plate_lens_from_st_maps(u, d, 0.0)
    with pytest.raises(ValueError, match="nothing.exr: no such file"):
        plate_lens_from_st_maps(tmp_path / "nothing.exr", d, 200.0)
    (tmp_path / "map.png").write_bytes(b"")
    with pytest.raises(ValueError, match="an ST-map is read from an EXR file"):
        plate_lens_from_st_maps(tmp_path / "map.png", d, 200.0)


def test_st_maps_of_a_lens_with_its_principal_point_off_the_centre_take_it_from_plate_principal(tmp_path):
    """The ST-maps Doppel writes for a lens whose principal point is 30 px right and 14 px up of the centre (as a
    lens-centre offset leaves it in the undistorted frame): given that point (`principal`), the lens moves points
    as its coefficients do and its K is the calibration's; taken at the centre (no --plate-principal), the solve's
    K is 30 px off. A point outside the undistorted frame is refused in one line."""
    from doppel.face_swap.plate_lens import PlateLens, plate_lens_from_st_maps

    K = np.array([[200.0, 0, W / 2 + 30], [0, 200.0, H / 2 - 14], [0, 0, 1]])
    lens = PlateLens(K, [-0.2, 0.04, 0.0, 0.0, 0.0], W, H, "film")
    u, d = _maps_of(lens, tmp_path / "maps")
    maps = plate_lens_from_st_maps(u, d, 200.0, principal=(W / 2 + 30, H / 2 - 14)).fitted(W, H)
    assert np.allclose(maps.K, K)
    xs, ys = np.meshgrid(np.linspace(4, W - 4, 40), np.linspace(4, H - 4, 25))
    p = np.stack([xs.ravel(), ys.ravel()], 1)
    assert np.abs(maps.undistort(p) - lens.undistort(p)).max() < 0.02
    centred = plate_lens_from_st_maps(u, d, 200.0)
    assert np.allclose(centred.K[:2, 2], [W / 2, H / 2]) and centred.key() != maps.key()
    assert np.allclose(maps.fitted(W // 2, H // 2).K[:2, 2], [(W / 2 + 30) / 2, (H / 2 - 14) / 2])
    with pytest.raises(ValueError, match=r"--plate-principal 400,90: outside the undistorted frame \(\d+x\d+ px\)"):
        plate_lens_from_st_maps(u, d, 200.0, principal=(400, 90))


def test_the_plate_camera_is_read_from_a_calibration_file_by_name(tmp_path):
    import torch

    from capture.calibration_io import write_doppel_json
    from capture.camera import Camera
    from doppel.face_swap.plate_lens import plate_lens_from_calibration

    K = np.array([[500.0, 0, 320], [0, 500, 180], [0, 0, 1]])
    cams = [Camera.from_opencv(K, dist=np.array([-0.1 * (i + 1), 0.01, 0, 0, 0]), R=np.eye(3), tvec=np.zeros(3),
                               width=640, height=360, name=f"cam{i}") for i in range(2)]
    write_doppel_json(tmp_path / "two.json", cams)
    write_doppel_json(tmp_path / "one.json", cams[1:])
    lens = plate_lens_from_calibration(tmp_path / "two.json", "cam1")
    assert lens.name == "cam1" and lens.dist[0] == pytest.approx(-0.2)
    assert np.allclose(lens.K, cams[1].K.to(torch.float64).numpy())
    assert plate_lens_from_calibration(tmp_path / "one.json").name == "cam1"
    with pytest.raises(ValueError, match="2 cameras .* name the plate's with --plate-camera-name"):
        plate_lens_from_calibration(tmp_path / "two.json")
    with pytest.raises(ValueError, match=r"--plate-camera-name cam7: no such camera .* \(it has cam0, cam1\)"):
        plate_lens_from_calibration(tmp_path / "two.json", "cam7")


@pytest.mark.parametrize("args,needle", [
    (["--plate-camera-name", "film"], "--plate-camera-name names a camera of --plate-camera's file"),
    (["--plate-stmaps", "a.exr"], "--plate-stmaps takes UNDISTORT.exr,REDISTORT.exr"),
    (["--plate-stmaps", "a.exr,b.exr", "--plate-camera", "LENS"], "--plate-stmaps and --plate-camera both give"),
    (["--plate-principal", "160,90"], "--plate-principal is the principal point of --plate-stmaps' undistorted"),
    (["--plate-stmaps", "a.exr,b.exr", "--plate-principal", "centre"], "--plate-principal takes CX,CY in pixels"),
    (["--plate-camera", "LENS", "--focal-px", "900"], "--focal-px and --plate-camera both give"),
    (["--plate-camera", "LENS_OTHER"], "calibrated for 640x360 frames, the plate's are 256x256"),
])
def test_the_cli_refuses_a_plate_camera_it_cannot_use_in_one_line(tmp_path, capsys, rig_dir, args, needle):
    import cv2
    import skimage.data

    from capture.calibration_io import write_doppel_json
    from capture.camera import Camera

    cam = Camera.from_opencv(np.array([[500.0, 0, 320], [0, 500, 180], [0, 0, 1]]), dist=np.array([-0.1, 0, 0, 0, 0]),
                             R=np.eye(3), tvec=np.zeros(3), width=640, height=360, name="film")
    write_doppel_json(tmp_path / "lens.json", [cam])
    plate = tmp_path / "still.png"
    cv2.imwrite(str(plate), cv2.resize(skimage.data.astronaut(), (256, 256))[..., ::-1])
    args = [str(tmp_path / "lens.json") if a.startswith("LENS") else a for a in args]
    out = tmp_path / "out.png"
    code, _, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", out, *args)
    assert code != 0 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_face_near_the_edge_of_a_distorted_plate_is_placed_closer_through_the_lens(tmp_path, capsys, caplog):
    """A synthetic plate shot through a wide barrel lens (k1 -0.22, k2 0.05, 90 degrees), the head framed towards
    the bottom-right corner: swapped as a pinhole of the lens's focal length and through `--plate-camera
    plate/lens.json` (frames 9-14, the head turning through frontal); where each drew the double's landmarks
    against the ground truth's exact ones within 30 degrees of frontal: through the lens nearer. The lens is
    recorded in the tracks, the manifest and the report; a 3D scene of the track says its camera is the pinhole."""
    import json

    from doppel.doubles import build_default_rig
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.plate_lens import plate_lens_from_calibration
    from doppel.face_swap.render_head import project
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig
    from reconstruction.head_tracking import inter_ocular

    code, _, err = run_cli(capsys, "capture", "plate", "--out", tmp_path / "p", "--frames", "24", "--size", "480x270",
                           "--fov", "90", "--distance", "0.55", "--distortion=-0.22,0.05", "--offset", "0.65,0.5",
                           "--camera", "static")
    assert code == 0, err
    ann = np.load(tmp_path / "p" / "ground_truth" / "annotations.npz")
    r, params, _ = build_default_rig("anny", seed=0)
    double = load_face_double(r.save(tmp_path / "double", params=params), tmp_path)
    lens = plate_lens_from_calibration(tmp_path / "p" / "plate" / "lens.json")
    plate = tmp_path / "p" / "plate" / "plate.mp4"
    errors = {}
    for name, cfg, through in (("pinhole", SwapConfig(focal_px=lens.focal_px, start=9, end=15), None),
                               ("lens", SwapConfig(lens=lens, start=9, end=15), lens)):
        out = tmp_path / f"{name}.mp4"
        swap_plate(plate, double, out, cfg)
        t = np.load(side_folder(out) / "tracks.npz")
        assert np.allclose(t["dist"], [-0.22, 0.05, 0, 0, 0] if through else 0)
        near = [k for k in np.flatnonzero(t["valid"]) if abs(ann["head_ypr_deg"][9 + k, 0]) < 30]
        assert len(near) == 4                                 # frames 10-13: yaw 25, 8, -8, -25 degrees
        d = []
        for k in near:
            f = 9 + k
            placed = project(double.basis.points(t["expression"][k]), t["rotation"][k], t["translation"][k],
                             t["K"], through)
            vis = ann["landmarks_visible"][f][double.basis.ids]
            d.append(np.linalg.norm(placed - ann["landmarks2d"][f][double.basis.ids], axis=-1)[vis].mean()
                     / inter_ocular(ann["landmarks2d"][f]))
        errors[name] = float(np.mean(d))
    assert errors["lens"] < 0.9 * errors["pinhole"], errors
    manifest = json.loads((side_folder(tmp_path / "lens.mp4") / "manifest.json").read_text())
    assert manifest["params"]["plate_camera"]["dist"][:2] == [-0.22, 0.05]
    assert manifest["inputs"]["plate_lens_0"]["path"].endswith("lens.json")          # hashed with the inputs
    assert "distortion k1 -0.22, k2 +0.05" in (side_folder(tmp_path / "lens.mp4") / "swap_report.html").read_text()
    from capture.st_maps import from_st, undistorted_points
    from neural_render.image_io import read_exr

    maps = sorted(p.name for p in (side_folder(tmp_path / "lens.mp4") / "lens").iterdir())
    assert maps == ["film_redistort.exr", "film_undistort.exr"]
    st = read_exr(side_folder(tmp_path / "lens.mp4") / "lens" / "film_redistort.exr")[..., :2]
    x, y = from_st(st, 480, 270)                     # each plate pixel's place in the undistorted image
    pts = np.array([[100.0, 50.0], [400.0, 230.0]])
    want = undistorted_points(pts, lens.K - np.array([[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]]), lens.dist,
                              lens.K - np.array([[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]]))
    got = np.stack([x[50, 100], y[50, 100]]), np.stack([x[230, 400], y[230, 400]])
    assert np.abs(np.array(got) - want).max() < 0.01
    assert not (side_folder(tmp_path / "pinhole.mp4") / "lens").exists()
    from doppel.face_swap.track_scene import read_tracks, track_scene

    track_scene(read_tracks(side_folder(tmp_path / "lens.mp4")), double)       # a 3D scene of the track: pinhole
    assert "the scene's camera is its distortion-free pinhole" in caplog.text
    # the same lens as ST-maps (those the swap wrote), through the CLI: the same track within a hair
    maps = side_folder(tmp_path / "lens.mp4") / "lens"
    code, _, err = run_cli(capsys, "swap", plate, "--double", tmp_path / "double", "--out", tmp_path / "maps.mp4",
                           "--plate-stmaps", f"{maps / 'film_undistort.exr'},{maps / 'film_redistort.exr'}",
                           "--focal-px", str(lens.focal_px), "--plate-principal", f"{lens.K[0, 2]},{lens.K[1, 2]}",
                           "--start", "9", "--end", "15")
    assert code == 0, err
    a, b = (np.load(side_folder(tmp_path / f"{n}.mp4") / "tracks.npz") for n in ("lens", "maps"))
    assert str(b["lens_model"]) == "stmaps" and str(a["lens_model"]) == "opencv" and np.allclose(a["K"], b["K"])
    ok = a["valid"] & b["valid"]
    assert ok.sum() >= 4 and np.abs(a["translation"][ok] - b["translation"][ok]).max() < 0.002      # metres
