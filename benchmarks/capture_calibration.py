"""ChArUco rig calibration from synthetic renders with known cameras (issue 5's Measure item):
8 cameras, 10 board poses, 800x600, lens distortion, 2 grey levels of pixel noise. Prints per-camera
focal error (%), camera-centre error (mm) and RMS (px), and the time of each step.

The world frame of the calibration is the board at the reference moment; the true cameras are
expressed in that same frame through the known board pose (no fitted alignment). Detection + calibration is
timed twice: idle, and with one core kept busy by a process the benchmark starts and stops."""

import sys
import tempfile
import time
from pathlib import Path

import _contention  # first third-party import: Doppel's core before torch (benchmarks/_contention.py)
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(2)

from capture.charuco import calibrate_rig_from_folder  # noqa: E402
from capture.npcam import as_np  # noqa: E402
from doppel.synthetic_capture import board_calibration_rig, write_board_rig_images  # noqa: E402


def main(n_cameras=8, n_poses=10, seed=0):
    rig = board_calibration_rig(n_cameras=n_cameras, n_poses=n_poses, seed=seed, distortion=True)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        write_board_rig_images(rig, d, supersample=3, noise_std=2.0, seed=seed)
        t_render = time.perf_counter() - t
        t = time.perf_counter()
        res = calibrate_rig_from_folder(d, rig.spec)
        t_cal = time.perf_counter() - t
        with _contention.busy_core():
            t = time.perf_counter()
            calibrate_rig_from_folder(d, rig.spec)
            t_busy = time.perf_counter() - t
    T_wb = rig.board_poses[res.reference[1]]
    fe, ce, rms = [], [], []
    print(f"{'camera':8s} {'fx err %':>9s} {'fy err %':>9s} {'centre mm':>10s} {'RMS px':>7s} views")
    for est, true in zip(map(as_np, res.cameras), rig.cameras, strict=True):
        c_true = (np.linalg.inv(T_wb) @ np.append(true.center, 1))[:3]
        fe.append(100 * max(abs(est.K[0, 0] / true.K[0, 0] - 1), abs(est.K[1, 1] / true.K[1, 1] - 1)))
        ce.append(1000 * np.linalg.norm(est.center - c_true))
        rms.append(res.rms[est.name])
        fx, fy = 100 * (est.K[0, 0] / true.K[0, 0] - 1), 100 * (est.K[1, 1] / true.K[1, 1] - 1)
        print(f"{est.name:8s} {fx:9.3f} {fy:9.3f}"
              f" {ce[-1]:10.2f} {rms[-1]:7.3f} {len(res.views_used[est.name])}")
    print(f"max focal error {max(fe):.3f} % (target < 0.3 %), max camera-centre error {max(ce):.2f} mm "
          f"(target < 2 mm), max RMS {max(rms):.3f} px (target < 0.5 px)")
    print(f"outlier views left out: {len(res.outlier_views)}; views without detection: "
          f"{sum(len(v) for v in res.missing_views.values())}")
    print(f"render {t_render:.1f} s, detection + calibration {t_cal:.1f} s idle, {t_busy:.1f} s with one core busy "
          f"({t_busy / t_cal:.1f}x) ({n_cameras} cameras x {n_poses} poses); load average {_contention.load_average()}")


if __name__ == "__main__":
    main()
