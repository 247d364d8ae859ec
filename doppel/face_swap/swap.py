"""Face replacement: the double's face, tracked in 3D through a plate, rendered and composited in.

Two streaming passes over the plate, three with ``debias`` (a 4K, 10-minute plate never sits in memory; only
landmarks do):

1. track: MediaPipe's face mesh and hands in video mode on every frame (`capture.face_tracking`); the face
   to replace is the largest (or ``face_index``-th largest) one. Then the whole shot's head pose and
   expression are solved at once with the identity fixed to the double's and a temporal term
   (`reconstruction.head_tracking`), with the plate camera's focal length given or a normal lens assumed.
1b. debias (``SwapConfig.debias``, default): the double drawn at that pose over every frame and read by the same
   detector; its error there (where the truth is known) is taken out of the plate's landmarks and the shot is
   solved again (`detector_bias`, `debias_track`).
2. composite: per frame, the double's head rendered in that pose and expression (`render_head`), the mask
   (rendered face inside the double's face outline, intersected with MediaPipe's person segmentation, minus the
   hands, eroded and feathered), LAB colour transfer smoothed over time, the plate's skin shading at low
   frequencies (`match_skin_shading`), and the blend (Poisson with an anchor
   fixed for the shot, multi-band or feather) inside the shot's face box. Frames with no face pass through
   unchanged and are listed. One frame's comp lives in `frame_comp`, in three stages so that a pass spreads
   frames over `SwapConfig.workers` threads and still writes the one-thread plate bit for bit.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture.plate_io import PlateInfo
from doppel.face_swap.double import FaceDouble
from doppel.face_swap.plate_lens import PlateLens
from reconstruction.head_tracking import HeadTrack

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]    # (phase, done, total)
COLOURS = ("lab", "luma", "none")
FLAG_ERROR = 0.06        # tracking error (fit_error) worse than this (inter-ocular distances): flagged
FLAG_COVERAGE = 0.25     # mask covering less than this fraction of the plate's face: flagged
FLAG_OCCLUDED = 0.4      # hands over more than this fraction of the face: flagged
STRIP_FRAMES = 8         # before/after strips in the report
NO_FACE = "no face: passed through"
NOT_PERFORMER = "not the performer's face (another person): passed through"
TOO_SMALL = "faces too small to tell whether one is the performer's: passed through"
NOT_BRIDGED = "face lost by the detector, not bridged"     # + ": why: passed through" (`dropouts`)


@dataclass
class SwapConfig:
    """How a plate is swapped (the CLI's options)."""

    blend: str = "poisson"            # poisson | multiband | feather
    colour: str = "lab"               # lab (L, a, b matched) | luma (L only: keeps the double's skin tone) | none
    focal_px: float | None = None     # plate camera focal length in px; None = a normal lens (`default_focal`)
    lens: PlateLens | None = None     # the plate camera's calibrated K and distortion (`plate_lens`; instead of
                                      # focal_px): the head solved in its distortion-free image, drawn through it
    face_index: int = 0               # which face when there are several: 0 = the largest
    start: int = 0                    # first frame (inclusive)
    end: int | None = None            # last frame (exclusive); None = to the end
    erode_frac: float = 0.04          # mask erosion, fraction of the inter-ocular distance x 4 (face width)
    feather_frac: float = 0.08        # feather width, same unit
    hand_dilate_frac: float = 0.08    # hands' hull growth, same unit
    skin_gate: bool = True            # near the outline, replace only skin-coloured plate pixels (not hair, not
                                      # background); the brows, eyes, nose and mouth are always replaced
    relight: bool = False             # shade the double by the plate's light (`relight`: SH fitted to its skin)
    shading_sigma: float = 0.03       # skin-only shading match (`shading_match`): the plate's low frequencies
                                      # (Gaussian sigma = this x face width) replace the double's on the skin,
                                      # away from both faces' eyes, brows, lips and nose; channels as `colour`
                                      # (luma: L only; none: off); 0 = off
    flow_weight: float = 3.0          # landmarks steadied by optical flow (`capture.landmark_flow.fuse_flow`): how
                                      # much a px of disagreement with the frame-to-frame flow costs against one
                                      # with MediaPipe's detection; 0 = MediaPipe's landmarks as they are
    oval_grow: float = 0.08           # the double's face outline scaled about its centre by 1 + this (the matte's
                                      # edge moved off the brows and jaw line, into flat skin)
    max_faces: int = 4                # faces MediaPipe looks for per frame
    small_faces: bool = True          # frames where MediaPipe's face mesh finds no face are searched again on crops
                                      # (`capture.face_tracking.PlateTracker` zoom: faces in wide shots)
    identify: bool = True             # after a cut or a lost face, swap only the performer picked first, told by
                                      # their face (`capture.face_identity`), not the face of that size or place
    backfill: bool = True             # faceless frames just before a frame with the face are tracked again
                                      # backwards from it (`capture.face_backfill`: a shot's first frames)
    debias: bool = True               # read MediaPipe's pose-dependent bias on the double drawn at the first solve's
                                      # pose, take it out of the plate's landmarks and solve again
                                      # (`detector_bias`; one more pass over the plate)
    matte: bool = False               # also write each frame's blend mask: <side folder>/matte/NNNNNN.png (8-bit)
    device: str = "auto"              # where the double's head is drawn: auto (CUDA when there is one), cpu, cuda
    head_px: int | None = None        # the double's head is drawn at most this many px on its longer side and
                                      # resized up to a larger face box (`FaceDouble.max_px`); 0 = at the plate's
                                      # resolution; None = 512, or a neural double's training size if larger
    prefetch: int = 2                 # frames worked on ahead in background threads while the caller composites
                                      # or detects (`core.prefetch`; the same output); 0 = all in one thread
    workers: int = 0                  # background threads of each streamed pass; 0 = auto (the cores, at most 8:
                                      # `core.prefetch.auto_workers`); the same output for any number
    shutter_deg: float = 0.0          # motion blur of the double's head: the plate camera's shutter angle, degrees,
                                      # centred on the frame (`head_blur`); 0 = drawn sharp
    shutter_samples: int = 6          # head renders over the open shutter, averaged
    bridge: int = 2                   # a face lost for at most this many frames inside a shot (a blurred fast turn)
                                      # is swapped at the track's bridged pose, not passed through (`dropouts`); 0 =
                                      # every frame without landmarks passes through


@dataclass
class ShotLandmarks:
    """landmarks (F, 478, 2) float32 px, NaN where no face; n_faces (F,) faces found; hands: per frame (M, 21, 2);
    flow (F, 478, 2) float32 px: each landmark's optical-flow motion from the frame before (NaN where unknown);
    detected: MediaPipe's landmarks before `steadied` fused them with the flow (None: landmarks are those);
    from_crop (F,) bool: the faces were found on a crop (a small face, `PlateTracker`'s zoom); backfilled (F,)
    bool: the face was found by tracking backwards from a later frame (`capture.face_backfill`); cuts: frames
    (offsets from the first tracked) where the plate cuts to another shot (`capture.shot_cuts`); not_performer
    (F,) bool: faces in view, none of them the performer's (`capture.face_identity`): passed through; too_small
    (F,) bool: of those, frames where no face could be told (too small)."""

    landmarks: np.ndarray
    n_faces: np.ndarray
    hands: list[np.ndarray]
    flow: np.ndarray | None = None
    detected: np.ndarray | None = None
    from_crop: np.ndarray | None = None
    backfilled: np.ndarray | None = None
    cuts: list[int] = field(default_factory=list)
    not_performer: np.ndarray | None = None
    too_small: np.ndarray | None = None
    performer: object = None          # `capture.face_identity.Performer` of the swap (None: not identified)
    performer_frame: int | None = None  # the frame offset where the performer was picked, or first found when
                                        # given (a photo, a face reference); None: never
    performer_crop: np.ndarray | None = None   # their face in that frame (h, w, 3) uint8, for people to compare
    bridged: np.ndarray | None = None  # (F,) bool: frames the detector lost, swapped at the track's bridged pose with
                                       # landmarks interpolated from their neighbours (`dropouts.bridge_dropouts`)
    unbridged: dict[int, str] | None = None   # frame offset -> why a dropout's frame was not bridged (passed through)

    def steadied(self, weight: float) -> ShotLandmarks:
        """The same shot with its landmarks fused with their flow (`capture.landmark_flow.fuse_flow`)."""
        from capture.landmark_flow import fuse_flow

        if weight <= 0 or self.flow is None:
            return self
        return dataclasses.replace(self, landmarks=fuse_flow(self.landmarks, self.flow, weight),
                                   detected=self.landmarks)

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.landmarks).all((1, 2))

    @property
    def shots(self) -> list[tuple[int, int]]:
        """The shots between the cuts, as (first, end) frame offsets: each is solved and composited on its own."""
        from capture.shot_cuts import shot_ranges

        return shot_ranges(self.cuts, 0, len(self.landmarks))


@dataclass
class FrameQC:
    """QC of one frame: swapped or passed through, landmark agreement of the double's face with the plate's
    (inter-ocular distances; includes the two faces' difference in shape), tracking error (the same with the
    shot's identity offsets), mask coverage of the plate's face, fraction of the face under hands, and why it is
    flagged (empty = fine)."""

    frame: int
    swapped: bool
    error: float = float("nan")
    fit_error: float = float("nan")
    coverage: float = 0.0
    occluded: float = 0.0
    flags: list[str] = field(default_factory=list)


@dataclass
class SwapResult:
    out: Path
    frames: list[FrameQC]
    track: HeadTrack
    box: tuple[int, int, int, int]
    seconds: float
    cuts: list[int] = field(default_factory=list)     # plate frames where it cuts to another shot
    performer: str = ""                               # whom the swap took for the performer (words for people)
    resumed: bool = False                             # went on from a checkpoint (`doppel.face_swap.checkpoint`):
    kept_frames: int = 0                              # its tracking, and this many frames of the range composited

    @property
    def frames_per_second(self) -> float:
        """Frames of the range this run worked on (a resumed swap's kept ones not counted) per second."""
        return (len(self.frames) - self.kept_frames) / max(self.seconds, 1e-9)

    @property
    def resumed_words(self) -> str:
        """"" or what a resumed swap took from its checkpoint, in words."""
        if not self.resumed:
            return ""
        frames = f" and {self.kept_frames} frame(s)" if self.kept_frames else ""
        return f"resumed: the tracking{frames} kept by the interrupted swap"

    @property
    def passed_through(self) -> list[int]:
        return [q.frame for q in self.frames if not q.swapped]

    @property
    def not_performer(self) -> list[int]:
        """Frames passed through because the faces in view were not the performer's, or could not be told
        (`capture.face_identity`)."""
        return [q.frame for q in self.frames if NOT_PERFORMER in q.flags or TOO_SMALL in q.flags]

    @property
    def not_bridged(self) -> dict[int, str]:
        """Frames the detector lost inside a shot that were not bridged (`dropouts`): frame -> why."""
        head = f"{NOT_BRIDGED}: "
        return {q.frame: flag[len(head):].removesuffix(": passed through")
                for q in self.frames for flag in q.flags if flag.startswith(head)}

    @property
    def too_small(self) -> list[int]:
        """Of those, the frames whose faces were too small to tell."""
        return [q.frame for q in self.frames if TOO_SMALL in q.flags]

    @property
    def flagged(self) -> list[int]:
        return [q.frame for q in self.frames if q.flags]


def performer_words(shot: ShotLandmarks, cfg: SwapConfig, start: int) -> str:
    """Whom the swap took for the performer, in words for the report ("" when faces were not identified)."""
    p = shot.performer
    if p is None:
        return ""
    found = "" if shot.performer_frame is None else f"; first found at frame {start + shot.performer_frame}"
    if p.name is not None:
        return f"{p.name}, as their face reference {p.source} shows them{found}"
    if p.source is not None:
        return f"the person of the photo {p.source}{found}"
    if shot.performer_frame is None:
        return ""
    which = "the largest face" if cfg.face_index == 0 else f"face {cfg.face_index} by size (--face-index)"
    known = "" if p.known else " (too small to tell who it is: no face after a cut was taken for theirs)"
    return f"{which} at frame {start + shot.performer_frame}{known}"


def warn_of_cuts(cuts: list[int], start: int, end: int) -> None:
    """A warning line when the swapped frames span cuts (plate frame numbers): each shot is swapped on its own
    (`ShotLandmarks.shots`); it names each shot's --start/--end."""
    from capture.shot_cuts import shot_ranges

    if cuts:
        shots = ", ".join(f"--start {a} --end {b}" for a, b in shot_ranges([c - start for c in cuts], start, end))
        log.warning("the plate cuts to another shot at frame(s) %s: each shot is tracked, colour-matched and "
                    "blended on its own (as %s would; not a cut? swap the whole range with --start/--end and check "
                    "the track across it)", ", ".join(map(str, cuts)), shots)


def check_config(cfg: SwapConfig, info: PlateInfo) -> tuple[int, int]:
    """(start, end) frames after validating the options against the plate; ValueError naming the option."""
    check_options(cfg)
    if cfg.lens is not None:
        cfg.lens.fitted(info.width, info.height)         # its size and distortion checked against the plate
    end = info.frame_count if cfg.end is None else cfg.end
    if 0 <= end <= cfg.start < info.frame_count:
        raise ValueError(f"--start {cfg.start} / --end {end}: no frame (--end is exclusive and must be after "
                         "--start)")
    if not 0 <= cfg.start < end <= info.frame_count:
        files = (f" (files {info.frames[0].name} to {info.frames[-1].name}: --start and --end count frames from 0, "
                 "not the numbers in the names)") if getattr(info, "kind", "") == "frames" and info.frames else ""
        raise ValueError(f"--start {cfg.start} / --end {end}: the plate has frames 0-{info.frame_count - 1}{files}")
    return cfg.start, end


def check_options(cfg: SwapConfig) -> None:
    """ValueError naming the option when one is out of range; what needs the plate is `check_config`'s."""
    from neural_render.face_composite import BLENDS
    from reconstruction.fitting.config import resolve_device

    resolve_device(cfg.device)                     # "cuda" without a GPU: one line, before anything else

    if cfg.blend not in BLENDS:
        raise ValueError(f"--blend must be one of {', '.join(BLENDS)}, got {cfg.blend!r}")
    if cfg.colour not in COLOURS:
        raise ValueError(f"--colour must be one of {', '.join(COLOURS)}, got {cfg.colour!r}")
    if cfg.focal_px is not None and not (cfg.focal_px > 0 and np.isfinite(cfg.focal_px)):
        raise ValueError(f"--focal-px must be a positive number of pixels, got {cfg.focal_px}")
    if cfg.focal_px is not None and cfg.lens is not None:
        raise ValueError("--focal-px and --plate-camera both give the plate's focal length: give one")
    if cfg.face_index < 0:
        raise ValueError(f"--face-index must be >= 0, got {cfg.face_index}")
    if not -0.5 < cfg.oval_grow <= 1.0:
        raise ValueError(f"--grow must be in (-0.5, 1], got {cfg.oval_grow}")
    if not 0.0 <= cfg.shading_sigma <= 1.0:
        raise ValueError(f"--shading must be in [0, 1] (a fraction of the face width), got {cfg.shading_sigma}")
    if not 0 <= cfg.prefetch <= 64:
        raise ValueError(f"prefetch must be in [0, 64] frames, got {cfg.prefetch}")
    if not 0 <= cfg.workers <= 64:
        raise ValueError(f"--workers must be in [0, 64] threads (0 = auto), got {cfg.workers}")
    if not (isinstance(cfg.bridge, int) and 0 <= cfg.bridge <= 12):
        raise ValueError(f"--bridge must be 0 to 12 frames, got {cfg.bridge}")
    if not 0.0 <= cfg.flow_weight <= 1e3:
        raise ValueError(f"--flow must be in [0, 1000], got {cfg.flow_weight}")
    if cfg.head_px not in (None, 0) and not 64 <= cfg.head_px <= 8192:
        raise ValueError(f"--head-px must be 0 (the plate's resolution) or 64-8192 px, got {cfg.head_px}")
    from neural_render.motion_blur import MotionBlur

    try:
        MotionBlur(cfg.shutter_deg, cfg.shutter_samples)
    except ValueError as e:
        raise ValueError(f"--shutter: {e}") from None


def track_shot(info: PlateInfo, cfg: SwapConfig, start: int, end: int, progress: Progress | None = None,
               landmarks: np.ndarray | None = None, performer=None) -> ShotLandmarks:
    """Pass 1: face and hand landmarks of frames start <= i < end, and each face landmark's optical flow from the
    frame before (when cfg.flow_weight > 0). landmarks: the face's (end - start, 478, 2) px from another tracker
    (NaN rows: no face), used as they are: MediaPipe then only finds the hands and counts the faces, no flow.
    performer: who to swap (`capture.face_identity.performer_from_photo`, a face reference): their face wherever
    it is, from the first frame (None: the face picked first, `SwapConfig.face_index`, and with cfg.identify that
    person); with landmarks, each frame's given face is checked to be theirs (else passed through)."""
    import cv2

    from capture.face_backfill import Backfill
    from capture.face_tracking import FaceFollower, PlateTracker
    from capture.landmark_flow import drop_disagreeing_flow, landmark_flow
    from capture.plate_io import iter_plate_frames
    from capture.shot_cuts import CutDetector
    from reconstruction.head_tracking import inter_ocular

    F = end - start
    given = check_given_landmarks(landmarks, F)
    lm = np.full((F, 478, 2), np.nan, np.float32) if given is None else given
    flow = np.full((F, 478, 2), np.nan, np.float32)
    n_faces = np.zeros(F, np.int64)
    from_crop, backfilled, others, small = (np.zeros(F, bool) for _ in range(4))
    hands: list[np.ndarray] = []
    performer = _performer_of(performer, cfg, given)
    prev, cuts = None, CutDetector()
    follow = FaceFollower(cfg.face_index, performer=performer if given is None else None)   # given: checked below
    max_faces = max(cfg.max_faces, cfg.face_index + 1)
    back = Backfill(lambda: PlateTracker(max_faces=max_faces, hands=False, zoom=cfg.small_faces, lost=True),
                    cfg.face_index) \
        if cfg.backfill and given is None else None
    with PlateTracker(max_faces=max_faces, zoom=cfg.small_faces, frames=F) as tracker:
        for i, rgb in iter_plate_frames(info, start, end):
            r = tracker.process(rgb)
            cuts.add(rgb)
            f = i - start
            n_faces[f], from_crop[f] = len(r.faces), r.from_crop
            new_picture = cuts.new_picture()
            face = follow.pick(r.faces, new_picture, rgb)
            others[f], small[f] = follow.not_performer, follow.too_small
            if face is not None and given is None:
                lm[f] = face
            if given is not None and performer is not None:
                others[f], small[f] = _given_unlike(performer, rgb, lm[f])
                if others[f]:
                    lm[f] = np.nan                                # a given face that is not the performer's
            if back is not None and new_picture:
                back.cut()                                        # never tracked back into the shot before
            if back is not None and face is None:
                back.faceless(f, rgb)
            elif back is not None:
                behind = FaceFollower(cfg.face_index, seed=face, performer=performer)  # back from this frame's face
                for g, rb, img in back.found(f, rgb):     # before the flow: frame f's flow from f - 1 is read
                    if (picked := behind.pick(rb.faces, False, img)) is None:
                        break
                    lm[g], n_faces[g], from_crop[g], backfilled[g] = picked, len(rb.faces), rb.from_crop, True
                    others[g] = small[g] = False
            hands.append(r.hands.astype(np.float32))
            if cfg.flow_weight > 0 and given is None:
                gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
                if prev is not None and np.isfinite(lm[f - 1]).all():
                    iod = float(inter_ocular(lm[f - 1]))
                    flow[f] = drop_disagreeing_flow(lm[f - 1], landmark_flow(prev, gray, lm[f - 1], iod), lm[f], iod)
                prev = gray
            if progress:
                progress("track", f + 1, F)
    flow[cuts.cuts()] = np.nan                                   # no motion carries across a cut
    return ShotLandmarks(lm, n_faces, hands, flow if cfg.flow_weight > 0 and given is None else None,
                         from_crop=from_crop, backfilled=backfilled, cuts=cuts.cuts(), not_performer=others,
                         too_small=small, performer=performer, performer_frame=follow.first_pick,
                         performer_crop=follow.first_crop)


def _given_unlike(performer, rgb: np.ndarray, face: np.ndarray) -> tuple[bool, bool]:
    """(not the performer's, too small to tell) for a face given by --landmarks, face (478, 2) px in rgb (H, W, 3)
    uint8; a frame without one (NaN) is (False, False). A face too small to tell is not taken for theirs."""
    from capture.face_identity import wide_enough

    if not np.isfinite(face).all():
        return False, False
    if not wide_enough(face):
        return True, True
    return performer.find(rgb, face[None]) is None, False


def _performer_of(performer, cfg: SwapConfig, landmarks: np.ndarray | None):
    """The performer a tracking pass identifies faces by: the one given (`check_performer`), else a new one
    (learnt from the first pick; its model loaded in the background while MediaPipe starts) with cfg.identify and
    the swap's own tracking, else None."""
    from capture.face_identity import Performer, preload

    check_performer(performer, cfg)
    if performer is not None or not cfg.identify or landmarks is not None:
        return performer
    preload()
    return Performer()


def check_performer(performer, cfg: SwapConfig) -> None:
    """ValueError (one line) when a performer to swap (from a photo or a face reference) cannot be honoured by
    these options."""
    if performer is None:
        return
    what = f"{performer.name}'s face reference" if performer.name else "--performer-photo"
    if not cfg.identify:
        raise ValueError(f"{what} tells the performer by their face: it cannot go with --no-identify")


def load_face_track(path: str | Path) -> np.ndarray:
    """(F, 478, 2) px face landmarks from an .npz's ``landmarks`` (a swap's tracks.npz has them) or an .npy;
    ValueError (one line) when the file is missing or holds no such array (the shape is checked against the
    frames swapped by `check_given_landmarks`)."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--landmarks {path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):
            return np.asarray(data, np.float32)
        with data:
            return np.asarray(data["landmarks"], np.float32)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as e:     # missing array, garbage, truncated
        raise ValueError(f"--landmarks {path}: no 'landmarks' array of face landmarks in it ({e})") from None


def check_given_landmarks(landmarks: np.ndarray | None, frames: int) -> np.ndarray | None:
    """Landmarks from another tracker as (frames, 478, 2) float32 px, or ValueError (one line)."""
    if landmarks is None:
        return None
    lm = np.asarray(landmarks, np.float32)
    if lm.shape != (frames, 478, 2):
        raise ValueError(f"face landmarks of shape {lm.shape}: expected ({frames}, 478, 2), MediaPipe's 478 "
                         "face-mesh points in pixels for every frame swapped")
    if np.isinf(lm).any():
        raise ValueError("face landmarks with infinite values (NaN marks a frame without a face; nothing else may "
                         "be non-finite)")
    return lm.copy()


NORMAL_LENS_FOV_X = 39.6   # degrees: a 50 mm lens on a 36 mm-wide film back


def default_focal(width: int) -> float:
    """The focal length (px) assumed when the plate's is not given: a normal lens (`NORMAL_LENS_FOV_X`). The face
    alone cannot tell it: with a performer whose face differs from the double's, the fit error keeps falling as
    the lens gets longer or shorter depending on the faces (measured on the astronaut plate), so an estimate
    would be a guess dressed up as a measurement."""
    return width / 2 / np.tan(np.radians(NORMAL_LENS_FOV_X) / 2)


def solve_track(shot: ShotLandmarks, info: PlateInfo, double: FaceDouble, cfg: SwapConfig) -> HeadTrack:
    """The shot's head pose and expression (identity fixed to the double's)."""
    from reconstruction.head_tracking import fit_head_track, intrinsics

    valid = shot.valid
    if not valid.any() and shot.not_performer is not None and shot.not_performer.any():
        named = shot.performer is not None and shot.performer.name is not None
        whose = f"{shot.performer.name}'s (their face reference)" if named else "the performer's"
        raise ValueError(f"{info.path}: faces found, but none is {whose} in any frame of the plate")
    if not valid.any():
        raise ValueError(f"{info.path}: no face found in any frame of the plate")
    lens = plate_lens(cfg, info)
    f = lens.focal_px if lens is not None else cfg.focal_px or default_focal(info.width)
    K = lens.K if lens is not None else intrinsics(f, info.width, info.height)
    landmarks = shot.landmarks if lens is None else lens.undistort(shot.landmarks)   # solved in the ideal image
    parts = [fit_head_track(landmarks[a:b], valid[a:b], K, double.basis) if valid[a:b].any()
             else _faceless_track(b - a, double.basis, f) for a, b in shot.shots]
    return parts[0] if len(parts) == 1 else _joined(parts)


def plate_lens(cfg: SwapConfig, info: PlateInfo) -> PlateLens | None:
    """The swap's plate lens at the plate's size (`PlateLens.fitted`: `with_plate_lens` has done it once), or None
    (no calibrated lens: a pinhole of `plate_K`'s focal length)."""
    if cfg.lens is None or (cfg.lens.width, cfg.lens.height) == (info.width, info.height):
        return cfg.lens
    return cfg.lens.fitted(info.width, info.height)


def with_plate_lens(cfg: SwapConfig, info: PlateInfo) -> SwapConfig:
    """cfg with its lens fitted to the plate's size once (a proxy of the calibrated frames: K scaled)."""
    lens = plate_lens(cfg, info)
    if lens is not cfg.lens:
        log.info("plate camera %s: calibrated for %dx%d frames, scaled to the plate's %dx%d", lens.name,
                 cfg.lens.width, cfg.lens.height, info.width, info.height)
    return cfg if lens is cfg.lens else dataclasses.replace(cfg, lens=lens)


def plate_K(track: HeadTrack, info: PlateInfo, cfg: SwapConfig) -> np.ndarray:
    """(3, 3) the plate camera's K the head is solved and drawn in: the lens's, or a pinhole of the track's focal
    length centred on the frame."""
    from reconstruction.head_tracking import intrinsics

    lens = plate_lens(cfg, info)
    return lens.K if lens is not None else intrinsics(track.focal_px, info.width, info.height)


def _faceless_track(frames: int, basis, focal_px: float) -> HeadTrack:
    """The track of a shot without a face: nothing valid (its frames pass through)."""
    nan = np.full(frames, np.nan)
    return HeadTrack(np.tile(np.eye(3), (frames, 1, 1)), np.tile([0.0, 0.0, 1.0], (frames, 1)),
                     np.zeros((frames, len(basis.names))), np.zeros(frames, bool), nan, focal_px, nan.copy())


def _joined(parts: list[HeadTrack]) -> HeadTrack:
    """The shots' tracks one after another (a plate with cuts)."""
    return HeadTrack(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("rotation", "translation",
                                                                                   "expression", "valid", "error")),
                     parts[0].focal_px, np.concatenate([p.fit_error for p in parts]))


BIAS_SMOOTHING_S = 0.125     # seconds: the detector's bias is averaged over about this (sigma) before use


def debias_track(shot: ShotLandmarks, track: HeadTrack, info: PlateInfo, double: FaceDouble, cfg: SwapConfig,
                 start: int, progress: Progress | None = None) -> tuple[HeadTrack, np.ndarray]:
    """Pass 1b: (the shot solved again from its landmarks less MediaPipe's bias, the bias (F, L, 2) px as read
    on the double at ``track``'s pose, rows double.basis.ids; `detector_bias`). ``shot`` is not changed (the
    comp's masks keep the plate's landmarks)."""
    from doppel.face_swap.detector_bias import rendered_landmark_bias, smooth_over_time
    from reconstruction.fitting.config import resolve_device

    K = plate_K(track, info, cfg)
    end = start + len(track.valid)
    bias = rendered_landmark_bias(info, double, track, K, start, end, max(cfg.max_faces, cfg.face_index + 1),
                                  progress, resolve_device(cfg.device), cfg.prefetch, pass_workers(cfg),
                                  zoom=cfg.small_faces, lens=plate_lens(cfg, info))
    lm = shot.landmarks.astype(np.float64)
    for a, b in shot.shots:                          # each shot's bias smoothed within it
        lm[a:b, double.basis.ids] -= smooth_over_time(bias[a:b], BIAS_SMOOTHING_S * (info.fps or 24.0))
    return solve_track(dataclasses.replace(shot, landmarks=lm), info, double, cfg), bias


def pass_workers(cfg: SwapConfig) -> int:
    """The background threads of a streamed pass: `SwapConfig.workers`, or `auto_workers` when it is 0."""
    from core.prefetch import auto_workers

    return cfg.workers or auto_workers()


def head_device(double: FaceDouble, cfg: SwapConfig) -> str:
    """The resolved `SwapConfig.device` ("cpu" or "cuda"); a neural double's model is moved there; the head is
    drawn at most `SwapConfig.head_px` (None: the double's default)."""
    from reconstruction.fitting.config import resolve_device

    device = resolve_device(cfg.device)
    if double.neural is not None:
        double.neural.model.to(device)
    if cfg.head_px is not None:
        double.max_px = cfg.head_px
    return device


def shot_box(double: FaceDouble, track: HeadTrack, K: np.ndarray, width: int, height: int,
             frames: list[int] | None = None, lens: PlateLens | None = None) -> tuple[int, int, int, int]:
    """The union of the head's boxes over the shot (or over ``frames``, valid track indices), kept 3 px inside the
    frame (the fixed Poisson box); in the plate's pixels through ``lens`` when there is one."""
    from doppel.face_swap.render_head import head_box

    frames = np.flatnonzero(track.valid) if frames is None else frames
    boxes = [head_box(double, track.rotation[i], track.translation[i], track.expression[i], K, width, height,
                      lens=lens) for i in frames]
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        raise ValueError("the tracked head never falls inside the frame")
    b = np.array(boxes)
    return (int(max(b[:, 0].min(), 3)), int(max(b[:, 1].min(), 3)), int(min(b[:, 2].max(), width - 4)),
            int(min(b[:, 3].max(), height - 4)))
