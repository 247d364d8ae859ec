"""Short face-detection dropouts inside a shot (`doppel.face_swap.dropouts`): which runs are bridged (short, inside
one shot, facing the camera on both sides, nobody else's face), their landmarks interpolated; a swap draws such a
frame at the track's bridged pose, flagged, instead of showing the performer's own face for a frame."""

import dataclasses

import numpy as np
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
    others[5] = True                                         # another person's face seen in the dropout
    b_shot, _ = bridge_dropouts(dataclasses.replace(shot, not_performer=others), track, 3)
    assert np.flatnonzero(b_shot.bridged).tolist() == [2]   # 8-10 end on a turned-away frame (10: 80 degrees)
    b_shot, b_track = bridge_dropouts(shot, track, 0)
    assert not b_shot.bridged.any() and np.array_equal(b_track.valid, track.valid)


def test_a_frame_the_detector_lost_is_swapped_at_the_bridged_pose(tmp_path, rig_dir):
    """Frames 22-29 of a 48-frame plate swapped from given landmarks (the performer's exact ones) with frame 26
    lost: bridged, it is swapped (flagged) and the double lands about as near the ground truth there as on its
    neighbours; with --bridge 0 it passes through (the performer's own face between swapped frames)."""
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import side_folder, swap_plate
    from doppel.face_swap.render_head import project
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
