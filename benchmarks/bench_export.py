"""Export benchmark (issue 8): the default double (Anny, seed 0) with a 300-frame animation, per format: export
time and file size; round trips: FBX and glTF imported back into Blender (bpy), USD skinned by UsdSkel, 3 frames
each compared with Rig.pose; USD validation of the .usdz.

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
    from assets.export import export_rig, prepare_scene, smooth_random_animation
    from assets.export.common import reference_vertices, to_doppel
    from assets.export.fbx import evaluate_in_blender
    from assets.export.gltf import split_vertices
    from assets.export.run import default_options
    from assets.export.usd import usd_compliance_errors, usd_skinned_points
    from assets.provenance import Provenance
    from doppel.doubles import albedo_for_rig, build_default_rig

    args.out.mkdir(parents=True, exist_ok=True)
    rig, _, _ = build_default_rig("anny", seed=0)
    anim = smooth_random_animation(rig, frames=args.frames, fps=30.0, seed=0, amplitude=0.3, blendshapes=8)
    tex = albedo_for_rig(rig, args.out, args.out, size=1024)
    prov = Provenance(actor_id="virtual-actor-seed0", source="benchmark").as_dict()
    print(f"machine: {platform.processor() or platform.machine()}, torch threads 2; double: {rig.num_joints} joints, "
          f"{rig.num_vertices} vertices, {len(rig.blendshape_names)} blendshapes, {anim.num_frames} frames "
          f"({len(anim.blendshape_names)} animated blendshapes), texture {tex.stat().st_size / 1e6:.2f} MB")
    files = {}
    for fmt, name, preset in (("fbx", "double_maya.fbx", "maya"), ("fbx", "double_unreal.fbx", "unreal"),
                              ("usda", "double.usda", None), ("usdc", "double.usdc", None),
                              ("usdz", "double.usdz", None), ("glb", "double.glb", None)):
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
    errs = usd_compliance_errors(args.out / "double.usdz")
    print(f"USD validation (.usdz, all UsdValidation validators): {len(errs)} errors {errs[:3]}")
    t0 = time.perf_counter()
    names = ["double_maya.fbx", "double_unreal.fbx", "double.glb"]
    evals = evaluate_in_blender([args.out / n for n in names], frames, anim.fps)
    print(f"Blender import + evaluation of {len(names)} files: {time.perf_counter() - t0:.1f} s (one worker)")
    src, _, _ = split_vertices(prepare_scene(rig, None, default_options("glb")))
    for n, ev in zip(names, evals, strict=True):
        r = ref if n.endswith(".fbx") else ref[:, src]
        if ev.vertices.shape != r.shape:
            print(f"round trip {n}: vertex count {ev.vertices.shape[1]} != {r.shape[1]}")
            continue
        print(f"round trip {n:18s} Blender import vs Rig.pose, frames {frames}: max error "
              f"{np.abs(ev.vertices - r).max() * 1e3:.6f} mm; bones {ev.info['bones']}, shape keys "
              f"{len(ev.info['shape_keys'])}, images {ev.info['images']}, provenance props "
              f"{sorted(k for k in ev.info['custom_properties'] if k.startswith('doppel_'))[:3]}")


if __name__ == "__main__":
    main()
