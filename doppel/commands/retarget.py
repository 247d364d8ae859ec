"""`doppel retarget`: mocap (BVH) from any vendor's skeleton onto a double's rig, with clean feet."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli, resolve_actor
from doppel.doubles import load_target


def retarget(
    clip: Path = typer.Argument(..., help="BVH clip to retarget."),
    rig: Path = typer.Option(None, "--rig", help="Rig folder (rig.npz + manifest.json), or a .bvh whose rest "
                             "pose is the target skeleton."),
    out: Path = typer.Option(None, "--out", help="Output folder (created if missing)."),
    units: str = typer.Option("auto", "--units", help="Clip units: auto (from skeleton height), m, cm, mm, inch, cmu."),
    up: str = typer.Option("auto", "--up", help="Clip up axis: auto (from the motion) or +y, +z, -z, ..."),
    bone_map: Path = typer.Option(None, "--bone-map", help="YAML bone map (role: joint name) overriding the "
                                  "automatic mapping of the clip's skeleton."),
    explain: bool = typer.Option(False, "--explain", help="Print the bone mapping and what was left unmapped."),
    no_cleanup: bool = typer.Option(False, "--no-cleanup", help="Skip the foot-contact cleanup (IK)."),
    no_fingers: bool = typer.Option(False, "--no-fingers", help="Leave the fingers at rest."),
    preview_size: int = typer.Option(320, "--preview-size", help="Preview panel size in pixels."),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
) -> None:
    """Retarget CLIP onto a rig: writes OUT/animation.npz + manifest.json, retargeted.bvh, metrics.json,
    preview.png and preview.mp4. With --explain and no --rig, only prints the clip's bone mapping."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from mocap_retarget.bvh import read_bvh
    from mocap_retarget.export import write_outputs
    from mocap_retarget.retarget import RetargetConfig
    from mocap_retarget.retarget import retarget as run_retarget
    from mocap_retarget.roles import apply_override, auto_map, load_bone_map

    console = Console()
    motion = read_bvh(clip, units=units)
    smap = auto_map(motion.names, motion.parents, motion.rest_positions(), motion.end_sites)
    if bone_map is not None:
        smap = apply_override(smap, load_bone_map(bone_map, motion.names), str(bone_map))
    if explain:
        console.print(f"[bold]{clip}[/bold]: {motion.num_joints} joints, {motion.num_frames} frames at "
                      f"{motion.fps:.4g} fps, units {motion.units}")
        console.print(smap.explain(), markup=False, highlight=False)
    if rig is None or out is None:
        if explain:
            smap.check_humanoid(str(clip))
            return
        raise ValueError("--rig and --out are required (or use --explain alone to see the mapping)")
    smap.check_humanoid(str(clip))
    target, make_poser, faces = load_target(rig)
    cfg = RetargetConfig(up_axis=up, fingers=not no_fingers, cleanup=not no_cleanup)
    actor_id = resolve_actor(actor, [rig], command="retarget")
    with gate_from_cli(workspace, actor_id, production, use="retarget", command="retarget",
                       inputs=[clip, rig]) as run, \
            Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(),
                     console=console, transient=True) as bar:
        task = bar.add_task("retarget")
        res = run_retarget(motion, target, cfg, source_map=smap,
                           progress=lambda s: bar.update(task, description=f"retarget: {s}"))
        if explain:
            console.print("[bold]target rig[/bold]:")
            console.print(res.target_map.explain(), markup=False, highlight=False)
        bar.update(task, description="writing outputs and previews")
        params = {"units": motion.units, "up": up, "bone_map": str(bone_map) if bone_map else None,
                  "cleanup": not no_cleanup, "fingers": not no_fingers, "rig": str(rig),
                  "actor_id": run.provenance["actor"], "consent_id": run.provenance["consent"],
                  "production": run.provenance["production"]}
        files = write_outputs(out, res, target, clip, params,
                              pose_vertices=make_poser(res.animation) if make_poser else None, faces=faces,
                              size=preview_size)
        run.add_output(out, kind="animation")
    m = res.metrics
    console.print(f"retargeted {m['frames']} frames ({m['transferred_bones']} bones, scale {m['scale']:.3f}): "
                  f"limb cosine {m['limb_cosine_mean']:.4f}, foot skate {m['skate_before_cleanup_cm_s']} -> "
                  f"{m['skate_after_cleanup_cm_s']} cm/s (source {m['skate_source_scaled_cm_s']}), "
                  f"penetration {m['penetration_max_before_cm']} -> {m['penetration_max_after_cm']} cm")
    console.print(f"wrote {', '.join(p.name for p in files.values())} to {out}")
