"""`doppel swap`: the double's face, tracked in 3D, composited into a plate (video, frame folder or image)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.leftovers import work_folder
from doppel.commands.cli_output import cli_console, on_interrupt, stage_bar
from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli
from doppel.face_swap.side_folder import side_folder
from doppel.media_disclosure import LabelOpt, NoProvenanceOpt, discloser

ShadingOpt = Annotated[float, typer.Option(
    "--shading", help="Give the double's skin the plate's shading and skin tone at low frequencies (Gaussian sigma = "
    "SHADING x face width, away from both faces' eyes, brows, lips and nose; lightness only with --colour luma, "
    "none with --colour none); 0 = off.")]
FlowOpt = Annotated[float, typer.Option(
    "--flow", help="Steady the plate's face landmarks with optical flow: how much a pixel of disagreement with the "
    "frame-to-frame flow costs against one with MediaPipe's detection (higher = steadier, slower to correct "
    "drift); 0 = off.")]
DebiasOpt = Annotated[bool, typer.Option(
    "--debias/--no-debias", help="Read MediaPipe's pose-dependent landmark error on the double drawn at the first "
    "solve's pose, take it out of the plate's landmarks and solve again (one more pass; steadier placement in "
    "profile).")]
LandmarksOpt = Annotated[Path | None, typer.Option(
    "--landmarks", help="The performer's face track from elsewhere: an .npz whose 'landmarks' are (frames, 478, 2) "
    "px in MediaPipe's order for the frames swapped (a previous swap's tracks.npz, edited), solved as given; with "
    "a face reference or --performer-photo, a given face that is not theirs passes through.")]
IdentifyOpt = Annotated[bool, typer.Option(
    "--identify/--no-identify", help="Swap only the performer picked on the first frame with faces (the largest, "
    "or --face-index): after a cut or a lost face, a face is swapped only when it is theirs, told by dlib's face "
    "descriptor (distance under 0.6), whatever its size or place; frames showing only other people pass through "
    "and are listed. --no-identify: the face of that size (as --face-index) in every shot.")]
PerformerPhotoOpt = Annotated[Path | None, typer.Option(
    "--performer-photo", help="A photo of the plate performer's face (alone in it, at least 32 px wide): swap that "
    "person's face wherever they are in every frame, whatever its size, instead of the largest face of the first "
    "frame; frames without them pass through and are listed.")]
FaceReferenceOpt = Annotated[Path | None, typer.Option(
    "--face-reference", help="The plate performer's face reference folder (`doppel actor face`): swap that "
    "person's face wherever they are, pass other faces through, and refuse a plate that never shows them. Default: "
    "--plate-actor's newest in the workspace, when they have one.")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Go on from where a killed or interrupted swap into OUT stopped (its checkpoint "
    ".OUT.swap.checkpoint: the tracking, and for a plate of frames the frames written), with the same inputs and "
    "options; the comp is the one an uninterrupted swap writes.")]
FocalOpt = Annotated[float | None, typer.Option(
    "--focal-px", help="Plate camera focal length in pixels (default: a normal lens, 39.6 degrees across: give it "
    "when the lens is known).")]
RelightOpt = Annotated[bool, typer.Option(
    "--relight", help="Shade the double by the plate's light (second-order spherical harmonics fitted to the "
    "performer's skin) instead of preview lights.")]
GrowOpt = Annotated[float, typer.Option(
    "--grow", help="Scale the double's face outline about its centre by 1 + GROW for the matte (moves its edge off "
    "the brows and jaw line into flat skin).")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", help="Where the double's head is drawn: auto (CUDA when there is one), cpu or cuda.")]
PlateCameraOpt = Annotated[Path | None, typer.Option(
    "--plate-camera", help="The plate camera's calibration (Doppel JSON, OpenCV YAML/JSON, COLMAP or Metashape: a "
    "lens grid's solve): its K and lens distortion (k1 k2 p1 p2 k3). The head is solved in the lens's "
    "distortion-free image and drawn through the lens, so it sits on the face anywhere in a distorted frame. "
    "Instead of --focal-px; a calibration of other frames of the same aspect ratio is scaled.")]
PlateCameraNameOpt = Annotated[str | None, typer.Option(
    "--plate-camera-name", help="Which camera of --plate-camera's file (needed when it has several).")]
PlateStmapsOpt = Annotated[str | None, typer.Option(
    "--plate-stmaps", help="UNDISTORT.exr,REDISTORT.exr: the plate lens as a matchmove's ST-maps (any lens model; "
    "the undistort map the size of the undistorted frame, the redistort map the plate's), with --focal-px the "
    "undistorted frame's focal length. Instead of --plate-camera.")]
PlatePrincipalOpt = Annotated[str | None, typer.Option(
    "--plate-principal", help="CX,CY: the principal point (px) of --plate-stmaps' undistorted frame, when it is not "
    "the frame's centre (a lens-centre offset the undistort map keeps).")]
HeadPxOpt = Annotated[int | None, typer.Option("--head-px", help="Draw the double's head at most PX a side, then "
                                               "resize it up (default: 512, or a neural double's training size if "
                                               "larger; 0 = never).")]
WorkersOpt = Annotated[int, typer.Option("--workers", help="Threads working on frames side by side; 0 = one per core "
                                         "(at most 8). The output is the same for any number.")]
MatteOpt = Annotated[bool, typer.Option("--matte", help="Also write each frame's blend mask (8-bit PNG, the plate's "
                                        "size) to <OUT stem>_swap/matte/, for redoing the comp.")]
SwapShutterOpt = Annotated[str, typer.Option("--shutter", help="Motion blur of the double's head: the plate "
                                             "camera's shutter angle in degrees (180: half a frame), the head drawn "
                                             "over the open shutter centred on each frame, as the plate's face is "
                                             "smeared; auto: the angle the plate's DPX or EXR headers declare; 0 "
                                             "(default): drawn sharp.")]
ColourOpt = Annotated[str, typer.Option("--colour", "--color", help="lab (mean/std transfer in L, a, b, smoothed), "
                                        "luma (L only: matches exposure, keeps the double's skin tone) or none.")]
BridgeOpt = Annotated[int, typer.Option("--bridge", help="A face the detector loses for at most N frames inside a "
                                        "shot (a blurred fast turn) is swapped at the track's bridged pose instead of "
                                        "showing the performer for a frame (default 2; flagged in the QC; 0: every "
                                        "frame without a detected face passes through).")]
SwapShutterSamplesOpt = Annotated[int, typer.Option("--shutter-samples", help="Head renders over the open shutter, "
                                                    "averaged (default 6; each costs a head render).")]
PlateColorspaceOpt = Annotated[str | None, typer.Option(
    "--plate-colorspace", help="The OCIO colour space of the plate's values (EXR, DPX or TIFF frames; a video's RGB "
    "as its tags decode it, e.g. a ProRes LogC3 clip), e.g. ACEScg, 'ARRI LogC3 (EI800)', ADX10: converted to sRGB "
    "for the swap and the face back into it. Default: an EXR as its header declares or linear Rec.709, other "
    "files and videos as display-encoded. `doppel colorspaces` lists the config's ($OCIO, else "
    "OpenColorIO's ACES studio config).")]


def swap(
    plate: Path = typer.Argument(..., help="The plate: a video (.mp4/.mov/...), a folder of numbered frames, or an "
                                 "image."),
    double: Path = typer.Option(..., "--double", help="The double: a rig folder (`doppel rig`: the textured rig draws "
                                "the face) or a trained neural double (`doppel render train` MODEL_DIR, with --rig)."),
    rig: Path = typer.Option(None, "--rig", help="With --double MODEL_DIR: the rig built from the same fit (its face "
                             "landmarks and expressions; the neural double draws the face)."),
    out: Path = typer.Option(..., "--out", help="The swapped plate (same kind as PLATE; an image's suffix picks "
                             "its format). Tracks and the QC report go to OUT's side folder <OUT stem>_swap/."),
    plate_actor: str = typer.Option(None, "--plate-actor", help="Actor id of the performer in the plate (the person "
                                    "whose performance is altered); needs a face_replace consent in a workspace."),
    face_index: int = typer.Option(0, "--face-index", help="Which face when the plate shows several: 0 = largest "
                                   "(on the first frame with faces; then that person, see --identify)."),
    blend: str = typer.Option("poisson", "--blend", help="poisson (fixed anchor per shot), multiband or feather."),
    colour: ColourOpt = "lab",
    focal_px: FocalOpt = None,
    plate_camera: PlateCameraOpt = None,
    plate_camera_name: PlateCameraNameOpt = None,
    plate_stmaps: PlateStmapsOpt = None,
    plate_principal: PlatePrincipalOpt = None,
    relight: RelightOpt = False,
    grow: GrowOpt = 0.08,
    shading: ShadingOpt = 0.03,
    flow: FlowOpt = 3.0,
    debias: DebiasOpt = True,
    identify: IdentifyOpt = True,
    performer_photo: PerformerPhotoOpt = None,
    face_reference: FaceReferenceOpt = None,
    device: DeviceOpt = "auto",
    head_px: HeadPxOpt = None,
    workers: WorkersOpt = 0,
    landmarks: LandmarksOpt = None,
    plate_colorspace: PlateColorspaceOpt = None,
    matte: MatteOpt = False,
    shutter: SwapShutterOpt = "0",
    shutter_samples: SwapShutterSamplesOpt = 6,
    bridge: BridgeOpt = 2,
    start: int = typer.Option(0, "--start", help="First frame to swap (earlier frames pass through)."),
    end: int = typer.Option(None, "--end", help="Frame after the last one to swap (default: the end)."),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
    force: bool = typer.Option(False, "--force", help="Replace an OUT or side folder that no earlier swap wrote."),
    resume: ResumeOpt = False,
    no_provenance: NoProvenanceOpt = False,
    label: LabelOpt = None,
) -> None:
    """Replace the face of the performer in PLATE with the double's face, frame by frame."""
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.swap import SwapConfig, check_config, check_given_landmarks

    console = cli_console()
    cfg = SwapConfig(blend=blend, colour=colour, focal_px=focal_px, face_index=face_index, start=start, end=end,
                     matte=matte, oval_grow=grow, relight=relight, shading_sigma=shading, flow_weight=flow,
                     debias=debias, identify=identify, device=device, workers=workers, head_px=head_px,
                     shutter_deg=_shutter(shutter, plate, console), shutter_samples=shutter_samples, bridge=bridge)
    on_interrupt(lambda: _resume_hint(out))
    cfg.lens = _plate_lens(plate_camera, plate_camera_name, plate_stmaps, cfg, plate_principal)
    track = _check_before_consent(cfg, plate, out, landmarks, plate_colorspace)   # bad options fail first
    reference, performer, checked = _whom(workspace, plate_actor, face_reference, performer_photo, cfg)
    rigs, outputs = [rig] if rig else [], [out, side_folder(out)]
    with gate_plate(workspace, plate_actor, production, plate, performer_photo, reference, outputs) as plate_run, \
            gate_from_cli(workspace, actor, production, use="face_replace", command="swap",
                          inputs=[plate, double, *rigs], likeness=[double, *rigs],
                          evidence=[], outputs=outputs) as run, work_folder(out, temp_default=True) as work:
        # watermark + C2PA on every output file (a composite with the plate as ingredient, naming the plate's
        # performer); refused opt-out for a real actor, double's or plate's, checked before the slow work
        disclose = discloser(run, no_provenance, label, kind="composite",
                             ingredients=[plate] if plate.is_file() else [], performer=plate_run)
        info = _probe_with_progress(console, plate, plate_colorspace)   # a video decoded whole: after consent
        first, last = check_config(cfg, info)
        given = check_given_landmarks(track, last - first) if track is not None else None
        face_double = load_face_double(double, Path(work), rig_dir=rig)
        with _progress_bar(console) as progress:
            result = swap_plate(plate, face_double, out, cfg, force=force, progress=progress,
                                params=_params(run, plate_actor, landmarks, checked), disclose=disclose,
                                landmarks=given, plate_info=info, performer=performer, resume=resume)
        _register(out, side_folder(out), run, plate_run)
    _print_result(console, result, out, side_folder(out), checked, performer is not None)


def _shutter(text: str | float, plate: Path, console: Console) -> float:
    """--shutter's degrees: a number, or ``auto``: the plate's own (`capture.plate_io.plate_shutter_angle`), said on
    the console. ValueError (one line) for anything else."""
    from capture.plate_io import plate_shutter_angle

    if str(text).strip().lower() != "auto":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"--shutter must be an angle in degrees (0-360) or auto, got {text!r}") from None
    angle, source = plate_shutter_angle(plate)
    console.print(f"shutter: {angle:g} degrees, {source} ({plate.name})", markup=False, highlight=False)
    return angle


def _resume_hint(out: Path) -> str | None:
    from doppel.face_swap.checkpoint import resume_hint

    return resume_hint(out)


def _register(out: Path, side: Path, run, plate_run) -> None:
    """The swapped plate itself (what a revocation must withdraw) and its side folder as outputs of the double's
    gate, and of the plate performer's when they are a real person (their performance is in it)."""
    for gate in (run,) if plate_run.auth.virtual else (run, plate_run):
        gate.add_output(out, kind="composite")
        gate.add_output(side, kind="swap")


def _plate_lens(calibration: Path | None, name: str | None, stmaps: str | None, cfg, principal: str | None = None):
    """The plate's `PlateLens` from --plate-camera or --plate-stmaps (the latter takes cfg's --focal-px as the
    undistorted frame's and clears it, and --plate-principal), None without; ValueError (one line) for options that
    do not go together."""
    from doppel.face_swap.plate_lens import plate_lens_from_calibration, plate_lens_from_st_maps

    if principal is not None and stmaps is None:
        raise ValueError("--plate-principal is the principal point of --plate-stmaps' undistorted frame: give the "
                         "maps too (a calibration file carries its own)")
    if stmaps is not None:
        if calibration is not None:
            raise ValueError("--plate-stmaps and --plate-camera both give the plate's lens: give one")
        files = [f.strip() for f in stmaps.split(",")]
        if len(files) != 2 or not all(files):
            raise ValueError(f"--plate-stmaps takes UNDISTORT.exr,REDISTORT.exr, got {stmaps!r}")
        lens = plate_lens_from_st_maps(files[0], files[1], cfg.focal_px or 0.0, _principal(principal))
        cfg.focal_px = None                  # it is the lens's now
        return lens
    if calibration is None:
        if name is not None:
            raise ValueError("--plate-camera-name names a camera of --plate-camera's file: give that file too")
        return None
    return plate_lens_from_calibration(calibration, name)


def _principal(text: str | None) -> tuple[float, float] | None:
    """--plate-principal CX,CY -> (cx, cy) px, or None; ValueError (one line) for anything else."""
    if text is None:
        return None
    try:
        cx, cy = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--plate-principal takes CX,CY in pixels, got {text!r}") from None
    return cx, cy


def _check_before_consent(cfg, plate: Path, out: Path, landmarks: Path | None, colorspace: str | None):
    """The options, the --landmarks file, the colour space, the plate's existence, OUT's name against the plate's
    kind and OUT's folder being writable, checked before the consents (quick); returns the face track of
    --landmarks or None. The plate itself is probed after them (a video is decoded whole)."""
    from capture.plate_colour import check_colorspace
    from capture.plate_io import check_out_name, plate_kind
    from core.stage_folders import check_writable_out
    from doppel.face_swap.swap import check_options, load_face_track

    check_options(cfg)
    if colorspace is not None:
        check_colorspace(colorspace)
    track = load_face_track(landmarks) if landmarks else None
    if not plate.exists():
        raise FileNotFoundError(f"{plate}: plate not found")
    check_out_name(out, plate_kind(plate))
    check_writable_out(out)
    return track


def _whom(workspace, plate_actor: str | None, face_reference: Path | None, photo: Path | None, cfg):
    """(the plate performer's face reference folder or None, whom to swap, how the plate performer is checked);
    before the consents (`doppel.face_reference`). FaceReferenceError when the reference was edited."""
    from doppel.face_reference import performer_check, plate_performer, plate_reference

    reference = plate_reference(workspace, plate_actor, face_reference)
    return reference, plate_performer(photo, reference, cfg), performer_check(plate_actor, reference)


def _params(run, plate_actor: str | None, landmarks: Path | None, checked: str) -> dict:
    """The manifest's record of who and what: the gate's actor, consent and production, the plate performer and
    how they were checked, the face track given."""
    return {**run.manifest_params, "plate_actor": plate_actor,
            "plate_performer_check": checked, "landmarks_file": str(landmarks) if landmarks else None}


def _probe_with_progress(console: Console, plate: Path, colorspace: str | None):
    """`probe_plate`, with a progress bar while a video is decoded whole (minutes for a long plate)."""
    from capture.plate_io import VIDEO_SUFFIXES, probe_plate

    if not (plate.is_file() and plate.suffix.lower() in VIDEO_SUFFIXES):
        return probe_plate(plate, colorspace=colorspace)
    with _progress_bar(console) as progress:
        return probe_plate(plate, lambda done, total: progress("checking the plate", done, total), colorspace)


@contextlib.contextmanager
def _progress_bar(console: Console):
    """A progress bar for the swap's passes; yields the `swap_plate` progress callback (phase, done, total)."""
    with stage_bar(console) as bar:
        task = bar.add_task("swap", total=None)

        def progress(phase: str, done: int, total: int) -> None:
            bar.update(task, description=f"swap: {phase}", completed=done, total=total)

        yield progress


def gate_plate(workspace, plate_actor: str | None, production: str | None, plate: Path, photo: Path | None = None,
               reference: Path | None = None, outputs: list[Path] | tuple = ()):
    """The plate performer's consent (use face_replace): --plate-actor, or the virtual actor when the plate
    proves itself synthetic; in a workspace an unattributed plate (file or frame folder) without --plate-actor is
    refused. photo: --performer-photo, reference: their face reference, the performer's likeness too (recorded
    under them; a reference registered to somebody else is refused). outputs: where the swap writes."""
    seen = [plate, *([photo] if photo else []), *([reference] if reference else [])]
    return gate_from_cli(workspace, plate_actor, production, use="face_replace", command="swap (plate performer)",
                         inputs=seen, likeness=seen, actor_option="--plate-actor", outputs=outputs)


def _print_result(console: Console, result, out: Path, side: Path, checked: str, given: bool) -> None:
    """The command's closing lines (never wrapped: paths are copied from them): frames swapped, flagged, speed,
    where the outputs are; whom it swapped and how that was checked; frames passed through. given: the performer
    was given (a photo or a face reference), so --no-identify is no way to swap the others."""
    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    n = len(result.frames)
    say(f"swap: {n - len(result.passed_through)} of {n} frames swapped, {len(result.flagged)} flagged, "
        f"{result.frames_per_second:.2f} frames/s -> {out} (report: {side / 'swap_report.html'})"
        + (f"; {result.resumed_words}" if result.resumed else ""))
    if result.performer:
        crop, found = side / "performer.png", side / "performer_in_plate.png"
        say(f"performer: {result.performer}" + (f" (a crop of their face: {crop}" if crop.is_file() else "")
            + (f"; in the plate: {found}" if crop.is_file() and found.is_file() else "")
            + (")" if crop.is_file() else ""))
    if checked.startswith("not checked"):
        say(f"plate performer {checked}")
    others, small, lost = set(result.not_performer), set(result.too_small), result.not_bridged
    hint = "" if given else " (--no-identify swaps the face of that size)"
    if none := [i for i in result.passed_through if i not in others and i not in lost]:
        say(f"frames with no face, passed through: {_ranges(none)}")
    if lost:
        say("frames the detector lost inside a shot, not bridged, passed through: "
            + "; ".join(f"{i} ({why})" for i, why in lost.items()))
    if other := sorted(others - small):
        say(f"frames whose faces are not the performer's (another person), passed through: {_ranges(other)}{hint}")
    if small:
        say(f"frames whose faces are too small to tell whether one is the performer's, passed through: "
            f"{_ranges(sorted(small))}{hint}")


def _ranges(frames: list[int]) -> str:
    out, i = [], 0
    while i < len(frames):
        j = i
        while j + 1 < len(frames) and frames[j + 1] == frames[j] + 1:
            j += 1
        out.append(str(frames[i]) if i == j else f"{frames[i]}-{frames[j]}")
        i = j + 1
    return ", ".join(out)
