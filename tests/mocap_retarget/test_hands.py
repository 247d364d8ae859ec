"""Hands on the ground (`mocap_retarget.hands`): a planted wrist is locked at its height above the floor, a wrist
never goes through the floor, the hand keeps its world rotation and the arm its bone lengths; a take whose hands
never touch the ground is left exactly as the feet's cleanup made it."""

from __future__ import annotations

import numpy as np
import pytest

from mocap_retarget.hands import HandConfig, body_lift, enforce_hands
from mocap_retarget.roles import BoneMap
from mocap_retarget.skeleton import TargetSkeleton

NAMES = ["hips", "chest", "upperarm_l", "forearm_l", "hand_l", "upperarm_r", "forearm_r", "hand_r"]
PARENTS = np.array([-1, 0, 1, 2, 3, 1, 5, 6])
#  a crouching body whose arms hang to the floor: shoulder 0.55 m up, elbow slightly bent back, wrist 0.06 m up
BIND = np.array([[0, 0.35, 0], [0, 0.50, 0], [0.2, 0.55, 0], [0.2, 0.31, -0.03], [0.2, 0.06, 0],
                 [-0.2, 0.55, 0], [-0.2, 0.31, -0.03], [-0.2, 0.06, 0]], dtype=float)
F, FPS = 30, 30.0


def _target():
    M = np.tile(np.eye(4), (len(NAMES), 1, 1))
    M[:, :3, 3] = BIND
    tmap = BoneMap(NAMES, {n: i for i, n in enumerate(NAMES) if n not in ("chest",)})
    return TargetSkeleton(NAMES, PARENTS, M), tmap


def _positions(W: np.ndarray, root: np.ndarray) -> np.ndarray:
    """(F, J, 3) from joint-major world rotations (J, F, 3, 3) and the root's path (F, 3); bind rotations are
    the identity here, so a child's offset in its parent's frame is the bind difference."""
    P = np.empty((F, len(NAMES), 3))
    P[:, 0] = root
    for k, p in enumerate(PARENTS):
        if p >= 0:
            P[:, k] = P[:, p] + W[p] @ (BIND[k] - BIND[p])
    return P


def _scene():
    """The body sways 6 cm sideways and sinks from 4 to 10 cm: without a cleanup the wrists slide and go under the
    floor (the left one's lock stays within the arm's reach)."""
    t = np.arange(F) / FPS
    root = BIND[0] + np.stack([0.06 * np.sin(2 * np.pi * t), -0.04 - 0.06 * t / t[-1], 0 * t], 1)
    W = np.tile(np.eye(3), (len(NAMES), F, 1, 1))
    return W, root, _positions(W, root)


def test_a_planted_wrist_is_locked_at_its_height_and_the_arm_keeps_its_shape_rules():
    target, tmap = _target()
    W, root, P = _scene()
    contacts = np.zeros((F, 2), dtype=bool)
    contacts[:, 0] = True                                        # the left hand on the ground throughout
    height = np.full((F, 2), 0.04)                               # the performer's wrist 4 cm above the floor
    assert np.ptp(P[:, 4, 0]) > 0.1 and P[:, 7, 1].min() < 0     # before: the left slides, the right sinks
    Wn = enforce_hands(target, tmap, W, P, contacts, height, ["l", "r"], HandConfig(), FPS, 0.1,
                       np.ones(len(NAMES), dtype=bool))
    Pn = _positions(Wn, root)
    lock = P[:, 4].mean(0)
    np.testing.assert_allclose(Pn[:, 4, [0, 2]], np.broadcast_to(lock[[0, 2]], (F, 2)), atol=1e-6)   # no skate
    np.testing.assert_allclose(Pn[:, 4, 1], 0.04, atol=1e-6)
    assert Pn[:, 7, 1].min() == pytest.approx(0.03, abs=1e-6)    # the right: lifted to the clearance, no lock
    assert np.ptp(Pn[:, 7, 0]) > 0.1                               # ... and free to move
    for a, b in ((2, 3), (3, 4), (5, 6), (6, 7)):                  # bone lengths kept
        np.testing.assert_allclose(np.linalg.norm(Pn[:, b] - Pn[:, a], axis=-1), np.linalg.norm(BIND[b] - BIND[a]),
                                   atol=1e-9)
    np.testing.assert_array_equal(Wn[4], W[4])                     # the hands keep their world rotations
    np.testing.assert_array_equal(Wn[:2], W[:2])                   # the body is not this function's


def test_the_body_comes_up_for_a_planted_wrist_below_its_lock():
    target, tmap = _target()
    W, root, P = _scene()
    contacts = np.zeros((F, 2), dtype=bool)
    height = np.full((F, 2), 0.04)
    assert not body_lift(target, tmap, P, contacts, height, ["l", "r"], HandConfig(), FPS, 0.1, 0.35).any()
    contacts[:, 1] = True
    lift = body_lift(target, tmap, P, contacts, height, ["l", "r"], HandConfig(), FPS, 0.1, 0.35)
    below = 0.04 - P[:, 7, 1]                                      # how far the right wrist is under its lock
    assert (lift >= below - 1e-9).all() and lift.max() <= 0.3 * 0.35 + 1e-9


def test_a_walk_is_left_as_the_feet_made_it(anny_skeleton):
    """No hand of a walk comes near the floor: the hands' cleanup changes nothing and reports nothing."""
    from mocap_retarget.metrics import compute_metrics
    from mocap_retarget.retarget import RetargetConfig, retarget
    from mocap_retarget.synthetic import WalkSpec, synthetic_walk

    names, parents, bind = anny_skeleton
    target = TargetSkeleton(names, parents, bind)
    walk = synthetic_walk(WalkSpec(seconds=1.0, fps=60.0))
    res = retarget(walk, target)
    off = retarget(walk, target, RetargetConfig(hands=HandConfig(height=-1.0, clearance=-10.0)))
    assert not res.hand_contacts.any() and set(res.hand_sides) == {"l", "r"}
    np.testing.assert_array_equal(res.target_positions, off.target_positions)
    assert "hands" not in compute_metrics(res, target)
