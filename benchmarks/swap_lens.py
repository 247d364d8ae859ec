"""A swap through a distorted plate lens: the double's face placed with and without the lens's calibration.

A `doppel capture plate` plate shot through a lens with distortion (``--distortion``, the head framed off centre
with ``--offset``, where a lens bends most) is swapped three times: as a pinhole of the lens's focal length
(``--focal-px``, what a swap without ``--plate-camera`` assumes), through the lens (``--plate-camera
plate/lens.json``) and through its ST-maps (``--plate-stmaps``, the maps the lens route wrote). Each route's
placement is where it drew the double's landmarks (its track's projection, through the lens when it had one)
against the ground truth's exact landmarks, in inter-ocular distances, per |yaw| bin, for the whole face and for
the landmarks nearest the frame's edge; no detector reads the outputs.

    PYTHONPATH=. python benchmarks/swap_lens.py [--plate-dir DIR] [--frames 48] [--size 960x540]
        [--fov 90] [--distance 0.55] [--distortion=-0.22,0.05] [--offset 0.65,0.5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import doppel  # noqa: F401  (Doppel's process tuning before torch)

YAW_BINS = ((0, 30), (30, 60), (60, 90))


def placed_landmarks(double, tracks: Path, lens):
    """(F, 478, 2) px where the route drew the double's landmarks (NaN: no face, or no such landmark)."""
    import numpy as np

    from doppel.face_swap.render_head import project

    t = np.load(tracks)
    out = np.full((len(t["valid"]), 478, 2), np.nan)
    for f in np.flatnonzero(t["valid"]):
        out[f, double.basis.ids] = project(double.basis.points(t["expression"][f]), t["rotation"][f],
                                           t["translation"][f], t["K"], lens)
    return out


def errors(placed, ann, ids):
    """(whole-face error (F,), edge-side error (F,)) in inter-ocular distances: the mean over visible landmarks,
    and over the quarter of them farthest from the frame's centre."""
    import numpy as np

    from reconstruction.head_tracking import inter_ocular

    exact, vis = ann["landmarks2d"][:, ids], ann["landmarks_visible"][:, ids]
    d = np.linalg.norm(placed[:, ids] - exact, axis=-1) / inter_ocular(ann["landmarks2d"])[:, None]
    whole, edge = np.full(len(d), np.nan), np.full(len(d), np.nan)
    centre = np.array([ann["size"][0] / 2, ann["size"][1] / 2])
    for i in range(len(d)):
        ok = vis[i] & np.isfinite(d[i])
        if ok.sum() >= 8:
            whole[i] = d[i][ok].mean()
            r = np.linalg.norm(exact[i][ok] - centre, axis=-1)
            edge[i] = d[i][ok][r >= np.quantile(r, 0.75)].mean()
    return whole, edge


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plate-dir", type=Path, help="a `doppel capture plate` folder (default: made here)")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--fov", type=float, default=90.0)
    ap.add_argument("--distance", type=float, default=0.55)
    ap.add_argument("--distortion", default="-0.22,0.05")
    ap.add_argument("--offset", default="0.65,0.5")
    args = ap.parse_args()

    import numpy as np

    from benchmarks.plate_runs import default_double, plate_folder
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.plate_lens import plate_lens_from_calibration, plate_lens_from_st_maps
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig

    work = Path(tempfile.mkdtemp(prefix="swap_lens_"))
    plate_dir = plate_folder(args.plate_dir, work, "--frames", str(args.frames), "--size", args.size, "--fov",
                             str(args.fov), "--distance", str(args.distance), "--distortion", args.distortion,
                             "--offset", args.offset, "--camera", "handheld")
    summary = json.loads((plate_dir / "ground_truth" / "annotations.json").read_text())
    ann = dict(np.load(plate_dir / "ground_truth" / "annotations.npz"))
    ann["size"] = summary["size"]
    lens = plate_lens_from_calibration(plate_dir / "plate" / "lens.json")
    print(f"plate: {summary['size'][0]}x{summary['size'][1]}, {summary['frames']} frames; lens {lens.describe()}")
    double = default_double(work, int(summary["double_seed"]))
    plate = plate_dir / "plate" / "plate.mp4"
    yaw = np.abs(ann["head_ypr_deg"][:, 0])
    ids = double.basis.ids
    swap_plate(plate, double, work / "warmup.mp4", SwapConfig(end=4), force=True)   # MediaPipe, torch, numba
    print(f"{'route':<26}{'|yaw|':>7}{'n':>4}{'face err':>10}{'edge err':>10}{'frames/s':>10}")
    maps = None
    for label, cfg, drawn_through in (("pinhole (--focal-px)", SwapConfig(focal_px=lens.focal_px), None),
                                      ("lens (--plate-camera)", SwapConfig(lens=lens), lens),
                                      ("ST-maps (--plate-stmaps)", None, None)):
        if cfg is None:               # the lens's ST-maps, as the lens route's side folder holds them
            folder = side_folder(work / "lens.mp4") / "lens"
            maps = plate_lens_from_st_maps(folder / f"{lens.name}_undistort.exr",
                                           folder / f"{lens.name}_redistort.exr", lens.focal_px)
            cfg, drawn_through = SwapConfig(lens=maps), maps
        out = work / f"{label.split()[0].replace('-', '')}.mp4"
        t0 = time.perf_counter()
        res = swap_plate(plate, double, out, cfg, force=True)
        fps = len(res.frames) / (time.perf_counter() - t0)
        whole, edge = errors(placed_landmarks(double, side_folder(out) / "tracks.npz", drawn_through), ann, ids)
        for lo, hi in (*YAW_BINS, (0, 90)):
            sel = (yaw >= lo) & (yaw < hi) & np.isfinite(whole)
            if sel.any():
                print(f"{label:<26}{f'{lo}-{hi}':>7}{int(sel.sum()):>4}{np.mean(whole[sel]):>10.4f}"
                      f"{np.mean(edge[sel]):>10.4f}{fps:>10.2f}", flush=True)
    print(f"work: {work}")


if __name__ == "__main__":
    main()
