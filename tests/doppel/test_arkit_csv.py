"""Facial capture in the ARKit CSV layout (Live Link Face): read, placed on its frame grid, played on a rig through
`doppel retarget`; bad files one line each."""

import numpy as np
import pytest

from doppel.arkit_csv import arkit_name, is_arkit_csv, read_arkit_csv
from doppel.face_take import FaceTakeError
from rigging.animation import Animation
from tests.cli_runner import run_cli
from tests.doppel.test_face_performance import head_rig

SHAPES = ["EyeBlinkLeft", "JawOpen", "MouthSmileLeft"]
HEAD = ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw",
        "RightEyePitch", "RightEyeRoll"]


def write_csv(path, frames=90, fps=60, start=(14, 3, 52, 40), drop=(), shapes=SHAPES):
    """A take of ``frames`` frames at ``fps`` from timecode ``start`` (h, m, s, frame), rows ``drop`` left out
    (frames the app dropped): JawOpen a ramp 0 -> 1, EyeBlinkLeft 0.5, MouthSmileLeft a sine."""
    h, m, s, f0 = start
    lines = ["Timecode,BlendShapeCount," + ",".join(list(shapes) + HEAD)]
    for i in range(frames):
        if i in drop:
            continue
        total = (h * 3600 + m * 60 + s) * fps + f0 + i
        hh, rest = divmod(total, 3600 * fps)
        mm, rest = divmod(rest, 60 * fps)
        ss, ff = divmod(rest, fps)
        values = [0.5, i / (frames - 1), 0.3 + 0.2 * np.sin(i / 7)][:len(shapes)]
        lines.append(f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{(i * 37) % 1000:03d},{len(shapes) + 9},"
                     + ",".join(f"{v:.6f}" for v in values + [0.1] * 9))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_take_is_read_at_the_apps_rate_with_dropped_frames_filled(tmp_path, caplog):
    f = write_csv(tmp_path / "take.csv", drop=(30, 31))
    assert is_arkit_csv(f) and arkit_name("MouthSmileLeft") == "mouthSmileLeft"
    take = read_arkit_csv(f)
    assert take.fps == 60 and take.num_frames == 90 and not take.has_head
    assert take.blendshape_names == ["eyeBlinkLeft", "jawOpen", "mouthSmileLeft"]
    np.testing.assert_allclose(take.blendshape_weights[:, 1], np.arange(90) / 89, atol=1e-5)   # 30, 31 filled
    assert "2 of its 90 frames were missing" in caplog.text
    f30 = write_csv(tmp_path / "take30.csv", frames=45, fps=30)
    assert read_arkit_csv(f30).fps == 30


def test_a_take_within_one_second_needs_its_rate(tmp_path):
    f = write_csv(tmp_path / "short.csv", frames=10, start=(1, 0, 0, 5))
    with pytest.raises(FaceTakeError, match="give it"):
        read_arkit_csv(f)
    assert read_arkit_csv(f, fps=60).num_frames == 10


@pytest.mark.parametrize("text, words", [
    ("Timecode,BlendShapeCount,HeadYaw\n00:00:00:01.0,1,0.1\n00:00:00:02.0,1,0.1\n", "no blendshape columns"),
    ("Timecode,BlendShapeCount,JawOpen\n00:00:00:01.0,1,0.1\n", "a take needs at least two frames"),
    ("Timecode,BlendShapeCount,JawOpen\n0:0:1,1,0.1\n00:00:00:02.0,1,0.1\n", "is not HH:MM:SS:FF"),
    ("Timecode,BlendShapeCount,JawOpen\n00:00:00:01.0,1,x\n00:00:00:02.0,1,0.1\n", "row 2"),
    ("Timecode,BlendShapeCount,JawOpen\n00:00:00:01.0,1,7\n00:00:01:02.0,1,0.1\n", "weights reach 7"),
    ("Timecode,BlendShapeCount,JawOpen\n00:00:01:03.0,1,0.1\n00:00:00:02.0,1,0.1\n", "go backwards"),
])
def test_bad_files_are_one_line(tmp_path, text, words):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(FaceTakeError, match=words):
        read_arkit_csv(f, fps=60)


def test_retarget_plays_a_csv_take_on_the_rig(tmp_path, capsys):
    rig = head_rig()                                       # blendshapes jawOpen, eyeBlinkLeft
    rig.save(tmp_path / "rig", params={"actor_id": "virtual"})
    f = write_csv(tmp_path / "take.csv", shapes=["EyeBlinkLeft", "JawOpen"])
    code, out, err = run_cli(capsys, "retarget", f, "--rig", tmp_path / "rig", "--out", tmp_path / "face",
                             "--preview-size", "48")
    assert code == 0, err
    said = " ".join(out.split())
    assert "face take: 90 frames at 60 fps; head: not applied; 2 expressions" in said
    anim = Animation.load(tmp_path / "face")
    assert anim.fps == 60
    np.testing.assert_allclose(anim.blendshape_weights[:, 0], np.arange(90) / 89, atol=1e-5)   # rig order: jawOpen
    np.testing.assert_allclose(anim.local_rotations, np.broadcast_to(np.eye(3), anim.local_rotations.shape),
                               atol=1e-6)
    code, out, err = run_cli(capsys, "retarget", f, "--rig", tmp_path / "rig", "--out", tmp_path / "face2",
                             "--head", "camera")
    assert code != 0 and "its head rotation is not read" in " ".join((out + err).split())
    g = write_csv(tmp_path / "smile.csv")                  # MouthSmileLeft: not a blendshape of this rig
    code, out, err = run_cli(capsys, "retarget", g, "--rig", tmp_path / "rig", "--out", tmp_path / "face3")
    assert code != 0 and "are not blendshapes of the rig (first: ['mouthSmileLeft'])" in " ".join((out + err).split())
    assert not (tmp_path / "face2").exists() and not (tmp_path / "face3").exists()
    (tmp_path / "walk.bvh").write_text("HIERARCHY\n")
    code, out, err = run_cli(capsys, "retarget", f, "--rig", tmp_path / "walk.bvh", "--out", tmp_path / "face5")
    assert code != 0 and "goes onto a rig folder" in " ".join((out + err).split())


def test_a_curve_the_rig_lacks_is_dropped_when_it_never_moves(tmp_path):
    from doppel.face_performance import face_animation

    f = tmp_path / "take.csv"
    f.write_text("Timecode,BlendShapeCount,JawOpen,TongueOut\n00:00:00:58.0,2,0.1,0\n00:00:00:59.0,2,0.2,0\n"
                 "00:00:01:00.0,2,0.3,0\n")
    anim, _ = face_animation(read_arkit_csv(f), head_rig())
    np.testing.assert_allclose(anim.blendshape_weights[:, 0], [0.1, 0.2, 0.3])


def test_explain_shows_the_curves_and_where_they_go(tmp_path, capsys):
    f = tmp_path / "take.csv"
    f.write_text("Timecode,BlendShapeCount,JawOpen,TongueOut,MouthSmileLeft\n00:00:00:58.0,3,0.1,0,0.2\n"
                 "00:00:00:59.0,3,0.2,0,0.2\n00:00:01:00.0,3,0.3,0,0.2\n")
    code, out, err = run_cli(capsys, "retarget", f, "--explain")
    assert code == 0, err
    assert "3 frames at 60 fps, 3 with a face; head rotation not read" in out and "1 moving" in out
    head_rig().save(tmp_path / "rig", params={"actor_id": "virtual"})
    code, out, err = run_cli(capsys, "retarget", f, "--explain", "--rig", tmp_path / "rig", "--out", tmp_path / "o")
    said = " ".join((out + err).split())                        # a held smile the rig lacks: refused, and why
    assert code != 0 and "not blendshapes of the rig (first: ['mouthSmileLeft'])" in said
    assert "jawOpen 0.100 .. 0.300 -> rig blendshape" in said
    assert "tongueOut 0.000 .. 0.000 -> not in the rig: left out (at 0)" in said
    assert "mouthSmileLeft 0.200 .. 0.200 -> not in the rig: refused" in said and not (tmp_path / "o").exists()
