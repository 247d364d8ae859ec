"""Export benchmark (issue 8): the default double (Anny, seed 0) with a 300-frame animation, per format: export
time and file size; round trips: FBX and glTF imported back into Blender (bpy), Alembic caches read by Blender's
Alembic reader, USD skinned by UsdSkel, 3 frames each compared with Rig.pose; an FBX of the rig alone (no
animation) against the bind pose; USD validation of the .usdz.

    PYTHONPATH=. python benchmarks/bench_export.py [--frames 300] [--out /tmp/doppel_bench_export]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("/tmp/doppel_bench_export"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    from assets.export import export_rig, smooth_random_animation
    from assets.export.common import reference_vertices, to_doppel
    from assets.export.run import default_options
    from assets.export.usd import usd_compliance_errors, usd_skinned_points
    from assets.provenance import Provenance
    from doppel.doubles import albedo_for_rig, build_default_rig

    args.out.mkdir(parents=True, exist_ok=True)
    rig, _, _ = build_default_rig("anny", seed=0)
    anim = smooth_random_animation(rig, frames=args.frames, fps=30.0, seed=0, amplitude=0.3, blendshapes=8)
    tex = albedo_for_rig(rig, args.out, args.out, size=1024)
    prov = Provenance(actor_id="virtual", source="benchmark").as_dict()
    print(f"machine: {platform.processor() or platform.machine()}, torch threads 2; double: {rig.num_joints} joints, "
          f"{rig.num_vertices} vertices, {len(rig.blendshape_names)} blendshapes, {anim.num_frames} frames "
          f"({len(anim.blendshape_names)} animated blendshapes), texture {tex.stat().st_size / 1e6:.2f} MB")
    files = {}
    for fmt, name, preset in (("fbx", "double_maya.fbx", "maya"), ("fbx", "double_unreal.fbx", "unreal"),
                              ("usda", "double.usda", None), ("usdc", "double.usdc", None),
                              ("usdz", "double.usdz", None), ("glb", "double.glb", None),
                              ("abc", "double.abc", None), ("abc", "double_maya.abc", "maya")):
        t0 = time.perf_counter()
        res = export_rig(rig, fmt, args.out / name, anim, default_options(fmt, preset), texture=tex, provenance=prov)
        dt = time.perf_counter() - t0
        files[name] = res
        print(f"export {name:18s} {fmt:5s} {res.options.up.upper()}-up {res.options.units:2s}  {dt:6.2f} s  "
              f"{res.bytes / 1e6:7.2f} MB")
    frames = [0, anim.num_frames // 2, anim.num_frames - 1]
    ref = reference_vertices(rig, anim, frames)
    for name in ("double.usda", "double.usdz"):
        opts = files[name].options
        t0 = time.perf_counter()
        got = to_doppel(usd_skinned_points(args.out / name, frames), opts)
        print(f"round trip {name:14s} UsdSkel.BakeSkinning vs Rig.pose, frames {frames}: max error "
              f"{np.abs(got - ref).max() * 1e3:.6f} mm ({time.perf_counter() - t0:.1f} s)")
    from assets.export_verify import read_export_provenance

    prov_abc = read_export_provenance(args.out / "double.abc") or {}
    print(f"double.abc provenance (Doppel's Ogawa reader): {len(prov_abc)} fields, actor "
          f"{prov_abc.get('actor_id')!r}, Doppel {prov_abc.get('doppel_version')!r}")
    errs = usd_compliance_errors(args.out / "double.usdz")
    print(f"USD validation (.usdz, all UsdValidation validators): {len(errs)} errors {errs[:3]}")
    _blender_round_trips(args.out, rig, anim, frames, ref, export_rig(rig, "fbx", args.out / "rig_alone.fbx").path)


def _blender_round_trips(out: Path, rig, anim, frames: list[int], ref: np.ndarray, alone: Path) -> None:
    """FBX, glTF and Alembic files read back by Blender's importers (one worker) against Rig.pose; the FBX of the
    rig alone against its bind vertices."""
    from assets.blender_worker import run_blender_tasks
    from assets.export import prepare_scene
    from assets.export.fbx import evaluation_task
    from assets.export.gltf import split_vertices
    from assets.export.run import default_options
    from core.conventions import zup_to_doppel

    names = ["double_maya.fbx", "double_unreal.fbx", "double.glb", "double.abc", "double_maya.abc"]
    tasks = [evaluation_task(out / n, frames, anim.fps, scale=0.01 if n == "double_maya.abc" else 1.0)
             for n in names] + [evaluation_task(alone, [0], anim.fps, static=True)]
    t0 = time.perf_counter()
    results = run_blender_tasks(tasks)
    print(f"Blender import + evaluation of {len(tasks)} files: {time.perf_counter() - t0:.1f} s (one worker)")
    src, _, _ = split_vertices(prepare_scene(rig, None, default_options("glb")))
    for n, res in zip(names, results, strict=False):
        got, info = zup_to_doppel(res.arrays["vertices"]), res.info
        r = ref[:, src] if n.endswith(".glb") else ref
        if got.shape != r.shape:
            print(f"round trip {n}: vertex count {got.shape[1]} != {r.shape[1]}")
            continue
        print(f"round trip {n:18s} Blender import vs Rig.pose, frames {frames}: max error "
              f"{np.abs(got - r).max() * 1e3:.6f} mm; bones {info['bones']}, shape keys "
              f"{len(info['shape_keys'])}, images {info['images']}, provenance props "
              f"{sorted(k for k in info['custom_properties'] if k.startswith('doppel_'))[:3]}")
    d = np.linalg.norm(zup_to_doppel(results[-1].arrays["vertices"])[0] - rig.vertices, axis=1)
    print(f"the rig alone as FBX (no animation) vs its bind pose: max {d.max() * 1e3:.6f} mm, "
          f"{int((d > 1e-3).sum())} vertices over 1 mm")

if __name__ == "__main__":
    main()
