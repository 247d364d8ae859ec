"""`doppel fit SESSION --landmarks INGEST` end to end on a tiny synthetic capture of the virtual actor (6 views
at 320 px, real MediaPipe pose detections), scored against the ground truth the synthetic capture writes
(the fitter never reads it), and the clear errors for bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import trimesh

from doppel.cli import main


def _run(args):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    from capture.ingest import IngestConfig, ingest
    from doppel.synthetic_capture import synthesize_capture

    root = tmp_path_factory.mktemp("fitsession")
    sc = synthesize_capture(root, n_cameras=6, seed=0, size=320, texture_size=256)
    ingest(sc.session_dir, root / "ingest", IngestConfig(face=False, hands=False))
    return sc, root / "ingest"


def test_fit_session_end_to_end(capture, tmp_path):
    sc, ing = capture
    out = tmp_path / "fit"
    assert _run(["fit", str(sc.session_dir), "--landmarks", str(ing), "--out", str(out),
                 "--stages", "30,60,0,20", "--detail-iterations", "15"]) == 0
    for name in ("params.json", "fit_mesh.ply", "fit_mesh_bind.ply", "metrics.json", "manifest.json",
                 "overlays.png", "report.html", "model_fit_mesh.ply", "displacements.npz"):
        assert (out / name).is_file(), name
    assert len(list((out / "overlays").glob("*.png"))) == 6
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["views_seeing_person"] >= 5 and metrics["reprojection_px"] < 6.0, metrics
    assert metrics["detail"] == "silhouettes"
    dis = metrics["detail_mask_disagreement"]
    assert dis["after"] < dis["before"], dis
    with np.load(out / "displacements.npz") as z:
        assert z["offsets"].shape == (len(trimesh.load(out / "fit_mesh.ply", process=False).vertices), 3)
    # Accuracy against the ground truth (same Anny topology). Measured 26.9 mm mean here (landmarks only: body
    # weight/muscle are barely observable from 21 pose points); the neutral template placed by the rigid stage
    # alone is 116 mm off (checked below).
    gt = trimesh.load(sc.ground_truth_dir / "mesh.ply", process=False).vertices
    fit = trimesh.load(out / "fit_mesh.ply", process=False).vertices
    err = np.linalg.norm(fit - gt, axis=1)
    assert err.mean() < 0.040, err.mean()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["actor_id"] and "consent_id" in manifest["params"]
    assert manifest["params"]["landmarks"] == str(ing)

    rigid = tmp_path / "rigid"
    assert _run(["fit", str(sc.session_dir), "--landmarks", str(ing), "--out", str(rigid),
                 "--stages", "30,0,0,0", "--detail-iterations", "0"]) == 0
    assert not (rigid / "displacements.npz").exists()
    e_rigid = np.linalg.norm(trimesh.load(rigid / "fit_mesh.ply", process=False).vertices - gt, axis=1)
    assert err.mean() < 0.5 * e_rigid.mean(), (err.mean(), e_rigid.mean())


def test_fit_session_bad_input(capture, tmp_path, capsys):
    sc, ing = capture
    # no --landmarks, or an ingest folder without landmarks.npz
    assert _run(["fit", str(sc.session_dir), "--out", str(tmp_path / "a")]) == 1
    assert "--landmarks" in capsys.readouterr().err
    (tmp_path / "empty_ingest").mkdir()
    assert _run(["fit", str(sc.session_dir), "--landmarks", str(tmp_path / "empty_ingest"), "--out",
                 str(tmp_path / "b")]) == 1
    assert "landmarks.npz" in capsys.readouterr().err
    # landmarks left in a single view: fewer than two views see the person
    one = tmp_path / "one_view"
    shutil.copytree(ing, one)
    z = dict(np.load(one / "landmarks.npz"))
    z["pose_conf"][:, 1:] = 0.0
    np.savez_compressed(one / "landmarks.npz", **z)
    assert _run(["fit", str(sc.session_dir), "--landmarks", str(one), "--out", str(tmp_path / "c")]) == 1
    assert "fewer than two views" in capsys.readouterr().err
    # no person detected anywhere
    z["pose_conf"][:] = 0.0
    np.savez_compressed(one / "landmarks.npz", **z)
    assert _run(["fit", str(sc.session_dir), "--landmarks", str(one), "--out", str(tmp_path / "d")]) == 1
    assert "no pose landmarks" in capsys.readouterr().err
    assert not (tmp_path / "c" / "fit_mesh.ply").exists()


@pytest.fixture(scope="module")
def dense_capture(tmp_path_factory):
    """8 views at 512 px (ring, dome and face close-ups), every MediaPipe set: pose, face mesh, hands."""
    from capture.ingest import IngestConfig, ingest
    from doppel.synthetic_capture import synthesize_capture

    root = tmp_path_factory.mktemp("fitdense")
    sc = synthesize_capture(root, n_cameras=8, seed=5, size=512, texture_size=512)
    ingest(sc.session_dir, root / "ingest", IngestConfig())
    return sc, root / "ingest"


def test_calibrated_correspondences_beat_joint_centres(dense_capture, tmp_path):
    """The calibrated regressor (pose + face mesh + hands) against the 21 pose landmarks at Anny's joints, same
    stages, same detections; seed 5 is not a calibration seed (100-109)."""
    sc, ing = dense_capture
    gt = trimesh.load(sc.ground_truth_dir / "mesh.ply", process=False).vertices
    errs = {}
    for mode in ("calibrated", "joints"):
        out = tmp_path / mode
        assert _run(["fit", str(sc.session_dir), "--landmarks", str(ing), "--out", str(out), "--stages",
                     "40,200,20,60", "--correspondences", mode, "--detail-iterations", "0"]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["correspondences"] == mode
        # the overlays' per-view errors are those of the fitted landmarks (not of a fixed vertex)
        assert np.nanmedian(list(metrics["view_reprojection_px"].values())) < 15.0, metrics["view_reprojection_px"]
        errs[mode] = np.linalg.norm(trimesh.load(out / "fit_mesh.ply", process=False).vertices - gt, axis=1).mean()
    print("mean vertex error, m:", errs)
    assert errs["calibrated"] < 0.7 * errs["joints"], errs
    assert errs["calibrated"] < 0.012, errs


def test_fit_every_frame_of_a_take_with_temporal_smoothness(take, tmp_path):
    sc, ing = take
    frames = ["000", "001", "002"]
    assert sorted(p.name for p in (sc.session_dir / "images").iterdir()) == frames
    outs = {}
    for w in ("1", "0"):
        out = tmp_path / f"w{w}"
        assert _run(["fit", str(sc.session_dir), "--landmarks", str(ing), "--out", str(out), "--frame", "all",
                     "--stages", "30,90,0,30", "--detail-iterations", "0", "--temporal-weight", w]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert list(metrics["frames"]) == frames and metrics["w_temporal"] == float(w)
        for f in frames[1:]:
            for name in ("params.json", "fit_mesh.ply", "metrics.json", "overlays.png"):
                assert (out / "frames" / f / name).is_file(), (f, name)
        shapes = [json.loads((out / (f"frames/{f}" if f != "000" else ".") / "params.json").read_text())["shape"]
                  for f in frames]
        assert shapes[0] == shapes[1] == shapes[2]          # one actor, one shape
        fit = [trimesh.load(out / (f"frames/{f}" if f != "000" else ".") / "fit_mesh.ply", process=False).vertices
               for f in frames]
        gt = [trimesh.load(sc.ground_truth_dir / "frames" / f / "mesh.ply", process=False).vertices for f in frames]
        err = [np.linalg.norm(a - b, axis=1).mean() for a, b in zip(fit, gt, strict=True)]
        assert max(err) < 0.045, err
        outs[w] = (fit, gt)
    # the ground truth moves between frames, and the fits follow it
    fit, gt = outs["1"]
    move_true = np.linalg.norm(gt[2] - gt[0], axis=1).mean()
    move_fit = np.linalg.norm(fit[2] - fit[0], axis=1).mean()
    assert move_true > 0.01 and 0.3 * move_true < move_fit < 3 * move_true, (move_true, move_fit)
    # the temporal term makes the fitted motion smoother than frames fitted independently (measured: 11.1 vs
    # 20.4 mm acceleration error)
    acc = {w: np.linalg.norm((f[2] - 2 * f[1] + f[0]) - (g[2] - 2 * g[1] + g[0]), axis=1).mean()
           for w, (f, g) in outs.items()}
    print("acceleration error, m:", acc, "motion", move_true, move_fit)
    assert acc["1"] < 0.8 * acc["0"], acc


def test_synthetic_take_rejects_zero_frames(tmp_path):
    from doppel.synthetic_capture import synthesize_capture

    with pytest.raises(ValueError, match="--frames must be >= 1"):
        synthesize_capture(tmp_path, n_cameras=2, size=64, frames=0)


def test_a_take_goes_through_a_frame_most_views_miss(take, tmp_path, capsys):
    """An actor behind a crash mat for a moment: frame 001 seen by one view, then by none. The take is fitted
    (that frame steered by the frames before it, flagged in metrics.json and the console line); the take's
    first frame, which sets the actor's shape, must still be seen by two views. Measured on a 5-frame take of the
    same kind (frame 002 hidden, 20,60,0,20 stages): 19.7 mm (one view) and 19.8 mm (none) mean vertex error there,
    13.7 mm where every view saw it; the bound below is the other take tests'."""
    sc, ing = take
    gt = trimesh.load(sc.ground_truth_dir / "frames" / "001" / "mesh.ply", process=False).vertices
    for keep in (1, 0):
        hidden = tmp_path / f"ingest_{keep}"
        shutil.copytree(ing, hidden)
        z = dict(np.load(hidden / "landmarks.npz"))
        z["pose_conf"][1, keep:] = 0.0
        np.savez_compressed(hidden / "landmarks.npz", **z)
        out = tmp_path / f"fit_{keep}"
        assert _run(["fit", str(sc.session_dir), "--landmarks", str(hidden), "--out", str(out), "--frame", "all",
                     "--stages", "20,60,0,20", "--detail-iterations", "0"]) == 0
        captured = capsys.readouterr()
        assert "(+ 2 more frames in" in captured.out
        assert "1 frame(s) seen by fewer than two views, steered by the frames before them: 001" in captured.out
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["frames_seen_by_fewer_than_two_views"] == ["001"]
        assert metrics["frames"]["001"]["views_seeing_person"] == keep
        assert (metrics["frames"]["001"]["reprojection_px"] is None) == (keep == 0)
        take = (out / "take.html").read_text()               # flagged on the take's page, its overlays linked
        assert "Frames to look at" in take and f"seen by {keep} view(s)" in take
        assert "href='frames/001/overlays.png'" in take and (out / "take_reprojection.png").is_file()
        assert "href='take.html'" in (out / "report.html").read_text()
        fit = trimesh.load(out / "frames" / "001" / "fit_mesh.ply", process=False).vertices
        assert np.linalg.norm(fit - gt, axis=1).mean() < 0.045
    z["pose_conf"][0, 1:] = 0.0                      # the first frame too: refused, naming it
    np.savez_compressed(hidden / "landmarks.npz", **z)
    assert _run(["fit", str(sc.session_dir), "--landmarks", str(hidden), "--out", str(tmp_path / "f"), "--frame",
                 "all", "--stages", "20,60,0,20", "--detail-iterations", "0"]) == 1
    assert "fewer than two views see the person in frame '000'" in capsys.readouterr().err


def test_a_take_with_a_dropped_frame_is_ingested_and_fitted(take, tmp_path):
    """A camera that dropped frame 001 of the take (no image): the ingest finds nothing there (no mask, a blank
    tile named in the contact sheet), the fit leaves that view out of that frame (5 views) and fits the take,
    silhouettes included (that view has no mask)."""
    from capture.ingest import IngestConfig, ingest, load_ingest

    sc, _ = take
    session = tmp_path / "session"
    shutil.copytree(sc.session_dir, session)
    (session / "images" / "001" / "ring01.png").unlink()
    ing = tmp_path / "ingest"
    res = ingest(session, ing, IngestConfig(face=False, hands=False))
    assert res.session.dropped == {"001": ["ring01"]}
    data = load_ingest(ing)
    assert "ring01" not in data.mask_paths["001"] and "ring01" in data.mask_paths["002"]
    v = data.cameras.index("ring01")
    assert data.pose_conf[1, v].max() == 0 and data.pose_conf[2, v].max() > 0
    qc = json.loads((ing / "qc.json").read_text())
    assert any("dropped" in w for w in qc["session_warnings"])
    assert not any(q["frame"] == "001" and q["camera"] == "ring01" for q in qc["images"])
    out = tmp_path / "fit"
    assert _run(["fit", str(session), "--landmarks", str(ing), "--out", str(out), "--frame", "all",
                 "--stages", "10,30,0,10", "--detail-iterations", "0", "--silhouette-weight", "0.5"]) == 0
    metrics = json.loads((out / "frames" / "001" / "metrics.json").read_text())
    assert metrics["views"] == 5 and "ring01" not in metrics["view_reprojection_px"]
    assert json.loads((out / "frames" / "002" / "metrics.json").read_text())["views"] == 6
    gt = trimesh.load(sc.ground_truth_dir / "frames" / "001" / "mesh.ply", process=False).vertices
    fit = trimesh.load(out / "frames" / "001" / "fit_mesh.ply", process=False).vertices
    assert np.linalg.norm(fit - gt, axis=1).mean() < 0.045            # 19.3 mm at these stages


def test_a_range_of_a_take(take, tmp_path, capsys):
    """`--frames 1:3`: frames 001 and 002 alone, the first of them fitted as the take's first (its folder's top,
    its manifest's frame, which the texture and the neural double go by)."""
    from doppel.neural_inputs import fitted_frame

    sc, ing = take
    out = tmp_path / "fit"
    assert _run(["fit", str(sc.session_dir), "--landmarks", str(ing), "--out", str(out), "--frames", "1:3",
                 "--stages", "10,30,0,10", "--detail-iterations", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["frames"]) == ["001", "002"] and metrics["frame"] == "001"
    assert (out / "frames" / "002" / "params.json").is_file() and not (out / "frames" / "001").exists()
    assert fitted_frame(out, ["000", "001", "002"]) == "001"
    assert _run(["fit", str(sc.session_dir), "--landmarks", str(ing), "--out", str(tmp_path / "g"), "--frames",
                 "1:3", "--frame", "000"]) == 1
    assert "--frames 1:3 fits a range of the take; --frame 000 fits one frame" in capsys.readouterr().err
    assert _run(["fit", str(sc.session_dir), "--landmarks", str(ing), "--out", str(tmp_path / "g"), "--frames",
                 "2:9"]) == 1
    assert "outside the 3 frames available" in capsys.readouterr().err
