"""Demo stage: retarget a stunt-style walk clip (Mixamo names, A-pose rest, centimetres) onto the double."""

from __future__ import annotations

import logging

import numpy as np

from doppel.report import Section

log = logging.getLogger(__name__)


def anny_target_skeleton(seed: int):
    """The virtual actor's skeleton (seed's phenotype, rest pose) as a TargetSkeleton in Doppel's frame,
    feet on y = 0, straight from the body-model adapter (no mesh, no Rig): fast, for benchmarks."""
    from doppel.virtual_actor import sample_parameters
    from mocap_retarget.skeleton import TargetSkeleton
    from reconstruction.body_models import AnnyModel

    phenotype, _, _ = sample_parameters(seed)
    return TargetSkeleton.from_body_model(AnnyModel(dtype=_float64()), phenotype)


def _float64():
    import torch

    return torch.float64


def _target(ctx):
    """(TargetSkeleton, pose_vertices factory, faces, description): the double's rig from ctx.state["rig"]
    (built with ``doppel.doubles.build_default_rig`` and left there for later stages when absent)."""
    from doppel.doubles import build_default_rig, rig_poser
    from mocap_retarget.skeleton import TargetSkeleton

    rig = ctx.state.get("rig")
    if rig is None:
        rig, _, _ = build_default_rig("anny", seed=ctx.seed)
        ctx.state["rig"] = rig
    what = "the double's rig (mesh posed by Rig.pose)"
    return TargetSkeleton.from_rig(rig), rig_poser(rig), np.asarray(rig.faces), what


def stage_retarget(ctx) -> Section:
    """Write a synthetic clip in another vendor's conventions, retarget it onto the double, report metrics."""
    import time

    from mocap_retarget.bvh import read_bvh, write_bvh
    from mocap_retarget.export import write_outputs
    from mocap_retarget.metrics import compute_metrics
    from mocap_retarget.retarget import retarget
    from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk

    d = ctx.out / "retarget"
    d.mkdir(parents=True, exist_ok=True)
    spec = WalkSpec(seconds=2.0 if ctx.quick else 4.0, fps=60.0, turn_deg_per_s=0.0 if ctx.quick else 15.0)
    clip = d / "clip_mixamo_apose_cm.bvh"
    write_bvh(clip, synthetic_walk(spec, names=SCHEMES["mixamo"], rest="A", order="ZXY", scale=0.95), units="cm")
    target, make_poser, faces, what = _target(ctx)
    t0 = time.perf_counter()
    motion = read_bvh(clip)
    res = retarget(motion, target)
    dt = time.perf_counter() - t0
    m = compute_metrics(res, target)
    write_outputs(d, res, target, clip, {"clip": "synthetic walk, Mixamo names, A-pose rest, cm", **ctx.provenance}, m,
                  pose_vertices=make_poser(res.animation) if make_poser else None, faces=faces,
                  preview_frames=4 if ctx.quick else 6, video_seconds=1.5 if ctx.quick else 4.0,
                  size=200 if ctx.quick else 320)
    # later stages (export) animate the double with this clip
    res.animation.source = "demo: retargeted walk clip"
    ctx.state["animation"] = res.animation
    table = {
        "clip": f"{motion.num_frames} frames at {motion.fps:.0f} fps, units detected: {motion.units}",
        "target": what,
        "bones transferred": m["transferred_bones"],
        "scale (leg length ratio)": m["scale"],
        "limb direction cosine (mean / min)": f"{m['limb_cosine_mean']} / {m['limb_cosine_min']}",
        "foot skate during contacts, cm/s (source scaled / before / after cleanup)":
            f"{m['skate_source_scaled_cm_s']} / {m['skate_before_cleanup_cm_s']} / {m['skate_after_cleanup_cm_s']}",
        "ground penetration max, cm (before / after)":
            f"{m['penetration_max_before_cm']} / {m['penetration_max_after_cm']}",
        "root path RMS vs scaled source, cm": m["root_path_rms_cm"],
        "throughput (parse + retarget)": f"{motion.num_frames / dt:.0f} frames/s",
    }
    return Section(
        "Mocap retarget",
        text=("A walk clip in another vendor's conventions (Mixamo joint names, A-pose rest, centimetres) is "
              "mapped automatically onto canonical roles, retargeted onto the double (rest-pose alignment, "
              "world-space rotation transfer, root motion scaled by leg length) and its feet cleaned up "
              "(contacts detected on the source, locked with two-bone IK). Left: source skeleton; right: double."),
        images=[("retarget/preview.png", "source skeleton (blue) beside the double (red)")],
        table=table,
        files=["retarget/clip_mixamo_apose_cm.bvh", "retarget/retargeted.bvh", "retarget/animation.npz",
               "retarget/metrics.json", "retarget/preview.mp4"],
    )
