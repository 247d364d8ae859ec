"""Whose likeness a command works on, decided from its inputs; never a silent fallback.

Each input a gated command reads as someone's likeness (a capture session, landmarks, a fit, a rig) is
inspected once (`inspect_input`) for three kinds of evidence:

1. content identity (inside a workspace): the actors its hashes are registered to (`assets.content_index`),
   whatever its manifest says, or whether it still has one;
2. its manifest: the actor it records (``params.actor_id``, else ``consent.actor``); inside a workspace its
   keyed signature must verify (`assets.manifest_signing`), or it is reported as edited and refused;
3. positive proof that it is synthetic: a Doppel synthetic generator's manifest (`doppel.synthetic_provenance`),
   or a stage manifest recording the virtual actor, with every listed output's hash matching the files on disk
   and, inside a workspace, a valid signature. Outside a workspace there is no secret, so a forged JSON cannot
   be told apart; that is why workspace runs never accept unsigned proof.

`resolve_actor` then decides (rules in its docstring). Anything it cannot read is a refusal naming the file and
the fix; an input without provenance is never the virtual actor.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets.consent import ConsentError
from assets.content_index import matches
from assets.hashing import ContentDigest, digest
from assets.lineage import PERFORMANCE_KIND
from assets.manifest_signing import ManifestKey, SignatureStatus, check_signature
from assets.workspace import UNKNOWN_ACTOR_ID, VIRTUAL_ACTOR_ID, Workspace
from core.errors import ManifestError
from core.storage import MANIFEST_NAME, read_manifest
from doppel.synthetic_provenance import GENERATORS, synthetic_proof_problems

# Files only a Doppel stage writes (core.stage_folders' marker among them): a folder holding one of them but no
# manifest.json lost its manifest.
STAGE_MARKERS = ("rig.npz", "animation.npz", "landmarks.npz", "triangulated.json", "fit_mesh.ply",
                 ".doppel_stage.json")


@dataclass(frozen=True)
class InputEvidence:
    """What one input says about whose likeness it is."""

    path: Path
    required: bool                 # a likeness input: without provenance it needs --actor (in a workspace)
    content: ContentDigest         # its hashes (computed once, reused for the audit record)
    claimed: str | None            # the actor its manifest records (None: none, or 'unknown')
    proven_virtual: bool           # positive proof that it is synthetic (see the module doc)
    registered: dict[str, str]     # actor -> where its content is registered (asset id or path)
    why_unproven: str              # why it carries no proof or actor (for the refusal line), "" when it does
    problem: str | None = None     # a refusal: unreadable or edited manifest, stage folder without manifest
    performers: frozenset[str] = frozenset()   # real actors whose performance it holds (assets.lineage's kind)

    @property
    def real_actors(self) -> set[str]:
        """Real actors this input is attributed to (by content or by its manifest)."""
        found = {a for a in self.registered if a != VIRTUAL_ACTOR_ID}
        if self.claimed and self.claimed != VIRTUAL_ACTOR_ID:
            found.add(self.claimed)
        return found

    @property
    def virtual_ok(self) -> bool:
        """Proven synthetic, or registered only to the virtual actor (which needed proof when registered)."""
        return self.proven_virtual or set(self.registered) == {VIRTUAL_ACTOR_ID}


def inspect_input(path: str | os.PathLike, *, required: bool, ws: Workspace | None,
                  key: ManifestKey | None) -> InputEvidence:
    """Collect the evidence of one input (file or folder). FileNotFoundError naming it when it is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: input not found")
    content = digest(path)
    registered, performers = _registered(ws, content)
    folder = path if content.is_dir else path.parent
    base = {"path": path, "required": required, "content": content, "registered": registered,
            "performers": performers}
    if not os.path.lexists(folder / MANIFEST_NAME):
        return InputEvidence(**base, claimed=None, proven_virtual=False, why_unproven="it has no manifest",
                             problem=_lost_manifest(path, content, registered) if required else None)
    try:
        manifest = read_manifest(folder)
    except ManifestError as e:
        return InputEvidence(**base, claimed=None, proven_virtual=False, why_unproven="", problem=str(e))
    status = check_signature(manifest, key) if key is not None else None
    if status is SignatureStatus.EDITED:
        owner = f" (its content is registered to {_names(registered)})" if registered else ""
        return InputEvidence(**base, claimed=None, proven_virtual=False, why_unproven="", problem=(
            f"{folder / MANIFEST_NAME}: edited after Doppel wrote it (its workspace signature does not verify)"
            f"{owner}; an edited manifest is never trusted: re-run the stage that wrote {folder}"))
    described = _describes(manifest, content, path)
    claimed, claim_problem = _claimed_actor(manifest, folder) if described else (None, None)
    if claim_problem:
        return InputEvidence(**base, claimed=None, proven_virtual=False, why_unproven="", problem=claim_problem)
    why = _why_not_proven(manifest, content, status, described, claimed)
    return InputEvidence(**base, claimed=claimed, proven_virtual=not why, why_unproven=why)


def _registered(ws: Workspace | None, content: ContentDigest) -> tuple[dict[str, str], frozenset[str]]:
    """(actor -> where ``content`` is registered to them, the real actors it is registered to as a performance)."""
    if ws is None:
        return {}, frozenset()
    hashes = {content.sha256, content.data_sha256, *(v for k, v in content.files.items() if k != MANIFEST_NAME)}
    with ws.read() as con:
        found = matches(con, hashes)
        ids = sorted({m.asset_id for m in found if m.asset_id})
        performances = {r[0] for r in con.execute(
            f"SELECT id FROM assets WHERE kind=? AND id IN ({','.join('?' * len(ids))})", [PERFORMANCE_KIND, *ids])}
    out: dict[str, str] = {}
    for m in found:
        if m.asset_id not in performances:   # a performer's part: found by their purge, not whose likeness it is
            out.setdefault(m.actor_id, m.asset_id or m.path)
    performers = frozenset(m.actor_id for m in found if m.asset_id in performances and m.actor_id != VIRTUAL_ACTOR_ID)
    return out, performers


def _names(registered: dict[str, str]) -> str:
    return ", ".join(f"actor {a!r} (asset {where})" for a, where in sorted(registered.items()))


def _lost_manifest(path: Path, content: ContentDigest, registered: dict[str, str]) -> str | None:
    """A refusal when a folder holds a stage's output but no manifest (and its content is not registered)."""
    if not content.is_dir or registered:
        return None
    marker = next((m for m in STAGE_MARKERS if m in content.files), None)
    if marker is None:
        return None
    return (f"{path / MANIFEST_NAME}: missing, yet {path} holds a Doppel stage's output ({marker}); whose likeness "
            "it is cannot be told: restore the manifest or re-run the stage that wrote the folder")


def _describes(manifest: dict[str, Any], content: ContentDigest, path: Path) -> bool:
    """Whether the manifest speaks for this input: always for its folder; for a file, only when it lists the file
    with the same hash."""
    if content.is_dir:
        return True
    return any(e["path"] == path.name and e["sha256"] == content.sha256 for e in manifest.get("outputs", {}).values())


def _claimed_actor(manifest: dict[str, Any], folder: Path) -> tuple[str | None, str | None]:
    """(actor the manifest records or None, a problem when the field is malformed)."""
    actor = manifest.get("params", {}).get("actor_id")
    if actor is None and isinstance(manifest.get("consent"), dict):
        actor = manifest["consent"].get("actor")
    if actor is None or actor == "":
        return None, None
    if not isinstance(actor, str):
        return None, (f"{folder / MANIFEST_NAME}: the recorded actor must be a string, got {type(actor).__name__}; "
                      "restore the manifest or re-run the stage that wrote the folder")
    return (None if actor == UNKNOWN_ACTOR_ID else actor), None


def _why_not_proven(manifest: dict[str, Any], content: ContentDigest, status: SignatureStatus | None,
                    described: bool, claimed: str | None) -> str:
    """"" when the manifest proves the input synthetic / the virtual actor's, else a few words saying why not."""
    if not described:
        return f"the manifest beside it does not list {content.path.name} with this content"
    if manifest.get("stage") in GENERATORS:
        problems = synthetic_proof_problems(manifest, content)
        if problems:
            return "; ".join(problems)
    elif claimed != VIRTUAL_ACTOR_ID:
        return "its manifest records no actor" if claimed is None else f"its manifest records actor {claimed!r}"
    else:
        listed = {e["path"]: e["sha256"] for e in manifest.get("outputs", {}).values()}
        changed = sorted(p for p, sha in listed.items() if content.is_dir and content.files.get(p) != sha)
        if changed:
            return f"{changed[0]} changed since its manifest was written"
    if status is SignatureStatus.UNSIGNED:
        return "its manifest was written outside this workspace (unsigned), so it cannot prove anything here"
    if status is SignatureStatus.OTHER_KEY:
        return "its manifest was signed in another workspace, so it cannot be checked here"
    return ""


def resolve_actor(explicit: str | None, evidence: Sequence[InputEvidence], *, command: str,
                  in_workspace: bool, actor_option: str = "--actor") -> str:
    """The actor a command works on, or ConsentError (one line; the caller audits it). In order:

    * an input whose manifest is unreadable or edited, or a stage folder without its manifest: refused
      (``--actor`` cannot override it);
    * inputs attributed (by content or manifest) to two real actors: refused;
    * ``--actor A``: must agree with every real actor the inputs are attributed to; ``--actor virtual`` needs
      every likeness input proven synthetic;
    * else the one real actor the inputs are attributed to; else the virtual actor when every likeness input is
      proven synthetic (or there is none: the command generates the double itself);
    * else, in a workspace: refused (give --actor); outside one: ``unknown`` (never virtual).
    actor_option: the option that names the actor, as the refusal tells the user to give it (e.g. ``--plate-actor``).
    """
    for e in evidence:
        if e.problem:
            raise ConsentError(f"{command}: refused: {e.problem}")
    owners: dict[str, InputEvidence] = {}
    for e in evidence:
        for a in sorted(e.real_actors):
            owners.setdefault(a, e)
    if len(owners) > 1:
        parts = ", ".join(f"{e.path} is {a!r}'s" for a, e in sorted(owners.items()))
        raise ConsentError(f"{command}: refused: the inputs come from several actors ({parts}); process each "
                           "actor's inputs separately")
    unproven = [e for e in evidence if e.required and not e.virtual_ok and not e.real_actors]
    if explicit:
        return _check_explicit(explicit, owners, unproven, command, in_workspace)
    if owners:
        return next(iter(owners))
    if not unproven:
        return VIRTUAL_ACTOR_ID
    if in_workspace:
        e = unproven[0]
        raise ConsentError(f"{command}: refused: {e.path} carries no provenance ({e.why_unproven}), so whose likeness "
                           f"it is cannot be told: give {actor_option} ACTOR (see `doppel actor list`); synthetic "
                           "inputs prove themselves when made in this workspace (`doppel capture synth`, `capture "
                           "plate`, `demo --workspace`)")
    return UNKNOWN_ACTOR_ID


def _check_explicit(explicit: str, owners: dict[str, InputEvidence], unproven: list[InputEvidence], command: str,
                    in_workspace: bool) -> str:
    if owners and explicit not in owners:
        actor, e = next(iter(owners.items()))
        how = "its content is registered to them" if actor in e.registered else "its manifest records them"
        raise ConsentError(f"{command}: refused: the inputs were made from actor {actor!r}'s likeness, not "
                           f"{explicit!r} ({e.path}: {how}); give --actor {actor} or leave --actor out")
    if explicit == VIRTUAL_ACTOR_ID and unproven:
        e = unproven[0]
        raise ConsentError(f"{command}: refused: --actor {VIRTUAL_ACTOR_ID} needs proof that {e.path} is synthetic "
                           f"({e.why_unproven}); give the actor whose likeness it is, or make the input with "
                           "`doppel capture synth`" + (" in this workspace" if in_workspace else ""))
    if explicit == UNKNOWN_ACTOR_ID and in_workspace:
        raise ConsentError(f"{command}: refused: '{UNKNOWN_ACTOR_ID}' is not an actor in a workspace; give the "
                           "actor whose likeness this is (see `doppel actor list`)")
    return explicit
