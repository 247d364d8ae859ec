"""The FBX export of a long mocap take: the Blender worker's time and memory.

A BVH clip repeated ``--repeat`` times end to end (the walk goes on from where it stopped) is retargeted onto
``--rig`` and written to FBX by the Blender worker (`assets.export.fbx.fbx_task`, as `doppel export` does it).
Printed: the take's length, the retarget's time, the worker's time and its bake (Blender's exporter), the channels
keyed (the rest held as values), the file's size and the worker's peak resident memory. ``--baseline`` first writes
the same take as the worker did before stop 61 (every channel keyed, the mesh skinned at each baked frame), in its
own worker process, and reads both files back at the first, middle and last frames to compare the skinned vertices.

    PYTHONPATH=. python benchmarks/fbx_long_take.py --rig RIG_DIR --bvh CLIP.bvh --repeat 26 [--baseline]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from assets.export.common import prepare_scene
from assets.export.fbx import blender_scene_options, evaluate_in_blender, fbx_task, fbx_timeout_s
from assets.export.run import default_options
from mocap_retarget.bvh import read_bvh
from mocap_retarget.retarget import retarget
from mocap_retarget.skeleton import TargetSkeleton
from rigging.rig import Rig


def long_clip(bvh: Path, repeat: int):
    """The clip ``repeat`` times, each copy's root moved on by the clip's own travel (height kept)."""
    m = read_bvh(bvh)
    R = np.concatenate([m.local_rotations] * repeat)
    T = np.concatenate([m.local_translations] * repeat)
    step = m.local_translations[-1, 0] - m.local_translations[0, 0]
    step[1] = 0.0
    for k in range(repeat):
        T[k * m.num_frames:(k + 1) * m.num_frames, 0] += k * step
    return replace(m, local_rotations=R, local_translations=T)


def write(scene, out: Path, baseline: bool) -> tuple[float, dict, float]:
    """One worker process writing ``scene`` to ``out``: (seconds, its info, its peak RSS in GB)."""
    task, arrays = fbx_task(scene, out, "y")
    task |= {"mute_skinning": not baseline, "hold_still_channels": not baseline}
    code = ("import json, sys, time, resource, numpy as np; from assets.blender_worker import run_blender_tasks; "
            "d = np.load(sys.argv[2]); task = json.loads(open(sys.argv[1]).read()); t = time.perf_counter(); "
            "(r,) = run_blender_tasks([(task, {k: d[k] for k in d.files})], timeout=float(sys.argv[3])); "
            "print(json.dumps({'s': time.perf_counter() - t, 'info': r.info, "
            "'peak': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6}))")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "task.json").write_text(json.dumps(task))
        np.savez(Path(tmp) / "arrays.npz", **arrays)
        limit = fbx_timeout_s(scene.num_frames, len(scene.joint_names))
        res = subprocess.run([sys.executable, "-c", code, str(Path(tmp) / "task.json"),
                              str(Path(tmp) / "arrays.npz"), str(limit)], capture_output=True, text=True, check=True)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    return got["s"], got["info"], got["peak"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rig", type=Path, required=True)
    ap.add_argument("--bvh", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=26)
    ap.add_argument("--baseline", action="store_true", help="also write it as before stop 61, and compare")
    args = ap.parse_args()
    rig = Rig.load(args.rig)
    clip = long_clip(args.bvh, args.repeat)
    fps = 1.0 / clip.frame_time
    print(f"take: {clip.num_frames} frames at {fps:.0f} fps ({clip.num_frames / fps / 60:.1f} min), rig "
          f"{rig.num_joints} joints, {len(rig.blendshape_names)} shape keys")
    t0 = time.perf_counter()
    anim = retarget(clip, TargetSkeleton.from_rig(rig)).animation
    print(f"retarget: {time.perf_counter() - t0:.1f} s")
    scene = prepare_scene(rig, anim, blender_scene_options(default_options("fbx")))
    channels = 4 * rig.num_joints + 3 * int((rig.parents < 0).sum()) + len(rig.blendshape_names)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("before stop 61", True, Path(tmp) / "before.fbx")] if args.baseline else []
        runs.append(("now", False, Path(tmp) / "now.fbx"))
        for label, baseline, out in runs:
            took, info, peak = write(scene, out, baseline)
            print(f"FBX, {label}: worker {took:.1f} s (bake and write {info['write_s']:.1f} s; limit "
                  f"{fbx_timeout_s(scene.num_frames, rig.num_joints):.0f} s), {info['keyed_channels']} of "
                  f"{channels} channels keyed, {out.stat().st_size / 1e6:.1f} MB, worker peak RSS {peak:.2f} GB")
        if args.baseline:
            n = scene.num_frames
            a, b = evaluate_in_blender([runs[0][2], runs[1][2]], [1, 2, n // 2, n - 1, n], scene.fps)
            print(f"read back: skinned vertices differ by {np.abs(a.vertices - b.vertices).max():.3g} m at frames "
                  f"1, 2, {n // 2}, {n - 1}, {n}")


if __name__ == "__main__":
    main()
