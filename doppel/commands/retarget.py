"""`doppel retarget`: mocap (BVH, FBX, glTF, USD, MVNX, C3D markers) from any vendor's skeleton onto a double's rig,
with clean feet."""

from __future__ import annotations

from pathlib import Path

import typer

from assets.lineage import PERFORMANCE_KIND
from doppel.commands.cli_output import cli_console
from doppel.commands.retarget_face import face_take_options, retarget_face
from doppel.commands.retarget_options import (
    ClipArg,
    FpsOpt,
    FramesOpt,
    HeadOpt,
    MaxMemoryOpt,
    OffsetOpt,
    OntoOpt,
    PerformerOpt,
    ResampleOpt,
    SubjectOpt,
    TakeOpt,
)
from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli
from doppel.doubles import load_target
from doppel.media_disclosure import LabelOpt, NoProvenanceOpt, discloser


def retarget(
    clip: ClipArg,
    rig: Path = typer.Option(None, "--rig", help="Rig folder (rig.npz + manifest.json), or a .bvh whose rest "
                             "pose is the target skeleton."),
    out: Path = typer.Option(None, "--out", help="Output folder (created if missing)."),
    units: str = typer.Option("auto", "--units", help="BVH clip units: auto (from skeleton height), m, cm, mm, inch, "
                              "cmu (other formats carry their own)."),
    up: str = typer.Option("auto", "--up", help="Clip up axis: auto (from the motion) or +y, +z, -z, ..."),
    bone_map: Path = typer.Option(None, "--bone-map", help="YAML bone map (role: joint name) overriding the "
                                  "automatic mapping of the clip's skeleton."),
    explain: bool = typer.Option(False, "--explain", help="Print the bone mapping and what was left unmapped."),
    no_cleanup: bool = typer.Option(False, "--no-cleanup", help="Skip the foot- and hand-contact cleanup (IK)."),
    no_fingers: bool = typer.Option(False, "--no-fingers", help="Leave the fingers at rest."),
    preview_size: int = typer.Option(320, "--preview-size", help="Preview panel size in pixels (32-2048)."),
    max_memory_gb: MaxMemoryOpt = None,
    frames: FramesOpt = None,
    take: TakeOpt = None,
    resample: ResampleOpt = None,
    subject: SubjectOpt = None,
    head: HeadOpt = None,
    onto: OntoOpt = None,
    fps: FpsOpt = None,
    face_offset: OffsetOpt = 0.0,
    performer: PerformerOpt = None,
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
    force: bool = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output."),
    no_provenance: NoProvenanceOpt = False,
    label: LabelOpt = None,
) -> None:
    """Retarget CLIP onto a rig: writes OUT/animation.npz + manifest.json, retargeted.bvh, metrics.json,
    preview.png and preview.mp4. With --explain and no --rig, only prints the clip's bone mapping. A face
    performance becomes the rig's expressions (and head) instead."""
    if face_take_options(clip, onto, head, fps, face_offset):
        if frames is not None or resample is not None or subject is not None or take is not None:
            raise ValueError("--frames, --take, --resample and --subject are for a body clip; a face performance's "
                             "range is "
                             "the swap's (--start / --end), its rate the body take's (--onto)")
        return retarget_face(clip, rig, out, head, onto, fps, face_offset, preview_size, workspace, actor,
                             production, force, no_provenance, label, explain)
    from core.stage_folders import check_stage_out, staged_stage_dir
    from mocap_retarget.clips import check_retarget_memory
    from mocap_retarget.preview import check_preview_size
    from mocap_retarget.retarget import RetargetConfig

    check_preview_size(preview_size)
    console = cli_console()
    motion, info, smap = _read_clip(clip, units, frames, bone_map, fps, resample, subject, take)
    subject_file = [subject] if subject is not None and subject.is_file() else []   # a .vsk, not a bare name
    _announce(console, clip, motion, info, smap, explain)
    if rig is None or out is None:
        if explain:
            smap.check_humanoid(str(clip))
            return
        raise ValueError("--rig and --out are required (or use --explain alone to see the mapping)")
    smap.check_humanoid(str(clip))
    check_stage_out(out, "retarget", force, [clip, rig])      # before any slow work
    cfg = RetargetConfig(up_axis=up, fingers=not no_fingers, cleanup=not no_cleanup)
    bvh_target = rig.is_file() and rig.suffix.lower() == ".bvh"  # a skeleton only: evidence, no likeness needed
    take = info.format == "take"
    with gate_performer(workspace, performer, production, clip, out, take) as take_run, \
            gate_from_cli(workspace, actor, production, use="retarget", command="retarget",
                          inputs=[clip, rig, *subject_file],
                          likeness=[] if bvh_target else [rig], evidence=[rig] if bvh_target else [],
                          outputs=[out]) as run:
        disclose = discloser(run, no_provenance, label, performer=take_run)   # a real actor's: never --no-provenance
        target, make_poser, faces = load_target(rig)  # after the gate: nothing is read from a refused input
        check_retarget_memory(motion.num_frames, motion.num_joints, len(target.names), max_memory_gb, clip)
        params = {"units": motion.units, "up": up, "bone_map": str(bone_map) if bone_map else None,
                  "cleanup": not no_cleanup, "fingers": not no_fingers, "rig": str(rig), "frames": frames,
                  "resample": info.fps if resample is not None else None,
                  "subject": str(subject) if subject else None, "take": info.take, **_consents(run, take_run)}
        with staged_stage_dir(out, "retarget", force, [clip, rig]) as tmp:
            source = clip / "manifest.json" if info.format == "take" else clip   # a take: its fit's manifest
            source = {"clip": source, "subject": subject_file[0]} if subject_file else source
            res, metrics, files = _run(console, motion, target, cfg, smap, explain, tmp, source, params, make_poser,
                                       faces, preview_size, info, disclose)
        _register(out, run, take_run)
    _print_summary(console, metrics, files, out)


def _announce(console, clip: Path, motion, info, smap, explain: bool) -> None:
    """Say how a marker take's solve went, the rate a clip was plotted at (--resample) and, with --explain, its
    skeleton and bone mapping."""
    if info.solve:
        from mocap_retarget.marker_qc import summary_line

        console.print(f"{clip.name}: {summary_line(info.solve)}", markup=False, highlight=False)
    if info.resampled_from is not None:
        console.print(f"{clip.name}: plotted at {info.fps:.6g} fps from {info.resampled_from:.6g}",
                      markup=False, highlight=False)
    if explain:
        if info.solve and info.solve.get("marker_set"):
            console.print(f"{clip.name}: {info.solve['marker_set']}", markup=False, highlight=False)
        console.print(f"[bold]{clip}[/bold]: {motion.num_joints} joints, {motion.num_frames} frames at "
                      f"{motion.fps:.6g} fps, units {motion.units}", markup=True, highlight=False)
        if info.takes:
            from mocap_retarget.clip_takes import describe_takes

            console.print(f"{clip.name}: take {info.take!r} of {describe_takes(info.takes)}", markup=False,
                          highlight=False)
        console.print(smap.explain(), markup=False, highlight=False)


def _register(out: Path, run, take_run) -> None:
    """The animation as the rig's actor's, and as a performance of the take's real performer (their purge finds
    it; never whose likeness it is). In a batch worker (its runs hold no workspace) the driver registers it."""
    run.add_output(out, kind="animation")
    if take_run is not None and take_run.ws is not None and not take_run.auth.virtual and \
            take_run.auth.actor_id != run.auth.actor_id:
        take_run.add_output(out, kind=PERFORMANCE_KIND)


def _consents(run, take_run) -> dict:
    """The manifest's record of who allowed the retarget: the rig's actor, and the take's performer."""
    out = run.manifest_params
    if take_run is not None:
        out |= {"performer_id": take_run.provenance["actor"], "performer_consent_id": take_run.provenance["consent"]}
    return out


def _print_summary(console, m: dict, files: dict, out: Path) -> None:
    console.print(f"retargeted {m['frames']} frames ({m['transferred_bones']} bones, scale {m['scale']:.3f}): "
                  f"limb cosine {m['limb_cosine_mean']}, foot skate {m['skate_before_cleanup_cm_s']} -> "
                  f"{m['skate_after_cleanup_cm_s']} cm/s (source {m['skate_source_scaled_cm_s']}), "
                  f"penetration {m['penetration_max_before_cm']} -> {m['penetration_max_after_cm']} cm",
                  markup=False, highlight=False)
    for side, h in m.get("hands", {}).items():
        console.print(f"{'left' if side == 'l' else 'right'} hand on the ground {h['contact_fraction']:.0%} of the "
                      f"take: skate {h['skate_before_cleanup_cm_s']} -> {h['skate_after_cleanup_cm_s']} cm/s, "
                      f"below the floor {h['wrist_below_floor_max_before_cm']} -> "
                      f"{h['wrist_below_floor_max_after_cm']} cm", markup=False, highlight=False)
    console.print(f"wrote {', '.join(p.name for p in files.values())} to {out}", markup=False, highlight=False)


def gate_performer(workspace, performer: str | None, production: str | None, clip: Path, out: Path, take: bool):
    """A capture take as the clip (``take``): the consent of the person who performed it (use retarget), the actor
    its fit is registered to or --performer; an unattributed take in a workspace needs --performer. The animation
    is the rig's actor's asset and, as a performance (`assets.lineage.PERFORMANCE_KIND`: never whose likeness it
    is, so the double's later exports and shots go on), the performer's: their consent's purge deletes it. The
    manifest names the performer and their consent. Any other clip: no gate (a vendor's mocap is not a person's
    likeness here), a context giving None."""
    import contextlib

    if performer is not None and not take:
        raise ValueError(f"--performer names who performed a capture take (a `doppel fit --frame all` folder as the "
                         f"clip); {clip} is not one")
    if not take:
        return contextlib.nullcontext(None)
    return gate_from_cli(workspace, performer, production, use="retarget", command="retarget (take performer)",
                         inputs=[clip], likeness=[clip], actor_option="--performer", outputs=[out])


def _read_clip(clip: Path, units: str, frames: str | None, bone_map: Path | None, fps: float | None = None,
               resample: float | None = None, subject: Path | None = None, take: str | None = None):
    """(motion: the clip, or its frames A:B, plotted at ``resample`` fps when given; the reader's info; its bone
    map, with the --bone-map override). A take's fit folder (`doppel fit --frame all`) is a clip of the actor's own
    skeleton at ``fps``."""
    from assets.mocap_fbx import read_any_clip
    from core.frame_ranges import parse_frames
    from doppel.take_clip import is_take_fit, read_take_clip
    from mocap_retarget.roles import apply_override, auto_map, load_bone_map

    if is_take_fit(clip):
        if units != "auto" or subject is not None or take is not None:
            raise ValueError(f"--units applies to BVH clips, --subject to C3D, FBX, glTF and USD ones, --take to glTF "
                             f"and FBX files; a take's fit ({clip}) is one skeleton in metres")
        motion, info = read_take_clip(clip, fps)
    elif clip.is_dir() and (clip / "params.json").is_file():
        raise ValueError(f"{clip}: the fit of one frame is a pose, not a clip; a take fitted with `doppel fit "
                         "SESSION --frame all` is one")
    else:
        motion, info = read_any_clip(clip, units=units, subject=subject, take=take)
    if frames is not None:
        motion = motion.frames(parse_frames(frames, motion.num_frames))
    if resample is not None:
        from dataclasses import replace

        from mocap_retarget.resample import resample_motion

        motion = resample_motion(motion, resample)
        info = replace(info, fps=motion.fps, resampled_from=info.fps)
    smap = auto_map(motion.names, motion.parents, motion.rest_positions(), motion.end_sites)
    if bone_map is not None:
        smap = apply_override(smap, load_bone_map(bone_map, motion.names), str(bone_map))
    return motion, info, smap


def _run(console, motion, target, cfg, smap, explain, out, clip, params, make_poser, faces, preview_size, info,
         disclose):
    """Retarget with a progress bar, compute the metrics (with a marker take's solve quality), write the outputs:
    (result, metrics, files)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from mocap_retarget.export import write_outputs
    from mocap_retarget.metrics import compute_metrics
    from mocap_retarget.retarget import retarget as run_retarget

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("retarget")
        res = run_retarget(motion, target, cfg, source_map=smap,
                           progress=lambda s: bar.update(task, description=f"retarget: {s}"))
        if explain:
            console.print("[bold]target rig[/bold]:")
            console.print(res.target_map.explain(), markup=False, highlight=False)
        bar.update(task, description="retarget: metrics")
        metrics = compute_metrics(res, target)
        if info.solve:
            metrics["marker_solve"] = info.solve
        bar.update(task, description="writing outputs and previews")
        files = write_outputs(out, res, target, clip, params, metrics,
                              pose_vertices=make_poser(res.animation) if make_poser else None, faces=faces,
                              size=preview_size, fps_info=info.as_dict(), finish_preview=disclose,
                              solved=motion if info.format == "c3d" else None)
    return res, metrics, files
