"""Clip files of several takes: a glTF's animations and an FBX's animation stacks, written by Blender's own
exporters from two BVH clips of one skeleton, read take by take (`--take`), the default said aloud, an unknown
take refused with the file's list; sparse glTF accessors read. Blender processes in this module: 1 for the
conversion, 1 for each FBX read (4)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from mocap_retarget.bvh import write_bvh
from mocap_retarget.clip_takes import describe_takes, pick_take, unique_take_names
from mocap_retarget.clips import ClipError
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk

TOL_M = 1e-5       # float32 file data, metres


@pytest.fixture(scope="module")
def two_takes(tmp_path_factory):
    """(BVH of take 'walk' (30 frames), BVH of take 'jog' (12 frames), {'.fbx': file, '.glb': file}) at 120 fps:
    'walk' and 'jog' as two takes of one file, as Blender's FBX and glTF exporters write them."""
    from assets.blender_worker import run_blender_tasks

    d = tmp_path_factory.mktemp("takes")
    walk = synthetic_walk(WalkSpec(seconds=0.25, fps=120), names=SCHEMES["mixamo"], rest="A")
    jog = synthetic_walk(WalkSpec(seconds=0.1, fps=120, speed=2.5, period=0.7), names=SCHEMES["mixamo"], rest="A")
    paths = {}
    for name, m in (("walk", walk), ("jog", jog)):
        m.frame_time = 1 / 120
        paths[name] = d / f"{name}.bvh"
        write_bvh(paths[name], m, units="cm")
    outs = {s: d / f"takes{s}" for s in (".fbx", ".glb")}
    two = {f"performers{s}": d / f"performers{s}" for s in (".fbx", ".glb")}      # Stunt1 walks, Stunt2 jogs
    run_blender_tasks([({"kind": "convert_clip", "path": str(paths["walk"]), "out": str(o), "scale": 0.01,
                         "take": "walk", "takes": [["jog", str(paths["jog"])]]}, {}) for o in outs.values()]
                      + [({"kind": "convert_clip", "path": str(paths["walk"]), "out": str(o), "scale": 0.01,
                           "performer": "Stunt1", "performers": [["Stunt2", str(paths["jog"])]]}, {})
                         for o in two.values()])
    return paths["walk"], paths["jog"], outs | two


def _positions(motion, names):
    _, P = motion.forward_kinematics()
    return P[:, [motion.names.index(n) for n in names]]


def test_each_take_of_a_file_reads_like_its_own_bvh(two_takes, caplog):
    from assets.mocap_fbx import read_any_clip

    walk_bvh, jog_bvh, outs = two_takes
    refs = {"walk": read_any_clip(walk_bvh)[0], "jog": read_any_clip(jog_bvh)[0]}
    assert refs["walk"].num_frames == 30 and refs["jog"].num_frames == 12
    names = refs["walk"].names
    for sfx in (".fbx", ".glb"):
        path = outs[sfx]
        for take in ("jog", "JOG", "walk"):
            motion, info = read_any_clip(path, take=take)
            ref = refs[take.lower()]
            assert info.take.endswith(take.lower()) and sorted(n.split("|")[-1] for n in info.takes) == ["jog", "walk"]
            P = _positions(motion, names)[-ref.num_frames:]     # Blender's FBX take keeps the frame-0 rest key
            assert P.shape[0] == ref.num_frames and np.abs(P - _positions(ref, names)).max() < TOL_M, (sfx, take)
    # the two takes differ (the comparison can fail)
    assert np.abs(_positions(refs["walk"], names)[:12] - _positions(refs["jog"], names)).max() > 0.01
    # no take named: each format's default, and a warning naming the others
    with caplog.at_level(logging.WARNING, logger="mocap_retarget.clip_takes"):
        glb = read_any_clip(outs[".glb"])[1]
    assert glb.take == "walk" and "holds 2 takes" in caplog.text and "'jog' (12 frames)" in caplog.text
    with pytest.raises(ClipError, match=r"no take named 'run'; the file's takes: .*jog.*walk"):
        read_any_clip(outs[".fbx"], take="run")
    with pytest.raises(ClipError, match="holds one"):
        read_any_clip(walk_bvh, take="walk")


def test_retarget_cli_reads_the_take_asked_for(two_takes, tmp_path, capsys):
    from doppel.cli import main

    _, _, outs = two_takes
    target = tmp_path / "target.bvh"
    write_bvh(target, synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"]), units="cm")
    with pytest.raises(SystemExit) as e:
        main(["retarget", str(outs[".glb"]), "--take", "jog", "--rig", str(target), "--out", str(tmp_path / "o"),
              "--preview-size", "64", "--explain"])
    text = capsys.readouterr().out
    assert e.value.code == 0, text
    assert "takes.glb: take 'jog' of " in text and "'walk' (30 frames)" in text and "'jog' (12 frames)" in text
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["params"]["take"] == "jog"
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["frames"] == 12


def test_sparse_gltf_animation_accessors_are_read(two_takes, tmp_path):
    """glTF 3.6.2.3: an animation output stored sparsely (no bufferView, its rows listed) reads as the dense one."""
    import pygltflib

    from assets.export.gltf import glb_bytes
    from mocap_retarget.clip_gltf import read_gltf_clip

    _, _, outs = two_takes
    gltf = pygltflib.GLTF2.load_binary(str(outs[".glb"]))
    blob = bytearray(gltf.binary_blob())
    anim = next(a for a in gltf.animations if a.name == "walk")
    out_index = next(anim.samplers[c.sampler].output for c in anim.channels if c.target.path == "rotation"
                     and "LeftUpLeg" in (gltf.nodes[c.target.node].name or ""))
    acc = gltf.accessors[out_index]
    view = gltf.bufferViews[acc.bufferView]
    dense = np.frombuffer(bytes(blob), np.float32, acc.count * 4, (view.byteOffset or 0) + (acc.byteOffset or 0))
    rows = np.arange(0, acc.count, 2, dtype=np.uint32)              # every other row sparse, the rest from the base
    base = dense.reshape(-1, 4).copy()
    base[rows] = [0.0, 0.0, 0.0, 1.0]                        # the base's rows the sparse ones replace: identity
    added = []
    for data in (base.tobytes(), rows.tobytes(), dense.reshape(-1, 4)[rows].tobytes()):
        blob += b"\0" * (-len(blob) % 4)
        gltf.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data)))
        blob += data
        added.append(len(gltf.bufferViews) - 1)
    acc.bufferView, acc.byteOffset = added[0], 0
    acc.sparse = pygltflib.Sparse(count=len(rows), indices=pygltflib.AccessorSparseIndices(
        bufferView=added[1], componentType=5125), values=pygltflib.AccessorSparseValues(bufferView=added[2]))
    gltf.buffers[0].byteLength = len(blob)
    gltf.set_binary_blob(bytes(blob))
    sparse = tmp_path / "sparse.glb"
    sparse.write_bytes(glb_bytes(gltf))
    ref, got = read_gltf_clip(outs[".glb"], "walk"), read_gltf_clip(sparse, "walk")
    assert np.abs(_positions(got, ref.names) - _positions(ref, ref.names)).max() < 1e-9
    acc.sparse = None                                          # without its sparse rows the base alone is wrong
    sparse.write_bytes(glb_bytes(gltf))
    assert np.abs(_positions(read_gltf_clip(sparse, "walk"), ref.names) - _positions(ref, ref.names)).max() > 1e-3


def test_take_names_and_matching():
    assert unique_take_names(["Idle", None, "Idle", ""]) == ["Idle", "take 2", "Idle (2)", "take 4"]
    names = ["Armature|Walk", "Armature|walk_fast", "Take 001"]
    assert pick_take("f", names, None, 2) == 2
    assert pick_take("f", names, "take 001", 0) == 2          # ignoring case
    assert pick_take("f", names, "walk", 0) == 0              # Blender's 'Object|Action'
    with pytest.raises(ClipError, match="no take named 'Run'"):
        pick_take("f", names, "Run", 0)
    assert describe_takes({"Idle": 100, "T-Pose": 1}) == "'Idle' (100 frames), 'T-Pose' (1 frame)"


def test_a_file_of_a_skin_per_mesh_reads_the_whole_skeleton(two_takes, tmp_path):
    """Exporters that write a skin per mesh list only that mesh's joints: a first skin of the head alone must not
    make the clip a skeleton without legs."""
    import pygltflib

    from assets.export.gltf import glb_bytes
    from mocap_retarget.clip_gltf import read_gltf_clip

    _, _, outs = two_takes
    gltf = pygltflib.GLTF2.load_binary(str(outs[".glb"]))
    head = [j for j in gltf.skins[0].joints if "Head" in (gltf.nodes[j].name or "") or "Neck" in gltf.nodes[j].name]
    assert head and len(head) < len(gltf.skins[0].joints) // 4
    gltf.skins.insert(0, pygltflib.Skin(name="head_only", joints=head))
    for node in gltf.nodes:                                  # the mesh's skin index moves with the insert
        if node.skin is not None:
            node.skin += 1
    split = tmp_path / "split.glb"
    split.write_bytes(glb_bytes(gltf))
    ref, got = read_gltf_clip(outs[".glb"], "walk"), read_gltf_clip(split, "walk")
    assert sorted(got.names) == sorted(ref.names)
    assert np.abs(_positions(got, ref.names) - _positions(ref, ref.names)).max() < 1e-9


def test_of_two_skeletons_the_larger_is_read_and_the_other_named(two_takes, tmp_path, caplog):
    """A second character's skin (here a two-joint prop, listed first) is neither read instead of the performer nor
    merged into them: the skeleton with the most joints is read and the file's skeletons are named."""
    import pygltflib

    from assets.export.gltf import glb_bytes
    from mocap_retarget.clip_gltf import read_gltf_clip

    _, _, outs = two_takes
    gltf = pygltflib.GLTF2.load_binary(str(outs[".glb"]))
    gltf.nodes += [pygltflib.Node(name="SwordRoot", children=[len(gltf.nodes) + 1], translation=[1.0, 0.0, 0.0]),
                   pygltflib.Node(name="SwordTip", translation=[0.0, 0.8, 0.0])]
    gltf.scenes[gltf.scene or 0].nodes.append(len(gltf.nodes) - 2)
    gltf.skins.insert(0, pygltflib.Skin(name="sword", joints=[len(gltf.nodes) - 2, len(gltf.nodes) - 1]))
    for node in gltf.nodes:
        if node.skin is not None:
            node.skin += 1
    two = tmp_path / "two.glb"
    two.write_bytes(glb_bytes(gltf))
    ref = read_gltf_clip(outs[".glb"], "walk")
    with caplog.at_level(logging.WARNING, logger="mocap_retarget.clip_takes"):
        got = read_gltf_clip(two, "walk")
    assert sorted(got.names) == sorted(ref.names)
    assert "holds 2 skeletons: 'walk' (30 joints), 'SwordRoot' (2 joints); reading 'walk'" in caplog.text
    assert read_gltf_clip(two, "walk", subject="swordroot").names == ["SwordRoot", "SwordTip"]


def test_the_performer_asked_for_of_a_file_of_two(two_takes, caplog):
    """FBX and glTF files of two performers (two armatures): --subject NAME reads that one's skeleton (and in the
    glTF, the animation that moves it); without it the first of the largest is read and both are named."""
    from assets.mocap_fbx import read_any_clip

    walk_bvh, jog_bvh, outs = two_takes
    refs = {"Stunt1": read_any_clip(walk_bvh)[0], "Stunt2": read_any_clip(jog_bvh)[0]}
    names = refs["Stunt1"].names
    for sfx in (".fbx", ".glb"):
        path = outs[f"performers{sfx}"]
        for subject in ("Stunt2", "stunt1"):
            motion, info = read_any_clip(path, subject=subject)
            ref = refs[subject.capitalize()]
            P = _positions(motion, names)[:ref.num_frames] - [2.0 if subject == "Stunt2" else 0.0, 0.0, 0.0]
            assert np.abs(P - _positions(ref, names)).max() < TOL_M, (sfx, subject)
        with caplog.at_level(logging.WARNING):
            read_any_clip(path)
        assert "holds 2 skeletons: 'Stunt1' (30 joints), 'Stunt2' (30 joints); reading 'Stunt1'" in caplog.text
        with pytest.raises(ClipError, match="no skeleton named 'Stunt3'; the file's skeletons: 'Stunt1', 'Stunt2'"):
            read_any_clip(path, subject="Stunt3")
    with caplog.at_level(logging.WARNING):                     # the glTF's walk moves Stunt1 only
        read_any_clip(outs["performers.glb"], subject="Stunt2", take="walk")
    assert "take 'walk' moves no joint of the skeleton read" in caplog.text
    with pytest.raises(ClipError, match="a .bvh clip holds one"):
        read_any_clip(walk_bvh, subject="Stunt1")


def test_the_performer_asked_for_of_a_usd_stage_of_two(tmp_path, caplog):
    """A USD stage referencing two performers' exports (two animated Skeletons, '/Stunt1/Skeleton' and
    '/Stunt2/Skeleton'): --subject Stunt2 (or the prim path) reads the second; without it the file's skeletons are
    named; an unknown one is refused with the list."""
    from pxr import Usd, UsdGeom

    from assets.export import export_rig, smooth_random_animation
    from mocap_retarget.clips import read_clip
    from tests.assets.conftest import make_rig

    rig = make_rig().validate()
    for k in (1, 2):
        anim = smooth_random_animation(rig, frames=8, fps=24.0, seed=k, amplitude=0.5, blendshapes=0)
        export_rig(rig, "usda", tmp_path / f"perf{k}.usda", anim)
    stage = Usd.Stage.CreateNew(str(tmp_path / "two.usda"))
    for k in (1, 2):
        stage.DefinePrim(f"/Stunt{k}", "Xform").GetReferences().AddReference(str(tmp_path / f"perf{k}.usda"))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    stage.SetTimeCodesPerSecond(24.0)
    stage.GetRootLayer().Save()
    refs = {k: read_clip(tmp_path / f"perf{k}.usda")[0] for k in (1, 2)}
    for subject, k in (("Stunt2", 2), ("/Stunt2/Skeleton", 2), ("stunt1", 1)):
        motion = read_clip(tmp_path / "two.usda", subject=subject)[0]
        assert np.abs(_positions(motion, refs[k].names) - _positions(refs[k], refs[k].names)).max() < 1e-9, subject
    assert np.abs(_positions(refs[1], refs[1].names) - _positions(refs[2], refs[1].names)).max() > 1e-3
    with caplog.at_level(logging.WARNING, logger="mocap_retarget.clip_takes"):
        read_clip(tmp_path / "two.usda")
    assert "holds 2 skeletons: 'Stunt1/Skeleton' (5 joints), 'Stunt2/Skeleton' (5 joints)" in caplog.text
    with pytest.raises(ClipError, match="no skeleton named 'Stunt3'"):
        read_clip(tmp_path / "two.usda", subject="Stunt3")


def test_a_meshopt_compressed_glb_is_refused_not_read_as_garbage(two_takes, tmp_path):
    """A glTF whose buffers need EXT_meshopt_compression's decoder (gltfpack -c) would read as random numbers."""
    import pygltflib

    from assets.export.gltf import glb_bytes
    from mocap_retarget.clip_gltf import read_gltf_clip

    gltf = pygltflib.GLTF2.load_binary(str(two_takes[2][".glb"]))
    gltf.extensionsUsed = [*(gltf.extensionsUsed or []), "EXT_meshopt_compression"]
    gltf.extensionsRequired = ["EXT_meshopt_compression"]
    packed = tmp_path / "packed.glb"
    packed.write_bytes(glb_bytes(gltf))
    with pytest.raises(ClipError, match=r"packed\.glb: its buffers are compressed \(EXT_meshopt_compression"):
        read_gltf_clip(packed)
