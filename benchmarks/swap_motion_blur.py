"""A swap into a motion-blurred plate: the double's head drawn sharp, or over the plate camera's shutter.

A `doppel capture plate --shutter 180` plate (the face smeared where the head turns fast; its ground truth
blurred alike) is swapped twice with the same settings, ``--shutter 0`` (the head drawn sharp, the default) and
``--shutter 180``. Per head-speed tercile (the ground truth's landmarks' mean motion a frame, px), inside the
ground truth's face mask (eroded 2 px): the **blur anisotropy** (mean Sobel gradient magnitude along the face's
motion over that across it: below 1 where the shutter smeared the face along its motion; the double's face and
the ground truth's differ in texture and shading, so the measure is their ratio, |output / ground truth - 1|, and
not a difference of images), the mean absolute difference of the two gradient magnitudes (8-bit levels) and the
PSNR; and each route's frames per second.

    PYTHONPATH=. python benchmarks/swap_motion_blur.py [--plate-dir DIR] [--frames 48] [--size 640x360]
        [--samples 8] [--head-samples 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import doppel  # noqa: F401  (Doppel's process tuning before torch)


def frame_scores(out_frames: list, gt_dir: Path, lm):
    """(F, 4): per frame (blur anisotropy of the output, of the ground truth, gradient difference, PSNR) inside
    the ground truth's face mask; NaN rows where the face is too small or does not move."""
    import cv2
    import numpy as np

    rows = []
    for f in range(len(lm)):
        mot = (lm[min(f + 1, len(lm) - 1)] - lm[max(f - 1, 0)]).mean(0)
        mask = cv2.imread(str(gt_dir / "masks" / f"face_{f:06d}.png"), cv2.IMREAD_GRAYSCALE) > 127
        mask = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if mask.sum() < 50 or np.linalg.norm(mot) < 1e-6:
            rows.append((np.nan,) * 4)
            continue
        d = mot / np.linalg.norm(mot)
        gt = cv2.imread(str(gt_dir / "frames" / f"{f:06d}.png"))
        (ao, go), (ag, gg) = anisotropy(out_frames[f], mask, d), anisotropy(gt, mask, d)
        mse = ((out_frames[f].astype(np.float64) - gt) ** 2)[mask].mean()
        rows.append((ao, ag, np.abs(go - gg)[mask].mean(), 10 * np.log10(255 ** 2 / mse)))
    return np.array(rows)


def anisotropy(img, mask, d):
    """(mean gradient along d over across d inside mask, (H, W) gradient magnitude) of an (H, W, 3) uint8 image."""
    import cv2
    import numpy as np

    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)
    gx, gy = cv2.Sobel(grey, cv2.CV_64F, 1, 0), cv2.Sobel(grey, cv2.CV_64F, 0, 1)
    along, across = np.abs(gx * d[0] + gy * d[1]), np.abs(gy * d[0] - gx * d[1])
    return along[mask].mean() / across[mask].mean(), np.hypot(gx, gy)


def swap_route(plate_dir: Path, double, work: Path, shutter: float, head_samples: int):
    """(output frames (list of (H, W, 3) uint8 BGR), frames / s) of one swap of the plate's frame folder."""
    import cv2

    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.swap import SwapConfig

    out = work / f"shutter{shutter:g}"
    t0 = time.perf_counter()
    res = swap_plate(plate_dir / "plate" / "frames", double, out,
                     SwapConfig(shutter_deg=shutter, shutter_samples=head_samples))
    fps = len(res.frames) / (time.perf_counter() - t0)
    return [cv2.imread(str(p)) for p in sorted(out.glob("*.png"))], fps


def main() -> None:
    import cv2
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plate-dir", type=Path, default=None)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--samples", type=int, default=8, help="the plate's shutter samples")
    ap.add_argument("--head-samples", type=int, default=6, help="the swap's head renders over the shutter")
    args = ap.parse_args()
    from benchmarks.plate_runs import default_double, plate_folder

    work = Path(tempfile.mkdtemp(prefix="swap_blur_"))
    plate = plate_folder(args.plate_dir, work, "--frames", str(args.frames), "--size", args.size, "--shutter", "180",
                         "--shutter-samples", str(args.samples))
    ann = np.load(plate / "ground_truth" / "annotations.npz")
    n = len(ann["head_ypr_deg"])
    double = default_double(work)
    lm = ann["landmarks2d"]
    speed = np.array([np.linalg.norm(lm[min(f + 1, n - 1)] - lm[max(f - 1, 0)], axis=-1).mean() / 2
                      for f in range(n)])
    scores, fps = {}, {}
    for shutter in (0.0, 180.0):
        frames, fps[shutter] = swap_route(plate, double, work, shutter, args.head_samples)
        scores[shutter] = frame_scores(frames, plate / "ground_truth", lm)
    plate_frames = [cv2.imread(str(plate / "plate" / "frames" / f"{f:06d}.png")) for f in range(n)]
    own = frame_scores(plate_frames, plate / "ground_truth", lm)
    ok = np.isfinite(scores[0.0][:, 0])
    terciles = np.percentile(speed[ok], [33.3, 66.7])
    print(f"plate {plate}: {n} frames, {ok.sum()} scored; head speed terciles {terciles.round(1)} px a frame")
    print("speed (px/frame)     n   anisotropy: GT  plate  sharp head  blurred head   |out/GT - 1|: sharp -> "
          "blurred   gradient diff    PSNR")
    for k in range(3):
        sel = ok & (np.digitize(speed, terciles) == k)
        s, b, p = scores[0.0][sel], scores[180.0][sel], own[sel]
        gt = s[:, 1]
        print(f"{k + 1}/3 ({speed[sel].mean():4.1f})        {sel.sum():3d}               {gt.mean():.3f}  "
              f"{p[:, 0].mean():.3f}  {s[:, 0].mean():.3f}       {b[:, 0].mean():.3f}          "
              f"{np.abs(s[:, 0] / gt - 1).mean():.3f} -> {np.abs(b[:, 0] / gt - 1).mean():.3f}       "
              f"{s[:, 2].mean():5.2f} -> {b[:, 2].mean():5.2f}   {s[:, 3].mean():.2f} -> {b[:, 3].mean():.2f}")
    print(f"frames/s: sharp head {fps[0.0]:.2f}, blurred head ({args.head_samples} renders) {fps[180.0]:.2f}")


if __name__ == "__main__":
    main()
