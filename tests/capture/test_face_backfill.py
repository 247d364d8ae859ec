"""`capture.face_backfill.Backfill`: faceless frames before a found face, tracked backwards from it."""

import numpy as np

from capture.face_backfill import Backfill
from capture.face_tracking import PlateFrameLandmarks


class _Tracker:
    """A stand-in tracker: a frame's face is its first pixel's value, found while it is non-zero; logs what it
    was given, in order."""

    log: list = []

    def process(self, rgb):
        self.log.append(int(rgb[0, 0, 0]))
        faces = np.full((1, 478, 2), float(rgb[0, 0, 0])) if rgb[0, 0, 0] else np.zeros((0, 478, 2))
        return PlateFrameLandmarks(faces, np.zeros((0, 21, 2)))

    def close(self):
        self.log.append("closed")


def _frame(value, size=4):
    return np.full((size, size, 3), value, np.uint8)


def test_the_run_before_a_found_face_is_tracked_backwards_from_it_until_the_face_is_lost():
    _Tracker.log = []
    back = Backfill(_Tracker)
    for f, v in enumerate([5, 0, 7, 8, 9]):         # frame 1 is lost to the tracker too; 2-4 it finds
        back.faceless(f, _frame(v))
    out = back.found(5, _frame(10))
    assert [f for f, _, _ in out] == [4, 3, 2]           # latest first, stopping at frame 1
    assert [float(r.face(0)[0, 0]) for _, r, _ in out] == [9.0, 8.0, 7.0]
    assert _Tracker.log == [10, 9, 8, 7, 0, "closed"]   # seeded by the found frame, then backwards
    assert back.recovered == 3 and back.found(6, _frame(11)) == []       # the run was let go


def test_only_a_run_that_ends_just_before_the_found_frame_is_tracked():
    _Tracker.log = []
    back = Backfill(_Tracker)
    back.faceless(0, _frame(3))
    back.faceless(1, _frame(4))
    back.faceless(5, _frame(6))                       # a gap: a new run
    assert back.found(8, _frame(9)) == []             # not adjacent: nothing tracked, no tracker made
    assert _Tracker.log == []
    back.faceless(9, _frame(3))
    assert [f for f, _, _ in back.found(10, _frame(4))] == [9]


def test_frames_before_a_cut_are_never_tracked_back_into():
    """The face found in a new shot says nothing of the shot before: a cut lets the held frames go."""
    _Tracker.log = []
    back = Backfill(_Tracker)
    for f in range(3):
        back.faceless(f, _frame(5 + f))           # the shot before: faces its tracker would find
    back.cut()
    assert back.found(3, _frame(9)) == [] and _Tracker.log == []
    back.faceless(4, _frame(2))                     # after the cut: held, and tracked back from the face
    assert [f for f, _, _ in back.found(5, _frame(3))] == [4]


def test_the_held_frames_are_bounded_in_number_and_bytes():
    _Tracker.log = []
    back = Backfill(_Tracker, max_frames=3)
    for f in range(10):
        back.faceless(f, _frame(f + 1))
    assert [f for f, _, _ in back.found(10, _frame(20))] == [9, 8, 7]
    back = Backfill(_Tracker, max_bytes=2 * _frame(1, size=8).nbytes)
    for f in range(10):
        back.faceless(f, _frame(f + 1, size=8))
    assert [f for f, _, _ in back.found(10, _frame(20, size=8))] == [9, 8]
    big = Backfill(_Tracker, max_bytes=10)            # one frame over the bound is still held
    big.faceless(0, _frame(1, size=8))
    assert [f for f, _, _ in big.found(1, _frame(2, size=8))] == [0]
