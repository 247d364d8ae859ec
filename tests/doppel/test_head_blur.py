"""The double's head with the plate's motion blur (`doppel.face_swap.head_blur`): sub-frame poses move towards
the neighbouring frame of the same shot (slerp checked against scipy's), hold at a shot's ends and beside frames
without a face; a blurred head is the premultiplied mean in linear light of the renders over the shutter."""

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from doppel.face_swap.head_blur import blurred_head, head_pose_at
from reconstruction.head_tracking import HeadTrack


def _track(n=4):
    R = Rotation.from_euler("y", np.linspace(0, 30, n)[:, None], degrees=True).as_matrix()
    t = np.stack([np.linspace(0, 0.3, n), np.zeros(n), np.full(n, 1.5)], 1)
    w = np.linspace(0, 1, n)[:, None] * np.ones((1, 3))
    valid = np.ones(n, bool)
    valid[3] = False
    return HeadTrack(R, t, w, valid, np.zeros(n), 800.0)


def test_sub_frame_poses_move_towards_the_neighbour_of_the_same_shot():
    tr = _track()
    R, t, w = head_pose_at(tr, 1, 0.25, (0, 4))
    want = Slerp([0, 1], Rotation.from_matrix(tr.rotation[[1, 2]]))(0.25).as_matrix()
    assert np.abs(R - want).max() < 1e-12
    assert np.allclose(t, 0.75 * tr.translation[1] + 0.25 * tr.translation[2])
    assert np.allclose(w, 0.75 * tr.expression[1] + 0.25 * tr.expression[2])
    R, t, _ = head_pose_at(tr, 1, -0.5, (0, 4))
    assert np.isclose(Rotation.from_matrix(R).as_euler("xyz", degrees=True)[1], 5.0)
    for f, dt, span in ((0, -0.25, (0, 4)), (2, 0.25, (0, 4)), (1, 0.25, (0, 2)), (1, 0.0, (0, 4))):
        R, t, w = head_pose_at(tr, f, dt, span)       # the clip's start, a frame without a face, a cut, no shift
        assert np.array_equal(R, tr.rotation[f]) and np.array_equal(t, tr.translation[f])


def test_a_blurred_head_is_the_premultiplied_mean_in_linear_light():
    tr = _track()
    seen = []

    def draw(R, t, w):                    # a half-covered box whose colour and coverage follow the pose
        seen.append(float(t[0]))
        rgb = np.full((2, 3, 3), 0.2 + t[0], np.float32)
        alpha = np.zeros((2, 3), np.float32)
        alpha[:, : 1 + int(round(t[0] * 20))] = 1.0
        return rgb, alpha

    rgb, alpha = blurred_head(draw, tr, 1, np.array([-0.25, 0.25]), (0, 4))
    assert np.allclose(seen, [0.075, 0.125])
    a = [np.zeros((2, 3)) for _ in seen]
    for k, x in enumerate(seen):
        a[k][:, : 1 + int(round(x * 20))] = 1.0
    assert np.allclose(alpha, np.mean(a, 0))

    def lin(c):
        return ((c + 0.055) / 1.055) ** 2.4

    prem = np.mean([lin(0.2 + x) * ak for x, ak in zip(seen, a, strict=True)], 0)
    want = prem / np.maximum(np.mean(a, 0), 1e-6)
    got = np.where(rgb[..., 0] > 0, rgb[..., 0], 0)
    srgb = np.where(want > 0.0031308, 1.055 * np.power(np.maximum(want, 1e-12), 1 / 2.4) - 0.055, 12.92 * want)
    covered = np.mean(a, 0) > 0
    assert np.abs(got[covered] - srgb[covered]).max() < 1e-4
    one = blurred_head(draw, tr, 1, np.zeros(1), (0, 4))
    assert np.array_equal(one[1], draw(*head_pose_at(tr, 1, 0.0, (0, 4)))[1])


def _along_and_across(img, mask, d):
    """(mean |gradient| along the unit direction d, across it) of an image's luminance inside mask."""
    import cv2

    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)
    gx, gy = cv2.Sobel(grey, cv2.CV_64F, 1, 0), cv2.Sobel(grey, cv2.CV_64F, 0, 1)
    return np.abs(gx * d[0] + gy * d[1])[mask].mean(), np.abs(gy * d[0] - gx * d[1])[mask].mean()


def test_a_swap_with_a_shutter_smears_the_head_along_its_motion(tmp_path, rig_dir):
    """A plate of a fast head turn swapped with the head drawn sharp and over a 180-degree shutter (plain and
    relit): the same track; the same pixels outside the shot's face box; inside the face, where the head turns
    fastest, the blurred head's gradients along the motion fall, and more than those across it (the blurred plate's own
    measure is `benchmarks/swap_motion_blur.py`'s). The manifest records the shutter."""
    import json

    import cv2

    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig
    from doppel.synthetic_plate import PlateConfig, render_plate

    plate = render_plate(tmp_path / "p", PlateConfig(frames=36, width=448, height=252, camera="static",
                                                     texture_size=256)).out
    (tmp_path / "work").mkdir()
    double = load_face_double(rig_dir, tmp_path / "work")
    outs = {}
    for shutter, relight in ((0.0, False), (180.0, False), (0.0, True), (180.0, True)):
        outs[shutter if not relight else f"relit{shutter:g}"] = out = tmp_path / f"s{shutter:g}{relight}"
        swap_plate(plate / "plate" / "frames", double, out, SwapConfig(shutter_deg=shutter, shutter_samples=4,
                                                                       start=15, end=22, debias=False, relight=relight))
    sharp, blurred = (np.load(side_folder(outs[s]) / "tracks.npz") for s in (0.0, 180.0))
    assert np.array_equal(sharp["rotation"], blurred["rotation"]) and sharp["valid"].sum() >= 5
    assert float(sharp["shutter_deg"]) == 0.0 and float(blurred["shutter_deg"]) == 180.0    # for a 3D scene's camera
    params = {s: json.loads((side_folder(outs[s]) / "manifest.json").read_text())["params"] for s in (0.0, 180.0)}
    assert params[180.0]["motion_blur"] == {"angle": 180.0, "samples": 4, "position": "centre"}
    assert params[0.0]["motion_blur"] is None
    lm = np.load(plate / "ground_truth" / "annotations.npz")["landmarks2d"]
    v = sharp["valid"]
    speed = [np.linalg.norm(lm[15 + k + 1] - lm[15 + k - 1], axis=-1).mean() / 2 if v[k - 1:k + 2].all() else 0.0
             for k in range(1, 6)]                          # frames swapped with both neighbours (a face found)
    f = 16 + int(np.argmax(speed))
    assert max(speed) > 5                                   # px a frame: a fast turn
    d = (lm[f + 1] - lm[f - 1]).mean(0)
    d /= np.linalg.norm(d)
    mask = cv2.imread(str(plate / "ground_truth" / "masks" / f"face_{f:06d}.png"), cv2.IMREAD_GRAYSCALE) > 127
    mask = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    imgs = {s: cv2.imread(str(outs[s] / f"{f:06d}.png")) for s in outs}
    for sharp_key, blur_key in ((0.0, 180.0), ("relit0", "relit180")):     # relit by the plate's light too
        (a0, c0), (a1, c1) = (_along_and_across(imgs[s], mask, d) for s in (sharp_key, blur_key))
        assert a1 < 0.97 * a0 and a1 / a0 < c1 / c0 - 0.01, (blur_key, a0, c0, a1, c1)   # smeared along the motion
    face_box = np.zeros(mask.shape, bool)
    pts = lm[15:22].reshape(-1, 2)
    x0, y0 = np.floor(pts.min(0) - 40).astype(int)
    x1, y1 = np.ceil(pts.max(0) + 40).astype(int)
    face_box[max(y0, 0):y1, max(x0, 0):x1] = True
    diff = np.abs(imgs[0.0].astype(float) - imgs[180.0]).max(-1)
    assert diff[~face_box].max() <= 2 and diff[mask].mean() > 1
