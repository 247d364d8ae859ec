"""`doppel fit`: fit a body model to a capture session (multi-view) or register it to a scan."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from doppel.commands.cli_output import cli_console, on_interrupt
from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli


def fit(
    session: Path = typer.Argument(None, help="Capture session folder (multi-view fit)."),
    out: Path = typer.Option(..., "--out", help="Output folder: params.json, fit_mesh.ply, metrics.json, ..."),
    landmarks: Path = typer.Option(None, "--landmarks",
                                   help="Landmark (ingest) folder of the session; with --scan: a control-point pairs "
                                        "file PAIRS.json (scan point/vertex <-> model vertex/landmark)."),
    scan: Path = typer.Option(None, "--scan", help="A scan mesh (.ply/.obj) to register the model to."),
    model: str = typer.Option("anny", "--model",
                              help="Body model: anny; smplx or flame (session fits; files from --model-file or "
                                   "$DOPPEL_MODELS_DIR)."),
    model_file: Path = typer.Option(None, "--model-file", help="SMPL-X / FLAME model file or folder."),
    landmark_embedding: Path = typer.Option(None, "--landmark-embedding",
                                            help="FLAME: its mediapipe_landmark_embedding.npz (default: beside the "
                                                 "model file, else $DOPPEL_MODELS_DIR/flame/)."),
    iterations: int = typer.Option(0, "--iterations",
                                   help="Scan: Adam chamfer steps before the refinement (0 = none; 150 when no "
                                        "landmarks are found)."),
    refine_iterations: int = typer.Option(25, "--refine-iterations",
                                          help="Scan: model-fit ICP rounds solved by L-BFGS (0 = none)."),
    units: str = typer.Option("auto", "--units",
                              help="Scan: the file's length unit: auto (from its size: m, cm or mm), m, cm, mm, "
                                   "inch. Outputs are in metres."),
    rigid_init: str = typer.Option("up", "--rigid-init", help="Scan alignment start: up (scan +Y up), pca, identity."),
    nonrigid_iterations: int = typer.Option(6, "--nonrigid-iterations",
                                            help="Non-rigid ICP iterations per stiffness step (0 = no non-rigid)."),
    nonrigid_method: str = typer.Option("anchored", "--nonrigid-method",
                                        help="Scan: anchored (keeps correspondence, reports sliding) or nricp."),
    auto_landmarks: bool = typer.Option(True, "--auto-landmarks/--no-auto-landmarks",
                                        help="Scan: detect MediaPipe landmarks on renders of the scan."),
    texture_size: int = typer.Option(1024, "--texture-size",
                                     help="Scan with colour: albedo.png size in texels (0 = no texture transfer)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    stages: str = typer.Option("40,300,100,100", "--stages",
                               help="Session fit: Adam iterations of the rigid, body, face and all stages."),
    frame: str = typer.Option(None, "--frame",
                              help="Session fit: the frame to fit (default: the first); 'all': every frame of the "
                                   "take, the later ones warm-started with the first's shape and temporal smoothness."),
    frames: str = typer.Option(None, "--frames",
                               help="Session fit of a take: its frames A:B alone (B exclusive; implies --frame all), "
                                    "the first of them fitted as the take's first: a part of a long take."),
    silhouette_weight: float = typer.Option(0.0, "--silhouette-weight",
                                            help="Session fit: weight of the person-mask term (0 = off)."),
    correspondences: str = typer.Option("auto", "--correspondences",
                                        help="Session fit: calibrated (MediaPipe pose, face mesh and hands through "
                                             "the calibrated regressor), joints (21 pose landmarks at joints), auto "
                                             "(calibrated when the model has a regressor)."),
    temporal_weight: float = typer.Option(1.0, "--temporal-weight",
                                          help="Session fit with --frame all: weight of the change from the previous "
                                               "frame (0 = frames fitted independently, warm-started)."),
    detail_iterations: int = typer.Option(60, "--detail-iterations",
                                          help="Session fit: silhouette detail iterations after the model fit "
                                               "(displacements along the normals; 0 = none)."),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
    force: bool = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output."),
    resume: bool = typer.Option(False, "--resume", help="With --frame all: go on from where a killed or interrupted "
                                "fit of the take into --out stopped (its checkpoint .OUT.fit.checkpoint: the frames "
                                "fitted), with the same inputs and options; the fit is that of an uninterrupted run."),
) -> None:
    """Fit the body model; writes OUT/params.json, fit_mesh.ply, fit_mesh_bind.ply, displacements.npz, metrics.json."""
    from core.stage_folders import check_stage_out
    from reconstruction.fitting import resolve_device

    dev = resolve_device(device)
    frame = _check_source(session, scan, frame, frames, resume)
    if scan is None:
        from capture.session import check_session_argument

        session = check_session_argument(session)
        check_stage_out(out, "fit", force, [p for p in (session, landmarks, model_file) if p is not None])
        _fit_session(session, landmarks, out, model, dev, stages, frame, silhouette_weight, correspondences,
                     detail_iterations, temporal_weight, workspace, actor, production, model_file,
                     landmark_embedding, force, resume, frames)
        return
    _fit_scan(scan, out, landmarks, model, dev, (iterations, refine_iterations), units, rigid_init,
              nonrigid_iterations, nonrigid_method, auto_landmarks, texture_size, workspace, actor, production, force)


def _check_source(session: Path | None, scan: Path | None, frame: str | None, frames: str | None,
                  resume: bool | str) -> str | None:
    """One source (a session or a scan), --frames only for a take, --resume only with one (ValueError, one line);
    returns --frame ("all" when --frames gives a range)."""
    if frames is not None:
        if scan is not None:
            raise ValueError(f"--frames {frames} fits a range of a session's take, not a scan")
        if frame not in (None, "all"):
            raise ValueError(f"--frames {frames} fits a range of the take; --frame {frame} fits one frame: give one")
        frame = "all"
    if scan is not None and session is not None:
        raise ValueError("give either a capture SESSION_DIR (with --landmarks) or --scan SCAN.ply, not both: "
                         "a scan registration does not use the session")
    if scan is None and session is None:
        raise ValueError("give a capture SESSION_DIR (with --landmarks) or --scan SCAN.ply")
    if resume is True and (scan is not None or frame != "all"):
        raise ValueError("--resume goes on with the fit of a whole take: it needs a SESSION and --frame all (one "
                         "frame or a scan is fitted in one go)")
    return frame


def _fit_scan(scan: Path, out: Path, pairs: Path | None, model: str, dev: str, iterations: tuple[int, int],
              units: str, rigid_init: str,
              nonrigid_iterations: int, nonrigid_method: str, auto_landmarks: bool, texture_size: int, workspace,
              actor, production, force: bool) -> None:
    """The scan path: checks, then register_scan through run_scan_fit into a staged fit folder + report.html.
    iterations: (Adam chamfer steps, refinement ICP rounds)."""
    from core.stage_folders import check_stage_out, staged_stage_dir
    from reconstruction.body_models import AnnyModel
    from reconstruction.scan_pipeline import ScanPipelineConfig, run_scan_fit

    if model != "anny":
        raise ValueError(f"--model {model}: the scan path supports anny only for now")
    iterations, refine_iterations = iterations
    if iterations < 0 or refine_iterations < 0:
        raise ValueError(f"--iterations and --refine-iterations must be >= 0, got {iterations}, {refine_iterations}")
    if nonrigid_method not in ("anchored", "nricp"):
        raise ValueError(f"--nonrigid-method must be anchored or nricp, got {nonrigid_method!r}")
    if texture_size < 0:
        raise ValueError(f"--texture-size must be >= 0, got {texture_size}")
    if pairs is not None:
        from reconstruction.scan_pairs import read_pairs

        read_pairs(pairs)                           # a bad pairs file fails before any slow work
    inputs = [scan] + ([pairs] if pairs else [])
    check_stage_out(out, "fit", force, inputs)      # before any slow work
    from reconstruction.scan_registration import load_scan

    loaded = load_scan(scan, units)                 # unreadable, or no person's size in any unit: before the gate
    console = cli_console()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn())
    with gate_from_cli(workspace, actor, production, use="fit", command="fit", inputs=inputs, outputs=[out]) as run, \
            Progress(*columns, console=console) as bar:
        task = bar.add_task("fit: loading model", total=1.0)
        body = AnnyModel(device=dev)
        prov = {**run.manifest_params,
                **({"model_file": str(body.path)} if hasattr(body, "path") else {})}   # for `doppel rig --fit`
        cfg = ScanPipelineConfig(iterations=iterations, refine_iterations=refine_iterations, units=units,
                                 rigid_init=rigid_init,
                                 nonrigid=nonrigid_iterations > 0,
                                 nonrigid_iterations=max(nonrigid_iterations, 1), nonrigid_method=nonrigid_method,
                                 auto_landmarks=auto_landmarks, pairs=pairs, texture_size=texture_size)
        with staged_stage_dir(out, "fit", force, inputs) as tmp:
            metrics = run_scan_fit(body, scan, tmp, cfg, provenance=prov, scan=loaded,
                                   progress=lambda d, f: bar.update(task, description=f"fit: {d}", completed=f))
            _write_scan_report(tmp, metrics, shown=out)
        run.add_output(out, kind="fit")
    if loaded.units != "m":
        console.print(f"fit: {scan.name} read in {loaded.units} ({'from its size, ' if units == 'auto' else ''}"
                      f"x {loaded.unit_scale:g} to metres; --units to change); the outputs are in metres")
    if metrics.get("scan_up", "+Y") != "+Y":
        how = ("found on it turned upright" if metrics.get("scan_turned_upright") else
               "found on it as it lies (fewer were found on it turned upright)")
        console.print(f"fit: {scan.name} stands along {metrics['scan_up']}, not +Y: its landmarks were {how} (the "
                      "outputs stay in the scan's frame)")
    console.print(f"fit: registered to {scan.name}: mean distance {metrics['registered_to_scan']['mean_mm']:.2f} mm "
                  f"(model alone {metrics['model_fit_to_scan']['mean_mm']:.2f} mm) -> {out}")
    for w in metrics.get("warnings") or []:
        console.print(f"[bold yellow]fit: warning:[/] {w}")


def _write_scan_report(out: Path, metrics: dict, shown: Path | None = None) -> None:
    """OUT/report.html of a scan registration: numbers, the detected scan landmarks, the sliding heat map."""
    from doppel.report import Section, write_report

    lm = metrics.get("scan_landmarks") or {}
    table = {"scan units": metrics.get("scan_units", "m"), "body's up in the scan": metrics.get("scan_up", "+Y"),
             "rigid start": metrics["rigid_start"],
             "scan landmarks (pose/face/hands)": "off" if not lm else
             f"{lm['pose']}/{lm['face']}/{lm['hand.L'] + lm['hand.R']}",
             "model fit to scan (mean/p95 mm)": "{mean_mm:.2f} / {p95_mm:.2f}".format(**metrics["model_fit_to_scan"]),
             "registered to scan (mean/p95 mm)": "{mean_mm:.2f} / {p95_mm:.2f}".format(**metrics["registered_to_scan"]),
             "sliding along the surface (mean/p95 mm)": "{mean_mm:.2f} / {p95_mm:.2f}".format(**metrics["sliding"]),
             **{f"{k} residual (fit -> registered, mm)": f"{v['model_fit_mm']:.1f} -> {v['registered_mm']:.1f} "
                f"({v['count']})" for k, v in (metrics.get("correspondences") or {}).items()},
             **({"texture coverage": f"{metrics['texture_coverage']:.1%}"} if "texture_coverage" in metrics else {}),
             **{f"time {k}": f"{v:.1f}" for k, v in metrics["seconds"].items()}}
    files = ["params.json", "fit_mesh.ply", "model_fit_mesh.ply", "fit_mesh_bind.ply", "metrics.json", "sliding.npz"]
    if (out / "albedo.png").is_file():
        files.append("albedo.png")
    sections = [Section("Scan registration", table=table, files=files)]
    if metrics.get("warnings"):
        sections.insert(0, Section("Warnings", text=" ".join(f"{w}." for w in metrics["warnings"])))
    if (out / "scan_landmarks.png").is_file():
        sections.append(Section("Scan landmarks", text="Renders of the scan with MediaPipe's detections: pose green, "
                                "face mesh red, hands blue (triangulated over the ring of views).",
                                images=[("scan_landmarks.png", "detected scan landmarks")]))
    sections.append(Section("Sliding", text="How far each vertex moved along the model fit's surface in the non-rigid "
                            "stage (blue 0, red >= 10 mm), front and back.", images=[("sliding.png", "sliding")]))
    write_report(out / "report.html", "Scan registration", sections, subtitle=str(shown or out))


def _fit_session(session: Path, landmarks: Path | None, out: Path, model: str, dev: str, stages: str,
                 frame: str | None, silhouette_weight: float, correspondences: str, detail_iterations: int,
                 temporal_weight: float, workspace, actor, production, model_file: Path | None = None,
                 landmark_embedding: Path | None = None, force: bool = False, resume: bool | str = False,
                 frames: str | None = None) -> None:
    """The multi-view path: session cameras + ingest landmarks -> fit folder, overlays and report.html (a take:
    every frame, through a checkpoint that ``resume`` goes on from)."""
    from core.stage_folders import staged_stage_dir
    from reconstruction.session_fit import fit_session

    if landmarks is None:
        raise ValueError("--landmarks INGEST_DIR is required with a SESSION_DIR (run `doppel capture ingest` first)")
    if model not in ("anny", "smplx", "flame"):
        raise ValueError(f"--model must be anny, smplx or flame, got {model!r}")
    cfg, iters = _session_config(stages, silhouette_weight, correspondences, detail_iterations, temporal_weight,
                                 landmark_embedding)
    if frames is not None:                  # a range outside the take: said before the gate and the model load
        from capture.ingest import load_ingest
        from core.frame_ranges import parse_frames

        parse_frames(frames, len(load_ingest(landmarks).frames))
    inputs = [p for p in (session, landmarks, model_file) if p is not None]
    console = cli_console()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f}"),
               TimeElapsedColumn())
    total = sum(iters) + detail_iterations
    offsets = {"rigid": 0, "body": iters[0], "face": iters[0] + iters[1], "all": iters[0] + iters[1] + iters[2],
               "detail": sum(iters)}
    if frame == "all":
        from reconstruction.take_checkpoint import resume_hint, take_key

        on_interrupt(lambda: resume_hint(out))
    with gate_from_cli(workspace, actor, production, use="fit", command="fit",
                       inputs=[session, landmarks], outputs=[out]) as run, Progress(*columns, console=console) as bar:
        task = bar.add_task("fit: loading model", total=max(total, 1))
        body = _session_model(model, model_file, dev)
        prov = {**run.manifest_params,
                **({"model_file": str(body.path)} if hasattr(body, "path") else {})}   # for `doppel rig --fit`

        def progress(stage: str, it: int, n: int, loss: float) -> None:
            bar.update(task, description=f"fit: {stage} loss {loss:.4f}", completed=offsets.get(stage, 0) + it)

        if frame == "all":
            key = take_key(session, landmarks, model, model_file, landmark_embedding, {
                "stages": iters, "silhouette_weight": silhouette_weight, "correspondences": correspondences,
                "detail_iterations": detail_iterations, "temporal_weight": temporal_weight, "frames": frames},
                run.provenance)
            summary = _fit_take(body, session, landmarks, out, cfg, prov, (key, resume, force, inputs, frames), bar,
                                task)
        else:
            with staged_stage_dir(out, "fit", force, inputs) as tmp:
                res = fit_session(body, session, landmarks, tmp, cfg, frame=frame, progress=progress, params=prov)
                bar.update(task, description="fit: overlays and report", completed=max(total, 1), total=max(total, 1))
                _write_report(tmp, res, shown=out)
            summary = {"frame": res.frame, "views": len(res.camera_names), "seeing": res.views_seeing,
                       "px": res.result.reprojection_px, "seconds": res.seconds["total"]}
        run.add_output(out, kind="fit")
    console.print(f"fit: {summary['views']} views ({summary['seeing']} see the person), landmark reprojection "
                  f"{summary['px']:.2f} px, {summary['seconds']:.1f} s -> {out}" + summary.get("more", ""))


def _session_config(stages: str, silhouette_weight: float, correspondences: str, detail_iterations: int,
                    temporal_weight: float, landmark_embedding: Path | None):
    """The FitConfig of a session fit from the command's options (ValueError, one line, for a bad one), and the
    four stages' iterations."""
    from reconstruction.fitting import FitConfig

    try:
        iters = [int(x) for x in stages.split(",")]
    except ValueError:
        iters = []
    if len(iters) != 4 or min(iters) < 0:
        raise ValueError(f"--stages must be four non-negative integers 'rigid,body,face,all', got {stages!r}")
    if not math.isfinite(silhouette_weight) or silhouette_weight < 0:
        raise ValueError(f"--silhouette-weight must be a finite number >= 0, got {silhouette_weight}")
    if correspondences not in ("auto", "calibrated", "joints"):
        raise ValueError(f"--correspondences must be auto, calibrated or joints, got {correspondences!r}")
    if detail_iterations < 0:
        raise ValueError(f"--detail-iterations must be >= 0, got {detail_iterations}")
    if not math.isfinite(temporal_weight) or temporal_weight < 0:
        raise ValueError(f"--temporal-weight must be a finite number >= 0, got {temporal_weight}")
    cfg = FitConfig(iters_rigid=iters[0], iters_body=iters[1], iters_face=iters[2], iters_all=iters[3],
                    w_silhouette=silhouette_weight, correspondences=correspondences,
                    detail_iterations=detail_iterations, w_temporal=temporal_weight,
                    landmark_embedding=None if landmark_embedding is None else str(landmark_embedding))
    return cfg, iters


def _fit_take(body, session: Path, landmarks: Path, out: Path, cfg, prov: dict, run_args: tuple, bar, task) -> dict:
    """Every frame of the take through its checkpoint (`reconstruction.take_checkpoint`), the first frame's
    report written as soon as it is fitted; returns the console line's numbers. run_args: (the checkpoint's key,
    resume, force, the stage's inputs, --frames)."""
    from core.stage_folders import staged_stage_dir
    from doppel.take_report import write_take_report
    from reconstruction.session_fit import fit_session_sequence
    from reconstruction.take_checkpoint import TakeCheckpoint

    key, resume, force, inputs, frames = run_args

    def progress(stage: str, it: int, n: int, loss: float) -> None:   # "FRAME: stage"
        bar.update(task, description=f"fit: {stage} loss {loss:.4f}", completed=it, total=n)

    def first_report(index: int, fit, folder: Path) -> None:
        if index == 0:
            _write_report(folder, fit, shown=out, take=True)

    with TakeCheckpoint(out, key, resume) as ck, staged_stage_dir(out, "fit", force, inputs) as tmp:
        take = fit_session_sequence(body, session, landmarks, tmp, cfg, progress=progress, params=prov,
                                    checkpoint=ck, on_frame=first_report, frames=frames)
        metrics = json.loads((tmp / "metrics.json").read_text(encoding="utf-8"))
        write_take_report(tmp, metrics, shown=out)
    kept = len(take.frames) - len(take.fitted)
    weak = metrics["frames_seen_by_fewer_than_two_views"]
    n = len(metrics["frames"])
    more = ((f" (+ {n - 1} more frames in {out / 'frames'}" if n > 1 else " (a take of one frame")
            + (f"; {kept} kept from the interrupted fit" if kept else "") + ")"
            + (f"; {len(weak)} frame(s) seen by fewer than two views, steered by the frames before them: "
               f"{_frame_list(weak)} (metrics.json)" if weak else ""))
    return {"frame": metrics["frame"], "views": metrics["views"], "seeing": metrics["views_seeing_person"],
            "px": metrics["reprojection_px"], "seconds": sum(r["seconds"] for r in metrics["frames"].values()),
            "more": more}


def _frame_list(frames: list[str], shown: int = 8) -> str:
    """Frame names for a console line: the first ``shown`` and how many more."""
    return ", ".join(frames[:shown]) + (f" and {len(frames) - shown} more" if len(frames) > shown else "")


def _session_model(model: str, model_file: Path | None, dev: str):
    """The body model of a session fit: Anny, or SMPL-X / FLAME from --model-file or $DOPPEL_MODELS_DIR."""
    from reconstruction.body_models import AnnyModel, FLAMEModel, SMPLXModel

    if model == "anny":
        return AnnyModel(device=dev)
    return (SMPLXModel if model == "smplx" else FLAMEModel)(model_file, device=dev)


def _write_report(out: Path, res, shown: Path | None = None, take: bool = False) -> None:
    """OUT/report.html of a session fit; ``shown``: the folder's final path, for the subtitle; ``take``: the first
    frame of a take (linking take.html, every frame's)."""
    from doppel.report import Section, write_report

    r = res.result
    table = {"frame": res.frame, "views (seeing the person)": f"{len(res.camera_names)} ({res.views_seeing})",
             "landmarks": len(res.spec), "reprojection (px)": f"{r.reprojection_px:.2f}",
             "silhouette detail": ("off or not possible" if res.detail is None else
                                   f"mask disagreement {res.detail.disagreement_before:.4f} -> "
                                   f"{res.detail.disagreement_after:.4f}, mean |d| "
                                   f"{float(abs(res.detail.displacements).mean()) * 1000:.2f} mm"),
             **{f"time {k} (s)": f"{v:.1f}" for k, v in res.seconds.items()}}
    views = Section("Per-view overlays", text="Yellow: the fitted mesh's silhouette outline. Green: MediaPipe's "
                    "pose landmarks; red: the fitted model's landmarks; white: the residual between them.",
                    images=[(p, f"{c}: {_px(res.view_reprojection_px[c])}")
                            for p, c in zip(res.overlays, res.camera_names, strict=True)])
    write_report(out / "report.html", "Multi-view fit", [Section("Fit", table=table,
                                                                files=["params.json", "fit_mesh.ply",
                                                                       "fit_mesh_bind.ply", "metrics.json"]
                                                                + (["model_fit_mesh.ply", "displacements.npz"]
                                                                   if res.detail is not None else [])), views]
                 + ([Section("Take", text="This is the take's first frame; every frame: take.html.",
                             files=["take.html"])] if take else []),
                 subtitle=str(shown or out))


def _px(error: float) -> str:
    """A view's landmark error for the report: 'N.N px', or what a view with none of the landmarks shows."""
    return f"{error:.1f} px" if error == error else "no landmarks seen"
