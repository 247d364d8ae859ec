"""Landmarks steadied by optical flow: the flow of a known sub-pixel shift, the fusion against a dense solver."""

import cv2
import numpy as np

from capture.landmark_flow import drop_disagreeing_flow, flow_window, fuse_flow, landmark_flow


def _photo(size=256):
    import skimage.data

    return cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY), (size, size),
                      interpolation=cv2.INTER_AREA)


def test_flow_of_a_subpixel_shift_is_recovered_and_a_cut_is_refused():
    img = _photo()
    shift = np.array([1.7, -0.6])
    moved = cv2.warpAffine(img, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (256, 256),
                           flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    rng = np.random.default_rng(0)
    pts = rng.uniform(60, 120, (40, 2))                # the astronaut's face and helmet: textured
    d = landmark_flow(img, moved, pts, iod_px=40)
    ok = np.isfinite(d).all(1)
    assert ok.mean() > 0.8
    err = np.abs(d[ok] - shift)
    assert err.max() < 0.3 and err.mean() < 0.06 and np.abs(np.median(d[ok], 0) - shift).max() < 0.05
    cut = np.roll(_photo()[::-1], 37, axis=1)          # another picture: the forward-backward check fails
    assert np.isfinite(landmark_flow(img, cut, pts, iod_px=40)).all(1).mean() < 0.3
    assert np.isnan(landmark_flow(img, moved, np.full((5, 2), np.nan), 40)).all()
    assert flow_window(50) == 19 and flow_window(5) == 9 and flow_window(1000) == 41


def _dense_solution(m, d, w):
    """The same least squares, solved densely by numpy (one landmark coordinate): rows for every detection
    and every finite flow."""
    F = len(m)
    rows, rhs = [], []
    for f in range(F):
        if np.isfinite(m[f]):
            r = np.zeros(F)
            r[f] = 1
            rows.append(r)
            rhs.append(m[f])
    for f in range(1, F):
        if np.isfinite(d[f]):
            r = np.zeros(F)
            r[f], r[f - 1] = np.sqrt(w), -np.sqrt(w)
            rows.append(r)
            rhs.append(np.sqrt(w) * d[f])
    return np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]


def test_fusion_matches_a_dense_solver_and_removes_detector_noise():
    rng = np.random.default_rng(1)
    F, N = 60, 5
    t = np.arange(F)
    truth = np.stack([100 + 20 * np.sin(t / 9)[:, None] + 0.8 * np.sin(2.9 * t)[:, None] + np.arange(N),
                      80 + 0.1 * t[:, None] + 0.6 * np.cos(2.3 * t)[:, None] + 0 * np.arange(N)], -1)  # (F, N, 2)
    det = truth + rng.normal(0, 1.0, truth.shape)                    # MediaPipe: right on average, noisy
    flow = np.full_like(truth, np.nan)
    flow[1:] = np.diff(truth, axis=0) + rng.normal(0, 0.05, truth[1:].shape)   # flow: precise motion
    flow[30, 2] = np.nan                                             # a failed flow decouples two frames
    fused = fuse_flow(det, flow, 3.0)
    for p, c in ((0, 0), (2, 1), (4, 0)):
        np.testing.assert_allclose(fused[:, p, c], _dense_solution(det[:, p, c], flow[:, p, c], 3.0), atol=1e-6)

    def jitter(x):
        return np.sqrt((((x - truth)[2:] - 2 * (x - truth)[1:-1] + (x - truth)[:-2]) ** 2).sum(-1).mean())

    assert jitter(fused) < 0.25 * jitter(det)                        # the shake kept, the noise gone
    assert np.sqrt(((fused - truth) ** 2).sum(-1).mean()) < 0.7 * np.sqrt(((det - truth) ** 2).sum(-1).mean())
    np.testing.assert_array_equal(fuse_flow(det, flow, 0.0), det)
    gap = det.copy()
    gap[10:12] = np.nan                                              # frames without a face stay without
    out = fuse_flow(gap, flow, 3.0)
    assert np.isnan(out[10:12]).all() and np.isfinite(out[:10]).all() and np.isfinite(out[12:]).all()


def test_a_flow_that_disagrees_with_the_next_detection_is_dropped():
    prev = np.random.default_rng(2).uniform(50, 150, (478, 2))
    flow = np.full_like(prev, 1.0)
    np.testing.assert_array_equal(drop_disagreeing_flow(prev, flow, prev + 1.5, iod_px=50), flow)   # noise
    assert np.isnan(drop_disagreeing_flow(prev, flow, prev + 40.0, iod_px=50)).all()   # another face
    assert np.isnan(drop_disagreeing_flow(prev, flow, np.full_like(prev, np.nan), iod_px=50)).all()  # none
