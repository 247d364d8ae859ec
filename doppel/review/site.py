"""The review site: static pages (index, one per actor, one per stage folder or output file) over a copy of the
media they show, with `<model-viewer>` for glTF exports. Opens from disk (file://) and over HTTP.

    SITE/
      index.html             actors, consents at a glance, audit state, stage folders
      actor-ID.html          consents (uses, production, expiry, revoked) and the lineage tree of the actor's assets
      stage-NNN.html         one stage folder or output: 3D viewer, video beside metrics, figures, provenance
      files/NNN/...          the files those pages show (copied; .view.glb = the viewer's copy with grid and pole)
      static/                model-viewer (vendored, Apache-2.0), review.css, review.js
"""

from __future__ import annotations

import base64
import functools
import http.server
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

import doppel.review.pages as pages
from assets.export_verify import prefetch_fbx
from assets.lineage import walk_tree
from core.storage import atomic_write_text
from doppel.review.framing import prepare_viewer
from doppel.review.gather import (
    IMAGE_SUFFIXES,
    MODEL_SUFFIXES,
    TABLE_SUFFIXES,
    VIDEO_SUFFIXES,
    ActorView,
    ReviewData,
    StageView,
    gather,
)
from doppel.review.pages import badge, esc, href
from doppel.review.provenance_hook import check_export, check_provenance

log = logging.getLogger(__name__)

REVIEW_STAGE = "review"
STATIC_FILES = ("model-viewer-umd.min.js", "LICENSE.model-viewer", "review.css", "review.js", "README.md")
RENDER_KINDS = ("render", "swap", "face_replace", "neural_render", "shot", "composite")
VIDEO_BESIDE_METRICS = ("retarget", "animation")
MAX_TABLE_BYTES = 256 << 10


@dataclass
class SiteResult:
    root: Path                                        # the site folder
    index: Path                                       # root / index.html
    pages: list[Path] = field(default_factory=list)   # every page written
    viewers: int = 0                                  # 3D viewers on the pages
    withheld: int = 0                                 # assets whose files were left out (their consent lapsed)
    copied: list[str] = field(default_factory=list)   # ids of the assets whose files the site holds copies of
    unrecorded: str = ""                              # why a workspace's site could not be recorded in it ("": it is)


def copy_static(dst: Path) -> Path:
    """Copy the vendored viewer, CSS and JS into ``dst/static``; returns that folder."""
    out = dst / pages.STATIC_DIR_NAME
    out.mkdir(parents=True, exist_ok=True)
    src = resources.files("doppel.review") / "static"
    for name in STATIC_FILES:
        with resources.as_file(src / name) as p:
            shutil.copyfile(p, out / name)
    return out


def model_block(glb: Path, root: Path, vid: str, caption: str) -> str:
    """Frame ``glb`` (a file under ``root``) over its animation, write its viewer copy (+ the copy as a script for
    file://) beside it, and return the viewer's HTML with paths relative to ``root``."""
    from doppel.review.gltf_eval import GltfReadError

    view = glb.with_name(glb.stem + ".view.glb")
    try:
        framing = prepare_viewer(glb, view)
    except GltfReadError as e:       # one damaged file: its page says so, the rest of the site is written
        why = str(e).replace(str(glb), "").lstrip(": ")
        log.warning("review: %s (%s) is not shown: %s", glb.name, caption, why)
        return f"<p class='unreadable'>{esc(glb.name)} ({esc(caption)}) cannot be shown: {esc(why)}</p>"
    js = view.with_name(view.name + ".js")
    key = view.relative_to(root).as_posix()
    payload = base64.b64encode(view.read_bytes()).decode("ascii")
    atomic_write_text(js, "window.doppelReviewGlb=window.doppelReviewGlb||{};"
                          f"window.doppelReviewGlb[{_js_string(key)}]=\"{payload}\";\n")
    return pages.viewer_html(key, js.relative_to(root).as_posix(), glb.relative_to(root).as_posix(), framing,
                             caption, vid)


def _js_string(s: str) -> str:
    import json

    return json.dumps(s).replace("<", "\\u003c")


def build_site(source: str | Path, out: str | Path, force: bool = False,
               progress: Callable[[str, int, int], None] | None = None) -> SiteResult:
    """Read ``source`` (workspace or stage folder, `gather`) and write the site into ``out`` (replaced whole, like a
    stage folder: refused when it holds another stage's output unless ``force``). progress(what, i, total)."""
    from core.stage_folders import staged_stage_dir

    data = gather(source)
    out = Path(out)
    with staged_stage_dir(out, REVIEW_STAGE, force, inputs=[data.source]) as tmp:
        res = write_site(data, tmp, progress)
    done = SiteResult(out, out / "index.html", [out / p.relative_to(tmp) for p in res.pages], res.viewers,
                      res.withheld, res.copied)
    if data.is_workspace:                 # recorded even with nothing copied: the latest build says what it holds
        why = _record(data.source, out, done.copied)
        done.unrecorded = why if done.copied else ""
    return done


def _record(root: Path, site: Path, copied: list[str]) -> str:
    """Record the site in the workspace at ``root`` (`assets.review_sites`: a consent's purge deletes the copies
    of its outputs there); "" when recorded, else why not (a reviewer who may read the workspace but not write
    it)."""
    import sqlite3

    from assets.review_sites import record_site
    from assets.workspace import Workspace
    from core.errors import DoppelError

    ws = Workspace(root)
    try:
        ws.check_writable()
        record_site(ws, site, copied)
    except (OSError, ValueError, sqlite3.Error, DoppelError) as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return ""


def write_site(data: ReviewData, dst: Path, progress: Callable[[str, int, int], None] | None = None) -> SiteResult:
    """Write every page of ``data`` into ``dst`` (an empty folder). First every stage's files are copied and its
    models framed (so that a rig's page can show the viewers of the exports made from it), then the pages."""
    copy_static(dst)
    res = SiteResult(dst, dst / "index.html")
    stages = [s for av in data.actors for s in av.stages] + data.stages
    res.withheld = len({s.path for s in stages if s.withheld})
    page_of = {id(s): f"stage-{i:03d}.html" for i, s in enumerate(stages)}
    by_asset = {s.asset.id: s for s in stages if s.asset is not None}
    copied, models = {}, {}
    for i, s in enumerate(stages):
        if progress:
            progress(s.label, i, len(stages))
        copied[id(s)] = copy_stage_files(s, dst, f"files/{i:03d}")
        if copied[id(s)] and s.asset is not None:
            res.copied.append(s.asset.id)
        models[id(s)] = [model_block(dst / p, dst, f"viewer-{i:03d}-{k}", f"{s.kind} {lbl}")
                         for k, (p, lbl) in enumerate((p, lbl) for p, lbl in copied[id(s)]
                                                      if p.suffix.lower() in MODEL_SUFFIXES)]
    related = exports_of_rigs(data, by_asset)
    ws = None
    if data.is_workspace:
        from assets.workspace import Workspace

        ws = Workspace(data.source)
    nav = f"<nav><a href='index.html'>&larr; {esc(data.title)}</a></nav>"
    prefetch_fbx([s.path for s in stages if s.kind == "export" and not s.withheld])   # one Blender start for all
    for i, s in enumerate(stages):
        viewers = list(models[id(s)])
        for e in related.get(id(s), []):
            viewers += [f"<p>From the export <a href='{href(page_of[id(e)])}'>{esc(e.label)}</a>:</p>{v}"
                        for v in models[id(e)]]
        body = stage_body(s, dst, f"files/{i:03d}", copied[id(s)], viewers, ws)
        res.viewers += sum("class='viewer'" in v for v in viewers)
        res.pages.append(atomic_write_text(dst / page_of[id(s)], pages.page(
            f"{s.kind}: {s.label}", body, viewer=bool(viewers), nav=nav)))
    asset_pages = {aid: page_of[id(s)] for aid, s in by_asset.items()}
    withheld = {aid for aid, s in by_asset.items() if s.withheld}
    faces = {s.asset.id: str(p) for s in stages if s.asset is not None and s.kind == "face_reference"
             for p, label in copied[id(s)] if label == "faces.png"}
    for av in data.actors:
        res.pages.append(atomic_write_text(dst / actor_page_name(av.actor.id), pages.page(
            f"Actor: {av.actor.name}", actor_body(av, asset_pages, faces, withheld), nav=nav)))
    res.pages.append(atomic_write_text(res.index, pages.page(data.title, index_body(data, page_of))))
    return res


def exports_of_rigs(data: ReviewData, by_asset: dict[str, StageView]) -> dict[int, list[StageView]]:
    """For each rig's stage view (by id()), the stage views of the exports made from it (lineage, any depth); their
    .glb files are shown on the rig's page too."""
    out: dict[int, list[StageView]] = {}

    for av in data.actors:
        for n, _ in walk_tree(av.tree):
            if n.asset.kind == "rig" and n.asset.id in by_asset:
                glbs = [d.asset.id for d, _ in walk_tree(n.children) if d.asset.kind == "export"]   # a .glb, or a
                out[id(by_asset[n.asset.id])] = [by_asset[a] for a in dict.fromkeys(glbs) if a in by_asset]  # folder
    return out


def actor_page_name(actor_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in actor_id)
    return f"actor-{safe}.html"


def index_body(data: ReviewData, page_of: dict[int, str]) -> str:
    parts = [f"<p class='meta'>Made from <code>{esc(data.source)}</code></p>"]
    if data.audit is not None:
        parts.append(audit_block(data.audit))
    if data.actors:
        rows = []
        for av in data.actors:
            states = [c.status() for c in av.consents]
            consent = ", ".join(f"{states.count(s)} {s}" for s in ("valid", "expired", "revoked") if s in states)
            withheld = sum(1 for st in av.stages if st.withheld)
            rows.append([f"<a href='{href(actor_page_name(av.actor.id))}'>{esc(av.actor.name)}</a>",
                         f"<code>{esc(av.actor.id)}</code>",
                         esc(consent or ("not required" if av.actor.virtual else "none")),
                         esc(len(av.stages)) + (f" {badge(f'{withheld} withheld', 'bad')}" if withheld else "")])
        parts.append("<h2>Actors</h2>" + pages.grid_table(["actor", "id", "consents", "assets"], rows))
    if data.stages:
        rows = [[badge(s.kind, "none"), f"<a href='{href(page_of[id(s)])}'>{esc(s.label)}</a>",
                 esc(len(s.files))] for s in data.stages]
        parts.append("<h2>Stage outputs</h2>" + pages.grid_table(["stage", "folder", "files"], rows))
    return "\n".join(parts)


def audit_block(report) -> str:
    """The audit log's verification state (assets.audit.AuditReport)."""
    if report.ok:
        state = badge("verified", "ok")
        text = (f"{report.records} records, hash chain intact; head <code>{esc(report.head_hash[:16])}</code>"
                " (note it and check later with <code>doppel audit verify --head HASH</code>)")
    else:
        state = badge(f"{len(report.problems)} problem(s)", "bad")
        text = "<ul>" + "".join(f"<li>{esc(p.message)}</li>" for p in report.problems) + "</ul>"
    return f"<h2>Audit log {state}</h2><p>{text}</p>"


def actor_body(av: ActorView, by_asset: dict[str, str], faces: dict[str, str] | None = None,
               withheld: set[str] = frozenset()) -> str:
    """An actor's page: who, their consents, their face reference (``faces``: a face reference's asset id -> the
    site path of its faces.png), their assets and lineage (``withheld``: ids of assets whose files the site left
    out, their consent lapsed)."""
    a = av.actor
    parts = [pages.table({"id": a.id, "name": a.name, "registered": a.created,
                          "kind": "virtual (synthetic, no consent needed)" if a.virtual else "real person"})]
    parts.append(face_reference_block(av, by_asset, faces or {}))
    from assets.consent_dates import zone_label

    rows = []
    for c in av.consents:
        status = c.status()
        why = f" {c.revoked[:10]}: {c.revoke_reason}" if c.revoked else ""
        rows.append([f"<code>{esc(c.id)}</code>", esc(", ".join(u.value for u in c.uses)), esc(c.production),
                     esc(c.granted[:10]), esc(f"{c.expires.isoformat()} ({zone_label(c.timezone)})"),
                     badge(status, {"valid": "ok", "expired": "warn"}.get(status, "bad")) + esc(why),
                     esc(c.document_name or "")])
    parts.append("<h2>Consents</h2>" + (pages.grid_table(
        ["consent", "uses", "production", "granted", "expires", "state", "document"], rows) if rows else
        f"<p>{'Not required: synthetic actor.' if a.virtual else 'No consent recorded.'}</p>"))
    parts.append("<h2>Assets and lineage</h2><p class='meta'>Each asset with what was made from it, stage by "
                 "stage (an asset made from two parents appears under both).</p>")
    parts.append(tree_html(av.tree, by_asset, withheld) if av.tree else "<p>No assets registered.</p>")
    return "\n".join(parts)


def face_reference_block(av: ActorView, by_asset: dict[str, str], faces: dict[str, str]) -> str:
    """The actor's newest face reference (`doppel actor face`), the one a swap under --plate-actor checks the plate
    against: its faces and where it came from; "" for the virtual actor, a line saying there is none otherwise."""
    if av.actor.virtual:
        return ""
    refs = sorted((s.asset for s in av.stages if s.kind == "face_reference" and s.asset is not None),
                  key=lambda x: x.created)
    if not refs:
        return ("<h2>Face reference</h2><p>None: a swap under <code>--plate-actor</code> cannot check that the "
                f"plate shows this person (<code>doppel actor face {esc(av.actor.id)} PHOTO...</code>).</p>")
    ref = refs[-1]
    link = f" (<a href='{href(by_asset[ref.id])}'>{esc(ref.path)}</a>)" if ref.id in by_asset else ""
    img = f"<img src='{href(faces[ref.id])}' alt='the actor&#39;s face reference'>" if ref.id in faces else ""
    return (f"<h2>Face reference</h2><p>Made {esc(ref.created[:10])} under consent <code>{esc(ref.consent_id)}"
            f"</code>{link}: a swap under <code>--plate-actor {esc(av.actor.id)}</code> swaps only the person "
            f"it shows and refuses a plate that never shows them.</p>{img}")


def unreadable_note(s: StageView) -> str:
    """Why some of a stage's files are missing from its page: this user may not read them."""
    from assets.workspace import current_user

    return (f"<p>{badge('unreadable', 'warn')} {s.unreadable} file(s) here cannot be read by {esc(current_user())}, "
            "who made this site (another user's, not readable by others): not shown. Build the site as a member of "
            "the workspace's group to see them.</p>")


def tree_html(nodes, by_asset: dict[str, str], withheld: set[str] = frozenset()) -> str:
    """Nested lists of the lineage forest ``nodes`` (built with a stack: any depth)."""
    out, stack = ["<ul class='tree'>"], [iter(nodes)]
    while stack:
        n = next(stack[-1], None)
        if n is None:                          # this list is done: close it, and the item that holds it
            stack.pop()
            out.append("</ul></li>" if stack else "</ul>")
            continue
        out.append(f"<li>{_tree_item(n.asset, by_asset, withheld)}")
        if n.children:
            out.append("<ul class='tree'>")
            stack.append(iter(n.children))
        else:
            out.append("</li>")
    return "".join(out)


def _tree_item(a, by_asset: dict[str, str], withheld: set[str]) -> str:
    name = esc(a.path)
    if a.id in by_asset:
        name = f"<a href='{href(by_asset[a.id])}'>{name}</a>"
    if a.id in withheld:
        name += " " + badge("withheld", "bad")
    consent = f"<code>{esc(a.consent_id)}</code>" if a.consent_id else "no consent needed"
    return (f"{badge(a.kind, 'none')} {name} <span class='meta'><code>{esc(a.sha256[:12])}</code> "
            f"&middot; {esc(a.use)} &middot; {esc(a.production)} &middot; {consent} &middot; "
            f"{esc(a.created[:19])}</span>")


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def copy_stage_files(s: StageView, root: Path, files_rel: str) -> list[tuple[PurePosixPath, str]]:
    """Copy the files a stage page shows to ``root/files_rel``; returns (site-relative path, label) pairs."""
    base = s.path.parent if s.path.is_file() else s.path
    copied = []
    for rel in s.files:
        dst_rel = PurePosixPath(files_rel) / rel.as_posix()
        _copy(base / rel, root / dst_rel)
        copied.append((dst_rel, rel.as_posix()))
    return copied


def stage_body(s: StageView, root: Path, files_rel: str, copied: list[tuple[PurePosixPath, str]],
               viewers: list[str], ws=None) -> str:
    """The body of a stage page: its 3D viewers (HTML from `model_block`), then its media by kind, tables and
    manifest. ``copied``: the files `copy_stage_files` put under root/files_rel; ``ws``: the workspace whose keys
    verify renders' provenance (None outside one)."""
    base = s.path.parent if s.path.is_file() else s.path
    parts = [f"<p class='meta'><code>{esc(s.path)}</code></p>", *viewers]
    if s.withheld:
        return "\n".join([*parts, withheld_block(s), manifest_html(s)])
    if s.kind == "export":
        parts.append(export_provenance_html(s.path, ws))
        parts.append(downloads_html(copied, root, MODEL_SUFFIXES + IMAGE_SUFFIXES + VIDEO_SUFFIXES + TABLE_SUFFIXES))
    if s.kind == "rig" and not viewers:
        parts.append("<p>No glTF export of this rig yet: <code>doppel export RIG_DIR --anim ANIM_DIR --out "
                     "double.glb</code> makes one, and its page shows it in 3D.</p>")
    media = [(p, lbl) for p, lbl in copied if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES]
    tables = [(p, lbl) for p, lbl in copied if p.suffix.lower() in TABLE_SUFFIXES]
    if s.kind in RENDER_KINDS:
        parts.append(provenance_table(media, root, base, files_rel, ws))
    elif s.kind in VIDEO_BESIDE_METRICS and any(p.suffix.lower() in VIDEO_SUFFIXES for p, _ in media):
        parts.append(video_beside_metrics(media, tables, base, files_rel))
        media = [(p, lbl) for p, lbl in media if p.suffix.lower() not in VIDEO_SUFFIXES]
    if s.kind not in RENDER_KINDS and media:
        parts.append("<h2>Figures</h2><div class='figs'>" + "".join(
            pages.video(str(p), lbl) if p.suffix.lower() in VIDEO_SUFFIXES else pages.figure(str(p), lbl)
            for p, lbl in media) + "</div>")
    if s.truncated:
        parts.append(f"<p class='meta'>{s.truncated} more file(s) in the folder are not shown.</p>")
    if s.unreadable:
        parts.append(unreadable_note(s))
    if s.withheld_files:
        parts.append(f"<p>{badge('withheld', 'bad')} {s.withheld_files} file(s) in the folder are outputs of a "
                     "revoked or expired consent: not copied into this site (their own pages say which).</p>")
    parts.append(tables_html(tables, base, files_rel))
    parts.append(manifest_html(s))
    return "\n".join(p for p in parts if p)


def downloads_html(copied: list[tuple[PurePosixPath, str]], root: Path, shown: tuple[str, ...]) -> str:
    """Links to the copied files no viewer, figure or table shows (an FBX, USD or Alembic delivery: the site holds
    its copy, and a reviewer opens it in their own tool), with their sizes; "" when there are none."""
    rows = [(p, lbl) for p, lbl in copied if p.suffix.lower() not in shown]
    if not rows:
        return ""
    items = "".join(f"<li><a href='{href(p)}' download>{esc(lbl)}</a> ({(root / p).stat().st_size / 1e6:.1f} MB)"
                    "</li>" for p, lbl in rows)
    return f"<h2>Files</h2><ul class='meta'>{items}</ul>"


def export_provenance_html(path: Path, ws=None) -> str:
    """A 3D export's provenance (`provenance_hook.check_export`: what the file says of itself, and whether its
    bytes are the export the workspace registered), one badge with the detail beneath; "" for a folder."""
    from assets.export_verify import is_export

    if not path.is_file() or not is_export(path):
        return ""
    state = check_export(path, ws)
    kind = {True: "ok", False: "bad"}.get(state.ok, "none")
    items = "".join(f"<li>{esc(line)}</li>" for line in state.detail.split(" | ") if line)
    return f"<h2>Provenance {badge(state.state, kind)}</h2><ul class='meta'>{items}</ul>"


def withheld_block(s: StageView) -> str:
    """What a page shows instead of an asset whose consent lapsed: why, and what to withdraw (no likeness)."""
    a = s.asset
    ident = (f" (SHA-256 <code>{esc(a.sha256[:16])}</code>, made {esc(a.created[:10])} for "
             f"{esc(a.production)})" if a is not None else "")
    return (f"<h2>{badge('withheld', 'bad')} Not copied into this site</h2><p>Its {esc(s.withheld)}: the "
            f"likeness it holds may not be used or shown anew. Withdraw <code>{esc(s.path)}</code>{ident} "
            f"wherever it was delivered.</p>")


def _json_rows(path: Path) -> dict | None:
    import json

    if path.stat().st_size > MAX_TABLE_BYTES:
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _source(base: Path, files_rel: str, p: PurePosixPath) -> Path:
    return base / PurePosixPath(p).relative_to(files_rel)


def video_beside_metrics(media, tables, base: Path, files_rel: str) -> str:
    vids = "".join(pages.video(str(p), lbl) for p, lbl in media if p.suffix.lower() in VIDEO_SUFFIXES)
    metrics = ""
    for p, lbl in tables:
        rows = _json_rows(_source(base, files_rel, p))
        if rows is not None and "metric" in lbl.lower():
            metrics += f"<h3>{esc(lbl)}</h3>" + pages.table(rows)
    return f"<h2>Preview and metrics</h2><div class='side'><div>{vids}</div><div>{metrics}</div></div>"


def provenance_table(media, root: Path, base: Path, files_rel: str, ws=None) -> str:
    """Frames and videos of a render / swap with each file's provenance state (`provenance_hook`: doppel verify's
    C2PA, watermark and consent checks, against ``ws``'s keys when given)."""
    rows = []
    for p, lbl in media:
        state = check_provenance(_source(base, files_rel, p), ws)
        kind = {True: "ok", False: "bad"}.get(state.ok, "none")
        thumb = (pages.video(str(p), lbl) if p.suffix.lower() in VIDEO_SUFFIXES else pages.figure(str(p), lbl))
        rows.append([thumb, f"<a href='{href(p)}'>{esc(lbl)}</a>", esc(f"{(root / p).stat().st_size / 1e3:.1f} kB"),
                     f"<span title='{esc(state.detail)}'>{badge(state.state, kind)}</span>"])
    return "<h2>Frames and videos</h2>" + pages.grid_table(["preview", "file", "size", "provenance"], rows,
                                                             cls="grid prov")


def tables_html(tables, base: Path, files_rel: str) -> str:
    out = []
    for p, lbl in tables:
        rows = _json_rows(_source(base, files_rel, p))
        body = pages.table(rows) if rows is not None else ""
        # the file's link beside the summary, not in it: a link inside <summary> is a control inside a control
        out.append(f"<details><summary>{esc(lbl)}</summary>{body}</details><p class='meta'><a href='{href(p)}'>"
                   f"{esc(lbl)} (file)</a></p>")
    return ("<h2>Tables</h2>" + "".join(out)) if out else ""


def manifest_html(s: StageView) -> str:
    rows: dict = {}
    if s.asset is not None:
        a = s.asset
        rows.update({"asset": a.id, "kind": a.kind, "actor": a.actor_id, "consent": a.consent_id or "not required",
                     "use": a.use, "production": a.production, "sha256": a.sha256, "registered": a.created})
    if not s.path.exists():
        rows["on disk"] = "missing: deleted or moved since it was registered"
    m = s.manifest
    if m is None:
        if s.path.is_dir():
            rows["manifest"] = "missing or unreadable"
        return ("<h2>Record</h2>" + pages.table(rows)) if rows else ""
    rows.update({"stage": m.get("stage"), "created": m.get("created")})
    for k in ("consent", "actor"):
        if k in m:
            rows[f"manifest {k}"] = m[k]
    for k, v in (m.get("params") or {}).items():
        rows[f"param {k}"] = v
    for k, v in (m.get("inputs") or {}).items():
        if isinstance(v, dict):
            rows[f"input {k}"] = f"{v.get('path')} ({str(v.get('sha256'))[:12]})"
    return "<h2>Manifest</h2>" + pages.table(rows)


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".glb": "model/gltf-binary",
                      ".js": "text/javascript", ".mp4": "video/mp4", ".webm": "video/webm"}

    def log_message(self, format, *args):  # the base class's signature
        log.debug("review server: " + format, *args)


def make_server(site: str | Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``site`` on 127.0.0.1 only (never another interface); port 0 picks a free one. The caller
    runs ``serve_forever()`` and ``server_close()``."""
    site = Path(site)
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site}: no index.html; build the site first (doppel review SOURCE --out {site})")
    handler = functools.partial(_Handler, directory=str(site))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
