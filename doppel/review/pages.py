"""HTML fragments of the review site and the demo report. Every string that comes from user data (actor names,
productions, file names, manifest values) goes through `esc` (text and attributes) or `href` (URLs)."""

from __future__ import annotations

import html
import json
import os
from pathlib import PurePosixPath
from urllib.parse import quote

from core.fileio import shown_name
from doppel.review.framing import Framing

STATIC_DIR_NAME = "static"                              # where the site keeps model-viewer, CSS and JS
VIEWER_SCRIPT = "model-viewer-umd.min.js"               # classic script: runs from file:// too (no ES module)


def esc(value: object) -> str:
    """Text or attribute value, escaped (quotes included); a file name in another encoding than UTF-8 with its bytes
    written as escapes (`core.fileio.shown_name`), instead of failing the whole page."""
    return html.escape(shown_name(str(value)), quote=True)


def href(rel: str | PurePosixPath) -> str:
    """A relative URL to a file of the site (each path segment percent-encoded, a name's own bytes when it is not
    UTF-8), escaped for an attribute."""
    return esc(quote(os.fsencode(PurePosixPath(rel).as_posix()), safe="/"))


def page(title: str, body: str, static: str = STATIC_DIR_NAME, viewer: bool = False, nav: str = "") -> str:
    """A whole page; ``static`` is the relative path to the static folder; ``viewer`` loads model-viewer."""
    scripts = ""
    if viewer:
        scripts = (f"<script src='{href(static + '/' + VIEWER_SCRIPT)}'></script>"
                   f"<script src='{href(static + '/review.js')}' defer></script>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title><link rel='icon' href='data:,'>"
            f"<link rel='stylesheet' href='{href(static + '/review.css')}'>{scripts}</head><body>"
            f"{nav}<main><h1>{esc(title)}</h1>\n{body}\n</main></body></html>\n")


def viewer_html(glb_rel: str, js_rel: str, original_rel: str | None, framing: Framing, caption: str,
                vid: str) -> str:
    """A `<model-viewer>` block with play/pause, a time scrubber, camera reset, the actor's height label and the
    framing attributes. ``glb_rel``: the viewer's .glb (with grid); ``js_rel``: the same bytes as a script, read
    when the page is opened from disk (file:// cannot fetch); ``original_rel``: the untouched file, linked."""
    attrs = " ".join(f"{k}='{esc(v)}'" for k, v in framing.attributes().items())
    x, y0, z = framing.pole
    label = f"{framing.actor_height:.2f} m"
    extent = (f"clip {framing.duration:.2f} s; posed extent {framing.hi[0] - framing.lo[0]:.2f} x "
              f"{framing.hi[1] - framing.lo[1]:.2f} x {framing.hi[2] - framing.lo[2]:.2f} m (x, y, z), "
              f"travel {framing.travel:.2f} m beyond the rest pose; grid {0.5:g} m")
    link = f" &middot; <a href='{href(original_rel)}'>download the .glb</a>" if original_rel else ""
    return (f"<figure class='viewer' id='{esc(vid)}'>"
            f"<model-viewer data-src='{href(glb_rel)}' data-src-js='{href(js_rel)}' data-key='{esc(glb_rel)}' "
            f"camera-controls autoplay loading='eager' reveal='auto' interaction-prompt='none' "
            f"shadow-intensity='0' exposure='1.0' {attrs} "
            f"alt='{esc(caption)}'>"
            f"<div class='hotspot' slot='hotspot-height' data-position='{x:.3f}m {y0 + framing.actor_height:.3f}m "
            f"{z:.3f}m' data-normal='0m 1m 0m'>{esc(label)}</div>"
            "<div slot='progress-bar'></div><div class='mv-error' hidden></div></model-viewer>"
            "<div class='controls'><button type='button' class='play'>Pause</button>"
            f"<input type='range' class='scrub' min='0' max='{framing.duration:.3f}' step='0.01' value='0' "
            "aria-label='time'>"
            "<span class='time'>0.00 s</span><button type='button' class='reset'>Reset view</button></div>"
            f"<figcaption>{esc(caption)}: {esc(extent)}{link}</figcaption></figure>")


def flatten(rows: dict, prefix: str = "", depth: int = 3) -> dict:
    """Nested dicts as dotted keys (``feet.l.skate_cm_s``), down to ``depth`` levels; other values as they are."""
    out: dict = {}
    for k, v in rows.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and depth > 1:
            out.update(flatten(v, key + ".", depth - 1))
        else:
            out[key] = v
    return out


def table(rows: dict, cls: str = "kv") -> str:
    """A two-column table (key, value); nested dicts as dotted keys, other values as compact JSON, long ones cut."""
    out = []
    for k, v in flatten(rows).items():
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        if len(text) > 300:
            text = text[:297] + "..."
        out.append(f"<tr><th>{esc(k)}</th><td>{esc(text)}</td></tr>")
    return f"<table class='{esc(cls)}'>{''.join(out)}</table>"


def grid_table(header: list[str], rows: list[list[str]], cls: str = "grid") -> str:
    """A table whose cells are already-escaped HTML fragments (build them with `esc` / `href`)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='{esc(cls)}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(rel: str, caption: str) -> str:
    return (f"<figure><a href='{href(rel)}'><img src='{href(rel)}' alt='{esc(caption)}' loading='lazy'></a>"
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def video(rel: str, caption: str) -> str:
    return (f"<figure><video src='{href(rel)}' controls loop muted playsinline preload='metadata'></video>"
            f"<figcaption>{esc(caption)} &middot; <a href='{href(rel)}'>file</a></figcaption></figure>")


def badge(text: str, kind: str) -> str:
    """A coloured label; ``kind`` is one of ok, bad, warn, none."""
    return f"<span class='badge {esc(kind)}'>{esc(text)}</span>"
