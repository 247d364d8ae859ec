"""`capture plate`: a performer's shot and its face-replacement ground truth (A's head on B), with head pose,
landmarks and masks that agree with the pictures. Tiny shots: 9 frames at 160x96 (raster), 2 frames at 64x48
(Cycles, 1 sample)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_runner import run_cli

W, H, N = 160, 96, 9


@pytest.fixture(scope="module")
def actors():
    from doppel.virtual_actor import build_virtual_actor

    return build_virtual_actor(1, texture_size=256), build_virtual_actor(0, texture_size=256)


@pytest.fixture(scope="module")
def plate(actors, tmp_path_factory):
    from doppel.synthetic_plate import PlateConfig, render_plate

    out = tmp_path_factory.mktemp("plate")
    cfg = PlateConfig(frames=N, width=W, height=H, camera="handheld", texture_size=256)
    return render_plate(out, cfg, actor_b=actors[0], actor_a=actors[1])


def _img(path):
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_layout_video_and_moving_camera(plate):
    import imageio_ffmpeg

    out = plate.out
    for d in ("plate", "ground_truth"):
        assert sorted(p.name for p in (out / d / "frames").glob("*.png")) == [f"{f:06d}.png" for f in range(N)]
    n, _ = imageio_ffmpeg.count_frames_and_secs(str(out / "plate" / "plate.mp4"))
    assert n == N
    cams = json.loads((out / "plate" / "cameras.json").read_text())["frames"]
    assert len(cams) == N
    centres = np.array([-np.array(c["R"]).T @ np.array(c["t"]) for c in cams])
    assert 0.002 < np.linalg.norm(centres - centres[0], axis=1).max() < 0.1   # handheld: it moves, a little
    assert len(list((out / "ground_truth" / "masks").glob("*.png"))) == 2 * N


def test_head_pose_follows_the_performance(plate):
    """The measured (Kabsch) head yaw/pitch follow the commanded turn within a few degrees, and a 9-frame shot
    already spans most of the +-65 / +-28 degree program."""
    a = np.load(plate.out / "ground_truth" / "annotations.npz")
    ypr, cmd = a["head_ypr_deg"], a["commanded_yaw_pitch_hands"]
    assert np.abs(ypr[:, 0] - cmd[:, 0]).max() < 4.0, (ypr[:, 0], cmd[:, 0])
    assert np.abs(ypr[:, 1] - cmd[:, 1]).max() < 4.0, (ypr[:, 1], cmd[:, 1])
    assert ypr[:, 0].min() < -50 and ypr[:, 0].max() > 50
    assert np.linalg.det(a["head_R"]).round(6).tolist() == [1.0] * N


def test_the_expression_weights_the_heads_were_posed_with_are_kept():
    """annotations.npz keeps each frame's expression (`face_expression` at mid-frame times); the "expressive"
    performance's brows, blinks and pucker do not follow the head's turns as the "talk" one's brows do."""
    from doppel.synthetic_plate import PITCH_DEG, face_expression

    t = (np.arange(240) + 0.5) / 240
    pitch = PITCH_DEG * np.sin(4 * np.pi * t + 0.6)
    talk, expressive = ({k: np.array([face_expression(x, kind)[k] for x in t]) for k in face_expression(0.5, kind)}
                        for kind in ("talk", "expressive"))
    assert np.corrcoef(talk["browInnerUp"], pitch)[0, 1] > 0.9
    assert abs(np.corrcoef(expressive["browInnerUp"], pitch)[0, 1]) < 0.2
    yaw = 65 * np.sin(2 * np.pi * t)
    assert np.abs(yaw[expressive["eyeBlinkLeft"] > 0.5]).max() < 25          # blinks near frontal
    assert np.abs(yaw[talk["eyeBlinkLeft"] > 0.5]).min() > 45               # the talk's come in profile


def test_annotations_keep_the_expressions(plate):
    from doppel.synthetic_plate import face_expression

    a = np.load(plate.out / "ground_truth" / "annotations.npz")
    names = a["expression_names"].tolist()
    assert "jawOpen" in names and a["expression_weights"].shape == (N, len(names))
    want = [face_expression((f + 0.5) / N)[names[0]] for f in range(N)]
    np.testing.assert_allclose(a["expression_weights"][:, 0], want, atol=1e-6)


def test_landmarks_lie_on_the_face_mask(plate):
    import cv2

    a = np.load(plate.out / "ground_truth" / "annotations.npz")
    hits, total = 0, 0
    for f in range(N):
        mask = _img(plate.out / "ground_truth" / "masks" / f"face_{f:06d}.png") > 0
        mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        uv = a["landmarks2d"][f][a["landmarks_visible"][f]]
        px = np.floor(uv).astype(int)
        hits += mask[px[:, 1], px[:, 0]].sum()
        total += len(px)
    assert total > 0.4 * 478 * N            # most landmarks are visible over the shot
    assert hits / total > 0.9, hits / total


def test_performer_landmarks_are_the_plates_face(plate):
    """The performer's own landmarks (what a perfect detector reads on the plate) lie on the plate's face, near
    the ground truth's (the head is carried to the same neck) and not equal to them (another face)."""
    from reconstruction.head_tracking import inter_ocular

    a = np.load(plate.out / "ground_truth" / "annotations.npz")
    pl, gt = a["performer_landmarks2d"], a["landmarks2d"]
    assert pl.shape == gt.shape == (N, 478, 2)
    d = np.linalg.norm(pl - gt, axis=-1).mean(-1) / inter_ocular(gt)
    assert (d > 0.005).all() and (d < 0.2).all(), d
    plate_rgb = _img(plate.out / "plate" / "frames" / f"{0:06d}.png")
    backdrop = plate_rgb[2, 2].astype(int)
    px = np.floor(pl[0][a["landmarks_visible"][0]]).astype(int)
    on_person = np.abs(plate_rgb[px[:, 1], px[:, 0]].astype(int) - backdrop).sum(-1) > 30
    assert on_person.mean() > 0.95, on_person.mean()


def test_hand_occludes_the_face_only_when_raised(plate):
    a = np.load(plate.out / "ground_truth" / "annotations.npz")
    occ, hands = a["occluded_fraction"], a["commanded_yaw_pitch_hands"][:, 2:].max(1)
    assert occ[hands > 0.8].min() > 0.05, (occ, hands)     # frame 3 (t = 0.39): right hand over the face
    assert occ[hands == 0].max() == 0.0
    f = int(np.argmax(occ))
    m = _img(plate.out / "ground_truth" / "masks" / f"occlusion_{f:06d}.png") > 0
    face = _img(plate.out / "ground_truth" / "masks" / f"face_{f:06d}.png") > 0
    assert m.sum() > 0 and not (m & face).any()
    assert plate.summary["frames_with_occlusion"] == int((occ > 0.02).sum()) >= 1


def test_ground_truth_changes_the_head_and_keeps_the_body(plate, actors):
    from doppel.synthetic_plate import blend_weights

    b = actors[0]
    w = np.load(plate.out / "ground_truth" / "blend_weights.npy")
    assert np.allclose(w, blend_weights(b), atol=1e-6) and w.min() >= 0 and w.max() <= 1
    nose_y = b.rest_vertices[:, 1].max() - 0.12
    assert w[b.rest_vertices[:, 1] > nose_y].min() == 1.0          # the whole face is A's
    assert w[b.rest_vertices[:, 1] < 1.35].max() == 0.0             # the body below the shoulders is B's
    for f in (0, 4):
        p = _img(plate.out / "plate" / "frames" / f"{f:06d}.png").astype(float)
        g = _img(plate.out / "ground_truth" / "frames" / f"{f:06d}.png").astype(float)
        face = _img(plate.out / "ground_truth" / "masks" / f"face_{f:06d}.png") > 0
        assert np.abs(p - g)[-H // 6:].max() == 0                  # bottom rows: B's chest, identical
        assert np.abs(p - g)[face].mean() > 8                     # the face: A's albedo and shape


def test_cycles_plate_has_the_raster_plates_ground_truth(actors, tmp_path):
    """Same shot through Cycles (1 sample): the EXRs in a folder of their own beside the PNGs' (one sequence a
    folder, as a swap reads a plate), and the annotations and masks of the raster
    renderer's shot bit for bit (they come from the geometry, not the pictures)."""
    from capture.plate_io import frame_shutter_angle, sequence_fps
    from doppel.synthetic_plate import PlateConfig, render_plate

    res = {}
    for r in ("raster", "cycles"):
        cfg = PlateConfig(frames=2, width=64, height=48, camera="dolly", renderer=r, samples=1, texture_size=256)
        res[r] = render_plate(tmp_path / r, cfg, actor_b=actors[0], actor_a=actors[1])
    c = tmp_path / "cycles"
    assert sorted(p.name for p in (c / "plate" / "frames").iterdir()) == ["000000.png", "000001.png"]
    assert sorted(p.name for p in (c / "plate" / "frames_exr").iterdir()) == ["000000.exr", "000001.exr"]
    assert len(list((c / "ground_truth" / "frames_exr").glob("*.exr"))) == 2
    first = c / "plate" / "frames_exr" / "000000.exr"
    assert sequence_fps(first) == 24.0 and frame_shutter_angle(first) is None      # its rate; no shutter declared
    ra, ca = (np.load(tmp_path / r / "ground_truth" / "annotations.npz") for r in ("raster", "cycles"))
    for k in ra.files:
        assert np.array_equal(ra[k], ca[k]), k
    for m in (tmp_path / "raster" / "ground_truth" / "masks").iterdir():
        assert m.read_bytes() == (c / "ground_truth" / "masks" / m.name).read_bytes()
    assert (c / "plate" / "cameras.json").read_bytes() == (tmp_path / "raster" / "plate" / "cameras.json").read_bytes()


def test_a_plate_through_a_distorted_lens_is_the_pinhole_plate_seen_through_that_lens(actors, tmp_path):
    """--distortion: each frame is the same shot without distortion read through OpenCV's redistort map of the
    lens (`capture.st_maps.redistort_stmap`, an independent route); the landmarks are OpenCV's projection with the
    lens; the masks are bent with the picture; plate/lens.json is the film camera with its lens."""
    import dataclasses

    import cv2

    from capture.calibration_io import read_calibration
    from capture.st_maps import apply_stmap, from_st, redistort_stmap
    from doppel.synthetic_plate import PlateConfig, render_plate

    flat = PlateConfig(frames=2, width=W, height=H, camera="static", texture_size=256, fov_x_deg=80.0,
                       distance_m=0.9, offset=(0.45, 0.2))
    bent = dataclasses.replace(flat, distortion=(-0.2, 0.04, 0.0, 0.0, 0.0))
    a = render_plate(tmp_path / "flat", flat, actor_b=actors[0], actor_a=actors[1]).out
    b = render_plate(tmp_path / "bent", bent, actor_b=actors[0], actor_a=actors[1]).out
    (lens,) = read_calibration(b / "plate" / "lens.json")
    assert np.allclose(lens.dist.numpy(), [-0.2, 0.04, 0, 0, 0]) and (lens.width, lens.height) == (W, H)
    st = redistort_stmap(lens)
    x, y = from_st(st, W, H)
    inner = (x >= 1) & (x <= W - 2) & (y >= 1) & (y <= H - 2)   # seen by the pinhole frame (a barrel lens sees more)
    assert 0.6 < inner.mean() < 0.99
    for f in range(2):
        pin = _img(a / "plate" / "frames" / f"{f:06d}.png").astype(np.float32)
        got = _img(b / "plate" / "frames" / f"{f:06d}.png").astype(np.float32)
        want = apply_stmap(pin, st)
        assert np.abs(got - want)[inner].mean() < 1.0, np.abs(got - want)[inner].mean()
        assert np.abs(got - pin)[inner].mean() > 3 * np.abs(got - want)[inner].mean()
        m_pin = _img(a / "ground_truth" / "masks" / f"face_{f:06d}.png").astype(np.float32)
        m_got = _img(b / "ground_truth" / "masks" / f"face_{f:06d}.png") > 127
        m_want = apply_stmap(m_pin, st) > 127
        assert (m_got & m_want).sum() / (m_got | m_want).sum() > 0.9
    ann = np.load(b / "ground_truth" / "annotations.npz")
    cam = json.loads((b / "plate" / "cameras.json").read_text())["frames"][0]
    L3 = ann["landmarks3d"][0].astype(np.float64)
    want = cv2.projectPoints(L3, cv2.Rodrigues(np.array(cam["R"]))[0], np.array(cam["t"]), np.array(cam["K"]),
                             np.array(cam["dist"]))[0][:, 0]
    assert np.abs(ann["landmarks2d"][0] - want).max() < 1e-3
    pinhole = np.load(a / "ground_truth" / "annotations.npz")["landmarks2d"][0]
    assert np.abs(ann["landmarks2d"][0] - pinhole).max() > 1.0       # the lens moved them


def test_a_plate_shot_with_a_shutter_is_blurred_where_things_move(plate, actors, tmp_path):
    """--shutter 180: the same shot (its annotations the frame's own, identical) with each frame the mean in linear
    light of renders over the open shutter: the turning head loses sharpness (its image gradients), the plate and
    the ground truth alike, and the frame stays close to the sharp one (the same shot, not another)."""
    import dataclasses

    import cv2

    from doppel.synthetic_plate import PlateConfig, render_plate

    cfg = dataclasses.replace(PlateConfig(frames=N, width=W, height=H, camera="handheld", texture_size=256),
                              shutter_deg=180.0, shutter_samples=4)
    blurred = render_plate(tmp_path / "blur", cfg, actor_b=actors[0], actor_a=actors[1])
    assert blurred.summary["shutter_deg"] == 180.0 and blurred.summary["shutter_samples"] == 4
    assert plate.summary["shutter_deg"] == 0.0 and plate.summary["shutter_samples"] is None
    a, b = (np.load(r.out / "ground_truth" / "annotations.npz") for r in (plate, blurred))
    assert all(np.array_equal(a[k], b[k]) for k in a.files)

    def sharpness(img, mask):
        g = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64), cv2.CV_64F)
        return float(np.abs(g)[mask].mean())

    f = 2                                                   # the head turning fastest (yaw ~ sin(2 pi t))
    face = _img(plate.out / "ground_truth" / "masks" / f"face_{f:06d}.png") > 127
    for part in ("plate", "ground_truth"):
        sharp, soft = (_img(r.out / part / "frames" / f"{f:06d}.png") for r in (plate, blurred))
        assert sharpness(soft, face) < 0.9 * sharpness(sharp, face), part
        assert np.abs(soft.astype(float) - sharp.astype(float))[face].mean() < 12


def test_a_cycles_plate_shot_with_a_shutter_is_blurred_by_cycles_along_the_motion(actors, tmp_path):
    """--renderer cycles --shutter 180: Cycles' own motion blur of the mesh and the film camera keyed over the
    shutter; its coverage (the EXR's alpha) is the rasterizer's coverage averaged over the open shutter (the exact
    performance at 33 times), far closer than to the frame's sharp coverage, on the frame where the head turns
    fastest; the annotations are the sharp shot's; the EXRs declare the shutter (`--shutter auto` reads 180)."""
    from benchmarks.plate_motion_blur import coverage
    from capture.plate_io import plate_shutter_angle
    from doppel.cycles_capture import read_exr_rgba
    from doppel.synthetic_plate import PlateConfig, _prepare, render_plate

    cfg = PlateConfig(frames=2, width=96, height=72, camera="handheld", renderer="cycles", samples=16,
                      texture_size=256, shutter_deg=180.0, shutter_samples=8)
    res = render_plate(tmp_path / "blur", cfg, actor_b=actors[0], actor_a=actors[1])
    assert res.summary["shutter_deg"] == 180.0 and res.summary["shutter_samples"] == 8
    angle, where = plate_shutter_angle(res.out / "plate" / "frames_exr")          # what --shutter auto reads
    assert angle == pytest.approx(180.0) and "expTime" in where
    P = _prepare(cfg, actors[0], actors[1])
    for f in range(2):
        alpha = read_exr_rgba(res.out / "plate" / "frames_exr" / f"{f:06d}.exr")[..., 3]
        blurred, sharp = coverage(P, f, np.linspace(-0.25, 0.25, 33)), coverage(P, f, [0.0])
        band = np.abs(blurred - sharp) > 0.1                           # where the shutter changed the coverage
        assert band.sum() > 100, band.sum()
        e_blur, e_sharp = np.abs(alpha - blurred)[band].mean(), np.abs(alpha - sharp)[band].mean()
        assert e_blur < 0.35 * e_sharp, (f, e_blur, e_sharp)


@pytest.mark.parametrize("args,needle", [
    (["--size", "9000x100"], "--size must be between 16 and 8192"),
    (["--size", "big"], "--size must be WIDTHxHEIGHT"),
    (["--renderer", "arnold"], "--renderer must be one of"),
    (["--renderer", "cycles", "--samples", "0"], "--samples must be >= 1"),
    (["--frames", "0"], "--frames must be >= 1"),
    (["--camera", "crane"], "--camera must be one of"),
    (["--distance", "0.1"], "--distance must be between 0.3 and 30 metres"),
    (["--performance", "mime"], "--performance must be one of talk, expressive"),
    (["--distortion", "-0.1,x"], "--distortion takes comma-separated numbers"),
    (["--distortion", "-0.1", "--renderer", "cycles"], "--distortion needs --renderer raster"),
    (["--distortion=-0.5,0,0,0,0,1"], "--distortion takes 1 to 5 comma-separated numbers"),
    (["--offset", "1.5,0"], "--offset must be X,Y fractions of the half frame within +-0.9"),
    (["--fov", "170"], "--fov must be between 5 and 150 degrees"),
    (["--fov", "100", "--distortion=-0.6"], "cannot be inverted at the image's edge"),
    (["--shutter", "400"], "--shutter: shutter angle must be between 0 and 360"),
    (["--shutter", "180", "--shutter-samples", "0"], "--shutter: shutter samples must be a whole number"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "capture", "plate", "--out", out, *args)
    assert code != 0 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_plate_with_a_clip_turns_the_head_of_the_clip(tmp_path, capsys):
    """--anim: the clip moves the body (here: the right forearm bends), the performance still turns the head
    (measured from the rendered geometry) and talks; an unreadable clip is one line and writes nothing."""
    import roma
    import torch

    from doppel.virtual_actor import body_model
    from rigging.animation import Animation

    names = list(body_model().skeleton.joint_names)
    R = np.repeat(np.eye(3)[None, None], 4, axis=0).repeat(len(names), axis=1)
    R[:, names.index("lowerarm01.R")] = roma.rotvec_to_rotmat(
        torch.tensor([[-0.3 * k, 0.0, 0.0] for k in range(4)], dtype=torch.float64)).numpy()
    Animation(names, R, np.zeros((4, 3)), 30.0).save(tmp_path / "clip")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "capture", "plate", "--out", out, "--frames", 3, "--size", "64x48",
                           "--anim", tmp_path / "clip", "--camera", "static")
    assert code == 0, err
    s = json.loads((out / "ground_truth" / "annotations.json").read_text())
    assert s["body_motion"] == str(tmp_path / "clip")
    a = np.load(out / "ground_truth" / "annotations.npz")
    assert a["head_ypr_deg"][:, 0].max() - a["head_ypr_deg"][:, 0].min() > 70, a["head_ypr_deg"]
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00" * 10)
    code, _, err = run_cli(capsys, "capture", "plate", "--out", tmp_path / "out2", "--anim", bad)
    assert code != 0 and str(bad) in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out2").exists()


def test_a_plate_made_in_a_workspace_proves_itself_synthetic_to_the_swap_gate(tmp_path, capsys):
    """`capture plate` signs its plate folder's proof in the workspace: `doppel swap` of plate.mp4 or of frames/
    needs no --plate-actor (the virtual actor); an edited frame, or a plate made outside the workspace, is refused."""
    import shutil

    from assets.consent import ConsentError
    from assets.workspace import init_workspace
    from doppel.commands.swap import gate_plate

    ws = init_workspace(tmp_path / "ws").root
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "capture", "plate", "--out", out, "--frames", 2, "--size", "64x48",
                           "--camera", "static", "-W", ws)
    assert code == 0, err
    plate = out / "plate"
    for given in (plate / "plate.mp4", plate / "frames", plate):
        with gate_plate(ws, None, None, given) as run:
            assert run.provenance["actor"] == "virtual", given
    edited = tmp_path / "edited"
    shutil.copytree(plate, edited)
    frame = sorted((edited / "frames").glob("*.png"))[0]
    frame.write_bytes(frame.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ConsentError, match="changed or missing since it was generated"):
        with gate_plate(ws, None, None, edited / "frames"):
            pass
    # (another plate: the same content as one the workspace has proven is known there by its hashes)
    code, _, err = run_cli(capsys, "capture", "plate", "--out", tmp_path / "elsewhere", "--frames", 3, "--size",
                           "64x48", "--camera", "static")
    assert code == 0, err
    with pytest.raises(ConsentError, match="written outside this workspace"):
        with gate_plate(ws, None, None, tmp_path / "elsewhere" / "plate" / "plate.mp4"):
            pass


def test_a_cycles_plates_exr_folder_proves_itself_as_its_png_folder_does(tmp_path):
    """`write_synthetic_plate_manifests` lists each frame folder in its own manifest (frames/ and Cycles'
    frames_exr/, either given to a swap as the plate) and every file in the plate folder's."""
    import json

    from doppel.synthetic_provenance import write_synthetic_plate_manifests

    plate = tmp_path / "plate"
    for folder, suffix in (("frames", "png"), ("frames_exr", "exr")):
        (plate / folder).mkdir(parents=True)
        for f in range(2):
            (plate / folder / f"{f:06d}.{suffix}").write_bytes(bytes([f]) * 10)
    write_synthetic_plate_manifests(plate, seed=1, settings={"renderer": "cycles"})

    def listed(folder):
        m = json.loads((folder / "manifest.json").read_text())
        assert m["stage"] == "synthetic_plate" and m["params"]["synthetic"] is True
        return sorted(e["path"] for e in m["outputs"].values())

    assert listed(plate / "frames_exr") == ["000000.exr", "000001.exr"]
    assert listed(plate / "frames") == ["000000.png", "000001.png"]
    assert "frames_exr/000001.exr" in listed(plate) and "frames_exr/manifest.json" in listed(plate)
