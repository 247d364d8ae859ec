"""BVH reader/writer: channel layouts, rotation orders (checked against explicit matrix products and
scipy), End Sites, tabs/CRLF, non-root position channels, units, and every kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_retarget.bvh import BvhError, format_bvh, parse_bvh, read_bvh, skeleton_height
from mocap_retarget.synthetic import WalkSpec, synthetic_walk

TOL = 1e-9


def _rx(a):
    c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


_ELEM = {"X": _rx, "Y": _ry, "Z": _rz}

SMALL = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Xrotation Yrotation Zrotation
    JOINT Arm
    {
      OFFSET 5 0 0
      CHANNELS 6 Xposition Yposition Zposition Yrotation Xrotation Zrotation
      End Site
      {
        OFFSET 4 0 0
      }
    }
  }
  JOINT Leg
  {
    OFFSET 2 -9 1
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {
      OFFSET 0 -8 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.04
"""


def _small_frames(rng):
    rows = []
    for _ in range(3):
        rows.append(np.concatenate([rng.uniform(-20, 20, 3), rng.uniform(-170, 170, 3), rng.uniform(-90, 90, 3),
                                    rng.uniform(-3, 3, 3), rng.uniform(-90, 90, 3), rng.uniform(-90, 90, 3)]))
    return np.round(np.array(rows), 6)   # as written to the text


def _small_text(rng, newline="\n", tabs=False):
    data = _small_frames(rng)
    txt = SMALL + "\n".join(" ".join(f"{v:.6f}" for v in row) for row in data) + "\n"
    if tabs:
        txt = txt.replace("  ", "\t").replace(" ", "\t")
    return txt.replace("\n", newline), data


def test_rotation_orders_match_explicit_matrix_products_and_scipy():
    rng = np.random.default_rng(0)
    txt, data = _small_text(rng)
    m = parse_bvh(txt, units="cm")
    assert m.names == ["Hips", "Chest", "Arm", "Leg"]
    assert m.parents.tolist() == [-1, 0, 1, 0]
    layouts = {0: ("ZXY", 3), 1: ("XYZ", 6), 2: ("YXZ", 12), 3: ("ZYX", 15)}
    for j, (order, col) in layouts.items():
        for f in range(3):
            a = data[f, col:col + 3]
            ref = _ELEM[order[0]](a[0]) @ _ELEM[order[1]](a[1]) @ _ELEM[order[2]](a[2])
            np.testing.assert_allclose(m.local_rotations[f, j], ref, atol=TOL)
            np.testing.assert_allclose(m.local_rotations[f, j],
                                       Rotation.from_euler(order, a, degrees=True).as_matrix(), atol=TOL)


def test_position_channels_root_and_non_root_and_fk_against_brute_force():
    rng = np.random.default_rng(1)
    txt, data = _small_text(rng)
    m = parse_bvh(txt, units="cm")
    np.testing.assert_allclose(m.local_translations[:, 0], data[:, 0:3] * 0.01, atol=TOL)   # root: world position
    np.testing.assert_allclose(m.local_translations[:, 2], data[:, 9:12] * 0.01, atol=TOL)  # Arm: channels, not OFFSET
    np.testing.assert_allclose(m.local_translations[:, 1], np.tile([0, 0.10, 0], (3, 1)), atol=TOL)
    R, P = m.forward_kinematics()
    for f in range(3):                       # brute force: chain of 4x4 matrices
        T = []
        for j, p in enumerate(m.parents):
            M = np.eye(4)
            M[:3, :3] = m.local_rotations[f, j]
            M[:3, 3] = m.local_translations[f, j]
            T.append(M if p < 0 else T[p] @ M)
        np.testing.assert_allclose(P[f], np.array([t[:3, 3] for t in T]), atol=TOL)
        np.testing.assert_allclose(R[f], np.array([t[:3, :3] for t in T]), atol=TOL)


def test_end_sites_tabs_and_crlf_give_identical_results():
    rng = np.random.default_rng(2)
    txt, _ = _small_text(rng)
    rng = np.random.default_rng(2)
    txt2, _ = _small_text(rng, newline="\r\n", tabs=True)
    a, b = parse_bvh(txt, units="cm"), parse_bvh(txt2, units="cm")
    np.testing.assert_array_equal(a.local_rotations, b.local_rotations)
    np.testing.assert_array_equal(a.local_translations, b.local_translations)
    assert set(a.end_sites) == {2, 3}
    np.testing.assert_allclose(a.end_sites[3][0], [0, -0.08, 0])
    assert a.frame_time == pytest.approx(0.04)


@pytest.mark.parametrize("units", ["cm", "inch", "m", "cmu"])
def test_units_detected_from_skeleton_height(units):
    m = synthetic_walk(WalkSpec(seconds=0.2, fps=30), fingers=False)
    txt = format_bvh(m, units=units)
    back = parse_bvh(txt)
    assert back.units == units
    np.testing.assert_allclose(back.offsets, m.offsets, atol=2e-6)
    assert 1.4 < skeleton_height(back) < 2.0
    # the override wins
    forced = parse_bvh(txt, units="m")
    assert forced.units == "m"
    assert skeleton_height(forced) == pytest.approx(skeleton_height(back) / back.scale, rel=1e-6)


@pytest.mark.parametrize("order", ["XYZ", "ZXY", "YZX", "ZYX"])
def test_write_read_round_trip(order, tmp_path):
    m = synthetic_walk(WalkSpec(seconds=0.5, fps=30), order=order, position_channels=("chest",))
    path = tmp_path / "walk.bvh"
    from mocap_retarget.bvh import write_bvh

    write_bvh(path, m, units="cm")
    back = read_bvh(path)
    assert back.names == m.names and back.channels == m.channels
    _, P0 = m.forward_kinematics()
    _, P1 = back.forward_kinematics()
    assert np.abs(P1 - P0).max() < 1e-5            # 6 decimals in cm
    R0 = m.forward_kinematics()[0]
    R1 = back.forward_kinematics()[0]
    assert np.abs(R1 - R0).max() < 1e-5


def _bad(txt: str, match: str):
    with pytest.raises(BvhError, match=match):
        parse_bvh(txt, units="cm")


def test_bad_files_raise_clear_errors(tmp_path):
    rng = np.random.default_rng(3)
    txt, _ = _small_text(rng)
    lines = txt.splitlines()
    # Frames count disagrees with the data
    _bad(txt.replace("Frames: 3", "Frames: 5"), r"Frames: 5.*3 frame lines.*truncated")
    _bad(txt.replace("Frames: 3", "Frames: 2"), r"Frames: 2.*3 frame lines")
    # truncated in the middle of the last frame line
    _bad("\n".join(lines[:-1] + [" ".join(lines[-1].split()[:7])]) + "\n", r":\d+: 7 values.*18 channels.*truncated")
    # truncated inside the hierarchy
    _bad(txt[: txt.index("JOINT Leg")], r"no MOTION section")
    # non-numeric value, with its line number
    bad = lines[:-1] + [lines[-1].replace(lines[-1].split()[4], "abc", 1)]
    _bad("\n".join(bad) + "\n", rf":{len(lines)}: non-numeric value 'abc'")
    _bad("\n".join(lines[:-1] + [lines[-1].replace(lines[-1].split()[2], "nan", 1)]) + "\n", "non-finite")
    # zero frames
    _bad(SMALL.replace("Frames: 3", "Frames: 0"), "zero frames")
    # not a BVH / broken hierarchy
    _bad("hello", "not a BVH file")
    _bad(txt.replace("CHANNELS 3 Xrotation Yrotation Zrotation", "CHANNELS 3 Xrotation Yrotation Wrotation"),
         "unknown channel 'Wrotation'")
    _bad(txt.replace("CHANNELS 3 Zrotation Yrotation Xrotation", "CHANNELS 4 Zrotation Yrotation Xrotation"),
         "CHANNELS says 4 but lists 3")
    _bad(txt.replace("Frame Time: 0.04", "Frame Time: 0"), "Frame Time must be between")
    with pytest.raises(FileNotFoundError, match="nope.bvh"):
        read_bvh(tmp_path / "nope.bvh")
    with pytest.raises(ValueError, match="units must be"):
        parse_bvh(txt, units="furlong")


def test_parse_speed_is_vectorised():
    """10,000 frames of a 30-joint skeleton parse well under a second (the benchmark measures it)."""
    import time

    m = synthetic_walk(WalkSpec(seconds=10000 / 120, fps=120))
    assert m.num_joints == 30
    txt = format_bvh(m, units="cm", precision=4)
    t0 = time.process_time()        # this process's CPU time: another test process on the core does not count
    back = parse_bvh(txt)
    dt = time.process_time() - t0
    assert back.num_frames == 10000
    assert dt < 2.0, f"parse took {dt:.2f} s"   # loose bound for a busy shared CI machine


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX", "ZX", "Y"])
def test_euler_to_matrix_matches_scipy(order):
    from mocap_retarget.rotations import euler_to_matrix

    a = np.random.default_rng(4).uniform(-360, 360, (7, 5, len(order)))
    ref = Rotation.from_euler(order, a.reshape(-1, len(order)), degrees=True).as_matrix().reshape(7, 5, 3, 3)
    np.testing.assert_allclose(euler_to_matrix(order, a), ref, atol=1e-12)
    with pytest.raises(ValueError):
        euler_to_matrix("XX", a[..., :2])
