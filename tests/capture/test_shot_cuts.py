"""Cuts found in a plate: a change of shot, and not a camera move, a whip pan or a flash."""

import cv2
import numpy as np
import skimage.data

from capture.shot_cuts import CutDetector, shot_ranges
from doppel.face_swap.stills import plate_from_still


def _cuts(frames):
    det = CutDetector()
    for f in frames:
        det.add(f)
    return det.cuts()


def _stills():
    ast = cv2.resize(skimage.data.astronaut(), (320, 320))[40:220]
    cam = cv2.cvtColor(cv2.resize(skimage.data.camera(), (320, 320))[50:230], cv2.COLOR_GRAY2RGB)
    return ast, cam


def test_a_cut_is_found_and_camera_moves_pans_and_flashes_are_not():
    ast, cam = _stills()
    a = list(plate_from_still(ast, 20, seed=0, strength=0.2))
    b = list(plate_from_still(cam, 20, seed=1, strength=0.2))
    assert _cuts(a + b) == [20] and _cuts(a + b + a) == [20, 40]
    assert _cuts(list(plate_from_still(ast, 40, seed=2, strength=1.0))) == []      # strong handheld warps
    assert _cuts([np.roll(ast, 40 * i, axis=1) for i in range(16)]) == []         # a whip pan: every frame moves
    flash = [f.copy() for f in a]
    flash[10] = np.clip(flash[10].astype(int) + 80, 0, 255).astype(np.uint8)      # one bright frame
    assert _cuts(flash) == []


def test_shots_are_the_ranges_between_cuts():
    assert shot_ranges([20, 40], 100, 160) == [(100, 120), (120, 140), (140, 160)]
    assert shot_ranges([], 0, 48) == [(0, 48)]


def test_a_new_picture_is_said_at_once_at_a_cut_and_not_on_moves():
    """`new_picture` answers for the latest frame without the frames after it: true at the cut and at a flash's
    first frame (which `cuts` then rejects), false on handheld warps and a whip pan."""
    ast, cam = _stills()

    def said(frames):
        det, out = CutDetector(), []
        for i, f in enumerate(frames):
            det.add(f)
            if det.new_picture():
                out.append(i)
        return out

    a = list(plate_from_still(ast, 20, seed=0, strength=0.2))
    assert said(a + list(plate_from_still(cam, 20, seed=1, strength=0.2))) == [20]
    assert said(list(plate_from_still(ast, 40, seed=2, strength=1.0))) == []
    assert said([np.roll(ast, 40 * i, axis=1) for i in range(16)]) == []
    flash = [f.copy() for f in a]
    flash[10] = np.clip(flash[10].astype(int) + 80, 0, 255).astype(np.uint8)
    assert said(flash) == [10]
