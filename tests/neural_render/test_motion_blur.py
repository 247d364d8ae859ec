"""Motion blur: the shutter's sample times are stratified over the open shutter, the renders share the jitter's
shifts, sub-frame poses interpolate the clip (slerp checked against scipy's), and a sphere moving across the
frame is smeared by its motion over the open shutter: coverage kept, centroid at the shutter's middle time, the
soft band as wide as the smear."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from neural_render.motion_blur import (
    MotionBlur,
    SubframePoser,
    interpolate_frames,
    render_schedule,
    slerp_frames,
    time_order,
)
from neural_render.shot import render_shot_frames, renders_per_frame
from tests.neural_render.scenes import albedo_texture, ring_cameras, uv_sphere

SPEED = 0.2          # metres a frame, along the world's x (about 10 px a frame in the 64 px test camera)


def test_sample_times_are_stratified_over_the_open_shutter():
    assert np.allclose(MotionBlur(180, 4).times(), [-0.1875, -0.0625, 0.0625, 0.1875])
    assert np.allclose(MotionBlur(180, 4, "start").times(), [0.0625, 0.1875, 0.3125, 0.4375])
    assert np.allclose(MotionBlur(360, 2, "end").times(), [-0.75, -0.25])
    assert MotionBlur().times().tolist() == [0.0] and not MotionBlur().on and MotionBlur(180, 1).times().tolist() == [0]
    assert MotionBlur(0, 8).summary() is None
    assert MotionBlur(90, 3).summary() == {"angle": 90, "samples": 3, "position": "centre"}
    for bad, match in (({"angle": -1}, "between 0 and 360"), ({"angle": float("nan")}, "between 0 and 360"),
                       ({"angle": 180, "samples": 0}, "whole number"), ({"samples": 2.5}, "whole number"),
                       ({"position": "middle"}, "centre, start, end")):
        with pytest.raises(ValueError, match=match):
            MotionBlur(**bad)


def test_the_jitter_and_the_shutter_share_the_renders():
    shifts = [(0.1, 0.1), (-0.1, 0.1), (-0.1, -0.1), (0.1, -0.1)]
    s = render_schedule(shifts, np.arange(8) / 8)
    assert len(s) == 8 and [d for d, _ in s] == shifts * 2 and sorted(t for _, t in s) == list(range(8))
    assert [t for _, t in s] == [0, 5, 2, 7, 4, 1, 6, 3]    # stride 5 (8 / golden ratio): angle not tied to time
    for S in (1, 2, 3, 7, 16, 32, 64):
        assert sorted(time_order(S)) == list(range(S))
    s = render_schedule(shifts * 4, np.arange(4))            # 16 shifts, 4 times: each time 4 times
    assert len(s) == 16 and np.bincount([t for _, t in s]).tolist() == [4] * 4
    assert render_schedule(shifts, np.zeros(1)) == [(d, 0) for d in shifts]
    assert render_schedule([(0.0, 0.0)], np.arange(3)) == [((0.0, 0.0), k) for k in range(3)]
    assert renders_per_frame(4) == 4 and renders_per_frame(4, MotionBlur(180, 8)) == 8
    assert renders_per_frame(16, MotionBlur(180, 8)) == 16 and renders_per_frame(1, MotionBlur(0, 8)) == 1


def test_sub_frame_poses_interpolate_the_clip():
    rng = np.random.default_rng(0)
    R = Rotation.random(4 * 3, random_state=1).as_matrix().reshape(4, 3, 3, 3)
    t = np.array([0.0, 0.25, 1.0, 1.5, 2.999, 3.0, -1.0, 7.0])
    got = slerp_frames(R, t)
    for j in range(3):
        ref = Slerp(np.arange(4), Rotation.from_matrix(R[:, j]))(np.clip(t, 0, 3)).as_matrix()
        assert np.abs(got[:, j] - ref).max() < 1e-9
    assert np.array_equal(got[[0, 2, 5, 6, 7]], R[[0, 1, 3, 0, 3]])          # on a frame, or held: bit for bit
    x = rng.normal(size=(4, 5, 3)).astype(np.float32)
    y = interpolate_frames(x, t)
    assert np.allclose(y[1], 0.75 * x[0] + 0.25 * x[1]) and np.allclose(y[3], 0.5 * x[1] + 0.5 * x[2])
    assert np.array_equal(y[[0, 2, 5, 6, 7]], x[[0, 1, 3, 0, 3]])


def _moving_sphere():
    """(model, verts (1, V, 3) at frame 0, camera, poser: the sphere at time t moved SPEED * t along x)."""
    from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig

    v, f, uv, fuv = uv_sphere(16, 32, radius=0.3)
    cams = ring_cameras(2, 64)
    torch.manual_seed(0)
    model = NeuralDouble(NeuralDoubleConfig(texture_size=32, channels=8, levels=2, width=8, depth=2,
                                            cameras=list(cams.name)), f, uv, fuv, v, albedo_texture(32)).eval()

    def pose(times):
        shift = torch.zeros(len(times), 1, 3)
        shift[:, 0, 0] = torch.as_tensor(times, dtype=torch.float32) * SPEED
        return v[None] + shift

    return model, v[None], cams[:1], SubframePoser(pose)


def _alpha(frame) -> np.ndarray:
    return frame.rgba_linear[..., 3]


def _centroid_x(a: np.ndarray) -> float:
    return float((a * np.arange(a.shape[1])[None]).sum() / a.sum())


def test_a_blurred_frame_is_the_mean_of_the_double_over_the_open_shutter():
    model, v, cam, poser = _moving_sphere()
    blur = MotionBlur(180, 4)
    got = next(render_shot_frames(model, v, cam, "cgi", motion_blur=blur, poser=poser))
    sharp = [next(render_shot_frames(model, poser.pose(np.array([t])), cam, "cgi")) for t in blur.times()]
    ref = np.mean([s.rgba_linear for s in sharp], 0)          # premultiplied: what a comp averages
    assert np.abs(got.rgba_linear - ref).max() < 1e-5
    assert 0.05 < np.abs(got.rgba_linear - sharp[0].rgba_linear).max()
    with pytest.raises(ValueError, match="needs a poser"):
        next(render_shot_frames(model, v, cam, "cgi", motion_blur=blur))


@pytest.mark.parametrize("renderer", ["cgi", "neural"])
def test_a_moving_sphere_is_smeared_by_its_motion_over_the_shutter(renderer):
    """The sphere moves about 10 px a frame: a 180-degree shutter smears it over about 5 px. Its coverage is
    kept (it stays in view), its centroid stays where the frame's time puts it for a centred shutter and moves on
    by half the smear for one opening on the frame, and the band of partial alpha across its middle row widens
    by the smear on each side."""
    model, v, cam, poser = _moving_sphere()
    uv, _ = cam[0].project(torch.tensor([[SPEED, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    px_per_frame = float(uv[0, 0] - uv[1, 0])
    assert 8 < px_per_frame < 12
    sharp = _alpha(next(render_shot_frames(model, v, cam, renderer, jitter=8)))
    centred = _alpha(next(render_shot_frames(model, v, cam, renderer, jitter=8, motion_blur=MotionBlur(180, 16),
                                             poser=poser)))
    opening = _alpha(next(render_shot_frames(model, v, cam, renderer, jitter=8,
                                             motion_blur=MotionBlur(180, 16, "start"), poser=poser)))
    assert abs(centred.sum() - sharp.sum()) < 0.01 * sharp.sum()
    assert abs(_centroid_x(centred) - _centroid_x(sharp)) < 0.1
    shift = _centroid_x(opening) - _centroid_x(sharp)
    assert abs(shift - px_per_frame / 4) < 0.15, (shift, px_per_frame)
    row = int(round(float(np.argmax(sharp.sum(1)))))

    def soft(a):
        return int(((a[row] > 0.03) & (a[row] < 0.97)).sum())

    assert soft(sharp) <= 4
    assert abs(soft(centred) - (soft(sharp) + 2 * px_per_frame / 2)) <= 3, (soft(centred), soft(sharp))


def test_a_blurred_frame_is_what_cycles_draws_with_its_motion_blur(tmp_path):
    """The moving sphere against Cycles' deformation motion blur of the same three frames (linear in time), a
    180-degree shutter: Doppel's coverage is near Cycles' in the blurred band (measured 0.02 with 32 samples; their
    sharp frames' anti-aliasing differs by 0.085 at the edge), and a sharp frame far from it (0.15)."""
    pytest.importorskip("bpy")
    from doppel.reference_passes import cycles_motion_blur

    model, v, cam, poser = _moving_sphere()
    frames = poser.pose(np.array([-1.0, 0.0, 1.0])).numpy()
    ref = cycles_motion_blur(frames, model.faces.numpy(), cam[0], tmp_path, 0.5, samples=256)
    lin = SubframePoser(lambda t: torch.as_tensor(interpolate_frames(frames, np.asarray(t) + 1.0)))
    blurred = _alpha(next(render_shot_frames(model, v, cam, "cgi", jitter=16, motion_blur=MotionBlur(180, 32),
                                             poser=lin)))
    sharp = _alpha(next(render_shot_frames(model, v, cam, "cgi", jitter=16)))
    band = (ref > 0.01) & (ref < 0.99)
    assert band.sum() > 100
    near, far = np.abs(blurred - ref)[band].mean(), np.abs(sharp - ref)[band].mean()
    assert near < 0.03 and far > 5 * near, (near, far)


def test_coverage_passes_are_blurred_as_the_colour_is():
    """With the shutter's surfaces the Cryptomatte's and the part mattes' coverage is the blurred frame's: each
    sums to about the blurred render's alpha (both integrate the same motion), where the sharp passes do not."""
    from neural_render.aovs import CRYPTO_LAYER, frame_aovs
    from neural_render.cryptomatte import matte

    model, v, cam, poser = _moving_sphere()
    blur = MotionBlur(180, 8)
    alpha = _alpha(next(render_shot_frames(model, v, cam, "cgi", jitter=16, motion_blur=blur, poser=poser)))
    F = len(model.faces)
    labels = (torch.arange(F) % 2, ["even", "odd"])
    parts = torch.zeros(F, dtype=torch.int64)
    args = (v, 0, model.faces, model.uvs, model.face_uvs, cam[0], ("crypto", "parts"), None, parts, labels)
    sharp = {k: x.numpy() for k, x in frame_aovs(*args).items()}
    blurred = {k: x.numpy() for k, x in frame_aovs(*args, shutter=poser.at(np.array([0]), blur.times())[0]).items()}
    band = (alpha > 0.02) & (alpha < 0.98)
    assert band.sum() > 100
    for got in (blurred, sharp):                             # 16 vs 4 samples a pixel a time: close on average
        assert np.abs(matte(got, CRYPTO_LAYER, ["even", "odd"]) - got["matte.head"])[band].mean() < 0.05
    near = np.abs(matte(blurred, CRYPTO_LAYER, ["even", "odd"]) - alpha)[band].mean()
    far = np.abs(matte(sharp, CRYPTO_LAYER, ["even", "odd"]) - alpha)[band].mean()
    assert near < 0.06 and far > 3 * near, (near, far)
