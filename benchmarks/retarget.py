"""Retarget quality and throughput onto the default double (the virtual actor's skeleton, seed 0).

Quality, per clip: the real BVH files in the fixtures folder (if present) and synthetic walks written in
other conventions (renamed joints, A-pose rest, inches, XYZ vs ZXY rotation orders, a Z-up world, joint
names that say nothing so the shape fallback maps them): mean/min cosine between source and target limb
directions, foot skate during detected contacts (cm/s; source scaled by the leg-length ratio, target
before and after cleanup), worst ground penetration (cm, before/after), root path RMS against the scaled
source path (cm) and path-length ratio, facing cosine.

Hands on the ground (fixtures whose source plants a hand: the cartwheel): per hand, the wrist's skate during its
contacts (cm/s: source scaled / target before / after the cleanup) and how far it goes below the floor (cm, before /
after), and the limb cosine with the hands' cleanup against the feet's alone, in the same run.

Throughput: the whole retarget (parse the BVH text, map, solve, foot IK, metrics) of a 10,000-frame
30-joint clip on 2 threads, frames per second (best of 3).

    PYTHONPATH=. python benchmarks/retarget.py [--fixtures DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")

import argparse
import platform
import time
from pathlib import Path

import torch

from mocap_retarget.bvh import format_bvh, parse_bvh, read_bvh
from mocap_retarget.metrics import compute_metrics
from mocap_retarget.retarget import retarget
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk


def _default_fixtures() -> Path:
    """$DOPPEL_FIXTURES/mocap, else the first shared/fixtures/mocap found above this file."""
    if os.environ.get("DOPPEL_FIXTURES"):
        return Path(os.environ["DOPPEL_FIXTURES"]) / "mocap"
    for up in Path(__file__).resolve().parents:
        if (up / "shared" / "fixtures" / "mocap").is_dir():
            return up / "shared" / "fixtures" / "mocap"
    return Path("shared/fixtures/mocap")


DEFAULT_FIXTURES = _default_fixtures()


def synthetic_variants():
    spec = WalkSpec(seconds=6.0, fps=60.0, turn_deg_per_s=10.0)
    anon = {r: f"j{i:02d}" for i, r in enumerate(SCHEMES["cmu"])}
    return {
        "synthetic CMU names, T-pose, cm, ZXY": format_bvh(synthetic_walk(spec), units="cm"),
        "synthetic Unreal names, A-pose, cm, XYZ": format_bvh(
            synthetic_walk(spec, names=SCHEMES["unreal"], rest="A", order="XYZ"), units="cm"),
        "synthetic Mixamo names, A-pose, inches, ZXY": format_bvh(
            synthetic_walk(spec, names=SCHEMES["mixamo"], rest="A"), units="inch"),
        "synthetic Xsens names, Z-up world, m, YXZ": format_bvh(
            synthetic_walk(spec, names=SCHEMES["xsens"], up="+z", order="YXZ"), units="m"),
        "synthetic meaningless names (shape fallback), A-pose": format_bvh(
            synthetic_walk(spec, names=anon, rest="A", fingers=False), units="cm"),
    }


def row(name, m):
    print(f"| {name} | {m['frames']} | {m['limb_cosine_mean']:.4f} / {m['limb_cosine_min']:.3f} | "
          f"{m['skate_source_scaled_cm_s']} / {m['skate_before_cleanup_cm_s']} / {m['skate_after_cleanup_cm_s']} | "
          f"{m['penetration_max_before_cm']} / {m['penetration_max_after_cm']} | {m['root_path_rms_cm']} / "
          f"{m['root_path_length_m']['ratio']} (scale {m['scale']}) | {m['facing_cosine_mean']} | "
          f"{m['end_effector_error_mean_cm']} |")


def hands_table(fixtures: Path, target) -> None:
    """The hands' cleanup on the fixtures that plant a hand, against the feet's cleanup alone."""
    from mocap_retarget.hands import HandConfig
    from mocap_retarget.retarget import RetargetConfig

    print("\n| clip | hand | contact fraction | wrist skate cm/s: source / before / after | wrist below floor cm: "
          "before / after | limb cosine mean / min: hands and feet / feet alone |")
    print("|---|---|---|---|---|---|")
    feet_only = RetargetConfig(hands=HandConfig(height=-1.0, clearance=-10.0))    # no contacts, no floor for hands
    for f in sorted(fixtures.glob("*.bvh")):
        m = read_bvh(f)
        mh = compute_metrics(retarget(m, target), target)
        if not mh.get("hands"):
            continue
        mf = compute_metrics(retarget(m, target, feet_only), target)
        for side, h in mh["hands"].items():
            print(f"| {f.name} | {side} | {h['contact_fraction']} | {h['skate_source_scaled_cm_s']} / "
                  f"{h['skate_before_cleanup_cm_s']} / {h['skate_after_cleanup_cm_s']} | "
                  f"{h['wrist_below_floor_max_before_cm']} / {h['wrist_below_floor_max_after_cm']} | "
                  f"{mh['limb_cosine_mean']} / {mh['limb_cosine_min']}; {mf['limb_cosine_mean']} / "
                  f"{mf['limb_cosine_min']} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    args = ap.parse_args()
    torch.set_num_threads(2)
    from doppel.pipeline.demo_retarget import anny_target_skeleton

    target = anny_target_skeleton(0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs visible, torch threads 2, "
          f"python {platform.python_version()}; target: default double ({len(target.names)} joints)")
    print("| clip | frames | limb cosine mean / min | skate cm/s: source (scaled) / before / after | "
          "penetration max cm: before / after | root path RMS cm / length ratio | facing cosine | "
          "end-effector offset error cm |")
    print("|---|---|---|---|---|---|---|---|")
    if args.fixtures.is_dir():
        for f in sorted(args.fixtures.glob("*.bvh")):
            m = read_bvh(f)
            res = retarget(m, target)
            row(f"{f.name} ({m.units}, up {res.up_axis})", compute_metrics(res, target))
    else:
        print(f"(no fixtures folder at {args.fixtures})")
    for name, text in synthetic_variants().items():
        res = retarget(parse_bvh(text), target)
        row(name, compute_metrics(res, target))
    if args.fixtures.is_dir():
        hands_table(args.fixtures, target)

    clip = synthetic_walk(WalkSpec(seconds=10000 / 120, fps=120))
    text = format_bvh(clip, units="cm", precision=4)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = retarget(parse_bvh(text), target)
        compute_metrics(res, target)
        times.append(time.perf_counter() - t0)
    t = min(times)
    print(f"\nthroughput: {clip.num_frames} frames, {clip.num_joints}-joint clip -> {len(target.names)}-joint "
          f"double: {t:.2f} s = {clip.num_frames / t:,.0f} frames/s (parse + map + solve + IK + metrics; "
          f"best of 3: {', '.join(f'{x:.2f}' for x in times)} s)")
    t0 = time.perf_counter()
    m = parse_bvh(text)
    tp = time.perf_counter() - t0
    t0 = time.perf_counter()
    retarget(m, target)
    tr = time.perf_counter() - t0
    print(f"  of which parse {tp:.2f} s, retarget {tr:.2f} s")


if __name__ == "__main__":
    main()
