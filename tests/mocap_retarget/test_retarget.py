"""Retargeting: exactness on an identical skeleton, invariance to the source's conventions, quality on
Anny (limb directions, foot skate, penetration, root path), IK and rotation helpers against references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_retarget.bvh import format_bvh, parse_bvh
from mocap_retarget.contacts import detect_contacts, runs
from mocap_retarget.feet import two_bone_ik
from mocap_retarget.metrics import compute_metrics
from mocap_retarget.retarget import Animation, RetargetConfig, TargetSkeleton, retarget
from mocap_retarget.rotations import rotation_between
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk

SPEC = WalkSpec(seconds=2.0, fps=60)
POS_TOL = 1e-6      # metres, for results that must be exact up to float error


@pytest.fixture(scope="module")
def anny_target(anny_skeleton):
    names, parents, B = anny_skeleton
    return TargetSkeleton(names, parents, B, floor_y=0.0)


def _random_bind_frames(target: TargetSkeleton, seed: int) -> TargetSkeleton:
    B = target.bind_world.copy()
    B[:, :3, :3] = Rotation.random(len(B), random_state=seed).as_matrix()
    return TargetSkeleton(target.names, target.parents, B, target.floor_y)


def test_rotation_between_matches_scipy_align_vectors():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    b[0] = -a[0]                                   # antiparallel
    b[1] = 2 * a[1]                                # parallel
    R = rotation_between(a, b)
    np.testing.assert_allclose(np.einsum("nab,nb->na", R, a / np.linalg.norm(a, axis=1, keepdims=True)),
                               b / np.linalg.norm(b, axis=1, keepdims=True), atol=1e-12)
    for i in range(2, 50):                         # the smallest rotation: same as scipy's single-vector alignment
        ref, _ = Rotation.align_vectors(b[i][None], a[i][None])
        np.testing.assert_allclose(R[i], ref.as_matrix(), atol=1e-9)
    np.testing.assert_allclose(R[1], np.eye(3), atol=1e-12)


def test_two_bone_ik_reaches_and_keeps_lengths():
    rng = np.random.default_rng(1)
    n = 200
    hip = rng.normal(size=(n, 3))
    knee = hip + np.array([0.0, -0.4, 0.05]) + rng.normal(scale=0.02, size=(n, 3))
    ankle = knee + np.array([0.0, -0.4, -0.02])
    l1, l2 = 0.45, 0.42
    d = rng.normal(size=(n, 3))
    goal = hip + d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0.1, 0.85, (n, 1))
    k2, a2 = two_bone_ik(hip, knee, ankle, goal, l1, l2)
    np.testing.assert_allclose(np.linalg.norm(k2 - hip, axis=1), l1, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(a2 - k2, axis=1), l2, atol=1e-9)
    np.testing.assert_allclose(a2, goal, atol=1e-6)
    # the knee stays in the plane of hip, goal and the old knee
    normal = np.cross(goal - hip, knee - hip)
    assert np.abs(np.sum((k2 - hip) * normal, axis=1)).max() < 1e-9
    # out of reach: the leg points at the goal, fully stretched
    far = hip + np.array([0.0, -2.0, 0.0])
    _, a3 = two_bone_ik(hip, knee, ankle, far, l1, l2)
    np.testing.assert_allclose(a3, hip + np.array([0.0, -(l1 + l2), 0.0]), atol=1e-5)


def test_retarget_onto_its_own_skeleton_is_exact():
    m = synthetic_walk(SPEC)
    target = _random_bind_frames(TargetSkeleton.from_motion(m), seed=3)
    res = retarget(m, target, RetargetConfig(cleanup=False))
    assert res.scale == pytest.approx(1.0)
    _, P = m.forward_kinematics()
    mapped = [k for _, _, k in res.pairs]
    assert np.abs(res.target_positions[:, mapped] - P[:, mapped]).max() < POS_TOL
    assert compute_metrics(res, target)["limb_cosine_min"] > 1 - 1e-9


@pytest.mark.parametrize("variant", ["A-pose rest", "inches", "XYZ order", "Z-up world", "unreal names",
                                     "smpl names", "position channels"])
def test_result_does_not_depend_on_source_conventions(variant, anny_target):
    base = synthetic_walk(SPEC)
    kw = {"A-pose rest": {"rest": "A"}, "XYZ order": {"order": "XYZ"}, "Z-up world": {"up": "+z"},
          "unreal names": {"names": SCHEMES["unreal"]}, "smpl names": {"names": SCHEMES["smpl"]},
          "position channels": {"position_channels": ("spine", "neck")}}.get(variant, {})
    other = synthetic_walk(SPEC, **kw)
    units = "inch" if variant == "inches" else "cm"
    a = retarget(parse_bvh(format_bvh(base, units="cm")), anny_target)
    b = retarget(parse_bvh(format_bvh(other, units=units)), anny_target)
    assert b.up_axis == ("+z" if variant == "Z-up world" else "+y")
    assert np.abs(a.target_positions - b.target_positions).max() < 2e-4     # 6-decimal text round trip
    np.testing.assert_array_equal(a.contacts, b.contacts)


def test_quality_on_the_double(anny_target):
    m = parse_bvh(format_bvh(synthetic_walk(SPEC, rest="A"), units="cm"))
    res = retarget(m, anny_target)
    mt = compute_metrics(res, anny_target)
    assert mt["limb_cosine_mean"] >= 0.98
    assert mt["facing_cosine_mean"] > 0.999
    assert mt["root_path_rms_cm"] < 1e-6
    assert mt["root_path_length_m"]["ratio"] == pytest.approx(res.scale, rel=1e-4)
    for side in ("l", "r"):
        f = mt["feet"][side]
        assert 0.45 < f["contact_fraction"] < 0.75              # stance is 60% of the synthetic gait
        assert f["skate_after_cleanup_cm_s"] < 0.5
        # no worse than the source's own skate (scaled), within 0.05 cm/s
        assert f["skate_after_cleanup_cm_s"] <= f["skate_source_scaled_cm_s"] + 0.05
        assert f["skate_after_cleanup_cm_s"] < 0.2 * f["skate_before_cleanup_cm_s"]
        assert f["penetration_max_after_cm"] < 0.5
    # fingers transferred (both sides have thumb and index)
    roles = {r for r, _, _ in res.pairs}
    assert {"thumb1_l", "index2_r"} <= roles
    no_fingers = retarget(m, anny_target, RetargetConfig(fingers=False))
    assert not any(r.startswith(("thumb", "index")) for r, _, _ in no_fingers.pairs)
    # the soles the feet metrics read are those of the animation posed on the target (the result keeps heights, not
    # the take's world rotations), and the cleanup puts no sole lower than the raw transfer's lowest
    from mocap_retarget.feet import sole_heights

    W, P = anny_target.pose(res.animation)
    np.testing.assert_allclose(res.sole_heights, sole_heights(W, P, anny_target, res.target_map), atol=1e-9)
    assert res.sole_heights_raw.shape == res.sole_heights.shape == (m.num_frames, 2)
    assert res.sole_heights.min() > res.sole_heights_raw.min() - 1e-9
    # unmapped target bones stay at rest (identity local rotation)
    k = anny_target.names.index("upperleg02.L")
    np.testing.assert_allclose(res.animation.local_rotations[:, k], np.broadcast_to(np.eye(3), (m.num_frames, 3, 3)),
                               atol=1e-12)


def test_bind_frames_do_not_change_the_motion(anny_target):
    m = synthetic_walk(WalkSpec(seconds=1.0, fps=30))
    a = retarget(m, anny_target)
    b = retarget(m, _random_bind_frames(anny_target, seed=5))
    assert np.abs(a.target_positions - b.target_positions).max() < 1e-6


def test_contacts_follow_the_stance_phase():
    m = synthetic_walk(WalkSpec(seconds=3.0, fps=60))
    _, P = m.forward_kinematics()
    foot = m.index("LeftFoot")
    c = detect_contacts(P[:, [foot]], np.array([0.06]), 0.0, 60.0, 0.84)
    # ground truth of the generator: the left foot is planted for phase u in [0, 0.6)
    u = (np.arange(len(c)) / 60.0) % 1.0
    truth = u < 0.6
    assert (c == truth).mean() > 0.9
    assert len(runs(c)) == 3


def test_animation_save_load(tmp_path):
    rng = np.random.default_rng(0)
    R = Rotation.random(12, random_state=1).as_matrix().reshape(3, 4, 3, 3)
    a = Animation(["a", "b", "c", "d"], R, rng.normal(size=(3, 3)), 30.0, parents=np.array([-1, 0, 1, 1]))
    a.save(tmp_path / "anim.npz")
    b = Animation.load(tmp_path / "anim.npz")
    assert b.joint_names == a.joint_names and b.fps == 30.0
    np.testing.assert_array_equal(b.parents, [-1, 0, 1, 1])
    np.testing.assert_allclose(b.local_rotations, R, atol=1e-6)
    with pytest.raises(FileNotFoundError):
        Animation.load(tmp_path / "missing.npz")


def test_target_validation():
    with pytest.raises(ValueError, match="topological"):
        TargetSkeleton(["a", "b"], np.array([1, -1]), np.repeat(np.eye(4)[None], 2, 0))
    with pytest.raises(ValueError, match="expected"):
        TargetSkeleton(["a", "b"], np.array([-1, 0]), np.eye(4)[None])


def test_hips_drop_curve_is_smooth_and_above_the_need():
    from mocap_retarget.feet import smooth_upper as _smooth_upper

    need = np.zeros(100)
    need[40:45] = [0.01, 0.03, 0.02, 0.0, 0.015]
    out = _smooth_upper(need, 6)
    assert (out >= need - 1e-12).all()
    assert np.abs(np.diff(out)).max() < 0.03 / 3          # spread over several frames, no pop
    assert out[:25].max() == 0 and out[-25:].max() == 0


def test_target_with_a_root_above_the_hips():
    """Unreal-style targets have a 'root' joint on the floor above the pelvis: same motion."""
    skel = synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"], rest="A", scale=1.1)
    plain = TargetSkeleton.from_motion(skel)
    B = np.concatenate([np.eye(4)[None], plain.bind_world])
    parents = np.concatenate([[-1], np.where(plain.parents < 0, 0, plain.parents + 1)])
    rooted = TargetSkeleton(["root"] + plain.names, parents, B, plain.floor_y)
    m = synthetic_walk(WalkSpec(seconds=1.0, fps=30))
    a, b = retarget(m, plain), retarget(m, rooted)
    assert b.target_map.joint("hips") == "pelvis"
    assert np.abs(a.target_positions - b.target_positions[:, 1:]).max() < 1e-9
    np.testing.assert_allclose(b.animation.local_rotations[:, 0], np.broadcast_to(np.eye(3), (30, 3, 3)), atol=1e-12)


def test_the_foot_cleanup_never_pushes_a_toe_off_into_the_floor():
    """At toe-off the heel lifts and the foot pitches toes-down while the lock still holds the ankle: the blend out
    of the lock pulled the ankle down with the foot pitched, so the toes went into the floor (0.61 cm here, 1.9 cm
    on the double's own exported cartwheel retargeted again). The source never penetrates; neither may the result."""
    from scipy.spatial.transform import Rotation

    spec = WalkSpec(seconds=2.0, fps=60)
    target = TargetSkeleton.from_motion(synthetic_walk(spec))
    planted = retarget(synthetic_walk(spec), target).contacts
    m = synthetic_walk(spec)
    for side, name in enumerate(("LeftFoot", "RightFoot")):
        k, pitch = m.names.index(name), np.zeros(m.num_frames)
        for _, b in runs(planted[:, side]):                      # toes down over the last 4 frames and 10 after
            f = np.arange(max(0, b - 4), min(m.num_frames, b + 10))
            pitch[f] = np.deg2rad(35) * np.clip((f - b + 4) / 8, 0, 1)
        m.local_rotations[:, k] = m.local_rotations[:, k] @ Rotation.from_rotvec(
            np.stack([pitch, 0 * pitch, 0 * pitch], 1)).as_matrix()
    res = retarget(m, target)
    mt = compute_metrics(res, target)
    assert mt["penetration_max_before_cm"] == 0.0 and mt["penetration_max_after_cm"] == 0.0
    assert mt["skate_after_cleanup_cm_s"] < 0.05


def test_one_skeleton_on_both_sides_copies_every_joint():
    """A clip of the target's own skeleton (an Anny take onto an Anny rig): the joints the roles miss (here
    'Spine', between the hips and the chest role) move too, and the target's joints follow the source's but for
    the floor the retargeter finds; a bigger body of that skeleton gets every joint's rotation. Before, 'Spine' was
    left at bind and the chest swung to make up for it."""
    from mocap_retarget.retarget import same_skeleton

    spec = WalkSpec(seconds=1.0, fps=30)
    m = synthetic_walk(spec)
    k = m.names.index("Spine")
    twist = Rotation.from_rotvec(np.outer(np.sin(np.linspace(0, 3, m.num_frames)), [0, 0.6, 0])).as_matrix()
    m.local_rotations[:, k] = m.local_rotations[:, k] @ twist      # a twisting spine the roles do not cover
    target = TargetSkeleton.from_motion(synthetic_walk(spec))
    assert same_skeleton(m, target) is not None
    res = retarget(m, target, RetargetConfig(cleanup=False))
    assert compute_metrics(res, target)["same_skeleton"] and res.copied_joints == len(target.names)
    src = res.source_positions - res.source_positions[:, :1] + res.target_positions_raw[:, :1]
    assert np.abs(res.target_positions_raw - src).max() < 1e-9       # the same motion, hips path aside
    np.testing.assert_allclose(res.animation.local_rotations[:, target.names.index("Spine")], m.local_rotations[:, k],
                               atol=1e-9)
    big = TargetSkeleton.from_motion(synthetic_walk(spec, scale=1.2))
    res = retarget(m, big, RetargetConfig(cleanup=False, fingers=False))
    np.testing.assert_allclose(res.animation.local_rotations[:, big.names.index("Spine")], m.local_rotations[:, k],
                               atol=1e-9)
    a_pose = TargetSkeleton.from_motion(synthetic_walk(spec, rest="A"))   # one skeleton, another rest pose: by roles
    res = retarget(m, a_pose, RetargetConfig(cleanup=False))
    assert res.copied_joints == 0 and compute_metrics(res, a_pose)["limb_cosine_mean"] > 0.99
