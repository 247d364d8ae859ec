"""swap_report.html: per-frame QC of a face replacement (landmark agreement, mask coverage, occlusion, flagged
frames), the yaw/pitch the shot covers, and before/after strips. Every string from user data is escaped."""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np

_CSS = """body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f3f3f3}.flag{color:#b00}
.strips img{display:block;margin:6px 0;border:1px solid #ccc}.k{color:#666}"""


def _svg_series(values: np.ndarray, height: int = 80, width: int = 600, limit: float | None = None) -> str:
    """A small inline SVG line chart of values (NaN = gap)."""
    v = np.asarray(values, np.float64)
    top = float(np.nanmax(v)) if np.isfinite(v).any() else 1.0
    top = max(top, limit or 0.0, 1e-9)
    xs = np.linspace(0, width, max(len(v), 2))
    pts = " ".join(f"{x:.1f},{height - y / top * height:.1f}" for x, y in zip(xs, v, strict=False) if np.isfinite(y))
    y = height - (limit or 0.0) / top * height
    line = f'<line x1="0" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#b00" stroke-dasharray="4"/>' if limit else ""
    return (f'<svg width="{width}" height="{height}" style="border:1px solid #ddd">{line}'
            f'<polyline fill="none" stroke="#06c" points="{pts}"/></svg>')


def write_report(path: Path, result, info, cfg, plate, double_dir, out) -> Path:
    """Write the report for a SwapResult (strips are read from path's folder / strips)."""
    from capture.video_header import describe
    from core.storage import atomic_write_text
    from doppel.face_swap.swap import FLAG_COVERAGE, FLAG_ERROR
    from reconstruction.head_tracking import yaw_pitch_deg

    q = result.frames
    tr = result.track
    yaw, pitch = yaw_pitch_deg(tr.rotation)
    yaw, pitch = yaw[tr.valid], pitch[tr.valid]
    rows = "".join(
        f"<tr><td>{x.frame}</td><td>{'yes' if x.swapped else 'no'}</td><td>{x.error:.3f}</td>"
        f"<td>{x.fit_error:.3f}</td>"
        f"<td>{x.coverage:.0%}</td><td>{x.occluded:.0%}</td><td class=flag>{escape('; '.join(x.flags))}</td></tr>"
        for x in q)
    strips = sorted((Path(path).parent / "strips").glob("*.png"))
    imgs = "".join(f'<figure><img src="strips/{escape(p.name)}" alt="frame {int(p.stem)}">'
                   f'<figcaption>frame {int(p.stem)}: plate | swapped</figcaption></figure>' for p in strips)
    swapped = sum(x.swapped for x in q)
    others = f"; in {len(result.not_performer)}, only faces not the performer's" if result.not_performer else ""
    if result.too_small:
        others += f" ({len(result.too_small)} of them too small to tell)"
    fmt = "; ".join(p for p in (describe(info.header), info.colorspace and f"read as {info.colorspace} (OCIO)") if p)
    summary = (
        f"<p>plate <b>{escape(str(plate))}</b> ({info.kind}, {info.width}x{info.height}, "
        f"{info.frame_count} frames{f', {info.fps:g} fps' if info.fps else ''}{f'; {escape(fmt)}' if fmt else ''}) "
        f"&rarr; <b>{escape(str(out))}</b><br>"
        f"double <b>{escape(str(double_dir))}</b>; blend {escape(cfg.blend)}, colour {escape(cfg.colour)}, "
        f"{escape(_camera_words(cfg, tr))}</p>"
        f"<p>{swapped} of {len(q)} frames swapped, {len(result.passed_through)} passed through (no face"
        f"{others}), "
        f"{len(result.flagged)} flagged; {result.seconds:.1f} s ({result.frames_per_second:.2f} frames/s"
        f"{'; ' + escape(result.resumed_words) if result.resumed else ''})"
        f"<br>head yaw {np.min(yaw):.0f} to {np.max(yaw):.0f} deg, pitch {np.min(pitch):.0f} to {np.max(pitch):.0f} "
        f"deg</p>" if len(yaw) else "")
    if result.performer:
        thumb = (Path(path).parent / "performer.png").is_file()
        found = (Path(path).parent / "performer_in_plate.png").is_file()
        summary += (f"<h2>Performer</h2><p>swapped: {escape(result.performer)}; after a cut, a lost face or a "
                    f"jump, only a face told to be theirs (dlib's face descriptor); "
                    f"{len(result.not_performer)} frame(s) showed only other faces and passed through</p>"
                    + ('<figure><img src="performer.png" alt="the performer"><figcaption>whom the swap took for '
                       'the performer</figcaption></figure>' if thumb else "")
                    + ('<figure><img src="performer_in_plate.png" alt="the performer in the plate"><figcaption>the '
                       'face in the plate first taken for theirs</figcaption></figure>' if found else ""))
    if result.cuts:
        summary += (f"<p class=flag>the plate cuts to another shot at frame(s) {', '.join(map(str, result.cuts))}: "
                    "each shot was tracked, colour-matched and blended on its own</p>")
    errs = np.array([x.fit_error for x in q])
    agree = np.array([x.error for x in q])
    cov = np.array([x.coverage if x.swapped else np.nan for x in q])
    html = (f"<!doctype html><html><head><meta charset=utf-8><title>Doppel face replacement QC</title>"
            f"<style>{_CSS}</style></head><body><h1>Face replacement QC</h1>{summary}"
            f"<h2>Tracking</h2><p class=k>mean distance between the plate's face landmarks and the tracked head's, in "
            f"inter-ocular distances (IOD), with the shot's identity offsets (flag above {FLAG_ERROR})</p>"
            f"{_svg_series(errs, limit=FLAG_ERROR)}<h2>Landmark agreement</h2><p class=k>the same for the double's own "
            f"face: includes how the double's face shape differs from the performer's</p>{_svg_series(agree)}"
            f"<h2>Mask coverage</h2><p class=k>blend mask / the plate's face area (flag below {FLAG_COVERAGE:.0%})</p>"
            f"{_svg_series(cov, limit=FLAG_COVERAGE)}<h2>Before / after</h2><div class=strips>{imgs}</div>"
            f"<h2>Frames</h2><table><tr><th>frame</th><th>swapped</th><th>agreement (IOD)</th><th>tracking (IOD)</th>"
            f"<th>coverage</th>"
            f"<th>occluded</th><th>flags</th></tr>{rows}</table></body></html>")
    return atomic_write_text(path, html)


def _camera_words(cfg, track) -> str:
    """The plate camera the swap solved in, in words."""
    if cfg.lens is not None:
        return f"plate {cfg.lens.describe()}"
    return f"focal {track.focal_px:.0f} px" + (" (assumed: a normal lens; give --focal-px or --plate-camera)"
                                                if cfg.focal_px is None else "")
