"""C3D marker takes solved to a skeleton (`mocap_retarget.clip_c3d`, `marker_solve`, `plugin_gait`, `marker_qc`):
markers placed on a known skeleton's segments the way Plug-in Gait places them, written as a Vicon-style C3D (Z up,
millimetres, gaps, a lost marker at the origin), read back by `read_clip` to the skeleton's bones; Plug-in Gait's
geometry (Harrington, Davis, the chord function) against its equations; the performer's measurements from a VSK or
the file's PROCESSING group; a slipped marker left out of its cluster and reported; several performers; the markers
in the preview; bad files refused in one line; `doppel retarget TAKE.c3d` onto a rig, in and out of a workspace."""

from __future__ import annotations

import numpy as np
import pytest

from mocap_retarget import plugin_gait as pig
from mocap_retarget.clips import ClipError, read_clip
from mocap_retarget.marker_set import canonical_labels, missing_required
from mocap_retarget.marker_solve import SubjectSizes, fill_gaps
from mocap_retarget.synthetic import WalkSpec, synthetic_walk

S = SubjectSizes()
R_ = S.marker_radius
PW, PD = (0.09 - 0.0073) / 0.33, 0.15           # a pelvis whose Harrington hips are the walk's hip joints
SHOULDER = 0.15                                  # the walk's shoulders: this high above the chest joint, 0.18 out


def _markers(side: str, sign: float) -> dict[str, tuple[str, tuple[float, float, float]]]:
    """One side's markers where Plug-in Gait's geometry puts them about the walk's joints: name -> (the joint whose
    segment carries it, offset in that joint's T-pose frame). Knee, ankle and elbow markers at half the joint's
    width plus a marker's radius out along the hinge's axis (the elbow bends about the T-pose's vertical), the thigh
    and tibia wands in the plane of the bone and that axis, the shoulder marker above the shoulder by its offset."""
    s, S_ = side, ("Left" if side == "L" else "Right")
    knee, ankle, elbow = R_ + S.knee_width / 2, R_ + S.ankle_width / 2, R_ + S.elbow_width / 2
    return {
        s + "THI": (f"{S_}UpLeg", (sign * 0.06, -0.2, 0.0)),
        s + "KNE": (f"{S_}UpLeg", (sign * knee, -0.42, 0.0)),
        s + "TIB": (f"{S_}Leg", (sign * 0.05, -0.2, 0.0)),
        s + "ANK": (f"{S_}Leg", (sign * ankle, -0.42, 0.0)),
        s + "HEE": (f"{S_}Foot", (0.0, -0.04, -0.06)),
        s + "TOE": (f"{S_}Foot", (0.0, -0.06, 0.13)),
        s + "SHO": ("Spine1", (sign * 0.18, SHOULDER + R_ + S.shoulder_offset, 0.0)),
        s + "UPA": (f"{S_}Arm", (sign * 0.14, 0.03, -0.04)),
        s + "ELB": (f"{S_}Arm", (sign * 0.28, elbow, 0.0)),
        s + "FRM": (f"{S_}ForeArm", (sign * 0.12, 0.0, 0.04)),
        s + "WRA": (f"{S_}ForeArm", (sign * 0.25, R_ + S.wrist_thickness / 2, 0.03)),
        s + "WRB": (f"{S_}ForeArm", (sign * 0.25, R_ + S.wrist_thickness / 2, -0.03)),
        s + "FIN": (f"{S_}Hand", (sign * 0.08, 0.0, 0.0)),
        s + "FHD": ("Head", (sign * 0.07, 0.08, 0.08)),
        s + "BHD": ("Head", (sign * 0.07, 0.08, -0.08)),
        s + "ASI": ("Hips", (sign * PW / 2, -0.05 + 0.30 * PW + 0.0109, 0.24 * PD + 0.0099)),
        s + "PSI": ("Hips", (sign * 0.045, -0.05 + 0.30 * PW + 0.0109, 0.24 * PD + 0.0099 - PD)),
    }


MARKERS = _markers("L", 1.0) | _markers("R", -1.0) | {      # the thorax's origin (CLAV - r forward) at shoulder height
    "C7": ("Spine1", (0.0, SHOULDER, -0.08)), "CLAV": ("Spine1", (0.0, SHOULDER, R_)),
    "T10": ("Spine1", (0.0, SHOULDER - 0.2, -0.08)), "STRN": ("Spine1", (0.0, SHOULDER - 0.2, R_))}


def _take(seconds: float = 2.0, fps: float = 120.0):
    """A synthetic walk and its markers (F, M, 3) in Doppel's frame, metres."""
    motion = synthetic_walk(WalkSpec(seconds=seconds, fps=fps), fingers=False)
    G, P = motion.forward_kinematics()
    X = np.stack([P[:, motion.index(j)] + G[:, motion.index(j)] @ np.array(off) for j, off in MARKERS.values()], 1)
    return motion, X


def _write_c3d(path, X: np.ndarray, labels: list[str], fps: float, unit: str = "mm", scale: float = 1000.0,
               processing: dict[str, float] | None = None):
    """X (F, M, 3) Doppel's frame, metres -> a Vicon-style C3D: Z up, ``unit``; NaN -> unseen; ``processing``: a
    PROCESSING group of measurements (mm) as Vicon Nexus writes them."""
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
    for name, value in (processing or {}).items():
        c.add_parameter("PROCESSING", name, [float(value)])
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
    X[50:53, list(MARKERS).index("RKNE")] = 0.0                 # a lost marker written at the origin
    labels = [f"Actor1:{n}" for n in MARKERS]
    solved, info = read_clip(_write_c3d(tmp_path / "walk.c3d", X, labels, 120.0))
    assert info.format == "c3d" and info.fps == 120.0 and solved.num_frames == motion.num_frames
    err = np.degrees(np.arccos(np.clip(np.sum(_directions(solved, BONES) * _directions(motion, BONES), -1), -1, 1)))
    legs = [k for k, (a, _) in enumerate(BONES) if a.endswith(("UpLeg", "Leg", "Foot"))]
    arms = [k for k in range(len(BONES)) if k not in legs]
    # the legs exactly (but the thigh across the knee marker's filled gap); the arms within Plug-in Gait's elbow
    # model, whose chord plane leans when the elbow barely bends (this walk's: 9-26 degrees)
    assert np.median(err[:, legs]) < 0.01 and err[:, legs].max() < 3.0, err[:, legs].max(axis=0)
    assert err[:, arms].max() < 10.0, err[:, arms].max(axis=0)
    _, Ps = solved.forward_kinematics()
    _, Pm = motion.forward_kinematics()
    gap = np.r_[48:56, 95:115]                                 # the filled frames
    for j, tol in (("LeftUpLeg", 1e-4), ("RightLeg", 1e-4), ("RightFoot", 1e-4), ("RightArm", 0.003),
                   ("LeftHand", 0.003), ("LeftFoot", 0.01)):                  # the walk's joints
        d = np.linalg.norm(Ps[:, solved.index(j)] - Pm[:, motion.index(j)], axis=1)
        assert np.delete(d, gap).max() < tol and d.max() < 0.01, (j, d.max())
    # the rest is a T-pose: arms along +/-X, legs down
    rest = solved.rest_positions()
    arm = rest[solved.index("LeftForeArm")] - rest[solved.index("LeftArm")]
    leg = rest[solved.index("RightFoot")] - rest[solved.index("RightLeg")]
    assert arm[0] > 0.99 * np.linalg.norm(arm) and -leg[1] > 0.99 * np.linalg.norm(leg)


def test_harrington_hips_match_the_regression():
    m = {"LASI": np.array([0.12, 1.0, 0.1]), "RASI": np.array([-0.12, 1.0, 0.1]),
         "LPSI": np.array([0.04, 1.0, -0.06]), "RPSI": np.array([-0.04, 1.0, -0.06])}
    left, right = pig.harrington_hips(m)
    pw, pd = 240.0, 160.0
    expected = np.array([0.33 * pw + 7.3, -(0.30 * pw + 10.9), 100 - (0.24 * pd + 9.9)]) / 1000
    assert np.allclose(left, expected + [0, 1.0, 0], atol=1e-9)
    assert np.allclose(right, expected * [-1, 1, 1] + [0, 1.0, 0], atol=1e-9)


def test_davis_hips_match_the_published_equations():
    """Davis et al. 1991 as Plug-in Gait applies it, written out for one pelvis: leg 0.9 m, ASIS-trochanter
    0.06 m, inter-ASIS 0.24 m, marker radius 7 mm."""
    m = {"LASI": np.array([0.12, 1.0, 0.1]), "RASI": np.array([-0.12, 1.0, 0.1]),
         "LPSI": np.array([0.04, 1.0, -0.06]), "RPSI": np.array([-0.04, 1.0, -0.06])}
    sz = SubjectSizes(leg_length=0.9, asis_trochanter=0.06, inter_asis=0.24)
    left, right = pig.davis_hips(m, {"L": sz, "R": sz})
    c = 0.115 * 900 - 15.3
    fwd = c * np.cos(0.5) * np.sin(0.314) - (60 + 7) * np.cos(0.314)
    up = -(60 + 7) * np.sin(0.314) - c * np.cos(0.5) * np.cos(0.314)
    side = 120 - c * np.sin(0.5)
    assert np.allclose(left, np.array([side, 1000 + up, 100 + fwd]) / 1000, atol=1e-12)
    assert np.allclose(right, np.array([-side, 1000 + up, 100 + fwd]) / 1000, atol=1e-12)


def test_the_chord_function_is_a_right_angle_at_delta_away_from_the_wand():
    rng = np.random.default_rng(3)
    P, W, M = rng.normal(size=(3, 50, 3))
    M = P + 0.4 * (M - P) / np.linalg.norm(M - P, axis=1, keepdims=True)
    J = pig.chord(P, W, M, 0.05)
    assert np.allclose(np.linalg.norm(J - M, axis=1), 0.05)
    assert np.allclose(np.sum((J - M) * (J - P), axis=1), 0.0, atol=1e-12)
    normal = np.cross(M - P, W - P)
    assert np.allclose(np.sum((J - P) * normal, axis=1), 0.0, atol=1e-12)         # in the plane P, W, M
    side = np.cross(M - P, normal)                                                 # towards W, in that plane
    assert (np.sum((J - P) * side, axis=1) * np.sum((W - P) * side, axis=1) < 0).all()


VSK = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<KinematicModel MODEL="PlugInGait FullBody Ai" VERSION="3.2"><Parameters>
<StaticParameter NAME="LeftKneeWidth" VALUE="144"/><StaticParameter NAME="RightKneeWidth" VALUE="139"/>
<StaticParameter NAME="LeftAnkleWidth" VALUE="85"/><StaticParameter NAME="RightAnkleWidth" VALUE="0"/>
<StaticParameter NAME="LeftElbowWidth" VALUE="96"/><StaticParameter NAME="LeftWristWidth" VALUE="61"/>
<StaticParameter NAME="LeftShoulderOffset" VALUE="52"/><StaticParameter NAME="InterAsisDistance" VALUE="306"/>
<StaticParameter NAME="LeftLegLength" VALUE="877"/><StaticParameter NAME="RightLegLength" VALUE="866"/>
<StaticParameter NAME="LeftAsisTrocanterDistance" VALUE="64.4"/><StaticParameter NAME="MarkerDiameter" VALUE="16"/>
</Parameters></KinematicModel>"""


def test_subject_sizes_from_a_vicon_vsk(tmp_path):
    (tmp_path / "actor.vsk").write_text(VSK)
    sizes = SubjectSizes.from_vsk(tmp_path / "actor.vsk")
    left, right = sizes["L"], sizes["R"]
    assert (left.knee_width, left.ankle_width, left.elbow_width) == pytest.approx((0.144, 0.085, 0.096))
    assert (left.wrist_thickness, left.shoulder_offset, left.asis_trochanter) == pytest.approx((0.061, 0.052, 0.0644))
    assert right.knee_width == pytest.approx(0.139) and right.ankle_width == S.ankle_width     # 0: the default
    assert right.asis_trochanter is None and left.leg_length == right.leg_length == pytest.approx(0.8715)
    assert left.marker_radius == pytest.approx(0.008) and left.inter_asis == pytest.approx(0.306)
    (tmp_path / "bad.vsk").write_text("<KinematicModel/>")
    with pytest.raises(ValueError, match="bad.vsk: no <StaticParameter>"):
        SubjectSizes.from_vsk(tmp_path / "bad.vsk")
    (tmp_path / "worse.vsk").write_text("not xml")
    with pytest.raises(ValueError, match="worse.vsk: not a readable Vicon subject file"):
        SubjectSizes.from_vsk(tmp_path / "worse.vsk")


def test_a_subjects_measurements_move_the_joint_centres(tmp_path):
    """The same take with a VSK naming a wider knee: the knee centre moves medially by the difference's half."""
    motion, X = _take(seconds=0.3)
    path = _write_c3d(tmp_path / "walk.c3d", X, list(MARKERS), 120.0)
    (tmp_path / "actor.vsk").write_text(f'<KinematicModel><Parameters><StaticParameter NAME="LeftKneeWidth" '
                                        f'VALUE="{1000 * (S.knee_width + 0.04):g}"/></Parameters></KinematicModel>')
    base, _ = read_clip(path)
    wide, _ = read_clip(path, subject=tmp_path / "actor.vsk")
    k = base.index("LeftLeg")
    _, Pb = base.forward_kinematics()
    _, Pw = wide.forward_kinematics()
    assert np.allclose(np.linalg.norm(Pw[:, k] - Pb[:, k], axis=1), 0.02, atol=1e-3)
    assert np.allclose(Pw[:, base.index("RightLeg")], Pb[:, base.index("RightLeg")])


def test_a_take_of_two_performers_is_solved_for_the_one_named(tmp_path):
    """A fight: two performers' markers in one C3D. --subject Stunt2 (or Stunt2.vsk, named after the subject as
    Vicon names it) solves the second's, whose markers are the first's moved 2 m."""
    motion, X = _take(seconds=0.3)
    names = list(MARKERS)
    labels = [f"Stunt{k}:{n}" for k in (1, 2) for n in names]
    path = _write_c3d(tmp_path / "fight.c3d", np.concatenate([X, X + np.array([2.0, 0.0, 0.0])], axis=1), labels,
                      120.0)
    one, _ = read_clip(path, subject="Stunt1")
    (tmp_path / "Stunt2.vsk").write_text(VSK)
    two, _ = read_clip(path, subject=tmp_path / "Stunt2.vsk")
    by_name, _ = read_clip(path, subject="Stunt2")
    _, P1 = one.forward_kinematics()
    _, P2 = by_name.forward_kinematics()
    _, Pv = two.forward_kinematics()
    assert np.allclose(P2 - P1, [2.0, 0.0, 0.0], atol=1e-6)                    # the second performer's markers
    assert not np.allclose(Pv, P2)                                            # the VSK's measurements, theirs


def test_nexus_measurements_inside_the_c3d_are_used_and_a_vsk_overrides_them(tmp_path):
    """Vicon Nexus writes the subject's measurements into the C3D's PROCESSING group (LKneeWidth, ...): the solve
    takes them without a VSK (the knee moves medially by half the extra width) and says so; a VSK wins over them."""
    motion, X = _take(seconds=0.3)
    wide = {"LKneeWidth": 1000 * (S.knee_width + 0.04), "RKneeWidth": 1000 * S.knee_width}
    plain, _ = read_clip(_write_c3d(tmp_path / "plain.c3d", X, list(MARKERS), 120.0))
    nexus, info = read_clip(_write_c3d(tmp_path / "nexus.c3d", X, list(MARKERS), 120.0, processing=wide))
    assert info.solve["measurements"] == "the file's PROCESSING group (Nexus)"
    k = plain.index("LeftLeg")
    _, Pp = plain.forward_kinematics()
    _, Pn = nexus.forward_kinematics()
    assert np.allclose(np.linalg.norm(Pn[:, k] - Pp[:, k], axis=1), 0.02, atol=1e-3)
    (tmp_path / "Actor1.vsk").write_text('<KinematicModel><Parameters><StaticParameter NAME="LeftKneeWidth" '
                                         f'VALUE="{1000 * S.knee_width:g}"/></Parameters></KinematicModel>')
    vsk, info = read_clip(tmp_path / "nexus.c3d", subject=tmp_path / "Actor1.vsk")
    _, Pv = vsk.forward_kinematics()
    assert info.solve["measurements"] == "the subject file Actor1.vsk" and np.allclose(Pv[:, k], Pp[:, k])
    sizes = SubjectSizes.from_values({"LKneeWidth": 144.0, "RLegLength": 900.0, "LLegLength": 880.0}, ("L", "R"))
    assert sizes["L"].knee_width == pytest.approx(0.144) and sizes["R"].leg_length == pytest.approx(0.89)


def test_marker_names_prefixes_and_aliases():
    found = canonical_labels(["Bob:LFWT", "rfwt", "LBWT", "RBWT", "LSHN", "RBAC", "RBAC-1", "Bob:C7", "extra"])
    assert found == {"LASI": 0, "RASI": 1, "LPSI": 2, "RPSI": 3, "LTIB": 4, "RBAK": 5, "C7": 7}
    sacr = canonical_labels(["LASI", "RASI", "SACR"])
    assert sacr["LPSI"] == sacr["RPSI"] == 2
    assert "LKNE" in missing_required(found)


def test_explain_markers_names_aliases_optional_and_foreign_labels():
    from mocap_retarget.marker_set import explain_markers

    labels = ["Bob:LFWT", "RASI", "LPSI", "RPSI", "LMT5", "prop:Tip", "*12"]
    line = explain_markers(labels, canonical_labels(labels))
    assert line.startswith("5 markers of the set; read LFWT as LASI; optional present: LMT5; optional absent: RMT5")
    assert line.endswith("not of the set: prop:Tip, *12")


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
    two = [f"Stunt{k}:{n}" for k in (1, 2) for n in names]
    fight = _write_c3d(tmp_path / "two.c3d", np.concatenate([X, X], axis=1), two, 120.0)
    with pytest.raises(ClipError, match=r"2 performers' markers in one take \(Stunt1, Stunt2\): name one with "
                                        r"--subject \(their Vicon subject file, e\.g\. Stunt1\.vsk, or the name"):
        read_clip(fight)
    with pytest.raises(ClipError, match=r"--subject 'Stunt3' is none of them"):
        read_clip(fight, subject="Stunt3")
    whole = _write_c3d(tmp_path / "whole.c3d", X, names, 120.0).read_bytes()
    (tmp_path / "cut.c3d").write_bytes(whole[: len(whole) - len(whole) // 3])         # a copy that stopped early
    with pytest.raises(ClipError, match=r"cut\.c3d: the file ends after \d+ of the 24 frames its header declares"):
        read_clip(tmp_path / "cut.c3d")
    (tmp_path / "fake.c3d").write_bytes(b"not c3d")
    with pytest.raises(ClipError, match=r"fake\.c3d: not a readable C3D file"):
        read_clip(tmp_path / "fake.c3d")
    (tmp_path / "walk.bvh").write_text("HIERARCHY")
    with pytest.raises(ClipError, match=r"--subject names the performer of a C3D take \(a Vicon \.vsk or a subject "
                                        r"name\) or the skeleton of an FBX, glTF or USD file of several; a \.bvh clip"):
        read_clip(tmp_path / "walk.bvh", subject=tmp_path / "x.vsk")


def test_retarget_command_takes_a_c3d(tmp_path, capsys):
    """`doppel retarget TAKE.c3d [--subject SUBJECT.vsk]`: the solved skeleton's roles (--explain), the take onto a
    skeleton with its format, rate and subject file recorded; a missing subject file refused in one line."""
    import json
    import re

    from mocap_retarget.bvh import write_bvh
    from mocap_retarget.synthetic import SCHEMES
    from tests.cli_runner import run_cli

    _, X = _take(seconds=0.5)
    clip = _write_c3d(tmp_path / "take.c3d", X, [f"Actor1:{n}" for n in MARKERS], 120.0)
    code, out, err = run_cli(capsys, "retarget", clip, "--explain")
    assert code == 0, err
    assert re.search(r"thigh_l\s+<- LeftUpLeg", out) and re.search(r"forearm_r\s+<- RightForeArm", out), out
    assert "take.c3d: 38 markers of the set; optional present: LHEE, RHEE, LUPA, RUPA, LFRM, RFRM; optional " \
           "absent: LMT5, RMT5, RBAK" in out
    target = tmp_path / "target.bvh"
    write_bvh(target, synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"]), units="cm")
    (tmp_path / "actor.vsk").write_text(VSK)
    code, out, err = run_cli(capsys, "retarget", clip, "--rig", target, "--out", tmp_path / "o", "--subject",
                             tmp_path / "actor.vsk", "--preview-size", 64)
    assert code == 0, err
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["frame_rate"]["format"] == "c3d" and manifest["frame_rate"]["fps"] == 120.0
    assert manifest["params"]["subject"].endswith("actor.vsk") and "subject" in manifest["inputs"]
    assert re.search(r"take\.c3d: marker solve: 38 markers \(measurements: the subject file actor\.vsk\), gaps "
                     r"filled 0%; cluster residual RMS \(mm\) pelvis", out)
    from mocap_retarget.bvh import read_bvh

    solved = read_bvh(tmp_path / "o" / "solved.bvh")                         # the solve itself, for a DCC tool
    assert solved.num_joints == 21 and solved.num_frames == 60 and "solved_bvh" in manifest["outputs"]
    rest = solved.rest_positions()
    arm = rest[solved.index("RightForeArm")] - rest[solved.index("RightArm")]
    assert -arm[0] > 0.99 * np.linalg.norm(arm)                              # its T-pose rest
    solve = json.loads((tmp_path / "o" / "metrics.json").read_text())["marker_solve"]
    assert solve["markers"] == len(MARKERS) == 38 and set(solve["cluster_rms_mm"]) == {"pelvis", "thorax", "head"}
    code, out, err = run_cli(capsys, "retarget", clip, "--rig", target, "--out", tmp_path / "named", "--subject",
                             "Actor1", "--preview-size", 64)                   # a subject's name alone
    assert code == 0, err
    manifest = json.loads((tmp_path / "named" / "manifest.json").read_text())
    assert manifest["params"]["subject"] == "Actor1" and "subject" not in manifest["inputs"]
    code, out, err = run_cli(capsys, "retarget", clip, "--rig", target, "--out", tmp_path / "o2", "--subject",
                             tmp_path / "nobody.vsk")
    assert code == 1 and "nobody.vsk: subject file not found" in err and not (tmp_path / "o2").exists()


def _rotation_since_first(G: np.ndarray) -> np.ndarray:
    return G @ np.swapaxes(G[:1], -1, -2)


def test_a_slipped_marker_is_left_out_of_its_clusters_fit_and_reported(tmp_path):
    """A head marker 8 cm off for 20 frames (a slipped or swapped marker): the head's rotation stays the walk's
    (the robust cluster fit leaves it out there) and the solve's report counts the frames; the clean take reports
    rigid clusters, steady limbs and the gaps it filled."""
    motion, X = _take(seconds=1.0)
    clean = X.copy()
    clean[30:40, list(MARKERS).index("RTIB")] = np.nan
    _, info = read_clip(_write_c3d(tmp_path / "clean.c3d", clean, list(MARKERS), 120.0))
    r = info.solve
    assert r["frames_off_cluster"] == 0 and max(r["cluster_rms_mm"].values()) < 0.01
    assert max(v["std"] for v in r["limb_length_mm"].values()) < 0.5 and r["gaps_filled_percent"] > 0
    assert r["unseen_percent"] == 0 and r["reference_frame"] == 0
    X[60:80, list(MARKERS).index("RFHD")] += np.array([0.0, 0.08, 0.0])
    X[70:110, list(MARKERS).index("LTOE")] = np.nan                           # unseen for a third of a second
    solved, info = read_clip(_write_c3d(tmp_path / "slip.c3d", X, list(MARKERS), 120.0))
    assert info.solve["frames_off_cluster"] == 20 and info.solve["off_cluster_mm"] == 20
    assert info.solve["longest_unseen_marker"] == "LTOE" and info.solve["longest_unseen_s"] == round(40 / 120, 3)
    Gs, _ = solved.forward_kinematics()
    Gm, _ = motion.forward_kinematics()
    a = _rotation_since_first(Gs[:, solved.index("Head")])
    b = _rotation_since_first(Gm[:, motion.index("Head")])
    cos = (np.trace(np.swapaxes(a, -1, -2) @ b, axis1=-2, axis2=-1) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 0.01


def test_the_robust_fit_matters():
    """The same slipped marker through a plain least-squares fit (no rejection) turns the head by degrees."""
    from mocap_retarget.marker_solve import kabsch_track

    motion, X = _take(seconds=1.0)
    heads = [list(MARKERS).index(n) for n in ("LFHD", "RFHD", "LBHD", "RBHD")]
    P = X[:, heads].copy()
    P[60:80, 1] += np.array([0.0, 0.08, 0.0])
    plain = kabsch_track(P[0], P, "", "head", reject_m=None)
    robust = kabsch_track(P[0], P, "", "head")
    truth = kabsch_track(X[0, heads], X[:, heads], "", "head", reject_m=None)

    def worst(rigid):
        rel = np.swapaxes(rigid.R, -1, -2) @ truth.R
        return np.degrees(np.arccos(np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1))).max()

    assert worst(plain) > 5.0 and worst(robust) < 0.01


def test_kabsch_track_agrees_with_scipy():
    """The batched rigid fit against scipy's `Rotation.align_vectors` on noisy points, with markers unseen."""
    from scipy.spatial.transform import Rotation

    from mocap_retarget.marker_solve import kabsch_track

    rng = np.random.default_rng(7)
    P_ref = rng.normal(size=(5, 3))
    truth = Rotation.random(40, random_state=8)
    P = truth.as_matrix()[:, None] @ P_ref[None, :, :, None]
    P = P[..., 0] + rng.normal(size=(40, 1, 3)) + 0.01 * rng.normal(size=(40, 5, 3))
    P[3, 1] = np.nan
    rigid = kabsch_track(P_ref, P, "", "test", reject_m=None)
    for f in (0, 3, 17):
        seen = np.isfinite(P[f]).all(axis=1)
        a, b = P[f, seen] - P[f, seen].mean(0), P_ref[seen] - P_ref[seen].mean(0)
        expected, _ = Rotation.align_vectors(a, b)
        assert np.allclose(rigid.R[f], expected.as_matrix(), atol=1e-9)


def test_the_rest_turn_of_a_bone_along_its_twist_hint():
    """A forearm pointing forward at the reference frame (along the thorax's forward, its twist hint): the turn
    from the T-pose takes the arm's axis onto it, a proper rotation, its twist from the thorax's up instead."""
    from mocap_retarget.marker_solve import rest_turn

    ax = {"thorax": {"left": np.array([1.0, 0, 0]), "up": np.array([0, 1.0, 0]), "forward": np.array([0, 0, 1.0])}}
    for bone in (np.array([0.0, 0.0, 1.0]), np.array([0.05, -0.02, 1.0]), np.array([0.0, -1.0, 0.3])):
        A = rest_turn(bone, np.array([1.0, 0, 0]), "thorax forward", ax)
        assert np.isfinite(A).all() and np.allclose(A @ A.T, np.eye(3)) and np.isclose(np.linalg.det(A), 1.0)
        assert np.allclose(A @ np.array([1.0, 0, 0]), bone / np.linalg.norm(bone))
    down = rest_turn(np.array([0.0, -1.0, 0.0]), np.array([1.0, 0, 0]), "thorax forward", ax)
    assert np.allclose(down @ np.array([0, 0, 1.0]), [0, 0, 1.0])     # a hanging arm: the T-pose's forward kept
    ahead = rest_turn(np.array([0.0, 0.0, 1.0]), np.array([1.0, 0, 0]), "thorax forward", ax)
    assert np.allclose(ahead @ np.array([0, 1.0, 0]), [0, 1.0, 0])    # pointing forward: the T-pose's up kept


def test_the_solves_markers_ride_along_to_the_preview(tmp_path):
    """The solved Motion keeps its markers through --frames and --resample; the retarget carries them beside the
    source skeleton (its frame) and the preview draws them as grey rings in the source panel."""
    from mocap_retarget.preview import MARKER_COLOR, render_frames
    from mocap_retarget.resample import resample_motion
    from mocap_retarget.retarget import RetargetConfig, retarget
    from mocap_retarget.skeleton import TargetSkeleton

    _, X = _take(seconds=0.5)
    solved, _ = read_clip(_write_c3d(tmp_path / "walk.c3d", X, list(MARKERS), 120.0))
    assert solved.markers.shape == (60, len(MARKERS), 3)
    part = solved.frames(range(10, 40))
    assert np.array_equal(part.markers, solved.markers[10:40])
    slow = resample_motion(solved, 24.0)
    assert slow.markers.shape == (slow.num_frames, len(MARKERS), 3)
    assert np.array_equal(slow.markers[1], solved.markers[5])                      # every fifth frame, as it is
    target = TargetSkeleton.from_motion(synthetic_walk(WalkSpec(seconds=0.1, fps=30)))
    res = retarget(solved, target, RetargetConfig(cleanup=False))
    assert res.source_markers.shape == solved.markers.shape
    frames = np.array([0, 30])
    args = (res.source_positions, res.source_parents, res.target_positions, target.parents, frames)
    with_markers = render_frames(*args, size=128, markers=res.source_markers)
    without = render_frames(*args, size=128)
    changed = np.any(with_markers[0][:, :128] != without[0][:, :128], axis=-1)
    drawn = with_markers[0][:, :128][changed].astype(int)
    assert changed.sum() > 50 and (np.ptp(drawn, axis=1) < 40).mean() > 0.6        # grey rings (some under bones)
    assert MARKER_COLOR[0] == MARKER_COLOR[1] == MARKER_COLOR[2]
    assert np.array_equal(with_markers[0][:, 128:], without[0][:, 128:])           # the double's panel untouched


def test_a_c3d_retarget_in_a_workspace_records_the_subject_file(tmp_path, capsys, monkeypatch):
    """Under Jane's consent in a workspace: the C3D take and the performer's VSK are the run's inputs (their
    hashes in the audit record and the manifest), the rig Jane's likeness; the animation registered to her."""
    import datetime as dt
    import json

    from assets import audit
    from assets.actors import add_actor
    from assets.consent import grant
    from assets.workspace import Workspace
    from doppel.consent_gate import gated
    from tests.cli_runner import run_cli
    from tests.doppel.test_consent_fail_closed import humanoid_rig

    monkeypatch.delenv("DOPPEL_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe")
    grant(ws, "jane-doe", ["rig", "retarget"], "Dune", dt.date.today() + dt.timedelta(days=30))
    with gated(ws, "jane-doe", "rig", "Dune", command="rig") as run:
        rig = humanoid_rig(tmp_path / "rig", actor="jane-doe")
        run.add_output(rig, kind="rig")
    _, X = _take(seconds=0.3)
    clip = _write_c3d(tmp_path / "stunt.c3d", X, list(MARKERS), 120.0)
    (tmp_path / "Actor1.vsk").write_text(VSK)
    code, out, err = run_cli(capsys, "retarget", clip, "--rig", rig, "--out", tmp_path / "anim", "--subject",
                             tmp_path / "Actor1.vsk", "-W", ws.root, "--actor", "jane-doe", "--production", "Dune",
                             "--preview-size", 64)
    assert code == 0, err
    manifest = json.loads((tmp_path / "anim" / "manifest.json").read_text())
    assert manifest["params"]["actor_id"] == "jane-doe" and set(manifest["inputs"]) == {"clip", "subject"}
    record = audit.entries(ws, last=1)[0].record
    named = json.dumps(record)
    assert record["actor"] == "jane-doe" and "Actor1.vsk" in named and "stunt.c3d" in named
