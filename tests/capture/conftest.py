"""A tiny real-looking capture: a printed portrait photo (matplotlib's grace_hopper.jpg, which ships with
mediapipe's dependency matplotlib) standing in the scene, seen by calibrated cameras. A flat photo
is rendered exactly by a homography, so the 3D position of every face landmark is known: it lies on
the photo's plane."""

from pathlib import Path

import numpy as np
import pytest

from capture.npcam import PinholeNP as Camera
from capture.session import write_session
from doppel.synthetic_capture import intrinsics, render_plane

PHOTO_WIDTH_M = 0.5


def portrait_rgb() -> np.ndarray:
    import cv2

    from capture.landmarks import grace_hopper_path

    p = grace_hopper_path()
    assert p is not None, "matplotlib's sample portrait is missing (matplotlib is a dependency of mediapipe)"
    return cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)


def photo_pose() -> np.ndarray:
    """(4, 4) photo plane -> world: centred at (0, 1.6, 0), facing +Z, upright."""
    tex = portrait_rgb()
    h_m = PHOTO_WIDTH_M * tex.shape[0] / tex.shape[1]
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])  # plane x = world x, plane y (rows, down) = world -y
    T[:3, 3] = [-PHOTO_WIDTH_M / 2, 1.6 + h_m / 2, 0.0]
    return T


def portrait_cameras(n=4, size=384) -> list[Camera]:
    K = intrinsics(size, size, 40.0)
    cams = []
    for i in range(n):
        az = np.radians(-24 + 48 * i / max(1, n - 1))
        eye = [1.1 * np.sin(az), 1.6 + 0.1 * (i % 2), 1.1 * np.cos(az)]
        cams.append(Camera.look_at(f"cam{i:02d}", eye, [0, 1.6, 0], K, size, size))
    return cams


def render_portrait(cams) -> dict[str, np.ndarray]:
    tex = portrait_rgb()
    T = photo_pose()
    return {c.name: render_plane(tex, PHOTO_WIDTH_M / tex.shape[1], c, T, supersample=2, background=(70, 80, 90))
            for c in cams}


@pytest.fixture(scope="session")
def portrait_session(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("portrait") / "session"
    cams = portrait_cameras()
    write_session(root, cams, render_portrait(cams))
    return root
