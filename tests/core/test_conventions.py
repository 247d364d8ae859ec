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
