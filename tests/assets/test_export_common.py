"""Animation input, presets and frames, output paths, provenance."""

import json
import os

import numpy as np
import pytest
import torch

from assets.export import ExportError, ExportOptions, prepare_scene
from assets.export.common import (
    animation_for_rig,
    check_output_path,
    reference_vertices,
    staged_output,
    to_doppel,
)
from assets.export.run import default_options
from assets.provenance import provenance_from_rig_dir
from rigging.animation import Animation, AnimationError
from tests.assets.conftest import random_rotations

TOL_M = 1e-6   # float32 geometry, metres


def test_animation_save_load_roundtrip(tmp_path, tiny_rig):
    R = random_rotations(5, 3, seed=1)
    anim = Animation(["chest", "hips", "prop"], R, np.arange(15.0).reshape(5, 3), 30.0, blendshape_names=["wave"],
                      blendshape_weights=np.linspace(0, 1, 5)[:, None])
    f = anim.save(tmp_path / "anim")
    assert f.name == "animation.npz"
    back = Animation.load(tmp_path / "anim")
    assert back.joint_names == ["chest", "hips", "prop"] and back.fps == 30.0 and back.num_frames == 5
    np.testing.assert_allclose(back.local_rotations, R, atol=1e-6)
    assert back.blendshape_names == ["wave"]
    Rr, t, w = animation_for_rig(back, tiny_rig)
    assert Rr.shape == (5, 5, 3, 3) and w.shape == (5, 2)
    np.testing.assert_allclose(Rr[:, 2], R[:, 0], atol=1e-6)            # chest is rig joint 2
    np.testing.assert_allclose(Rr[:, 1], np.broadcast_to(np.eye(3), (5, 3, 3)))   # spine.01 not animated
    np.testing.assert_allclose(w[:, 0], 0) and np.testing.assert_allclose(w[:, 1], np.linspace(0, 1, 5), atol=1e-6)


def test_animation_axis_angle_file_and_manifest_hash(tmp_path):
    """Axis-angle rotations are accepted; extra arrays (the retargeter also writes `parents`) are ignored."""
    aa = np.random.default_rng(0).normal(size=(4, 2, 3))
    np.savez(tmp_path / "animation.npz", joint_names=np.array(["hips", "chest"]), local_rotations=aa,
             root_translation=np.zeros((4, 3)), fps=np.float64(25.0), parents=np.array([-1, 0]))
    anim = Animation.load(tmp_path / "animation.npz")
    import roma

    np.testing.assert_allclose(anim.local_rotations, roma.rotvec_to_rotmat(torch.from_numpy(aa)).numpy(), atol=1e-9)
    from core.storage import write_manifest

    write_manifest(tmp_path, "animation", outputs={"animation": "animation.npz"})
    Animation.load(tmp_path)
    with open(tmp_path / "animation.npz", "ab") as f:
        f.write(b"x")
    with pytest.raises(AnimationError, match="SHA-256"):
        Animation.load(tmp_path)


@pytest.mark.parametrize("bad, match", [
    (dict(local_rotations=np.ones((3, 1, 3, 3))), "not rotation matrices"),
    (dict(root_translation=np.zeros((2, 3))), r"root_translation must be \(3, 3\)"),
    (dict(fps=0.0), "fps must be a finite number > 0"),
    (dict(local_rotations=np.full((3, 1, 3, 3), np.nan)), "not finite"),
])
def test_animation_validate_rejects(bad, match):
    args = dict(joint_names=["hips"], local_rotations=np.broadcast_to(np.eye(3), (3, 1, 3, 3)),
                root_translation=np.zeros((3, 3)), fps=30.0)
    args.update(bad)
    with pytest.raises(AnimationError, match=match):
        Animation(**args).validate()


def test_animation_joints_not_in_rig(tiny_rig):
    anim = Animation(["hips", "mixamorig:LeftArm"], random_rotations(2, 2), np.zeros((2, 3)), 30.0,
                           source="take.npz")
    with pytest.raises(ExportError, match=r"take.npz: 1 of its 2 joints are not in the rig.*mixamorig:LeftArm"):
        animation_for_rig(anim, tiny_rig)
    bs = Animation(["hips"], random_rotations(2, 1), np.zeros((2, 3)), 30.0, blendshape_names=["jawOpen"],
                   blendshape_weights=np.zeros((2, 1)))
    with pytest.raises(ExportError, match="blendshapes.*jawOpen"):
        animation_for_rig(bs, tiny_rig)


def test_load_animation_missing_and_incomplete(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Animation.load(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no animation.npz"):
        Animation.load(tmp_path)
    np.savez(tmp_path / "animation.npz", joint_names=np.array(["a"]))
    with pytest.raises(AnimationError, match="missing arrays"):
        Animation.load(tmp_path)


def test_presets_and_overrides():
    assert (ExportOptions.from_preset("maya").up, ExportOptions.from_preset("maya").units) == ("y", "cm")
    assert (ExportOptions.from_preset("unreal").up, ExportOptions.from_preset("unreal").units) == ("z", "cm")
    assert (ExportOptions.from_preset("blender").up, ExportOptions.from_preset("blender").units) == ("z", "m")
    o = ExportOptions.from_preset("unreal", up="y", units="m")
    assert (o.up, o.units, o.preset) == ("y", "m", "unreal")
    assert default_options("fbx").units == "cm" and default_options("usda").units == "m"
    with pytest.raises(ValueError, match="--preset must be one of"):
        ExportOptions.from_preset("houdini")
    with pytest.raises(ValueError, match="--up must be y or z"):
        ExportOptions.from_preset(None, up="x")
    with pytest.raises(ValueError, match="glTF 2.0 is Y-up in metres"):
        default_options("glb", units="cm")
    # Z-up: Doppel's +Y (up) becomes +Z, the actor's facing +Z becomes -Y; a rotation (det +1)
    C = ExportOptions(up="z").rotation
    np.testing.assert_allclose(C @ [0, 1, 0], [0, 0, 1])
    np.testing.assert_allclose(C @ [0, 0, 1], [0, -1, 0])
    assert np.isclose(np.linalg.det(C), 1.0)


def test_local_quaternions_are_the_local_tracks_rotations_made_a_chunk_at_a_time(tiny_rig, tiny_anim):
    """`ExportScene.local_quaternions` (what the glTF and USD writers key): in chunks of any size, the rotations of
    `local_tracks` as unit quaternions (scipy's, up to sign), no joint's sign flipping from a frame to the next,
    and the same translations; a flip the conversion makes mid-take is carried to the frames after it."""
    from scipy.spatial.transform import Rotation

    from assets.export.common import sign_continuous

    sc = prepare_scene(tiny_rig, tiny_anim, ExportOptions.from_preset("maya"))
    rot, trans = sc.local_tracks()
    T, J = rot.shape[:2]
    whole, t_whole = sc.local_quaternions()
    want = Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_quat().reshape(T, J, 4)       # x, y, z, w
    assert np.allclose(np.abs(np.einsum("fjk,fjk->fj", whole, want)), 1.0, atol=1e-9)
    assert (np.einsum("fjk,fjk->fj", whole[1:], whole[:-1]) >= 0).all()
    np.testing.assert_array_equal(t_whole, trans)
    for chunk in (1, 5, T + 3):
        q, t = sc.local_quaternions(chunk=chunk)
        np.testing.assert_array_equal(q, whole) and np.testing.assert_array_equal(t, trans)
    q = np.tile([[0.0, 0.0, 0.0, 1.0]], (4, 1, 1))
    q[2:] *= -1                                               # a flip at frame 2 and none after it, as given
    assert (sign_continuous(q.copy())[:, 0, 3] == 1.0).all()


@pytest.mark.parametrize("preset", ["maya", "unreal", "blender"])
def test_prepared_scene_poses_like_the_rig(tiny_rig, tiny_anim, preset):
    """Forward kinematics + LBS of the converted scene (a numpy reference path) equals Rig.pose after the frame
    change back: the conversion keeps local rotations and maps positions by s C."""
    opts = ExportOptions.from_preset(preset)
    sc = prepare_scene(tiny_rig, tiny_anim, opts)
    rot, trans = sc.local_tracks()
    frames = [0, 5, 11]
    ref = reference_vertices(tiny_rig, tiny_anim, frames)
    for i, f in enumerate(frames):
        W = np.zeros((len(sc.parents), 4, 4))
        for j, p in enumerate(sc.parents):
            M = np.eye(4)
            M[:3, :3], M[:3, 3] = rot[f, j], trans[f, j]
            W[j] = M if p < 0 else W[p] @ M
        S = W @ np.linalg.inv(sc.bind)
        v = sc.vertices + np.einsum("n,nvc->vc", sc.blendshape_weights[f], sc.blendshape_deltas)
        vh = np.concatenate([v, np.ones((len(v), 1))], 1)
        per = np.einsum("jab,vb->vja", S, vh)[..., :3]
        dense = np.zeros((len(v), len(sc.parents)))
        np.add.at(dense, (np.arange(len(v))[:, None].repeat(sc.skin_indices.shape[1], 1), sc.skin_indices),
                  sc.skin_weights)
        posed = np.einsum("vj,vjc->vc", dense, per)
        assert np.abs(to_doppel(posed, opts) - ref[i]).max() < TOL_M


def test_prepare_scene_rejects_invalid_rig():
    from tests.assets.conftest import make_rig

    bad = make_rig()
    bad.skin_weights = bad.skin_weights * 2
    with pytest.raises(ExportError, match="cannot export: invalid rig: skin_weights"):
        prepare_scene(bad, None, ExportOptions())


def test_check_output_path(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="output folder .* does not exist"):
        check_output_path(tmp_path / "missing" / "a.glb", (".glb",))
    with pytest.raises(ValueError, match="expected a file ending in .glb"):
        check_output_path(tmp_path / "a.gltf", (".glb",))
    with pytest.raises(IsADirectoryError):
        (tmp_path / "d.glb").mkdir()
        check_output_path(tmp_path / "d.glb", (".glb",))
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    with pytest.raises(PermissionError, match="no write permission"):
        check_output_path(tmp_path / "a.glb", (".glb",))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_check_output_path_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="no write permission"):
            check_output_path(ro / "a.glb", (".glb",))
    finally:
        ro.chmod(0o755)


def test_staged_output_is_atomic(tmp_path):
    out = tmp_path / "a.fbx"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), staged_output(out) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.fbx"]
    with staged_output(out) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.fbx"]


def test_provenance_from_rig_dir(tiny_rig_dir):
    p = provenance_from_rig_dir(tiny_rig_dir).as_dict()
    assert p["actor_id"] == "actor-42" and p["consent_ref"] == "consent-7"
    assert "model=synthetic" in p["source"] and len(p["rig_sha256"]) == 64 and p["doppel_version"]
    json.dumps(p)
    p2 = provenance_from_rig_dir(tiny_rig_dir, actor_id="A", consent_ref=None, animation="take1").as_dict()
    assert p2["actor_id"] == "A" and p2["animation"] == "take1"


def test_staged_output_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with staged_output(tmp_path / "a.glb") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.glb").stat().st_mode & 0o777 == 0o644
