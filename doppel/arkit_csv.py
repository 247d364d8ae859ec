"""Facial capture in the ARKit CSV layout (Epic's Live Link Face app and the tools that write its format), read as
a `doppel.face_take.FaceTake`: the 52 ARKit blendshape curves, one row per captured frame.

Layout: a header ``Timecode,BlendShapeCount,EyeBlinkLeft,...,TongueOut[,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,
...,RightEyeRoll]``; each row a timecode ``HH:MM:SS:FF.sub`` (FF counted at the app's frame rate; .sub a phase
within the frame, not used to place the row), the number of values, then the weights in [0, 1]. Blendshape names
are ARKit's in PascalCase (``EyeBlinkLeft`` for ARKit's ``eyeBlinkLeft``) and are matched to a rig's without
regard to the first letter's case. The head and eye rotation columns are not applied: their units and axes
differ between app versions, and a head's motion usually comes with the body take (`--onto`); gaze is in the
eyeLook* blendshapes.

The file has no frame rate: it is the app's (60 by default, 30 when so set), found from the highest frame number
its timecodes reach (a take of at least a second), or given. Rows are placed on that frame grid by their
timecodes; frames the app dropped are filled by interpolation (and counted), a repeated frame keeps its last row.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np

from doppel.face_take import FaceTake, FaceTakeError

log = logging.getLogger(__name__)

ROTATION_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                    "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
APP_RATES = (24.0, 25.0, 30.0, 48.0, 50.0, 60.0)       # frame rates the timecode's frame field can count in
_TIMECODE = re.compile(r"^(\d+):(\d{2}):(\d{2})[:;](\d+)(?:\.(\d+))?$")


def is_arkit_csv(path: str | Path) -> bool:
    """Whether ``path`` is a CSV file whose header starts ``Timecode,BlendShapeCount``."""
    p = Path(path)
    if not (p.is_file() and p.suffix.lower() == ".csv"):
        return False
    with p.open(encoding="utf-8-sig", errors="replace") as f:
        head = f.readline()
    return head.replace(" ", "").lower().startswith("timecode,blendshapecount")


def arkit_name(column: str) -> str:
    """ARKit's name of a CSV column: its first letter lowercase (``MouthSmileLeft`` -> ``mouthSmileLeft``)."""
    return column[:1].lower() + column[1:]


def read_arkit_csv(path: str | Path, fps: float | None = None):
    """The take in an ARKit CSV file: a `FaceTake` with no head rotation (identity), every frame valid.
    FaceTakeError (one line, naming the file) for a header without blendshapes, a bad timecode or value, fewer
    than two rows, or a frame rate that cannot be told (a take under a second: give ``fps``)."""
    p = Path(path)
    names, times, rows = _read_rows(p)
    frames = np.array([t[3] for t in times])
    rate = fps if fps is not None else _app_rate(p, times, frames)
    if rate is None or rate <= 0:
        raise FaceTakeError(f"{p}: the frame rate cannot be told from a take under a second (frames counted to "
                            f"{frames.max()}): give it (--fps 60 or 30)")
    base = int(round(rate))                                # timecode counts whole frames at the nominal rate
    count = np.array([(h * 3600 + m * 60 + s) * base + ff for h, m, s, ff, _ in times])
    index = count - count[0]                               # the sub-frame part is a phase, not a frame
    if (np.diff(index) < 0).any():
        raise FaceTakeError(f"{p}: its timecodes go backwards at row {int(np.argmax(np.diff(index) < 0)) + 3}")
    F = int(index[-1]) + 1
    weights = np.full((F, len(names)), np.nan)
    weights[index] = rows                                   # a repeated frame: its last row wins
    filled = np.isnan(weights[:, 0])
    if filled.any():
        known = np.flatnonzero(~filled)
        for k in range(len(names)):
            weights[:, k] = np.interp(np.arange(F), known, weights[known, k])
        log.warning("%s: %d of its %d frames were missing (dropped by the app) and are interpolated", p,
                    int(filled.sum()), F)
    if np.abs(weights).max() > 1.5:
        raise FaceTakeError(f"{p}: blendshape weights reach {np.abs(weights).max():.3g}; ARKit's are in [0, 1]")
    return FaceTake(np.tile(np.eye(3), (F, 1, 1)), np.ones(F, bool), [arkit_name(n) for n in names], weights,
                    None, float(rate), [], str(p), has_head=False)


def _read_rows(p: Path) -> tuple[list[str], list[tuple], np.ndarray]:
    """(blendshape columns, per row (h, m, s, ff, sub), (R, K) weights)."""
    with p.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        table = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    header = [c.strip() for c in table[0]]
    keep = [i for i, c in enumerate(header[2:], 2) if c and c not in ROTATION_COLUMNS]
    if not keep:
        raise FaceTakeError(f"{p}: no blendshape columns after Timecode,BlendShapeCount")
    if len(table) < 3:
        raise FaceTakeError(f"{p}: {len(table) - 1} row(s); a take needs at least two frames")
    times, rows = [], []
    for r, row in enumerate(table[1:], 2):
        m = _TIMECODE.match(row[0].strip())
        if m is None:
            raise FaceTakeError(f"{p}: row {r}: timecode {row[0]!r} is not HH:MM:SS:FF[.sub]")
        h, mi, s, ff, sub = m.groups()
        times.append((int(h), int(mi), int(s), int(ff), float(f"0.{sub}") if sub else 0.0))
        try:
            rows.append([float(row[i]) for i in keep])
        except (ValueError, IndexError):
            raise FaceTakeError(f"{p}: row {r}: {len(row)} values where the header has {len(header)}, or one "
                                "is not a number") from None
    values = np.array(rows)
    if not np.isfinite(values).all():
        raise FaceTakeError(f"{p}: a blendshape value is not finite")
    return [header[i] for i in keep], times, values


def _app_rate(p: Path, times: list[tuple], frames: np.ndarray) -> float | None:
    """The app's frame rate from its timecodes' frame field: the smallest standard rate above the highest frame
    number, when the take crosses a second (else None)."""
    if len({(h, m, s) for h, m, s, _, _ in times}) < 2:     # within one second the frames may not reach the top
        return None
    top = int(frames.max())
    rate = next((r for r in APP_RATES if r > top), None)
    if rate is None:
        raise FaceTakeError(f"{p}: timecode frames count to {top}: not a frame rate the app records at")
    log.info("%s: %g frames/s (its timecodes' frames count to %d)", p, rate, top)
    return rate
