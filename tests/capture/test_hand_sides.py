"""Hands are given the side of the pose wrist they start at; MediaPipe's own label only where the pose cannot say."""

import numpy as np

from capture.hand_sides import LEFT_WRIST, RIGHT_WRIST, hand_sides


def _hand(wrist, size=40.0):
    pts = np.asarray(wrist, float) + np.linspace(0, size, 21)[:, None] * np.array([0.3, -1.0])
    return pts


def _pose(left=(100.0, 300.0), right=(300.0, 300.0), conf=0.9):
    pose, vis = np.zeros((33, 2)), np.full(33, 0.9)
    pose[LEFT_WRIST], pose[RIGHT_WRIST] = left, right
    vis[[LEFT_WRIST, RIGHT_WRIST]] = conf
    return pose, vis


def test_hands_seen_from_behind_take_the_sides_of_the_pose_wrists():
    """A back camera: MediaPipe named the hand at the right wrist 'left' (the fit drew its 21 points to the other
    hand, 100 px away at 1024 px); both hands named one side lost the weaker one."""
    pose, vis = _pose()
    at_right, at_left = _hand((305, 290)), _hand((95, 310))
    got = hand_sides([(at_right, 0.7, 0)], pose, vis)
    assert [s for s, _, _ in got] == [1] and got[0][1] is at_right
    got = hand_sides([(at_right, 0.9, 0), (at_left, 0.6, 0)], pose, vis)      # both called left
    assert [(s, round(c, 1)) for s, _, c in got] == [(0, 0.6), (1, 0.9)]
    assert got[0][1] is at_left and got[1][1] is at_right


def test_the_label_stays_where_the_pose_cannot_tell():
    at_right = _hand((305, 290))
    pose, vis = _pose(conf=0.2)                                            # wrists not seen
    assert [s for s, _, _ in hand_sides([(at_right, 0.7, 0)], pose, vis)] == [0]
    pose, vis = _pose()
    far = _hand((700, 40))                                                 # near neither wrist
    assert [s for s, _, _ in hand_sides([(far, 0.7, 0)], pose, vis)] == [0]
    both = hand_sides([(far, 0.8, 1), (_hand((690, 60)), 0.5, 1)], pose, vis)
    assert [(s, c) for s, _, c in both] == [(1, 0.8)]                      # one a side, the better scored
    assert hand_sides([], pose, vis) == []
