"""ChArUco rig calibration with the photos read on one thread against every core (`doppel capture calibrate`'s
default since stop 72), on photos the size a stills camera writes.

Renders N cameras x P board poses (default 12 x 10, 800x600, distortion, 2 grey levels of noise; the rig of
benchmarks/capture_calibration.py), scales each photo to --width px (default 4000) and writes it as a quality-95 JPEG,
then runs `calibrate_rig_from_folder` on one thread and on every core (twice each). Prints each run's time, split
into the photos (read and searched for the board) and the rest (intrinsics, extrinsics, bundle adjustment), and
whether the calibrations are identical.

    PYTHONPATH=. python benchmarks/board_calibration_threads.py [--cameras 12] [--poses 10] [--width 4000]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _contention  # first third-party import: Doppel's core before torch (benchmarks/_contention.py)
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture.charuco import calibrate_rig_from_folder
from capture.npcam import as_np
from core.cpu_quota import usable_cores
from doppel.synthetic_capture import board_calibration_rig, write_board_rig_images


def photos(folder: Path, cameras: int, poses: int, width: int):
    """The rig's board photos under folder/CAMERA/*.jpg at ``width`` px; returns the rig."""
    import cv2

    rig = board_calibration_rig(n_cameras=cameras, n_poses=poses, seed=0, distortion=True)
    write_board_rig_images(rig, folder, supersample=3, noise_std=2.0, seed=0)
    for png in sorted(folder.glob("*/*.png")):
        img = cv2.imread(str(png))
        big = cv2.resize(img, (width, round(width * img.shape[0] / img.shape[1])), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(png.with_suffix(".jpg")), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
        png.unlink()
    return rig


def timed(folder: Path, spec, threads: int | None):
    """(result, seconds for the photos, seconds for the rest)."""
    marks = []
    t = time.perf_counter()
    res = calibrate_rig_from_folder(folder, spec, num_threads=threads,
                                    progress=lambda msg: marks.append((msg, time.perf_counter())))
    end = time.perf_counter()
    photos_done = max(when for msg, when in marks if msg.startswith("detect "))
    return res, photos_done - t, end - photos_done


def same(a, b) -> bool:
    cams = all(all(np.array_equal(getattr(x, k), getattr(y, k)) for k in ("K", "R", "t", "dist"))
               for x, y in zip(map(as_np, a.cameras), map(as_np, b.cameras), strict=True))
    return cams and a.rms == b.rms and a.views_used == b.views_used and a.missing_views == b.missing_views


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=12)
    ap.add_argument("--poses", type=int, default=10)
    ap.add_argument("--width", type=int, default=4000)
    args = ap.parse_args()
    print(_contention.machine_line(), flush=True)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        rig = photos(Path(d), args.cameras, args.poses, args.width)
        print(f"{args.cameras} cameras x {args.poses} poses at {args.width} px (JPEG) made in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        first = None
        for threads in (1, None, 1, None):
            res, t_photos, t_rest = timed(Path(d), rig.spec, threads)
            first = first or res
            print(f"{threads or usable_cores()} thread(s): {t_photos + t_rest:.1f} s (photos {t_photos:.1f} s, "
                  f"calibration {t_rest:.1f} s); max RMS {max(res.rms.values()):.3f} px; identical to the first "
                  f"run: {same(res, first)}", flush=True)
    print(f"load average {_contention.load_average()}")


if __name__ == "__main__":
    main()
