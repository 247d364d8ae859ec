"""One frame of the comp pass: the double's head drawn, masked, colour-matched, shaded and blended into the plate.

The work is split so that a pass can spread it over threads and still give the one-thread plate bit for bit:

1. `prepare_frame` (any thread): the head render and the plate's person segmentation (`draw_frame`), the masks
   (face outline, skin gate, hands, erosion and feather) and the CIELAB statistics of both sides inside the mask;
2. `match_colour` (in frame order, one thread): the statistics folded into the shot's `ColourMatcher`, which is
   smoothed over time, and a snapshot of its transfer for this frame;
3. `finish_frame` (any thread): that transfer applied, the plate's skin shading matched, the blend and the QC.

`composite_frame` runs the three in a row (the reference, and what a caller with one frame uses).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import numpy as np

from doppel.face_swap.double import FaceDouble
from doppel.face_swap.swap import FLAG_COVERAGE, FLAG_ERROR, FLAG_OCCLUDED, FrameQC, SwapConfig
from reconstruction.head_tracking import HeadTrack

__all__ = ["FrameComp", "Drawn", "Prepared", "draw_frame", "prepare_frame", "match_colour", "finish_frame",
           "composite_frame", "feature_ids", "feature_groups", "feature_holes", "skin_gate"]


@dataclass
class FrameComp:
    """What compositing a frame needs that stays the same through the shot. matcher: the shot's
    `ColourMatcher` (its running state is changed by `match_colour` only)."""

    double: FaceDouble
    track: HeadTrack
    K: np.ndarray
    box: tuple[int, int, int, int]
    cfg: SwapConfig
    segmenter: object
    matcher: object
    device: str = "cpu"               # the head's render (resolved `SwapConfig.device`)
    lens: object = None               # the plate's `PlateLens` (K is its): the head drawn and projected through it
    span: tuple[int, int] = (0, 0)    # the track frames [a, b) of this shot (between cuts): motion blur's neighbours
    bridged: np.ndarray | None = None  # (F,) bool: frames swapped across a detection dropout (`dropouts`)


def feature_ids() -> np.ndarray:
    """MediaPipe face-mesh indices of the brows, eyes, nose and lips (the face's inner features)."""
    return np.unique(np.concatenate(feature_groups()))


@functools.lru_cache(maxsize=1)
def feature_groups() -> tuple[np.ndarray, ...]:
    """MediaPipe face-mesh indices of each inner feature: two brows, two eyes, the lips, the nose (built once:
    it is read per face per frame)."""
    from mediapipe.python.solutions import face_mesh_connections as fc

    sets = (fc.FACEMESH_LEFT_EYEBROW, fc.FACEMESH_RIGHT_EYEBROW, fc.FACEMESH_LEFT_EYE, fc.FACEMESH_RIGHT_EYE,
            fc.FACEMESH_LIPS, fc.FACEMESH_NOSE)
    return tuple(np.array(sorted({i for e in s for i in e}), np.int64) for s in sets)


def feature_holes(shape: tuple[int, int], faces: list[np.ndarray], grow_px: float) -> np.ndarray:
    """(h, w) bool: the convex hull of each inner feature (brows, eyes, lips, nose) of every face in faces
    ((478, 2) px each, NaN rows = unknown points), grown by grow_px: where the plate's and the double's skin
    cannot be compared."""
    import cv2

    from neural_render.face_composite import polygon_mask

    holes = np.zeros(shape, bool)
    for lm in faces:
        for ids in feature_groups():
            pts = lm[ids]
            pts = pts[np.isfinite(pts).all(1)]
            if len(pts) >= 3:
                holes |= polygon_mask(shape, cv2.convexHull(pts.astype(np.float32))[:, 0])
    r = max(1, int(round(grow_px)))
    return cv2.dilate(holes.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)) > 0


def skin_gate(rgb_box: np.ndarray, face_lm_box: np.ndarray, plate_face: np.ndarray, scale: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """(core, skin), (h, w) bool each, in the face box: where the double's face may go is core | skin. core: the
    hull of the plate's inner features (brows, eyes, nose, lips; grown by 6 % of the face width), always
    replaced; skin: skin-coloured pixels (`skin_like`, sampled in the plate's face outside the features), so the
    matte stops at hair and background."""
    import cv2

    from neural_render.face_composite import polygon_mask, skin_like

    core = polygon_mask(plate_face.shape, face_lm_box[feature_ids()])
    r = max(1, int(round(0.06 * scale)))
    core = cv2.dilate(core.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)) > 0
    skin = skin_like(rgb_box, plate_face & ~core)
    skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    return core, skin


def match_skin_shading(c: FrameComp, f: int, fg_box: np.ndarray, bg: np.ndarray, mask: np.ndarray,
                       face_lm_box: np.ndarray, at: np.ndarray, scale: float) -> np.ndarray:
    """fg_box with the plate's skin shading (`shading_match`) on the skin inside mask, away from the plate's and
    the double's (projected, track index f) inner features."""
    from doppel.face_swap.render_head import project
    from neural_render.face_composite import shading_match, skin_like

    tr = c.track
    double_lm = np.full((478, 2), np.nan)
    double_lm[c.double.basis.ids] = project(c.double.basis.points(tr.expression[f]), tr.rotation[f],
                                            tr.translation[f], c.K, c.lens) - at
    sample = (mask > 0.5) & ~feature_holes(mask.shape, [face_lm_box, double_lm], 0.04 * scale)
    # the double's own non-skin (a painted brow off its landmarks, its hairline) is left out; the tolerance is
    # wide because the double's skin is smooth and a narrow one would drop its shading gradients
    weight = sample & skin_like(fg_box, sample, tolerance=5.0)
    return shading_match(fg_box, bg, weight, c.cfg.shading_sigma * scale, channels=(0,) if c.cfg.colour == "luma"
                         else (0, 1, 2))


@dataclass
class Drawn:
    """What `draw_frame` makes of one frame, in the shot's box: the double's head (rgb (h, w, 3) float32 sRGB,
    alpha (h, w)) and the plate's person segmentation (h, w) in [0, 1]."""

    rgb: np.ndarray
    alpha: np.ndarray
    person: np.ndarray


def draw_frame(c: FrameComp, f: int, rgb: np.ndarray) -> Drawn:
    """The frame's head render (track index f; with the shutter's motion blur, `head_blur`) and person
    segmentation: the part of the comp that needs neither the landmarks nor the colour match."""
    from doppel.face_swap.head_blur import blurred_head
    from doppel.face_swap.render_head import render_head
    from neural_render.motion_blur import MotionBlur

    x0, y0, x1, y1 = c.box
    times = MotionBlur(c.cfg.shutter_deg, c.cfg.shutter_samples).times()
    fg_box, alpha = blurred_head(lambda R, t, w: render_head(c.double, R, t, w, c.K, c.box, device=c.device,
                                                              lens=c.lens), c.track, f, times, c.span)
    return Drawn(fg_box, alpha, c.segmenter(rgb)[y0:y1 + 1, x0:x1 + 1])


@dataclass
class Prepared:
    """`prepare_frame`'s result, in the shot's box: the head (fg (h, w, 3) float32 sRGB, relit when asked), the
    blend mask (h, w) in [0, 1], the plate (bg (h, w, 3) float32 sRGB), the plate's face (h, w) bool and the hands
    over it (occ (h, w) bool), the plate's landmarks in box px (478, 2), the box's corner (2,) px, the face width
    in px, and the CIELAB statistics inside the mask of the head and the plate (`lab_stats`; None: not taken)."""

    fg: np.ndarray
    mask: np.ndarray
    bg: np.ndarray
    plate_face: np.ndarray
    occ: np.ndarray
    face_lm_box: np.ndarray
    at: np.ndarray
    scale: float
    stats: tuple | None


def prepare_frame(c: FrameComp, f: int, rgb: np.ndarray, face_lm: np.ndarray, hands: np.ndarray) -> Prepared:
    """Stage 1 of one frame (track index f; rgb (H, W, 3) uint8; face_lm (478, 2) px; hands (M, 21, 2) px):
    everything before the colour match."""
    from doppel.face_swap.render_head import project
    from neural_render.face_composite import face_mask, lab_stats, occluder_mask, polygon_mask
    from reconstruction.head_tracking import inter_ocular

    x0, y0, x1, y1 = c.box
    R, t, w = c.track.rotation[f], c.track.translation[f], c.track.expression[f]
    drawn = draw_frame(c, f, rgb)
    fg_box, alpha = drawn.rgb, drawn.alpha
    box_hw, at = (y1 - y0 + 1, x1 - x0 + 1), np.array([x0, y0], np.float64)   # masks drawn in the box only
    oval_px = project(c.double.oval_points(w), R, t, c.K, c.lens)
    centre = oval_px.mean(0)
    oval = polygon_mask(box_hw, centre + (oval_px - centre) * (1.0 + c.cfg.oval_grow) - at)
    plate_face = polygon_mask(box_hw, face_lm - at)
    # the double's face outline or the performer's: the performer's brows and lips must be covered too where they
    # stick out of the double's outline (else "double eyebrows"); only where the double's head was rendered
    region = oval | plate_face
    scale = float(inter_ocular(face_lm)) * 4.0 / 3.0      # ~ face width in px
    relight = c.cfg.relight and c.double.neural is None     # a neural double brings its own learned appearance
    rgb_box = rgb[y0:y1 + 1, x0:x1 + 1]
    if c.cfg.skin_gate or relight:
        core, skin = skin_gate(rgb_box, face_lm - at, plate_face, scale)
    if c.cfg.skin_gate:
        region &= core | skin
    if relight:
        relit = _relit(c, f, rgb_box, skin & plate_face)
        fg_box = fg_box if relit is None else relit
    hands_box = np.asarray(hands, np.float64).reshape(-1, 21, 2) - at
    occ = occluder_mask(box_hw, hands_box, c.cfg.hand_dilate_frac * scale)
    mask = face_mask(alpha * region, drawn.person, occ, c.cfg.erode_frac * scale, c.cfg.feather_frac * scale)
    bg = rgb_box.astype(np.float32) / 255.0
    stats = (lab_stats(fg_box, mask), lab_stats(bg, mask)) if c.cfg.colour != "none" else None
    return Prepared(fg_box, mask, bg, plate_face, occ, face_lm - at, at, scale, stats)


def _relit(c: FrameComp, f: int, rgb_box: np.ndarray, skin: np.ndarray) -> np.ndarray | None:
    """The head of track frame f shaded by the plate's light (`relight.relit_head`; None: too little skin to fit),
    with the shutter's motion blur when it is open: each time's relit head weighted by its own coverage
    (`head_blur.blurred_head`)."""
    from doppel.face_swap.head_blur import blurred_head
    from doppel.face_swap.relight import relit_head
    from doppel.face_swap.render_head import render_head
    from neural_render.motion_blur import MotionBlur

    tr = c.track
    times = MotionBlur(c.cfg.shutter_deg, c.cfg.shutter_samples).times()
    if len(times) == 1:
        return relit_head(c.double, tr.rotation[f], tr.translation[f], tr.expression[f], c.K, c.box, rgb_box, skin,
                          c.lens)
    unfit = []

    def draw(R, t, w):
        lit = relit_head(c.double, R, t, w, c.K, c.box, rgb_box, skin, c.lens)
        rgb, alpha = render_head(c.double, R, t, w, c.K, c.box, device=c.device, lens=c.lens)
        unfit.extend([] if lit is not None else [1])
        return (rgb if lit is None else lit), alpha

    rgb, _ = blurred_head(draw, tr, f, times, c.span)
    return None if unfit else rgb


def match_colour(c: FrameComp, p: Prepared):
    """Stage 2, called in frame order: the frame's statistics folded into the shot's colour matcher; returns a
    snapshot of its transfer for this frame (None when colour is not matched)."""
    if p.stats is None:
        return None
    c.matcher.update(*p.stats)
    return copy.copy(c.matcher)          # `update` replaces its arrays, never writes into them


def finish_frame(c: FrameComp, f: int, rgb: np.ndarray, p: Prepared, transfer
                 ) -> tuple[np.ndarray, FrameQC, np.ndarray]:
    """Stage 3 of one frame: (output rgb (H, W, 3) uint8, QC, blend mask (h, w) of the box). transfer: its
    `match_colour`."""
    from neural_render.face_composite import blend, to_uint8

    x0, y0, x1, y1 = c.box
    fg_box = p.fg
    if transfer is not None:
        fg_box = transfer.apply(fg_box)
    if c.cfg.shading_sigma > 0 and c.cfg.colour != "none":
        fg_box = match_skin_shading(c, f, fg_box, p.bg, p.mask, p.face_lm_box, p.at, p.scale)
    # the fixed Poisson box, in box coordinates: its corners stay 2 px inside the box
    comp = blend(c.cfg.blend, fg_box, p.bg, p.mask, box=(2, 2, x1 - x0 - 2, y1 - y0 - 2))
    out = rgb.copy()
    out[y0:y1 + 1, x0:x1 + 1] = to_uint8(comp)
    return out, frame_qc(c, f, p), p.mask


def frame_qc(c: FrameComp, f: int, p: Prepared) -> FrameQC:
    """The QC of a composited frame (track index f), with its flags."""
    face_px = max(int(p.plate_face.sum()), 1)
    fit_err = c.track.fit_error[f] if c.track.fit_error is not None else c.track.error[f]
    qc = FrameQC(f, True, float(c.track.error[f]), float(fit_err), float((p.mask > 0.5).sum() / face_px),
                 float((p.occ & p.plate_face).sum() / face_px))
    if qc.fit_error > FLAG_ERROR:
        qc.flags.append(f"tracking error {qc.fit_error:.3f} IOD")
    if qc.coverage < FLAG_COVERAGE:
        qc.flags.append(f"mask covers {qc.coverage:.0%} of the face")
    if qc.occluded > FLAG_OCCLUDED:
        qc.flags.append(f"{qc.occluded:.0%} of the face occluded")
    if c.bridged is not None and c.bridged[f]:
        qc.flags.append("face lost by the detector: swapped at the track's bridged pose")
    return qc


def composite_frame(c: FrameComp, f: int, rgb: np.ndarray, face_lm: np.ndarray, hands: np.ndarray
                    ) -> tuple[np.ndarray, FrameQC, np.ndarray]:
    """One frame (track index f), the three stages in a row: (output rgb uint8, QC, blend mask of the box)."""
    p = prepare_frame(c, f, rgb, face_lm, hands)
    return finish_frame(c, f, rgb, p, match_colour(c, p))
