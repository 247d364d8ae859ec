"""The synthetic capture rig: a session in exactly the real format, ground truth beside it, cameras that
see the actor where the ground truth says, and MediaPipe finding a person in the renders."""

import json

import numpy as np
import pytest

from capture.npcam import as_np
from capture.session import load_session

SIZE = 320


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from doppel.synthetic_capture import synthesize_capture

    out = tmp_path_factory.mktemp("synth")
    return synthesize_capture(out, n_cameras=4, seed=0, size=SIZE, texture_size=256)


def test_session_format_and_ground_truth(synth):
    s = load_session(synth.session_dir)
    assert [c.name for c in s.cameras] == ["ring00", "ring01", "ring02", "face00"]
    assert all(c.width == SIZE and c.height == SIZE for c in s.cameras)
    gt = synth.ground_truth_dir
    assert (gt / "mesh.ply").is_file() and (gt / "params.json").is_file()
    lm = json.loads((gt / "landmarks3d.json").read_text())
    assert set(lm["coco"]) >= {"nose", "left_wrist", "right_ankle"}
    # the ground truth is not part of the session folder
    assert not any("ground_truth" in str(p) for p in synth.session_dir.rglob("*"))


def test_keypoints_project_onto_the_actor(synth):
    """Every COCO keypoint that projects into the front camera lands on the rendered actor (not backdrop)."""
    import cv2

    from doppel.synthetic_capture import BACKGROUND_SRGB

    s = load_session(synth.session_dir)
    cam = as_np(s.cameras[0])  # ring00: in front of the actor
    img = cv2.cvtColor(cv2.imread(str(s.frames["0"][cam.name])), cv2.COLOR_BGR2RGB) / 255.0
    bg = np.all(np.abs(img - np.array(BACKGROUND_SRGB)) < 2 / 255, axis=-1)
    assert 0.03 < (~bg).mean() < 0.5  # the actor fills part of the frame
    X = np.array(list(synth.keypoints3d.values()))
    uv = cam.project(X)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < SIZE) & (uv[:, 1] >= 0) & (uv[:, 1] < SIZE)
    assert inside.all()
    px = np.floor(uv).astype(int)
    on_actor = ~bg[px[:, 1], px[:, 0]]
    assert on_actor.mean() > 0.9


def test_mediapipe_sees_the_virtual_actor(synth):
    from capture.landmarks import LandmarkDetector

    s = load_session(synth.session_dir)
    with LandmarkDetector(hands=False) as det:
        front = det.detect_file(s.frames["0"][s.cameras[0].name])
        face = det.detect_file(s.frames["0"]["face00"])
    assert front.has_pose and front.pose_conf[[11, 12, 23, 24]].min() > 0.5
    assert face.has_face
    # MediaPipe's nose in the front view is within a few px of the projected ground-truth nose
    nose = as_np(s.cameras[0]).project(np.array([synth.keypoints3d["nose"]]))[0]
    assert np.linalg.norm(front.pose[0] - nose) < 6


def test_bad_arguments(tmp_path):
    from doppel.synthetic_capture import synthesize_capture

    with pytest.raises(ValueError, match="cameras must be >= 2"):
        synthesize_capture(tmp_path, n_cameras=1)
    with pytest.raises(ValueError, match="size must be >= 64"):
        synthesize_capture(tmp_path, n_cameras=4, size=10)
