"""`rigging.Animation`, the one animation type: validation, the animation.npz round trip, and property tests
(hypothesis) of the BVH reader and of the validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from mocap_retarget.bvh import BvhError, Motion, format_bvh, parse_bvh
from rigging.animation import Animation, AnimationError

ANGLE_TOL_DEG = 1e-3      # 6-decimal BVH text round trip of Euler angles


def _anim(T=3, J=2, **kw):
    args = dict(joint_names=[f"j{i}" for i in range(J)], local_rotations=np.broadcast_to(np.eye(3), (T, J, 3, 3)),
                root_translation=np.zeros((T, 3)), fps=30.0)
    args.update(kw)
    return Animation(**args)


@pytest.mark.parametrize("kw, match", [
    (dict(joint_names=["a", "a"]), r"duplicated joint names \['a'\]"),
    (dict(parents=np.array([0, -1])), "parents must be topological"),
    (dict(parents=np.array([-1])), r"parents must be \(2,\)"),
    (dict(local_rotations=np.broadcast_to(2 * np.eye(3), (3, 2, 3, 3))), "not rotation matrices"),
    (dict(local_rotations=np.broadcast_to(np.diag([1.0, 1.0, -1.0]), (3, 2, 3, 3))), "not rotation matrices"),
    (dict(root_translation=np.full((3, 3), np.inf)), "root_translation is not finite"),
    (dict(root_translation=np.full((3, 3), 1e300)), "root_translation reaches 1e\\+300 m"),
    (dict(fps=float("nan")), "fps must be a finite number > 0"),
    (dict(fps=-24.0), "fps must be a finite number > 0"),
    (dict(blendshape_names=["jawOpen"], blendshape_weights=np.zeros((2, 1))), "blendshape_weights must be"),
    (dict(blendshape_names=["jawOpen"], blendshape_weights=np.full((3, 1), 1e9)), "blendshape weights reach"),
])
def test_validation_names_the_problem(kw, match):
    with pytest.raises(AnimationError, match=match):
        _anim(source="take.npz", **kw).validate()


def test_round_trip_keeps_everything(tmp_path):
    R = Rotation.random(6, random_state=0).as_matrix().reshape(3, 2, 3, 3)
    a = _anim(local_rotations=R, root_translation=np.arange(9.0).reshape(3, 3), parents=np.array([-1, 0]),
              blendshape_names=["jawOpen"], blendshape_weights=np.array([[0.0], [0.5], [1.0]]), fps=120.0)
    f = a.save(tmp_path / "take")
    b = Animation.load(f)
    assert b.joint_names == a.joint_names and b.fps == 120.0 and b.blendshape_names == ["jawOpen"]
    np.testing.assert_array_equal(b.parents, [-1, 0])
    np.testing.assert_allclose(b.local_rotations, R, atol=1e-6)
    np.testing.assert_allclose(b.blendshape_weights[:, 0], [0, 0.5, 1])
    with pytest.raises(AnimationError, match="not rotation matrices"):
        _anim(local_rotations=np.zeros((3, 2, 3, 3))).save(tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.floats(-179, 179), st.floats(-89, 89), st.floats(-179, 179)), min_size=1, max_size=6),
       st.sampled_from(["ZXY", "XYZ", "YZX", "ZYX"]))
def test_bvh_round_trip_property(angles, order):
    """Any Euler angles written in any rotation order read back as the same rotations (up to the text's 6
    decimals), and the reader's Motion carries finite, orthonormal rotations."""
    F = len(angles)
    R = Rotation.from_euler(order, np.asarray(angles), degrees=True).as_matrix()
    m = Motion(["root", "child"], np.array([-1, 0]), np.array([[0.0, 1.0, 0.0], [0.0, 0.5, 0.0]]),
               [["Xposition", "Yposition", "Zposition"] + [f"{a}rotation" for a in order],
                [f"{a}rotation" for a in order]],
               np.stack([R, R.transpose(0, 2, 1)], axis=1), np.tile([[0.0, 1.0, 0.0], [0.0, 0.5, 0.0]], (F, 1, 1)),
               1 / 30, units="m")
    back = parse_bvh(format_bvh(m), units="m")
    err = Rotation.from_matrix(back.local_rotations.reshape(-1, 3, 3)).inv() * \
        Rotation.from_matrix(m.local_rotations.reshape(-1, 3, 3))
    assert np.degrees(err.magnitude()).max() < ANGLE_TOL_DEG
    Animation(back.names, back.local_rotations, back.local_translations[:, 0], back.fps).validate()


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)))
def test_bvh_reader_never_accepts_a_bad_value(value):
    """Any value put in a motion line is either a sane number read as such or a BvhError naming line 9."""
    text = ("HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 3 Xposition Yposition Zposition\nEnd Site\n{\nOFFSET 0 1 0\n}"
            "\n}\nMOTION\nFrames: 1\nFrame Time: 0.04\n")
    token = str(value).split()[0] if str(value).split() else "x"
    try:
        m = parse_bvh(text.replace("MOTION", "MOTION", 1) + f"{token} 0 0\n", units="m", source="t.bvh")
    except BvhError as e:
        assert str(e).startswith("t.bvh:")
        return
    assert np.isfinite(m.local_translations).all() and abs(m.local_translations[0, 0, 0]) <= 1e7
