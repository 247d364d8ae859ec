"""`doppel swap` end to end on a real photograph (scikit-image's astronaut) animated into a short plate."""

import subprocess

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from tests.cli_runner import run_cli


def _astronaut(size=256):
    import skimage.data

    return cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def _plate(path, n_face=6, n_blank=2, size=256):
    from doppel.face_swap.stills import plate_from_still

    w = imageio_ffmpeg.write_frames(str(path), (size, size), fps=24, macro_block_size=1, ffmpeg_log_level="error",
                                    quality=9)
    w.send(None)
    frames = list(plate_from_still(_astronaut(size), n_face, seed=0, strength=0.2))
    frames += [np.full((size, size, 3), 128, np.uint8)] * n_blank
    for f in frames:
        w.send(np.ascontiguousarray(f))
    w.close()
    return frames


def test_swap_replaces_the_face_tracks_it_and_passes_faceless_frames_through(tmp_path, double):
    from capture.plate_io import iter_plate_frames, probe_plate
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig
    from neural_render.face_composite import polygon_mask

    plate = tmp_path / "plate.mp4"
    _plate(plate)
    out = tmp_path / "swapped.mp4"
    res = swap_plate(plate, double, out, SwapConfig(blend="poisson", matte=True))
    info, back = probe_plate(plate), probe_plate(out)
    assert (back.frame_count, back.fps, back.width, back.height) == (8, 24.0, 256, 256)
    assert res.passed_through == [6, 7]
    tracks = np.load(side_folder(out) / "tracks.npz")
    assert tracks["valid"].tolist() == [True] * 6 + [False] * 2
    assert not tracks["face_backfilled"].any()                # the faceless frames come after the face
    bias = tracks["detector_bias"]                        # the detector's error read on the double (debias, default)
    assert np.isfinite(bias[:6]).all((1, 2)).sum() >= 5 and np.isnan(bias[6:]).all()
    assert np.nanmax(np.abs(bias)) < 0.5 * 256                # pixels: a reading of the face, not of another spot
    assert np.nanmax(tracks["error_iod"]) < 0.12          # the double's face follows the plate's landmarks
    assert np.nanmax(tracks["fit_error_iod"]) < 0.05      # and the head is tracked (identity offsets included)
    # the landmarks the shot was solved on are MediaPipe's steadied by optical flow: close to them, not them
    moved = np.linalg.norm(tracks["landmarks"][:6] - tracks["landmarks_detected"][:6], axis=-1)
    assert 0.02 < moved.mean() < 2.0 and np.isnan(tracks["landmarks"][6:]).all()
    src = dict(iter_plate_frames(info))
    dst = dict(iter_plate_frames(back))
    for i in range(6):
        face = polygon_mask((256, 256), tracks["landmarks"][i])
        diff = np.abs(src[i].astype(float) - dst[i].astype(float)).mean(-1)
        assert diff[face].mean() > 8                          # the face was replaced ...
        x0, y0, x1, y1 = res.box
        outside = np.ones((256, 256), bool)
        outside[y0:y1 + 1, x0:x1 + 1] = False
        assert diff[outside].mean() < 3                       # ... and nothing outside the shot's face box changed
    for i in (6, 7):
        assert np.abs(src[i].astype(float) - dst[i].astype(float)).mean() < 2
    mattes = sorted((side_folder(out) / "matte").glob("*.png"))
    assert [m.name for m in mattes] == [f"{i:06d}.png" for i in range(8)]
    m0 = cv2.imread(str(mattes[0]), cv2.IMREAD_GRAYSCALE)
    face0 = polygon_mask((256, 256), tracks["landmarks"][0])
    assert m0.shape == (256, 256) and (m0[face0] > 127).mean() > 0.5 and m0[~face0].mean() < 40
    assert cv2.imread(str(mattes[7]), cv2.IMREAD_GRAYSCALE).max() == 0      # passed through: empty matte
    html = (side_folder(out) / "swap_report.html").read_text()
    assert "6 of 8 frames swapped" in html and "strips/" in html
    assert "h264 High, yuv420p (8-bit), untagged" in html                  # what the plate is, for QC
    assert len(list((side_folder(out) / "strips").glob("*.png"))) >= 4


def test_swap_takes_landmarks_from_another_tracker(tmp_path, double):
    """Landmarks given by the caller are tracked as they are (no flow, no detector-bias pass): moved 4 px to the
    right, the double's face follows them; a wrong shape is refused before anything is written."""
    import json

    from capture.face_tracking import PlateTracker
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.render_head import project
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig

    plate = tmp_path / "plate.mp4"
    frames = _plate(plate, n_face=4, n_blank=1)
    with PlateTracker(max_faces=1) as tracker:
        found = [tracker.process(f).face(0) for f in frames]
    lm = np.array([np.full((478, 2), np.nan) if f is None else f for f in found], np.float32)
    assert np.isfinite(lm[:4]).all() and np.isnan(lm[4]).all()
    given = lm + np.float32([4.0, 0.0])
    res = swap_plate(plate, double, tmp_path / "given.mp4", SwapConfig(), landmarks=given)
    t = np.load(side_folder(tmp_path / "given.mp4") / "tracks.npz")
    assert np.array_equal(t["landmarks"], given, equal_nan=True) and "detector_bias" not in t
    assert res.passed_through == [4]
    ids = double.basis.ids
    placed = np.array([project(double.basis.points(t["expression"][f]), t["rotation"][f], t["translation"][f],
                               t["K"]) for f in range(4)])
    shift = (placed - lm[:4, ids]).mean((0, 1))
    assert abs(shift[0] - 4.0) < 1.5 and abs(shift[1]) < 1.5, shift
    manifest = json.loads((side_folder(tmp_path / "given.mp4") / "manifest.json").read_text())
    assert manifest["params"]["face_landmarks"] == "given"
    with pytest.raises(ValueError, match="expected \\(5, 478, 2\\)"):
        swap_plate(plate, double, tmp_path / "bad.mp4", SwapConfig(), landmarks=given[:3])
    assert not (tmp_path / "bad.mp4").exists() and not side_folder(tmp_path / "bad.mp4").exists()


def test_frames_worked_on_in_background_threads_give_the_same_plate(tmp_path, double, monkeypatch):
    """SwapConfig.prefetch / workers: the comp's per-frame stages and the detector-bias pass's head drawn in
    one or several background threads give the plate and the tracks of one thread, bit for bit, also while the
    comp hands freed heap memory back to the kernel every few frames."""
    import threading

    from capture.plate_io import iter_plate_frames, probe_plate
    from core import runtime
    from doppel.face_swap import detector_bias, pipeline
    from doppel.face_swap.swap import SwapConfig

    threads, real_release = set(), runtime.release_freed_memory

    def spied(fn):
        def spy(*a, **k):
            threads.add(threading.current_thread().name)
            return fn(*a, **k)
        return spy

    for name in ("prepare_frame", "finish_frame"):
        monkeypatch.setattr(pipeline, name, spied(getattr(pipeline, name)))
    monkeypatch.setattr(detector_bias, "_with_double", spied(detector_bias._with_double))
    released = []          # freed heap handed back every RELEASE_EVERY_FRAMES frames, while the workers run
    monkeypatch.setattr(runtime, "RELEASE_EVERY_FRAMES", 2)
    monkeypatch.setattr(runtime, "release_freed_memory", lambda: released.append(1) or real_release())
    plate = tmp_path / "plate.mp4"
    _plate(plate, n_face=5, n_blank=1)
    frames, tracks = {}, {}
    for depth, workers in ((0, 1), (2, 1), (2, 3)):
        threads.clear()
        released.clear()
        out = tmp_path / f"prefetch{depth}_{workers}.mp4"
        pipeline.swap_plate(plate, double, out, SwapConfig(prefetch=depth, workers=workers))
        if depth:
            assert threads and all(t.startswith("doppel-prefetch_") for t in threads)
            assert len({t for t in threads}) <= workers
        else:
            assert threads == {threading.current_thread().name}
        assert len(released) == 6           # every 2nd of 6 frames in the detector-bias pass and in the comp
        frames[depth, workers] = [f for _, f in iter_plate_frames(probe_plate(out))]
        tracks[depth, workers] = dict(np.load(pipeline.side_folder(out) / "tracks.npz"))
    for key in ((2, 1), (2, 3)):
        assert all(np.array_equal(a, b) for a, b in zip(frames[0, 1], frames[key], strict=True))
        assert all(np.array_equal(tracks[0, 1][k], tracks[key][k], equal_nan=tracks[0, 1][k].dtype.kind == "f")
                   for k in tracks[0, 1])
    with pytest.raises(ValueError, match="--workers must be in"):
        pipeline.swap_plate(plate, double, tmp_path / "bad.mp4", SwapConfig(workers=-1))


def test_a_plate_probed_by_the_caller_is_not_probed_again(tmp_path, double, monkeypatch):
    """swap_plate(plate_info=...): the caller's probe is used (a video's probe decodes every frame); one of
    another plate is refused before anything is written."""
    from capture import plate_io
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig

    plate, other = tmp_path / "plate.mp4", tmp_path / "other.mp4"
    _plate(plate, n_face=3, n_blank=0)
    _plate(other, n_face=3, n_blank=0)
    info = plate_io.probe_plate(plate)

    def no_probe(path):
        raise AssertionError(f"probed again: {path}")

    monkeypatch.setattr(plate_io, "probe_plate", no_probe)
    res = swap_plate(plate, double, tmp_path / "out.mp4", SwapConfig(debias=False), plate_info=info)
    assert len(res.frames) == 3
    with pytest.raises(ValueError, match="plate_info describes"):
        swap_plate(other, double, tmp_path / "bad.mp4", SwapConfig(), plate_info=info)
    assert not (tmp_path / "bad.mp4").exists() and not side_folder(tmp_path / "bad.mp4").exists()


def test_a_frame_failing_in_a_worker_stops_the_swap_and_leaves_nothing(tmp_path, double, monkeypatch):
    """An error in a background thread's frame (here: the blend of frame 3) is raised by swap_plate; the plate
    is not written, the side folder is not left behind and no worker thread outlives the call; only the swap's
    checkpoint (its tracking, for `--resume`) is kept."""
    import threading
    import time

    from doppel.face_swap import pipeline
    from doppel.face_swap.swap import SwapConfig

    finish = pipeline.finish_frame

    def fail_at_3(c, f, *a, **k):
        if f == 3:
            raise RuntimeError("blend failed at frame 3")
        return finish(c, f, *a, **k)

    monkeypatch.setattr(pipeline, "finish_frame", fail_at_3)
    plate = tmp_path / "plate.mp4"
    _plate(plate, n_face=6, n_blank=0)
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="blend failed at frame 3"):
        pipeline.swap_plate(plate, double, out, SwapConfig(workers=3, debias=False))
    assert not out.exists() and not pipeline.side_folder(out).exists()
    kept = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]         # no temporary output either
    assert kept == [".out.mp4.swap.checkpoint"] and (tmp_path / kept[0] / "tracking.npz").is_file(), kept
    time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name.startswith("doppel-prefetch")]


def test_a_frame_finished_late_keeps_its_own_colour_transfer(tmp_path, double):
    """The comp's three stages (`doppel.face_swap.frame_comp`): every frame prepared, the colour matched in
    order, then the frames finished in reverse order give what `composite_frame` gives frame by frame: a
    frame's transfer is its own, not the matcher's state when the frame is finished."""
    from capture.face_tracking import PersonSegmenter
    from capture.plate_io import iter_plate_frames, probe_plate
    from doppel.face_swap.frame_comp import FrameComp, composite_frame, finish_frame, match_colour, prepare_frame
    from doppel.face_swap.swap import SwapConfig, check_config, shot_box, solve_track, track_shot
    from neural_render.face_composite import ColourMatcher
    from reconstruction.head_tracking import intrinsics

    plate = tmp_path / "plate.mp4"
    _plate(plate, n_face=4, n_blank=0)
    info, cfg = probe_plate(plate), SwapConfig()
    shot = track_shot(info, cfg, *check_config(cfg, info)).steadied(cfg.flow_weight)
    track = solve_track(shot, info, double, cfg)
    K = intrinsics(track.focal_px, info.width, info.height)
    box = shot_box(double, track, K, info.width, info.height)
    frames = [rgb for _, rgb in iter_plate_frames(info)]
    seg = PersonSegmenter()
    try:
        ref, staged = (FrameComp(double, track, K, box, cfg, seg, ColourMatcher()) for _ in range(2))
        lm = [shot.landmarks[f].astype(np.float64) for f in range(len(frames))]
        expected = [composite_frame(ref, f, rgb, lm[f], shot.hands[f])[0] for f, rgb in enumerate(frames)]
        preps = [prepare_frame(staged, f, rgb, lm[f], shot.hands[f]) for f, rgb in enumerate(frames)]
        transfers = [match_colour(staged, p) for p in preps]
        late = {f: finish_frame(staged, f, frames[f], preps[f], transfers[f])[0] for f in reversed(range(4))}
    finally:
        seg.close()
    assert not np.allclose(transfers[0]._mean_dst, transfers[-1]._mean_dst, rtol=0, atol=1e-6)  # they differ
    assert all(np.array_equal(expected[f], late[f]) for f in range(4))


def test_a_landscape_portrait_whose_face_the_mesh_misses_is_swapped(tmp_path, capsys, rig_dir):
    """A 1080p still with the astronaut filling its height (her face a tenth of the width, which the mesh misses)
    was refused, "no face found in any frame of the plate": the tracker waited six frames before looking on crops."""
    from doppel.face_swap.stills import plate_from_still

    canvas = np.full((1080, 1920, 3), 128, np.uint8)
    still = cv2.resize(_astronaut(512), (1080, 1080), interpolation=cv2.INTER_AREA)
    canvas[:, 420:1500] = list(plate_from_still(still, 11, seed=0, strength=0.2))[10]   # a frame of a real case
    img = tmp_path / "portrait.png"
    cv2.imwrite(str(img), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    code, out, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "swapped.png")
    assert code == 0 and "1 of 1 frames swapped" in out, out + err


def test_two_outputs_whose_side_folders_are_named_alike_do_not_replace_each_others(tmp_path, capsys, rig_dir):
    """sh010 (frames) and sh010.mov, or a.png and a.jpg, share the side folder a_swap: the second swap silently
    replaced the first's report and tracks. It is refused now, naming the other output (--force replaces)."""
    img = tmp_path / "still.png"
    cv2.imwrite(str(img), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "a.png")
    assert code == 0, err
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "a.jpg")
    assert code == 1 and "holds the report and tracks of the swap into a.png" in " ".join(err.split()), err
    assert not (tmp_path / "a.jpg").exists()
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "a.png")   # its own: fine
    assert code == 0, err
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "a.jpg", "--force")
    assert code == 0, err


def test_swap_cli_on_one_image_and_its_refusals(tmp_path, capsys, rig_dir):
    img = tmp_path / "still.png"
    cv2.imwrite(str(img), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    code, out, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "swapped.jpg",
                             "--blend", "multiband")
    assert code == 0, err
    assert (tmp_path / "swapped.jpg").is_file() and "1 of 1 frames swapped" in out
    code, out, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "relit.jpg", "--relight",
                             "--blend", "multiband")
    assert code == 0, err
    plain = cv2.imread(str(tmp_path / "swapped.jpg")).astype(float)
    relit = cv2.imread(str(tmp_path / "relit.jpg")).astype(float)
    assert np.abs(plain - relit).mean() > 0.5          # the face is shaded differently
    code, out, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "relit_blur.jpg",
                             "--blend", "multiband", "--relight", "--shutter", "180", "--shutter-samples", "3")
    assert code == 0, err                              # one image: no neighbouring frame, so the same relit head
    assert np.abs(cv2.imread(str(tmp_path / "relit_blur.jpg")).astype(float) - relit).mean() < 0.5
    code, out, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "flat.jpg",
                             "--shading", "0", "--blend", "multiband")
    assert code == 0, err
    code, out, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "biased.jpg",
                             "--blend", "multiband", "--no-debias")
    assert code == 0, err
    with_bias, without = (np.load(tmp_path / f"{k}_swap" / "tracks.npz") for k in ("swapped", "biased"))
    assert with_bias["detector_bias"].shape == (1, len(with_bias["detector_bias_ids"]), 2)   # read on the double
    assert np.isfinite(with_bias["detector_bias"]).all() and "detector_bias" not in without  # --no-debias: no pass
    from neural_render.face_composite import lab, polygon_mask

    lm = np.load(tmp_path / "swapped_swap" / "tracks.npz")["landmarks"][0]
    from doppel.face_swap.frame_comp import feature_holes

    cheeks = cv2.erode(polygon_mask((256, 256), lm).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    cheeks &= ~feature_holes((256, 256), [lm], 6)          # skin only: the two faces' features differ
    low = {k: cv2.GaussianBlur(lab(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)), (0, 0), 4)[cheeks]
           for k, p in (("plate", img), ("shaded", tmp_path / "swapped.jpg"), ("flat", tmp_path / "flat.jpg"))}
    err = {k: float(np.linalg.norm(low[k] - low["plate"], axis=-1).mean()) for k in ("shaded", "flat")}
    # the skin-shading match (default) gives the double's face the performer's shading and tone at low frequency
    assert err["shaded"] < 0.75 * err["flat"], err
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "o.png", "--shading", "3")
    assert code == 1 and "--shading must be in [0, 1]" in err
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "o.png", "--flow", "-1")
    assert code == 1 and "--flow must be in [0, 1000]" in err
    for bad, needle in ((("--shutter", "400"), "--shutter: shutter angle must be between 0 and 360"),
                        (("--shutter", "180", "--shutter-samples", "0"), "--shutter: shutter samples must be"),
                        (("--shutter", "fast"), "--shutter must be an angle in degrees (0-360) or auto, got 'fast'"),
                        (("--shutter", "auto"), "declares no shutter angle (read from a DPX header's shutter angle "
                                                "or an EXR's expTime and frame rate); give --shutter DEGREES")):
        code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "o.png", *bad)
        assert code == 1 and needle in " ".join(err.split()) and not (tmp_path / "o.png").exists(), err
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((128, 128, 3), 90, np.uint8))
    code, _, err = run_cli(capsys, "swap", blank, "--double", rig_dir, "--out", tmp_path / "o.png")
    assert code == 1 and "no face" in err and not (tmp_path / "o.png").exists()
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.full((48, 48, 3), 90, np.uint8))
    code, _, err = run_cli(capsys, "swap", tiny, "--double", rig_dir, "--out", tmp_path / "o.png")
    assert code == 1 and "smaller than 64 px" in err
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "o.png", "--blend", "paste")
    assert code == 1 and "--blend must be one of" in err
    ws = tmp_path / "studio"
    assert run_cli(capsys, "init", ws)[0] == 0
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "o.png", "--workspace", ws)
    assert code == 1 and "--plate-actor" in err and not (tmp_path / "o.png").exists()
    code, out, _ = run_cli(capsys, "audit", "show", "--workspace", ws)
    assert "gate.refused" in out and "swap (plate performer)" in out



def test_a_damaged_video_plate_is_refused_in_one_line_before_anything_is_written(tmp_path, capsys, rig_dir):
    from tests.capture.test_plate_io import _damaged

    plate = tmp_path / "plate.mp4"
    _plate(plate, n_face=12, n_blank=0)
    _damaged(plate, tmp_path / "damaged.mp4")
    out = tmp_path / "o.mp4"
    code, _, err = run_cli(capsys, "swap", tmp_path / "damaged.mp4", "--double", rig_dir, "--out", out)
    assert code == 1 and "video is damaged" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not (tmp_path / "o_swap").exists()

def test_an_output_name_of_the_wrong_kind_is_refused_before_the_plate_is_read(tmp_path, capsys, rig_dir, monkeypatch):
    """`swap plate.mp4 --out x.png` was refused only when the comp began, after the plate's probe and its whole
    tracking pass (an hour on a long plate); a frame folder swapped to `--out x.mp4` wrote a folder named x.mp4;
    a folder the user may not write in failed at the comp too. All are now refused before the plate is read."""
    import capture.plate_io as plate_io

    plate = tmp_path / "plate.mp4"
    _plate(plate, n_face=2, n_blank=0)
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "0001.png"), _astronaut(128))

    def never(*a, **k):
        raise AssertionError("the plate was probed")

    monkeypatch.setattr(plate_io, "probe_plate", never)
    for src, out, said in ((plate, tmp_path / "o.png", "the plate is a video; give an output video name"),
                           (folder, tmp_path / "o.mp4", "the plate is a folder of frames, and so is the output")):
        code, _, err = run_cli(capsys, "swap", src, "--double", rig_dir, "--out", out)
        assert code == 1 and said in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists() and not (tmp_path / "o_swap").exists()
    # a folder this user may not write in: it failed only when the comp began (root here: os.access stands in)
    import os

    locked, real_access = tmp_path / "locked", os.access
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda p, m, *a, **k: not (m & os.W_OK and str(p) == str(locked))
                        and real_access(p, m, *a, **k))
    code, _, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", locked / "o.mp4")
    assert code == 1 and f"no write permission in {locked}" in err and len(err.strip().splitlines()) == 1, err


def _jane_rigged(tmp_path, capsys):
    """A workspace with actors 'jane' (rig and face_replace consent, rigged in root/rigs/jane) and 'stunt' (no
    consent yet) -> (ws, root, the date the consents run until)."""
    import datetime as _dt

    from assets.actors import add_actor
    from assets.consent import grant
    from assets.workspace import init_workspace

    root = tmp_path / "ws"
    ws = init_workspace(root)
    until = (_dt.date.today() + _dt.timedelta(days=9)).isoformat()
    add_actor(ws, "Jane Roe", actor_id="jane")
    add_actor(ws, "Stunt Double", actor_id="stunt")
    grant(ws, "jane", ["rig", "face_replace"], "Film", until)
    code, _, err = run_cli(capsys, "rig", "--actor", "jane", "--production", "Film", "--preview-size", 64,
                           "--out", root / "rigs" / "jane", "-W", root)
    assert code == 0, err
    return ws, root, until


def test_a_real_performers_plate_swapped_with_the_virtual_double_is_disclosed_as_theirs(tmp_path, capsys):
    """The virtual double on a real performer's plate: the output shows the performer, so --no-provenance is
    refused, its credentials and audit record name them and their consent, and revoking that consent lists it."""
    import json

    from assets.consent import grant

    ws, root, until = _jane_rigged(tmp_path, capsys)
    cid = grant(ws, "stunt", ["face_replace"], "Film", until).id
    code, _, err = run_cli(capsys, "rig", "--preview-size", 64, "--seed", 5, "--out", root / "rigs" / "virtual", "-W",
                           root)     # (another seed: the same content as jane's rig would be known as hers)
    assert code == 0, err
    img = tmp_path / "plate.png"
    cv2.imwrite(str(img), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    swap = ["swap", img, "--double", root / "rigs" / "virtual", "--production", "Film", "--plate-actor", "stunt",
            "-W", root]
    code, _, err = run_cli(capsys, *swap, "--out", tmp_path / "o1.png", "--no-provenance")
    assert code == 1 and "imagery of actor 'stunt' is always watermarked and signed" in err, err
    assert not (tmp_path / "o1.png").exists()
    code, out, err = run_cli(capsys, *swap, "--out", tmp_path / "o2.png")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "verify", tmp_path / "o2.png", "--json", "-W", root)
    rep = json.loads(out)
    assert rep["record"]["actor"] == "virtual" and rep["record"]["performer"] == "stunt", rep["record"]
    assert rep["record"]["performer_consent"] == cid and rep["record"]["performer_status"] == "valid"
    assert rep["c2pa"]["assertion"]["performer"] == "stunt"
    code, out, _ = run_cli(capsys, "verify", tmp_path / "o2.png", "-W", root)
    assert f"plate performer: actor stunt, consent {cid}: valid" in out, out
    code, out, err = run_cli(capsys, "consent", "revoke", cid, "--reason", "withdrawn", "-W", root)
    assert code == 0 and str(tmp_path / "o2_swap") in out and str(tmp_path / "o2.png") in out, out
    # the swapped plate is known as theirs: given as a plate again, it is refused now their consent is revoked
    code, _, err = run_cli(capsys, "swap", tmp_path / "o2.png", "--double", root / "rigs" / "virtual",
                           "--production", "Film", "-W", root, "--out", tmp_path / "o3.png")
    assert code == 1 and "stunt" in err and not (tmp_path / "o3.png").exists(), err


def test_swap_of_a_real_actor_is_consented_watermarked_and_signed(tmp_path, capsys):
    import json

    from assets.consent import grant

    ws, root, until = _jane_rigged(tmp_path, capsys)
    img = tmp_path / "plate.png"
    cv2.imwrite(str(img), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    swap = ["swap", img, "--double", root / "rigs" / "jane", "--actor", "jane", "--production", "Film",
            "--plate-actor", "stunt", "-W", root]
    code, _, err = run_cli(capsys, *swap, "--out", tmp_path / "o1.png")
    assert code == 1 and "stunt" in err and not (tmp_path / "o1.png").exists()    # the performer has no consent
    grant(ws, "stunt", ["face_replace"], "Film", until)
    code, _, err = run_cli(capsys, *swap, "--out", tmp_path / "o2.png", "--no-provenance")
    assert code == 1 and "--no-provenance is only allowed for the virtual actor" in err
    code, out, err = run_cli(capsys, *swap, "--out", tmp_path / "o3.png")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "verify", tmp_path / "o3.png", "--json", "-W", root)
    rep = json.loads(out)
    assert code == 0 and rep["c2pa"]["state"] == "trusted" and rep["watermark"]["found"]
    assert rep["record"]["actor"] == "jane" and rep["c2pa"]["assertion"]["use"] == "face_replace"
    # a photo of the performer is their likeness: recorded under the plate actor, not the double's
    from core.storage import sha256_file

    photo = tmp_path / "stunt_headshot.png"
    cv2.imwrite(str(photo), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    code, out, err = run_cli(capsys, *swap, "--out", tmp_path / "o5.png", "--performer-photo", photo)
    assert code == 0 and "1 of 1 frames swapped" in out, err
    with ws.read() as con:
        seen = {r[0] for r in con.execute("SELECT actor_id FROM content WHERE sha256=?", (sha256_file(photo),))}
    assert seen == {"stunt"}, seen
    strips = list((tmp_path / "o3_swap" / "strips").glob("*.png"))
    assert strips and json.loads(run_cli(capsys, "verify", strips[0], "--json", "-W", root)[1])["watermark"]["found"]
    # an EXR sequence: linear float is not watermarked; each frame is signed with a sidecar manifest
    from capture.frame_files import display_to_linear
    from neural_render.image_io import write_exr

    (tmp_path / "exr").mkdir()
    for i in range(2):
        write_exr(tmp_path / "exr" / f"sh010.{1001 + i}.exr", display_to_linear(_astronaut()))
    code, out, err = run_cli(capsys, *[a if a != img else tmp_path / "exr" for a in swap], "--out", tmp_path / "o4")
    assert code == 0 and "2 of 2 frames swapped" in out, err
    rep = json.loads(run_cli(capsys, "verify", tmp_path / "o4" / "sh010.1002.exr", "--json", "-W", root)[1])
    assert rep["c2pa"]["state"] == "trusted" and rep["record"]["actor"] == "jane", rep
    # 16-bit TIFF frames carry the manifest and the watermark; BMP frames the watermark and a sidecar manifest;
    # DPX frames, a scan's codes, a sidecar only
    from capture.dpx_frames import write_dpx

    for kind in ("tif", "bmp", "dpx"):
        (tmp_path / kind).mkdir()
        for i in range(2):
            frame = _astronaut().astype(np.uint16) * 257 + np.random.default_rng(i).integers(0, 120, (256, 256, 3),
                                                                                             dtype=np.uint16)
            name = tmp_path / kind / f"sh010.{1001 + i}.{kind}"
            if kind == "dpx":
                write_dpx(name, frame)
            else:
                cv2.imwrite(str(name), frame[..., ::-1] if kind == "tif" else _astronaut()[..., ::-1])
        code, out, err = run_cli(capsys, *[a if a != img else tmp_path / kind for a in swap], "--out",
                                 tmp_path / f"o_{kind}")
        assert code == 0 and "2 of 2 frames swapped" in out, err
        rep = json.loads(run_cli(capsys, "verify", tmp_path / f"o_{kind}" / f"sh010.1002.{kind}", "--json", "-W",
                                 root)[1])
        assert rep["c2pa"]["state"] == "trusted" and rep["record"]["actor"] == "jane", rep
        assert rep["watermark"]["found"] == (kind != "dpx"), rep
        assert (tmp_path / f"o_{kind}" / f"sh010.1002.{kind}.c2pa").exists() == (kind != "tif")
        if kind == "tif":     # the watermark moves the 16-bit codes by whole 8-bit steps: their low bits kept
            src = cv2.imread(str(tmp_path / kind / "sh010.1002.tif"), cv2.IMREAD_UNCHANGED).astype(int)
            got = cv2.imread(str(tmp_path / "o_tif" / "sh010.1002.tif"), cv2.IMREAD_UNCHANGED).astype(int)
            assert np.any(got != src, axis=-1).mean() > 0.5                           # marked nearly everywhere
            assert np.all((got - src) % 257 == 0, axis=-1).mean() > 0.75               # all but the face
    # videos in other containers: a ProRes .mov embeds the manifest, an .mkv takes a sidecar; both watermarked
    _plate(tmp_path / "p.mp4", n_face=3, n_blank=0)
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ff, "-v", "error", "-i", tmp_path / "p.mp4", "-c:v", "prores_ks", tmp_path / "p.mov"], check=True)
    for plate, out in ((tmp_path / "p.mov", tmp_path / "om.mov"), (tmp_path / "p.mp4", tmp_path / "ok.mkv")):
        code, _, err = run_cli(capsys, *[a if a != img else plate for a in swap], "--out", out)
        assert code == 0, err
        rep = json.loads(run_cli(capsys, "verify", out, "--json", "-W", root)[1])
        assert rep["c2pa"]["state"] == "trusted" and rep["watermark"]["found"], rep
        assert (out.parent / (out.name + ".c2pa")).exists() == (out.suffix == ".mkv")


def test_a_frame_folder_plate_is_a_likeness_too(tmp_path, capsys, rig_dir):
    """A folder of frames proves nothing about whose performance it is: refused without --plate-actor."""
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "shot.1001.png"), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    ws = tmp_path / "studio"
    assert run_cli(capsys, "init", ws)[0] == 0
    code, _, err = run_cli(capsys, "swap", frames, "--double", rig_dir, "--out", tmp_path / "out", "--workspace", ws)
    assert code == 1 and "--plate-actor" in err and not (tmp_path / "out").exists()


def _model_of(rig_dir, out, rgb, perturb_uvs=False):
    """An untrained neural double of the rig's topology whose RGB prior is the constant colour ``rgb`` (linear):
    untrained, it draws its prior, so the face it puts in a plate has that colour."""
    import torch

    from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig, save_model
    from rigging import Rig

    rig = Rig.load(rig_dir)
    uvs = torch.as_tensor(np.asarray(rig.uvs), dtype=torch.float32) + (0.01 if perturb_uvs else 0.0)
    cfg = NeuralDoubleConfig(channels=8, texture_size=64, levels=2, width=8, depth=2)
    model = NeuralDouble(cfg, torch.as_tensor(rig.faces), uvs, torch.as_tensor(np.asarray(rig.face_uvs)),
                         torch.as_tensor(rig.vertices))
    model.init_from_bake(torch.tensor(rgb, dtype=torch.float32).expand(64, 64, 3))
    return save_model(out, model)


def test_a_neural_double_draws_the_face(tmp_path, capsys, rig_dir):
    """--double MODEL_DIR --rig RIG_DIR: the neural double (here untrained: its green RGB prior) is what lands in
    the plate, the rig's head region bounds it, and the manifest names the model; bad pairings are refused."""
    import json

    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig
    from neural_render.face_composite import polygon_mask

    model = _model_of(rig_dir, tmp_path / "model", (0.05, 0.6, 0.05))
    (tmp_path / "w").mkdir()
    double = load_face_double(model, tmp_path / "w", albedo_size=64, rig_dir=rig_dir)
    assert double.renderer == "neural"
    img = tmp_path / "still.png"
    cv2.imwrite(str(img), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "swapped.png"
    swap_plate(img, double, out, SwapConfig(blend="feather", colour="none"))
    res = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB).astype(float)
    lm = np.load(side_folder(out) / "tracks.npz")["landmarks"][0]
    inner = cv2.erode(polygon_mask((256, 256), lm).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    r, g, b = (res[..., c][inner].mean() for c in range(3))
    assert g > r + 60 and g > b + 60, (r, g, b)          # the face is the neural double's green
    man = json.loads((side_folder(out) / "manifest.json").read_text())
    assert man["params"]["renderer"] == "neural" and "neural_double" in man["inputs"]
    code, _, err = run_cli(capsys, "swap", img, "--double", model, "--out", tmp_path / "o.png")
    assert code == 1 and "--rig" in err and not (tmp_path / "o.png").exists()
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--rig", rig_dir, "--out", tmp_path / "o.png")
    assert code == 1 and "not a model folder" in err
    other = _model_of(rig_dir, tmp_path / "other", (0.5, 0.5, 0.5), perturb_uvs=True)
    code, _, err = run_cli(capsys, "swap", img, "--double", other, "--rig", rig_dir, "--out", tmp_path / "o.png")
    assert code == 1 and "another topology" in err and not (tmp_path / "o.png").exists()


def test_swap_device_cuda_without_a_gpu_is_refused_before_anything_is_written(tmp_path, capsys, rig_dir,
                                                                              monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    img = tmp_path / "still.png"
    cv2.imwrite(str(img), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "o.png", "--device", "cuda")
    assert code == 1 and "--device cuda: no CUDA device" in err and not (tmp_path / "o.png").exists()
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "o.png", "--device", "tpu")
    assert code == 1 and "--device must be auto, cpu or cuda" in err
    code, out, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "o.png", "--device", "auto",
                             "--no-debias", "--blend", "feather")
    assert code == 0, err
    import json

    manifest = json.loads((tmp_path / "o_swap" / "manifest.json").read_text())
    assert manifest["params"]["device"] == "cpu"


def test_swap_cli_redoes_a_comp_from_an_edited_face_track(tmp_path, capsys, rig_dir):
    """--landmarks: a previous swap's tracks.npz, its landmarks moved, drives a new swap (solved as given); a file
    without landmarks, a missing one, or one of the wrong length is refused in one line, nothing written."""
    import json

    img = tmp_path / "still.png"
    cv2.imwrite(str(img), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    assert run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "a.png", "--no-debias")[0] == 0
    tracks = dict(np.load(tmp_path / "a_swap" / "tracks.npz"))
    edited = tmp_path / "edited.npz"
    np.savez(edited, landmarks=tracks["landmarks"] + np.float32([0.0, 3.0]))
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "b.png", "--landmarks",
                           edited)
    assert code == 0, err
    b = np.load(tmp_path / "b_swap" / "tracks.npz")
    assert np.allclose(b["landmarks"], tracks["landmarks"] + np.float32([0.0, 3.0]))
    assert abs(float(b["translation"][0, 1] - tracks["translation"][0, 1])) > 0       # the head moved down
    manifest = json.loads((tmp_path / "b_swap" / "manifest.json").read_text())
    assert manifest["params"]["face_landmarks"] == "given" and manifest["params"]["landmarks_file"] == str(edited)
    np.savez(tmp_path / "other.npz", points=np.zeros((1, 478, 2)))
    np.save(tmp_path / "short.npy", np.zeros((2, 478, 2), np.float32))
    np.save(tmp_path / "inf.npy", np.full((1, 478, 2), np.inf, np.float32))
    (tmp_path / "cut.npz").write_bytes(edited.read_bytes()[:200])
    for bad, words in ((tmp_path / "other.npz", "no 'landmarks' array"), (tmp_path / "none.npz", "no such file"),
                       (tmp_path / "short.npy", "expected (1, 478, 2)"), (tmp_path / "inf.npy", "infinite"),
                       (tmp_path / "cut.npz", "no 'landmarks' array")):
        code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", tmp_path / "c.png",
                               "--landmarks", bad)
        assert code == 1 and words in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "c.png").exists() and not (tmp_path / "c_swap").exists()


@pytest.mark.gpu
def test_swap_on_cuda_matches_the_cpu_and_is_faster(tmp_path, double):
    """The head drawn on the GPU: the same swap as on the CPU (within 2 grey levels on average), in less time
    (the gpu-marked speed check of the issue; the figures go to docs/benchmarks.md from benchmarks/face_swap.py
    --speed --option device=cuda)."""
    import time

    from capture.plate_io import iter_plate_frames, probe_plate
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.swap import SwapConfig

    plate = tmp_path / "plate.mp4"
    _plate(plate, n_face=12, n_blank=0, size=512)
    seconds, frames = {}, {}
    for device in ("cpu", "cuda", "cpu", "cuda"):                 # second round timed: both warm
        t = time.perf_counter()
        swap_plate(plate, double, tmp_path / f"{device}.mp4", SwapConfig(device=device), force=True)
        seconds[device] = time.perf_counter() - t
        frames[device] = [f.astype(float) for _, f in iter_plate_frames(probe_plate(tmp_path / f"{device}.mp4"))]
    diff = np.mean([np.abs(a - b).mean() for a, b in zip(frames["cpu"], frames["cuda"], strict=True)])
    assert diff < 2.0, diff
    assert seconds["cuda"] < seconds["cpu"], seconds



@pytest.mark.gpu
def test_a_1080p_swap_on_the_gpu_reaches_30_frames_per_second(tmp_path, rig_dir):
    """The issue's GPU goal as a benchmark: a 48-frame 1920x1080 plate (the astronaut centred and moved, as
    `benchmarks/face_swap.py --speed` makes it) swapped end to end with the head on CUDA and the defaults
    otherwise, the second of two runs timed; prints the figure. Not met when this was written: outside the head's
    render a 1080p frame costs about 640 ms of CPU (MediaPipe, ffmpeg, the comp's image work; docs/benchmarks.md,
    "Damaged plates refused, and where a 1080p swap's CPU goes")."""
    import time

    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.stills import plate_from_still
    from doppel.face_swap.swap import SwapConfig

    canvas = np.full((1080, 1920, 3), 60, np.uint8)
    canvas[:, 420:1500] = _astronaut(1080)
    plate = tmp_path / "plate.mp4"
    w = imageio_ffmpeg.write_frames(str(plate), (1920, 1080), fps=24, macro_block_size=1, ffmpeg_log_level="error",
                                    quality=8)
    w.send(None)
    for f in plate_from_still(canvas, 48, seed=1, strength=0.5):
        w.send(np.ascontiguousarray(f))
    w.close()
    (tmp_path / "work").mkdir()
    double = load_face_double(rig_dir, tmp_path / "work")
    for _ in range(2):
        t = time.perf_counter()
        res = swap_plate(plate, double, tmp_path / "out.mp4", SwapConfig(device="cuda"), force=True)
        fps = 48 / (time.perf_counter() - t)
    print(f"1920x1080 swap, head on CUDA: {fps:.2f} frames/s ({len(res.passed_through)} frames passed through)")
    assert not res.passed_through
    assert fps >= 30.0, fps

def test_a_face_in_a_wide_shot_is_swapped(tmp_path, double):
    """A face about 60 px wide in a 1280x720 frame: MediaPipe's face mesh alone finds nothing (the swap would
    refuse the plate); the tracker's crops find it and the face is replaced there and only there."""
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.swap import SwapConfig

    frame = np.full((720, 1280, 3), 60, np.uint8)
    frame[180:540, 460:820] = _astronaut(360)
    cv2.imwrite(str(tmp_path / "wide.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    with pytest.raises(ValueError, match="no face found"):
        swap_plate(tmp_path / "wide.png", double, tmp_path / "a.png", SwapConfig(small_faces=False))
    res = swap_plate(tmp_path / "wide.png", double, tmp_path / "b.png", SwapConfig())
    assert res.passed_through == [] and res.track.valid.all()
    from doppel.face_swap.side_folder import side_folder

    assert np.load(side_folder(tmp_path / "b.png") / "tracks.npz")["face_from_crop"].tolist() == [True]
    out = cv2.cvtColor(cv2.imread(str(tmp_path / "b.png")), cv2.COLOR_BGR2RGB)
    changed = np.abs(out.astype(int) - frame).max(axis=2) > 12
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 400 and 520 < xs.mean() < 760 and 180 < ys.mean() < 330    # on the face, nowhere else


def test_a_large_face_is_drawn_in_strips_as_in_one_piece(double):
    """The head's box is rasterized in horizontal strips (bounded temporaries for a 4K plate's face): the same
    image as one piece, strips down to a few rows."""
    from scipy.spatial.transform import Rotation

    from doppel.face_swap.render_head import render_head, strips

    box = (3, 5, 130, 160)
    cut = strips(box, 2, 4 * 128 * 7)
    assert len(cut) == 23 and cut[0][1] == 5 and cut[-1][3] == 160
    assert all(a[3] + 1 == b[1] and a[0] == 3 and a[2] == 130 for a, b in zip(cut, cut[1:], strict=False))
    assert strips(box, 1, 10) == [(3, y, 130, y) for y in range(5, 161)]          # at least one row a strip
    K = np.array([[300.0, 0, 64], [0, 300.0, 80], [0, 0, 1]])
    R = np.diag([-1.0, -1.0, 1.0]) @ Rotation.from_euler("y", 180, degrees=True).as_matrix()
    t = np.array([0, 0, 0.6]) - R @ double.head_bind.mean(0)
    w = np.zeros(len(double.basis.names))
    whole, a_whole = render_head(double, R, t, w, K, box, strip_samples=2 ** 40)
    assert a_whole.mean() > 0.3                                   # the head fills much of the box
    for samples in (4 * 128 * 7, 4 * 128 * 30):
        rgb, a = render_head(double, R, t, w, K, box, strip_samples=samples)
        assert np.array_equal(a, a_whole) and np.abs(rgb - whole).max() < 1e-3


def _close_up(double, size=(360, 480)):
    """R, t, K, box, weights: the double's head facing a camera that frames it in a box of about ``size`` px."""
    from scipy.spatial.transform import Rotation

    K = np.array([[900.0, 0, 200], [0, 900.0, 250], [0, 0, 1]])
    R = np.diag([-1.0, -1.0, 1.0]) @ Rotation.from_euler("y", 180, degrees=True).as_matrix()
    t = np.array([0, 0, 0.6]) - R @ double.head_bind.mean(0)
    return R, t, K, (20, 10, 19 + size[0], 9 + size[1]), np.zeros(len(double.basis.names))


def test_a_head_larger_than_its_cap_is_drawn_at_the_cap_and_resized_up(double, monkeypatch):
    """A face box longer than `FaceDouble.max_px` is drawn at most max_px a side and resized up to the box: the
    same picture and coverage as drawn at full size, less the finest detail; 0 draws at full size."""
    import doppel.face_swap.render_head as rh

    R, t, K, box, w = _close_up(double)
    drawn, real = [], rh._draw
    monkeypatch.setattr(rh, "_draw", lambda d, R, t, w, K, b, *a: drawn.append(b) or real(d, R, t, w, K, b, *a))
    assert double.max_px == 512 and rh.draw_size(360, 480, 128) == (96, 128) and rh.draw_size(90, 80, 128) == (90, 80)
    out = {}
    for px in (0, 128):
        monkeypatch.setattr(double, "max_px", px)
        out[px] = rh.render_head(double, R, t, w, K, box)
    assert drawn == [box, (0, 0, 95, 127)]
    (full, a_full), (cap, a_cap) = out[0], out[128]
    assert cap.shape == full.shape == (480, 360, 3) and a_cap.shape == a_full.shape == (480, 360)
    assert a_full.mean() > 0.3 and np.abs(a_cap - a_full).mean() < 0.01          # the same coverage
    low = [cv2.resize(x * a[..., None], (45, 60), interpolation=cv2.INTER_AREA) for x, a in out.values()]
    assert np.abs(low[0] - low[1]).mean() < 0.01                                 # the same picture, coarser


def test_a_neural_double_is_drawn_at_its_cap_and_its_default_cap_follows_its_training_size(tmp_path, rig_dir,
                                                                                              monkeypatch):
    """The neural double draws a capped box at the cap's size (its U-Net's work shrinks with it); its default
    cap is 512 px or its training size if larger; `SwapConfig.head_px` sets the cap, bad values refused."""
    import json

    import doppel.face_swap.neural_head as nh
    import neural_render.strip_render as sr
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.render_head import render_head
    from doppel.face_swap.swap import SwapConfig, check_config, head_device

    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    prior = np.stack([0.5 + 0.4 * np.sin(6 * xx), 0.5 + 0.4 * np.cos(5 * yy), 0.3 + 0.2 * xx], -1)
    (tmp_path / "w").mkdir()
    model = _model_of(rig_dir, tmp_path / "model", prior)
    double = load_face_double(model, tmp_path / "w", albedo_size=64, rig_dir=rig_dir)
    R, t, K, box, w = _close_up(double)
    sizes, real = [], sr.render_in_strips
    monkeypatch.setattr(sr, "render_in_strips", lambda m, v, cam, c: sizes.append((cam.width, cam.height))
                        or real(m, v, cam, c))
    out = {}
    for px in (0, 128):
        double.max_px = px
        out[px] = render_head(double, R, t, w, K, box)
    assert sizes == [(360, 480), (96, 128)]                     # 360 x 480 at full size; 96 x 128 capped
    (full, a), (cap, _) = out[0], out[128]
    low = [cv2.resize(x * a[..., None], (45, 60), interpolation=cv2.INTER_AREA) for x in (full, cap)]
    assert full.std() > 0.05 and np.abs(low[0] - low[1]).mean() < 0.01
    assert load_face_double(model, tmp_path / "w", albedo_size=64, rig_dir=rig_dir).max_px == 512   # no size known
    cfg = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**cfg, "summary": {"size": [1024, 768]}}))
    double = load_face_double(model, tmp_path / "w", albedo_size=64, rig_dir=rig_dir)
    assert double.max_px == 1024 and nh._trained_px({}) == 0
    head_device(double, SwapConfig())
    assert double.max_px == 1024
    head_device(double, SwapConfig(head_px=300))
    assert double.max_px == 300
    with pytest.raises(ValueError, match="--head-px must be 0"):
        check_config(SwapConfig(head_px=10), type("Info", (), {"frame_count": 1})())


def test_frames_the_detector_missed_before_it_found_the_face_are_tracked_backwards(tmp_path, monkeypatch):
    """The forward tracker finds the face from frame 3 on only (as MediaPipe's detector often does at a shot's
    start): frames 0-2 are tracked again backwards from frame 3, land where a tracker that saw them finds the
    face, and tracks.npz says which; without backfill they stay faceless."""
    import capture.face_tracking as ft
    from doppel.face_swap.swap import SwapConfig, track_shot
    from reconstruction.head_tracking import inter_ocular

    plate = tmp_path / "plate.mp4"
    frames = _plate(plate, n_face=6, n_blank=0)
    with ft.PlateTracker(max_faces=1) as tracker:
        seen = np.array([tracker.process(f).face(0) for f in frames])

    class LateDetector(ft.PlateTracker):              # the forward pass (the one that tracks hands) is late
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.calls = 0

        def process(self, rgb):
            r = super().process(rgb)
            self.calls += 1
            if self._hands is not None and self.calls <= 3:
                r.faces = r.faces[:0]
            return r

    monkeypatch.setattr(ft, "PlateTracker", LateDetector)
    from capture.plate_io import probe_plate

    info = probe_plate(plate)
    late = track_shot(info, SwapConfig(backfill=False), 0, 6)
    assert late.valid.tolist() == [False] * 3 + [True] * 3
    shot = track_shot(info, SwapConfig(), 0, 6)
    assert shot.valid.all() and shot.backfilled.tolist() == [True] * 3 + [False] * 3
    err = np.linalg.norm(shot.landmarks[:3] - seen[:3], axis=-1).mean() / inter_ocular(seen[0])
    assert err < 0.03, err


def test_a_video_swapped_in_a_workspace_keeps_its_sound_and_is_signed(tmp_path, capsys, monkeypatch):
    """The user's path for a real actor: `doppel swap` of an MP4 with an audio track inside a workspace. The
    output is watermarked as its frames are encoded (never decoded and re-encoded for the mark), signed under
    its own name, and still has the plate's audio; an output format that cannot be signed is refused first."""
    import json
    import subprocess

    import imageio.v2 as imageio

    from assets import audit, disclosure
    from assets.consent import grant
    from capture import plate_io
    from doppel.face_swap import pipeline

    ws, root, until = _jane_rigged(tmp_path, capsys)
    silent = tmp_path / "silent.mp4"
    _plate(silent, n_face=6, n_blank=0)
    plate = tmp_path / "plate.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(silent), "-f", "lavfi",
                    "-i", "sine=frequency=440:sample_rate=48000", "-c:v", "copy", "-c:a", "aac", "-shortest",
                    str(plate)], check=True)
    swap = ["swap", plate, "--double", root / "rigs" / "jane", "--actor", "jane", "--production", "Film",
            "--plate-actor", "stunt", "-W", root, "--out"]
    with monkeypatch.context() as m:    # consent is decided before the plate is decoded whole (minutes when long)
        m.setattr(plate_io, "_decode_video", lambda *a, **k: pytest.fail("decoded a plate the gate refuses"))
        code, _, err = run_cli(capsys, *swap, tmp_path / "early.mp4")
    assert code == 1 and "stunt" in err and "face_replace" in err and not (tmp_path / "early_swap").exists(), err
    grant(ws, "stunt", ["face_replace"], "Film", until)
    with monkeypatch.context() as m:             # an OUT it cannot sign is refused before the tracking starts
        from assets import content_credentials

        m.delitem(content_credentials.EMBEDDED, ".mov")             # as if c2pa could not sign a .mov
        m.setattr(pipeline, "track_shot", lambda *a, **k: pytest.fail("tracked a plate it cannot sign"))
        code, _, err = run_cli(capsys, *swap, tmp_path / "swapped.mov")
    assert code == 1 and "cannot carry content credentials" in err and not (tmp_path / "swapped_swap").exists()

    def second_encode(*a, **k):
        raise AssertionError("the swapped video was decoded and re-encoded to be marked")

    monkeypatch.setattr(disclosure, "_rewrite_video", second_encode)
    out = tmp_path / "swapped.mp4"
    code, _, err = run_cli(capsys, *swap, out)
    assert code == 0, err
    with imageio.get_reader(out, format="FFMPEG") as r:
        assert r.get_meta_data()["audio_codec"] == "aac" and sum(1 for _ in r) == 6
    rep = json.loads(run_cli(capsys, "verify", out, "--json", "-W", root)[1])
    assert rep["c2pa"]["state"] == "trusted" and rep["watermark"]["found"]
    marks = {e.seq: e.record["file"] for e in audit.entries(ws) if e.record.get("action") == "disclosure.mark"}
    assert marks[rep["watermark"]["seq"]] == "swapped.mp4"          # the name it is published under


def test_a_scene_linear_exr_sequence_is_swapped_where_the_face_is_and_kept_as_it_was_elsewhere(tmp_path, capsys,
                                                                                                rig_dir):
    """VFX plates come as EXR frames: half-float linear RGB with alpha and other channels. The swap reads them
    as display RGB and writes EXR frames back in which only the face's pixels changed: every other sample, the
    alpha, a depth channel and the header's attributes are the plate's own."""
    import OpenEXR

    from capture.frame_files import display_to_linear
    from doppel.face_swap.stills import plate_from_still

    plate = tmp_path / "plate"
    plate.mkdir()
    for i, frame in enumerate(plate_from_still(_astronaut(), 3, seed=0, strength=0.2)):
        channels = {"RGB": (display_to_linear(frame) * 1.25).astype(np.float16),     # a stop brighter: some > 1
                    "A": np.ones(frame.shape[:2], np.float16), "Z": np.full(frame.shape[:2], 2.0 + i, np.float32)}
        with OpenEXR.File({"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage,
                           "capDate": "2026:12:04 10:00:00"}, channels) as f:
            f.write(str(plate / f"sh010.{1001 + i}.exr"))
    code, out, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", tmp_path / "swapped")
    assert code == 0 and "3 of 3 frames swapped" in out, err
    names = sorted(p.name for p in (tmp_path / "swapped").iterdir())
    assert names == ["sh010.1001.exr", "sh010.1002.exr", "sh010.1003.exr"]
    for name in names:
        with OpenEXR.File(str(plate / name), separate_channels=True) as f:
            src = {k: np.array(v.pixels) for k, v in f.channels().items()}
        with OpenEXR.File(str(tmp_path / "swapped" / name), separate_channels=True) as f:
            got = {k: np.array(v.pixels) for k, v in f.channels().items()}
            assert f.header()["capDate"] == "2026:12:04 10:00:00"
        assert np.array_equal(got["A"], src["A"]) and np.array_equal(got["Z"], src["Z"])
        changed = np.any(np.stack([got[c] != src[c] for c in "RGB"]), axis=0)
        ys, xs = np.nonzero(changed)
        assert got["R"].dtype == np.float16 and 1500 < changed.sum() < 0.4 * changed.size    # the face, only
        assert 70 < xs.mean() < 190 and 20 < ys.mean() < 150


def test_a_log_dpx_scan_is_swapped_in_a_display_view_and_written_back_in_log_under_its_header(tmp_path, capsys,
                                                                                            rig_dir):
    """A 10-bit DPX sequence in ARRI LogC3: --plate-colorspace converts it to sRGB for the swap (OCIO) and the
    face back into LogC; outside the face every code is the scan's, and the header (timecode, transfer) is kept."""
    import OpenImageIO as oiio

    from capture.dpx_frames import read_dpx, write_dpx
    from capture.plate_colour import from_working
    from doppel.face_swap.stills import plate_from_still

    plate = tmp_path / "scan"
    plate.mkdir()
    for i, frame in enumerate(plate_from_still(_astronaut(), 3, seed=0, strength=0.2)):
        spec = oiio.ImageSpec(256, 256, 3, oiio.UINT16)
        for k, v in {"oiio:BitsPerSample": 10, "dpx:Transfer": "Logarithmic", "dpx:TimeCode": f"01:00:00:0{i}"}.items():
            spec.attribute(k, v)
        logc = np.round(np.clip(from_working(frame, "ARRI LogC3 (EI800)"), 0, 1) * 65535).astype(np.uint16)
        write_dpx(plate / f"sh010.{1001 + i}.dpx", logc, spec)
    code, out, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", tmp_path / "swapped",
                             "--plate-colorspace", "ARRI LogC3 (EI800)")
    assert code == 0 and "3 of 3 frames swapped" in out, err
    for i, name in enumerate(sorted(p.name for p in plate.iterdir())):
        src, _ = read_dpx(plate / name)
        got, spec = read_dpx(tmp_path / "swapped" / name)
        assert spec.getattribute("dpx:TimeCode") == f"01:00:00:0{i}" and spec.getattribute("dpx:Transfer") == \
            "Logarithmic" and spec.get_int_attribute("oiio:BitsPerSample") == 10
        changed = np.any(got != src, axis=-1)
        ys, xs = np.nonzero(changed)
        assert 1500 < changed.sum() < 0.4 * changed.size and 70 < xs.mean() < 190 and 20 < ys.mean() < 150
        face = got[changed].astype(float) / 65535
        assert 0.3 < face.mean() < 0.7          # log codes (a display-encoded face would reach far lower and higher)
    import json

    manifest = json.loads((tmp_path / "swapped_swap" / "manifest.json").read_text())
    assert manifest["params"]["plate_colorspace"] == "ARRI LogC3 (EI800)"
    assert "read as ARRI LogC3 (EI800) (OCIO)" in (tmp_path / "swapped_swap" / "swap_report.html").read_text()


def test_shutter_auto_takes_the_angle_a_dpx_scan_declares(tmp_path, capsys, rig_dir):
    """--shutter auto on a DPX sequence whose film header declares a 172.8-degree shutter: the head is blurred with
    that angle (the manifest and tracks.npz say so) and the console names where it came from."""
    import json

    import OpenImageIO as oiio

    from capture.dpx_frames import write_dpx
    from doppel.face_swap.stills import plate_from_still

    plate = tmp_path / "scan"
    plate.mkdir()
    for i, frame in enumerate(plate_from_still(_astronaut(), 2, seed=0, strength=0.2)):
        spec = oiio.ImageSpec(256, 256, 3, oiio.UINT16)
        spec.attribute("dpx:ShutterAngle", 172.8)
        write_dpx(plate / f"sh010.{1001 + i}.dpx", frame.astype(np.uint16) * 257, spec)
    code, out, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", tmp_path / "swapped",
                             "--shutter", "auto", "--shutter-samples", "2")
    assert code == 0 and "2 of 2 frames swapped" in out, err
    assert "shutter: 172.8 degrees, its DPX header's shutter angle (scan)" in out
    manifest = json.loads((tmp_path / "swapped_swap" / "manifest.json").read_text())
    assert manifest["params"]["motion_blur"] == {"angle": 172.8, "samples": 2, "position": "centre"}
    assert float(np.load(tmp_path / "swapped_swap" / "tracks.npz")["shutter_deg"]) == 172.8


def test_the_cli_swaps_into_every_video_container_and_frame_format_outside_a_workspace(tmp_path, capsys, rig_dir):
    """Outside a workspace nothing is signed, so no output format is refused for its content credentials (a
    .mov or .mxf OUT, a TIFF sequence were refused at the end of the swap, after all its work)."""
    from capture.plate_io import probe_plate

    _plate(tmp_path / "p.mp4", n_face=2, n_blank=0)
    frames = tmp_path / "tif"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"sh.{1001 + i}.tif"), _astronaut().astype(np.uint16)[..., ::-1] * 257)
    for plate, out in ((tmp_path / "p.mp4", tmp_path / "om.mov"), (tmp_path / "p.mp4", tmp_path / "ox.mxf"),
                       (frames, tmp_path / "o_tif")):
        code, out_text, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", out, "--label", "SYNTHETIC")
        assert code == 0 and "2 of 2 frames swapped" in out_text, err
        assert probe_plate(out).frame_count == 2


def test_a_log_prores_plate_is_swapped_in_its_colour_space_and_keeps_its_10_bit_codes(tmp_path, capsys, rig_dir):
    """A camera's ProRes in ARRI LogC3 at 10 bits: --plate-colorspace converts its decoded RGB to sRGB for the
    swap and the face back into LogC; around the face every pixel keeps its 10-bit code within the re-encode's
    rounding (before, the whole frame went through 8 bits: several 10-bit levels off everywhere). An unknown
    colour space is refused before anything, in one line, with the closest names."""
    from capture.dpx_frames import write_dpx
    from capture.plate_colour import from_working
    from doppel.face_swap.stills import plate_from_still

    (tmp_path / "scan").mkdir()
    for i, frame in enumerate(plate_from_still(_astronaut(), 4, seed=0, strength=0.2)):
        logc = np.round(np.clip(from_working(frame, "ARRI LogC3 (EI800)"), 0, 1) * 65535).astype(np.uint16)
        write_dpx(tmp_path / "scan" / f"f.{i:04d}.dpx", logc)
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    plate = tmp_path / "logc.mov"
    subprocess.run([ff, "-v", "error", "-i", tmp_path / "scan" / "f.%04d.dpx", "-c:v", "prores_ks", "-profile:v", "3",
                    "-pix_fmt", "yuv422p10le", plate], check=True)
    code, out, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", tmp_path / "a.mov",
                             "--plate-colorspace", "LogC")
    assert code != 0 and "no colour space 'LogC'" in err and "closest:" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a.mov").exists()
    code, out, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", tmp_path / "b.mov",
                             "--plate-colorspace", "ARRI LogC3 (EI800)", "--matte")
    assert code == 0 and "4 of 4 frames swapped" in out, err

    def codes(path):
        raw = subprocess.run([ff, "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb48le", "-"],
                             capture_output=True, check=True).stdout
        return np.frombuffer(raw, "<u2").reshape(4, 256, 256, 3).astype(float) / 64     # 10-bit levels

    src, got = codes(plate), codes(tmp_path / "b.mov")
    matte = np.stack([cv2.imread(str(tmp_path / "b_swap" / "matte" / f"{i:06d}.png"), 0) for i in range(4)])
    away = cv2.dilate((matte > 0).astype(np.uint8).reshape(-1, 256), np.ones((9, 9), np.uint8)).reshape(4, 256, 256)
    assert np.abs(got - src)[away == 0].mean() < 1.5      # ProRes's re-encode: 0.93 (through 8 bits: 5.3)
    face = got[matte > 128] / 1023
    assert 0.25 < face.mean() < 0.7 and np.abs(got - src)[matte > 128].mean() > 4      # new, in log


def test_a_plate_that_cuts_to_another_shot_is_swapped_shot_by_shot_and_the_cut_is_named(tmp_path, double, caplog):
    """An edited sequence handed over as one plate: each shot is tracked, colour-matched and blended on its own,
    to the bit what swapping each with --start/--end gives, and the swap says where it cuts (the log, the report,
    the manifest and tracks.npz)."""
    import json

    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.stills import plate_from_still
    from doppel.face_swap.swap import SwapConfig

    ast = _astronaut()
    other = cv2.convertScaleAbs(np.ascontiguousarray(ast[:, ::-1]), alpha=0.6, beta=10)   # mirrored and darker
    frames = list(plate_from_still(ast, 6, seed=0, strength=0.2)) + list(plate_from_still(other, 6, seed=1,
                                                                                           strength=0.2))
    plate = tmp_path / "cut"
    plate.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(plate / f"f.{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    with caplog.at_level("WARNING"):
        res = swap_plate(plate, double, tmp_path / "out")
    assert res.cuts == [6] and "--start 0 --end 6, --start 6 --end 12" in caplog.text
    first = swap_plate(plate, double, tmp_path / "first", SwapConfig(end=6))
    second = swap_plate(plate, double, tmp_path / "second", SwapConfig(start=6))
    assert first.cuts == second.cuts == []
    for i in range(12):
        name = f"f.{i:04d}.png"
        alone = cv2.imread(str(tmp_path / ("first" if i < 6 else "second") / name))
        assert np.array_equal(cv2.imread(str(tmp_path / "out" / name)), alone), i
    side = side_folder(tmp_path / "out")
    assert "cuts to another shot at frame(s) 6" in (side / "swap_report.html").read_text()
    assert json.loads((side / "manifest.json").read_text())["swap"]["cuts"] == [6]
    assert np.load(side / "tracks.npz")["cuts"].tolist() == [6]


def test_a_range_beyond_a_numbered_sequence_says_that_frames_count_from_0(tmp_path):
    from capture.plate_io import probe_plate
    from doppel.face_swap.swap import SwapConfig, check_config

    for n in range(1001, 1011):
        cv2.imwrite(str(tmp_path / f"sh010.{n}.png"), np.zeros((96, 128, 3), np.uint8))
    info = probe_plate(tmp_path)
    assert check_config(SwapConfig(start=2, end=5), info) == (2, 5)
    with pytest.raises(ValueError, match=r"frames 0-9 \(files sh010.1001.png to sh010.1010.png: --start and --end "
                                         r"count frames from 0"):
        check_config(SwapConfig(start=1003, end=1008), info)


def test_an_output_that_would_destroy_the_plate_or_someone_elses_files_is_refused(tmp_path, double):
    from doppel.face_swap.pipeline import swap_plate

    shots = tmp_path / "shots"
    plate = shots / "sh010"
    plate.mkdir(parents=True)
    cv2.imwrite(str(plate / "sh010.1001.png"), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    with pytest.raises(ValueError, match=r"would overwrite the plate \(.*sh010 is inside it\)"):
        swap_plate(plate, double, shots, force=True)                  # a folder OUT is replaced whole
    theirs = tmp_path / "comp"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("the comp artist's")
    with pytest.raises(ValueError, match="exists and is not an earlier swap's output.*--force"):
        swap_plate(plate, double, theirs)
    assert (theirs / "notes.txt").read_text() == "the comp artist's" and (plate / "sh010.1001.png").is_file()
    swap_plate(plate, double, tmp_path / "swapped")
    swap_plate(plate, double, tmp_path / "swapped")                   # an earlier swap's output: replaced
    assert [p.name for p in (tmp_path / "swapped").iterdir()] == ["sh010.1001.png"]
    swap_plate(plate, double, theirs, force=True)
    assert [p.name for p in theirs.iterdir()] == ["sh010.1001.png"]


def test_after_a_cut_the_face_is_picked_again_where_the_followed_face_is_gone(tmp_path):
    """A two-shot cuts to a close-up across the frame: the face followed is not near where it was, so the pick
    is by size again at the cut (it passed up to FOLLOW_FRAMES frames of the new shot through unswapped)."""
    import skimage.data

    from capture.plate_io import probe_plate
    from doppel.face_swap.swap import SwapConfig, track_shot

    head = skimage.data.astronaut()[0:300, 100:400]
    for i in range(12):
        canvas = np.full((320, 640, 3), 90, np.uint8)
        if i < 6:                                      # shot 1: two faces, the larger on the left
            for x0, side, img in ((20, 280, head), (380, 220, np.ascontiguousarray(head[:, ::-1]))):
                y0 = (320 - side) // 2
                canvas[y0:y0 + side, x0:x0 + side] = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
        else:                                          # shot 2: one face, on the right, on another background
            canvas[:] = (30, 60, 120)
            canvas[10:310, 330:630] = head
        cv2.imwrite(str(tmp_path / f"f.{i:04d}.png"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    shot = track_shot(probe_plate(tmp_path), SwapConfig(), 0, 12)
    assert shot.cuts == [6] and (shot.n_faces[:6] == 2).all() and (shot.n_faces[6:] == 1).all()
    x = shot.landmarks[:, :, 0].mean(axis=1)
    assert (x[:6] < 320).all() and (x[6:] > 330).all(), x               # every frame of both shots has its face


def test_in_a_two_shot_the_face_swapped_stays_the_same_person_when_their_sizes_cross(tmp_path):
    """Two faces of about one size: the left one starts larger and ends smaller. --face-index 0 means the larger
    at the start; the track stays on that person (it picked the other one from the frame where the sizes crossed)."""
    import skimage.data

    from capture.plate_io import probe_plate
    from doppel.face_swap.swap import SwapConfig, track_shot

    head = skimage.data.astronaut()[0:300, 100:400]
    for i, t in enumerate(np.linspace(0, 1, 12)):
        canvas = np.full((320, 640, 3), 90, np.uint8)
        for x0, side, img in ((20, 300 - 60 * t, head), (340, 240 + 60 * t, np.ascontiguousarray(head[:, ::-1]))):
            side = int(side)
            canvas[(320 - side) // 2:(320 - side) // 2 + side, x0:x0 + side] = cv2.resize(img, (side, side),
                                                                                       interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(tmp_path / f"f.{i:04d}.png"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    shot = track_shot(probe_plate(tmp_path), SwapConfig(), 0, 12)
    assert (shot.n_faces == 2).all()
    assert (shot.landmarks[:, :, 0].mean(axis=1) < 320).all()          # the left person in every frame


def test_after_a_cut_to_another_person_only_the_performer_is_swapped(tmp_path, capsys, rig_dir):
    """Astronaut, cut to the cameraman's close-up, cut back: the face picked first is the performer's (whose
    consent the swap has), so the cameraman's frames pass through, listed as not the performer (with
    --no-identify, and before the face descriptor, the face of that size was swapped in every shot)."""
    import skimage.data

    from doppel.face_swap.stills import plate_from_still

    cam = cv2.resize(np.repeat(skimage.data.camera()[0:300, 100:400, None], 3, axis=2), (256, 256))
    stills = (_astronaut(), np.ascontiguousarray(cam), _astronaut())
    frames = [f for k, s in enumerate(stills) for f in plate_from_still(s, 5, seed=k, strength=0.2)]
    plate = tmp_path / "cuts"
    plate.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(plate / f"f.{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    code, out, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", tmp_path / "out")
    assert code == 0, err
    assert "10 of 15 frames swapped" in out and "passed through: 5-9 (--no-identify" in out
    assert "performer: the largest face at frame 0" in out
    changed = [not np.array_equal(cv2.imread(str(plate / f"f.{i:04d}.png")),
                                  cv2.imread(str(tmp_path / "out" / f"f.{i:04d}.png"))) for i in range(15)]
    assert changed == [True] * 5 + [False] * 5 + [True] * 5, changed
    tracks = np.load(tmp_path / "out_swap" / "tracks.npz")
    assert tracks["face_not_performer"].tolist() == [False] * 5 + [True] * 5 + [False] * 5
    assert not tracks["face_too_small"].any()                                     # another person, big enough
    assert tracks["cuts"].tolist() == [5, 10]
    report = (tmp_path / "out_swap" / "swap_report.html").read_text()
    assert "in 5, only faces not the performer's" in report and "the largest face at frame 0" in report
    thumb = cv2.imread(str(tmp_path / "out_swap" / "performer.png"))              # whom it took: the astronaut
    assert thumb.shape[0] == 160 and 'src="performer.png"' in report
    code, out, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", tmp_path / "any", "--no-identify")
    assert code == 0, err
    assert "15 of 15 frames swapped" in out


def test_a_photo_of_the_performer_picks_whom_to_swap_from_the_first_frame(tmp_path, capsys, rig_dir):
    """The cameraman, cut to the astronaut: by default the cameraman (the face of the first frame) is the
    performer; given a photo of the astronaut, the cameraman's frames pass through and hers are swapped. A photo
    without a face, a performer nowhere in the plate, or the photo with --no-identify: one line each."""
    import json

    import skimage.data

    from doppel.face_swap.stills import plate_from_still

    cam = cv2.resize(np.repeat(skimage.data.camera()[0:300, 100:400, None], 3, axis=2), (256, 256))
    stills = (np.ascontiguousarray(cam), _astronaut())
    frames = [f for k, s in enumerate(stills) for f in plate_from_still(s, 4, seed=k, strength=0.2)]
    plate = tmp_path / "cut"
    plate.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(plate / f"f.{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))

    def changed(out):
        return [not np.array_equal(cv2.imread(str(plate / f"f.{i:04d}.png")),
                                   cv2.imread(str(out / f"f.{i:04d}.png"))) for i in range(8)]

    code, out, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", tmp_path / "first")
    assert code == 0, err
    assert changed(tmp_path / "first") == [True] * 4 + [False] * 4
    code, out, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", tmp_path / "photo",
                             "--performer-photo", photo)
    assert code == 0, err
    assert changed(tmp_path / "photo") == [False] * 4 + [True] * 4 and "passed through: 0-3" in out
    manifest = json.loads((tmp_path / "photo_swap" / "manifest.json").read_text())
    assert "performer_photo" in manifest["inputs"]
    assert "the person of the photo" in (tmp_path / "photo_swap" / "swap_report.html").read_text()
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((128, 128, 3), 80, np.uint8))
    code, _, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", tmp_path / "x", "--performer-photo",
                           blank)
    assert code == 1 and "no face found; give a photo of the performer's face alone" in err
    code, _, err = run_cli(capsys, "swap", plate, "--double", rig_dir, "--out", tmp_path / "x", "--performer-photo",
                           photo, "--no-identify")
    assert code == 1 and "cannot go with --no-identify" in err
    only_cam = tmp_path / "cam"
    only_cam.mkdir()
    for i in range(3):
        cv2.imwrite(str(only_cam / f"f.{i:04d}.png"), cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR))
    code, _, err = run_cli(capsys, "swap", only_cam, "--double", rig_dir, "--out", tmp_path / "x",
                           "--performer-photo", photo)
    assert code == 1 and "none is the performer's" in err
    assert not (tmp_path / "x").exists()


def test_a_reversed_start_end_is_named_not_called_outside_the_plate():
    from doppel.face_swap.swap import SwapConfig, check_config

    info = type("Info", (), {"frame_count": 48, "kind": "video", "frames": []})()
    assert check_config(SwapConfig(start=5, end=10), info) == (5, 10)
    with pytest.raises(ValueError, match=r"--start 10 / --end 5: no frame \(--end is exclusive"):
        check_config(SwapConfig(start=10, end=5), info)
    with pytest.raises(ValueError, match="--start 100 / --end 48: the plate has frames 0-47"):
        check_config(SwapConfig(start=100), info)
