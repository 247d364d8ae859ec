"""Face compositing: masks, colour transfer, feather / multi-band / fixed-anchor Poisson blends."""

import numpy as np
import pytest

from neural_render.face_composite import (
    ColourMatcher,
    blend,
    blend_multiband,
    blend_poisson,
    face_mask,
    lab,
    lab_stats,
    occluder_mask,
    poisson_anchor,
)


def _disc(h, w, cx, cy, r):
    yy, xx = np.mgrid[:h, :w]
    return ((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 < r * r).astype(np.float32)


def test_face_mask_removes_hands_and_background_and_fades_inside_the_edge():
    cov = _disc(96, 96, 48, 48, 30)
    person = np.ones((96, 96), np.float32)
    person[:, :30] = 0                                          # background on the left
    hand = np.array([[60 + 6 * np.cos(a), 60 + 6 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 21)])
    occ = occluder_mask((96, 96), hand[None], dilate_px=2)
    m = face_mask(cov, person, occ, erode_px=2, feather_px=4)
    assert m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
    assert m[48, 48] > 0.95                                     # the face's centre is kept
    assert m[60, 60] == 0 and m[:, :30].max() == 0              # the hand and the background are not
    assert (m[cov == 0] == 0).all()                             # never outside the rendered face
    assert 0 < m[48, 48 + 27] < 0.95                            # soft near the edge


def test_colour_matcher_transfers_mean_and_std_in_lab_and_smooths_over_time():
    rng = np.random.default_rng(0)
    src = np.clip(0.5 + 0.1 * rng.standard_normal((32, 32, 3)), 0, 1).astype(np.float32)
    dst = np.clip(src * 0.6 + np.array([0.3, 0.1, 0.0], np.float32), 0, 1)
    mask = np.ones((32, 32), np.float32)
    cm = ColourMatcher(smoothing=0.0)
    assert cm.update(lab_stats(src, mask), lab_stats(dst, mask))
    got = lab_stats(cm.apply(src), mask)
    want = lab_stats(dst, mask)
    np.testing.assert_allclose(got[0], want[0], atol=1.0)       # means within 1 Lab unit
    np.testing.assert_allclose(got[1], want[1], rtol=0.15)
    smooth = ColourMatcher(smoothing=0.8)
    smooth.update(lab_stats(src, mask), lab_stats(src, mask))   # identity first
    smooth.update(lab_stats(src, mask), lab_stats(dst, mask))   # then a jump: only 20 % of it
    jump = lab_stats(smooth.apply(src), mask)[0] - lab_stats(src, mask)[0]
    full = want[0] - lab_stats(src, mask)[0]
    np.testing.assert_allclose(jump, 0.2 * full, atol=0.6)


def test_multiband_and_feather_are_exact_where_the_mask_is_0_or_1_far_from_the_seam():
    rng = np.random.default_rng(1)
    fg, bg = rng.random((64, 64, 3), np.float32), rng.random((64, 64, 3), np.float32)
    a = np.zeros((64, 64), np.float32)
    a[:, 32:] = 1
    for mode in ("feather", "multiband"):
        out = blend(mode, fg, bg, a)
        np.testing.assert_allclose(out[:, :8], bg[:, :8], atol=0.02)
        np.testing.assert_allclose(out[:, -8:], fg[:, -8:], atol=0.02)
    same = blend_multiband(fg, fg, a)
    np.testing.assert_allclose(same, fg, atol=1e-5)             # blending an image with itself changes nothing


def test_poisson_with_a_fixed_box_does_not_move_the_face_when_the_mask_changes():
    """The jitter DeepFaceLab works around: seamlessClone places the source by the mask's bounding box, so a
    mask that grows on one side shifts the face. With the shot's fixed box the face's position never moves."""
    h = w = 96
    bg = np.full((h, w, 3), 0.4, np.float32)
    fg = bg.copy()
    fg[40:56, 40:56] = 0.9                                      # a bright square 'face feature' at a fixed place
    box = (10, 10, 85, 85)
    centres = []
    for grow in (0, 7, 15):
        m = np.zeros((h, w), np.float32)
        m[30:66, 30:66 + grow] = 1
        out = blend_poisson(fg, bg, m, box)
        bright = out[..., 0] > 0.7
        ys, xs = np.nonzero(bright)
        centres.append((xs.mean(), ys.mean()))
    c = np.array(centres)
    assert np.abs(c - c[0]).max() < 0.5, c                      # the feature stays where it was
    np.testing.assert_allclose(c[0], (47.5, 47.5), atol=1.0)
    assert poisson_anchor((10, 10, 85, 85)) == (48, 48)
    with pytest.raises(ValueError, match="inside"):
        blend_poisson(fg, bg, m, (0, 0, 95, 95))


def test_lab_round_trip():
    rgb = np.random.default_rng(2).random((8, 8, 3)).astype(np.float32)
    from neural_render.face_composite import lab_to_rgb

    np.testing.assert_allclose(lab_to_rgb(lab(rgb)), rgb, atol=3e-3)   # OpenCV float Lab: ~1e-3


def test_seam_difference_sees_a_colour_step_and_ignores_natural_edges():
    """A paste with a colour step at the mask edge scores its step; a smooth (feathered, matched) paste scores ~0;
    with a reference whose own edge lies there (a real outline), that edge is not scored."""
    from neural_render.face_composite import delta_e_2000, lab, seam_difference

    h = w = 96
    yy, xx = np.mgrid[:h, :w]
    matte = (((yy - 48) ** 2 + (xx - 48) ** 2) < 30 ** 2).astype(np.float32)
    plate = np.full((h, w, 3), 0.5, np.float32)
    pasted = plate.copy()
    pasted[matte > 0.5] = (0.6, 0.5, 0.45)
    expect = float(delta_e_2000(lab(np.array([[[0.6, 0.5, 0.45]]], np.float32)), lab(plate[:1, :1]))[0, 0])
    d, share = seam_difference(pasted, matte)
    assert share == 1.0 and abs(d - expect) < 0.15 * expect and expect > 5
    assert seam_difference(plate, matte)[0] < 0.01                      # no step, no seam
    d2, share2 = seam_difference(pasted, matte, reference=pasted)       # the step is the reference's own outline
    assert np.isnan(d2) and share2 == 0.0
    half = plate.copy()
    half[:, 48:][matte[:, 48:] > 0.5] = (0.6, 0.5, 0.45)                # an outline on the right half only
    d3, share3 = seam_difference(pasted, matte, reference=half)
    assert 0.3 < share3 < 0.7 and abs(d3 - expect) < 0.15 * expect


def test_skin_like_keeps_skin_and_drops_hair_and_background():
    from neural_render.face_composite import skin_like

    rng = np.random.default_rng(3)
    img = np.empty((60, 90, 3), np.float32)
    img[:, :30] = (0.85, 0.65, 0.55)     # skin
    img[:, 30:60] = (0.55, 0.45, 0.25)   # blonde-brown hair
    img[:, 60:] = (0.75, 0.75, 0.80)     # grey-blue backdrop
    img += rng.normal(scale=0.01, size=img.shape).astype(np.float32)
    sample = np.zeros((60, 90), bool)
    sample[10:50, 5:25] = True
    got = skin_like(np.clip(img, 0, 1), sample)
    assert got[:, :30].mean() > 0.97 and got[:, 30:60].mean() < 0.02 and got[:, 60:].mean() < 0.02
    assert skin_like(img, np.zeros((60, 90), bool)).all()     # no sample: no gate


def test_shading_match_gives_the_skin_the_plates_shading_but_not_its_features():
    """The double (flat skin, a dark brow) takes the plate's skin tone and its left-to-right shading; the plate's
    own dark feature (a hole in the weight) does not come through, the double's brow stays dark, and the hole
    fills from its surroundings."""
    from neural_render.face_composite import lab, shading_match

    h, w = 80, 120
    xx = np.mgrid[:h, :w][1] / (w - 1)
    fg = np.empty((h, w, 3), np.float32)
    fg[:] = (0.85, 0.70, 0.62)                       # the double's skin, evenly lit
    fg[20:26, 30:50] = (0.12, 0.10, 0.08)            # its brow
    bg = np.empty((h, w, 3), np.float32)
    bg[:] = (0.62, 0.45, 0.36)                       # the performer's darker skin ...
    bg *= (0.6 + 0.5 * xx)[..., None]                # ... lit from the right
    bg[50:60, 70:100] = (0.25, 0.05, 0.05)           # the performer's mouth
    weight = np.ones((h, w), bool)
    weight[46:64, 66:104] = False                    # the plate's feature hole
    weight[18:28, 28:52] = False                     # the double's
    out = shading_match(fg, bg, weight, sigma_px=4.0)
    L_out, L_bg, L_fg = lab(out)[..., 0], lab(bg)[..., 0], lab(fg)[..., 0]
    skin = weight.copy()
    skin[:, :8] = skin[:, -8:] = False               # away from the border
    assert np.abs(L_out - L_bg)[skin].mean() < 1.0 < np.abs(L_fg - L_bg)[skin].mean()   # shading carried over
    mouth = L_out[52:58, 74:96]
    ring = np.r_[L_out[44, 74:96], L_out[66, 74:96]]
    assert abs(mouth.mean() - ring.mean()) < 3.0 and L_bg[52:58, 74:96].mean() < ring.mean() - 20   # no mouth
    assert L_out[21:25, 32:48].mean() < L_out[30:34, 32:48].mean() - 30          # the brow is still a brow
    assert np.allclose(shading_match(fg, bg, np.zeros((h, w), bool), 4.0), fg)   # no skin: unchanged
