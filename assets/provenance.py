"""Provenance of an exported asset: whose double it is, under which consent, made from what, by which Doppel.

Every exporter writes `Provenance.as_dict()` into the format's own metadata (FBX custom properties, USD
customLayerData, glTF ``asset.extras``) under the key ``doppel``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def doppel_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("doppel")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


@dataclass(frozen=True)
class Provenance:
    """actor_id: the actor the double belongs to ("unknown" when not recorded); consent_ref: the consent record's
    id or reference, or None when there is none; source: what the rig was built from (model, capture, fit);
    rig_sha256: content hash of the rig file; animation: the animation's source (file) or None; production and
    workspace: where the export was registered (None outside a workspace)."""

    actor_id: str = "unknown"
    consent_ref: str | None = None
    source: str = ""
    rig_sha256: str | None = None
    animation: str | None = None
    production: str | None = None      # the production the export was made for (its consent's)
    workspace: str | None = None       # the id of the workspace that registered it (assets.signing_keys)
    doppel_version: str = field(default_factory=doppel_version)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable; None values are written as empty strings (formats without null)."""
        return {k: ("" if v is None else v) for k, v in asdict(self).items()}


def provenance_from_rig_dir(rig_dir: str | Path, actor_id: str | None = None, consent_ref: str | None = None,
                            animation: str | None = None, production: str | None = None,
                            workspace: str | None = None) -> Provenance:
    """Provenance of a rig folder (its manifest.json): the actor id and consent reference recorded in the
    manifest's params (``actor_id``, ``consent_id`` / ``consent``) unless given; the source model and seed."""
    from core.storage import read_manifest

    manifest = read_manifest(rig_dir)
    params = manifest.get("params", {})
    src = params.get("source") if isinstance(params.get("source"), dict) else {}
    model = params.get("model") or src.get("model") or "unknown"
    parts = [f"model={model}"]
    for key in ("anny_rig", "seed", "capture", "fit"):
        if params.get(key) is not None:
            parts.append(f"{key}={params[key]}")
    inputs = manifest.get("inputs", {})
    parts += [f"{k}={v.get('sha256', '')[:16]}" for k, v in inputs.items() if isinstance(v, dict)]
    rig_entry = manifest.get("outputs", {}).get("rig", {})
    return Provenance(
        actor_id=actor_id or str(params.get("actor_id") or "unknown"),
        consent_ref=consent_ref or params.get("consent_id") or params.get("consent"),
        source="rig " + str(Path(rig_dir).name) + " (" + ", ".join(parts) + ")",
        rig_sha256=rig_entry.get("sha256"), animation=animation, production=production, workspace=workspace)
