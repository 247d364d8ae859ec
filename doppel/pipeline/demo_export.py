"""Demo stage: export the virtual actor's double (rig + an animation) as FBX, USD (.usdz) and glTF (.glb), with
provenance, and check the USD file with UsdSkel's own skinning against `Rig.pose` (and, outside quick mode, the
FBX and glTF imported back into Blender)."""

from __future__ import annotations

import logging

import numpy as np

from doppel.report import Section

log = logging.getLogger(__name__)


def stage_export(ctx) -> Section:
    from assets.export import export_rig, smooth_random_animation
    from assets.export.common import reference_vertices
    from assets.export.gltf import split_vertices
    from assets.export.run import default_options
    from assets.export.usd import usd_compliance_errors, usd_skinned_points
    from assets.provenance import Provenance
    from core.meshio import write_png
    from doppel.doubles import build_default_rig

    d = ctx.out / "export"
    d.mkdir(parents=True, exist_ok=True)
    rig = ctx.state.get("rig")
    if rig is None:
        rig, _, _ = build_default_rig("anny", seed=ctx.seed)
        ctx.state["rig"] = rig
    anim = ctx.state.get("animation")
    if anim is None:
        anim = smooth_random_animation(rig, frames=24 if ctx.quick else 120, fps=24.0, seed=ctx.seed,
                                       amplitude=0.15)
        anim.source = "demo: smooth random animation"
    actor = ctx.state.get("actor")
    tex_path = d / "albedo.png"
    if actor is not None and actor.uvs.shape == rig.uvs.shape and np.allclose(actor.uvs, rig.uvs):
        write_png(tex_path, actor.texture)              # the actor's albedo, same UV layout
    else:
        from doppel.doubles import albedo_for_rig

        tex_path = albedo_for_rig(rig, d, d, size=512 if ctx.quick else 1024, seed=ctx.seed)
    prov = Provenance(actor_id=ctx.provenance["actor_id"], consent_ref=ctx.provenance["consent_id"],
                      source=f"Doppel virtual actor (anny, seed {ctx.seed}); synthetic, no real person",
                      animation=anim.source, production=ctx.provenance["production"]).as_dict()
    table: dict[str, object] = {}
    files = []
    results = {}
    for fmt, name, preset in (("fbx", "double.fbx", "maya"), ("usdz", "double.usdz", None),
                              ("glb", "double.glb", None)):
        res = export_rig(rig, fmt, d / name, anim, default_options(fmt, preset), texture=tex_path, provenance=prov,
                         name="double")
        results[fmt] = res
        files.append(f"export/{name}")
        table[name] = (f"{res.options.up.upper()}-up, {res.options.units}, {res.frames} frames @ {anim.fps:g} fps, "
                       f"{res.bytes / 1e6:.2f} MB, {res.seconds:.2f} s")
    frames = [0, anim.num_frames // 2, anim.num_frames - 1]
    ref = reference_vertices(rig, anim, frames)
    usd = usd_skinned_points(d / "double.usdz", frames)
    table["USD round trip (UsdSkel.BakeSkinning vs Rig.pose), max error"] = f"{np.abs(usd - ref).max() * 1e3:.4f} mm"
    errs = usd_compliance_errors(d / "double.usdz")
    table["USD validation errors (.usdz)"] = len(errs) if not errs else f"{len(errs)}: {errs[:2]}"
    if not ctx.quick:
        from assets.export.fbx import evaluate_in_blender

        fbx_ev, glb_ev = evaluate_in_blender([d / "double.fbx", d / "double.glb"], frames, anim.fps)
        table["FBX round trip (Blender import), max error"] = f"{np.abs(fbx_ev.vertices - ref).max() * 1e3:.4f} mm"
        from assets.export.common import prepare_scene

        src, _, _ = split_vertices(prepare_scene(rig, None, default_options("glb")))
        if glb_ev.vertices.shape[1] == len(src):
            table["glTF round trip (Blender import), max error"] = \
                f"{np.abs(glb_ev.vertices - ref[:, src]).max() * 1e3:.4f} mm"
    ctx.state["exports"] = {k: str(v.path) for k, v in results.items()}
    _write_manifest(ctx, d, tex_path)
    return Section(
        "Export (FBX, USD, glTF)",
        text=(f"The double ({rig.num_joints} joints, {rig.num_vertices} vertices, {len(rig.blendshape_names)} "
              f"blendshapes) with a {anim.num_frames}-frame animation, exported with Blender's FBX writer (Maya "
              "preset: Y-up, cm), usd-core UsdSkel (.usdz, Y-up, m) and pygltflib (.glb). Each file carries the "
              "provenance (actor id, consent, source, Doppel version) in its own metadata. Below, the .glb in 3D "
              "(drag to orbit, scroll to zoom), framed over the whole animation, on a 0.5 m floor grid beside a "
              "pole of the actor's height."),
        table=table, files=files, models=["export/double.glb"])


def _write_manifest(ctx, d, tex_path) -> None:
    """export/manifest.json: the rig and animation it was made from (lineage when the demo registers its folders in
    a workspace) and the three files."""
    from pathlib import Path

    from core.storage import write_manifest

    inputs = {k: p for k, p in (("rig", ctx.out / "rig" / "rig.npz"), ("animation", ctx.out / "retarget" /
                                                                          "animation.npz")) if p.is_file()}
    outputs = {"fbx": "double.fbx", "usdz": "double.usdz", "glb": "double.glb"}
    if tex_path is not None and Path(tex_path).parent == d:
        outputs["albedo"] = tex_path.name
    write_manifest(d, "export", inputs=inputs,
                   params={"formats": ["fbx", "usdz", "glb"], "seed": ctx.seed, **ctx.provenance}, outputs=outputs,
                   extra={"consent": "not required: synthetic virtual actor, no real person's likeness"})
