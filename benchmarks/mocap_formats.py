"""Mocap from FBX, glTF and USD against the BVH path, and the import time of a 10,000-frame FBX clip.

Per BVH clip in the fixtures folder: Blender's BVH importer reads it and its FBX, glTF (.glb) and USD exporters
write it; each file is read back (FBX through Blender's importer in the worker, glTF with pygltflib, USD with
UsdSkel) and retargeted onto the default double. Reported: the limb-cosine metric of each path and its
difference to the BVH path, the mean and worst (1 - cosine) between the double's bone directions on the two paths,
and the read time. Then a 10,000-frame synthetic walk at 120 fps goes the same way to FBX and its read time is
taken (Blender start-up included). Wall-clock times on a shared 2-core machine are noisy.

    PYTHONPATH=. python benchmarks/mocap_formats.py [--fixtures DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from assets.blender_worker import run_blender_tasks
from assets.mocap_fbx import read_any_clip
from doppel.pipeline.demo_retarget import anny_target_skeleton
from mocap_retarget.bvh import read_bvh, write_bvh
from mocap_retarget.metrics import compute_metrics
from mocap_retarget.retarget import retarget
from mocap_retarget.synthetic import WalkSpec, synthetic_walk

FORMATS = (".fbx", ".glb", ".usda")


def _directions(P: np.ndarray, parents: np.ndarray) -> np.ndarray:
    d = P[:, 1:] - P[:, parents[1:]]
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    return (d / np.maximum(n, 1e-12))[:, n[0, :, 0] > 1e-3]


def convert(bvh: Path, out_dir: Path) -> dict[str, Path]:
    """Blender's FBX, GLB and USD of ``bvh`` (one worker process)."""
    scale = read_bvh(bvh).scale
    outs = {s: out_dir / f"{bvh.stem}{s}" for s in FORMATS}
    run_blender_tasks([({"kind": "convert_clip", "path": str(bvh), "out": str(o), "scale": scale}, {})
                       for o in outs.values()])
    return outs


def compare(bvh: Path, out_dir: Path, target) -> None:
    outs = convert(bvh, out_dir)
    ref_motion, ref_info = read_any_clip(bvh)
    ref = retarget(ref_motion, target)
    ref_cos = compute_metrics(ref, target)["limb_cosine_mean"]
    ref_dirs = _directions(ref.target_positions, target.parents)
    print(f"| {bvh.name} | bvh | {ref_motion.num_frames} | {ref_info.fps_file:.4f} -> {ref_info.fps:g} | "
          f"{ref_cos:.5f} | - | - | - |")
    for sfx, path in outs.items():
        t0 = time.perf_counter()
        motion, info = read_any_clip(path)
        dt = time.perf_counter() - t0
        res = retarget(motion, target)
        cos = compute_metrics(res, target)["limb_cosine_mean"]
        c = np.sum(_directions(res.target_positions, target.parents) * ref_dirs, axis=-1)
        print(f"| {bvh.name} | {sfx[1:]} | {motion.num_frames} | {info.fps_file:.4f} -> {info.fps:g} | {cos:.5f} | "
              f"{abs(cos - ref_cos):.1e} | {1 - c.mean():.1e} / {1 - c.min():.1e} | {dt:.2f} s |")


def long_fbx(out_dir: Path, frames: int = 10_000) -> None:
    walk = synthetic_walk(WalkSpec(seconds=frames / 120, fps=120))
    bvh = out_dir / "walk_10k.bvh"
    write_bvh(bvh, walk, units="cm")
    fbx = out_dir / "walk_10k.fbx"
    run_blender_tasks([({"kind": "convert_clip", "path": str(bvh), "out": str(fbx), "scale": 0.01}, {})])
    t0 = time.perf_counter()
    motion, info = read_any_clip(fbx)
    dt = time.perf_counter() - t0
    print(f"\n{frames}-frame FBX ({walk.num_joints} bones, {fbx.stat().st_size / 1e6:.1f} MB): read in {dt:.1f} s "
          f"({motion.num_frames} frames at {info.fps:g} fps; Blender start-up and import included)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", type=Path, default=Path(__file__).resolve().parents[1] / "shared/fixtures/mocap")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    target = anny_target_skeleton(0)
    with tempfile.TemporaryDirectory(prefix="doppel_mocap_formats_") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        print("| clip | path | frames | fps file -> used | limb cosine mean | diff to BVH | "
              "bone direction 1-cos mean / worst | read time |")
        print("|---|---|---|---|---|---|---|---|")
        for bvh in sorted(args.fixtures.glob("*.bvh")) if args.fixtures.is_dir() else []:
            compare(bvh, out, target)
        long_fbx(out)


if __name__ == "__main__":
    main()
