"""Self-contained HTML reports: sections of text, tables and pictures (PNG files beside the report)."""

from __future__ import annotations

import datetime as _dt
import html
from dataclasses import dataclass, field
from pathlib import Path

from core.storage import atomic_write_text


@dataclass
class Section:
    title: str
    text: str = ""                                             # plain text paragraph(s)
    images: list[tuple[str, str]] = field(default_factory=list)  # (path relative to the report, caption)
    table: dict[str, object] = field(default_factory=dict)       # key -> value rows
    files: list[str] = field(default_factory=list)              # paths relative to the report, linked
    models: list[str] = field(default_factory=list)             # .glb paths relative to the report: 3D viewers


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
h1{margin-bottom:0}.meta{color:#595959;margin-top:.2em}section{margin:2em 0;border-top:1px solid #ddd}
figure{display:inline-block;margin:.5em;vertical-align:top}figure img{max-width:560px;max-height:560px;
border:1px solid #ccc}figcaption{color:#555;font-size:.9em}table{border-collapse:collapse}
td{border:1px solid #ddd;padding:.2em .6em;font-family:monospace}"""


def write_report(path: str | Path, title: str, sections: list[Section], subtitle: str = "") -> Path:
    """Write the report to ``path`` (atomic) and return it."""
    path = Path(path)
    viewers = any(s.models for s in sections)
    if viewers:
        from doppel.review.site import copy_static

        copy_static(path.parent)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style>{_viewer_head() if viewers else ''}</head><body><main>"
             f"<h1>{html.escape(title)}</h1>",
             f"<p class='meta'>{html.escape(subtitle)} &middot; {stamp}</p>"]
    for s in sections:
        parts.append(f"<section><h2>{html.escape(s.title)}</h2>")
        if s.text:
            parts += [f"<p>{html.escape(p)}</p>" for p in s.text.split("\n\n")]
        for k, rel in enumerate(s.models):
            from doppel.review.site import model_block

            parts.append(model_block(path.parent / rel, path.parent, f"viewer-{len(parts)}-{k}", f"the double, {rel}"))
        if s.table:
            rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                           for k, v in s.table.items())
            parts.append(f"<table>{rows}</table>")
        for img, caption in s.images:
            parts.append(f"<figure><a href='{html.escape(img)}'><img src='{html.escape(img)}' "
                         f"alt='{html.escape(caption or img)}'></a>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        if s.files:
            parts.append("<ul>" + "".join(f"<li><a href='{html.escape(f)}'>{html.escape(f)}</a></li>"
                                          for f in s.files) + "</ul>")
        parts.append("</section>")
    parts.append("</main></body></html>\n")
    return atomic_write_text(path, "\n".join(parts))


def _viewer_head() -> str:
    """Scripts and styles of the 3D viewer (doppel.review: the vendored model-viewer, copied beside the report)."""
    return ("<link rel='icon' href='data:,'><link rel='stylesheet' href='static/review.css'>"
            "<style>body{max-width:1200px}section>h2{border-top:none;padding-top:0}</style>"
            "<script src='static/model-viewer-umd.min.js'></script><script src='static/review.js' defer></script>")
