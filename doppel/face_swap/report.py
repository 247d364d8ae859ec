"""swap_report.html: per-frame QC of a face replacement (landmark agreement, mask coverage, occlusion, flagged
frames), the yaw/pitch the shot covers, and before/after strips. Every string from user data is escaped."""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np

_CSS = """body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f3f3f3}.flag{color:#b00}
.strips img{display:block;margin:6px 0;border:1px solid #ccc}.k{color:#666}"""


_W, _H, _LEFT, _BOTTOM, _TOP, _RIGHT = 640, 96, 52, 18, 8, 10     # chart size and margins, px


def _svg_series(values: np.ndarray, frames: np.ndarray, limit: float | None = None, percent: bool = False,
                passed: np.ndarray | None = None, flagged: np.ndarray | None = None, title: str = "chart") -> str:
    """An inline SVG line chart of values (F,) (NaN: a gap) over the plate's frame numbers frames (F,): the y axis
    from 0 to the larger of the highest value and limit, labelled (as a percentage with ``percent``); limit as a
    dashed red line, labelled; frame numbers along x; passed (F,) bool frames as grey bands (passed through) and
    flagged (F,) bool frames as red dots on the line. ``title``: what the chart shows, for a screen reader."""
    v = np.asarray(values, np.float64)
    n = len(v)
    top = max(float(np.nanmax(v)) if np.isfinite(v).any() else 0.0, limit or 0.0, 1e-9)
    w, h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(i: float) -> float:
        return _LEFT + (i / max(n - 1, 1)) * w

    def y(val: float) -> float:
        return _TOP + h - val / top * h

    def label(val: float) -> str:
        return f"{val:.0%}" if percent else f"{val:.3g}"

    parts = [f'<rect x="{_LEFT}" y="{_TOP}" width="{w}" height="{h}" fill="none" stroke="#ddd"/>']
    band = w / max(n - 1, 1)
    parts += [f'<rect x="{x(i) - band / 2:.1f}" y="{_TOP}" width="{band:.1f}" height="{h}" fill="#eee"/>'
              for i in np.flatnonzero(passed if passed is not None else np.zeros(n, bool))]
    for val in (0.0, top):
        if val == top and limit and y(limit) - y(top) < 10:     # the limit's label would overwrite it
            continue
        parts.append(f'<text x="{_LEFT - 4}" y="{y(val) + 4:.1f}" text-anchor="end">{label(val)}</text>')
    if limit:
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + w}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" stroke="#b00" '
                     f'stroke-dasharray="4"/><text x="{_LEFT - 4}" y="{y(limit) + 4:.1f}" text-anchor="end" '
                     f'fill="#b00">{label(limit)}</text>')
    for i in np.unique(np.linspace(0, n - 1, min(n, 6)).round().astype(int)) if n else []:
        parts.append(f'<text x="{x(i):.1f}" y="{_H - 4}" text-anchor="middle">{int(frames[i])}</text>')
    finite = np.isfinite(v)                             # a gap (NaN) ends a segment of the line
    for seg in np.split(np.arange(n), np.flatnonzero(np.diff(finite.astype(int))) + 1):
        if not len(seg) or not finite[seg[0]]:
            continue
        parts.append(f'<polyline fill="none" stroke="#06c" points="'
                     f'{" ".join(f"{x(i):.1f},{y(v[i]):.1f}" for i in seg)}"/>' if len(seg) > 1 else
                     f'<circle cx="{x(seg[0]):.1f}" cy="{y(v[seg[0]]):.1f}" r="1.5" fill="#06c"/>')
    dots = np.flatnonzero((flagged if flagged is not None else np.zeros(n, bool)) & np.isfinite(v))
    parts += [f'<circle cx="{x(i):.1f}" cy="{y(v[i]):.1f}" r="3" fill="#b00"/>' for i in dots]
    return (f'<svg width="{_W}" height="{_H}" font-size="10" font-family="system-ui,sans-serif" role="img" '
            f'aria-label="{escape(title)}"><title>{escape(title)}</title>' + "".join(parts) + "</svg>")


def write_report(path: Path, result, info, cfg, plate, double_dir, out) -> Path:
    """Write the report for a SwapResult (strips are read from path's folder / strips)."""
    from core.storage import atomic_write_text

    q = result.frames
    rows = "".join(
        f"<tr><td>{x.frame}</td><td>{'yes' if x.swapped else 'no'}</td><td>{_num(x.error, '.3f')}</td>"
        f"<td>{_num(x.fit_error, '.3f')}</td><td>{_num(x.coverage, '.0%') if x.swapped else '&ndash;'}</td>"
        f"<td>{x.occluded:.0%}</td><td class=flag>{escape('; '.join(x.flags))}</td></tr>"
        for x in q)
    strips = sorted((Path(path).parent / "strips").glob("*.png"))
    imgs = "".join(f'<figure><img src="strips/{escape(p.name)}" alt="frame {int(p.stem)}">'
                   f'<figcaption>frame {int(p.stem)}: plate | swapped</figcaption></figure>' for p in strips)
    html = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Doppel face replacement QC</title>"
            f"<style>{_CSS}</style></head><body><main><h1>Face replacement QC</h1>"
            f"{_summary(path, result, info, cfg, plate, double_dir, out)}{_charts(q)}"
            f"<h2>Before / after</h2><div class=strips>{imgs}</div>"
            f"<h2>Frames</h2><table><tr><th>frame</th><th>swapped</th><th>agreement (IOD)</th><th>tracking (IOD)</th>"
            f"<th>coverage</th><th>occluded</th><th>flags</th></tr>{rows}</table></main></body></html>")
    return atomic_write_text(path, html)


def _num(value: float, fmt: str) -> str:
    """value formatted, or a dash where there is none (NaN: a frame passed through)."""
    return format(value, fmt) if np.isfinite(value) else "&ndash;"


def _charts(q) -> str:
    """The three per-frame charts (tracking error, landmark agreement, mask coverage) over the plate's frame
    numbers; frames passed through shaded, flagged ones dotted red."""
    from doppel.face_swap.swap import FLAG_COVERAGE, FLAG_ERROR

    marks = {"frames": np.array([x.frame for x in q]), "passed": np.array([not x.swapped for x in q], bool),
             "flagged": np.array([bool(x.flags) for x in q], bool)}
    track_label = "tracking error per frame"
    legend = ("<p class=k>x: plate frame; grey: passed through (no swap); red dots: flagged frames "
              "(their flags in the table below)</p>")
    return (f"<h2>Tracking</h2><p class=k>mean distance between the plate's face landmarks and the tracked "
            f"head's, in inter-ocular distances (IOD), with the shot's identity offsets (flag above {FLAG_ERROR})</p>"
            f"{_svg_series(np.array([x.fit_error for x in q]), limit=FLAG_ERROR, title=track_label, **marks)}{legend}"
            f"<h2>Landmark agreement</h2><p class=k>the same for the double's own face: includes how the double's "
            f"face shape differs from the performer's</p>"
            f"{_svg_series(np.array([x.error for x in q]), title='landmark agreement per frame', **marks)}"
            f"<h2>Mask coverage</h2><p class=k>blend mask / the plate's face area (flag below {FLAG_COVERAGE:.0%})</p>"
            + _svg_series(np.array([x.coverage if x.swapped else np.nan for x in q]), limit=FLAG_COVERAGE,
                          percent=True, title="mask coverage per frame", **marks))


def _summary(path: Path, result, info, cfg, plate, double_dir, out) -> str:
    """The report's head: plate, double, settings, what was swapped and passed through (and why), the head's
    range, the performer, the cuts."""
    from capture.video_header import describe
    from reconstruction.head_tracking import yaw_pitch_deg

    q, tr = result.frames, result.track
    yaw, pitch = yaw_pitch_deg(tr.rotation)
    yaw, pitch = yaw[tr.valid], pitch[tr.valid]
    swapped = sum(x.swapped for x in q)
    fmt = "; ".join(p for p in (describe(info.header), info.colorspace and f"read as {info.colorspace} (OCIO)") if p)
    summary = (
        f"<p>plate <b>{escape(str(plate))}</b> ({info.kind}, {info.width}x{info.height}, "
        f"{info.frame_count} frames{f', {info.fps:g} fps' if info.fps else ''}{f'; {escape(fmt)}' if fmt else ''}) "
        f"&rarr; <b>{escape(str(out))}</b><br>"
        f"double <b>{escape(str(double_dir))}</b>; blend {escape(cfg.blend)}, colour {escape(cfg.colour)}, "
        f"{escape(_camera_words(cfg, tr))}</p>"
        f"<p>{swapped} of {len(q)} frames swapped, {len(result.passed_through)} passed through"
        f"{f' ({escape(_why_passed(result), quote=False)})' if result.passed_through else ''}, "
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
    return summary


def _why_passed(result) -> str:
    """Why the frames passed through did, in words: no face; only faces not the performer's (too small to tell);
    lost by the detector inside a shot and not bridged."""
    lost = len(result.not_bridged)
    others = len(result.not_performer)
    faceless = max(len(result.passed_through) - lost - others, 0)
    parts = [f"no face in {faceless}"] if faceless or not (lost or others) else []
    if others:
        small = f" ({len(result.too_small)} of them too small to tell)" if result.too_small else ""
        parts.append(f"in {others}, only faces not the performer's{small}")
    if lost:
        parts.append(f"in {lost}, a face the detector lost inside the shot and not bridged: see their flags")
    return "; ".join(parts)


def _camera_words(cfg, track) -> str:
    """The plate camera the swap solved in, in words."""
    if cfg.lens is not None:
        return f"plate {cfg.lens.describe()}"
    return f"focal {track.focal_px:.0f} px" + (" (assumed: a normal lens; give --focal-px or --plate-camera)"
                                                if cfg.focal_px is None else "")
