"""`doppel retarget`: outputs on disk, --explain, clear errors; the retargeted BVH reproduces the animation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from doppel.cli import main
from mocap_retarget.bvh import read_bvh, write_bvh
from mocap_retarget.export import animation_to_motion
from mocap_retarget.retarget import Animation, TargetSkeleton, retarget
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk

SPEC = WalkSpec(seconds=1.0, fps=30)


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    cap = capsys.readouterr()
    return e.value.code, cap.out + cap.err


@pytest.fixture()
def clips(tmp_path):
    clip = tmp_path / "clip.bvh"
    write_bvh(clip, synthetic_walk(SPEC, names=SCHEMES["mixamo"], rest="A"), units="cm")
    target = tmp_path / "target.bvh"
    write_bvh(target, synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"], scale=1.1), units="inch")
    return clip, target


def test_retarget_writes_every_output(clips, tmp_path, capsys):
    clip, target = clips
    out = tmp_path / "out"
    code, text = _run(["retarget", str(clip), "--rig", str(target), "--out", str(out), "--preview-size", "96"], capsys)
    assert code == 0, text
    for name in ("animation.npz", "manifest.json", "retargeted.bvh", "metrics.json", "preview.png", "preview.mp4"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "retarget"
    assert set(manifest["outputs"]) == {"animation", "bvh", "metrics", "preview_png", "preview_mp4"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["limb_cosine_mean"] > 0.98
    assert metrics["mapping"]["source"]["thigh_l"] == "mixamorig:LeftUpLeg"
    assert metrics["mapping"]["target"]["shin_r"] == "calf_r"
    anim = Animation.load(out / "animation.npz")
    assert anim.num_frames == 30 and anim.fps == pytest.approx(30.0)
    assert "limb cosine" in text


def test_a_range_of_a_long_take_is_retargeted_alone(clips, tmp_path, capsys):
    """`--frames A:B`: a take too long for the memory limit was refused with "split the clip", and nothing split
    it. The range's rotations are the whole clip's for those frames (the transfer is per frame; without the foot
    cleanup, whose blends span frames), its frame 0 the clip's frame A."""
    clip, target = clips
    for out, more in ((tmp_path / "all", []), (tmp_path / "part", ["--frames", "10:20"])):
        code, text = _run(["retarget", str(clip), "--rig", str(target), "--out", str(out), "--preview-size", "64",
                           "--no-cleanup", *more], capsys)
        assert code == 0, text
    whole, part = (Animation.load(tmp_path / n / "animation.npz") for n in ("all", "part"))
    assert part.num_frames == 10 and whole.num_frames == 30
    np.testing.assert_allclose(part.local_rotations, whole.local_rotations[10:20], atol=1e-9)
    assert json.loads((tmp_path / "part" / "manifest.json").read_text())["params"]["frames"] == "10:20"


def test_retargeted_bvh_reproduces_the_animation(anny_skeleton):
    names, parents, B = anny_skeleton
    target = TargetSkeleton(names, parents, B)
    res = retarget(synthetic_walk(SPEC), target)
    motion = animation_to_motion(res.animation, target)
    from mocap_retarget.bvh import format_bvh, parse_bvh

    back = parse_bvh(format_bvh(motion, units="m"), units="m")
    _, P = back.forward_kinematics()
    assert np.abs(P - res.target_positions).max() < 1e-5


def test_a_retargeted_bvh_written_in_chunks_is_the_bvh_of_the_whole_take(anny_skeleton, tmp_path):
    """`write_animation_bvh` (what `doppel retarget` writes retargeted.bvh with, a chunk of frames at a time so a
    long take's world rotations are never all held) gives the bytes of `write_bvh` of the whole animation, for
    chunks that do and do not divide the take; frames that do not add up to the header's count write nothing."""
    from mocap_retarget.bvh import write_bvh, write_bvh_frames
    from mocap_retarget.export import write_animation_bvh

    names, parents, B = anny_skeleton
    target = TargetSkeleton(names, parents, B)
    anim = retarget(synthetic_walk(SPEC), target).animation
    whole = write_bvh(tmp_path / "whole.bvh", animation_to_motion(anim, target), units="m").read_bytes()
    for chunk in (1, 7, anim.num_frames, 10 * anim.num_frames):
        assert write_animation_bvh(tmp_path / f"c{chunk}.bvh", anim, target, chunk=chunk).read_bytes() == whole
    motion = animation_to_motion(anim, target)
    with pytest.raises(ValueError, match="frames written, the header says"):
        write_bvh_frames(tmp_path / "short.bvh", motion, [motion.frames(range(0, 5))], anim.num_frames)
    assert not list(tmp_path.glob("short.bvh*")) and not list(tmp_path.glob(".short*"))


def test_explain_prints_mapping_and_unmapped(clips, capsys):
    clip, _ = clips
    code, text = _run(["retarget", str(clip), "--explain"], capsys)
    assert code == 0, text
    assert "thigh_l" in text and "mixamorig:LeftUpLeg" in text
    assert "joints left unmapped (1" in text and "mixamorig:Spine1" in text


def test_bone_map_override_and_errors(clips, tmp_path, capsys):
    clip, target = clips
    bm = tmp_path / "map.yaml"
    bm.write_text("toe_l: null\n", encoding="utf-8")
    code, text = _run(["retarget", str(clip), "--explain", "--bone-map", str(bm)], capsys)
    assert code == 0 and "removed by" not in text and "toe_l" in text.split("roles without a joint")[1]
    # truncated clip: one red line naming the file, exit 1
    bad = tmp_path / "bad.bvh"
    bad.write_text(clip.read_text()[:-200], encoding="utf-8")
    code, text = _run(["retarget", str(bad), "--rig", str(target), "--out", str(tmp_path / "o2")], capsys)
    assert code == 1 and "bad.bvh" in text and "truncated" in text
    assert not (tmp_path / "o2").exists()
    # a skeleton without legs
    arms = tmp_path / "arms.bvh"
    arms.write_text("HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\nCHANNELS 3 Xrotation Yrotation Zrotation\nJOINT Spine\n{\n"
                    "OFFSET 0 10 0\nCHANNELS 3 Xrotation Yrotation Zrotation\nEnd Site\n{\nOFFSET 0 10 0\n}\n}\n}\n"
                    "MOTION\nFrames: 1\nFrame Time: 0.033\n0 0 0 0 0 0\n", encoding="utf-8")
    code, text = _run(["retarget", str(arms), "--rig", str(target), "--out", str(tmp_path / "o3")], capsys)
    assert code == 1 and "not a humanoid with legs" in text
    code, text = _run(["retarget", str(clip), "--rig", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o4")],
                      capsys)
    assert code == 1 and "nowhere" in text
    code, text = _run(["retarget", str(clip)], capsys)
    assert code == 1 and "--rig and --out are required" in text


def test_source_clip_is_read_back_identically(clips):
    clip, _ = clips
    m = read_bvh(clip)
    assert m.units == "cm" and m.num_frames == 30


def test_retarget_onto_a_rig_folder(tmp_path, capsys):
    from scipy.spatial.transform import Rotation

    from rigging import Rig

    skel = synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"], scale=1.05)
    rest = skel.rest_positions()
    J = skel.num_joints
    B = np.repeat(np.eye(4)[None], J, axis=0)
    B[:, :3, :3] = Rotation.random(J, random_state=1).as_matrix()
    B[:, :3, 3] = rest
    # a small mesh: a triangle per bone, rigidly bound to the bone's parent joint
    verts, faces, idx = [], [], []
    for j, p in enumerate(skel.parents):
        if p < 0:
            continue
        a, b = rest[p], rest[j]
        verts += [a, b, (a + b) / 2 + np.array([0.02, 0.0, 0.02])]
        faces.append([len(verts) - 3, len(verts) - 2, len(verts) - 1])
        idx += [p, p, p]
    rig = Rig(joint_names=skel.names, parents=skel.parents, bind_matrices=B, vertices=np.array(verts, np.float32),
              faces=np.array(faces), skin_indices=np.array(idx)[:, None],
              skin_weights=np.ones((len(idx), 1), np.float32))
    rig.save(tmp_path / "rig")
    clip = tmp_path / "clip.bvh"
    write_bvh(clip, synthetic_walk(SPEC, names=SCHEMES["biped"], rest="A"), units="inch")
    out = tmp_path / "out"
    code, text = _run(["retarget", str(clip), "--rig", str(tmp_path / "rig"), "--out", str(out),
                       "--preview-size", "96"], capsys)
    assert code == 0, text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["limb_cosine_mean"] > 0.98 and metrics["mapping"]["source"]["thigh_l"] == "Bip01 L Thigh"
    anim = Animation.load(out / "animation.npz")
    assert anim.joint_names == skel.names and anim.num_frames == 30
