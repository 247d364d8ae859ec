"""Short face-detection dropouts inside a tracked shot, swapped instead of passed through.

MediaPipe loses a face for a frame or two where it is smeared by a fast turn or the shutter, half in profile, or
small: the head track bridges those frames (its smoothness term carries the pose through them), but a frame with
no landmarks passed through shows the performer's own face for a frame between swapped ones, a flash a viewer
sees at once. A dropout of at most ``SwapConfig.bridge`` frames, inside one shot (between cuts), with the face found
on both sides, facing the camera there (|yaw| under ``BRIDGE_MAX_YAW`` degrees: not a head turning away into a back
view), turned less than ``BRIDGE_MAX_TURN`` degrees from one side to the other, and with no other person's face seen
in it, is swapped at a pose that puts the double's face between where its neighbours put it in the image
(`place_between`): the solve's own bridge, which interpolates rotation and translation separately, lands a face
between two neighbours that trade rotation against translation (a head near profile) off both of them. Its landmarks
(for the comp's masks) are the neighbours' interpolated linearly. Such frames are flagged in the QC and listed in
``tracks.npz`` (``face_bridged``).

The turn limit: a face's points move on arcs as the head turns, and a frame placed between its neighbours puts
them on the chords; a point a face's depth (about an inter-ocular distance) from the axis is off its arc by about
1 - cos(turn / 2) of that distance half way, 0.024 IOD at 25 degrees and 0.09 at 50. A head whipping round (on a
12-frame plate of the synthetic performance, 34 and 43 degrees between the neighbours of two dropouts by the
track, 50 by the truth) is where the detector drops frames, and a frame bridged there landed 0.81 IOD from the
truth against its neighbours' 0.28, popping more than the performer's own face passed through.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["BRIDGE_MAX_TURN", "BRIDGE_MAX_YAW", "bridge_dropouts", "dropout_runs", "place_between", "turn_deg"]

BRIDGE_MAX_YAW = 75.0      # degrees: both neighbours of a dropout face the camera closer than this
BRIDGE_MAX_TURN = 25.0     # degrees: the head turns less than this from one neighbour of a dropout to the other


def dropout_runs(valid: np.ndarray, shots: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(first, end) frame offsets of every run of invalid frames with a valid frame just before and just after it
    in the same shot."""
    runs = []
    for a, b in shots:
        k = a
        while k < b:
            if valid[k]:
                k += 1
                continue
            e = k
            while e < b and not valid[e]:
                e += 1
            if k > a and e < b:
                runs.append((k, e))
            k = e
    return runs


def bridge_dropouts(shot, track, frames: int, basis=None, K: np.ndarray | None = None):
    """(shot, track): ``shot`` (`swap.ShotLandmarks`) and ``track`` (`HeadTrack`) with the dropouts that may be
    bridged (see the module) made valid: their landmarks interpolated from the neighbours (F, 478, 2 px), the
    track's frames marked valid, ``shot.bridged`` (F,) bool those frames, ``shot.unbridged`` {frame offset: why
    not} for the other dropouts' frames (passed through). frames: the longest dropout bridged (0:
    none). With the double's ``basis`` (`FaceBasis`) and the camera ``K`` (3, 3) the track is solved in, their pose
    is `place_between`'s; without, the solve's bridge."""
    from reconstruction.head_tracking import yaw_pitch_deg

    F = len(track.valid)
    bridged = np.zeros(F, bool)
    if frames <= 0:
        return dataclasses.replace(shot, bridged=bridged), track
    R = np.asarray(track.rotation, np.float64)
    yaw = np.abs(yaw_pitch_deg(R)[0])
    others = np.zeros(F, bool) if shot.not_performer is None else np.asarray(shot.not_performer, bool)
    lm = np.array(shot.landmarks, copy=True)
    unbridged: dict[int, str] = {}
    for k, e in dropout_runs(np.asarray(track.valid, bool), shot.shots):
        why = _why_not_bridged(e - k, frames, max(yaw[k - 1], yaw[e]), others[k:e].any(), turn_deg(R[k - 1], R[e]))
        if why:
            unbridged.update(dict.fromkeys(range(k, e), why))
            continue
        for g in range(k, e):
            s = (g - (k - 1)) / (e - (k - 1))
            lm[g] = (1 - s) * lm[k - 1] + s * lm[e]
        bridged[k:e] = True
        if basis is not None and K is not None:
            track = place_between(track, k, e, basis, K)
    return (dataclasses.replace(shot, landmarks=lm.astype(shot.landmarks.dtype), bridged=bridged,
                                unbridged=unbridged),
            dataclasses.replace(track, valid=np.asarray(track.valid, bool) | bridged))


def _why_not_bridged(lost: int, frames: int, yaw: float, others: bool, turn: float) -> str:
    """Why a dropout of ``lost`` frames is not bridged, in words for the QC ("" when it is): longer than
    ``frames``, a neighbour turned ``yaw`` degrees from the camera, another person's face in view, or the head
    turning ``turn`` degrees across it."""
    if lost > frames:
        return f"lost for {lost} frames; --bridge {frames}"
    if yaw >= BRIDGE_MAX_YAW:
        return f"the head {yaw:.0f} degrees from the camera beside it; bridged under {BRIDGE_MAX_YAW:g}"
    if others:
        return "another person's face in view"
    if turn >= BRIDGE_MAX_TURN:
        return f"the head turns {turn:.0f} degrees across it; bridged under {BRIDGE_MAX_TURN:g}"
    return ""


def turn_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle (degrees) of the rotation from ``a`` to ``b`` (3, 3)."""
    c = (np.trace(np.asarray(a, np.float64).T @ np.asarray(b, np.float64)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def place_between(track, k: int, e: int, basis, K: np.ndarray):
    """``track`` (`HeadTrack`) with frames k..e-1 re-posed so that the double's face landmarks (``basis``, at the
    track's expression there) land on the linear interpolation, in the image of camera ``K`` (3, 3), of where
    frames k-1 and e put them: rigid PnP (OpenCV, Levenberg-Marquardt from the track's own pose). A frame whose
    solve fails keeps the track's pose."""
    import cv2

    from doppel.face_swap.render_head import project

    R, t = np.array(track.rotation, np.float64), np.array(track.translation, np.float64)
    Kc = np.asarray(K, np.float64)
    ends = [project(basis.points(track.expression[f]), R[f], t[f], Kc) for f in (k - 1, e)]
    for g in range(k, e):
        s = (g - (k - 1)) / (e - (k - 1))
        target = (1 - s) * ends[0] + s * ends[1]
        points = np.asarray(basis.points(track.expression[g]), np.float64)
        rvec, tvec = cv2.Rodrigues(R[g])[0], t[g].reshape(3, 1).copy()
        ok, rvec, tvec = cv2.solvePnP(points, target, Kc, None, rvec, tvec, useExtrinsicGuess=True,
                                      flags=cv2.SOLVEPNP_ITERATIVE)
        if ok and np.isfinite(rvec).all() and np.isfinite(tvec).all() and float(tvec[2, 0]) > 0:
            R[g], t[g] = cv2.Rodrigues(rvec)[0], tvec.ravel()
    return dataclasses.replace(track, rotation=R, translation=t)
