"""MediaPipe's pose-dependent bias, read on the double and taken out of the plate's landmarks.

As a head turns away, MediaPipe's face mesh misplaces landmarks systematically: the far side follows its mean face
and the near side is pulled with it (on the synthetic plate of `doppel capture plate`, the tracked face sits 0.11
inter-ocular distances off the truth at 45-60 degrees of yaw and 0.19 beyond 60, where the detector's
frame-to-frame noise is a tenth of that). Smoothing cannot remove a bias; reading it can. The double is rendered
at the tracked pose and composited over the plate (what the swap will put there), MediaPipe reads that frame, and
its landmarks minus the double's own landmarks projected by the same pose are the detector's error on a face whose
truth is known: ``bias (F, L, 2) px``. Smoothed over time (one frame's reading carries the detector's
frame-to-frame noise; the bias follows the pose, which is smooth), it is subtracted from the plate's landmarks and
the shot is solved again. It assumes the detector errs alike on the performer's face and on the double's at one
pose: measured on that plate, it takes the placement error at 45-60 / 60-90 degrees from 0.106 / 0.189 to
0.071 / 0.133 (knowing the bias exactly would give 0.054 / 0.081), jitter unchanged (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from capture.plate_io import PlateInfo
from doppel.face_swap.double import FaceDouble

__all__ = ["rendered_landmark_bias", "smooth_over_time", "nearest_face"]

Progress = Callable[[str, int, int], None]
BIAS_SUPERSAMPLE = 1    # the double is drawn for the detector at one sample per pixel (the comp uses 2)


def smooth_over_time(values: np.ndarray, sigma: float) -> np.ndarray:
    """values (F, ...) with NaN rows or entries where unknown -> (F, ...) Gaussian-weighted means over frames
    (sigma in frames), every entry filled from its neighbours in time; 0 where no frame within reach has one.
    sigma 0: the values with NaN as 0."""
    from scipy.ndimage import gaussian_filter1d

    v = np.asarray(values, np.float64)
    if sigma <= 0:
        return np.nan_to_num(v)
    w = np.isfinite(v).astype(np.float64)
    num = gaussian_filter1d(np.nan_to_num(v) * w, sigma, axis=0, mode="nearest")
    den = gaussian_filter1d(w, sigma, axis=0, mode="nearest")
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0.0)


def nearest_face(faces: np.ndarray, ids: np.ndarray, expected: np.ndarray) -> np.ndarray | None:
    """Of a frame's detected faces (N, 478, 2) px, the one whose landmarks ``ids`` lie nearest ``expected``
    (L, 2) px, or None when there is none within one face width of it."""
    if len(faces) == 0:
        return None
    d = [float(np.linalg.norm(f[ids] - expected, axis=-1).mean()) for f in faces]
    k = int(np.argmin(d))
    width = float(np.ptp(expected[:, 0])) if len(expected) else 0.0
    return faces[k] if d[k] <= max(width, 1.0) else None


def rendered_landmark_bias(info: PlateInfo, double: FaceDouble, track, K: np.ndarray, start: int, end: int,
                           max_faces: int = 4, progress: Progress | None = None, device: str = "cpu",
                           prefetch: int = 2, workers: int = 1, zoom: bool = True, lens=None) -> np.ndarray:
    """(F, L, 2) px, F = end - start, L = len(double.basis.ids): MediaPipe's landmarks (rows double.basis.ids)
    of each plate frame with the double drawn over it at the track's pose (`render_head`, the whole head over
    the plate), minus the double's landmarks projected by that pose; NaN where the track or the detector has no
    face. track: a `HeadTrack` of frames start..end-1; K (3, 3) the plate camera; device: where the head is
    drawn; prefetch: frames drawn ahead in background threads (``workers`` of them) while MediaPipe reads the
    current one (0: one thread; the same result for any prefetch and workers); zoom: look for small faces on
    crops as the tracking pass does (`PlateTracker`); lens: the plate's `PlateLens` (K is its), the head drawn
    and its landmarks projected through it, or None."""
    from capture.face_tracking import PlateTracker
    from capture.plate_io import iter_plate_frames
    from core import runtime
    from core.prefetch import prefetched
    from doppel.face_swap.render_head import project

    ids = double.basis.ids
    bias = np.full((end - start, len(ids), 2), np.nan)

    def draw(item):
        i, rgb = item
        f = i - start
        return _with_double(double, track, f, K, rgb, device, lens) if track.valid[f] else rgb

    with PlateTracker(max_faces=max_faces, hands=False, zoom=zoom, frames=end - start) as tracker:
        for (i, _), img in prefetched(iter_plate_frames(info, start, end), draw, prefetch, workers):
            f = i - start
            faces = tracker.process(img).faces           # every frame: the video-mode tracker's sequence is kept
            if track.valid[f]:
                R, t, w = track.rotation[f], track.translation[f], track.expression[f]
                expected = project(double.basis.points(w), R, t, K, lens)
                face = nearest_face(faces, ids, expected)
                if face is not None:
                    bias[f] = face[ids] - expected
            if progress:
                progress("detector bias", f + 1, end - start)
            if (f + 1) % runtime.RELEASE_EVERY_FRAMES == 0:
                runtime.release_freed_memory()     # the heads drawn here fragment the heap as the comp's do
    return bias


def _with_double(double: FaceDouble, track, f: int, K: np.ndarray, rgb: np.ndarray, device: str, lens=None
                 ) -> np.ndarray:
    """The plate frame rgb (H, W, 3) uint8 with the double's head drawn over it at the track's pose of frame f
    (one sample per pixel, feathered by its coverage); the frame itself when the head is off-frame."""
    from doppel.face_swap.render_head import head_box, render_head
    from neural_render.face_composite import blend_feather, to_uint8

    R, t, w = track.rotation[f], track.translation[f], track.expression[f]
    box = head_box(double, R, t, w, K, rgb.shape[1], rgb.shape[0], lens=lens)
    if box is None:
        return rgb
    fg, a = render_head(double, R, t, w, K, box, supersample=BIAS_SUPERSAMPLE, device=device, lens=lens)
    x0, y0, x1, y1 = box
    img = rgb.copy()
    img[y0:y1 + 1, x0:x1 + 1] = to_uint8(blend_feather(fg, rgb[y0:y1 + 1, x0:x1 + 1], a))
    return img
