"""Small faces in a plate: how often the swap's tracker finds the face, and how well, as the face gets smaller.

MediaPipe's face mesh finds faces with a short-range detector that sees the whole frame at 128 px, so faces in
wide shots are missed; `capture.face_tracking.PlateTracker` then looks again on crops (around the face of the frame
before, else around the full-range detector's boxes). This script puts the astronaut (scikit-image) into a
1920x1080 frame at several sizes, moves it by `plate_from_still`'s smooth warps (24 frames), and runs the tracker
with and without the crops in the same run. Reference landmarks: MediaPipe on the still itself at 512 px
(single-image mode), carried into every frame through the known warp; error = mean distance over the 468 mesh
points / the reference's inter-ocular distance, over the frames where a face was found.

    PYTHONPATH=. python benchmarks/small_faces.py [--frames 24] [--heights 1080,972,864,540,360,270,216,180,144]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

W, H = 1920, 1080


def reference_still_landmarks(still: np.ndarray) -> np.ndarray:
    """(478, 2) px (Doppel pixels) of MediaPipe's face mesh on the still, single-image mode."""
    from capture.landmarks import LandmarkDetector

    with LandmarkDetector(pose=False, hands=False, mask=False) as det:
        res = det.detect(still)
    if not res.has_face:
        raise RuntimeError("no face on the still itself")
    return res.face


def frames_and_reference(height: int, frames: int, still: np.ndarray, ref_still: np.ndarray):
    """(plate frames (F, H, W, 3) uint8, reference landmarks (F, 478, 2) px): the still ``height`` px tall in the
    middle of a grey W x H frame, moved by `plate_from_still`."""
    import cv2

    from doppel.face_swap.stills import plate_from_still, still_warps

    small = cv2.resize(still, (height, height), interpolation=cv2.INTER_AREA)
    canvas = np.full((H, W, 3), 60, np.uint8)
    x0, y0 = (W - height) // 2, (H - height) // 2
    canvas[y0:y0 + height, x0:x0 + height] = small
    s = height / still.shape[0]
    on_canvas = ref_still * s + np.array([x0, y0])          # Doppel px (pixel centres at +0.5) scale the same way
    plate = np.stack(list(plate_from_still(canvas, frames, seed=1, strength=0.5)))
    ref = []
    for M in still_warps(W, H, frames, seed=1, strength=0.5):
        p = np.c_[on_canvas - 0.5, np.ones(len(on_canvas))] @ np.linalg.inv(M).T   # canvas index -> frame index
        ref.append(p[:, :2] / p[:, 2:] + 0.5)
    return plate, np.stack(ref)


def track(plate: np.ndarray, zoom: bool) -> tuple[np.ndarray, float, int]:
    """(landmarks (F, 478, 2) px, NaN where no face; ms per frame; frames found on crops, forwards). With zoom, as
    the swap's tracking pass does it: crops, and the frames before the first face found tracked back from it
    (`capture.face_backfill`); without, the face mesh alone."""
    from capture.face_backfill import Backfill
    from capture.face_tracking import PlateTracker

    out = np.full((len(plate), 478, 2), np.nan)
    back = Backfill(lambda: PlateTracker(max_faces=1, hands=False, lost=True)) if zoom else None
    t = time.perf_counter()
    with PlateTracker(max_faces=1, hands=False, zoom=zoom) as tracker:
        for i, rgb in enumerate(plate):
            face = tracker.process(rgb).face(0)
            if face is not None:
                out[i] = face
            if back is not None and face is None:
                back.faceless(i, rgb)
            elif back is not None:
                for g, r, _ in back.found(i, rgb):
                    out[g] = r.face(0)
        zoomed = tracker.zoomed
    return out, 1000 * (time.perf_counter() - t) / len(plate), zoomed


def error_iod(found: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(mean error, jitter) / IOD over the 468 mesh points: the mean distance to the reference over the frames
    with a face, and the RMS of the second difference over time of (found - reference) where three frames in a
    row have one (the issue's jitter measure)."""
    from reconstruction.head_tracking import inter_ocular

    d = (found[:, :468] - ref[:, :468]) / inter_ocular(ref)[:, None, None]
    ok = np.isfinite(d).all(axis=(1, 2))
    if not ok.any():
        return float("nan"), float("nan")
    err = float(np.linalg.norm(d[ok], axis=-1).mean())
    dd = d[2:] - 2 * d[1:-1] + d[:-2]
    three = ok[2:] & ok[1:-1] & ok[:-2]
    jit = float(np.sqrt((dd[three] ** 2).sum(-1).mean())) if three.any() else float("nan")
    return err, jit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--heights", default="1080,972,864,540,360,270,216,180,144",
                    help="heights (px) of the astronaut photo in the 1920x1080 frame")
    args = ap.parse_args()
    import skimage.data

    from reconstruction.head_tracking import inter_ocular

    still = skimage.data.astronaut()
    ref_still = reference_still_landmarks(still)
    print(f"# {platform.node()}, {time.strftime('%Y-%m-%d %H:%M %Z')}; {args.frames}-frame {W}x{H} plates")
    print("| photo height px | face width px | IOD px | found, whole frame | found, with crops | error / IOD, whole "
          "frame / crops | jitter / IOD, whole frame / crops | ms/frame whole / crops |")
    print("|---|---|---|---|---|---|---|---|")
    for h in (int(x) for x in args.heights.split(",")):
        plate, ref = frames_and_reference(h, args.frames, still, ref_still)
        width = float(np.ptp(ref[0, :468, 0]))
        rows = {z: track(plate, z) for z in (False, True)}
        n = len(plate)
        found = {z: int(np.isfinite(rows[z][0]).all(axis=(1, 2)).sum()) for z in rows}
        errs = [error_iod(rows[z][0], ref) for z in (False, True)]
        print(f"| {h} | {width:.0f} | {inter_ocular(ref[0]):.0f} | {found[False]}/{n} | {found[True]}/{n} "
              f"({rows[True][2]} on crops) | {errs[0][0]:.3f} / {errs[1][0]:.3f} | "
              f"{errs[0][1]:.3f} / {errs[1][1]:.3f} | "
              f"{rows[False][1]:.0f} / {rows[True][1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
