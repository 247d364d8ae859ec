"""The detector's bias read on the double (`doppel.face_swap.detector_bias`): smoothing over time fills gaps and
keeps what is smooth, the face read back is the one at the double's place, and on a synthetic plate whose head
turns into profile the re-solved track sits closer to the exact landmarks than the first solve."""

import json

import numpy as np
import pytest

from doppel.face_swap.detector_bias import nearest_face, smooth_over_time


def test_smoothing_over_time_fills_gaps_and_keeps_a_smooth_signal():
    t = np.arange(40, dtype=float)
    ramp = np.stack([0.1 * t, -0.05 * t + 2], -1)[:, None, :]            # (F, 1, 2): a bias that follows the pose
    noisy = ramp + np.random.default_rng(0).normal(0, 0.5, ramp.shape)
    noisy[10:13] = np.nan                                                  # frames without a reading
    s = smooth_over_time(noisy, 3.0)
    assert np.isfinite(s).all()
    inner = slice(5, 35)
    assert np.abs(s - ramp)[inner].mean() < 0.5 * np.abs(np.nan_to_num(noisy) - ramp)[inner].mean()
    assert np.allclose(smooth_over_time(np.full((5, 2), 3.0), 2.0), 3.0)   # a constant stays put
    assert np.array_equal(smooth_over_time(noisy, 0), np.nan_to_num(noisy))
    assert (smooth_over_time(np.full((4, 2), np.nan), 2.0) == 0).all()     # nothing read: no correction


def test_the_face_read_back_is_the_one_where_the_double_was_drawn():
    ids = np.arange(5)
    expected = np.array([[100, 100], [140, 100], [120, 120], [105, 140], [135, 140]], float)
    here = np.zeros((478, 2))
    here[ids] = expected + 2.0
    there = np.zeros((478, 2))
    there[ids] = expected + 300.0
    assert np.array_equal(nearest_face(np.stack([there, here]), ids, expected), here)
    assert nearest_face(np.stack([there]), ids, expected) is None          # only a face elsewhere: no reading
    assert nearest_face(np.zeros((0, 478, 2)), ids, expected) is None


@pytest.mark.slow
def test_debiasing_moves_the_track_towards_the_exact_landmarks_in_profile(tmp_path, monkeypatch):
    """A 32-frame synthetic plate whose head turns from frontal to 65 degrees (the first quarter of the plate's
    performance, at about the pace of a 120-frame plate): the track solved again without the detector's bias
    places the double's landmarks closer to the exact ones beyond 35 degrees of yaw."""
    from capture.plate_io import probe_plate
    from doppel import synthetic_plate
    from doppel.doubles import build_default_rig
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.render_head import project
    from doppel.face_swap.swap import SwapConfig, debias_track, solve_track, track_shot
    from doppel.synthetic_plate import PlateConfig, render_plate
    from doppel.virtual_actor import build_virtual_actor
    from reconstruction.head_tracking import inter_ocular, intrinsics

    quarter = synthetic_plate.performance
    monkeypatch.setattr(synthetic_plate, "performance", lambda pose, t, kind="talk": quarter(pose, 0.25 * t, kind))
    render_plate(tmp_path / "p", PlateConfig(frames=32, width=480, height=270, texture_size=256),
                 actor_b=build_virtual_actor(1, texture_size=256), actor_a=build_virtual_actor(0, texture_size=256))
    rig, params, _ = build_default_rig("anny", seed=0)
    (tmp_path / "w").mkdir()
    double = load_face_double(rig.save(tmp_path / "double", params=params), tmp_path / "w", albedo_size=256)
    info = probe_plate(tmp_path / "p" / "plate" / "plate.mp4")
    ann = np.load(tmp_path / "p" / "ground_truth" / "annotations.npz")
    K0 = json.loads((tmp_path / "p" / "plate" / "cameras.json").read_text())["frames"][0]["K"]
    cfg = SwapConfig(focal_px=float(K0[0][0]))
    shot = track_shot(info, cfg, 0, info.frame_count).steadied(cfg.flow_weight)
    first = solve_track(shot, info, double, cfg)
    again, bias = debias_track(shot, first, info, double, cfg, 0)
    assert bias.shape == (32, len(double.basis.ids), 2) and np.isfinite(bias[first.valid]).mean() > 0.8
    ids = double.basis.ids

    def error(track):
        K = intrinsics(track.focal_px, info.width, info.height)
        e = np.full(32, np.nan)
        for f in np.flatnonzero(track.valid):
            p = project(double.basis.points(track.expression[f]), track.rotation[f], track.translation[f], K)
            vis = ann["landmarks_visible"][f, ids]
            e[f] = np.linalg.norm(p - ann["landmarks2d"][f, ids], axis=-1)[vis].mean()
        return e / inter_ocular(ann["landmarks2d"])

    turned = np.abs(ann["head_ypr_deg"][:, 0]) > 35
    e0, e1 = error(first), error(again)
    assert turned.sum() >= 6
    assert np.nanmean(e1[turned]) < 0.8 * np.nanmean(e0[turned]), (np.nanmean(e0[turned]), np.nanmean(e1[turned]))
