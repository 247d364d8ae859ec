"""A swap's face track as an animation of a rig (`doppel.face_performance`, `doppel retarget SWAP/tracks.npz`):
the head's rotation lands on the neck and head joints in world axes, the expressions on the rig's blendshapes,
frames without a face hold, a body take keeps its motion under the face, bad takes are one line each."""

import json

import numpy as np
import pytest
import roma
import torch

from doppel.face_performance import (
    CAMERA_TO_FACING,
    NECK_SHARE,
    FaceTake,
    FaceTakeError,
    face_animation,
)
from doppel.face_take_read import read_face_take
from rigging import Rig
from rigging.animation import Animation
from tests.cli_runner import run_cli


def _frame(rng) -> np.ndarray:
    """A random bind frame (rig joints' frames are anatomical, not world-aligned)."""
    return roma.random_rotmat(1, generator=torch.Generator().manual_seed(int(rng.integers(1 << 30))),
                              dtype=torch.float64)[0].numpy()


def head_rig(seed: int = 0) -> Rig:
    """hips -> spine -> neck -> head -> jaw: a tube from 0.9 to 1.9 m, blendshapes jawOpen and eyeBlinkLeft."""
    rng = np.random.default_rng(seed)
    names = ["hips", "spine", "neck", "head", "jaw"]
    heights = [0.9, 1.2, 1.5, 1.65, 1.6]
    B = np.tile(np.eye(4), (5, 1, 1))
    for j in range(5):
        B[j, :3, :3] = _frame(rng)
        B[j, :3, 3] = [0, heights[j], 0.02 * (j == 4)]
    ys, ang = np.linspace(0.9, 1.9, 11), np.arange(12) * 2 * np.pi / 12
    v = np.array([[0.1 * np.cos(a), y, 0.1 * np.sin(a)] for y in ys for a in ang], np.float32)
    faces = np.array([[i * 12 + s, (i + 1) * 12 + s, i * 12 + (s + 1) % 12] for i in range(10) for s in range(12)]
                     + [[i * 12 + (s + 1) % 12, (i + 1) * 12 + s, (i + 1) * 12 + (s + 1) % 12]
                        for i in range(10) for s in range(12)])
    jy = np.array(heights[:4])
    w = np.exp(-((v[:, 1:2] - jy[None]) / 0.15) ** 2)
    w /= w.sum(1, keepdims=True)
    deltas = np.zeros((2, len(v), 3), np.float32)
    deltas[0, v[:, 1] > 1.7, 1] = -0.03
    deltas[1, v[:, 1] > 1.8, 2] = 0.01
    return Rig(joint_names=names, parents=[-1, 0, 1, 2, 3], bind_matrices=B, vertices=v, faces=faces,
               skin_indices=np.tile(np.arange(4), (len(v), 1)), skin_weights=w.astype(np.float32),
               uvs=np.zeros((len(v), 2), np.float32), face_uvs=faces, blendshape_names=["jawOpen", "eyeBlinkLeft"],
               blendshape_deltas=deltas).validate()


def _rot(rotvecs) -> np.ndarray:
    return roma.rotvec_to_rotmat(torch.as_tensor(np.asarray(rotvecs, np.float64))).numpy()


def _take(F=6, valid=None, names=("jawOpen",), jaw=None) -> tuple[FaceTake, np.ndarray]:
    """A take whose head turns (yaw then pitch) in the facing frame: (take, the head's world rotations W)."""
    t = np.linspace(0, 1, F)
    W = _rot(np.stack([-0.3 * t, 0.6 * t - 0.2, 0.05 * np.sin(6 * t)], 1))
    R = CAMERA_TO_FACING.T @ W                       # bind frame -> camera
    w = np.stack([np.linspace(0, 1, F)] * len(names), 1)
    ok = np.ones(F, bool) if valid is None else np.asarray(valid)
    return FaceTake(R, ok, list(names), w, jaw, 24.0, [], "take.npz"), W


def _world_rotation(rig, anim, joint) -> np.ndarray:
    Wj = rig.forward_kinematics(anim.local_rotations, anim.root_translation, anim.blendshape_weights)
    return Wj[:, joint, :3, :3].numpy() @ rig.bind_matrices[joint, :3, :3].T


def test_the_head_turns_as_in_the_take_and_the_neck_carries_its_share():
    rig = head_rig()
    take, W = _take()
    anim, summary = face_animation(take, rig)
    np.testing.assert_allclose(_world_rotation(rig, anim, 3), W, atol=1e-6)
    neck = roma.rotmat_to_rotvec(torch.from_numpy(_world_rotation(rig, anim, 2))).numpy()
    np.testing.assert_allclose(neck, NECK_SHARE * roma.rotmat_to_rotvec(torch.from_numpy(W)).numpy(), atol=1e-6)
    np.testing.assert_allclose(anim.blendshape_weights[:, 0], np.linspace(0, 1, 6))
    np.testing.assert_allclose(anim.blendshape_weights[:, 1], 0)
    assert summary["frames"] == 6 and summary["blendshapes_moving"] == ["jawOpen"]


def test_frames_without_a_face_hold_and_the_take_mode_centres_the_head():
    rig = head_rig()
    take, W = _take(valid=[False, False, True, True, True, False])
    anim, summary = face_animation(take, rig)
    w = anim.blendshape_weights[:, 0]
    assert w[0] == w[1] == w[2] and w[5] == w[4] and summary["frames_held"] == 3
    head = _world_rotation(rig, anim, 3)
    np.testing.assert_allclose(head[:2], np.broadcast_to(W[2], (2, 3, 3)), atol=1e-6)
    anim, _ = face_animation(take, rig, head="take")
    centred = roma.rotmat_to_rotvec(torch.from_numpy(_world_rotation(rig, anim, 3)[2:5])).numpy()
    assert np.abs(np.median(centred, 0)).max() < 1e-6
    anim, _ = face_animation(take, rig, head="none")
    np.testing.assert_allclose(anim.local_rotations, np.broadcast_to(np.eye(3), anim.local_rotations.shape),
                               atol=1e-12)


def test_the_jaw_joint_opens_downwards_and_a_body_take_keeps_its_motion_under_the_face():
    rig = head_rig()
    take, W = _take(jaw=np.linspace(0, 0.4, 6))
    anim, _ = face_animation(take, rig, head="none")
    jaw_tip = rig.pose(anim.local_rotations, None, anim.blendshape_weights)[:, :, 1].numpy()
    assert jaw_tip[-1].mean() <= jaw_tip[0].mean()
    spine = _rot([[0.0, 0.5, 0.0]] * 6)
    body = Animation(["spine"], rig.local_from_world_aligned(torch.from_numpy(
        np.stack([np.eye(3), spine[0], np.eye(3), np.eye(3), np.eye(3)])[None].repeat(6, 0))).numpy()[:, 1:2],
        np.zeros((6, 3)), 24.0, blendshape_names=["eyeBlinkLeft"], blendshape_weights=np.full((6, 1), 0.7))
    take, W = _take()
    anim, _ = face_animation(take, rig, body=body)
    np.testing.assert_allclose(_world_rotation(rig, anim, 3), spine @ W, atol=1e-6)
    np.testing.assert_allclose(anim.blendshape_weights[:, 1], 0.7)      # the body take's weight, kept

def test_a_face_take_is_put_on_the_body_takes_clock():
    """Another frame rate, length and a start offset: the face resampled to the body's frames (rotations along
    the shortest arc, weights linearly), held beyond its span; a take that misses the body take is refused."""
    rig = head_rig()
    take, W = _take()                                        # 6 frames at 24 fps; jawOpen 0, 0.2, ..., 1
    body = Animation(["spine"], np.tile(np.eye(3), (16, 1, 1, 1)), np.zeros((16, 3)), 48.0, source="body")
    anim, summary = face_animation(take, rig, body=body, offset_s=1 / 24)
    assert anim.num_frames == 16 and anim.fps == 48 and summary["animation_frames"] == 16
    jaw = anim.blendshape_weights[:, 0]
    np.testing.assert_allclose(jaw[:3], 0.0, atol=1e-12)                    # before the face starts: held
    np.testing.assert_allclose(jaw[2:13], np.linspace(0, 1, 11), atol=1e-12)   # 2 body frames a face frame
    np.testing.assert_allclose(jaw[12:], 1.0, atol=1e-12)                   # after it ends: held
    head = _world_rotation(rig, anim, 3)
    np.testing.assert_allclose(head[2::2][:6], W, atol=1e-6)                # on the face's own frames: exact
    mid = roma.rotmat_to_rotvec(torch.from_numpy(W[0].T @ head[3])).numpy()
    whole = roma.rotmat_to_rotvec(torch.from_numpy(W[0].T @ W[1])).numpy()
    np.testing.assert_allclose(mid, whole / 2, atol=1e-6)                   # half way between them
    with pytest.raises(FaceTakeError, match="does not overlap the body take"):
        face_animation(take, rig, body=body, offset_s=2.0)


def test_takes_the_rig_cannot_play_are_refused_in_one_line():
    rig = head_rig()
    take, _ = _take(names=("jawOpen", "expression_000"))
    with pytest.raises(FaceTakeError, match=r"1 of the take's 2 expressions are not blendshapes.*expression_000"):
        face_animation(take, rig)
    take, _ = _take(valid=np.zeros(6, bool))
    with pytest.raises(FaceTakeError, match="no frame has a tracked face"):
        face_animation(take, rig)


def _write_tracks(path, take: FaceTake):
    np.savez(path, frame=np.arange(10, 10 + take.num_frames), rotation=take.rotation, valid=take.valid,
             rig_blendshape_names=np.array(take.blendshape_names), rig_blendshape_weights=take.blendshape_weights,
             fps=np.float64(25.0), cuts=np.array([13]))
    return path


def test_retarget_a_swap_folders_face_track(tmp_path, capsys):
    rig = head_rig()
    rig.save(tmp_path / "rig", params={"actor_id": "virtual"})
    take, W = _take(F=30)
    (tmp_path / "shot_swap").mkdir()
    _write_tracks(tmp_path / "shot_swap" / "tracks.npz", take)
    assert read_face_take(tmp_path / "shot_swap").cuts == [3]
    code, out, err = run_cli(capsys, "retarget", tmp_path / "shot_swap", "--rig", tmp_path / "rig", "--out",
                             tmp_path / "face", "--preview-size", "64")
    assert code == 0, err
    said = " ".join(out.split())
    assert "face take: 30 frames at 25 fps" in said and "cuts at frames [3]" in said
    names = {p.name for p in (tmp_path / "face").iterdir()}
    assert {"animation.npz", "metrics.json", "preview.png", "preview.mp4", "manifest.json"} <= names
    anim = Animation.load(tmp_path / "face")
    np.testing.assert_allclose(_world_rotation(rig, anim, 3), W, atol=1e-5)     # float32 on disk
    assert json.loads((tmp_path / "face" / "metrics.json").read_text())["fps"] == 25.0
    body = Animation(["spine"], np.tile(np.eye(3), (12, 1, 1, 1)), np.zeros((12, 3)), 25.0)
    body.save(tmp_path / "body")
    code, out, err = run_cli(capsys, "retarget", tmp_path / "shot_swap" / "tracks.npz", "--rig", tmp_path / "rig",
                             "--out", tmp_path / "face2", "--onto", tmp_path / "body", "--face-offset", "0.2")
    assert code == 0, err
    assert "from 0.2 s: 12 frames at 25 fps" in " ".join(out.split())
    assert Animation.load(tmp_path / "face2").num_frames == 12
    inputs = json.loads((tmp_path / "face2" / "manifest.json").read_text())["inputs"]
    assert inputs["body"]["path"].endswith("animation.npz") and inputs["clip"]["path"].endswith("tracks.npz")
    code, out, err = run_cli(capsys, "retarget", tmp_path / "shot_swap" / "tracks.npz", "--rig", tmp_path / "rig",
                             "--out", tmp_path / "face4", "--onto", tmp_path / "body", "--face-offset", "5")
    assert code != 0 and "does not overlap the body take" in " ".join((out + err).split())
    code, out, err = run_cli(capsys, "retarget", tmp_path / "shot_swap" / "tracks.npz", "--rig", tmp_path / "rig",
                             "--out", tmp_path / "face4", "--face-offset", "1")
    assert code != 0 and "give the body take (--onto)" in " ".join((out + err).split())
    assert not (tmp_path / "face4").exists()
    (tmp_path / "walk.bvh").write_text("HIERARCHY\n")
    code, out, err = run_cli(capsys, "retarget", tmp_path / "walk.bvh", "--rig", tmp_path / "rig", "--out",
                             tmp_path / "face3", "--head", "take")
    assert code != 0 and "walk.bvh: not a face performance; --onto, --head and --fps are for one" in \
        " ".join((out + err).split())
    code, out, err = run_cli(capsys, "retarget", tmp_path / "gone_swap", "--rig", tmp_path / "rig", "--out",
                             tmp_path / "face3", "--onto", tmp_path / "body")
    assert code != 0 and "gone_swap: not found" in " ".join((out + err).split())
    assert not (tmp_path / "face3").exists()


def test_a_batch_retarget_job_plays_a_face_take_through_the_same_command(tmp_path, capsys):
    """A batch `retarget` job whose clips are swaps' tracks.npz runs the face path (worker call, no Ray)."""
    from doppel.batch.stages import RetargetJob, _retarget_call, call_command
    from doppel.commands.retarget import retarget

    rig = head_rig()
    rig.save(tmp_path / "rig", params={"actor_id": "virtual"})
    take, W = _take(F=9)
    _write_tracks(tmp_path / "tracks.npz", take)
    job = RetargetJob(clips=str(tmp_path / "tracks.npz"), rig=str(tmp_path / "rig"),
                      out=str(tmp_path / "face"), preview_size=32, head="take")
    call_command(retarget, **_retarget_call(job.model_dump()))
    anim = Animation.load(tmp_path / "face")
    assert json.loads((tmp_path / "face" / "metrics.json").read_text())["head"] == "take"
    head = roma.rotmat_to_rotvec(torch.from_numpy(_world_rotation(rig, anim, 3))).numpy()
    assert np.abs(np.median(head, 0)).max() < 5e-3          # centred on the take (the median of rotation vectors)


def test_a_damaged_face_track_is_one_line(tmp_path):
    """A truncated tracks.npz, one without a take's arrays, one whose arrays disagree in length, NaNs."""
    take, _ = _take()
    good = _write_tracks(tmp_path / "tracks.npz", take)
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "tracks.npz").write_bytes(good.read_bytes()[:300])
    with pytest.raises(FaceTakeError, match="not a readable .npz"):
        read_face_take(tmp_path / "cut")
    np.savez(tmp_path / "old.npz", rotation=take.rotation, valid=take.valid, fps=24.0)
    with pytest.raises(FaceTakeError, match="missing rig_blendshape_names, rig_blendshape_weights"):
        read_face_take(tmp_path / "old.npz")
    np.savez(tmp_path / "short.npz", rotation=take.rotation, valid=take.valid[:4], fps=24.0,
             rig_blendshape_names=np.array(["jawOpen"]), rig_blendshape_weights=take.blendshape_weights)
    with pytest.raises(FaceTakeError, match=r"valid \(F,\); got \(6, 3, 3\), \(6, 1\) and \(4,\)"):
        read_face_take(tmp_path / "short.npz")
    bad = take.rotation.copy()
    bad[2, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", rotation=bad, valid=take.valid, fps=24.0,
             rig_blendshape_names=np.array(["jawOpen"]), rig_blendshape_weights=take.blendshape_weights)
    with pytest.raises(FaceTakeError, match="not finite"):
        read_face_take(tmp_path / "nan.npz")
