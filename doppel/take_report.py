"""take.html of a take's fit (`doppel fit --frame all`): every frame's landmark error, the views that saw the actor
and the time, on a chart and in a table linking each frame's overlays, the frames to look at first flagged."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

CHART_NAME = "take_reprojection.png"
FLAG_TIMES_MEDIAN = 2.0        # a frame whose landmark error is over twice the take's median is flagged


def flagged_frames(frames: dict[str, dict]) -> dict[str, str]:
    """frame -> why to look at it: seen by fewer than two views, or a landmark error over `FLAG_TIMES_MEDIAN` x
    the take's median. frames: metrics.json's "frames" (name -> {"reprojection_px" (None: nothing seen),
    "views_seeing_person", ...})."""
    px = [r["reprojection_px"] for r in frames.values() if r.get("reprojection_px") is not None]
    median = float(np.median(px)) if px else math.nan
    why = {}
    for name, r in frames.items():
        seeing, e = r.get("views_seeing_person"), r.get("reprojection_px")
        if seeing is not None and seeing < 2:
            why[name] = f"seen by {seeing} view(s): steered by the frames before it"
        elif e is not None and e > FLAG_TIMES_MEDIAN * median:
            why[name] = f"landmark error {e:.2f} px, over {FLAG_TIMES_MEDIAN:g} x the take's median {median:.2f} px"
    return why


def chart(frames: dict[str, dict], width: int = 900, height: int = 220) -> np.ndarray:
    """(height, width, 3) uint8 BGR: the landmark error (px) per frame in blue, frames seen by fewer than two views
    in red at the bottom, the take's median dashed."""
    import cv2

    img = np.full((height, width, 3), 255, np.uint8)
    px = np.array([np.nan if r.get("reprojection_px") is None else r["reprojection_px"] for r in frames.values()])
    top = max(float(np.nanmax(px)) if np.isfinite(px).any() else 1.0, 1e-6) * 1.1
    pad, n = 30, len(px)
    xs = pad + np.arange(n) * (width - 2 * pad) / max(n - 1, 1)
    ys = height - pad - np.nan_to_num(px, nan=0.0) / top * (height - 2 * pad)
    med = float(np.nanmedian(px)) if np.isfinite(px).any() else 0.0
    ym = int(height - pad - med / top * (height - 2 * pad))
    for x in range(pad, width - pad, 12):
        cv2.line(img, (x, ym), (min(x + 6, width - pad), ym), (150, 150, 150), 1)
    pts = [(int(x), int(y)) for x, y, v in zip(xs, ys, px, strict=True) if np.isfinite(v)]
    if len(pts) > 1:
        cv2.polylines(img, [np.array(pts, np.int32)], False, (200, 90, 0), 2, cv2.LINE_AA)
    for x, r in zip(xs, frames.values(), strict=True):
        if (r.get("views_seeing_person") or 2) < 2:
            cv2.line(img, (int(x), height - pad), (int(x), height - pad + 8), (0, 0, 220), 3)
    cv2.putText(img, f"landmark error, px (max {top / 1.1:.1f}; median {med:.2f} dashed)", (pad, 18),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, f"frames 1-{n}", (width - pad - 90, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60),
                1, cv2.LINE_AA)
    return img


def write_take_report(folder: Path, metrics: dict, shown: Path | None = None) -> Path:
    """``folder``/take.html and its chart for a take's fit folder whose metrics.json is ``metrics``; returns the
    report's path. ``shown``: the folder's final path, for the subtitle."""
    import cv2

    from core.storage import atomic_write_bytes
    from doppel.report import Section, write_report

    frames = metrics["frames"]
    ok, buf = cv2.imencode(".png", chart(frames))
    atomic_write_bytes(Path(folder) / CHART_NAME, buf.tobytes())
    why = flagged_frames(frames)
    rows = {name: (f"views {r.get('views_seeing_person', '?')} | "
                   + ("no landmark seen" if r["reprojection_px"] is None else f"{r['reprojection_px']:.2f} px")
                   + f" | {r['seconds']:.1f} s | {r['folder']}/overlays.png"
                   + (f" | {why[name]}" if name in why else ""))
            for name, r in frames.items()}
    seconds = sum(r["seconds"] for r in frames.values())
    sections = [Section("Take", text=f"{len(frames)} frames fitted in {seconds / 60:.1f} min; {len(why)} to look at "
                        "first (listed below and marked in the table). The first frame sets the actor's shape "
                        "(report.html); each later one starts from the two before it.",
                        images=[(CHART_NAME, "landmark error per frame (red ticks: seen by fewer than two views)")])]
    if why:
        sections.append(Section("Frames to look at", table=why,
                                files=[f"{frames[n]['folder']}/overlays.png" for n in why]))
    sections.append(Section("Frames", table=rows))
    return write_report(Path(folder) / "take.html", "Take fit", sections, subtitle=str(shown or folder))
