"""Assets and their lineage: every output registered with the assets it was made from.

    capture -> landmarks -> fit -> rig -> animation -> export / render

so `asset_tree` answers "what was made from this actor's capture", and `outputs_under_consent` lists
what a revoked consent leaves behind (made directly under it, and made later from those).
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from assets.actors import get_actor
from assets.workspace import Workspace
from core.errors import DoppelError

# The usual kinds; any lowercase identifier is accepted so that new stages need no change here.
KNOWN_KINDS = ("capture", "landmarks", "fit", "rig", "mocap", "animation", "export", "render", "performance")
# An output registered for a performer whose performance is in it but whose likeness is not (a stunt performer's take
# retargeted onto the lead's double): found by their consent's purge, never the likeness an input is attributed to.
PERFORMANCE_KIND = "performance"
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class LineageError(DoppelError):
    """An unknown asset, or a malformed asset kind."""


@dataclass(frozen=True)
class Asset:
    id: str
    kind: str
    path: str                  # relative to the workspace when inside it, else absolute
    sha256: str
    actor_id: str
    consent_id: str | None     # None only for the virtual actor
    use: str
    production: str
    created: str               # UTC ISO-8601
    audit_seq: int             # the audit record of the action that made it


@dataclass
class AssetNode:
    asset: Asset
    children: list[AssetNode] = field(default_factory=list)


def check_kind(kind: str) -> str:
    if not _KIND_RE.match(kind):
        raise LineageError(f"asset kind {kind!r}: use a lowercase identifier such as {', '.join(KNOWN_KINDS)}")
    return kind


def check_recordable_name(path: str | os.PathLike) -> None:
    """LineageError (one line) for a path whose name is not UTF-8 (a file named on a system with another encoding,
    e.g. Latin-1 bytes from an old share): the index, the audit log and the credentials record paths as UTF-8 text,
    so it cannot be recorded; outside a workspace such a file is read and written as it is."""
    from core.fileio import shown_name

    shown = shown_name(path)
    if shown != os.fspath(path):
        raise LineageError(f"{shown}: its name is not UTF-8 (bytes from another system's encoding, e.g. Latin-1); a "
                           "workspace records paths as UTF-8 text: rename it (e.g. `convmv -f latin1 -t utf8 "
                           "--notest FILE`)")


def workspace_relative(ws: Workspace, path: str | os.PathLike) -> str:
    """How a path is stored: relative (POSIX) when inside the workspace, else absolute (`check_recordable_name`)."""
    check_recordable_name(path)
    p = Path(path).resolve()
    try:
        return p.relative_to(ws.root.resolve()).as_posix()
    except ValueError:
        return str(p)


def on_disk(ws: Workspace, stored: str) -> Path:
    """Where a stored asset path (`workspace_relative`'s form) is on disk: under the workspace when relative."""
    p = Path(stored)
    return p if p.is_absolute() else ws.root / p


def asset_from_row(r: sqlite3.Row) -> Asset:
    return Asset(r["id"], r["kind"], r["path"], r["sha256"], r["actor_id"], r["consent_id"], r["use"],
                 r["production"], r["created"], r["audit_seq"])


def find_by_path(con: sqlite3.Connection, stored_path: str) -> Asset | None:
    """The latest asset registered at this (stored-form) path, if any."""
    r = con.execute("SELECT * FROM assets WHERE path=? ORDER BY created DESC, rowid DESC LIMIT 1",
                    (stored_path,)).fetchone()
    return asset_from_row(r) if r else None


def find_parent(con: sqlite3.Connection, stored_path: str, sha256: str) -> Asset | None:
    """The registered asset an input comes from: the version at this path with this content (a performer's
    registration of it first: what is made from a performance descends from the performer's part, and their purge
    reaches it, whichever gate registered last), else the latest asset registered at an enclosing folder (an input
    file inside a stage folder); None if neither."""
    r = con.execute("SELECT * FROM assets WHERE path=? AND sha256=? ORDER BY kind=? DESC, created DESC, rowid DESC "
                    "LIMIT 1", (stored_path, sha256, PERFORMANCE_KIND)).fetchone()
    if r:
        return asset_from_row(r)
    p = PurePosixPath(stored_path)
    for folder in p.parents:
        if str(folder) in (".", "/"):
            break
        found = find_by_path(con, str(folder))
        if found:
            return found
    return None


def get_asset(con: sqlite3.Connection, asset_id: str) -> Asset:
    r = con.execute("SELECT * FROM assets WHERE id=?", (asset_id,)).fetchone()
    if r is None:
        raise LineageError(f"unknown asset {asset_id!r}")
    return asset_from_row(r)


def new_asset_id(kind: str) -> str:
    """A fresh asset id: '<kind>-<12 hex digits>'."""
    return f"{check_kind(kind)}-{uuid.uuid4().hex[:12]}"


def insert_asset(con: sqlite3.Connection, *, aid: str, kind: str, path: str, sha256: str, actor_id: str,
                 consent_id: str | None, use: str, production: str, created: str, audit_seq: int,
                 parents: list[str]) -> Asset:
    """Insert one asset and its lineage edges (inside the caller's write transaction)."""
    con.execute("INSERT INTO assets(id, kind, path, sha256, actor_id, consent_id, use, production, created, audit_seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (aid, kind, path, sha256, actor_id, consent_id, use, production, created, audit_seq))
    con.executemany("INSERT OR IGNORE INTO lineage(child_id, parent_id) VALUES (?, ?)", [(aid, p) for p in parents])
    return Asset(aid, kind, path, sha256, actor_id, consent_id, use, production, created, audit_seq)


def list_assets(ws: Workspace, actor_id: str | None = None, kind: str | None = None) -> list[Asset]:
    """Assets, oldest first, optionally of one actor and/or one kind."""
    sql, args = "SELECT * FROM assets WHERE 1=1", []
    if actor_id:
        sql, args = sql + " AND actor_id=?", [*args, actor_id]
    if kind:
        sql, args = sql + " AND kind=?", [*args, kind]
    with ws.read() as con:
        return [asset_from_row(r) for r in con.execute(sql + " ORDER BY created, rowid", args)]


def held_at_paths(ws: Workspace) -> dict[str, tuple[str, set[str]]]:
    """Stored path -> (the latest asset registered at it, the ids of every asset the path holds now). Doppel's
    stages replace an output whole, then register it: the path holds the latest, and the same output registered
    for other actors too (the same bytes under another actor: a swapped plate is the double's actor's and the
    plate performer's, registered once for each); other assets at the path are versions it replaced (a remake,
    even with the same bytes, under another consent of the same actor)."""
    with ws.read() as con:
        rows = con.execute("SELECT path, id, actor_id, sha256 FROM assets ORDER BY created, rowid").fetchall()
    last = {r["path"]: r for r in rows}
    held = {path: (r["id"], {r["id"]}) for path, r in last.items()}
    for r in rows:
        top = last[r["path"]]
        if r["actor_id"] != top["actor_id"] and r["sha256"] == top["sha256"]:
            held[r["path"]][1].add(r["id"])
    return held


def parents_of(ws: Workspace, asset_id: str) -> list[Asset]:
    with ws.read() as con:
        rows = con.execute("SELECT a.* FROM lineage l JOIN assets a ON a.id=l.parent_id WHERE l.child_id=? "
                           "ORDER BY a.created", (asset_id,)).fetchall()
    return [asset_from_row(r) for r in rows]


def asset_tree(ws: Workspace, actor_id: str) -> list[AssetNode]:
    """The actor's assets as a forest: roots are assets with no parent among the actor's assets (captures,
    usually); each node's children are the assets made from it (any actor). A child with two parents
    appears under both."""
    with ws.read() as con:
        get_actor(con, actor_id)  # ActorError naming the known actors
        own = {r["id"]: asset_from_row(r) for r in con.execute(
            "SELECT * FROM assets WHERE actor_id=? ORDER BY created, rowid", (actor_id,))}
        # Everything reachable from the actor's assets, with its edges (recursive walk down the lineage).
        rows = con.execute(
            """WITH RECURSIVE down(id) AS (SELECT id FROM assets WHERE actor_id=?
                   UNION SELECT l.child_id FROM lineage l JOIN down d ON l.parent_id=d.id)
               SELECT a.* FROM assets a JOIN down d ON a.id=d.id ORDER BY a.created, a.rowid""",
            (actor_id,)).fetchall()
        assets = {r["id"]: asset_from_row(r) for r in rows}
        ids = list(assets)
        edges = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = ",".join("?" * len(chunk))
            edges += con.execute(f"SELECT parent_id, child_id FROM lineage WHERE parent_id IN ({q})", chunk).fetchall()
    children: dict[str, list[str]] = {}
    has_parent_in_actor = set()
    for parent, child in edges:
        if child in assets:
            children.setdefault(parent, []).append(child)
            if parent in own:
                has_parent_in_actor.add(child)
    order = {aid: i for i, aid in enumerate(assets)}
    kids = {aid: sorted(set(c), key=order.__getitem__) for aid, c in children.items()}
    return [_grow(assets, kids, aid) for aid in own if aid not in has_parent_in_actor]


def _grow(assets: dict[str, Asset], kids: dict[str, list[str]], root: str) -> AssetNode:
    """The tree below ``root`` (``kids``: each asset's children in order), without a cycle; built with a stack, not
    recursion: a lineage a few hundred levels deep (a model resumed again and again) hit Python's recursion limit,
    and `doppel review` and `assets list --tree` failed with an internal error."""
    top = AssetNode(assets[root])
    stack = [(top, (root,))]
    while stack:
        node, path = stack.pop()
        for k in kids.get(path[-1], ()):
            if k not in path:
                child = AssetNode(assets[k])
                node.children.append(child)
                stack.append((child, (*path, k)))
    return top


def walk_tree(nodes: list[AssetNode]) -> Iterator[tuple[AssetNode, int]]:
    """Every node of the forest ``nodes`` with its depth (0 for ``nodes`` themselves), parents before their children
    and children in order (a preorder walk, with a stack: any depth)."""
    stack = [(n, 0) for n in reversed(nodes)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((c, depth + 1) for c in reversed(node.children))


def outputs_under_consent(ws: Workspace, consent_id: str) -> tuple[list[Asset], list[Asset]]:
    """(assets made under this consent, assets made later from those under other consents or none)."""
    with ws.read() as con:
        direct = [asset_from_row(r) for r in con.execute(
            "SELECT * FROM assets WHERE consent_id=? ORDER BY created, rowid", (consent_id,))]
        derived = [asset_from_row(r) for r in con.execute(
            """WITH RECURSIVE down(id) AS (SELECT id FROM assets WHERE consent_id=?
                   UNION SELECT l.child_id FROM lineage l JOIN down d ON l.parent_id=d.id)
               SELECT a.* FROM assets a JOIN down d ON a.id=d.id
               WHERE a.consent_id IS NOT ? ORDER BY a.created, a.rowid""", (consent_id, consent_id))]
    return direct, derived
