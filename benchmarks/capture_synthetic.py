"""Issue 5's Measure items on the synthetic capture: the virtual actor rendered from 16 cameras at
1024x1024 (neural_render rasterizer), then `ingest` (MediaPipe face/pose/hands + masks, robust
triangulation, QC). Prints: which views MediaPipe finds a face / a body in; median and 95th-percentile
reprojection error of the triangulated face and body landmarks (px); 3D error of the triangulated body
landmarks against the ground-truth COCO keypoints from anny's regressor (mm); render and ingest times, and the
render and ingest timed again with one core kept busy by a process the benchmark starts and stops.

Usage: python benchmarks/capture_synthetic.py [N_CAMERAS] [SIZE] [OUT_DIR]"""

import json
import sys
import tempfile
import time
from pathlib import Path

import _contention  # first third-party import: Doppel's core before torch (benchmarks/_contention.py)
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(2)

from capture.ingest import IngestConfig, ingest  # noqa: E402
from capture.landmarks import POSE_NAMES  # noqa: E402
from doppel.synthetic_capture import COCO_TO_MEDIAPIPE_POSE, synthesize_capture  # noqa: E402


def main(n=16, size=1024, out=None):
    out = Path(out or tempfile.mkdtemp())
    t = time.perf_counter()
    syn = synthesize_capture(out, n_cameras=n, size=size)
    t_synth = time.perf_counter() - t
    t = time.perf_counter()
    res = ingest(syn.session_dir, out / "ingest", IngestConfig())
    t_ingest = time.perf_counter() - t
    t = time.perf_counter()
    res2 = ingest(syn.session_dir, out / "ingest", IngestConfig())
    t_cached = time.perf_counter() - t
    fr = res.triangulated["frames"]["0"]
    print(f"{n} cameras at {size}x{size}; out {out}")
    print("views with a face:", [q.camera for q in res.qc if q.face])
    print("views with a body:", [q.camera for q in res.qc if q.pose])
    print("views with a hand:", [q.camera for q in res.qc if q.hands])
    print("face from the head crop:", [c for c, lm in res.landmarks["0"].items() if lm.face_from_crop])
    for part in ("face", "pose", "hands"):
        e = np.array([r["error_px"] for r in fr[part] if r["ok"]])
        nv = np.array([len(r["views"]) for r in fr[part] if r["ok"]])
        if len(e):
            print(f"{part:5s}: {len(e)}/{len(fr[part])} triangulated, reprojection median {np.median(e):.2f} px, "
                  f"p95 {np.percentile(e, 95):.2f} px, views used median {np.median(nv):.0f}")
        else:
            print(f"{part:5s}: none triangulated")
    gt = json.loads((syn.ground_truth_dir / "landmarks3d.json").read_text())["coco"]
    errs = {}
    for name, mp in COCO_TO_MEDIAPIPE_POSE.items():
        row = fr["pose"][mp]
        if row["ok"]:
            errs[name] = 1000 * float(np.linalg.norm(np.array(row["X"]) - np.array(gt[name])))
    v = np.array(list(errs.values()))
    print(f"body 3D error vs anny COCO keypoints ({len(v)} of {len(COCO_TO_MEDIAPIPE_POSE)}): "
          f"median {np.median(v):.1f} mm, p95 {np.percentile(v, 95):.1f} mm, max {v.max():.1f} mm")
    print("  per keypoint (mm): " + ", ".join(f"{k} {e:.0f}" for k, e in errs.items()))
    print(f"warnings: {res.warnings}")
    print(f"synthetic capture {t_synth:.1f} s (render {syn.timings['render']:.1f} s); ingest {t_ingest:.1f} s "
          f"(landmarks {res.timings['landmarks']:.1f} s, triangulation {res.timings['triangulation']:.1f} s); "
          f"ingest again with the landmark cache {t_cached:.1f} s")
    assert POSE_NAMES[0] == "nose" and res2 is not None
    with _contention.busy_core():
        t = time.perf_counter()
        syn_busy = synthesize_capture(out / "busy", n_cameras=n, size=size)
        t_synth_busy = time.perf_counter() - t
        t = time.perf_counter()
        ingest(syn_busy.session_dir, out / "busy_ingest", IngestConfig())
        t_ingest_busy = time.perf_counter() - t
    print(f"one core busy: synthetic capture {t_synth_busy:.1f} s ({t_synth_busy / t_synth:.1f}x idle), ingest "
          f"{t_ingest_busy:.1f} s ({t_ingest_busy / t_ingest:.1f}x); load average {_contention.load_average()}")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]) if a else 16, int(a[1]) if len(a) > 1 else 1024, a[2] if len(a) > 2 else None)
