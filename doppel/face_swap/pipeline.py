"""`swap_plate`: a whole plate through tracking, solving and compositing, with its tracks, QC report and strips.

Outputs: OUT (the swapped plate, same kind as the plate, written atomically) and, beside it, the folder
``<OUT stem>_swap/`` (a stage folder: manifest.json, tracks.npz, swap_report.html, strips/*.png; through a plate
lens with distortion, lens/CAMERA_undistort.exr and lens/CAMERA_redistort.exr: its ST-maps).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from capture.plate_io import PlateInfo, check_out_name
from core.prefetch import prefetched
from core.stage_folders import check_writable_out
from doppel.face_swap.checkpoint import SwapCheckpoint
from doppel.face_swap.double import FaceDouble
from doppel.face_swap.frame_comp import FrameComp, finish_frame, match_colour, prepare_frame
from doppel.face_swap.side_folder import STAGE, side_folder, side_folder_of, written_by_swap
from doppel.face_swap.swap import (
    NO_FACE,
    NOT_BRIDGED,
    NOT_PERFORMER,
    STRIP_FRAMES,
    TOO_SMALL,
    FrameQC,
    Progress,
    ShotLandmarks,
    SwapConfig,
    SwapResult,
    check_given_landmarks,
    debias_track,
    head_device,
    pass_workers,
    performer_words,
    shot_box,
    solve_track,
    track_shot,
    warn_of_cuts,
)

log = logging.getLogger(__name__)

Disclose = Callable[[Path], None]      # watermark + sign one written file in place (assets.disclosure)


def _disclosure_hooks(disclose: Disclose | None) -> dict:
    """PlateWriter's hooks for ``disclose``: an `assets.disclosure.Discloser` marks the plate's frames as they
    are encoded (``disclosure``: one encode); any other callable rewrites each finished file (``before_publish``)."""
    from assets.disclosure import Discloser

    if isinstance(disclose, Discloser):
        return {"disclosure": disclose.begin}
    return {"before_publish": disclose}


def check_disclosable(disclose: Disclose | None, info: PlateInfo, out: Path) -> None:
    """ValueError (one line) when OUT cannot carry the disclosure (e.g. a .mov in a workspace: C2PA signs MP4,
    PNG, JPEG), before the slow work."""
    from assets.disclosure import Discloser

    if isinstance(disclose, Discloser):
        disclose.check(info.frames[0].name if info.kind == "frames" and info.frames else out.name)


def check_plate_out(plate: str | Path, out: Path, side: Path, force: bool, info: PlateInfo) -> None:
    """ValueError (one line) when writing OUT would destroy what it must not: the plate, or a folder that holds it
    (even with ``force``); an existing file or folder that is not an earlier swap's output (its side folder records
    a swap that wrote OUT), without ``force`` (a frame folder OUT is replaced whole); or when OUT's name is not of
    the plate's kind (``capture.plate_io.check_out_name``). PermissionError where this user may not write OUT."""
    check_out_name(out, info)
    check_writable_out(out)
    real, src = out.resolve(), Path(plate).resolve()
    if real == src or real in src.parents:
        raise ValueError(f"{out}: the output would overwrite the plate" + ("" if real == src else
                                                                          f" ({plate} is inside it)"))
    if out.exists() and not force and not written_by_swap(out, side):
        raise ValueError(f"{out}: exists and is not an earlier swap's output (no {side.name}/ beside it that "
                         "records it); give another name, or --force to replace it")
    other = side_folder_of(side)
    if other is not None and other.name != out.name and not force:    # sh010 and sh010.mov share sh010_swap
        raise ValueError(f"{side}: holds the report and tracks of the swap into {other.name}, another output whose "
                         f"side folder is named alike; give {out.name} another name, or --force to replace them")


def strip_frames(track, n: int = STRIP_FRAMES) -> set[int]:
    """Track indices shown as before/after strips: n spread over the valid frames + the 4 worst fitted."""
    idx = np.flatnonzero(track.valid)
    pick = set(idx[np.linspace(0, len(idx) - 1, min(n, len(idx))).round().astype(int)].tolist())
    worst = idx[np.argsort(-np.nan_to_num(track.error[idx]))][:4]
    return pick | set(worst.tolist())


def _strip(before: np.ndarray, after: np.ndarray, box, height: int = 160) -> np.ndarray:
    import cv2

    x0, y0, x1, y1 = box
    pair = np.concatenate([before[y0:y1 + 1, x0:x1 + 1], after[y0:y1 + 1, x0:x1 + 1]], axis=1)
    s = height / pair.shape[0]
    return cv2.resize(pair, (max(1, int(pair.shape[1] * s)), height), interpolation=cv2.INTER_AREA)


def _write_matte(folder: Path, frame: int, size: tuple[int, int], box, mask: np.ndarray | None) -> None:
    """folder/NNNNNN.png: the frame's blend mask (8-bit, 255 = the double's face) at the plate's size."""
    from core.meshio import write_png

    full = np.zeros(size, np.float32)
    if mask is not None:
        x0, y0, x1, y1 = box
        full[y0:y1 + 1, x0:x1 + 1] = mask
    write_png(folder / f"{frame:06d}.png", full)


def composite_shot(info: PlateInfo, double: FaceDouble, shot: ShotLandmarks, track, cfg: SwapConfig, start: int,
                   end: int, out: Path, strips_dir: Path, progress: Progress | None = None,
                   disclose: Disclose | None = None, matte_dir: Path | None = None, ck: SwapCheckpoint | None = None
                   ) -> tuple[list[FrameQC], tuple[int, int, int, int]]:
    """Pass 2: every frame of [start, end) composited (or passed through) into OUT; the whole plate is written
    (frames outside the range pass through unchanged). Each shot between the plate's cuts (`ShotLandmarks.shots`)
    has its own face box (the Poisson anchor) and colour match. Returns the frames' QC and the union of the
    shots' face boxes. disclose: called on every written file (OUT's video, image or frames, and the strips) before
    it is published. matte_dir: where each swapped range frame's blend mask goes (`_write_matte`), or None.
    ck: the swap's checkpoint: a plate of frames is written into it, going on from what a resumed swap kept."""
    from capture.face_tracking import PersonSegmenter
    from capture.plate_io import PlateWriter, iter_plate_frames
    from core import runtime

    seg = PersonSegmenter()
    comps, which = _shot_comps(info, double, shot, track, cfg, seg)
    keep = ck is not None and info.kind == "frames"
    first, qcs, states = _resumed_comp(ck, comps) if keep else (0, [], {})
    workers = pass_workers(cfg)

    def comp_of(i: int) -> FrameComp | None:          # the frame's shot's comp; None: passed through
        f = i - start
        return comps[which[f]] if 0 <= f < end - start and bool(track.valid[f]) else None

    def prepare(item):         # stage 1 of a swapped frame, in a background thread
        i, rgb = item
        c = comp_of(i)
        return None if c is None else prepare_frame(c, i - start, rgb, shot.landmarks[i - start].astype(np.float64),
                                                    shot.hands[i - start])

    def matched():             # stage 2, in frame order in this thread (the colour match is smoothed over time)
        for (i, rgb), prep in prefetched(iter_plate_frames(info, first), prepare, cfg.prefetch, workers):
            yield i, rgb, prep, None if prep is None else match_colour(comp_of(i), prep)

    def finish(item):          # stage 3, in a background thread again
        i, rgb, prep, transfer = item
        return None if prep is None else finish_frame(comp_of(i), i - start, rgb, prep, transfer)

    frame_out = _FrameOut(shot, start, end, strips_dir, matte_dir, strip_frames(track), disclose,
                          (info.height, info.width))
    try:
        with PlateWriter(out, info, partial=ck.frames if keep else None, done=first,
                         **_disclosure_hooks(disclose)) as writer:
            for (i, rgb, _, transfer), done in prefetched(matched(), finish, cfg.prefetch, workers):
                if transfer is not None:
                    states[int(which[i - start])] = transfer      # the shot's matcher as of this frame
                frame_out.write(writer, i, rgb, done, comp_of(i), qcs)
                if keep:
                    ck.frame_done(i + 1, qcs, states)
                if progress and 0 <= i - start < end - start:
                    progress("composite", i - start + 1, end - start)
                if (i + 1) % runtime.RELEASE_EVERY_FRAMES == 0:
                    runtime.release_freed_memory()     # a long plate's fragmented free heap does not creep up
    except BaseException:
        if keep:
            ck.save_last()                             # stopped: every frame written whole is kept
        raise
    finally:
        seg.close()
    boxes = np.array([c.box for c in comps if c is not None])
    return qcs, (int(boxes[:, 0].min()), int(boxes[:, 1].min()), int(boxes[:, 2].max()), int(boxes[:, 3].max()))


def _resumed_comp(ck: SwapCheckpoint, comps: list[FrameComp | None]) -> tuple[int, list[FrameQC], dict]:
    """(first plate frame to write, the QC of the range frames before it, {shot: colour matcher as it stood}) from
    what a resumed swap kept (nothing: (0, [], {})); each shot's matcher takes up its kept state."""
    import copy

    kept = ck.comp()
    if kept is None:
        return 0, [], {}
    states = {}
    for k, state in kept["matchers"].items():
        if 0 <= k < len(comps) and comps[k] is not None:
            comps[k].matcher.restore(state)
            states[k] = copy.copy(comps[k].matcher)
    log.info("resuming the comp at frame %d (%s)", kept["next"], ck.folder)
    ck.kept_frames = len(kept["qcs"])
    return kept["next"], kept["qcs"], states


@dataclasses.dataclass
class _FrameOut:
    """Writes one composited (or passed-through) frame of the comp pass, its QC, strip and matte."""

    shot: ShotLandmarks
    start: int
    end: int
    strips_dir: Path
    matte_dir: Path | None
    show: set[int]
    disclose: Disclose | None
    size: tuple[int, int]

    def write(self, writer, i: int, rgb: np.ndarray, done, comp: FrameComp | None, qcs: list[FrameQC]) -> None:
        from core.meshio import write_png

        f = i - self.start
        if not 0 <= f < self.end - self.start:
            writer.write(rgb)
            return
        mask = None
        if done is None:
            qcs.append(FrameQC(i, False, flags=[_passed_because(self.shot, f)]))
            writer.write(rgb)
        else:
            res, qc, mask = done
            qc.frame = i
            qcs.append(qc)
            writer.write(res)
            if f in self.show:
                write_png(self.strips_dir / f"{i:06d}.png", _strip(rgb, res, comp.box))
                if self.disclose is not None:
                    self.disclose(self.strips_dir / f"{i:06d}.png")
        if self.matte_dir is not None:
            _write_matte(self.matte_dir, i, self.size, comp.box if mask is not None else (0, 0, 0, 0), mask)


def _passed_because(shot: ShotLandmarks, f: int) -> str:
    """Why frame offset f passed through: no face, only other people's faces, faces too small to tell, or a
    dropout inside the shot not bridged (and why)."""
    if shot.not_performer is not None and shot.not_performer[f]:
        return TOO_SMALL if shot.too_small is not None and shot.too_small[f] else NOT_PERFORMER
    if shot.unbridged and f in shot.unbridged:
        return f"{NOT_BRIDGED}: {shot.unbridged[f]}: passed through"
    return NO_FACE


def _shot_comps(info: PlateInfo, double: FaceDouble, shot: ShotLandmarks, track, cfg: SwapConfig, seg
                ) -> tuple[list[FrameComp | None], np.ndarray]:
    """(a `FrameComp` per shot between the cuts, None for a shot without a tracked face; the shot of each frame
    offset): each shot's own face box (the fixed Poisson anchor) and colour matcher (smoothed within it)."""
    from doppel.face_swap.swap import plate_K, plate_lens
    from neural_render.face_composite import ColourMatcher

    K, lens = plate_K(track, info, cfg), plate_lens(cfg, info)
    device = head_device(double, cfg)
    comps: list[FrameComp | None] = []
    for a, b in shot.shots:
        frames = [a + k for k in np.flatnonzero(track.valid[a:b])]
        if not frames:
            comps.append(None)
            continue
        box = shot_box(double, track, K, info.width, info.height, frames, lens)
        matcher = ColourMatcher(channels=(0,) if cfg.colour == "luma" else (0, 1, 2),
                                max_scale=1.0 if cfg.relight else 2.5)   # relit: the contrast is the plate light's
        comps.append(FrameComp(double, track, K, box, cfg, seg, matcher, device, lens, (a, b), shot.bridged))
    which = np.repeat(np.arange(len(shot.shots)), [b - a for a, b in shot.shots])
    return comps, which


def write_tracks(path: Path, track, shot: ShotLandmarks, info: PlateInfo, start: int, basis,
                 bias: np.ndarray | None = None, lens=None, shutter_deg: float = 0.0) -> None:
    """tracks.npz: per frame head pose (bind frame -> camera), expression weights, validity, landmark error,
    the plate's face landmarks (steadied by optical flow; MediaPipe's own as landmarks_detected; face_from_crop:
    frames whose face was found on a crop, a small face; face_backfilled: found tracking backwards from a later
    frame; face_not_performer: faces in view, none the performer's; face_too_small: of those, none could be told;
    face_bridged: lost by the detector for a frame or two and swapped at the track's bridged pose, its landmarks
    interpolated),
    the camera (K, dist: OpenCV's k1 k2 p1 p2 k3 of the plate's lens, zeros without ``lens``; lens_model: none,
    opencv or stmaps; size, fps; shutter_deg: the plate camera's shutter angle the head was blurred with, 0: none;
    the head pose is the camera's of the lens's distortion-free image), the frame numbers
    and the cuts (plate frames that start another shot), the expressions as the rig's own controls
    (`face_basis.rig_controls`: a FLAME double's component coefficients and jaw angle); with ``bias`` (F, L, 2) px
    the detector's bias read on the double (`detector_bias`, rows ``detector_bias_ids``: what the solve took out
    of the landmarks, before smoothing)."""
    import io

    from core.storage import atomic_write_bytes
    from doppel.face_swap.face_basis import rig_controls
    from reconstruction.head_tracking import intrinsics, yaw_pitch_deg

    K = intrinsics(track.focal_px, info.width, info.height) if lens is None else lens.K

    yaw, pitch = yaw_pitch_deg(track.rotation)
    buf = io.BytesIO()
    np.savez_compressed(
        buf, frame=np.arange(start, start + len(track.valid)), rotation=track.rotation.astype(np.float32),
        translation=track.translation.astype(np.float32), expression=track.expression.astype(np.float32),
        expression_names=np.array(basis.names, dtype=np.str_), valid=track.valid,
        error_iod=track.error.astype(np.float32), fit_error_iod=track.fit_error.astype(np.float32),
        yaw_deg=yaw.astype(np.float32), pitch_deg=pitch.astype(np.float32), landmarks=shot.landmarks,
        landmarks_detected=shot.landmarks if shot.detected is None else shot.detected,
        faces_found=shot.n_faces, face_from_crop=np.zeros(len(shot.n_faces), bool) if shot.from_crop is None
        else shot.from_crop, face_backfilled=np.zeros(len(shot.n_faces), bool) if shot.backfilled is None
        else shot.backfilled, face_not_performer=np.zeros(len(shot.n_faces), bool) if shot.not_performer is None
        else shot.not_performer, face_too_small=np.zeros(len(shot.n_faces), bool) if shot.too_small is None
        else shot.too_small, face_bridged=np.zeros(len(shot.n_faces), bool) if shot.bridged is None else shot.bridged,
        K=K, dist=np.zeros(5) if lens is None else lens.dist, lens_model=np.str_(_model_of(lens)),
        size=np.array([info.width, info.height]), fps=np.float64(info.fps or 0.0),
        shutter_deg=np.float64(shutter_deg), cuts=np.array([start + c for c in shot.cuts], np.int64),
        **rig_controls(basis.names, track.expression),
        **({} if bias is None else {"detector_bias": bias.astype(np.float32), "detector_bias_ids": basis.ids}))
    atomic_write_bytes(path, buf.getvalue())


def write_performer_crops(folder: Path, shot: ShotLandmarks) -> None:
    """Whom the swap took for the performer, for people to look at: performer.png (their face as first seen: the
    first pick, or the photo or face reference naming them) and, when a photo or a reference named them,
    performer_in_plate.png (the face in the plate first taken for theirs)."""
    from core.meshio import write_png

    p = shot.performer
    if p is not None and p.thumbnail is not None:
        write_png(folder / "performer.png", p.thumbnail)
    if p is not None and p.source is not None and shot.performer_crop is not None:
        write_png(folder / "performer_in_plate.png", shot.performer_crop)


@contextlib.contextmanager
def withdrawn_on_failure(out: Path) -> Iterator[Callable[[], None]]:
    """Yields ``published()``, to call once the swapped plate ``out`` is in place: if what follows fails (the
    side folder: report, tracks; a full disk), ``out`` is removed too, so a failed swap leaves neither."""
    done = False

    def published() -> None:
        nonlocal done
        done = True

    try:
        yield published
    except BaseException:
        if done:
            shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
        raise


def swap_plate(plate: str | Path, double: FaceDouble, out: str | Path, cfg: SwapConfig | None = None, *,
               force: bool = False, progress: Progress | None = None, params: dict | None = None,
               disclose: Disclose | None = None, landmarks: np.ndarray | None = None,
               plate_info: PlateInfo | None = None, performer=None, resume: bool | str = False) -> SwapResult:
    """Replace the face in ``plate`` with ``double``'s: writes OUT and ``side_folder(OUT)``. Returns the result.
    ValueError / FileNotFoundError (one line) for bad input, before anything is written. disclose: applied to
    every synthetic file (OUT, its frames, the report's strips) before it is published (the CLI passes
    `doppel.media_disclosure.discloser`: watermark + C2PA, kind "composite", the plate as ingredient).
    landmarks: the performer's face landmarks from another tracker, (end - start, 478, 2) px (MediaPipe's
    face-mesh order, NaN rows where there is no face), tracked as they are: no flow, no detector-bias pass.
    plate_info: ``probe_plate(plate)`` when the caller has it (probing a video decodes every frame once).
    performer: who to swap, from a photo of them (`capture.face_identity.performer_from_photo`) or their face
    reference (`doppel.face_reference.load_face_reference`); needs cfg.identify: their face wherever it is in
    every frame, whatever its size (with landmarks: each given face checked to be theirs).
    resume: go on from the checkpoint a killed or interrupted swap into OUT kept (`doppel.face_swap.checkpoint`:
    its tracking, and for a plate of frames the frames it wrote; the result is the one an uninterrupted swap
    writes); ValueError (one line) when that swap had other inputs or options; "auto": start over then instead
    (`checkpoint.SwapCheckpoint`). Without it, a checkpoint there is discarded."""
    from capture.plate_io import probe_plate
    from core.stage_folders import check_stage_out
    from doppel.face_swap.checkpoint import run_key
    from doppel.face_swap.dropouts import bridge_dropouts
    from doppel.face_swap.swap import check_config, plate_K, with_plate_lens

    cfg = cfg or SwapConfig()
    t0 = time.perf_counter()
    if plate_info is not None and Path(plate_info.path).resolve() != Path(plate).resolve():
        raise ValueError(f"swap_plate: plate_info describes {plate_info.path}, not {plate}")
    info = plate_info or probe_plate(plate)
    start, end = check_config(cfg, info)
    cfg = with_plate_lens(cfg, info)
    out, side = Path(out), side_folder(Path(out))
    check_plate_out(plate, out, side, force, info)      # before the tracking pass (minutes on a long plate)
    check_stage_out(side, STAGE, force, [plate, *double.folders])
    check_given_landmarks(landmarks, end - start)
    check_disclosable(disclose, info, out)
    device = head_device(double, cfg)              # a neural double's model moves to the device it draws on
    ck = SwapCheckpoint(out, run_key(info, double, cfg, landmarks, performer, disclose is not None), resume)
    finished = False
    try:
        shot, track, bias = _tracked(ck, info, double, cfg, start, end, progress, landmarks, performer)
        shot, track = bridge_dropouts(shot, track, cfg.bridge, double.basis, plate_K(track, info, cfg))
        result = _write_swap(_Swap(plate, info, double, cfg, start, end, out, side, force, t0, device), shot, track,
                             bias, ck, progress, disclose, params, landmarks, performer)
        finished = True
    finally:
        ck.close(finished)
    return result


def _tracked(ck: SwapCheckpoint, info: PlateInfo, double: FaceDouble, cfg: SwapConfig, start: int, end: int,
             progress: Progress | None, landmarks: np.ndarray | None, performer):
    """(shot landmarks, head track, detector bias or None): passes 1 and 1b, or what a resumed swap kept of them
    (the checkpoint keeps them once done)."""
    kept = ck.tracking()
    if kept is not None:
        log.info("resuming: the tracking of %s kept in %s", info.path, ck.folder)
        return kept
    shot = track_shot(info, cfg, start, end, progress, landmarks, performer).steadied(cfg.flow_weight)
    track = solve_track(shot, info, double, cfg)
    bias = None
    if cfg.debias and landmarks is None:
        track, bias = debias_track(shot, track, info, double, cfg, start, progress)
    ck.save_tracking(shot, track, bias)
    return shot, track, bias


@dataclasses.dataclass(frozen=True)
class _Swap:
    """What one swap writes, and from what (`swap_plate`'s checked arguments)."""

    plate: str | Path
    info: PlateInfo
    double: FaceDouble
    cfg: SwapConfig
    start: int
    end: int
    out: Path
    side: Path
    force: bool
    t0: float
    device: str                       # where the head is drawn (`head_device`, resolved once)


def _write_swap(sw: _Swap, shot: ShotLandmarks, track, bias, ck: SwapCheckpoint, progress: Progress | None,
                disclose: Disclose | None, params: dict | None, landmarks: np.ndarray | None,
                performer) -> SwapResult:
    """Pass 2 into OUT, then the side folder (tracks, performer crops, strips, mattes, report, manifest)."""
    from core.stage_folders import staged_stage_dir
    from doppel.face_swap.report import write_report

    cfg, start, end, out = sw.cfg, sw.start, sw.end, sw.out
    cuts = [start + c for c in shot.cuts]
    warn_of_cuts(cuts, start, end)
    (ck.side / "strips").mkdir(parents=True, exist_ok=True)
    matte_dir = ck.side / "matte" if cfg.matte else None
    if matte_dir is not None:
        matte_dir.mkdir(exist_ok=True)
    with withdrawn_on_failure(out) as published, \
            staged_stage_dir(sw.side, STAGE, sw.force, [sw.plate, *sw.double.folders]) as tmp:
        qcs, box = composite_shot(sw.info, sw.double, shot, track, cfg, start, end, out, ck.side / "strips",
                                  progress, disclose, matte_dir, ck)
        published()
        ck.published()
        for name in ("strips", "matte"):
            if (ck.side / name).is_dir():
                (ck.side / name).rename(tmp / name)
        write_tracks(tmp / "tracks.npz", track, shot, sw.info, start, sw.double.basis, bias, cfg.lens,
                     cfg.shutter_deg)
        if cfg.lens is not None:
            from doppel.face_swap.plate_lens import write_lens_maps

            write_lens_maps(cfg.lens, tmp / "lens")
        write_performer_crops(tmp, shot)
        seconds = time.perf_counter() - sw.t0
        result = SwapResult(out, qcs, track, box, seconds, cuts, performer_words(shot, cfg, start), ck.resumed,
                            ck.kept_frames)
        write_report(tmp / "swap_report.html", result, sw.info, cfg, sw.plate, sw.double.source, out)
        _write_swap_manifest(tmp, sw, result, track, params, landmarks, performer)
    return result


def _model_of(lens) -> str:
    """How the plate's lens is given: "none" (a pinhole), "opencv" (K and k1 k2 p1 p2 k3) or "stmaps"."""
    from doppel.face_swap.plate_lens import MapLens

    return "none" if lens is None else "stmaps" if isinstance(lens, MapLens) else "opencv"


def _lens_params(lens) -> dict | None:
    """The plate lens as the manifest records it (None: none given)."""
    if lens is None:
        return None
    model = _model_of(lens)
    return {"model": model, "camera": lens.name, "source": lens.source, "K": np.round(lens.K, 6).tolist(),
            "size": [lens.width, lens.height],
            **({"dist": np.round(lens.dist, 8).tolist()} if model == "opencv" else
               {"undistorted_size": list(lens.ideal_size)})}


def _write_swap_manifest(tmp: Path, sw: _Swap, result: SwapResult, track, params: dict | None,
                         landmarks: np.ndarray | None, performer) -> None:
    from capture.video_header import describe
    from core.storage import write_manifest
    from neural_render.motion_blur import MotionBlur

    cfg, plate, double, qcs = sw.cfg, sw.plate, sw.double, result.frames
    summary = {"frames": len(qcs), "swapped": sum(q.swapped for q in qcs),
               "passed_through": result.passed_through, "flagged": result.flagged, "cuts": result.cuts,
               "focal_px": round(track.focal_px, 2), "seconds": round(result.seconds, 2),
               "fps": round(result.frames_per_second, 3), "resumed": result.resumed,
               "kept_frames": result.kept_frames}
    inputs = {"double": double.source / "rig.npz"}
    if double.neural is not None:
        inputs["neural_double"] = double.neural.source / "model.safetensors"
    if Path(plate).is_file():
        inputs["plate"] = plate
    for k, f in enumerate(cfg.lens.files if cfg.lens is not None else ()):       # the lens's calibration or maps
        inputs[f"plate_lens_{k}"] = Path(f)
    if performer is not None and performer.name is not None:        # a face reference: its manifest
        inputs["face_reference"] = Path(performer.source) / "manifest.json"
    elif performer is not None and performer.source is not None:
        inputs["performer_photo"] = performer.source
    write_manifest(tmp, STAGE, inputs=inputs,
                   params={**(params or {}), "plate": str(plate), "blend": cfg.blend, "colour": cfg.colour,
                           "focal_px": cfg.focal_px, "plate_camera": _lens_params(cfg.lens),
                           "face_index": cfg.face_index, "start": sw.start, "end": sw.end,
                           "renderer": double.renderer, "matte": cfg.matte, "grow": cfg.oval_grow,
                           "relight": cfg.relight, "flow": cfg.flow_weight, "debias": cfg.debias,
                           "small_faces": cfg.small_faces, "backfill": cfg.backfill, "identify": cfg.identify,
                           "face_landmarks": "mediapipe" if landmarks is None else "given",
                           "device": sw.device, "workers": pass_workers(cfg),
                           "plate_format": describe(sw.info.header), "plate_colorspace": sw.info.colorspace,
                           "head_px": double.max_px,
                           "motion_blur": MotionBlur(cfg.shutter_deg, cfg.shutter_samples).summary()},
                   outputs={"tracks": "tracks.npz", "report": "swap_report.html"},
                   extra={"swap": summary, "output_plate": str(sw.out)})
