"""A batch run's summary: counts per stage, and ``batch_report.html`` (every user string escaped)."""

from __future__ import annotations

import datetime as _dt
import html
import os
import statistics
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from core.storage import atomic_write_text
from doppel.batch.execute import BatchResult

STATUSES = ("done", "skipped", "running", "pending", "failed", "refused", "flagged", "blocked")


def per_stage(result: BatchResult) -> dict[str, Counter]:
    """stage -> Counter of task statuses, stages in plan order."""
    out: dict[str, Counter] = {}
    for st in result.states.values():
        out.setdefault(st.task.stage, Counter())[st.status] += 1
    return out


def overhead_ms(result: BatchResult, stat: str = "median") -> float | None:
    """Driver-side time per task beyond the worker's own time (submit -> result minus work), ms: the ``median``
    (a warm worker) or the ``mean`` (with the start of each worker process); None when no task ran on Ray."""
    ran = sorted(max(0.0, s.latency - s.seconds) for s in result.states.values()
                 if s.latency > 0 and s.status in ("done", "flagged"))
    if not ran:
        return None
    return 1e3 * (statistics.median(ran) if stat == "median" else statistics.fmean(ran))


def driver_ms(result: BatchResult) -> float | None:
    """Mean time the driver spent per task (consent gate, submission, registration), ms; None without tasks."""
    ran = [s.driver_seconds for s in result.states.values() if s.driver_seconds > 0]
    return 1e3 * statistics.fmean(ran) if ran else None


_CSS = ("body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;font-size:90%}"
        ".done,.skipped{color:#17692a}.failed,.refused,.flagged{color:#a31515}.blocked{color:#8a6d00}")


def write_html_report(result: BatchResult, plan_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the report (summary, per-stage counts, one row per task, notable events) atomically; returns it."""
    e = html.escape
    stages = per_stage(result)
    head = "".join(f"<th>{s}</th>" for s in STATUSES)
    stage_rows = "".join(f"<tr><td>{e(name)}</td>" + "".join(f"<td>{c[s] or ''}</td>" for s in STATUSES) + "</tr>"
                         for name, c in stages.items())
    task_rows = "".join(
        f"<tr><td>{e(st.task.job_name)}</td><td>{e(st.task.stage)}</td><td>{e(st.task.id)}</td>"
        f"<td class='{e(st.status)}'>{e(st.status)}</td><td>{st.seconds:.2f}</td><td>{e(st.host)}</td>"
        f"<td>{_output_link(st.task.out, Path(out).parent)}</td><td>{e(st.message)}</td></tr>"
        for st in result.states.values())
    events = "".join(f"<li>{e(x)}</li>" for x in result.events) or "<li>none</li>"
    ovh = overhead_ms(result)
    text = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Doppel batch report</title>
<style>{_CSS}</style></head><body><main>
<h1>Doppel batch: {e(Path(plan_path).name)}</h1>
<p>Run {e(result.run_id)}, {e(_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds'))}; {e(result.ray)};
{len(result.states)} tasks in {result.seconds:.1f} s (Ray start {result.ray_start_seconds:.1f} s)
{'' if ovh is None else f'; Ray overhead per task {ovh:.0f} ms median, {overhead_ms(result, "mean"):.0f} ms mean'}
{'' if driver_ms(result) is None else f'; driver (gate + registration) {driver_ms(result):.0f} ms per task'}.</p>
<h2>Per stage</h2><table><tr><th>stage</th>{head}</tr>{stage_rows}</table>
<h2>Events</h2><ul>{events}</ul>
<h2>Tasks</h2><table><tr><th>job</th><th>stage</th><th>task</th><th>status</th><th>seconds</th><th>host</th>
<th>output</th><th>message</th></tr>{task_rows}</table></main></body></html>
"""
    return atomic_write_text(out, text)


def _output_link(out: str, report_dir: Path) -> str:
    """A link (relative to the report's folder) to a task's output when it exists: a stage folder's own report
    (report.html, or a swap's side folder's swap_report.html) when it has one, else the folder or file; "" when
    there is no output (failed, refused, not run)."""
    from doppel.face_swap.side_folder import side_folder

    path = Path(out)
    if not path.exists():
        return ""
    shown = next((p for p in (path / "report.html", side_folder(path) / "swap_report.html") if p.is_file()), path)
    rel = Path(os.path.relpath(shown, report_dir)).as_posix()
    return f"<a href='{html.escape(quote(rel))}'>{html.escape(path.name)}</a>"
