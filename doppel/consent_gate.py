"""The consent gate every command that works on an actor's likeness goes through.

A gated command (capture ingest, fit, rig, retarget, export, render) does three things:

1. before any work, `gate_from_cli` decides whose likeness its inputs are (`doppel.likeness`: content identity,
   signed manifests, positive proof of synthetic inputs; never a silent fallback), then `authorize` finds the
   valid consent that covers (actor, use, production, today), or refuses with a `ConsentError` of one line (and
   the refusal is written to the audit log);
2. it does its work, telling the run what it produced (`GatedRun.add_output`);
3. on a clean exit, the run signs the manifests of its output folders with the workspace's key, then one short
   transaction re-checks the consent, registers the outputs with their inputs (lineage) and their content
   hashes (`assets.content_index`), and appends one hash-chained audit record (actor, use, production, consent
   id, inputs' and outputs' SHA-256, time, user). If the body raises, nothing is registered.

The built-in virtual actor needs no consent; its records say so. It is chosen only by positive proof (synthetic
inputs, or no likeness input at all: the command generates the double itself). Outside any workspace, commands
still run: the virtual actor when proven, else the actor ``unknown`` (never virtual, so such outputs can never
later pass a gate as synthetic); nothing is registered.

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
import contextvars
import datetime as _dt
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from assets import audit, content_index
from assets.actors import get_actor
from assets.consent import ConsentError, Use, find_valid, parse_use
from assets.hashing import ContentDigest, digest, path_sha256
from assets.lineage import (
    Asset,
    check_kind,
    check_recordable_name,
    find_parent,
    insert_asset,
    new_asset_id,
    workspace_relative,
)
from assets.manifest_signing import sign_folder
from assets.signing_keys import record_public_facts
from assets.text_fields import check_text
from assets.unfinished_runs import record_begin
from assets.workspace import INDEX_NAME, UNKNOWN_ACTOR_ID, VIRTUAL_ACTOR_ID, WORKSPACE_ENV, Workspace, resolve_root
from core.leftovers import owned_by
from core.storage import MANIFEST_NAME, read_manifest
from doppel.likeness import InputEvidence, inspect_input, resolve_actor
from doppel.synthetic_provenance import SYNTHETIC_NOTE

log = logging.getLogger(__name__)

VIRTUAL_NOTE = SYNTHETIC_NOTE
UNKNOWN_NOTE = ("not checked: no workspace, and the inputs carry no provenance (whose likeness this is is unknown; "
                "it can never pass a gate as synthetic)")
DEFAULT_VIRTUAL_PRODUCTION = "demo"
UNKNOWN_PRODUCTION = "unspecified"

# --- the reusable typer option set --------------------------------------------------------------------
WorkspaceOpt = Annotated[Path | None, typer.Option(
    "--workspace", "-W", show_default=False,
    help=f"Asset-library workspace (default: ${WORKSPACE_ENV}, else the current folder).")]
ActorOpt = Annotated[str | None, typer.Option(
    "--actor", show_default=False,
    help=f"Actor whose likeness this works on (`doppel actor add`); default: the one the inputs are attributed to. "
         f"'{VIRTUAL_ACTOR_ID}' (the built-in virtual actor, no consent needed) only for inputs proven synthetic.")]
ProductionOpt = Annotated[str | None, typer.Option(
    "--production", show_default=False,
    help="Production this work is for; a consent must cover it (optional for the virtual actor).")]


def manifest_params(provenance: dict) -> dict:
    """What a stage folder's manifest records in its params of whose likeness it holds, from a run's provenance
    (`Authorization.provenance`: actor, consent, production; missing ones None): ``actor_id``, ``consent_id`` and
    ``production``, the keys `doppel.likeness` reads back when the folder is given to a command later."""
    return {"actor_id": provenance.get("actor"), "consent_id": provenance.get("consent"),
            "production": provenance.get("production")}


@dataclass(frozen=True)
class Authorization:
    """What the gate allowed: who, for what, under which consent."""

    actor_id: str
    use: Use
    production: str
    consent_id: str | None   # None for the virtual actor and for 'unknown' (outside a workspace)
    virtual: bool

    @property
    def provenance(self) -> dict:
        """A JSON-able summary for a stage's manifest.json (``extra={"consent": run.provenance}``)."""
        note = VIRTUAL_NOTE if self.virtual else UNKNOWN_NOTE
        return {"actor": self.actor_id, "use": self.use.value, "production": self.production,
                "consent": self.consent_id if self.consent_id else note}


def authorize(ws: Workspace | None, actor_id: str, use: Use | str, production: str, *, command: str = "",
              today: _dt.date | None = None) -> Authorization:
    """The consent that allows this action now, or ConsentError (one line; the refusal is audited).

    ws may be None only for the virtual actor and for 'unknown' (nothing to look up, nothing recorded).
    """
    use = parse_use(use)
    if ws is None:
        if actor_id not in (VIRTUAL_ACTOR_ID, UNKNOWN_ACTOR_ID):
            raise ConsentError(f"actor {actor_id!r}: a workspace is needed to check consent (--workspace W)")
        return Authorization(actor_id, use, production, None, actor_id == VIRTUAL_ACTOR_ID)
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
    _audit_refusal(ws, command, actor_id, use, production, err)
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
    likeness: tuple[InputEvidence, ...] = ()      # the inputs read as the actor's likeness (their content is indexed)
    registered: list[Asset] = field(default_factory=list)   # filled by finish()
    audit_seq: int | None = None                             # filled by finish()
    disclosure_grant: object | None = None    # a batch task's `assets.disclosure.DisclosureGrant` (no workspace here)
    also: tuple[Authorization, ...] = ()      # further people whose consent the run needs (performers of its inputs)
    _pending: list[_Pending] = field(default_factory=list)
    _described: dict = field(default_factory=dict)   # input -> (stored path, sha256, asset id), hashed once

    @property
    def provenance(self) -> dict:
        return self.auth.provenance

    @property
    def manifest_params(self) -> dict:
        """`manifest_params` of this run: whose likeness its stage folders hold, for their manifests' params."""
        return manifest_params(self.auth.provenance)

    def add_output(self, path: str | os.PathLike, kind: str, inputs: Sequence[str | os.PathLike] | None = None,
                   ) -> None:
        """Register ``path`` (file or folder) as an output of kind ``kind`` (capture, landmarks, fit, rig,
        animation, export, render, ...) made from ``inputs`` (paths or asset ids; default: the run's)."""
        check_kind(kind)
        srcs = None if inputs is None else tuple(Path(i) if Path(i).exists() else str(i) for i in inputs)
        self._pending.append(_Pending(Path(path), kind, srcs))

    @property
    def outputs(self) -> list[tuple[Path, str, tuple[Path | str, ...] | None]]:
        """(path, kind, inputs or None for the run's) of every output added so far."""
        return [(p.path, p.kind, p.inputs) for p in self._pending]

    def finish(self) -> list[Asset]:
        """Sign and hash the outputs, then in one transaction: re-check the consent (and each of ``also``'s),
        register outputs, lineage and content hashes, append the audit record (and one in each of ``also``'s
        people's records, naming the same outputs). Called by `gated` on a clean exit."""
        if self.ws is None:
            log.info("%s: actor %s without a workspace: %d output(s) not registered", self.command,
                     self.auth.actor_id, len(self._pending))
            return []
        ws, auth = self.ws, self.auth
        # Signing and hashing can be slow: do them before taking the write lock.
        key = ws.manifest_key()
        for p in self._pending:
            if p.path.is_dir() and (p.path / MANIFEST_NAME).is_file():
                sign_folder(p.path, key)
        all_inputs = {i for p in self._pending for i in (p.inputs if p.inputs is not None else self.inputs)}
        all_inputs |= set(self.inputs)
        in_info = {i: self._described.get(i) or _describe_input(ws, i) for i in all_inputs}
        outs = [_Output(p, new_asset_id(p.kind), workspace_relative(ws, p.path), digest(p.path))
                for p in self._pending]
        with ws.write() as con:
            revoked = self.revocations(con)
            parent_ids = self._parents(con, in_info)
            entry = audit.append(con, self._record(in_info, parent_ids, outs, revoked[auth.consent_id]))
            self.registered = [self._insert(con, o, parent_ids, entry.seq) for o in outs]
            self._index_likeness(con, parent_ids, entry.seq)
            self.audit_seq = entry.seq
            for a in self.also:
                audit.append(con, self._record(in_info, parent_ids, outs, revoked[a.consent_id], a))
        lapsed = [c for c, e in revoked.items() if e is not None]
        if lapsed:
            what = self.command or "this command"
            who = " and ".join(sorted({a.actor_id for a in (auth, *self.also) if a.consent_id in lapsed}))
            raise ConsentError(f"consent {', '.join(lapsed)} was revoked (or expired) while {what} ran: "
                               f"its {len(outs)} output(s) are registered (audit record {entry.seq}) so they can be "
                               f"found and removed; see `doppel consent show {who}`")
        return self.registered

    def revocations(self, con) -> dict[str | None, ConsentError | None]:
        """Consent id -> None while a valid consent still covers that authorisation (the run's, then ``also``'s;
        any valid one for its actor, use and production), else why not. The virtual actor's always holds."""
        out: dict[str | None, ConsentError | None] = {}
        for a in (self.auth, *self.also):
            out[a.consent_id] = None
            if not a.virtual:
                try:
                    find_valid(con, a.actor_id, a.use, a.production, self.today)
                except ConsentError as e:
                    out[a.consent_id] = e
        return out

    def _parents(self, con, in_info: dict) -> dict:
        """input -> the registered asset it comes from: an asset id given as input, else the asset at its path
        with its hash (or the stage folder holding it), else the asset its content is registered to for this
        actor (a folder whose manifest was removed or replaced keeps its lineage)."""
        by_content = {e.path: e for e in self.likeness}
        parents = {}
        for i, (stored, sha, asset_id) in in_info.items():
            found = None if asset_id else find_parent(con, stored, sha)
            parents[i] = asset_id or (found.id if found else None)
            if parents[i] is None and i in by_content:
                c = by_content[i].content
                hits = content_index.matches(con, [c.sha256, c.data_sha256, *c.files.values()])
                parents[i] = next((m.asset_id for m in hits if m.asset_id and m.actor_id == self.auth.actor_id), None)
        return parents

    def _record(self, in_info: dict, parent_ids: dict, outs: list[_Output], revoked: Exception | None,
                also: Authorization | None = None) -> dict:
        """The run's audit record; with ``also``, the one in that person's record (their performance was used)."""
        auth = also or self.auth
        command = f"{self.command} (performance of {auth.actor_id})" if also else self.command
        return {
            "action": f"gate.{auth.use.value}", "command": command, "actor": auth.actor_id,
            "use": auth.use.value, "production": auth.production,
            "consent": auth.consent_id if auth.consent_id else VIRTUAL_NOTE,
            "outcome": "consent_revoked_during_run" if revoked else "ok",
            "inputs": sorted(({"path": stored, "sha256": sha, "asset": parent_ids[i]}
                              for i, (stored, sha, _) in in_info.items()), key=lambda d: d["path"]),
            "outputs": [{"asset": o.asset_id, "kind": o.pending.kind, "path": o.stored, "sha256": o.content.sha256}
                        for o in outs],
        }

    def _insert(self, con, o: _Output, parent_ids: dict, audit_seq: int) -> Asset:
        """One output: its asset row, lineage edges and content rows."""
        auth = self.auth
        srcs = o.pending.inputs if o.pending.inputs is not None else self.inputs
        parents = sorted({parent_ids[i] for i in srcs if parent_ids[i]})
        asset = insert_asset(con, aid=o.asset_id, kind=o.pending.kind, path=o.stored, sha256=o.content.sha256,
                             actor_id=auth.actor_id, consent_id=auth.consent_id, use=auth.use.value,
                             production=auth.production, created=audit.utc_now(), audit_seq=audit_seq,
                             parents=parents)
        content_index.insert(con, content_index.output_rows(o.asset_id, o.stored, o.content, _listed(o)),
                             auth.actor_id, audit_seq)
        return asset

    def _index_likeness(self, con, parent_ids: dict, audit_seq: int) -> None:
        """The inputs read as the actor's likeness become known content of that actor."""
        rows = []
        for e in self.likeness:
            stored = workspace_relative(self.ws, e.path)
            rows += content_index.input_rows(stored, e.content, parent_ids.get(e.path))
        content_index.insert(con, rows, self.auth.actor_id, audit_seq)


@dataclass(frozen=True)
class _Output:
    pending: _Pending
    asset_id: str
    stored: str              # path as stored in the index
    content: ContentDigest


def _listed(o: _Output) -> list[str]:
    """The files an output folder's manifest lists as its outputs (relative paths)."""
    if not (o.content.is_dir and MANIFEST_NAME in o.content.files):
        return []
    return [e["path"] for e in read_manifest(o.pending.path).get("outputs", {}).values()]


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
          inputs: Sequence[str | os.PathLike] = (), today: _dt.date | None = None,
          likeness: Sequence[InputEvidence] = (), outputs: Sequence[str | os.PathLike] = (),
          also: Sequence[Authorization] = ()) -> Iterator[GatedRun]:
    """Authorise, yield a `GatedRun` for the work, register its outputs on a clean exit.

    The caller vouches for ``actor_id`` (`gate_from_cli` resolves it from the inputs first). ``likeness``: the
    evidence of the inputs read as the actor's likeness (their hashes are reused and their content indexed).
    ``outputs``: where the work is about to write (its --out): a run under a consent that declares them records
    them before it starts (`assets.unfinished_runs`), so what a killed run leaves there is found by a purge of
    that consent; checkpoints written inside the block record the consent (`core.leftovers.owned_by`).
    ``also``: further people's authorisations the run needs (`authorize`d by the caller: the performers of its
    inputs); their consents are re-checked when the run ends, and their records name the run and its outputs.
    Raises ConsentError before the body runs when no valid consent covers the action.
    """
    if ws is not None:                 # before the consent's records: a name the workspace cannot record
        for p in (*inputs, *outputs, *(e.path for e in likeness)):
            check_recordable_name(p)
    auth = authorize(ws, actor_id, use, production, command=command, today=today)
    run = GatedRun(ws, auth, command, tuple(Path(i) if Path(i).exists() else str(i) for i in inputs), today,
                   tuple(likeness), also=tuple(also))
    hashed = {e.path: e.content.sha256 for e in likeness}
    # Inputs are checked and hashed before the work: a typo fails at once, and the hashes are of what was read.
    for i in run.inputs:
        if ws is not None:
            run._described[i] = ((workspace_relative(ws, i), hashed[i], None) if i in hashed
                                 else _describe_input(ws, i))
        elif not Path(i).exists():
            raise FileNotFoundError(f"{i}: input not found")
    for a in (auth, *also):
        if ws is not None and a.consent_id and outputs:     # what a killed run leaves is each consent's to purge
            record_begin(ws, actor=a.actor_id, consent=a.consent_id, use=a.use.value, production=production,
                         command=command, outputs=outputs)
    with contextlib.ExitStack() as owners:
        for a in (auth, *also):                        # checkpoints written inside record every consent the run needs
            owners.enter_context(owned_by(a.consent_id, a.actor_id))
        try:
            yield run
        except Exception as e:
            _stopped_after_revocation(run, e)     # said as what it is when a consent lapsed while the run went on
            raise
    run.finish()


def _stopped_after_revocation(run: GatedRun, error: Exception) -> None:
    """A run that failed after a consent it needs was revoked (a purge deleted its input from under it: "rig.npz:
    file listed in the manifest does not exist"): ConsentError, one line saying so, audited; nothing registered.
    Any other failure returns (the caller re-raises it as it was)."""
    if run.ws is None or isinstance(error, ConsentError):
        return
    with run.ws.read() as con:
        lapsed = [c for c, why in run.revocations(con).items() if why is not None]
    if not lapsed:
        return
    ids = ", ".join(str(c) for c in lapsed)
    what = run.command or "the command"
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    with run.ws.write() as con:
        audit.append(con, {"action": f"gate.{run.auth.use.value}", "command": run.command, "actor": run.auth.actor_id,
                           "use": run.auth.use.value, "production": run.auth.production,
                           "consent": run.auth.consent_id or VIRTUAL_NOTE, "outcome": "stopped_after_revocation",
                           "outputs": [], "detail": {"revoked": ids, "error": reason}})
    raise ConsentError(f"{what} stopped: consent {ids} was revoked while it ran ({reason}); nothing was registered, "
                       f"and what it left beside its outputs is found by `doppel consent purge {lapsed[0]}`"
                       ) from error


def find_workspace(workspace: str | os.PathLike | None) -> Workspace | None:
    """The workspace a command means: ``--workspace``, else $DOPPEL_WORKSPACE (either must be one), else the
    current folder when it is one; None when none is named and the current folder is not one."""
    named = workspace is not None or bool(os.environ.get(WORKSPACE_ENV))
    root = resolve_root(workspace)
    if not named and not (root / INDEX_NAME).is_file():
        return None
    return Workspace.open(root)


def open_for_actor(workspace: str | os.PathLike | None, actor_id: str) -> Workspace | None:
    """`find_workspace`; for a real actor a workspace is required (WorkspaceError naming the folder)."""
    ws = find_workspace(workspace)
    if ws is None and actor_id not in (VIRTUAL_ACTOR_ID, UNKNOWN_ACTOR_ID):
        return Workspace.open(workspace)  # raises: not a workspace, with the `doppel init` hint
    return ws


def gate_from_cli(workspace: Path | None, actor: str | None, production: str | None, use: Use | str, *,
                  command: str, inputs: Sequence[str | os.PathLike] = (),
                  likeness: Sequence[str | os.PathLike] | None = None,
                  evidence: Sequence[str | os.PathLike] = (), actor_option: str = "--actor",
                  outputs: Sequence[str | os.PathLike] = ()) -> contextlib.AbstractContextManager:
    """`gated` from the values of WorkspaceOpt / ActorOpt / ProductionOpt; errors are one line each.
    outputs: where the command is about to write (`gated`).

    likeness: the inputs whose likeness the command works on (default: all ``inputs``); the actor is resolved
    from them (`doppel.likeness.resolve_actor`: ``--actor`` must agree with them; without it, the actor they are
    attributed to, else the virtual actor only by proof, else refused in a workspace / ``unknown`` outside).
    evidence: further inputs that may be attributed to an actor but need no provenance (an animation clip).
    A refusal is audited (inside a workspace) before it is raised.
    """
    if _PREAUTHORIZED.get() is not None:
        return _preauthorized_run(use, command, inputs)
    if production is not None:
        production = check_text(production, "--production", forbid=",")
    if actor and actor not in (VIRTUAL_ACTOR_ID, UNKNOWN_ACTOR_ID) and not production:
        raise ConsentError(f"{command}: --production is required for actor {actor!r} (consent is per production)")
    ws = open_for_actor(workspace, actor or VIRTUAL_ACTOR_ID)
    if ws is not None:
        ws.check_writable()             # a reviewer's read-only access: refused before the work, in one line
        record_public_facts(ws)         # what a reviewer who cannot read the keys verifies with
    likeness = list(inputs if likeness is None else likeness)
    key = ws.manifest_key() if ws is not None else None
    found = [inspect_input(p, required=True, ws=ws, key=key) for p in likeness]
    found += [inspect_input(p, required=False, ws=ws, key=key) for p in evidence]
    try:
        actor_id = resolve_actor(actor, found, command=command, in_workspace=ws is not None,
                                 actor_option=actor_option)
    except ConsentError as refusal:
        if ws is not None:
            _audit_refusal(ws, command, actor, use, production, refusal, found)
        raise
    if actor_id not in (VIRTUAL_ACTOR_ID, UNKNOWN_ACTOR_ID) and not production:
        raise ConsentError(f"{command}: --production is required for actor {actor_id!r} (consent is per production)")
    production = production or (DEFAULT_VIRTUAL_PRODUCTION if actor_id == VIRTUAL_ACTOR_ID else UNKNOWN_PRODUCTION)
    # an input holding another person's performance (an animation made of a stunt performer's take): each later use
    # of it asks their consent too (refused and audited by `authorize` when there is none; the run is in their record)
    also = [authorize(ws, performer, use, production, command=f"{command} (performance of {performer})")
            for performer in sorted({p for e in found for p in e.performers} - {actor_id})]
    return gated(ws, actor_id, use, production, command=command, inputs=inputs, likeness=found, outputs=outputs,
                 also=also)


# --- work checked elsewhere: a batch worker (doppel.batch) runs a command under the driver's authorisation ---------
_PREAUTHORIZED: contextvars.ContextVar = contextvars.ContextVar("doppel_preauthorized", default=None)


@contextlib.contextmanager
def preauthorized(auth: Authorization, inputs: Sequence[str | os.PathLike],
                  more: Sequence[tuple[Authorization, Sequence[str | os.PathLike]]] = (), grant=None
                  ) -> Iterator[list[GatedRun]]:
    """Inside the block, `gate_from_cli` resolves, checks and registers nothing: it yields a `GatedRun` under
    ``auth``, which a caller that checked the consent itself (the batch driver: a Ray worker must never write the
    workspace index) registers later. The command must ask for ``auth``'s use on exactly ``inputs`` (the inputs
    the caller checked), else ConsentError. ``more``: further (authorisation, inputs) pairs for a command that
    passes several gates (`doppel swap`: the double's actor and the plate's performer); each gate the command
    opens takes the first unused pair with its use and inputs. Yields the list of runs made, whose ``outputs``
    the caller registers. grant: the `assets.disclosure.DisclosureGrant` the caller made for the task (the runs'
    imagery is signed and marked under it, as in the workspace); None: written undisclosed (no workspace).
    """
    runs: list[GatedRun] = []
    pending = [(a, {Path(i).resolve() for i in ins}) for a, ins in [(auth, inputs), *more]]
    token = _PREAUTHORIZED.set((pending, runs, grant))
    try:
        yield runs
    finally:
        _PREAUTHORIZED.reset(token)


def is_preauthorized() -> bool:
    """Whether this runs under a batch driver's authorisation (`preauthorized`): the workspace is not opened."""
    return _PREAUTHORIZED.get() is not None


def _preauthorized_run(use: Use | str, command: str, inputs: Sequence[str | os.PathLike]):
    pending, runs, grant = _PREAUTHORIZED.get()
    asked = {Path(i).resolve() for i in inputs}
    for k, (auth, checked) in enumerate(pending):
        if parse_use(use) == auth.use and asked == checked:
            pending.pop(k)
            run = GatedRun(None, auth, command, tuple(Path(i) for i in inputs), disclosure_grant=grant)
            runs.append(run)
            return _owned(run)
    checked_text = "; ".join(f"{a.use.value} on {sorted(map(str, c))}" for a, c in pending) or "nothing more"
    raise ConsentError(f"{command}: asks for use {parse_use(use).value} on {sorted(map(str, asked))}, but the "
                       f"driver checked {checked_text}; refusing")


@contextlib.contextmanager
def _owned(run: GatedRun) -> Iterator[GatedRun]:
    """A batch worker's run: its checkpoints record the driver's consent (`core.leftovers.owned_by`)."""
    with owned_by(run.auth.consent_id, run.auth.actor_id):
        yield run


def _audit_refusal(ws: Workspace, command: str, actor: str | None, use: Use | str, production: str | None,
                   refusal: Exception, found: Sequence[InputEvidence] = ()) -> None:
    """Append a ``gate.refused`` record: who asked for what, why it was refused, the inputs' hashes."""
    inputs = [{"path": workspace_relative(ws, e.path), "sha256": e.content.sha256} for e in found]
    with ws.write() as con:
        audit.append(con, {"action": "gate.refused", "command": command, "actor": actor,
                           "use": str(use.value if isinstance(use, Use) else use), "production": production,
                           "consent": None, "detail": {"reason": str(refusal), "inputs": inputs}})


# --- registering a pipeline run's stage folders (used by `doppel demo --workspace`) -----------------------
STAGE_USES = {"virtual_actor": Use.SCAN, "capture": Use.SCAN, "landmarks": Use.SCAN, "fit": Use.FIT,
              "rig": Use.RIG, "retarget": Use.RETARGET, "animation": Use.RETARGET, "export": Use.EXPORT,
              "render": Use.RENDER, "face_replace": Use.FACE_REPLACE, "swap": Use.FACE_REPLACE,
              "synthetic_plate": Use.SCAN}
STAGE_KINDS = {"virtual_actor": "capture", "synthetic_capture": "capture", "synthetic_plate": "capture",
               "capture_ingest": "landmarks", "retarget": "animation", "face_replace": "swap"}


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
