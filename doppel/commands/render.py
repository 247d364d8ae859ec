"""`doppel render train` / `doppel render shot`: the neural double, trained from a capture and rendered in shots."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import TextColumn

from doppel.commands.cli_output import cli_console, on_interrupt, stage_bar
from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli
from doppel.media_disclosure import LabelOpt, NoProvenanceOpt
from doppel.render_distil import STUDENT_OUTPUT_FILTER
from doppel.shot_stage import SHOT_JITTER

ShutterOpt = Annotated[float, typer.Option("--shutter", help="Motion blur: the camera's shutter angle in degrees "
                                          "(180: open half of each frame, as a film camera at 24 fps and 1/48 s; "
                                          "0: none, the default). Each frame is the mean of --shutter-samples "
                                          "renders of the double posed over the open shutter.")]
ShutterSamplesOpt = Annotated[int, typer.Option("--shutter-samples", help="Renders spread over the open shutter "
                                                "(default 8; 1: no blur; --jitter's renders share them: a frame "
                                                "costs the larger of the two).")]
ShutterPositionOpt = Annotated[str, typer.Option("--shutter-position", help="centre (open from half the angle "
                                                 "before the frame to half after, as Blender and Maya default), "
                                                 "start (from the frame on) or end (up to the frame).")]

RecentreOpt = Annotated[bool, typer.Option("--recentre", help="Turn and move the animation on the ground so that its "
                                           "frame 0 faces and stands as the fitted double did in the capture, "
                                           "whatever --frames renders (a mocap clip starts wherever, facing "
                                           "whichever way, its stage put it; the capture's cameras look at the "
                                           "actor's place).")]
LensOpt = Annotated[str, typer.Option("--lens", help="distorted: frames through each camera's calibrated lens "
                                      "distortion, as its photos and plates are (drawn with overscan, then "
                                      "distorted); undistorted: through the same K without distortion (for a comp "
                                      "that distorts them itself, e.g. with `doppel capture cameras --st-maps`).")]

app = typer.Typer(help="Neural double: train it from a capture session and its fit, render shots.",
                  no_args_is_help=True)


@contextlib.contextmanager
def _optimisation_bar(console: Console, title: str, total: int, no_holdout: str):
    """A progress bar of an optimisation's steps; yields (progress(step, total, loss, held-out PSNR), status(text))
    for the stage functions (``no_holdout``: what the bar says for a nan PSNR)."""
    with stage_bar(console, TextColumn("{task.fields[stats]}")) as bar:
        task = bar.add_task(title, total=total, stats="")

        def progress(step: int, total: int, loss: float, psnr: float) -> None:
            held = no_holdout if psnr != psnr else f"{psnr:.2f} dB"
            bar.update(task, completed=step, stats=f"loss {loss:.4f}  held-out PSNR {held}")

        yield progress, lambda m: bar.update(task, description=f"{title}: {m}")


def _prov(run) -> dict:
    return run.manifest_params


@app.command("train")
def train(
    session: Path = typer.Argument(..., help="Capture session folder (images/ + calibration.json)."),
    fit_dir: Path = typer.Option(..., "--fit", help="The session's `doppel fit` output folder (its mesh is used)."),
    out: Path = typer.Option(..., "--out", help="Model folder: model.safetensors, config.json, history.json, ..."),
    holdout: str = typer.Option("", "--holdout", help="Cameras held out for early stopping, comma separated."),
    size: int = typer.Option(256, "--size", help="Training image size (longest side, px; rounded to a multiple of 8)."),
    iterations: int = typer.Option(2000, "--iterations", help="Optimisation steps (at most)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run (or a finished model)."),
    masks: Path = typer.Option(None, "--masks", help="Person masks: an ingest folder or a folder of CAMERA.png; "
                               "default: keyed against the backdrop colour."),
    minutes: float = typer.Option(None, "--minutes", help="Wall-clock budget of the optimisation (minutes)."),
    supersample: int = typer.Option(2, "--supersample", help="G-buffer samples per pixel side (1, 2 or 4): "
                                    "anti-aliased edges; the U-Net runs at --size either way."),
    refine_to_photos: bool = typer.Option(False, "--refine-to-photos/--no-refine-to-photos",
                                          help="Before the bake, move the fitted mesh along its normals so that its "
                                               "outlines match the training photos' mattes (kept in the model)."),
    members: int = typer.Option(1, "--members", help="Models trained at once, one process (CPU core) each, with "
                                "their own seeds, drawn as their mean: held-out views about +0.3 dB for 2 on the "
                                "Cycles benchmark; each render costs a U-Net per member."),
    snapshots: int = typer.Option(1, "--snapshots", help="States kept per member: the best and the next best by "
                                  "held-out PSNR (needs --holdout), drawn with the members as their mean; each "
                                  "render costs a U-Net per state."),
    output_filter: float = typer.Option(0.0, "--output-filter", help="Train and draw through an output filter: "
                                        "every render smoothed by the kernel (w, 1-2w, w) on each axis (0 to 1/3; "
                                        "0 = none; `render distil` gives its students 0.08)."),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
    force: bool = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output."),
) -> None:
    """Train the neural double (neural texture + deferred U-Net) on the session's photos and the fitted mesh."""
    import torch

    from capture.session import check_session_argument
    from core.stage_folders import check_stage_out, staged_stage_dir
    from doppel.render_ensemble import check_counts, train_ensemble
    from doppel.render_stage import MODEL_STAGE, TrainRequest, finish_training, resolve_device, resume_hint
    from neural_render.output_filter import check_output_filter

    session = check_session_argument(session)
    if iterations < 1:
        raise ValueError(f"--iterations must be >= 1, got {iterations}")
    if supersample not in (1, 2, 4):
        raise ValueError(f"--supersample must be 1, 2 or 4, got {supersample}")
    held = [c.strip() for c in holdout.split(",") if c.strip()]
    check_counts(members, snapshots, held)
    options = {**({"snapshots": snapshots} if snapshots > 1 else {}),
               **({"output_filter": check_output_filter(output_filter)} if output_filter else {})}
    dev = resolve_device(device)
    torch.set_num_threads(1) if dev == "cpu" and torch.get_num_threads() > 1 else None
    req = TrainRequest(session, fit_dir, out, held, size, iterations, dev, resume, masks, minutes,
                       supersample=supersample, refine_to_photos=refine_to_photos, members=members,
                       options=options or None)
    inputs = [p for p in (session, fit_dir, masks) if p is not None]
    check_stage_out(out, MODEL_STAGE, force or resume, inputs)
    console = cli_console()
    on_interrupt(lambda: resume_hint(out))
    with gate_from_cli(workspace, actor, production, use="render", command="render train", inputs=inputs,
                       outputs=[out]) as run, \
            _optimisation_bar(console, "render train", iterations, "n/a (no --holdout)") as (progress, status):
        with staged_stage_dir(out, MODEL_STAGE, force or resume, inputs) as tmp:
            s = train_ensemble(req, tmp, progress, status, _prov(run))
        finish_training(out)
        run.add_output(out, kind="render_model")
    _print_training(console, s, out)


@app.command("distil")
def distil(
    session: Path = typer.Argument(..., help="The capture session the teacher was trained on."),
    fit_dir: Path = typer.Option(..., "--fit", help="The session's `doppel fit` output folder (the teacher's)."),
    teacher: Path = typer.Option(..., "--teacher", help="A `doppel render train` model folder, usually trained "
                                 "with --members 2 or more."),
    out: Path = typer.Option(..., "--out", help="Model folder of the distilled double (one model)."),
    steps: int = typer.Option(1000, "--steps", help="Optimisation steps (at most)."),
    minutes: float = typer.Option(None, "--minutes", help="Wall-clock budget of the optimisation (minutes)."),
    jitter: int = typer.Option(SHOT_JITTER, "--jitter", help="Teacher renders per view at sub-pixel camera shifts, "
                               "averaged: what the student learns to draw in one render."),
    supersample: int = typer.Option(None, "--supersample", help="The student's G-buffer samples per pixel side "
                                    "(1, 2 or 4; default: the teacher's). 1 draws a quarter of the samples."),
    output_filter: float = typer.Option(STUDENT_OUTPUT_FILTER, "--output-filter", help="The student's output filter: "
                                        "every render smoothed by the kernel (w, 1-2w, w) on each axis, learnt "
                                        "through (0 to 1/3; 0 = none)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    masks: Path = typer.Option(None, "--masks", help="Person masks, as given to `render train`."),
    resume: bool = typer.Option(False, "--resume", help="Go on from the checkpoint an interrupted run into --out "
                                "kept (written every 200 steps), with the same options."),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
    force: bool = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output."),
) -> None:
    """Distil a trained ensemble (and its render jitter) into one model: one U-Net and one render per frame."""
    import torch

    from capture.session import check_session_argument
    from core.stage_folders import check_stage_out, staged_stage_dir
    from doppel.render_distil import DistilRequest, distil_session
    from doppel.render_stage import MODEL_STAGE, finish_training, resolve_device, resume_hint
    from neural_render.output_filter import check_output_filter

    session = check_session_argument(session)
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    if supersample not in (None, 1, 2, 4):
        raise ValueError(f"--supersample must be 1, 2 or 4, got {supersample}")
    check_output_filter(output_filter)
    dev = resolve_device(device)
    torch.set_num_threads(1) if dev == "cpu" and torch.get_num_threads() > 1 else None
    req = DistilRequest(session, fit_dir, teacher, out, steps, minutes, jitter, dev, masks, supersample, output_filter,
                        resume=resume)
    inputs = [p for p in (session, fit_dir, teacher, masks) if p is not None]
    check_stage_out(out, MODEL_STAGE, force, inputs)
    console = cli_console()
    on_interrupt(lambda: resume_hint(out))
    with gate_from_cli(workspace, actor, production, use="render", command="render distil", inputs=inputs,
                       outputs=[out]) as run, \
            _optimisation_bar(console, "render distil", steps, "n/a (no held-out cameras)") as (progress, status):
        with staged_stage_dir(out, MODEL_STAGE, force, inputs) as tmp:
            s = distil_session(req, tmp, progress, status, _prov(run))
        finish_training(out)
        run.add_output(out, kind="render_model")
    d = s["distilled"]
    psnr = "n/a" if s["best_holdout_psnr"] is None else f"{s['best_holdout_psnr']:.2f} dB"
    console.print(f"render distil: {s['steps']} steps ({s['stopped']}) on {d['views']} teacher views, held-out PSNR "
                  f"{psnr} (the member it started from: {d['start_holdout_psnr']}, the teacher drawn once: "
                  f"{d['teacher_holdout_psnr']}) -> {out}", markup=False, highlight=False)


def _print_training(console: Console, s: dict, out: Path) -> None:
    """`render train`'s closing lines from its summary ``s``: steps, the kept state, members, snapshots,
    divergences recovered from, advice about the fit."""
    psnr = "n/a" if s["best_holdout_psnr"] is None else f"{s['best_holdout_psnr']:.2f} dB"
    console.print(f"render train: {s['steps']} steps ({s['stopped']}), best held-out PSNR {psnr} at step "
                  f"{s['best_step']}" + (f"; {s['size_note']}" if s["size_note"] else "") + f" -> {out}",
                  markup=False, highlight=False)
    if s.get("member_holdout_psnr"):
        each = ", ".join("n/a" if p is None else f"{p:.2f}" for p in s["member_holdout_psnr"])
        console.print(f"render train: {s['members']} members (held-out PSNR {each} dB alone); the held-out PSNR above "
                      "is the ensemble's", markup=False, highlight=False)
    if s.get("snapshots"):
        alone = s.get("single_state_holdout_psnr")
        console.print(f"render train: {len(s['snapshots']) + 1} states kept (--snapshots), drawn together; member 0's "
                      f"best state alone {'n/a' if alone is None else f'{alone:.2f} dB'} held out",
                      markup=False, highlight=False)
    if s.get("divergences"):
        steps = ", ".join(str(d["step"]) for d in s["divergences"])
        console.print(f"render train: diverged and recovered at step(s) {steps} (the last good state restored, "
                      "learning rates halved; manifest: summary.divergences)", markup=False, highlight=False)
    if s.get("fit_advice"):
        console.print(f"render train: {s['fit_advice']}", markup=False, highlight=False)


def out_of_view_lines(s: dict) -> list[str]:
    """Warnings for the cameras of a shot summary that miss the double, or cut it at the image's edge, in some or
    all frames (frame numbers of the animation)."""
    from doppel.shot_stage import frame_ranges

    lines, total = [], s["frames"]
    for cam, seen in s.get("out_of_view", {}).items():
        for key, what in (("none", "shows none of the double"), ("cut", "cuts the double at the image's edge")):
            n = len(seen.get(key, []))
            if n:
                where = "in every frame" if n == total else f"in {n} of {total} frames ({frame_ranges(seen[key])})"
                lines.append(f"camera {cam} {what} {where}")
    if any(seen.get("none") for seen in s.get("out_of_view", {}).values()) and s.get("animation") \
            and not s.get("recentred"):
        lines.append(f"the animation's first frame stands {s['offset_m']:.2f} m from where the fitted double stood "
                     "in the capture; --recentre moves it there")
    return lines


def _motion_blur(angle: float, samples: int, position: str):
    """The shutter of --shutter / --shutter-samples / --shutter-position, each bad value named by its option."""
    from neural_render.motion_blur import MAX_SHUTTER_SAMPLES, SHUTTER_POSITIONS, MotionBlur

    if not 0 <= angle <= 360:
        raise typer.BadParameter(f"must be between 0 and 360 degrees, got {angle:g}", param_hint="--shutter")
    if not 1 <= samples <= MAX_SHUTTER_SAMPLES:
        raise typer.BadParameter(f"must be from 1 to {MAX_SHUTTER_SAMPLES}, got {samples}",
                                 param_hint="--shutter-samples")
    if position not in SHUTTER_POSITIONS:
        raise typer.BadParameter(f"must be one of {', '.join(SHUTTER_POSITIONS)}, got {position!r}",
                                 param_hint="--shutter-position")
    return MotionBlur(angle, samples, position)


def _shot_line(s: dict, out: Path) -> str:
    """The closing line of `render shot` from its summary."""
    return (f"render shot: {s['frames']} frame(s) x {len(s['cameras'])} camera(s) at {s['size'][0]}x"
            f"{s['size'][1]} ({s['renderer']}, {s['jitter']} render(s) per frame, {s['views_per_call']} "
            "per model call)"
            + (f"; {s['size_note']}" if s["size_note"] else "")
            + (f"; {s['kept_frames']} frame(s) kept from the interrupted shot" if s["kept_frames"] else "")
            + (f"; passes {', '.join(s['aovs'])} in the EXRs" if s["aovs"] else "")
            + (f"; motion blur: {mb['angle']:g}-degree shutter ({mb['position']}), {mb['samples']} samples"
               if (mb := s.get("motion_blur")) else "")
            + (f"; through the cameras' lens distortion (drawn at {s['overscan'][0]}x{s['overscan'][1]}, then "
               "distorted)" if s["overscan"] else "")
            + f" -> {out}")


@app.command("shot")
def shot(
    model_dir: Path = typer.Argument(..., help="A `doppel render train` model folder."),
    cameras: Path = typer.Option(..., "--cameras", help="Calibration JSON of the shot's cameras."),
    camera: list[str] = typer.Option([], "--camera", help="Camera name to render (repeatable; default all)."),
    rig: Path = typer.Option(None, "--rig", help="Rig folder driving the double (with --anim)."),
    anim: Path = typer.Option(None, "--anim", help="Animation folder retargeted onto --rig."),
    frames: str = typer.Option(None, "--frames", help="Frames A:B (B exclusive) of the animation / take."),
    renderer: str = typer.Option("neural", "--renderer", help="neural or cgi (the baked-texture baseline)."),
    size: int = typer.Option(None, "--size", help="Longest image side in px (default: the calibration's)."),
    jitter: int = typer.Option(None, "--jitter", help=f"Renders per frame at sub-pixel camera shifts, averaged (1 = "
                               f"one render; each costs a full render). Default {SHOT_JITTER}, and 1 for a `render "
                               "distil` model (it draws the hedge in one render)."),
    views_per_call: int = typer.Option(None, "--views-per-call", help="Renders drawn by one model call (frames "
                                       "and their jitter renders). Default: 1 on the CPU (in strips: bounded "
                                       "memory); on a GPU as many as fit in half its free memory, at most 8 (views "
                                       "drawn together share the GPU's kernel launches)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    recentre: RecentreOpt = False,
    lens: LensOpt = "distorted",
    aovs: str = typer.Option(None, "--aovs", help="Render passes written into each frame's EXR beside its colour "
                             "(float32, one sample a pixel): depth (Z), position (P), normal (N), uv, motion "
                             "(forward/backward, pixels), comma-separated, or all; parts (body-part mattes) and "
                             "crypto (a Cryptomatte layer of its body parts) when named: Anny's segmentation on "
                             "her mesh, the --rig's joints on another."),
    out: Path = typer.Option(..., "--out", help="Output folder: CAMERA/NNNN.png, CAMERA/NNNN.exr, CAMERA.mp4."),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
    force: bool = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output."),
    resume: bool = typer.Option(False, "--resume", help="Go on from where a killed or interrupted shot into --out "
                                "stopped (its checkpoint .OUT.shot.checkpoint: the frames written), with the same "
                                "inputs and options; the frames and movies are those of an uninterrupted shot."),
    no_provenance: NoProvenanceOpt = False,
    label: LabelOpt = None,
    shutter: ShutterOpt = 0.0,
    shutter_samples: ShutterSamplesOpt = 8,
    shutter_position: ShutterPositionOpt = "centre",
) -> None:
    """Render frames of the double: sRGB PNGs, linear half-float EXRs and an mp4 per camera."""
    from core.stage_folders import check_stage_out, staged_stage_dir
    from doppel.media_disclosure import discloser
    from doppel.render_stage import resolve_device
    from doppel.shot_checkpoint import ShotCheckpoint, resume_hint, shot_key
    from doppel.shot_stage import LENSES, SHOT_STAGE, chosen_cameras, model_weights, render_shot
    from neural_render.aovs import parse_aovs

    passes = parse_aovs(aovs)
    blur = _motion_blur(shutter, shutter_samples, shutter_position)
    dev = resolve_device(device)
    inputs = [p for p in (model_dir, cameras, rig, anim) if p is not None]
    check_stage_out(out, SHOT_STAGE, force, inputs)
    chosen = chosen_cameras(cameras, camera)   # a camera the calibration lacks: one line before the gate and the bar
    if lens not in LENSES:
        raise typer.BadParameter(f"must be one of {', '.join(LENSES)}, got {lens!r}", param_hint="--lens")
    console = cli_console()
    on_interrupt(lambda: resume_hint(out))
    options = {"cameras": sorted(camera), "frames": frames, "renderer": renderer, "size": size, "jitter": jitter,
               "recentre": recentre, **({"aovs": list(passes)} if passes else {}),
               **({"lens": lens} if any(c.has_distortion for c in chosen) else {}),
               **({"motion_blur": blur.summary()} if blur.on else {})}
    with gate_from_cli(workspace, actor, production, use="render", command="render shot", inputs=inputs,
                       likeness=[p for p in (model_dir, rig) if p is not None],
                       evidence=[p for p in (anim,) if p is not None], outputs=[out]) as run, \
            stage_bar(console) as bar:
        weights = model_weights(model_dir)
        disclose = discloser(run, no_provenance, label, kind="render", ingredients=weights)
        task = bar.add_task("render shot", total=None)
        key = shot_key(model_dir, cameras, rig, anim, options, {"provenance": not no_provenance, "label": label},
                       run.provenance)
        with ShotCheckpoint(out, key, resume) as ck, staged_stage_dir(out, SHOT_STAGE, force, inputs) as tmp:
            s = render_shot(model_dir, cameras, tmp, camera, rig, anim, frames, renderer, size, dev, run.provenance,
                            lambda i, n: bar.update(task, completed=i, total=n), disclose, jitter, views_per_call,
                            recentre, checkpoint=ck, aovs=passes, lens=lens, motion_blur=blur)
        run.add_output(out, kind="render")
    console.print(_shot_line(s, out), markup=False, highlight=False)
    for line in out_of_view_lines(s):
        console.print(f"render shot: {line}", markup=False, highlight=False, style="yellow")
