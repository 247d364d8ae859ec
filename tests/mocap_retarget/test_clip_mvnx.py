"""Xsens MVNX clips (`mocap_retarget.clip_mvnx`): a take written in MVN's layout from a known motion reads back to
that motion in Doppel's frame, retargets like the same motion as a BVH, and bad files are refused in one line.

The writer here follows the layout of an MVN Analyze 2018 export (namespace, subject frameRate, segments with
``pos_b`` points, joints with ``connector1``/``connector2``, calibration frames, then ``normal`` frames carrying
``orientation`` (w x y z) and ``position`` among other data). Its frame is Xsens': x forward, y left, z up."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_retarget.bvh import Motion, forward_kinematics, write_bvh
from mocap_retarget.clips import ClipError, read_clip
from mocap_retarget.retarget import RetargetConfig, retarget
from mocap_retarget.skeleton import TargetSkeleton
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk

# Doppel (x left, y up, z forward) -> Xsens (x forward, y left, z up), written out rather than imported
DOPPEL_TO_XSENS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
NS = "http://www.xsens.com/mvn/mvnx"


def _vec(v) -> str:
    return " ".join(f"{x:.9f}" for x in np.ravel(v))


def write_mvnx(path, motion: Motion, fps: float = 60.0, calibration: bool = True, extra: bool = True) -> None:
    """An MVNX file of ``motion`` (a T-pose rest, BVH convention, Doppel's frame): each joint a segment whose origin
    is the joint, the joint point of a child also named in its parent, leaf End Sites as tip points."""
    C = DOPPEL_TO_XSENS
    Rw, Pw = forward_kinematics(motion.parents, motion.local_rotations, motion.local_translations)
    names = motion.names
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<mvnx xmlns="{NS}" version="4">', '<mvn version="2019.0.0" build="test"/>',
             f'<subject label="s" frameRate="{fps:g}" segmentCount="{len(names)}" configuration="FullBody">',
             "<segments>"]
    for j, n in enumerate(names):
        lines += [f'<segment label="{n}" id="{j + 1}">', "<points>",
                  f'<point label="j{n}"><pos_b>0 0 0</pos_b></point>']
        for c in np.flatnonzero(motion.parents == j):
            lines.append(f'<point label="j{names[c]}"><pos_b>{_vec(C @ motion.offsets[c])}</pos_b></point>')
        for k, site in enumerate(motion.end_sites.get(j, [])):
            lines.append(f'<point label="pTip{k}"><pos_b>{_vec(C @ site)}</pos_b></point>')
        lines += ["</points>", "</segment>"]
    lines += ["</segments>", "<sensors>", '<sensor label="Pelvis"/>', "</sensors>", "<joints>"]
    for j, p in enumerate(motion.parents):
        if p >= 0:
            lines += [f'<joint label="j{names[j]}">', f"<connector1>{names[p]}/j{names[j]}</connector1>",
                      f"<connector2>{names[j]}/j{names[j]}</connector2>", "</joint>"]
    lines += ["</joints>", f'<frames segmentCount="{len(names)}">']
    q = Rotation.from_matrix(C @ Rw @ C.T).as_quat(scalar_first=True)          # (F, J, 4) w x y z
    p = Pw @ C.T
    if calibration:
        for kind in ("identity", "tpose", "tpose-isb"):
            lines += [f'<frame time="0" tc="00:00:00:00" ms="0" type="{kind}">',
                      f"<orientation>{_vec(np.tile([1.0, 0, 0, 0], len(names)))}</orientation>",
                      f"<position>{_vec(p[0])}</position>", "</frame>"]
    for f in range(len(q)):
        lines += [f'<frame time="{round(f * 1000 / fps)}" index="{f}" tc="00:00:00:{f:02d}" ms="{f}" type="normal">',
                  f"<orientation>{_vec(q[f])}</orientation>", f"<position>{_vec(p[f])}</position>"]
        if extra:
            lines += [f"<velocity>{_vec(np.zeros(3 * len(names)))}</velocity>",
                      '<footContacts>1 1 0 0</footContacts>']
        lines.append("</frame>")
    lines += ["</frames>", "</subject>", "</mvnx>"]
    path.write_text("\n".join(lines), encoding="utf-8")


@pytest.fixture(scope="module")
def walk() -> Motion:
    """A 1.5 s walk with Xsens' segment names, turning, T-pose rest, no fingers (MVN's body model has none)."""
    return synthetic_walk(WalkSpec(seconds=1.5, fps=60.0, turn_deg_per_s=30.0), names=SCHEMES["xsens"],
                          rest="T", fingers=False)


def test_mvnx_reads_back_the_motion_it_was_written_from(walk, tmp_path):
    path = tmp_path / "take.mvnx"
    write_mvnx(path, walk)
    motion, info = read_clip(path)
    assert (info.format, info.fps) == ("mvnx", 60.0)
    assert motion.num_frames == walk.num_frames                  # the three calibration frames are not the take
    assert motion.names == walk.names
    R0, P0 = forward_kinematics(walk.parents, walk.local_rotations, walk.local_translations)
    R1, P1 = forward_kinematics(motion.parents, motion.local_rotations, motion.local_translations)
    assert np.abs(P1 - P0).max() < 1e-6                          # metres, in Doppel's frame
    assert np.abs(R1 - R0).max() < 1e-6
    assert np.abs(motion.offsets[1:] - walk.offsets[1:]).max() < 1e-9
    assert walk.end_sites and sorted(motion.end_sites) == sorted(walk.end_sites)     # leaves with a tip point
    for j, sites in walk.end_sites.items():
        np.testing.assert_allclose(motion.end_sites[j][0], sites[0], atol=1e-9)


def test_mvnx_axes_are_doppels_left_up_forward(tmp_path):
    """Independent of the writer's matrix: a segment along Xsens' +y (left) is along Doppel's +x, +z (up) along
    +y, +x (forward) along +z; a quarter turn about Xsens' up is one about Doppel's +y."""
    text = f"""<?xml version="1.0"?>
<mvnx xmlns="{NS}" version="4"><subject frameRate="100" segmentCount="3">
<segments>
<segment label="Pelvis" id="1"><points><point label="jA"><pos_b>0 0.2 0</pos_b></point>
<point label="jB"><pos_b>0 0 0.5</pos_b></point></points></segment>
<segment label="LeftUpperArm" id="2"><points><point label="jA"><pos_b>0 0 0</pos_b></point>
<point label="pTip"><pos_b>0.1 0 0</pos_b></point></points></segment>
<segment label="Head" id="3"><points><point label="jB"><pos_b>0 0 0</pos_b></point></points></segment>
</segments>
<joints><joint label="jA"><connector1>Pelvis/jA</connector1><connector2>LeftUpperArm/jA</connector2></joint>
<joint label="jB"><connector1>Pelvis/jB</connector1><connector2>Head/jB</connector2></joint></joints>
<frames>
<frame time="0" index="0" type="normal"><orientation>1 0 0 0 1 0 0 0 1 0 0 0</orientation>
<position>1 2 3 1 2.2 3 1 2 3.5</position></frame>
<frame time="10" index="1" type="normal">
<orientation>0.7071067811865476 0 0 0.7071067811865476 1 0 0 0 1 0 0 0</orientation>
<position>1 2 3 1 2.2 3 1 2 3.5</position></frame>
</frames></subject></mvnx>"""
    path = tmp_path / "axes.mvnx"
    path.write_text(text, encoding="utf-8")
    motion, info = read_clip(path)
    assert info.fps == 100.0
    names = motion.names
    np.testing.assert_allclose(motion.offsets[names.index("LeftUpperArm")], [0.2, 0, 0], atol=1e-12)
    np.testing.assert_allclose(motion.offsets[names.index("Head")], [0, 0.5, 0], atol=1e-12)
    np.testing.assert_allclose(motion.end_sites[names.index("LeftUpperArm")][0], [0, 0, 0.1], atol=1e-12)
    R, P = forward_kinematics(motion.parents, motion.local_rotations, motion.local_translations)
    np.testing.assert_allclose(P[0, 0], [2, 3, 1], atol=1e-12)   # Xsens (1, 2, 3) = forward 1, left 2, up 3
    turn = Rotation.from_euler("y", 90, degrees=True).as_matrix()
    np.testing.assert_allclose(R[1, 0], turn, atol=1e-9)


def test_mvnx_retargets_like_the_same_take_as_bvh(walk, tmp_path, anny_skeleton):
    """The take as MVNX and as BVH (the format MVN also exports) give the same animation on the double."""
    write_mvnx(tmp_path / "take.mvnx", walk)
    write_bvh(tmp_path / "take.bvh", walk)
    names, parents, bind = anny_skeleton
    target = TargetSkeleton(names, parents, bind)
    a_mvnx = retarget(read_clip(tmp_path / "take.mvnx")[0], target, RetargetConfig())
    a_bvh = retarget(read_clip(tmp_path / "take.bvh")[0], target, RetargetConfig())
    roles = [r for r, _, _ in a_mvnx.pairs]
    assert roles == [r for r, _, _ in a_bvh.pairs]
    assert {"hips", "chest", "head", "upperarm_l", "forearm_r", "thigh_r", "foot_l"} <= set(roles)
    assert np.abs(a_mvnx.target_positions - a_bvh.target_positions).max() < 1e-4          # metres


def _minimal(frames: str, segments: str | None = None, rate: str = "60") -> str:
    segments = segments or ('<segment label="Pelvis" id="1"><points><point label="jA"><pos_b>0 0 0.1</pos_b>'
                            '</point></points></segment><segment label="L5" id="2"><points><point label="jA">'
                            '<pos_b>0 0 0</pos_b></point></points></segment>')
    return (f'<?xml version="1.0"?><mvnx xmlns="{NS}"><subject frameRate="{rate}"><segments>{segments}'
            '</segments><joints><joint label="jA"><connector1>Pelvis/jA</connector1><connector2>L5/jA</connector2>'
            f'</joint></joints><frames>{frames}</frames></subject></mvnx>')


GOOD = ('<frame index="{i}" type="normal"><orientation>1 0 0 0 1 0 0 0</orientation>'
        '<position>0 0 1 0 0 1.1</position></frame>')


@pytest.mark.parametrize("text, says", [
    (_minimal(GOOD.format(i=0) + GOOD.format(i=1).replace("0 0 1.1</position>", "0 1.1</position>")),
     r"frame 1 position: 5 values, expected 6"),
    (_minimal('<frame type="identity"><orientation>1 0 0 0 1 0 0 0</orientation><position>0 0 1 0 0 1.1'
              '</position></frame>'), r"no frames of the take \(only calibration poses\)"),
    (_minimal(GOOD.format(i=0), rate="0"), r"frameRate must be > 0, got '0'"),
    (_minimal(GOOD.format(i=0).replace("1 0 0 0 1 0 0 0", "0 0 0 0 1 0 0 0")), r"frame 0 of the take has invalid"),
    (_minimal(GOOD.format(i=0).replace("<position>0 0 1 0 0 1.1</position>", "")), r"frame 0 has no position"),
    (_minimal(GOOD.format(i=0))[:-40], r"not a readable MVNX file \(XML error"),
    ('<?xml version="1.0"?><document version="1.5.0"><chunk/></document>', r"no <subject>"),
    (_minimal(GOOD.format(i=0)).replace("L5/jA", "L9/jA"), r"<joints> name segments not in <segments>: L9"),
])
def test_bad_mvnx_is_refused_in_one_line(tmp_path, text, says):
    path = tmp_path / "bad.mvnx"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ClipError, match=says) as e:
        read_clip(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_minimal_mvnx_reads(tmp_path):
    """The bad-file cases above differ from this good one only in what they break."""
    path = tmp_path / "good.mvnx"
    path.write_text(_minimal(GOOD.format(i=0) + GOOD.format(i=1)), encoding="utf-8")
    motion, info = read_clip(path)
    assert motion.num_frames == 2 and motion.names == ["Pelvis", "L5"] and info.format == "mvnx"


def test_retarget_command_takes_an_mvnx(walk, tmp_path, capsys):
    """`doppel retarget TAKE.mvnx`: the roles by Xsens' names (--explain), and the take onto a skeleton with its
    frame rate recorded."""
    from tests.cli_runner import run_cli

    write_mvnx(tmp_path / "take.mvnx", walk, fps=120.0)
    code, out, err = run_cli(capsys, "retarget", tmp_path / "take.mvnx", "--explain")
    assert code == 0, err
    assert re.search(r"upperarm_l\s+<- LeftUpperArm", out) and re.search(r"hips\s+<- Pelvis", out), out
    target = tmp_path / "target.bvh"
    write_bvh(target, synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"]), units="cm")
    code, out, err = run_cli(capsys, "retarget", tmp_path / "take.mvnx", "--rig", target, "--out", tmp_path / "o",
                             "--preview-size", 64)
    assert code == 0, err
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["frame_rate"]["format"] == "mvnx" and manifest["frame_rate"]["fps"] == 120.0
