"""What the review site shows, read from a workspace (actors, consents, lineage, audit, the registered stage
folders and files) or from a folder of stage outputs (a demo folder, one stage folder).

Nothing here writes; `doppel.review.site` turns a `ReviewData` into pages.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.storage import MANIFEST_NAME

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
VIDEO_SUFFIXES = (".mp4", ".webm")
MODEL_SUFFIXES = (".glb",)
TABLE_SUFFIXES = (".json",)
STAGE_MARKER = ".doppel_stage.json"
VIEWER_COPY_SUFFIX = ".view.glb"     # the viewer's copy of a .glb (floor grid, height pole) beside the original
MAX_FILES_PER_STAGE = 200            # media files shown per stage folder (a capture holds thousands of images)
MAX_STAGE_DEPTH = 3                  # how deep a STAGE_DIR is searched for stage folders
MAX_TABLE_BYTES = 256 << 10          # JSON files larger than this are linked, not tabulated


@dataclass
class StageView:
    """One stage folder or output file as a page of the site."""

    kind: str                     # asset kind (workspace) or manifest stage name, e.g. "retarget", "export"
    path: Path                    # the folder or file on disk (absolute)
    label: str                    # how it is named on the page (workspace-relative or source-relative path)
    manifest: dict | None = None  # its manifest.json, when it has one that reads
    asset: object | None = None   # assets.lineage.Asset when registered in a workspace
    files: list[Path] = field(default_factory=list)  # media and table files to show, relative to ``path``
                                                     # (for a file output: [Path(path.name)])
    truncated: int = 0            # media files left out beyond MAX_FILES_PER_STAGE
    withheld: str = ""            # why none of its files is copied into the site (its consent lapsed); "" shown
    withheld_files: int = 0       # files inside it left out because they are outputs of a lapsed consent
    unreadable: int = 0           # files this user may not read (another user's, not readable by others): not shown


@dataclass
class ActorView:
    actor: object                                   # assets.actors.Actor
    consents: list = field(default_factory=list)    # assets.consent.Consent, oldest first
    tree: list = field(default_factory=list)        # assets.lineage.AssetNode roots
    stages: list[StageView] = field(default_factory=list)


@dataclass
class ReviewData:
    source: Path                                 # the workspace or stage folder the site was made from
    title: str
    is_workspace: bool
    actors: list[ActorView] = field(default_factory=list)
    audit: object | None = None                  # assets.audit.AuditReport (workspaces only)
    stages: list[StageView] = field(default_factory=list)  # stage folders not attributed to an actor


def gather(source: str | Path) -> ReviewData:
    """Read a workspace (a folder with doppel.sqlite) or a folder of stage outputs. Raises FileNotFoundError when
    ``source`` does not exist and ValueError when it holds nothing to review."""
    from assets.workspace import INDEX_NAME

    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such workspace or stage folder")
    if source.is_dir() and (source / INDEX_NAME).is_file():
        return _gather_workspace(source)
    return _gather_stage_dir(source)


def _gather_workspace(root: Path) -> ReviewData:
    from assets import audit
    from assets.actors import list_actors
    from assets.consent import consents_for
    from assets.lineage import asset_tree, list_assets, on_disk
    from assets.workspace import Workspace

    ws = Workspace.open(root)
    data = ReviewData(root.resolve(), f"Workspace {root.resolve().name}", True, audit=audit.verify(ws))
    lapsed = lapsed_paths(ws)
    for actor in list_actors(ws):
        view = ActorView(actor, consents_for(ws, actor.id), asset_tree(ws, actor.id))
        for a in list_assets(ws, actor_id=actor.id):
            p = on_disk(ws, a.path)
            why = withheld_because(p, lapsed)
            view.stages.append(withheld_view(p, a, why) if why else
                               without_lapsed(stage_view(p, a.path, kind=a.kind, asset=a), lapsed))
        data.actors.append(view)
    return data


def lapsed_paths(ws) -> dict[Path, str]:
    """Absolute path -> why: every registered output whose consent is revoked or expired today (the same file or
    folder may be registered under two consents: a swap under the double's and the plate performer's)."""
    from assets.consent import outputs_of_lapsed_consents
    from assets.lineage import on_disk

    out: dict[Path, str] = {}
    for a, c in outputs_of_lapsed_consents(ws):
        p = on_disk(ws, a.path)
        when = f"revoked {c.revoked[:10]}" if c.revoked else f"expired {c.expires.isoformat()}"
        out.setdefault(p, f"consent {c.id} of actor {c.actor_id} {when}")
    return out


def withheld_because(path: Path, lapsed: dict[Path, str]) -> str:
    """Why ``path`` may not be copied into the site: it, or a folder holding it, is an output of a lapsed consent;
    "" when nothing lapsed covers it."""
    for p in (path, *path.parents):
        if p in lapsed:
            return lapsed[p]
    return ""


def without_lapsed(view: StageView, lapsed: dict[Path, str]) -> StageView:
    """``view`` less the files inside it that are outputs of a lapsed consent (a swapped plate written into a
    folder registered under another consent)."""
    base = view.path.parent if view.path.is_file() else view.path
    keep = [rel for rel in view.files if not withheld_because(base / rel, lapsed)]
    view.withheld_files, view.files = len(view.files) - len(keep), keep
    return view


def withheld_view(path: Path, asset, why: str) -> StageView:
    """A page for an asset whose likeness may not be copied: what and where it is (to withdraw it), no files."""
    manifest = read_manifest_quietly(path) if path.is_dir() else None
    return StageView(asset.kind, path, asset.path, manifest, asset, withheld=why)


def _gather_stage_dir(source: Path) -> ReviewData:
    source = source.resolve()
    data = ReviewData(source, f"Stage outputs in {source.name}", False)
    if source.is_file():
        if source.suffix.lower() not in MODEL_SUFFIXES:
            raise ValueError(f"{source}: not a stage folder, a workspace or a .glb file")
        data.stages.append(stage_view(source, source.name, kind="export"))
        return data
    dirs = _stage_dirs(source, 0)
    if not dirs and (source / STAGE_MARKER).is_file():
        dirs = [source]                   # a stage folder without manifest (written by a stage that keeps none)
    for d in dirs:
        label = d.relative_to(source).as_posix() if d != source else source.name
        data.stages.append(stage_view(d, label))
    for glb in _loose_models(source, dirs):           # `doppel export` writes a file, not a stage folder
        data.stages.append(stage_view(glb, glb.relative_to(source).as_posix(), kind="export"))
    if not data.stages:
        raise ValueError(f"{source}: no stage folder found (no {MANIFEST_NAME} within {MAX_STAGE_DEPTH} levels) and "
                         f"no workspace index; give a workspace, a stage folder or a demo folder")
    return data


def _stage_dirs(d: Path, depth: int) -> list[Path]:
    """Folders under ``d`` (itself included) that a stage wrote, parents before children, sorted by name."""
    found = [d] if (d / MANIFEST_NAME).is_file() else []
    if found and depth > 0:
        return found                      # a stage folder's own subfolders (masks/, ground_truth/) belong to it
    if depth >= MAX_STAGE_DEPTH or _is_review_site(d):
        return found
    for sub in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += _stage_dirs(sub, depth + 1)
    return found


def _loose_models(source: Path, stage_dirs: list[Path]) -> list[Path]:
    """.glb files under ``source`` (within MAX_STAGE_DEPTH) that are not inside a stage folder."""
    out = []
    for p in sorted(source.rglob("*.glb")):
        rel = p.relative_to(source)
        if len(rel.parts) > MAX_STAGE_DEPTH + 1 or any(part.startswith(".") for part in rel.parts):
            continue
        if p.name.endswith(VIEWER_COPY_SUFFIX) or any(d in p.parents for d in stage_dirs):
            continue
        if any(_is_review_site(d) for d in p.parents if source in d.parents):
            continue
        out.append(p)
    return out


def _is_review_site(d: Path) -> bool:
    """A site `doppel review` wrote (its copies of stage files are not stage outputs of their own)."""
    try:
        return json.loads((d / STAGE_MARKER).read_text(encoding="utf-8")).get("stage") == "review"
    except (OSError, ValueError, AttributeError):
        return False


def read_manifest_quietly(d: Path) -> dict | None:
    """``d/manifest.json`` as a dict, or None when missing or unreadable (the page then says so)."""
    try:
        m = json.loads((d / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return m if isinstance(m, dict) else None


def stage_view(path: Path, label: str, kind: str | None = None, asset=None) -> StageView:
    """A StageView of a stage folder or an output file; ``kind`` defaults to the manifest's stage name."""
    if path.is_file():
        readable = os.access(path, os.R_OK)
        return StageView(kind or path.suffix.lstrip(".") or "file", path, label, None, asset,
                         [Path(path.name)] if readable else [], unreadable=0 if readable else 1)
    manifest = read_manifest_quietly(path) if path.is_dir() else None
    if kind is None:
        kind = str(manifest.get("stage", "stage")) if manifest else "stage"
    view = StageView(kind, path, label, manifest, asset)
    if path.is_dir():
        media = [p.relative_to(path) for p in sorted(path.rglob("*"))
                 if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
                 and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES + MODEL_SUFFIXES + TABLE_SUFFIXES
                 and p.name != MANIFEST_NAME and not p.name.endswith(VIEWER_COPY_SUFFIX)]
        readable = [r for r in media if os.access(path / r, os.R_OK)]
        view.unreadable, media = len(media) - len(readable), readable
        # top-level files first (previews, metrics), then subfolders (masks/...)
        media.sort(key=lambda r: (len(r.parts), r.as_posix()))
        view.files, view.truncated = media[:MAX_FILES_PER_STAGE], max(0, len(media) - MAX_FILES_PER_STAGE)
    return view
