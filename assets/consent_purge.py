"""Erasure after a revocation: delete from disk what was made under a revoked or expired consent.

`doppel consent revoke` stops new work at once and lists what the consent leaves behind; a release form or a
biometric-privacy law then asks for that likeness to be deleted, captures and face descriptors first. This is
the deletion, done by the index rather than by hand:

* what: every output registered under the consent, and every output made later from those (under any consent:
  it carries the likeness too), as `assets.lineage.outputs_under_consent` lists them; and the capture made for
  the double: inputs that runs under the consent read as the actor's likeness with use scan or fit without being
  outputs themselves (a capture session's photos, from the content index), unless a run under another consent
  still valid read them too. A plate or a photo read for a face replacement is listed and kept: it is the
  production's footage, not Doppel's to delete;
* the review sites (`doppel review`) whose latest build copied files of those outputs (`assets.review_sites`):
  rebuilt, a site leaves a lapsed consent's files out;
* what runs under the consent that did not finish (killed, interrupted, stopped by an error) left beside the
  outputs they were writing: temporary files and folders, and checkpoints kept for resuming
  (`assets.unfinished_runs`); one a process on this machine is writing now is kept, and said why;
* kept, and said why: a path a later output under another, valid consent has replaced since (the path now holds
  that one), a path that is not on disk, an output whose bytes changed since it was registered (someone's hand
  work at that name: deleted only with ``include_changed``), and the workspace's own folders;
* recorded: an audit record ``consent.purge`` naming what is deleted and what kept, written before the first
  deletion (and ``consent.purge_incomplete`` naming what could not be deleted). The index keeps the
  assets' rows and their content hashes, so a copy of the deleted likeness that turns up later as an input is
  still recognised as this actor's, and refused under the revoked consent.

A valid consent's outputs are never purged: revoke it first.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from assets import audit
from assets.consent import ConsentError, get_consent
from assets.content_credentials import sidecar_path
from assets.lineage import Asset, held_at_paths, on_disk, outputs_under_consent, workspace_relative
from assets.review_sites import sites_holding
from assets.unfinished_runs import Unfinished, unfinished_of
from assets.workspace import INDEX_NAME, STAGE_FOLDERS, Workspace
from core.leftovers import disk_size


@dataclass(frozen=True)
class PurgeItem:
    asset_id: str | None      # None: an input read as the likeness (a capture session), not a registered output
    kind: str                 # the asset's kind, or "input"
    stored: str               # the path as the index stores it
    path: Path                # where it is on disk
    action: str               # "delete", or "keep"
    why: str = ""             # for "keep": a few words
    bytes: int = 0            # size on disk (to delete)


@dataclass
class PurgePlan:
    consent_id: str
    actor_id: str
    status: str                                    # revoked / expired
    items: list[PurgeItem] = field(default_factory=list)

    @property
    def to_delete(self) -> list[PurgeItem]:
        return [i for i in self.items if i.action == "delete"]

    @property
    def kept(self) -> list[PurgeItem]:
        return [i for i in self.items if i.action == "keep"]


def plan_purge(ws: Workspace, consent_id: str, include_changed: bool = False) -> PurgePlan:
    """What purging ``consent_id`` would delete and keep (nothing is touched). ConsentError (one line) for an
    unknown consent or one still valid."""
    from assets.consent_dates import zone_label

    c = get_consent(ws, consent_id)
    status = c.status()
    if status == "valid":
        raise ConsentError(f"consent {consent_id} is valid (through {c.expires.isoformat()}, "
                           f"{zone_label(c.timezone)}): revoke it first (`doppel consent revoke {consent_id} "
                           "--reason ...`); a valid consent's outputs are never purged")
    direct, derived = outputs_under_consent(ws, consent_id)
    latest = held_at_paths(ws)
    plan = PurgePlan(consent_id, c.actor_id, status)
    chosen = {a.id for a in direct + derived}
    content = _content_hashes(ws, chosen)
    seen: set[Path] = set()
    for a in direct + derived:
        path = on_disk(ws, a.path)
        if path not in seen:
            seen.add(path)
            plan.items.append(_output_item(ws, a, path, latest.get(a.path), chosen, include_changed, content))
    for stored, sha, others, is_capture in _likeness_inputs(ws, consent_id, c.actor_id):
        path = on_disk(ws, stored)
        if path not in seen:
            seen.add(path)
            plan.items.append(_input_item(ws, stored, path, sha, others, is_capture, include_changed))
    plan.items += [_unfinished_item(ws, u) for u in unfinished_of(ws, consent_id)]
    plan.items += [_site_item(ws, stored, path) for stored, path, _ in sites_holding(ws, chosen) if path not in seen]
    return plan


def _site_item(ws: Workspace, stored: str, path: Path) -> PurgeItem:
    """A review site holding copies of the consent's outputs: deleted whole (`doppel review` rebuilds it)."""
    item = PurgeItem(None, "review site", stored, path, "keep")
    why = _why_kept(ws, path)
    return replace(item, why=why) if why else replace(item, action="delete", bytes=disk_size(path))


def _unfinished_item(ws: Workspace, u: Unfinished) -> PurgeItem:
    """What a run under the consent that did not finish left beside an output (`assets.unfinished_runs`):
    deleted, unless a run is writing it now (its process runs on this machine, or holds the checkpoint's lock)."""
    left = u.leftover
    kind = "checkpoint" if left.kind == "checkpoint" else "unfinished"
    item = PurgeItem(None, kind, workspace_relative(ws, left.path), left.path, "keep")
    if left.alive:
        return replace(item, why="being written now by a run: purge again when it has stopped")
    return replace(item, action="delete", bytes=disk_size(left.path))


def _output_item(ws: Workspace, a: Asset, path: Path, held: tuple[str, set[str]] | None, chosen: set[str],
                 include_changed: bool, content: dict[tuple[str, str], str]) -> PurgeItem:
    """held: what ``a``'s path holds now (`assets.lineage.held_at_paths`): when it is another output (a remake)
    made under another consent, it is kept; the same output registered for another actor too (a swapped plate:
    the plate's performer's) still shows this actor, and goes."""
    item = PurgeItem(a.id, a.kind, a.path, path, "keep")
    if held is not None and a.id not in held[1] and held[0] not in chosen:
        return replace(item, why=f"replaced since by {held[0]}, made under another consent")
    why = _why_kept(ws, path) or ("" if include_changed or _unchanged(a, path, content) else _CHANGED)
    return replace(item, why=why) if why else replace(item, action="delete", bytes=disk_size(path))


def _content_hashes(ws: Workspace, asset_ids: set[str]) -> dict[tuple[str, str], str]:
    """The content index's data hash of each of ``asset_ids``' registered paths: {(asset id, path): sha256}, read
    in one connection (one per asset took 7 s for a consent with 2000 outputs)."""
    ids, out = sorted(asset_ids), {}
    with ws.read() as con:
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out.update({(r[0], r[1]): r[2] for r in con.execute(
                f"SELECT asset_id, path, sha256 FROM content WHERE asset_id IN ({','.join('?' * len(chunk))})",
                chunk)})
    return out


def _unchanged(a: Asset, path: Path, content: dict[tuple[str, str], str]) -> bool:
    """Whether ``path`` holds what ``a`` registered: every data file's bytes (the content index's data hash,
    ``content`` from `_content_hashes`), or for an asset registered before that index existed its registered hash
    (a folder's: its manifest's)."""
    from assets.hashing import digest, path_sha256

    registered = content.get((a.id, a.path))
    return digest(path).data_sha256 == registered if registered is not None else path_sha256(path) == a.sha256


def _input_item(ws: Workspace, stored: str, path: Path, sha256: str, others: list[str], is_capture: bool,
                include_changed: bool) -> PurgeItem:
    from assets.hashing import digest

    item = PurgeItem(None, "input", stored, path, "keep")
    if not is_capture:
        return replace(item, why="read for a face replacement (a plate, a photo of the performer), not a capture "
                                 "made for the double: the production's own footage, withdrawn by hand if the "
                                 "release says so")
    if others:
        return replace(item, why=f"also read under {', '.join(others)}, still valid")
    why = _why_kept(ws, path) or ("" if include_changed or digest(path).data_sha256 == sha256 else _CHANGED)
    return replace(item, why=why) if why else replace(item, action="delete", bytes=disk_size(path))


_CHANGED = "changed since it was registered (hand work at that name?): --include-changed deletes it too"


def _why_kept(ws: Workspace, path: Path) -> str:
    if _protected(ws, path):
        return "the workspace's own folder or index"
    if not path.exists():
        return "not on disk (deleted or moved)"
    return ""


CAPTURE_USES = ("scan", "fit")   # the uses under which a run reads the capture made for the double


def _likeness_inputs(ws: Workspace, consent_id: str, actor_id: str) -> list[tuple[str, str, list[str], bool]]:
    """(stored path, data hash, other consents still valid that read it, read as the double's capture) of each
    input read as ``actor_id``'s likeness (the content index: a capture, a plate, a photo; never a mocap clip or a
    calibration) that is no registered output and that a run under ``consent_id`` read (the runs' audit records
    name their inputs). "Read as the capture": a run under this consent read it with use scan or fit."""
    import json

    readers: dict[str, set[str]] = {}
    capture: set[str] = set()
    with ws.read() as con:
        likeness = {r[0]: r[1] for r in con.execute(
            "SELECT path, sha256 FROM content WHERE asset_id IS NULL AND actor_id = ? ORDER BY audit_seq", (actor_id,))}
        for (text,) in con.execute("SELECT record FROM audit WHERE record LIKE ?", ('%"inputs"%',)):
            rec = json.loads(text)
            if rec.get("actor") != actor_id or not rec.get("consent"):
                continue
            for i in rec.get("inputs") or ():
                if isinstance(i, dict) and i.get("path") in likeness:
                    readers.setdefault(i["path"], set()).add(str(rec["consent"]))
                    if rec["consent"] == consent_id and rec.get("use") in CAPTURE_USES:
                        capture.add(i["path"])
    out = []
    for stored, consents in readers.items():
        if consent_id in consents:
            others = sorted(c for c in consents - {consent_id} if get_consent(ws, c).status() == "valid")
            out.append((stored, likeness[stored], others, stored in capture))
    return out


def _protected(ws: Workspace, path: Path) -> bool:
    """The workspace itself, a folder above it, its stage folders, its index files and hidden folders (keys), and
    the user's home folder."""
    root, p = ws.root.resolve(), path.resolve()
    if p == root or p in root.parents or p in {root / n for n in STAGE_FOLDERS} or p == Path.home().resolve():
        return True
    try:
        first = p.relative_to(root).parts[0]
    except ValueError:
        return False
    return first.startswith(".") or first.startswith(INDEX_NAME)


@dataclass(frozen=True)
class PurgeResult:
    deleted: list[PurgeItem]
    failed: list[tuple[PurgeItem, str]]
    kept: list[PurgeItem]
    audit_seq: int


def execute_purge(ws: Workspace, plan: PurgePlan) -> PurgeResult:
    """Record ``plan`` in the audit log (``consent.purge``: what is to be deleted and what kept), then delete; a
    path that cannot be deleted (permissions, a mount) is reported, the rest go on, and a second record
    (``consent.purge_incomplete``) names what stayed. Recorded first, so a purge killed half-way is on record;
    running it again deletes what is left."""
    ws.check_writable()
    with ws.write() as con:
        entry = audit.append(con, {
            "action": "consent.purge", "actor": plan.actor_id, "consent": plan.consent_id,
            "detail": {"status": plan.status,
                       "deleting": [[i.asset_id or i.kind, i.stored] for i in plan.to_delete],
                       "kept": [[i.asset_id or i.kind, i.stored, i.why] for i in plan.kept],
                       "bytes": sum(i.bytes for i in plan.to_delete)}})
    deleted, failed = [], []
    for item in plan.to_delete:
        try:
            if item.path.is_dir() and not item.path.is_symlink():
                shutil.rmtree(item.path)
            else:
                os.unlink(item.path)
                sidecar_path(item.path).unlink(missing_ok=True)     # its content credentials (an export's)
        except OSError as e:
            failed.append((item, e.strerror or str(e)))
        else:
            deleted.append(item)
    if failed:
        with ws.write() as con:
            audit.append(con, {"action": "consent.purge_incomplete", "actor": plan.actor_id,
                               "consent": plan.consent_id, "detail": {
                                   "purge_seq": entry.seq,
                                   "failed": [[i.asset_id or i.kind, i.stored, why] for i, why in failed]}})
    return PurgeResult(deleted, failed, plan.kept, entry.seq)
