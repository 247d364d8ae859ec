import numpy as np

from core.conventions import ZUP_NEGY_FORWARD_TO_DOPPEL, zup_to_doppel


def test_zup_to_doppel_is_a_proper_rotation():
    R = ZUP_NEGY_FORWARD_TO_DOPPEL
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(R), 1.0)


def test_zup_to_doppel_axes():
    up_zup, forward_zup = np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])
    np.testing.assert_allclose(zup_to_doppel(up_zup), [0, 1, 0])
    np.testing.assert_allclose(zup_to_doppel(forward_zup), [0, 0, 1])
    np.testing.assert_allclose(zup_to_doppel(np.array([[1.0, 0, 0]])), [[1, 0, 0]])


def test_pixel_shift_helpers_match_opencv_projection():
    """A point on the optical axis lands on the principal point: cx in Doppel's convention is OpenCV's + 0.5."""
    import cv2

    from core.conventions import (
        doppel_to_opencv_K,
        doppel_to_opencv_pixels,
        opencv_to_doppel_K,
        opencv_to_doppel_pixels,
    )

    K = np.array([[500.0, 0, 320.0], [0, 500.0, 240.0], [0, 0, 1]])     # Doppel: centre of a 640x480 image
    Kcv = doppel_to_opencv_K(K)
    assert Kcv[0, 2] == 319.5 and Kcv[1, 2] == 239.5 and K[0, 2] == 320.0, "a copy, the input unchanged"
    np.testing.assert_array_equal(opencv_to_doppel_K(Kcv), K)
    uv_cv, _ = cv2.projectPoints(np.array([[0.0, 0.0, 2.0], [0.1, -0.05, 2.0]]), np.zeros(3), np.zeros(3), Kcv, None)
    uv = opencv_to_doppel_pixels(uv_cv.reshape(-1, 2))
    np.testing.assert_allclose(uv[0], [320.0, 240.0])
    np.testing.assert_allclose(uv[1], [320.0 + 25.0, 240.0 - 12.5])
    np.testing.assert_array_equal(doppel_to_opencv_pixels(uv), uv_cv.reshape(-1, 2))


def test_one_rotation_check():
    import roma
    import torch

    from core.conventions import ROTATION_TOL, invalid_rotations, rotation_errors

    R = roma.random_rotmat(5, generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    assert not invalid_rotations(R).any()
    assert not invalid_rotations(R.astype(np.float32)).any(), "float32 round-off is fine"
    bad = R.copy()
    bad[0] *= 1 + 3 * ROTATION_TOL           # scaled
    bad[1] = -bad[1]                         # a reflection (det -1)
    bad[2, 0, 0] = np.nan
    np.testing.assert_array_equal(invalid_rotations(bad), [True, True, True, False, False])
    orth, det = rotation_errors(R)
    assert orth.shape == (5,) and orth.max() < 1e-12 and det.max() < 1e-12


def test_affine_in_opencv_coordinates_maps_pixel_centres():
    """A 2x downscale: the Doppel pixel centre (1, 1) of the source (index 0.5 in OpenCV's) lands at the
    destination's (0.5, 0.5) (index 0)."""
    from core.conventions import doppel_to_opencv_affine

    M = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])
    Mcv = doppel_to_opencv_affine(M)
    src_cv = np.array([0.5, 0.5])                      # Doppel (1, 1)
    np.testing.assert_allclose(Mcv[:, :2] @ src_cv + Mcv[:, 2], [0.0, 0.0])
    np.testing.assert_array_equal(doppel_to_opencv_affine(np.array([[1.0, 0, 3], [0, 1.0, -2]])),
                                  [[1, 0, 3], [0, 1, -2]])
