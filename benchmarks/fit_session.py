"""Benchmark of issue 6 (session path): score a `doppel fit SESSION --landmarks INGEST` fit folder against the
ground truth that `doppel capture synth` wrote beside the session (the fitter never reads it).

    PYTHONPATH=. python -m doppel capture synth --out W --cameras 8 --size 512 --seed 11
    PYTHONPATH=. python -m doppel capture ingest W/session --out W/ingest
    PYTHONPATH=. python -m doppel fit W/session --landmarks W/ingest --out W/fit
    PYTHONPATH=. python benchmarks/fit_session.py W

Prints the vertex-to-vertex error (mean / p95, mm) of W/fit/fit_mesh.ply against W/ground_truth/mesh.ply
(same Anny topology), per body region (vertices grouped by their dominant skinning joint), the joint position
error (the fitted parameters' joints against ground_truth/landmarks3d.json's, mean over the fitted body joints
and over all of Anny's), the expression-weight error (mean absolute over the 52 and over the actor's non-zero
ones), the reprojection error and stage times from metrics.json, and the fitted phenotype next to the true one.
When it makes the fit itself, the `doppel fit` command runs a second time with one core kept busy by a process
the benchmark starts and stops (into WORK/fit_busy; benchmarks/_contention.py) and both stage times are printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _contention  # first third-party import: Doppel's core before torch (benchmarks/_contention.py)
import numpy as np
import trimesh


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path, nargs="?",
                    help="folder with ground_truth/ and fit/ (default: make one in a temporary folder: synth "
                         "--cameras 16 --size 1024 --seed 31, ingest, fit)")
    ap.add_argument("--fit", default="fit", help="fit folder name inside WORK")
    args = ap.parse_args()
    if args.work is None:
        args.work = _make_capture_and_fit()
    gt = trimesh.load(args.work / "ground_truth" / "mesh.ply", process=False).vertices
    fit = trimesh.load(args.work / args.fit / "fit_mesh.ply", process=False).vertices
    if gt.shape != fit.shape:
        raise SystemExit(f"topologies differ: ground truth {gt.shape}, fit {fit.shape}")
    e = np.linalg.norm(fit - gt, axis=1) * 1000
    m = json.loads((args.work / args.fit / "metrics.json").read_text())
    gtp = json.loads((args.work / "ground_truth" / "params.json").read_text())
    fitp = json.loads((args.work / args.fit / "params.json").read_text())
    print(f"seed {gtp['seed']}: {gtp['n_cameras']} views at {gtp['size']} px")
    print(f"vertex error mean {e.mean():.2f} mm, p95 {np.percentile(e, 95):.2f} mm, max {e.max():.2f} mm")
    model_only = args.work / args.fit / "model_fit_mesh.ply"
    if model_only.is_file():
        e0 = np.linalg.norm(trimesh.load(model_only, process=False).vertices - gt, axis=1) * 1000
        print(f"  (model fit before silhouette detail: mean {e0.mean():.2f} mm, p95 {np.percentile(e0, 95):.2f} mm; "
              f"surface distance to the ground truth {_surface_mm(model_only, args.work):.2f} -> "
              f"{_surface_mm(args.work / args.fit / 'fit_mesh.ply', args.work):.2f} mm)")
    print(f"reprojection {m['reprojection_px']:.2f} px, views seeing the person {m['views_seeing_person']}")
    print(f"stage seconds {m['seconds']} total {sum(m['seconds'].values()):.1f} s")
    busy = args.work / f"{args.fit}_busy" / "metrics.json"
    if busy.is_file():
        mb = json.loads(busy.read_text())["seconds"]
        print(f"stage seconds with one core busy {mb} total {sum(mb.values()):.1f} s "
              f"({sum(mb.values()) / sum(m['seconds'].values()):.1f}x idle)")
    print(f"correspondences: {m.get('correspondences', 'joints')}, landmarks {m.get('landmarks')}")
    _model_figures(args.work, fitp, gtp, fit, gt)
    print("phenotype truth vs fit:", {k: (round(float(v), 3), round(fitp['shape'].get(k, float('nan')), 3))
                                      for k, v in gtp["phenotype"].items()})


def _make_capture_and_fit(seed: int = 31) -> Path:
    import subprocess
    import sys
    import tempfile

    w = Path(tempfile.mkdtemp(prefix="doppel_fit_session_"))
    run = [sys.executable, "-m", "doppel"]
    for cmd in (["capture", "synth", "--out", str(w), "--cameras", "16", "--size", "1024", "--seed", str(seed)],
                ["capture", "ingest", str(w / "session"), "--out", str(w / "ingest")],
                ["fit", str(w / "session"), "--landmarks", str(w / "ingest"), "--out", str(w / "fit")]):
        subprocess.run(run + cmd, check=True, stdout=subprocess.DEVNULL)
    with _contention.busy_core():
        subprocess.run(run + ["fit", str(w / "session"), "--landmarks", str(w / "ingest"), "--out",
                              str(w / "fit_busy")], check=True, stdout=subprocess.DEVNULL)
    print(f"load average {_contention.load_average()}")
    return w


def _surface_mm(mesh_path: Path, work: Path) -> float:
    """Mean unsigned distance (mm) of a mesh's vertices to the ground-truth surface (open3d)."""
    import open3d as o3d

    gt = trimesh.load(work / "ground_truth" / "mesh.ply", process=False)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(gt.vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(gt.faces, np.uint32)))
    v = np.asarray(trimesh.load(mesh_path, process=False).vertices, np.float32)
    return float(np.abs(scene.compute_signed_distance(o3d.core.Tensor(v)).numpy()).mean() * 1000)


REGIONS = (("hands", ("finger", "thumb", "metacarpal", "wrist", "hand")), ("feet", ("toe", "foot")),
           ("arms", ("arm", "clavicle", "shoulder")), ("legs", ("leg", "pelvis")), ("torso", ("spine", "root")))


def _region(joint: str) -> str:
    return next((r for r, keys in REGIONS if any(k in joint for k in keys)), "head")


def _model_figures(work: Path, fitp: dict, gtp: dict, fit: np.ndarray, gt: np.ndarray) -> None:
    import torch

    from reconstruction.body_models import AnnyModel, BodyParams
    from reconstruction.fitting.config import FIT_JOINTS
    from rigging import Rig

    model = AnnyModel(dtype=torch.float64)
    names = model.pose_names
    p = BodyParams(shape=torch.tensor([[fitp["shape"][n] for n in model.shape_names]], dtype=torch.float64),
                   pose=torch.tensor(fitp["pose"], dtype=torch.float64)[None],
                   root_translation=torch.tensor([fitp["root_translation"]], dtype=torch.float64),
                   expression=torch.tensor([[fitp["expression"][n] for n in model.expression_names]],
                                           dtype=torch.float64))
    with torch.no_grad():
        joints = model.forward(p).joints[0].numpy()
    gtj = json.loads((work / "ground_truth" / "landmarks3d.json").read_text())["joints"]
    je = {n: np.linalg.norm(joints[names.index(n)] - np.asarray(gtj[n])) * 1000 for n in gtj if n in names}
    body = [je[n] for n in FIT_JOINTS if n in je]
    print(f"joint error mean {np.mean(body):.2f} mm over the {len(body)} fitted body joints, "
          f"{np.mean(list(je.values())):.2f} mm over all {len(je)} joints")
    rig = Rig.from_body_model(model, None)
    dom = rig.skin_indices[np.arange(rig.num_vertices), np.argmax(rig.skin_weights, 1)]
    reg = np.array([_region(names[j]) for j in dom])
    e = np.linalg.norm(fit - gt, axis=1) * 1000
    print("vertex error by region (mean mm):", ", ".join(f"{r} {e[reg == r].mean():.1f} ({(reg == r).sum()} v)"
                                                          for r in ("head", "hands", "arms", "torso", "legs", "feet")))
    true_e = np.array([gtp["expression"].get(n, 0.0) for n in model.expression_names])
    fit_e = np.array([fitp["expression"][n] for n in model.expression_names])
    nz = true_e > 0
    pairs = ", ".join(f"{n} {t:.2f}->{f:.2f}" for n, t, f in zip(model.expression_names, true_e, fit_e, strict=True)
                      if t > 0)
    print(f"expression weight error: mean abs {np.abs(fit_e - true_e).mean():.3f} over 52, "
          f"{np.abs(fit_e - true_e)[nz].mean():.3f} over the actor's {int(nz.sum())} non-zero ({pairs})")


if __name__ == "__main__":
    main()
