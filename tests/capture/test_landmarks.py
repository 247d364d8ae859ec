"""MediaPipe landmarks on a real portrait photo (and views of it), the content-hash cache, the head-crop
path for small faces, and a picture with no person."""

import numpy as np
import pytest

from capture.landmarks import N_FACE, N_POSE, LandmarkDetector, grace_hopper_path
from tests.capture.conftest import portrait_rgb


@pytest.fixture(scope="module")
def detector():
    with LandmarkDetector(hands=False) as d:
        yield d


def test_portrait_face_pose_mask(detector):
    lm = detector.detect(portrait_rgb())
    assert lm.face.shape == (N_FACE, 2) and lm.pose.shape == (N_POSE, 2)
    assert lm.has_face and lm.has_pose and not lm.face_from_crop
    # the face lies in the middle of the photo, below the cap; nose tip (face mesh 1) near the pose nose (0)
    assert 180 < lm.face[1, 0] < 330 and 180 < lm.face[1, 1] < 330
    assert np.linalg.norm(lm.face[1] - lm.pose[0]) < 30  # two models, ~20 px apart on this 512 px photo
    assert lm.pose_conf[0] > 0.9
    # the mask covers the person, not the flag in the top-left corner
    assert lm.mask[int(lm.face[1, 1]), int(lm.face[1, 0])] > 0.5
    assert lm.mask[:60, :60].mean() < 0.3


def test_no_person(detector):
    rng = np.random.default_rng(0)
    lm = detector.detect(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    assert not lm.has_face and not lm.has_pose and lm.n_hands() == 0
    assert np.isnan(lm.face).all() and lm.mask.shape == (96, 128)


def test_cache_by_content(tmp_path):
    import cv2

    p = tmp_path / "a.png"
    cv2.imwrite(str(p), cv2.cvtColor(portrait_rgb(), cv2.COLOR_RGB2BGR))
    with LandmarkDetector(cache_dir=tmp_path / "cache", hands=False) as d:
        a = d.detect_file(p)
        assert d.cache_hits == 0 and len(list((tmp_path / "cache").glob("*.npz"))) == 1
        # same bytes under another name: a cache hit, same result
        q = tmp_path / "b.png"
        q.write_bytes(p.read_bytes())
        b = d.detect_file(q)
        assert d.cache_hits == 1
        np.testing.assert_array_equal(a.face, b.face)
    # another parameter set is another key
    with LandmarkDetector(cache_dir=tmp_path / "cache", hands=False, face=False) as d:
        c = d.detect_file(p)
        assert d.cache_hits == 0 and not c.has_face
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with LandmarkDetector(cache_dir=tmp_path / "cache") as d, pytest.raises(ValueError, match="bad.png"):
        d.detect_file(tmp_path / "bad.png")


def test_head_crop_maps_back(detector):
    """A face too small for the short-range face detector is found on a crop around the pose's head."""
    import cv2

    full = detector.detect(portrait_rgb())
    img = portrait_rgb()
    s = 0.3
    small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    canvas = np.full((640, 640, 3), 80, np.uint8)
    oy, ox = 300, 250
    canvas[oy:oy + small.shape[0], ox:ox + small.shape[1]] = small
    fake = detector.detect(canvas)
    # hand the crop path the (scaled) pose of the full image, as if the pose model had found it
    fake.pose = full.pose * s + [ox, oy]
    fake.pose_conf = full.pose_conf
    face = detector._face_from_head_crop(canvas, fake)
    assert face is not None
    expect = full.face * s + [ox, oy]
    assert np.median(np.linalg.norm(face - expect, axis=1)) < 1.5  # px in the small face (~40 px wide)


def test_grace_hopper_is_available():
    assert grace_hopper_path() is not None
