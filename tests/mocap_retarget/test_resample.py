"""A clip plotted at another frame rate (`mocap_retarget.resample`, `doppel retarget --resample`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mocap_retarget.bvh import write_bvh
from mocap_retarget.resample import resample_motion
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk


def _angle(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Geodesic angle (radians) between rotation matrices, batched."""
    c = (np.trace(np.swapaxes(A, -1, -2) @ B, axis1=-2, axis2=-1) - 1) / 2
    return np.arccos(np.clip(c, -1, 1))


@pytest.fixture(scope="module")
def walk():
    return synthetic_walk(WalkSpec(seconds=1.0, fps=120.0, turn_deg_per_s=40.0))        # 120 frames


def test_120_to_24_takes_every_fifth_frame(walk):
    out = resample_motion(walk, 24)
    assert out.fps == 24.0 and out.num_frames == 24                  # 119 / 120 s: frames at 0, 1/24, ..., 23/24
    np.testing.assert_array_equal(out.local_rotations, walk.local_rotations[::5][:24])
    np.testing.assert_array_equal(out.local_translations, walk.local_translations[::5][:24])
    assert out.names == walk.names and out.offsets is walk.offsets


@pytest.mark.parametrize("fps, k", [(23.976, 20), (50.0, 1), (50.0, 7)])
def test_between_frames_it_interpolates_along_the_shortest_arc(walk, fps, k):
    out = resample_motion(walk, fps)                                   # 23.976: snapped to 24000/1001
    assert out.fps == pytest.approx(24000 / 1001 if fps == 23.976 else fps, abs=1e-12)
    pos = np.arange(out.num_frames) * walk.fps / out.fps
    assert out.num_frames == int((walk.num_frames - 1) / walk.fps * out.fps) + 1 and pos[-1] <= walk.num_frames - 1
    # frame k lies between two frames of the clip
    i, a = int(np.floor(pos[k])), pos[k] - np.floor(pos[k])
    assert 0.05 < a < 0.95
    R0, R1, Rk = walk.local_rotations[i], walk.local_rotations[i + 1], out.local_rotations[k]
    whole = _angle(R0, R1)
    moving = whole > 1e-3
    assert moving.sum() > 5
    # on the geodesic from R0 to R1, a of the way: the angles from each end add up to the whole and split it a : 1-a
    np.testing.assert_allclose(_angle(R0, Rk)[moving], a * whole[moving], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(_angle(Rk, R1)[moving], (1 - a) * whole[moving], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(out.local_translations[k],
                               (1 - a) * walk.local_translations[i] + a * walk.local_translations[i + 1], atol=1e-12)


def test_same_rate_and_bad_rates(walk):
    same = resample_motion(walk, 120.0048)                            # a BVH's rounded frame time: the same rate
    assert same.num_frames == walk.num_frames and same.fps == 120.0
    for bad in (0, -24, float("nan"), 5000):
        with pytest.raises(ValueError, match="--resample must be a frame rate"):
            resample_motion(walk, bad)


def test_retarget_resample_plots_the_clip_at_the_films_rate(walk, tmp_path, capsys):
    from rigging.animation import Animation
    from tests.cli_runner import run_cli

    clip, target = tmp_path / "take.bvh", tmp_path / "target.bvh"
    write_bvh(clip, walk)
    write_bvh(target, synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"]), units="cm")
    code, out, err = run_cli(capsys, "retarget", clip, "--rig", target, "--out", tmp_path / "o", "--resample", 24,
                             "--preview-size", 64)
    assert code == 0, err
    assert "retargeted 24 frames" in out and "plotted at 24 fps from 120" in out, out
    anim = Animation.load(tmp_path / "o")
    assert anim.fps == 24.0 and anim.local_rotations.shape[0] == 24
    rate = json.loads((tmp_path / "o" / "manifest.json").read_text())["frame_rate"]
    assert (rate["fps"], rate["resampled_from"]) == (24.0, 120.0)
    code, _, err = run_cli(capsys, "retarget", clip, "--rig", target, "--out", tmp_path / "bad", "--resample", 0)
    assert code == 1 and "--resample must be a frame rate" in err and not (tmp_path / "bad").exists(), err
