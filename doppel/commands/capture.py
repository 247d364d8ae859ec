"""`doppel capture calibrate|ingest|qc|synth`: rig calibration, session processing, quick QC, and the
synthetic capture rig."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from doppel.commands.cli_output import cli_console, on_interrupt, print_table
from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, find_workspace, gate_from_cli

app = typer.Typer(help="Capture sessions: rig calibration, landmarks, masks, triangulation, QC, synthetic rig.",
                  no_args_is_help=True)
console = cli_console()
ForceOpt = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output.")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


@app.command("calibrate")
def calibrate(
    images_dir: Path = typer.Argument(..., help="IMAGES_DIR/CAMERA/*.png: one folder per camera; photos of one "
                                               "moment share their file name, or their name without the camera's "
                                               "(cam01_0001.png, cam02_0001.png), or their frame number."),
    board: str = typer.Option("charuco:squares_x=7,squares_y=5,square=0.08,marker=0.06,dict=DICT_5X5_100",
                              "--board", help="charuco:squares_x=..,squares_y=..,square=M,marker=M,dict=NAME"),
    out: Path = typer.Option(Path("calibration.json"), "--out", help="Doppel calibration JSON to write."),
    reference: str = typer.Option(None, "--reference", help="camera whose first board view fixes the world frame"),
    colmap: Path = typer.Option(None, "--colmap", help="also write a COLMAP text model into this folder"),
    sfm: bool = typer.Option(False, "--sfm", help="uncalibrated photos: structure from motion (pycolmap) on "
                                                  "IMAGES_DIR/*.png, or on one moment's photos of the camera "
                                                  "folders IMAGES_DIR/CAMERA/; scale from --distance or the board"),
    distance: str = typer.Option(None, "--distance", help="with --sfm: CAM_A,CAM_B,METRES between two camera "
                                                          "centres (else the board in view fixes the scale)"),
    threads: int = typer.Option(None, "--threads", min=1, help="the threads that read the photos: find the board "
                                                               "in them, or with --sfm extract and match their "
                                                               "features (default: every core); any number gives "
                                                               "the same cameras."),
    mapper_threads: int = typer.Option(1, "--mapper-threads", min=1, help="with --sfm: the mapper's threads. 1 (the "
                                                                          "default) gives the same cameras run after "
                                                                          "run; more may be faster on a large rig "
                                                                          "but the cameras vary a little between "
                                                                          "runs."),
    matching: str = typer.Option("auto", "--matching", help="with --sfm: which photos are matched: exhaustive "
                                                            "(every pair), retrieval (each photo with its "
                                                            "--neighbours most alike), auto (every pair up to twice "
                                                            "--neighbours photos, retrieval beyond)."),
    neighbours: int = typer.Option(30, "--neighbours", min=1, help="with --sfm and retrieval: the photos each "
                                                                   "photo is matched with"),
    moment: str = typer.Option(None, "--moment", help="with --sfm on the camera folders: the moment whose photos "
                                                      "are used (its file name or frame number, e.g. 0012); by "
                                                      "default the one most cameras saw"),
    force: bool = typer.Option(False, "--force", help="Replace an --out file that is not a Doppel calibration, or "
                                                      "a --colmap folder's COLMAP model Doppel did not write."),
) -> None:
    """Calibrate a rig from ChArUco board photos: intrinsics, extrinsics (bundle-adjusted), RMS per camera."""
    from capture.calibration_io import check_calibration_out, check_colmap_out
    from capture.charuco import BoardSpec
    from core.stage_folders import output_parent, sole_writer

    spec = BoardSpec.parse(board)
    _check_sfm_options(sfm, (threads, mapper_threads), matching, neighbours, moment)
    if colmap is not None:
        check_colmap_out(colmap, force)
    # two calibrations into one file: the later one is refused; a failed or stopped one leaves no folder it made
    with output_parent(out), sole_writer(out):
        check_calibration_out(out, force)
        if sfm:
            _calibrate_sfm(images_dir, spec, out, colmap, distance, (threads, mapper_threads), (matching, neighbours),
                           moment)
        else:
            _calibrate_board(images_dir, spec, board, out, reference, colmap, threads)


def _check_sfm_options(sfm: bool, threads: tuple[int | None, int], matching: str, neighbours: int,
                       moment: str | None = None) -> None:
    """The options only structure from motion reads are refused without --sfm; --matching is one it knows.
    threads: (--threads, --mapper-threads): the first is both calibrations'."""
    from capture.colmap_retrieval import DEFAULT_NEIGHBOURS, MATCHING_CHOICES

    if matching not in MATCHING_CHOICES:
        raise ValueError(f"--matching {matching}: expected one of {', '.join(MATCHING_CHOICES)}")
    given = [name for name, on in (("--mapper-threads", threads[1] != 1),
                                   ("--matching", matching != "auto"),
                                   ("--neighbours", neighbours != DEFAULT_NEIGHBOURS),
                                   ("--moment", moment is not None)) if on]
    if given and not sfm:
        raise ValueError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for --sfm (COLMAP); the "
                         "board calibration uses every moment's board photos, matches the board's corners and "
                         "places every camera with one bundle adjustment")


def _calibrate_board(images_dir: Path, spec, board: str, out: Path, reference: str | None,
                     colmap: Path | None, threads: int | None = None) -> None:
    from capture.calibration_io import write_colmap_text, write_doppel_json
    from capture.charuco import calibrate_rig_from_folder
    from capture.rig_moments import RULES

    with _progress() as prog:
        task = prog.add_task("calibrating", total=None)
        res = calibrate_rig_from_folder(images_dir, spec, reference_camera=reference, num_threads=threads,
                                        progress=lambda msg: prog.update(task, description=msg))
    write_doppel_json(out, res.cameras, rms=res.rms, calibration=res.summary(), board=board)
    if colmap:
        write_colmap_text(colmap, res.cameras)
    t = Table(title=f"rig calibration ({len(res.cameras)} cameras) -> {out}")
    for col in ("camera", "fx", "fy", "cx", "cy", "RMS px", "views", "missing"):
        t.add_column(col)
    for c in res.cameras:
        t.add_row(c.name, f"{c.K[0, 0]:.1f}", f"{c.K[1, 1]:.1f}", f"{c.K[0, 2]:.1f}", f"{c.K[1, 2]:.1f}",
                  f"{res.rms[c.name]:.3f}", str(len(res.views_used[c.name])), str(len(res.missing_views[c.name])))
    print_table(t, console)
    for cam, m, e in res.outlier_views:
        console.print(f"[yellow]outlier view left out: {cam}/{m} (RMS {e:.2f} px)[/yellow]")
    if res.moments_matched_by != RULES[0]:
        console.print(f"photos of one moment matched by {res.moments_matched_by} (file names differ per camera)")
    console.print(f"world frame: the board at moment {res.reference[1]!r} seen by {res.reference[0]!r}")


def _calibrate_sfm(images_dir: Path, spec, out: Path, colmap: Path | None, distance: str | None,
                   threads: tuple[int | None, int], matching: tuple[str, int], moment: str | None = None) -> None:
    """threads: (features and matching: None for every core, the mapper's); matching: (--matching,
    --neighbours)."""
    from capture.calibration_io import write_colmap_text, write_doppel_json
    from capture.sfm import run_sfm

    known = None
    if distance:
        parts = distance.split(",")
        if len(parts) != 3:
            raise ValueError(f"--distance {distance!r}: expected CAM_A,CAM_B,METRES")
        known = (parts[0].strip(), parts[1].strip(), float(parts[2]))
    from core.leftovers import work_folder

    # pycolmap's database of the photos' features (GBs for a big rig) beside the output, not in a small /tmp
    with work_folder(out) as work, Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                            TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("structure from motion", total=100)
        res = run_sfm(images_dir, work / "colmap", known_distance=known, board=None if known else spec,
                      num_threads=threads[0], mapper_threads=threads[1], matching=matching[0],
                      neighbours=matching[1], moment=moment,
                      progress=lambda step, f: bar.update(
                          task, description=f"SfM: {step}", completed=round(100 * f)))
    write_doppel_json(out, res.cameras, sfm={"registered": res.registered, "unregistered": res.unregistered,
                                             "mean_reprojection_px": res.mean_reprojection_px,
                                             "scale": res.scale, "scale_source": res.scale_source,
                                             "matching": res.matching, "moment": res.moment,
                                             "stand_in": res.stand_in, "threads": res.threads})
    if colmap:
        write_colmap_text(colmap, res.cameras)
    pairs = {"matching_s": f" ({_matched(res.matching)})"} if res.matching else {}
    took = [f"{k.removesuffix('_s')} {v:.0f} s{pairs.get(k, '')}" for k, v in res.seconds.items() if k != "scale_s"]
    took.append(_threads_used(res.threads))
    console.print(f"SfM: {len(res.registered)} images registered, {res.n_points} points, mean reprojection "
                  f"{res.mean_reprojection_px:.2f} px, scale from {res.scale_source} ({', '.join(took)}) -> {out}")
    if res.moment is not None:
        console.print(f"the photos of moment {res.moment!r}" + (f"; {len(res.stand_in)} camera(s) without one, their "
                      f"first photo used: {', '.join(res.stand_in)}" if res.stand_in else ""))
    if res.unregistered:
        console.print(f"[yellow]not registered: {', '.join(res.unregistered)}[/yellow]")


def _threads_used(threads: dict) -> str:
    """'features and matching on 2 threads, mapping on 1' (`SfmResult.threads`)."""
    n, m = threads["features_matching"], threads["mapping"]
    return f"features and matching on {n} thread{'s' if n > 1 else ''}, mapping on {m}"


def _matched(matching: dict) -> str:
    """The pairs matched, in words: '276 pairs: every pair' or '1340 pairs: each photo's 30 most alike'."""
    how = "every pair" if matching["mode"] == "exhaustive" else f"each photo's {matching['neighbours']} most alike"
    return f"{matching['pairs']} pairs: {how}"


@app.command("cameras")
def cameras_cmd(
    calibration: Path = typer.Argument(..., help="A calibration: Doppel JSON, a Metashape cameras XML, a COLMAP "
                                                 "model folder, OpenCV YAML/XML/JSON."),
    out: Path = typer.Option(None, "--out", help="Also write it: Doppel's calibration .json, or the cameras for "
                                                 "DCC tools as Alembic (.abc) or USD (.usd/.usda/.usdc)."),
    units: str = typer.Option("m", "--units", help="Length unit of an .abc / USD --out: m or cm (Maya)."),
    st_maps: Path = typer.Option(None, "--st-maps", help="Also write each distorted camera's undistort and "
                                                         "redistort ST-maps (float EXR, Nuke's STMap) in this "
                                                         "folder."),
    force: bool = typer.Option(False, "--force", help="Replace an --out file that Doppel did not write."),
) -> None:
    """What a calibration holds, to check one made elsewhere before a session is assembled on it: each camera's
    image size, focal length, field of view and distance to the rig's centre, and the rig's size (are its units
    metres?). With --out, written as Doppel JSON, or as DCC cameras (Alembic, USD: Y-up, each camera where the
    calibration put it, its K as focal length, filmback and film offset)."""
    from assets.export.camera_scene import SCENE_FORMATS
    from capture.calibration_io import read_calibration, write_doppel_json
    from capture.rig_summary import summarize_rig

    if out is not None and out.suffix.lower() not in (".json", *SCENE_FORMATS):
        raise ValueError(f"--out {out}: write a calibration as .json, or its cameras as .abc, .usd, .usda or .usdc")
    _check_cameras_out(out, force)

    cams = read_calibration(calibration)
    rig = summarize_rig(cams)
    t = Table(title=f"{calibration} ({len(cams)} cameras)")
    for col in ("camera", "size", "fx", "fy", "fov y", "distortion", "to centre"):
        t.add_column(col)
    for r in rig.cameras:
        t.add_row(r.name, f"{r.width}x{r.height}", f"{r.fx:.1f}", f"{r.fy:.1f}", f"{r.fov_y_deg:.1f} deg",
                  "yes" if r.distortion else "no", f"{r.distance_m:.3f} m")
    print_table(t, console)
    c = rig.centre
    console.print(f"rig: {len(cams)} cameras spanning {rig.span_m:.3f} m around ({c[0]:.3f}, {c[1]:.3f}, "
                  f"{c[2]:.3f})", markup=False, highlight=False)
    for note in rig.notes:
        console.print(f"[yellow]{note}[/yellow]")
    if out is not None and out.suffix.lower() == ".json":
        write_doppel_json(out, cams)
        console.print(f"wrote {out}", markup=False, highlight=False)
    elif out is not None:
        _write_dcc_cameras(cams, calibration, out, units)
    if st_maps is not None:
        from assets.export.rig_cameras import write_st_maps

        maps = write_st_maps(cams, st_maps)
        console.print(f"wrote {len(maps)} ST-map(s) of {len(maps) // 2} distorted camera(s) -> {st_maps}"
                      if maps else "no camera has lens distortion: no ST-maps to write", markup=False,
                      highlight=False)


def _check_cameras_out(out: Path | None, force: bool) -> None:
    """`capture cameras --out`: an existing file is replaced only when Doppel wrote it (a Doppel calibration, or
    cameras with Doppel's provenance), unless ``force`` (any file of the name was replaced without a word)."""
    from assets.export.existing_out import written_by_doppel
    from capture.calibration_io import check_calibration_out

    if out is None:
        return
    if out.suffix.lower() == ".json":
        check_calibration_out(out, force)
    elif out.exists() and not force and not written_by_doppel(out):
        raise ValueError(f"--out {out}: exists and Doppel did not write it (no Doppel provenance in it); give another "
                         "name, or --force to replace it")


def _write_dcc_cameras(cams, calibration: Path, out: Path, units: str) -> None:
    import datetime as _dt

    from assets.export.rig_cameras import export_rig_cameras
    from assets.provenance import doppel_version

    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    notes = export_rig_cameras(cams, out, units.lower(), {"calibration": str(calibration), "created": created,
                                                          "doppel_version": doppel_version()})
    for note in notes:
        console.print(f"[yellow]{note}[/yellow]")
    console.print(f"wrote {len(cams)} cameras (Y-up, {units.lower()}) -> {out}", markup=False, highlight=False)


@app.command("session")
def session_cmd(
    photos: Path = typer.Argument(..., help="PHOTOS/CAMERA/*.jpg|png: the rig's photos, one folder per camera, as the "
                                            "cameras wrote them (cam01/cam01_0001.jpg, A001_C002_0001.jpg, ...)."),
    calibration: Path = typer.Option(..., "--calibration", help="The rig's calibration (`doppel capture calibrate`, "
                                                                "a Metashape cameras XML, a COLMAP model, OpenCV "
                                                                "YAML); its camera names are the folders' names, or "
                                                                "the names of photos in them."),
    out: Path = typer.Option(..., "--out", help="Session folder to write: images/ + calibration.json."),
    force: bool = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output."),
) -> None:
    """Assemble a capture session from a rig's photos: each camera's photos matched by moment (the rules of
    `capture calibrate`), named after their camera, hard-linked (or copied; never re-encoded), validated against
    the calibration. Moments some camera missed are left out and listed."""
    from capture.rig_moments import RULES
    from capture.session_assembly import assemble_session
    from core.stage_folders import staged_stage_dir

    with _progress() as prog, staged_stage_dir(out, "capture session", force, [photos, calibration]) as tmp:
        task = prog.add_task("session", total=None)
        done = assemble_session(photos, calibration, tmp, progress=lambda k, n: prog.update(task, completed=k,
                                                                                             total=n))
    for m, cams in done.incomplete.items():
        console.print(f"[yellow]moment {m!r} left out: no photo from {', '.join(cams)}[/yellow]")
    if done.ignored:
        console.print(f"[yellow]folders with no calibrated camera, ignored: {', '.join(done.ignored)}[/yellow]")
    if done.renamed:
        console.print(f"{len(done.renamed)} calibrated camera(s) named after the folder holding their photo: "
                      + ", ".join(f"{a} -> {b}" for a, b in list(done.renamed.items())[:6])
                      + (", ..." if len(done.renamed) > 6 else ""))
    how = "" if done.matched_by == RULES[0] else f", photos matched by {done.matched_by}"
    console.print(f"session: {len(done.frames)} moment(s) x {len(done.cameras)} cameras{how}; "
                  f"{done.linked} hard-linked, {len(done.frames) * len(done.cameras) - done.linked} copied -> {out}")


@app.command("ingest")
def ingest_cmd(
    session_dir: Path = typer.Argument(..., help="session folder: images/ + calibration.json"),
    out: Path = typer.Option(..., "--out", help="output folder"),
    threshold: float = typer.Option(8.0, "--threshold", help="RANSAC inlier threshold, px"),
    no_face: bool = typer.Option(False, "--no-face", help="skip the face mesh"),
    no_hands: bool = typer.Option(False, "--no-hands", help="skip the hand model"),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
    force: bool = ForceOpt,
) -> None:
    """Validate and process a session: landmarks.npz, triangulated.json, masks/, report.html.

    Processing a real actor's photos is the `scan` use: give --workspace/--actor/--production."""
    from dataclasses import replace

    from capture.ingest import IngestConfig, ingest
    from capture.ingest_cache import LandmarkCache, resume_hint
    from capture.session import check_session_argument
    from core.stage_folders import check_stage_out, staged_stage_dir
    from doppel.capture_report import write_ingest_report

    session_dir = check_session_argument(session_dir)
    cfg = IngestConfig(threshold_px=threshold, face=not no_face, hands=not no_hands)
    out = check_stage_out(out, "capture ingest", force, [session_dir])      # before any slow work
    on_interrupt(lambda: resume_hint(out))
    with gate_from_cli(workspace, actor, production, use="scan", command="capture ingest",
                       inputs=[session_dir], outputs=[out]) as run, _progress() as prog:
        task = prog.add_task("landmarks", total=None)

        def cb(step, i, total):
            prog.update(task, description=f"landmarks {step}", completed=i, total=total)

        prov = run.manifest_params
        with LandmarkCache(out) as cache, staged_stage_dir(out, "capture ingest", force, [session_dir]) as tmp:
            res = ingest(session_dir, tmp, replace(cfg, cache_dir=cache.path), progress=cb, provenance=prov)
            report = out / write_ingest_report(res).relative_to(tmp)
            cache.move_into(tmp)
        run.add_output(out, kind="landmarks")
    if res.cache_hits:
        console.print(f"landmarks of {res.cache_hits} image(s) taken from the cache (an earlier or interrupted ingest "
                      "into this folder)")
    for w in res.warnings:
        console.print(f"[yellow]warning: {w}[/yellow]")
    for f, fr in res.triangulated["frames"].items():
        for part, s in fr["summary"].items():
            console.print(f"frame {f} {part}: {s['triangulated']}/{s['of']} triangulated, median "
                          f"{s['median_px']} px, p95 {s['p95_px']} px")
    console.print(f"{res.timings['total']:.1f} s -> {report}")


@app.command("qc")
def qc_cmd(
    session_dir: Path = typer.Argument(..., help="session folder: images/ + calibration.json"),
    detect: bool = typer.Option(False, "--detect", help="also run MediaPipe pose + mask (person present?)"),
) -> None:
    """Quick QC of a session on capture day: validation, sharpness, exposure (and person detection)."""
    import cv2
    import numpy as np

    from capture.landmarks import LandmarkDetector
    from capture.qc import ImageQC, flag_images, image_metrics
    from capture.session import load_session

    session = load_session(session_dir)
    items = []
    det = LandmarkDetector(face=False, hands=False) if detect else None
    total = sum(len(v) for v in session.frames.values())
    with _progress() as prog:
        task = prog.add_task("qc", total=total)
        for f, cams in session.frames.items():
            for cam, path in cams.items():
                bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
                s, e, c = image_metrics(bgr)
                lm = det.detect_file(path) if det else None
                items.append(ImageQC(cam, f, s, e, c, float((lm.mask > 0.5).mean()) if lm else 1.0,
                                     face=False, pose=lm.has_pose if lm else True, hands=0))
                prog.advance(task)
    if det:
        det.close()
    flag_images(items)
    t = Table(title=f"QC {session.root}")
    for col in ("frame/camera", "sharpness", "exposure", "clipped", "person" if detect else "", "warnings"):
        t.add_column(col)
    for q in items:
        t.add_row(f"{q.frame}/{q.camera}", f"{q.sharpness:.0f}", f"{q.exposure:.2f}", f"{q.clipped:.1%}",
                  ("yes" if q.pose else "no") if detect else "", "; ".join(q.warnings))
    print_table(t, console)
    n = sum(bool(q.warnings) for q in items)
    console.print(f"{n} of {len(items)} images with warnings; median sharpness "
                  f"{np.median([q.sharpness for q in items]):.0f}")
    dropped = [f"{f}/{c}" for f, cams in session.dropped.items() for c in cams]
    if dropped:
        console.print(f"{len(dropped)} image(s) missing (cameras that dropped a frame; those views are left out of "
                      f"it): {', '.join(dropped[:12])}"
                      + (f" and {len(dropped) - 12} more" if len(dropped) > 12 else ""),
                      style="yellow", markup=False, highlight=False)


@app.command("synth")
def synth_cmd(
    out: Path = typer.Option(..., "--out", help="output folder (DIR/session, DIR/ground_truth)"),
    cameras: int = typer.Option(16, "--cameras", help="number of cameras (ring + dome + face close-ups)"),
    seed: int = typer.Option(0, "--seed", help="virtual actor seed"),
    size: int = typer.Option(1024, "--size", help="image width = height, px"),
    frames: int = typer.Option(1, "--frames", help="frames of a smooth motion (images/FRAME/CAMERA.png when > 1)"),
    renderer: str = typer.Option("raster", "--renderer", help="raster (fast, Lambert) or cycles (Blender Cycles "
                                                            "path tracing; also writes CAMERA.exr, linear half float)"),
    samples: int = typer.Option(32, "--samples", help="cycles: samples per pixel (denoised by OpenImageDenoise)"),
    anim: Path = typer.Option(None, "--anim", help="a clip on the virtual actor's skeleton (animation folder or "
                                                   "animation.npz of `doppel retarget`), not the built-in motion"),
    allow_large: bool = typer.Option(False, "--allow-large", help="run a request estimated to take over "
                                                                  "2 hours or most of the available memory"),
    force: bool = ForceOpt,
    workspace: WorkspaceOpt = None,
) -> None:
    """Render the virtual actor from N calibrated cameras into a session folder plus ground truth.

    The session's manifest.json proves it synthetic (signed with the workspace's key inside a workspace)."""
    import dataclasses

    from core.limits import check_resources
    from core.stage_folders import check_stage_out, staged_stage_dir
    from doppel.cycles_capture import CyclesSettings, check_renderer_args, estimate_cycles_seconds
    from doppel.synthetic_capture import (
        check_synthetic_capture_args,
        estimate_synthetic_capture,
        synthesize_capture,
    )
    from doppel.synthetic_motion import load_clip
    from doppel.synthetic_provenance import write_synthetic_session_manifest

    check_synthetic_capture_args(cameras, size, frames)
    check_renderer_args(renderer, samples)
    clip = load_clip(anim, frames) if anim is not None else None
    ws = find_workspace(workspace)  # before the work: a wrong --workspace fails at once
    out = check_stage_out(out, "capture synth", force)
    est = estimate_synthetic_capture(cameras, size, frames)
    if renderer == "cycles":
        est = dataclasses.replace(est, seconds=est.seconds + estimate_cycles_seconds(cameras * frames, size, size,
                                                                                     samples))
    check_resources(est, out.absolute().parent, allow_large=allow_large)
    console.print(f"{est.what}: {est.describe()} (estimated)", soft_wrap=True)
    with _progress() as prog, staged_stage_dir(out, "capture synth", force) as tmp:
        task = prog.add_task("virtual actor", total=cameras * frames)

        def cb(step: str, i: int, total: int) -> None:
            prog.update(task, description=f"rendering {step}", completed=i, total=total)

        res = synthesize_capture(tmp, n_cameras=cameras, seed=seed, size=size, frames=frames, progress=cb,
                                 renderer=renderer, cycles=CyclesSettings(samples=samples), clip=clip)
        prog.update(task, description="writing", completed=cameras * frames)
        settings = {"cameras": cameras, "size": size, "frames": frames}
        if renderer != "raster":
            settings.update(renderer=renderer, samples=samples)
        if anim is not None:
            settings["anim"] = str(anim)
        # The session and its provenance manifest replace OUT together.
        write_synthetic_session_manifest(res.session_dir, seed=seed, settings=settings,
                                         key=ws.manifest_key() if ws is not None else None)
    res = dataclasses.replace(res, session_dir=out / "session", ground_truth_dir=out / "ground_truth")  # final paths
    console.print(f"{len(res.cameras)} cameras, {size}x{size} -> {res.session_dir} (ground truth in "
                  f"{res.ground_truth_dir})")


PlateShutterOpt = Annotated[float, typer.Option("--shutter", help="motion blur: the film camera's shutter angle, "
                                               "degrees, centred on each frame (180: half a frame; 0: none); the "
                                               "ground truth is blurred alike, its annotations are the frame's own")]
PlateShutterSamplesOpt = Annotated[int, typer.Option("--shutter-samples", help="raster: renders over the open "
                                                     "shutter, averaged in linear light; cycles: the motion keyed "
                                                     "at N + 1 times over it (Cycles' own motion blur between)")]


@app.command("plate")
def plate_cmd(
    out: Path = typer.Option(..., "--out", help="output folder (DIR/plate, DIR/ground_truth)"),
    performer_seed: int = typer.Option(1, "--performer-seed", help="virtual actor B, who performs the shot"),
    double_seed: int = typer.Option(0, "--double-seed", help="virtual actor A, whose head the ground truth puts on B"),
    frames: int = typer.Option(120, "--frames", help="frames in the shot"),
    camera: str = typer.Option("handheld", "--camera", help="film camera: static, handheld or dolly"),
    size: str = typer.Option("1280x720", "--size", help="WIDTHxHEIGHT in px"),
    renderer: str = typer.Option("raster", "--renderer", help="raster (fast) or cycles (path traced, + EXR)"),
    samples: int = typer.Option(32, "--samples", help="cycles: samples per pixel (denoised)"),
    fps: float = typer.Option(24.0, "--fps", help="frame rate of plate.mp4"),
    anim: Path = typer.Option(None, "--anim", help="a clip on the virtual actor's skeleton for the body (the "
                                                   "head turns and talking are added; the hands are the clip's)"),
    distance: float = typer.Option(1.35, "--distance", help="camera to head, metres (1.35: a close-up, the face "
                                                            "a fifth of the frame wide; 4-5: a wide shot)"),
    performance: str = typer.Option("talk", "--performance", help="the face: talk, or expressive (brows, blinks "
                                    "and a pucker independent of the head's turns)"),
    distortion: str = typer.Option("0", "--distortion", help="the film lens's distortion, OpenCV's k1[,k2,p1,p2,k3] "
                                   "(e.g. -0.2: barrel; raster only); plate/lens.json holds the lens"),
    fov: float = typer.Option(32.0, "--fov", help="the film lens's horizontal field of view, degrees"),
    offset: str = typer.Option("0,0", "--offset", help="X,Y: where the head is framed, fractions of the half "
                               "frame right and down of the centre (e.g. 0.55,0: near the right edge)"),
    force: bool = ForceOpt,
    workspace: WorkspaceOpt = None,
    shutter: PlateShutterOpt = 0.0,
    shutter_samples: PlateShutterSamplesOpt = 8,
) -> None:
    """A synthetic plate for face replacement: actor B performing (head turns, talking, hands over the face) in
    front of a moving camera, and the ground truth with actor A's head on B (landmarks, head pose, masks).

    The plate's manifests prove it synthetic (signed with the workspace's key inside a workspace), so `doppel swap`
    takes it (plate.mp4 or frames/) as the virtual actor's without --plate-actor."""
    import dataclasses

    from core.stage_folders import check_stage_out, staged_stage_dir
    from doppel.synthetic_motion import load_clip
    from doppel.synthetic_plate import PlateConfig, check_plate_config, parse_numbers, parse_size, render_plate
    from doppel.synthetic_provenance import write_synthetic_plate_manifests

    w, h = parse_size(size)
    cfg = PlateConfig(performer_seed=performer_seed, double_seed=double_seed, frames=frames, width=w, height=h,
                      fps=fps, camera=camera, renderer=renderer, samples=samples, distance_m=distance,
                      clip=str(anim) if anim is not None else None, performance=performance,
                      distortion=parse_numbers(distortion, "--distortion", 5), fov_x_deg=fov,
                      offset=parse_numbers(offset, "--offset", 2), shutter_deg=shutter,
                      shutter_samples=shutter_samples)
    check_plate_config(cfg)
    if anim is not None:
        load_clip(anim, max(1, frames))          # an unreadable clip fails here, before anything is written
    ws = find_workspace(workspace)  # before the work: a wrong --workspace fails at once
    out = check_stage_out(out, "capture plate", force)
    with _progress() as prog, staged_stage_dir(out, "capture plate", force) as tmp:
        task = prog.add_task("plate", total=2 * frames)
        res = render_plate(tmp, cfg, progress=lambda i, n: prog.update(task, completed=i, total=n))
        settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "performer_seed"}
        write_synthetic_plate_manifests(tmp / "plate", seed=performer_seed, settings=settings,
                                        key=ws.manifest_key() if ws is not None else None)
    s = res.summary
    console.print(f"{frames} frames at {w}x{h} ({renderer}) -> {out / 'plate'} and {out / 'ground_truth'}; yaw "
                  f"{s['yaw_range_deg']}, pitch {s['pitch_range_deg']} deg, {s['frames_with_occlusion']} frames with "
                  f"the face occluded; {res.timings['total']:.0f} s", soft_wrap=True)
