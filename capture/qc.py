"""Capture QC: per-image sharpness and exposure, detection status, and rig-level checks on the
triangulated landmarks (a camera out of place shows up as consistently large reprojection errors).
Problems are warnings, never exceptions: the crew decides whether a take is usable."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

QC_SIDE = 512                 # images are resized to this longest side before the sharpness measure
BLUR_RELATIVE = 0.25          # a view is "blurred" below this fraction of the session's median sharpness
DARK_MEAN, BRIGHT_MEAN = 0.12, 0.88   # mean luma outside this range: under / over exposed
CLIPPED_FRACTION = 0.05       # more than this fraction of pixels at 0 or 255: clipped
MASK_MIN_FRACTION = 0.005     # a person mask covering less than this: "no person"
OUT_OF_PLACE_FACTOR = 3.0     # camera median reprojection error above this x the rig median ...
OUT_OF_PLACE_MIN_PX = 8.0     # ... and above this many pixels: "camera out of place?"


@dataclass
class ImageQC:
    camera: str
    frame: str
    sharpness: float          # variance of the Laplacian of the grey image at QC_SIDE, (grey levels)^2
    exposure: float           # mean luma in [0, 1]
    clipped: float            # fraction of pixels at 0 or 255
    mask_fraction: float      # fraction of the image the person mask covers (p > 0.5)
    face: bool
    pose: bool
    hands: int
    warnings: list[str] = field(default_factory=list)


def image_metrics(bgr: np.ndarray) -> tuple[float, float, float]:
    """bgr (H, W, 3) uint8 -> (sharpness, mean luma in [0, 1], clipped fraction)."""
    import cv2

    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    s = QC_SIDE / max(grey.shape)
    small = cv2.resize(grey, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else grey
    sharp = float(cv2.Laplacian(small, cv2.CV_64F).var())
    return sharp, float(grey.mean() / 255.0), float(np.mean((grey == 0) | (grey == 255)))


def flag_images(items: list[ImageQC]) -> None:
    """Fill in each ImageQC's warnings (in place), using session-relative thresholds where needed."""
    if not items:
        return
    med = float(np.median([q.sharpness for q in items]))
    for q in items:
        if q.sharpness < BLUR_RELATIVE * med:
            q.warnings.append(f"blurred: sharpness {q.sharpness:.0f} < {BLUR_RELATIVE:.0%} of the session median "
                              f"{med:.0f}")
        if q.exposure < DARK_MEAN:
            q.warnings.append(f"under-exposed: mean level {q.exposure:.2f}")
        if q.exposure > BRIGHT_MEAN:
            q.warnings.append(f"over-exposed: mean level {q.exposure:.2f}")
        if q.clipped > CLIPPED_FRACTION:
            q.warnings.append(f"clipped: {q.clipped:.1%} of pixels at 0 or 255")
        if q.mask_fraction < MASK_MIN_FRACTION and not q.pose and not q.face:
            q.warnings.append("no person detected")


def cameras_out_of_place(per_camera_err: dict[str, float]) -> dict[str, str]:
    """camera -> median reprojection error (px) of its landmarks against the triangulated points ->
    camera -> warning for the ones far above the rig's median."""
    vals = [v for v in per_camera_err.values() if np.isfinite(v)]
    if len(vals) < 3:
        return {}
    med = float(np.median(vals))
    out = {}
    for cam, e in per_camera_err.items():
        if np.isfinite(e) and e > max(OUT_OF_PLACE_FACTOR * med, OUT_OF_PLACE_MIN_PX):
            out[cam] = (f"camera out of place? its landmarks are {e:.1f} px from the triangulated points "
                        f"(rig median {med:.1f} px); check the calibration or whether the camera moved")
    return out
