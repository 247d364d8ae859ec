"""The consent gate every command that works on an actor's likeness goes through.

A gated command (capture ingest, fit, rig, retarget, export, render) does three things:

1. before any work, `authorize` finds the valid consent that covers (actor, use, production, today),
   or refuses with a `ConsentError` of one line (and the refusal is written to the audit log);
2. it does its work, telling the run what it produced (`GatedRun.add_output`);
3. on a clean exit, one short transaction re-checks the consent, registers the outputs with their
   inputs (lineage) and appends one hash-chained audit record (actor, use, production, consent id,
   inputs' and outputs' SHA-256, time, user). If the body raises, nothing is registered.

The built-in virtual actor (``--actor virtual``) needs no consent; its records say so. It may even run
without a workspace (then nothing is registered), so synthetic tests and the demo need no set-up.

How a command adopts the gate (the typer options are reusable ``Annotated`` types)::

    from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli

    def fit(capture: Path, out: Path, workspace: WorkspaceOpt = None, actor: ActorOpt = None,
            production: ProductionOpt = None) -> None:
        with gate_from_cli(workspace, actor, production, use="fit", command="fit", inputs=[capture]) as run:
            ...  # the work; write_manifest(out, ..., extra={"consent": run.provenance})
            run.add_output(out, kind="fit")
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from assets import audit
from assets.actors import get_actor
from assets.consent import ConsentError, Use, find_valid, parse_use
from assets.hashing import path_sha256
from assets.lineage import Asset, check_kind, find_parent, insert_asset, new_asset_id, workspace_relative
from assets.workspace import INDEX_NAME, VIRTUAL_ACTOR_ID, WORKSPACE_ENV, Workspace, resolve_root

log = logging.getLogger(__name__)

VIRTUAL_NOTE = "not required: built-in virtual actor (synthetic, no real person's likeness)"
DEFAULT_VIRTUAL_PRODUCTION = "demo"

# --- the reusable typer option set --------------------------------------------------------------------
WorkspaceOpt = Annotated[Path | None, typer.Option(
    "--workspace", "-W", show_default=False,
    help=f"Asset-library workspace (default: ${WORKSPACE_ENV}, else the current folder).")]
ActorOpt = Annotated[str | None, typer.Option(
    "--actor", show_default=False,
    help=f"Actor whose likeness this works on (`doppel actor add`); '{VIRTUAL_ACTOR_ID}' for the built-in "
         "virtual actor, which needs no consent.")]
ProductionOpt = Annotated[str | None, typer.Option(
    "--production", show_default=False,
    help="Production this work is for; a consent must cover it (optional for the virtual actor).")]


@dataclass(frozen=True)
class Authorization:
    """What the gate allowed: who, for what, under which consent."""

    actor_id: str
    use: Use
    production: str
    consent_id: str | None   # None only for the virtual actor
    virtual: bool

    @property
    def provenance(self) -> dict:
        """A JSON-able summary for a stage's manifest.json (``extra={"consent": run.provenance}``)."""
        return {"actor": self.actor_id, "use": self.use.value, "production": self.production,
                "consent": self.consent_id if self.consent_id else VIRTUAL_NOTE}


def authorize(ws: Workspace | None, actor_id: str, use: Use | str, production: str, *, command: str = "",
              today: _dt.date | None = None) -> Authorization:
    """The consent that allows this action now, or ConsentError (one line; the refusal is audited).

    ws may be None only for the virtual actor (nothing to look up, nothing recorded).
    """
    use = parse_use(use)
    if ws is None:
        if actor_id != VIRTUAL_ACTOR_ID:
            raise ConsentError(f"actor {actor_id!r}: a workspace is needed to check consent (--workspace W)")
        return Authorization(actor_id, use, production, None, True)
    with ws.read() as con:
        actor = get_actor(con, actor_id)
        if actor.virtual:
            return Authorization(actor_id, use, production, None, True)
        try:
            consent = find_valid(con, actor_id, use, production, today)
        except ConsentError as refusal:
            err = refusal
        else:
            return Authorization(actor_id, use, production, consent.id, False)
    with ws.write() as con:
        audit.append(con, {"action": "gate.refused", "command": command, "actor": actor_id, "use": use.value,
                           "production": production, "consent": None, "detail": {"reason": str(err)}})
    raise err


@dataclass(frozen=True)
class _Pending:
    path: Path
    kind: str
    inputs: tuple[Path | str, ...] | None   # None: the run's inputs


@dataclass
class GatedRun:
    """One authorised action in progress. Tell it what you produce; it registers on a clean exit."""

    ws: Workspace | None
    auth: Authorization
    command: str
    inputs: tuple[Path | str, ...] = ()           # files/folders (or asset ids) the whole action read
    today: _dt.date | None = None
    registered: list[Asset] = field(default_factory=list)   # filled by finish()
    audit_seq: int | None = None                             # filled by finish()
    _pending: list[_Pending] = field(default_factory=list)
    _described: dict = field(default_factory=dict)   # input -> (stored path, sha256, asset id), hashed once

    @property
    def provenance(self) -> dict:
        return self.auth.provenance

    def add_output(self, path: str | os.PathLike, kind: str, inputs: Sequence[str | os.PathLike] | None = None,
                   ) -> None:
        """Register ``path`` (file or folder) as an output of kind ``kind`` (capture, landmarks, fit, rig,
        animation, export, render, ...) made from ``inputs`` (paths or asset ids; default: the run's)."""
        check_kind(kind)
        srcs = None if inputs is None else tuple(Path(i) if Path(i).exists() else str(i) for i in inputs)
        self._pending.append(_Pending(Path(path), kind, srcs))

    def finish(self) -> list[Asset]:
        """Hash the outputs, then in one transaction: re-check the consent, register outputs and lineage,
        append the audit record. Called by `gated` on a clean exit."""
        if self.ws is None:
            log.info("%s: virtual actor without a workspace: %d output(s) not registered", self.command,
                     len(self._pending))
            return []
        ws, auth = self.ws, self.auth
        # Hashing can be slow: do it before taking the write lock.
        all_inputs = {i for p in self._pending for i in (p.inputs if p.inputs is not None else self.inputs)}
        all_inputs |= set(self.inputs)
        in_info = {i: self._described.get(i) or _describe_input(ws, i) for i in all_inputs}
        outs = [(p, new_asset_id(p.kind), workspace_relative(ws, p.path), path_sha256(p.path)) for p in self._pending]
        now = audit.utc_now()
        revoked_meanwhile = None
        with ws.write() as con:
            if not auth.virtual:
                try:
                    find_valid(con, auth.actor_id, auth.use, auth.production, self.today)
                except ConsentError as e:
                    revoked_meanwhile = e
            parent_ids = {}
            for i, (stored, sha, asset_id) in in_info.items():
                found = None if asset_id else find_parent(con, stored, sha)
                parent_ids[i] = asset_id or (found.id if found else None)
            record = {
                "action": f"gate.{auth.use.value}", "command": self.command, "actor": auth.actor_id,
                "use": auth.use.value, "production": auth.production,
                "consent": auth.consent_id if auth.consent_id else VIRTUAL_NOTE,
                "outcome": "consent_revoked_during_run" if revoked_meanwhile else "ok",
                "inputs": sorted(({"path": stored, "sha256": sha, "asset": parent_ids[i]}
                                  for i, (stored, sha, _) in in_info.items()), key=lambda d: d["path"]),
                "outputs": [{"asset": aid, "kind": p.kind, "path": stored, "sha256": sha}
                            for p, aid, stored, sha in outs],
            }
            entry = audit.append(con, record)
            self.registered = []
            for p, aid, stored, sha in outs:
                srcs = p.inputs if p.inputs is not None else self.inputs
                parents = sorted({parent_ids[i] for i in srcs if parent_ids[i]})
                self.registered.append(insert_asset(
                    con, aid=aid, kind=p.kind, path=stored, sha256=sha, actor_id=auth.actor_id,
                    consent_id=auth.consent_id, use=auth.use.value, production=auth.production, created=now,
                    audit_seq=entry.seq, parents=parents))
            self.audit_seq = entry.seq
        if revoked_meanwhile:
            what = self.command or "this command"
            raise ConsentError(f"consent {auth.consent_id} was revoked (or expired) while {what} ran: "
                               f"its {len(outs)} output(s) are registered (audit record {entry.seq}) so they can be "
                               f"found and removed; see `doppel consent show {auth.actor_id}`")
        return self.registered


def _describe_input(ws: Workspace, i: Path | str) -> tuple[str, str, str | None]:
    """(stored path, sha256, asset id if ``i`` is an asset id) for one input."""
    p = Path(i)
    if p.exists():
        return workspace_relative(ws, p), path_sha256(p), None
    if isinstance(i, str) and "-" in i:  # an asset id
        with ws.read() as con:
            row = con.execute("SELECT path, sha256 FROM assets WHERE id=?", (i,)).fetchone()
        if row:
            return row["path"], row["sha256"], i
    raise FileNotFoundError(f"{i}: input is neither an existing file/folder nor a registered asset id")


@contextlib.contextmanager
def gated(ws: Workspace | None, actor_id: str, use: Use | str, production: str, *, command: str = "",
          inputs: Sequence[str | os.PathLike] = (), today: _dt.date | None = None) -> Iterator[GatedRun]:
    """Authorise, yield a `GatedRun` for the work, register its outputs on a clean exit.

    Raises ConsentError before the body runs when no valid consent covers the action.
    """
    auth = authorize(ws, actor_id, use, production, command=command, today=today)
    run = GatedRun(ws, auth, command, tuple(Path(i) if Path(i).exists() else str(i) for i in inputs), today)
    # Inputs are checked and hashed before the work: a typo fails at once, and the hashes are of what was read.
    for i in run.inputs:
        if ws is not None:
            run._described[i] = _describe_input(ws, i)
        elif not Path(i).exists():
            raise FileNotFoundError(f"{i}: input not found")
    yield run
    run.finish()


def open_for_actor(workspace: str | os.PathLike | None, actor_id: str) -> Workspace | None:
    """The workspace a command means (``--workspace``, else $DOPPEL_WORKSPACE, else the current folder).

    For the virtual actor with no workspace named anywhere and none in the current folder: None.
    """
    named = workspace is not None or bool(os.environ.get(WORKSPACE_ENV))
    root = resolve_root(workspace)
    if actor_id == VIRTUAL_ACTOR_ID and not named and not (root / INDEX_NAME).is_file():
        return None
    return Workspace.open(root)


def gate_from_cli(workspace: Path | None, actor: str | None, production: str | None, use: Use | str, *,
                  command: str, inputs: Sequence[str | os.PathLike] = ()) -> contextlib.AbstractContextManager:
    """`gated` from the values of WorkspaceOpt / ActorOpt / ProductionOpt; errors are one line each."""
    if not actor:
        raise ConsentError(f"{command}: --actor is required (an actor added with `doppel actor add`, or "
                           f"'{VIRTUAL_ACTOR_ID}' for the built-in virtual actor)")
    if not production:
        if actor != VIRTUAL_ACTOR_ID:
            raise ConsentError(f"{command}: --production is required for actor {actor!r} (consent is per production)")
        production = DEFAULT_VIRTUAL_PRODUCTION
    ws = open_for_actor(workspace, actor)
    return gated(ws, actor, use, production, command=command, inputs=inputs)


# --- registering a pipeline run's stage folders (used by `doppel demo --workspace`) -----------------------
STAGE_USES = {"virtual_actor": Use.SCAN, "capture": Use.SCAN, "landmarks": Use.SCAN, "fit": Use.FIT,
              "rig": Use.RIG, "retarget": Use.RETARGET, "animation": Use.RETARGET, "export": Use.EXPORT,
              "render": Use.RENDER, "face_replace": Use.FACE_REPLACE}
STAGE_KINDS = {"virtual_actor": "capture", "retarget": "animation"}


def stage_use(stage: str) -> Use:
    """The use a stage's work counts as: by name, else by the first known word in it, else fit."""
    if stage in STAGE_USES:
        return STAGE_USES[stage]
    for word, use in STAGE_USES.items():
        if word in stage:
            return use
    return Use.FIT


def register_stage_folders(ws: Workspace | None, actor_id: str, production: str, folders: Sequence[Path], *,
                           command: str) -> list[Asset]:
    """Register each stage folder (one with manifest.json) as a gated action of ``actor_id``.

    Lineage comes from the manifests: an input whose SHA-256 equals an output of an earlier folder makes
    that folder its parent. Folders are taken in the given order (the pipeline's). Returns the assets.
    """
    from core.storage import read_manifest

    by_hash: dict[str, Path] = {}
    registered: list[Asset] = []
    for folder in folders:
        manifest = read_manifest(folder)  # ManifestError naming the file when unreadable
        stage = str(manifest.get("stage", Path(folder).name))
        kind = STAGE_KINDS.get(stage, stage)
        parents = sorted({str(by_hash[e["sha256"]]) for e in manifest.get("inputs", {}).values()
                          if e.get("sha256") in by_hash}, key=str)
        with gated(ws, actor_id, stage_use(stage), production, command=command, inputs=parents) as run:
            run.add_output(folder, kind=check_kind(kind))
        registered += run.registered
        for e in manifest.get("outputs", {}).values():
            by_hash.setdefault(e["sha256"], Path(folder))
    return registered


# --- whose likeness a command works on ---------------------------------------------------------------------
def recorded_actor(path: str | os.PathLike) -> str | None:
    """The actor recorded in a stage folder's manifest.json (``params.actor_id``, else ``consent.actor``), or
    None when ``path`` is not a stage folder or records none. A file's folder is looked at too."""
    from core.storage import MANIFEST_NAME, read_manifest

    p = Path(path)
    folder = p if p.is_dir() else p.parent
    if not (folder / MANIFEST_NAME).is_file():
        return None
    try:
        manifest = read_manifest(folder)
    except Exception:  # noqa: BLE001 - an unreadable manifest records no actor; the stage reports it itself
        return None
    actor = (manifest.get("params") or {}).get("actor_id")
    if not actor and isinstance(manifest.get("consent"), dict):
        actor = manifest["consent"].get("actor")
    return str(actor) if actor else None


def resolve_actor(explicit: str | None, inputs: Sequence[str | os.PathLike], *, command: str) -> str:
    """The actor a command works on: ``--actor`` if given, else the one its inputs record, else the virtual
    actor. An input made from one actor's likeness cannot be processed under another actor's name."""
    recorded = {a for a in (recorded_actor(i) for i in inputs) if a and a != VIRTUAL_ACTOR_ID}
    if len(recorded) > 1:
        raise ConsentError(f"{command}: inputs come from several actors ({', '.join(sorted(recorded))})")
    if explicit:
        if recorded and explicit not in recorded:
            raise ConsentError(f"{command}: the inputs were made from actor {recorded.pop()!r}'s likeness, "
                               f"not {explicit!r}")
        return explicit
    return recorded.pop() if recorded else VIRTUAL_ACTOR_ID
