"""Short face-detection dropouts inside a shot (`doppel.face_swap.dropouts`): which runs are bridged (short, inside
one shot, facing the camera on both sides, nobody else's face), their landmarks interpolated; a swap draws such a
frame at the track's bridged pose, flagged, instead of showing the performer's own face for a frame."""

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from doppel.face_swap.dropouts import bridge_dropouts, dropout_runs
from doppel.face_swap.swap import ShotLandmarks
from reconstruction.head_tracking import HeadTrack


def test_dropout_runs_are_the_gaps_inside_a_shot():
    valid = np.array([0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0], bool)
    assert dropout_runs(valid, [(0, 11)]) == [(2, 3), (4, 6), (8, 9)]
    assert dropout_runs(valid, [(0, 5), (5, 11)]) == [(2, 3), (8, 9)]       # none across the cut at 5


def _shot_and_track(F=14):
    lm = np.stack([np.full((478, 2), 10.0 * f) for f in range(F)]).astype(np.float32)
    yaw = np.zeros(F)
    yaw[10:] = 80.0                                         # turned away from frame 10 on
    R = Rotation.from_euler("y", yaw[:, None], degrees=True).as_matrix() @ np.diag([1.0, 1.0, -1.0])[None]
    track = HeadTrack(R, np.zeros((F, 3)), np.zeros((F, 2)), np.ones(F, bool), np.zeros(F), 800.0)
    return ShotLandmarks(lm, np.ones(F, int), [np.zeros((0, 21, 2))] * F), track


def test_only_short_frontal_dropouts_of_the_performer_are_bridged():
    shot, track = _shot_and_track()
    lost = [2, 5, 6, 8, 9, 10, 12]          # 2: one frame; 5-6: two; 8-10: three; 12: turned away
    shot.landmarks[lost] = np.nan
    track = dataclasses.replace(track, valid=shot.valid)
    others = np.zeros(14, bool)
    b_shot, b_track = bridge_dropouts(dataclasses.replace(shot, not_performer=others), track, 2)
    assert np.flatnonzero(b_shot.bridged).tolist() == [2, 5, 6]
    assert np.array_equal(b_track.valid, b_shot.valid) and b_track.valid[[2, 5, 6]].all()
    assert np.allclose(b_shot.landmarks[2], 20.0) and np.allclose(b_shot.landmarks[5], 50.0)   # interpolated
    assert np.isnan(b_shot.landmarks[[8, 9, 10, 12]]).all()
    assert b_shot.unbridged == {**dict.fromkeys([8, 9, 10], "lost for 3 frames; --bridge 2"),
                                12: "the head 80 degrees from the camera beside it; bridged under 75"}
    others[5] = True                                         # another person's face seen in the dropout
    b_shot, _ = bridge_dropouts(dataclasses.replace(shot, not_performer=others), track, 3)
    assert np.flatnonzero(b_shot.bridged).tolist() == [2]   # 8-10 end on a turned-away frame (10: 80 degrees)
    b_shot, b_track = bridge_dropouts(shot, track, 0)
    assert not b_shot.bridged.any() and np.array_equal(b_track.valid, track.valid)


def test_a_dropout_the_head_turns_fast_through_is_not_bridged():
    """Neighbours 30 degrees apart (a head whipping round, both sides facing the camera within 15 degrees): the
    frames between are passed through; 20 degrees apart they are bridged. The angle is scipy's rotation angle."""
    from doppel.face_swap.dropouts import BRIDGE_MAX_TURN, turn_deg

    shot, track = _shot_and_track(8)
    for total, want in ((30.0, []), (20.0, [3, 4])):
        yaw = total / 3 * (np.arange(8) - 3.5)                         # turning at a steady rate, |yaw| < 36
        R = Rotation.from_euler("y", yaw[:, None], degrees=True).as_matrix() @ np.diag([1.0, 1.0, -1.0])[None]
        lost = shot.landmarks.copy()
        lost[[3, 4]] = np.nan
        s = dataclasses.replace(shot, landmarks=lost)
        t = dataclasses.replace(track, rotation=R, valid=s.valid)
        assert turn_deg(R[2], R[5]) == pytest.approx(total, abs=1e-6)
        assert (turn_deg(R[2], R[5]) >= BRIDGE_MAX_TURN) == (not want)
        b_shot = bridge_dropouts(s, t, 2)[0]
        assert np.flatnonzero(b_shot.bridged).tolist() == want
        assert b_shot.unbridged == ({} if want else dict.fromkeys(
            [3, 4], "the head turns 30 degrees across it; bridged under 25"))
    a, b = Rotation.random(2, random_state=3)
    assert turn_deg(a.as_matrix(), b.as_matrix()) == pytest.approx(np.degrees((a.inv() * b).magnitude()), abs=1e-6)


def test_a_dropout_not_bridged_says_why_it_passed_through():
    """The swap's QC flag of a lost frame left unbridged names the reason (`pipeline._passed_because`), and the
    result lists it apart from the frames without a face (what the CLI prints); another person's face in view
    keeps its own reason."""
    from doppel.face_swap.pipeline import _passed_because
    from doppel.face_swap.swap import NO_FACE, NOT_PERFORMER, FrameQC, SwapResult

    shot, track = _shot_and_track(6)
    shot = dataclasses.replace(shot, not_performer=np.array([0, 0, 0, 0, 1, 0], bool),
                               unbridged={2: "the head turns 30 degrees across it; bridged under 25"})
    flags = [_passed_because(shot, f) for f in (1, 2, 4)]
    assert flags == [NO_FACE, "face lost by the detector, not bridged: the head turns 30 degrees across it; "
                     "bridged under 25: passed through", NOT_PERFORMER]
    res = SwapResult(None, [FrameQC(f, False, flags=[flag]) for f, flag in zip((1, 2, 4), flags, strict=True)],
                     track, (0, 0, 1, 1), 1.0)
    assert res.not_bridged == {2: "the head turns 30 degrees across it; bridged under 25"}
    assert res.passed_through == [1, 2, 4]
    import io
    from pathlib import Path

    from rich.console import Console

    from doppel.commands.swap import _print_result

    buf = io.StringIO()
    _print_result(Console(file=buf, width=300), res, Path("out.mp4"), Path("out_swap"), "checked", False)
    text = buf.getvalue()
    assert "frames with no face, passed through: 1\n" in text
    assert ("frames the detector lost inside a shot, not bridged, passed through: 2 (the head turns 30 degrees "
            "across it; bridged under 25)") in text


def test_a_bridged_frame_puts_the_face_between_its_neighbours_in_the_image():
    """Two neighbours that trade rotation against translation (the head pitched 20 degrees about the rig's origin,
    1.6 m below it, and carried back to the same place): the solve's bridge, rotation and translation each halved,
    draws the face 24 mm off (about 20 px); `place_between` puts its landmarks on the neighbours' interpolated
    projections (within half a pixel), and `bridge_dropouts` does so given the basis and camera."""
    from doppel.face_swap.dropouts import place_between
    from doppel.face_swap.render_head import project
    from reconstruction.head_tracking import FaceBasis

    rng = np.random.default_rng(0)
    face = np.array([0.0, 1.6, 0.0]) + rng.normal(0, [0.05, 0.06, 0.03], (60, 3))     # a head above the origin
    basis = FaceBasis(np.arange(60), face, np.zeros((1, 60, 3)), ("jawOpen",))
    K = np.array([[1000.0, 0, 320], [0, 1000.0, 240], [0, 0, 1]])
    R0 = Rotation.from_euler("y", 180, degrees=True).as_matrix()                  # facing the camera
    R2 = Rotation.from_euler("x", 20, degrees=True).as_matrix() @ R0
    t0 = np.array([0.0, -1.6, 1.0])
    t2 = t0 + (R0 - R2) @ np.array([0.0, 1.6, 0.0])
    R1 = Rotation.from_euler("x", 10, degrees=True).as_matrix() @ R0              # the solve's bridge
    track = HeadTrack(np.stack([R0, R1, R2]), np.stack([t0, (t0 + t2) / 2, t2]), np.zeros((3, 1)),
                      np.array([True, False, True]), np.zeros(3), 1000.0)
    want = (project(face, R0, t0, K) + project(face, R2, t2, K)) / 2
    off = np.linalg.norm(project(face, R1, track.translation[1], K) - want, axis=1).mean()
    placed = place_between(track, 1, 2, basis, K)
    got = np.linalg.norm(project(face, placed.rotation[1], placed.translation[1], K) - want, axis=1).mean()
    assert off > 15 and got < 0.5, (off, got)
    assert np.array_equal(placed.rotation[[0, 2]], track.rotation[[0, 2]])           # the neighbours as they were
    shot = ShotLandmarks(np.stack([np.full((478, 2), 10.0), np.full((478, 2), np.nan), np.full((478, 2), 30.0)]
                                  ).astype(np.float32), np.array([1, 0, 1]), [np.zeros((0, 21, 2))] * 3)
    _, bridged = bridge_dropouts(shot, track, 2, basis, K)
    assert np.allclose(bridged.translation[1], placed.translation[1]) and bridged.valid.all()
    _, kept = bridge_dropouts(shot, track, 2)                                        # no basis: the solve's bridge
    assert np.array_equal(kept.translation, track.translation)


def test_a_frame_the_detector_lost_is_swapped_at_the_bridged_pose(tmp_path, rig_dir):
    """Frames 22-29 of a 48-frame plate swapped from given landmarks (the performer's exact ones) with frame 26
    lost: bridged, it is swapped (flagged) and the double lands about as near the ground truth there as on its
    neighbours; with --bridge 0 it passes through (the performer's own face between swapped frames)."""
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.render_head import project
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig
    from doppel.synthetic_plate import PlateConfig, render_plate
    from reconstruction.head_tracking import inter_ocular

    plate = render_plate(tmp_path / "p", PlateConfig(frames=48, width=320, height=180, camera="static",
                                                     texture_size=256)).out
    ann = np.load(plate / "ground_truth" / "annotations.npz")
    given = ann["performer_landmarks2d"][22:30].astype(np.float32)
    given[4] = np.nan                                        # plate frame 26
    (tmp_path / "work").mkdir()
    double = load_face_double(rig_dir, tmp_path / "work")
    res = {}
    for bridge in (2, 0):
        out = tmp_path / f"b{bridge}"
        cfg = SwapConfig(bridge=bridge, debias=False, start=22, end=30)
        res[bridge] = swap_plate(plate / "plate" / "frames", double, out, cfg, landmarks=given)
    qc = {b: {q.frame: q for q in r.frames} for b, r in res.items()}
    assert qc[2][26].swapped and any("bridged" in f for f in qc[2][26].flags)
    assert not qc[0][26].swapped and qc[0][25].swapped and qc[0][27].swapped
    t = np.load(side_folder(tmp_path / "b2") / "tracks.npz")
    assert t["face_bridged"].tolist() == [k == 4 for k in range(8)] and t["valid"].all()

    def placed_error(k):
        p = project(double.basis.points(t["expression"][k]), t["rotation"][k], t["translation"][k], t["K"])
        gt = ann["landmarks2d"][22 + k][double.basis.ids]
        return np.linalg.norm(p - gt, axis=-1).mean() / inter_ocular(ann["landmarks2d"][22 + k])

    assert placed_error(4) < 1.5 * max(placed_error(3), placed_error(5)) + 0.01
    import cv2

    src = cv2.imread(str(plate / "plate" / "frames" / "000026.png")).astype(float)
    face = cv2.imread(str(plate / "ground_truth" / "masks" / "face_000026.png"), cv2.IMREAD_GRAYSCALE) > 127
    swapped, passed = (cv2.imread(str(tmp_path / f"b{b}" / "000026.png")).astype(float) for b in (2, 0))
    assert np.abs(swapped - src)[face].mean() > 5 and np.abs(passed - src).max() <= 2
