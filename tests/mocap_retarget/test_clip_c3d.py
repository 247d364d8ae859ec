"""C3D marker takes solved to a skeleton (`mocap_retarget.clip_c3d`, `marker_solve`): markers placed on a known
skeleton's segments the way Plug-in Gait places them, written as a Vicon-style C3D (Z up, millimetres, gaps),
read back by `read_clip` to the skeleton's bone directions; the marker set's names and aliases; bad files refused
in one line; `doppel retarget TAKE.c3d` onto a rig."""

from __future__ import annotations

import numpy as np
import pytest

from mocap_retarget.clips import ClipError, read_clip
from mocap_retarget.marker_set import canonical_labels, missing_required
from mocap_retarget.marker_solve import SubjectSizes, fill_gaps, harrington_hips
from mocap_retarget.synthetic import WalkSpec, synthetic_walk

S = SubjectSizes()
R_ = S.marker_radius
PW, PD = (0.09 - 0.0073) / 0.33, 0.15           # a pelvis whose Harrington hips are the walk's hip joints


def _markers(side: str, sign: float) -> dict[str, tuple[str, tuple[float, float, float]]]:
    """One side's markers: name -> (segment joint it is fixed to, offset in that joint's T-pose frame)."""
    s, S_ = side, ("Left" if side == "L" else "Right")
    knee, ankle, elbow = R_ + S.knee_width / 2, R_ + S.ankle_width / 2, R_ + S.elbow_width / 2
    return {
        s + "THI": (f"{S_}UpLeg", (sign * 0.06, -0.2, 0.03)),
        s + "KNE": (f"{S_}UpLeg", (sign * knee, -0.42, 0.0)),
        s + "TIB": (f"{S_}Leg", (sign * 0.05, -0.2, 0.03)),
        s + "ANK": (f"{S_}Leg", (sign * ankle, -0.42, 0.0)),
        s + "HEE": (f"{S_}Foot", (0.0, -0.04, -0.06)),
        s + "TOE": (f"{S_}Foot", (0.0, -0.06, 0.13)),
        s + "SHO": ("Spine1", (sign * 0.18, 0.15 + R_ + S.shoulder_offset, 0.0)),
        s + "UPA": (f"{S_}Arm", (sign * 0.14, 0.03, -0.04)),
        s + "ELB": (f"{S_}Arm", (sign * 0.28, elbow, 0.0)),
        s + "FRM": (f"{S_}ForeArm", (sign * 0.12, 0.0, 0.04)),
        s + "WRA": (f"{S_}ForeArm", (sign * 0.25, R_ + 0.02, 0.03)),
        s + "WRB": (f"{S_}ForeArm", (sign * 0.25, R_ + 0.02, -0.03)),
        s + "FIN": (f"{S_}Hand", (sign * 0.08, 0.0, 0.0)),
        s + "FHD": ("Head", (sign * 0.07, 0.08, 0.08)),
        s + "BHD": ("Head", (sign * 0.07, 0.08, -0.08)),
        s + "ASI": ("Hips", (sign * PW / 2, -0.05 + 0.30 * PW + 0.0109, 0.24 * PD + 0.0099)),
        s + "PSI": ("Hips", (sign * 0.045, -0.05 + 0.30 * PW + 0.0109, 0.24 * PD + 0.0099 - PD)),
    }


MARKERS = _markers("L", 1.0) | _markers("R", -1.0) | {
    "C7": ("Spine1", (0.0, 0.2, -0.07)), "CLAV": ("Spine1", (0.0, 0.2, 0.07)),
    "T10": ("Spine1", (0.0, 0.0, -0.1)), "STRN": ("Spine1", (0.0, 0.02, 0.1))}


def _take(seconds: float = 2.0, fps: float = 120.0):
    """A synthetic walk and its markers (F, M, 3) in Doppel's frame, metres."""
    motion = synthetic_walk(WalkSpec(seconds=seconds, fps=fps), fingers=False)
    G, P = motion.forward_kinematics()
    X = np.stack([P[:, motion.index(j)] + G[:, motion.index(j)] @ np.array(off) for j, off in MARKERS.values()], 1)
    return motion, X


def _write_c3d(path, X: np.ndarray, labels: list[str], fps: float, unit: str = "mm", scale: float = 1000.0):
    """X (F, M, 3) Doppel's frame, metres -> a Vicon-style C3D: Z up, ``unit``; NaN -> unseen."""
    import ezc3d

    to_z_up = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])           # +Y -> +Z
    data = (X @ to_z_up.T) * scale
    pts = np.ones((4, X.shape[1], X.shape[0]))
    pts[:3] = np.transpose(data, (2, 1, 0))
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [fps]
    c["parameters"]["POINT"]["LABELS"]["value"] = tuple(labels)
    c["parameters"]["POINT"]["UNITS"]["value"] = [unit]
    c["data"]["points"] = pts
    c.write(str(path))
    return path


def _directions(motion, pairs):
    _, P = motion.forward_kinematics()
    d = np.stack([P[:, motion.index(b)] - P[:, motion.index(a)] for a, b in pairs], axis=1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


BONES = [(f"{S_}{a}", f"{S_}{b}") for S_ in ("Left", "Right")
         for a, b in (("UpLeg", "Leg"), ("Leg", "Foot"), ("Foot", "ToeBase"), ("Arm", "ForeArm"), ("ForeArm", "Hand"))]


def test_a_c3d_take_solves_to_the_skeleton_its_markers_were_placed_on(tmp_path):
    motion, X = _take()
    X[100:110, list(MARKERS).index("LKNE")] = np.nan           # a gap the solve fills
    X[:, list(MARKERS).index("LFRM")] = np.nan                  # an optional marker never seen
    labels = [f"Actor1:{n}" for n in MARKERS]
    solved, info = read_clip(_write_c3d(tmp_path / "walk.c3d", X, labels, 120.0))
    assert info.format == "c3d" and info.fps == 120.0 and solved.num_frames == motion.num_frames
    err = np.degrees(np.arccos(np.clip(np.sum(_directions(solved, BONES) * _directions(motion, BONES), -1), -1, 1)))
    # the knees' and elbows' centres come from the markers' lateral offsets along estimated axes: within 2 cm
    assert np.median(err) < 2.5 and err.max() < 5.0, (np.median(err), err.max(axis=0))
    # the hips, knees and ankles where the walk has them
    _, Ps = solved.forward_kinematics()
    _, Pm = motion.forward_kinematics()
    for j in ("LeftUpLeg", "RightLeg", "LeftFoot"):
        assert np.abs(Ps[:, solved.index(j)] - Pm[:, motion.index(j)]).max() < 0.01, j
    # the rest is a T-pose: arms along +/-X, legs down
    rest = solved.rest_positions()
    arm = rest[solved.index("LeftForeArm")] - rest[solved.index("LeftArm")]
    leg = rest[solved.index("RightFoot")] - rest[solved.index("RightLeg")]
    assert arm[0] > 0.99 * np.linalg.norm(arm) and -leg[1] > 0.99 * np.linalg.norm(leg)


def test_harrington_hips_match_the_regression():
    m = {"LASI": np.array([0.12, 1.0, 0.1]), "RASI": np.array([-0.12, 1.0, 0.1]),
         "LPSI": np.array([0.04, 1.0, -0.06]), "RPSI": np.array([-0.04, 1.0, -0.06])}
    left, right = harrington_hips(m)
    pw, pd = 240.0, 160.0
    expected = np.array([0.33 * pw + 7.3, -(0.30 * pw + 10.9), 100 - (0.24 * pd + 9.9)]) / 1000
    assert np.allclose(left, expected + [0, 1.0, 0], atol=1e-9)
    assert np.allclose(right, expected * [-1, 1, 1] + [0, 1.0, 0], atol=1e-9)


def test_marker_names_prefixes_and_aliases():
    found = canonical_labels(["Bob:LFWT", "rfwt", "LBWT", "RBWT", "LSHN", "RBAC", "RBAC-1", "Bob:C7", "extra"])
    assert found == {"LASI": 0, "RASI": 1, "LPSI": 2, "RPSI": 3, "LTIB": 4, "RBAK": 5, "C7": 7}
    sacr = canonical_labels(["LASI", "RASI", "SACR"])
    assert sacr["LPSI"] == sacr["RPSI"] == 2
    assert "LKNE" in missing_required(found)


def test_fill_gaps_fills_short_gaps_only():
    X = np.tile(np.arange(10.0)[:, None, None], (1, 1, 3))
    X[2:4] = np.nan
    X[5:9] = np.nan
    out = fill_gaps(X, 2)
    assert np.allclose(out[2:4, 0, 0], [2, 3]) and np.isnan(out[5:9]).all()


def test_bad_c3d_files_are_refused_in_one_line(tmp_path):
    _, X = _take(seconds=0.2)
    names = list(MARKERS)
    few = _write_c3d(tmp_path / "few.c3d", X[:, :3], names[:3], 200.0)
    with pytest.raises(ClipError, match=r"few\.c3d: 3 markers at 200 Hz, not the Plug-in Gait / CMU full-body "
                                        r"marker set Doppel solves: \d+ of its markers missing.*solve it in the"):
        read_clip(few)
    X[:, names.index("LKNE")] = np.nan
    with pytest.raises(ClipError, match=r"no frame sees every marker of the set at once \(e\.g\. LKNE is seen in 0"):
        read_clip(_write_c3d(tmp_path / "hidden.c3d", X, names, 120.0))
    with pytest.raises(ClipError, match="POINT:UNITS 'furlong' is not a length unit"):
        read_clip(_write_c3d(tmp_path / "units.c3d", X, names, 120.0, unit="furlong"))
    (tmp_path / "fake.c3d").write_bytes(b"not c3d")
    with pytest.raises(ClipError, match=r"fake\.c3d: not a readable C3D file"):
        read_clip(tmp_path / "fake.c3d")
