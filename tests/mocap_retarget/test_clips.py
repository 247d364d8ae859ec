"""Mocap clips from FBX, glTF and USD: written by Blender's own BVH importer and FBX / glTF / USD exporters from a
small synthetic BVH, they retarget to the same result as the BVH. Frame-rate snapping, refusal of a C3D of another
marker set, the generic world-matrix conversion. Blender processes in this module: 2 (one conversion, one FBX read)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mocap_retarget.bvh import write_bvh
from mocap_retarget.clips import ClipError, motion_from_world, read_clip
from mocap_retarget.metrics import compute_metrics
from mocap_retarget.retarget import RetargetConfig, retarget
from mocap_retarget.skeleton import TargetSkeleton
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk
from rigging.animation import snap_fps

LIMB_COS_TOL = 1e-3       # the bar: limb cosine of the FBX/glTF/USD path vs the BVH path
FRAME_TIME = 0.008333     # a BVH's rounded 1/120 s


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A 0.25 s walk at 120 fps (frame time 0.008333 s, cm) and Blender's FBX, GLB and USD of it."""
    from assets.blender_worker import run_blender_tasks

    d = tmp_path_factory.mktemp("clips")
    walk = synthetic_walk(WalkSpec(seconds=0.25, fps=120), names=SCHEMES["mixamo"], rest="A")
    walk.frame_time = FRAME_TIME
    bvh = d / "walk.bvh"
    write_bvh(bvh, walk, units="cm")
    outs = {s: d / f"walk{s}" for s in (".fbx", ".glb", ".usda")}
    infos = run_blender_tasks([({"kind": "convert_clip", "path": str(bvh), "out": str(o), "scale": 0.01}, {})
                               for o in outs.values()])
    assert all(i.info["frame_end"] - i.info["frame_start"] + 1 == walk.num_frames for i in infos)
    return bvh, outs


@pytest.fixture(scope="module")
def walk_target(anny_skeleton):
    names, parents, B = anny_skeleton
    return TargetSkeleton(names, parents, B)


def _bone_directions(P: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """(F, B, 3) unit directions of the target's bones longer than 1 mm (child joint minus parent joint)."""
    d = P[:, 1:] - P[:, parents[1:]]
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    return (d / np.maximum(n, 1e-12))[:, n[0, :, 0] > 1e-3]


def test_fbx_gltf_usd_clips_retarget_like_the_bvh(converted, walk_target):
    from assets.mocap_fbx import read_any_clip

    bvh, outs = converted
    ref_motion, ref_info = read_any_clip(bvh)
    assert ref_info.fps_file == pytest.approx(1 / FRAME_TIME) and ref_info.fps == 120.0
    ref = retarget(ref_motion, walk_target)
    ref_m = compute_metrics(ref, walk_target)
    ref_dirs = _bone_directions(ref.target_positions, walk_target.parents)
    for sfx, path in outs.items():
        motion, info = read_any_clip(path)
        assert info.fps == 120.0, sfx
        assert motion.num_frames == ref_motion.num_frames, sfx
        res = retarget(motion, walk_target)
        m = compute_metrics(res, walk_target)
        assert abs(m["limb_cosine_mean"] - ref_m["limb_cosine_mean"]) < LIMB_COS_TOL, sfx
        cos = np.sum(_bone_directions(res.target_positions, walk_target.parents) * ref_dirs, axis=-1)
        assert 1 - cos.mean() < LIMB_COS_TOL, sfx
        assert [r for r, _, _ in res.pairs] == [r for r, _, _ in ref.pairs], sfx
    # the comparison can fail: the same clip with one knee bent 15 degrees more is off
    from scipy.spatial.transform import Rotation

    bent = read_any_clip(outs[".glb"])[0]
    k = bent.names.index("mixamorig:LeftLeg")
    bent.local_rotations[:, k] = bent.local_rotations[:, k] @ Rotation.from_euler("x", 15, degrees=True).as_matrix()
    cos = np.sum(_bone_directions(retarget(bent, walk_target, RetargetConfig(cleanup=False)).target_positions,
                                  walk_target.parents) * _bone_directions(
        retarget(ref_motion, walk_target, RetargetConfig(cleanup=False)).target_positions, walk_target.parents), -1)
    assert cos.min() < 1 - LIMB_COS_TOL


def test_fbx_fast_sampling_matches_blenders_evaluation(converted):
    """The numpy evaluation of the FBX take's keys (fast path) against Blender evaluating every frame."""
    from assets.blender_worker import run_blender_tasks

    _, outs = converted
    task = {"kind": "read_armature", "path": str(outs[".fbx"])}
    fast, ref = run_blender_tasks([(task, {}), (dict(task, sampling="frame_set"), {})])
    assert fast.info["sampled_by"] == "fcurves" and ref.info["sampled_by"] == "frame_set"
    assert fast.arrays["world"].shape == ref.arrays["world"].shape
    assert np.abs(fast.arrays["world"] - ref.arrays["world"]).max() < 1e-5
    assert np.abs(fast.arrays["world"][1:] - ref.arrays["world"][:-1]).max() > 1e-3    # the comparison can fail


def test_fbx_clip_needs_blender_reader(converted):
    _, outs = converted
    with pytest.raises(ClipError, match="FBX clips are read through Blender"):
        read_clip(outs[".fbx"])


def test_retarget_cli_reads_a_glb_clip_and_records_the_rate(converted, tmp_path, capsys):
    from doppel.cli import main

    _, outs = converted
    target = tmp_path / "target.bvh"
    write_bvh(target, synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"]), units="cm")
    with pytest.raises(SystemExit) as e:
        main(["retarget", str(outs[".glb"]), "--rig", str(target), "--out", str(tmp_path / "o"),
              "--preview-size", "64"])
    assert e.value.code == 0, capsys.readouterr()
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["frame_rate"]["format"] == "gltf" and manifest["frame_rate"]["fps"] == 120.0


@pytest.mark.parametrize("fps, expected", [
    (1 / 0.008333, 120.0), (29.97, 30000 / 1001), (30.0, 30.0), (23.976, 24000 / 1001), (25.01, 25.0),
    (25.02, 25.02), (119.88, 120000 / 1001), (60.02, 60.0), (60.04, 60.04), (7.0, 7.0)])
def test_snap_fps(fps, expected):
    assert snap_fps(fps) == pytest.approx(expected, rel=1e-12)


def test_c3d_of_another_marker_set_is_refused_with_what_to_do(tmp_path):
    import ezc3d

    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [200]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("LASI", "RASI", "LPSI")
    c["data"]["points"] = np.random.default_rng(0).uniform(size=(4, 3, 10))
    c.write(str(tmp_path / "take.c3d"))
    with pytest.raises(ClipError, match=r"take\.c3d: 3 markers at 200 Hz, not the Plug-in Gait / CMU full-body "
                                        r"marker set Doppel solves: .*solve it in the capture software"):
        read_clip(tmp_path / "take.c3d")
    (tmp_path / "fake.c3d").write_bytes(b"not c3d")
    with pytest.raises(ClipError, match="not a readable C3D file"):
        read_clip(tmp_path / "fake.c3d")
    (tmp_path / "take.mov").write_bytes(b"x")
    with pytest.raises(ClipError, match="unsupported clip format '.mov'"):
        read_clip(tmp_path / "take.mov")


def test_motion_from_world_reproduces_forward_kinematics():
    """World matrices with arbitrary rest rotations and a scaled parent (as FBX files carry) -> the same joint
    positions and rest as the BVH motion they came from."""
    from scipy.spatial.transform import Rotation

    m = synthetic_walk(WalkSpec(seconds=0.2, fps=30))
    G, P = m.forward_kinematics()
    J = m.num_joints
    rest_rot = Rotation.random(J, random_state=2).as_matrix()
    rest = np.repeat(np.eye(4)[None], J, 0)
    rest[:, :3, :3] = rest_rot * 1.7                   # scale in the matrices is removed
    rest[:, :3, 3] = m.rest_positions()
    world = np.repeat(np.eye(4)[None, None], m.num_frames, 0).repeat(J, 1)
    world[..., :3, :3] = G @ rest_rot[None] * 1.7
    world[..., :3, 3] = P
    perm = np.random.default_rng(0).permutation(J)      # any joint order: reordered topologically
    inv = np.argsort(perm)
    parents = [-1 if m.parents[p] < 0 else int(inv[m.parents[p]]) for p in perm]
    back = motion_from_world([m.names[p] for p in perm], parents, rest[perm], world[:, perm], m.fps, "test")
    order = [back.names.index(n) for n in m.names]
    _, P2 = back.forward_kinematics()
    assert np.abs(P2[:, order] - P).max() < 1e-9
    assert np.abs(back.rest_positions()[order] - m.rest_positions()).max() < 1e-12
    world[3, 2, 0, 3] = np.nan
    with pytest.raises(ClipError, match="non-finite"):
        motion_from_world(m.names, list(m.parents), rest, world, m.fps, "test")


def test_gltf_and_usd_readers_on_doppels_own_exports(tmp_path):
    """A .glb and a .usda written by Doppel's exporters read back as clips whose joints follow
    Rig.forward_kinematics (glTF and USD readers without Blender)."""
    import torch

    from assets.export import export_rig, smooth_random_animation
    from tests.assets.conftest import make_rig

    rig = make_rig().validate()
    anim = smooth_random_animation(rig, frames=8, fps=24.0, seed=3, amplitude=0.5, blendshapes=0)
    W = rig.forward_kinematics(torch.as_tensor(anim.local_rotations), torch.as_tensor(anim.root_translation))
    ref = W.numpy()[..., :3, 3]
    for name in ("d.glb", "d.usda"):
        path = export_rig(rig, name.split(".")[1], tmp_path / name, anim).path
        motion, info = read_clip(path)
        assert info.fps == 24.0 and motion.num_frames == anim.num_frames, name
        _, P = motion.forward_kinematics()
        names = [re.sub(r"[^A-Za-z0-9_]", "_", n) for n in motion.names]       # USD joint names are tokens
        order = [names.index(re.sub(r"[^A-Za-z0-9_]", "_", n)) for n in rig.joint_names]
        assert np.abs(P[:, order] - ref).max() < 1e-5, name
        assert np.abs(P[1:, order] - ref[:-1]).max() > 1e-3            # the comparison can fail
