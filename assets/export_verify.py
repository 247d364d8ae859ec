"""`doppel verify` for 3D exports (FBX, USD, glTF): whose double a file is, and whether it is what was exported.

An export made in a workspace carries content credentials in a sidecar ``FILE.c2pa`` (C2PA embeds in none of
these formats; the sidecar binds the file's bytes by a data hash, so any change makes it invalid), and no
watermark (a watermark lives in pixels). It also carries two things a check can read:

* the provenance `doppel export` writes into the format's own metadata (`assets.provenance`: a glTF's
  ``asset.extras.doppel``, a USD layer's ``customLayerData["doppel"]``, an FBX's ``doppel_*`` user properties,
  read by Blender's own FBX parser in the Blender worker): the actor, the consent, the rig's hash, the Doppel
  that wrote it;
* in a workspace, the file's SHA-256 in the index when a gated export registered it (`assets.content_index`):
  then the file is byte for byte what was exported, and the asset gives the production, use and consent.

The consent's status today comes from the registered asset, else from the consent the provenance names when
this workspace holds it. The provenance is plain metadata that anyone can edit: the signed sidecar and the
registered hash tie a file to its record. A file is *invalid* when it cannot be read as its format, or its
sidecar's credentials are invalid (the file edited after signing).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assets.consent import consent_status
from assets.content_credentials import CredentialsReport
from assets.workspace import VIRTUAL_ACTOR_ID, Workspace
from core.errors import DoppelError
from core.group_sharing import unreadable_reason

EXPORT_SUFFIXES = (".fbx", ".glb", ".gltf", ".usd", ".usda", ".usdc", ".usdz", ".abc")
_FBX_BINARY_MAGIC = b"Kaydara FBX Binary"
# An ASCII FBX's user property: P: "doppel_actor_id", "KString", "", "A+U", "jane-doe"
_FBX_ASCII_PROPERTY = re.compile(rb'P:\s*"doppel_(\w+)",\s*"KString",\s*"[^"]*",\s*"[^"]*",\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ExportRecord:
    """The workspace's record of an export: the registered asset its bytes match (``asset_id``, None when they
    match none), or the consent its provenance names; the consent's status today."""

    source: str                      # "content hash" (the file as registered) or "provenance" (its metadata)
    actor: str | None
    consent: str | None
    consent_status: str
    asset_id: str | None = None
    kind: str | None = None
    production: str | None = None
    use: str | None = None
    audit_seq: int | None = None


@dataclass(frozen=True)
class ExportReport:
    path: str
    format: str                      # fbx, glb, gltf, usd
    provenance: dict[str, Any] | None
    record: ExportRecord | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    error: str = ""                  # the file could not be read as its format
    c2pa: CredentialsReport | None = None      # its sidecar's content credentials (state "absent" without one)

    @property
    def invalid(self) -> bool:
        return bool(self.error) or (self.c2pa is not None and self.c2pa.state == "invalid")

    def as_dict(self) -> dict:
        return {**asdict(self), "kind": "export", "invalid": self.invalid}


def is_export(path: str | Path) -> bool:
    return Path(path).suffix.lower() in EXPORT_SUFFIXES


def read_export_provenance(path: str | Path) -> dict[str, Any] | None:
    """The ``doppel`` provenance dict ``path`` (.fbx, .glb, .gltf, .usd/.usda/.usdc/.usdz, .abc) carries, or None
    when it carries none. ValueError (one line) when the file cannot be read as its format."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".glb", ".gltf"):
            return _gltf_provenance(path)
        if suffix in (".usd", ".usda", ".usdc", ".usdz"):
            return _usd_provenance(path)
        if suffix == ".fbx":
            return _fbx_provenance(path)
        if suffix == ".abc":
            return _alembic_provenance(path)
    except (OSError, ValueError, DoppelError) as e:       # UnicodeDecodeError and ExportError among them
        why = str(e).removeprefix(f"{path}: ")
        raise ValueError(f"{path}: not a readable {suffix.lstrip('.').upper()} file ({why})") from None
    raise ValueError(f"{path}: not a 3D export ({', '.join(EXPORT_SUFFIXES)})")


def _gltf_provenance(path: Path) -> dict | None:
    from assets.export.gltf import read_glb_json

    doc = read_glb_json(path) if path.suffix.lower() == ".glb" else json.loads(path.read_text(encoding="utf-8"))
    prov = ((doc.get("asset") or {}).get("extras") or {}).get("doppel")
    return dict(prov) if isinstance(prov, dict) else None


def _usd_provenance(path: Path) -> dict | None:
    from pxr import Tf, Usd

    try:
        stage = Usd.Stage.Open(str(path))
    except Tf.ErrorException as e:
        raise ValueError(str(e).strip().splitlines()[-1]) from None
    if stage is None:
        raise ValueError("USD could not open it")
    prov = stage.GetRootLayer().customLayerData.get("doppel")
    return dict(prov) if prov else None


def _alembic_provenance(path: Path) -> dict | None:
    """An Alembic cache's doppel_* user properties (`assets.export.alembic_read`)."""
    from assets.export.alembic_read import string_properties

    props = string_properties(path)
    return {k.removeprefix("doppel_"): v for k, v in props.items()} or None


def _fbx_provenance(path: Path) -> dict | None:
    """An FBX's doppel_* user properties (those of the first Model that has them: the exporter writes the same
    set on the armature and on the mesh). Binary FBX through Blender's parser in the worker (read ahead for many
    files at once by `prefetch_fbx`); ASCII FBX by text."""
    with open(path, "rb") as f:
        head = f.read(len(_FBX_BINARY_MAGIC))
    if head != _FBX_BINARY_MAGIC:
        text = path.read_bytes()
        if b"FBXHeaderExtension" not in text[:4096]:
            raise ValueError("neither a binary nor an ASCII FBX")
        props = {k.decode(): v.decode("utf-8", "replace").replace('\\"', '"')
                 for k, v in _FBX_ASCII_PROPERTY.findall(text)}
        return props or None
    key = _fbx_key(path)
    if key not in _FBX_READ:
        prefetch_fbx([path])
    info = _FBX_READ.pop(key)
    if "unreadable" in info:
        raise ValueError(info["unreadable"])
    return next((dict(v) for v in (info.get("objects") or {}).values() if v), None)


_FBX_READ: dict[tuple, dict] = {}        # (path, mtime, size) -> the worker's answer, until read once


def _fbx_key(path: Path) -> tuple:
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def prefetch_fbx(paths) -> None:
    """Read the user properties of every binary FBX among ``paths`` in one Blender worker (one start-up, about a
    second, instead of one per file); `read_export_provenance` then takes each answer once."""
    from assets.blender_worker import BlenderError, run_blender_tasks

    todo = []
    for p in map(Path, paths):
        if p.suffix.lower() == ".fbx" and p.is_file() and os.access(p, os.R_OK):
            with open(p, "rb") as f:
                if f.read(len(_FBX_BINARY_MAGIC)) == _FBX_BINARY_MAGIC and _fbx_key(p) not in _FBX_READ:
                    todo.append(p)
    if not todo:
        return
    try:
        results = run_blender_tasks([({"kind": "fbx_properties", "path": str(p.resolve())}, {}) for p in todo])
    except BlenderError as e:
        results = None
        why = str(e)
    for k, p in enumerate(todo):
        _FBX_READ[_fbx_key(p)] = results[k].info if results is not None else {"unreadable": why}


def verify_export(path: str | Path, ws: Workspace | None, today: _dt.date | None = None) -> ExportReport:
    """What ``path`` (a 3D export) says it is, and what ``ws`` (None: no workspace) knows of its bytes."""
    from assets.content_credentials import read_credentials
    from assets.hashing import path_sha256
    from assets.signing_keys import trust_anchor, workspace_id

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = {".usda": "usd", ".usdc": "usd", ".usdz": "usd"}.get(path.suffix.lower(), path.suffix.lower().lstrip("."))
    why = unreadable_reason(path)
    if why:
        return ExportReport(str(path), fmt, None, None, error=why)
    creds = read_credentials(path, trust_anchor(ws) if ws is not None else None)
    try:
        prov = read_export_provenance(path)
    except ValueError as e:
        return ExportReport(str(path), fmt, None, None, error=str(e), c2pa=creds)
    if ws is None:
        return ExportReport(str(path), fmt, prov, None, ("no workspace: its bytes are not checked against a "
                                                         "registered export",), c2pa=creds)
    record = _registered(ws, path_sha256(path), today)
    notes: list[str] = []
    if record is None:
        notes.append(_unregistered_note(prov, workspace_id(ws)))
        record = _named_consent(ws, prov, today)
    elif prov is not None and str(prov.get("actor_id") or "") not in ("", record.actor):
        notes.append(f"its provenance names actor {prov.get('actor_id')!r}, its registration {record.actor!r}")
    if prov is None:
        notes.append("it carries no Doppel provenance")
    return ExportReport(str(path), fmt, prov, record, tuple(notes), c2pa=creds)


def _unregistered_note(prov: dict | None, this_ws: str | None) -> str:
    """Why a file's bytes match no registered export, as far as its provenance's workspace id tells."""
    made_in = str((prov or {}).get("workspace") or "")
    if made_in and this_ws and made_in != this_ws:
        return (f"exported in another workspace (id {made_in}; this one is {this_ws}): its record is there; here "
                "its provenance is only what the file claims")
    if made_in:
        return "its bytes match no export registered here, where it was made: changed since it was exported"
    return ("its bytes match no export registered in this workspace: changed since it was exported, or exported "
            "elsewhere (its provenance is then only what the file claims)")


def _registered(ws: Workspace, sha256: str, today: _dt.date | None) -> ExportRecord | None:
    """The newest registered asset whose bytes are ``sha256`` (an output file, or a file its folder lists)."""
    from assets.content_index import matches

    with ws.read() as con:
        ids = {m.asset_id for m in matches(con, [sha256]) if m.asset_id}
        if not ids:
            return None
        q = ",".join("?" * len(ids))
        row = con.execute(f"SELECT id, kind, actor_id, consent_id, use, production, audit_seq FROM assets "
                          f"WHERE id IN ({q}) ORDER BY audit_seq DESC LIMIT 1", sorted(ids)).fetchone()
    if row is None:
        return None
    asset_id, kind, actor, consent, use, production, seq = tuple(row)
    return ExportRecord("content hash", actor, consent, consent_status(ws, actor, consent, today), asset_id,
                        kind, production, use, seq)


def _named_consent(ws: Workspace, prov: dict | None, today: _dt.date | None) -> ExportRecord | None:
    """The consent an unregistered file's provenance names, when this workspace holds it."""
    if not prov:
        return None
    actor, consent = str(prov.get("actor_id") or "") or None, str(prov.get("consent_ref") or "") or None
    if actor == VIRTUAL_ACTOR_ID:
        return ExportRecord("provenance", actor, None, consent_status(ws, actor, None, today))
    if consent is None:
        return None
    return ExportRecord("provenance", actor, consent, consent_status(ws, actor, consent, today))


def describe_export(r: ExportReport) -> list[str]:
    """Human-readable lines for one export's report (the CLI prints them)."""
    lines = [r.path]
    if r.error:
        lines.append(f"  error: {r.error}")
    c = r.c2pa
    if c is not None:
        lines.append(f"  c2pa: {c.state}" + (f" ({c.reason})" if c.reason else "")
                     + (f", signer {c.signer}" if c.signer else ""))
    if r.error:
        return lines
    p = r.provenance
    lines.append(f"  provenance ({r.format}): actor {p.get('actor_id') or '-'}, consent {p.get('consent_ref') or '-'}, "
                 f"by Doppel {p.get('doppel_version') or '?'} on {p.get('created') or '?'}" if p
                 else f"  provenance ({r.format}): none")
    rec = r.record
    if rec is not None and rec.source == "content hash":
        lines.append(f"  registered: {rec.kind} {rec.asset_id} (audit {rec.audit_seq}), unchanged since: actor "
                     f"{rec.actor}, production {rec.production}, use {rec.use}, consent {rec.consent or '-'}: "
                     f"{rec.consent_status}")
    elif rec is not None:
        lines.append(f"  consent its provenance names: actor {rec.actor}, consent {rec.consent or '-'}: "
                     f"{rec.consent_status}")
    lines += [f"  note: {n}" for n in r.notes]
    return lines
