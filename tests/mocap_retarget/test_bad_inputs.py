"""Careless and hostile inputs to `doppel retarget` (issue 21): each is refused with one line naming the file (and
line) or the option, exit 1, and nothing is written; the UTF-8 BOM is accepted; JSON outputs stay valid JSON."""

from __future__ import annotations

import json
import re
import stat

import pytest

from doppel.cli import main
from mocap_retarget.bvh import write_bvh
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    cap = capsys.readouterr()
    return e.value.code, cap.out, cap.err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    clip = d / "clip.bvh"
    write_bvh(clip, synthetic_walk(WalkSpec(seconds=0.3, fps=30), names=SCHEMES["mixamo"]), units="cm")
    target = d / "target.bvh"
    write_bvh(target, synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"]), units="cm")
    return d, clip, target


def _edit(d, clip, name: str, edit) -> str:
    lines = clip.read_text().splitlines()
    edit(lines, lines.index("MOTION"))
    p = d / name
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def _root_x(lines, mi, value):
    v = lines[mi + 3].split()
    v[0] = value
    lines[mi + 3] = " ".join(v)


def _first(lines, word):
    return next(i for i, s in enumerate(lines) if word in s)


def _chain(d, n: int) -> str:
    """A BVH whose skeleton is one chain of n joints."""
    body = ["HIERARCHY", "ROOT j0", "{", "OFFSET 0 0 0", "CHANNELS 6 Xposition Yposition Zposition Zrotation "
            "Xrotation Yrotation"]
    for i in range(1, n):
        body += [f"JOINT j{i}", "{", "OFFSET 0 1 0", "CHANNELS 3 Zrotation Xrotation Yrotation"]
    body += ["End Site", "{", "OFFSET 0 1 0", "}"] + ["}"] * n
    body += ["MOTION", "Frames: 1", "Frame Time: 0.033333", " ".join(["0"] * (3 + 3 * n))]
    p = d / "chain.bvh"
    p.write_text("\n".join(body) + "\n")
    return str(p)


CASES = {
    "root position 1e308": (lambda d, c: _edit(d, c, "big.bvh", lambda l, mi: _root_x(l, mi, "1e308")),
                            r"big\.bvh:\d+: value '1e308' \(column 1\) is beyond"),
    "root position inf": (lambda d, c: _edit(d, c, "inf.bvh", lambda l, mi: _root_x(l, mi, "inf")),
                          r"inf\.bvh:\d+: non-finite value 'inf'"),
    "OFFSET 1e309": (lambda d, c: _edit(d, c, "off.bvh", lambda l, mi: l.__setitem__(
        _first(l[4:], "OFFSET") + 4, "OFFSET 1e309 0 0")), r"off\.bvh:\d+: OFFSET values must be finite"),
    "Frame Time 1e-300": (lambda d, c: _edit(d, c, "ft.bvh", lambda l, mi: l.__setitem__(
        mi + 2, "Frame Time: 1e-300")), r"ft\.bvh:\d+: Frame Time must be between"),
    "three identical rotation channels": (lambda d, c: _edit(d, c, "rep.bvh", lambda l, mi: l.__setitem__(
        _first(l, "CHANNELS 3"), "CHANNELS 3 Xrotation Xrotation Xrotation")),
        r"rep\.bvh:\d+: a channel is listed twice"),
    "duplicate joint names": (lambda d, c: _write(d, "dup.bvh", c.read_text().replace(
        "mixamorig:RightUpLeg", "mixamorig:LeftUpLeg")),
        r"dup\.bvh:\d+: joint name 'mixamorig:LeftUpLeg' is used twice"),
}


def _write(d, name, text):
    (d / name).write_text(text)
    return str(d / name)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_bvh_is_one_line_naming_file_and_line(case, files, tmp_path, capsys):
    d, clip, target = files
    make, match = CASES[case]
    code, out, err = _run(capsys, "retarget", make(d, clip), "--rig", str(target), "--out", str(tmp_path / "o"))
    assert code == 1, out + err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(match, err), err
    assert not (tmp_path / "o").exists()


def test_bom_is_accepted(files, tmp_path, capsys):
    d, clip, target = files
    bom = d / "bom.bvh"
    bom.write_text("\ufeff" + clip.read_text(), encoding="utf-8")
    code, out, err = _run(capsys, "retarget", str(bom), "--rig", str(target), "--out", str(tmp_path / "o"),
                          "--preview-size", "48")
    assert code == 0, err
    json.loads((tmp_path / "o" / "metrics.json").read_text(), parse_constant=_no_constants)
    mode = stat.S_IMODE((tmp_path / "o" / "preview.mp4").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "o" / "preview.png").stat().st_mode) and mode & 0o044, oct(mode)


def _no_constants(name):
    raise ValueError(f"metrics.json holds {name}, which is not JSON")


@pytest.mark.parametrize("content, match", [
    ("thigh_l: mixamorig:LeftUpLeg\nthigh_r: mixamorig:LeftUpLeg\n",
     r"map\.yaml: joint 'mixamorig:LeftUpLeg' is given two roles, 'thigh_l' and 'thigh_r'"),
    (b"\xec\x00\xff\xfe" * 40, r"map\.yaml: not a text \(UTF-8\) YAML bone map"),
])
def test_bad_bone_maps(content, match, files, tmp_path, capsys):
    d, clip, target = files
    p = tmp_path / "map.yaml"
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    code, _, err = _run(capsys, "retarget", str(clip), "--bone-map", str(p), "--rig", str(target), "--out",
                        str(tmp_path / "o"))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert re.search(match, err), err


def test_override_takes_the_joint_from_the_automatic_role(files):
    """A bone map that gives a joint another role removes the role the automatic mapping gave it."""
    from mocap_retarget.bvh import read_bvh
    from mocap_retarget.roles import apply_override, auto_map

    _, clip, _ = files
    m = read_bvh(clip)
    bm = auto_map(m.names, m.parents, m.rest_positions(), m.end_sites)
    spine = bm.roles["spine"]
    out = apply_override(bm, {"chest": spine}, "map.yaml")
    assert out.roles["chest"] == spine and "spine" not in out.roles


@pytest.mark.parametrize("args, match", [
    (["--preview-size", "0"], "--preview-size must be an integer from 32 to 2048 pixels, got 0"),
    (["--preview-size", "100000"], "--preview-size must be an integer from 32 to 2048"),
    (["--max-memory-gb", "0.00001"], r"clip\.bvh: 9 frames x \d+ joints onto \d+ joints needs about .* GB, over the "
                                     r"limit of 1e-05 GB; retarget it in parts \(--frames A:B\) or raise "
                                     r"--max-memory-gb"),
    (["--frames", "5:3"], r"--frames 5:3: no frame"),
    (["--frames", "0:10"], r"--frames 0:10: outside the 9 frames available \(0:9\)"),
    (["--max-memory-gb", "nan"], "--max-memory-gb must be a number > 0"),
])
def test_bad_options(args, match, files, tmp_path, capsys):
    d, clip, target = files
    code, _, err = _run(capsys, "retarget", str(clip), "--rig", str(target), "--out", str(tmp_path / "o"), *args)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert re.search(match, err.replace("\n", "")), err
    assert not (tmp_path / "o").exists()


def test_huge_target_chain_is_refused(files, tmp_path, capsys):
    d, clip, _ = files
    code, _, err = _run(capsys, "retarget", str(clip), "--rig", _chain(d, 10_000), "--out", str(tmp_path / "o"))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "chain.bvh: 10000 joints; a target rig has at most 2000" in err


def test_memory_estimate_scales_with_the_clip():
    from mocap_retarget.clips import estimate_retarget_bytes

    # the 200,000-frame clip onto a 163-joint rig: several GB, refused on a small machine
    big = estimate_retarget_bytes(200_000, 31, 163)
    assert 5e9 < big < 2e10
    assert estimate_retarget_bytes(100, 31, 163) * 2000 == big


def test_large_retarget_is_announced_before_work(caplog):
    """The issue's 200,000-frame clip onto a 163-joint rig: refused under 8 GB, announced under 16 GB."""
    from mocap_retarget.clips import check_retarget_memory

    with pytest.raises(ValueError, match=r"long\.bvh: 200000 frames x 31 joints onto 163 joints needs about 8\.38 GB, "
                                         r"over the limit of 8 GB"):
        check_retarget_memory(200_000, 31, 163, 8.0, "long.bvh")
    with caplog.at_level("WARNING"):
        check_retarget_memory(200_000, 31, 163, 16.0, "long.bvh")
    assert "needs about 8.4 GB of memory (limit 16.0 GB" in caplog.text
