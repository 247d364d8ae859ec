"""Frames the face detector loses inside a shot: passed through (``--bridge 0``) or swapped with the double's face
placed between where its neighbours put it (``--bridge 2``, the default; `doppel.face_swap.dropouts`).

A small, motion-blurred `doppel capture plate` (fast turns at 320x180 with a 180-degree shutter: where MediaPipe
drops frames) is swapped both ways. Printed: the frames each swap left unswapped; for the frames the default
bridged, the **pop**: the mean absolute difference (8-bit levels) inside the ground truth's face mask between the
output frame and the mean of its two neighbours (a face that changes identity for one frame pops), with the frame
passed through (the performer's own face) and bridged, next to the same figure over the frames the detector
found; and where the bridged frames put the double's landmarks against the ground truth's (inter-ocular
distances), next to their neighbours.

A real photograph has a face unlike the double's, where a frame passed through shows: scikit-image's astronaut
animated into a 24-frame plate (`doppel.face_swap.stills`), swapped once to read MediaPipe's landmarks, then again
from those landmarks with frames 8 and 15 taken out (as the detector drops a frame), both ways: the pop of those
frames, next to the frames with landmarks.

    PYTHONPATH=. python benchmarks/swap_dropouts.py [--plate-dir DIR] [--frames 48] [--size 320x180]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import doppel  # noqa: F401  (Doppel's process tuning before torch)


def photo_dropouts(double, work: Path) -> None:
    """The astronaut plate with frames 8 and 15 dropped from its landmarks: pop passed through and bridged."""
    import cv2
    import numpy as np
    import skimage.data

    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.stills import plate_from_still
    from doppel.face_swap.swap import SwapConfig
    from neural_render.face_composite import polygon_mask

    frames_dir = work / "astronaut"
    frames_dir.mkdir()
    still = cv2.resize(skimage.data.astronaut(), (384, 384), interpolation=cv2.INTER_AREA)
    for k, rgb in enumerate(plate_from_still(still, 24, seed=0)):
        cv2.imwrite(str(frames_dir / f"{k:06d}.png"), rgb[..., ::-1])
    swap_plate(frames_dir, double, work / "a_found", SwapConfig(debias=False))
    lm = np.load(side_folder(work / "a_found") / "tracks.npz")["landmarks"].astype(np.float32)
    lost = [8, 15]
    given = lm.copy()
    given[lost] = np.nan
    for bridge in (0, 2):
        swap_plate(frames_dir, double, work / f"a_b{bridge}", SwapConfig(debias=False, bridge=bridge), landmarks=given)

    def pop(folder, f):
        mask = polygon_mask((384, 384), lm[f])
        img = [cv2.imread(str(folder / f"{g:06d}.png")).astype(np.float64) for g in (f - 1, f, f + 1)]
        return face_difference(img[1], (img[0] + img[2]) / 2, mask)

    found = [f for f in range(1, 23) if f not in lost and f - 1 not in lost and f + 1 not in lost]
    print(f"astronaut, frames {lost} dropped: pop passed through "
          f"{np.mean([pop(work / 'a_b0', f) for f in lost]):.2f}, bridged "
          f"{np.mean([pop(work / 'a_b2', f) for f in lost]):.2f}; frames with landmarks "
          f"{np.mean([pop(work / 'a_b2', f) for f in found]):.2f} (levels, in the face)")


def face_difference(img, other, mask) -> float:
    import numpy as np

    return float(np.abs(img.astype(np.float64) - other)[mask].mean())


def main() -> None:
    import cv2
    import numpy as np

    from benchmarks.plate_runs import default_double, plate_folder
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.render_head import project
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig
    from reconstruction.head_tracking import inter_ocular

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plate-dir", type=Path, default=None)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="320x180")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="swap_dropouts_"))
    plate = plate_folder(args.plate_dir, work, "--frames", str(args.frames), "--size", args.size, "--shutter", "180",
                         "--shutter-samples", "4")
    ann = np.load(plate / "ground_truth" / "annotations.npz")
    n = len(ann["head_ypr_deg"])
    double = default_double(work)
    res = {}
    for bridge in (0, 2):
        res[bridge] = swap_plate(plate / "plate" / "frames", double, work / f"b{bridge}", SwapConfig(bridge=bridge))
    t = np.load(side_folder(work / "b2") / "tracks.npz")
    bridged = np.flatnonzero(t["face_bridged"])
    found = [f for f in range(n) if t["valid"][f] and not t["face_bridged"][f]]
    print(f"plate {plate}: {n} frames; unswapped: --bridge 0 {[q.frame for q in res[0].frames if not q.swapped]}, "
          f"--bridge 2 {[q.frame for q in res[2].frames if not q.swapped]}; bridged {bridged.tolist()}")

    def read(folder, f):
        return cv2.imread(str(folder / f"{f:06d}.png"))

    def pops(frames, folder):
        out = []
        for f in frames:
            if not 0 < f < n - 1:
                continue
            mask = cv2.imread(str(plate / "ground_truth" / "masks" / f"face_{f:06d}.png"), cv2.IMREAD_GRAYSCALE) > 127
            around = (read(folder, f - 1).astype(np.float64) + read(folder, f + 1)) / 2
            if mask.sum() >= 20:
                out.append(face_difference(read(folder, f), around, mask))
        return float(np.mean(out)) if out else float("nan")

    def placed(frames):
        errs = []
        for f in frames:
            p = project(double.basis.points(t["expression"][f]), t["rotation"][f], t["translation"][f], t["K"])
            gt, vis = ann["landmarks2d"][f][double.basis.ids], ann["landmarks_visible"][f][double.basis.ids]
            errs.append(np.linalg.norm(p - gt, axis=-1)[vis].mean() / inter_ocular(ann["landmarks2d"][f]))
        return float(np.mean(errs)) if errs else float("nan")

    neighbours = sorted({g for f in bridged for g in (f - 1, f + 1) if 0 <= g < n and g not in set(bridged)})
    print(f"pop in the face (levels): bridged frames passed through {pops(bridged, work / 'b0'):.2f}, bridged "
          f"{pops(bridged, work / 'b2'):.2f}; found frames {pops(found, work / 'b2'):.2f}")
    print(f"placement (IOD): bridged frames {placed(bridged):.4f}, their neighbours {placed(neighbours):.4f}, "
          f"all found frames {placed(found):.4f}")
    photo_dropouts(double, work)


if __name__ == "__main__":
    main()
