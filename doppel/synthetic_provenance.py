"""Proof that a capture session is synthetic: the manifest Doppel's synthetic generators write.

The consent gate treats an input as the built-in virtual actor's only by positive proof. For a capture
session that proof is ``SESSION/manifest.json`` written by `write_synthetic_session_manifest` (called once at
the end of `doppel capture synth` and of the demo's capture stage):

* ``stage`` is a Doppel synthetic generator stage (`GENERATORS`) and ``params.generator`` names that generator,
  ``params.synthetic`` is true, with the seed and settings it was made with;
* ``outputs`` lists every file of the session (every image, calibration.json) with its SHA-256, and the folder
  holds no other file: a real photo dropped into (or swapped into) a synthetic session breaks the proof;
* inside a workspace, the manifest is signed with the workspace's key (`assets.manifest_signing`), and the gate
  accepts it there only if the signature verifies.

Outside a workspace there is no secret: a hand-written JSON that copies this structure and lists the right hashes
cannot be told apart from a real one. That is why a workspace never accepts an unsigned proof.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from assets.hashing import ContentDigest
from assets.manifest_signing import ManifestKey, sign_folder
from assets.workspace import VIRTUAL_ACTOR_ID
from core.storage import MANIFEST_NAME, write_manifest

SYNTHETIC_SESSION_STAGE = "synthetic_capture"
# stage name -> the generator that alone writes it
GENERATORS = {SYNTHETIC_SESSION_STAGE: "doppel.synthetic_capture.synthesize_capture"}
SYNTHETIC_NOTE = "not required: built-in virtual actor (synthetic, no real person's likeness)"


def write_synthetic_session_manifest(session_dir: str | os.PathLike, *, seed: int, settings: dict[str, Any],
                                     key: ManifestKey | None = None) -> dict:
    """Write SESSION/manifest.json proving the session synthetic (see the module doc); sign it with ``key`` (the
    workspace's, when the session is made inside one). settings: the generator's options (cameras, size,
    frames, ...), JSON-serialisable. Returns the manifest as written."""
    session_dir = Path(session_dir)
    files = sorted(p.relative_to(session_dir).as_posix() for p in session_dir.rglob("*")
                   if p.is_file() and p.name != MANIFEST_NAME)
    if not files:
        raise FileNotFoundError(f"{session_dir}: no files to list in a synthetic session manifest")
    params = {"synthetic": True, "generator": GENERATORS[SYNTHETIC_SESSION_STAGE], "seed": int(seed),
              **settings, "actor_id": VIRTUAL_ACTOR_ID, "consent_id": SYNTHETIC_NOTE}
    manifest = write_manifest(session_dir, SYNTHETIC_SESSION_STAGE, params=params, outputs={f: f for f in files})
    return sign_folder(session_dir, key) if key is not None else manifest


def synthetic_proof_problems(manifest: dict[str, Any], content: ContentDigest) -> list[str]:
    """Why ``manifest`` (read from the folder whose content is ``content``) does not prove it synthetic; empty when
    it does, signature aside (the caller checks it inside a workspace)."""
    stage = manifest.get("stage")
    if stage not in GENERATORS:
        return [f"stage {stage!r} is not a Doppel synthetic generator's"]
    params = manifest.get("params", {})
    if params.get("synthetic") is not True or params.get("generator") != GENERATORS[stage]:
        return [f"params do not name the generator {GENERATORS[stage]}"]
    listed = {e["path"]: e["sha256"] for e in manifest.get("outputs", {}).values()}
    on_disk = {k: v for k, v in content.files.items() if k != MANIFEST_NAME}
    changed = sorted(p for p, sha in listed.items() if on_disk.get(p) != sha)
    extra = sorted(set(on_disk) - set(listed))
    problems = [f"{p} changed or missing since it was generated" for p in changed[:3]]
    problems += [f"{p} was not generated (not listed)" for p in extra[:3]]
    return problems
