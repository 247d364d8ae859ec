"""Proof that a capture session is synthetic: the manifest Doppel's synthetic generators write.

The consent gate treats an input as the built-in virtual actor's only by positive proof. For a capture
session that proof is ``SESSION/manifest.json`` written by `write_synthetic_session_manifest` (called once at
the end of `doppel capture synth` and of the demo's capture stage; a `doppel capture plate` plate folder is proven
the same way by `write_synthetic_plate_manifests`):

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
SYNTHETIC_PLATE_STAGE = "synthetic_plate"
# stage name -> the generator that alone writes it
GENERATORS = {SYNTHETIC_SESSION_STAGE: "doppel.synthetic_capture.synthesize_capture",
              SYNTHETIC_PLATE_STAGE: "doppel.synthetic_plate.render_plate"}
SYNTHETIC_NOTE = "not required: built-in virtual actor (synthetic, no real person's likeness)"


def write_synthetic_session_manifest(session_dir: str | os.PathLike, *, seed: int, settings: dict[str, Any],
                                     key: ManifestKey | None = None) -> dict:
    """Write SESSION/manifest.json proving the session synthetic (see the module doc); sign it with ``key`` (the
    workspace's, when the session is made inside one). settings: the generator's options (cameras, size,
    frames, ...), JSON-serialisable. Returns the manifest as written."""
    return _write_proof(Path(session_dir), SYNTHETIC_SESSION_STAGE, seed, settings, key)


def write_synthetic_plate_manifests(plate_dir: str | os.PathLike, *, seed: int, settings: dict[str, Any],
                                    key: ManifestKey | None = None) -> dict:
    """Prove a `doppel capture plate` plate folder (plate.mp4, frames/, Cycles' frames_exr/, cameras.json)
    synthetic, as a session is: PLATE/frames/manifest.json (and frames_exr's) lists the frames (a frame folder given
    as a plate proves itself), then PLATE/manifest.json lists every file (plate.mp4 given alone is proven by its
    listed hash). Returns the folder's manifest."""
    plate_dir = Path(plate_dir)
    for frames in ("frames", "frames_exr"):
        if (plate_dir / frames).is_dir():
            _write_proof(plate_dir / frames, SYNTHETIC_PLATE_STAGE, seed, settings, key)
    return _write_proof(plate_dir, SYNTHETIC_PLATE_STAGE, seed, settings, key)


def _write_proof(folder: Path, stage: str, seed: int, settings: dict[str, Any], key: ManifestKey | None) -> dict:
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST_NAME)
    if not files:
        raise FileNotFoundError(f"{folder}: no files to list in a synthetic {stage} manifest")
    params = {"synthetic": True, "generator": GENERATORS[stage], "seed": int(seed),
              **settings, "actor_id": VIRTUAL_ACTOR_ID, "consent_id": SYNTHETIC_NOTE}
    manifest = write_manifest(folder, stage, params=params, outputs={f: f for f in files})
    return sign_folder(folder, key) if key is not None else manifest


def synthetic_proof_problems(manifest: dict[str, Any], content: ContentDigest) -> list[str]:
    """Why ``manifest`` (read from the folder whose content is ``content``) does not prove it synthetic; empty when
    it does, signature aside (the caller checks it inside a workspace)."""
    stage = manifest.get("stage")
    if stage not in GENERATORS:
        return [f"stage {stage!r} is not a Doppel synthetic generator's"]
    params = manifest.get("params", {})
    if params.get("synthetic") is not True or params.get("generator") != GENERATORS[stage]:
        return [f"params do not name the generator {GENERATORS[stage]}"]
    if not content.is_dir:          # one file of the folder: its listed hash was matched (`doppel.likeness`)
        return []
    listed = {e["path"]: e["sha256"] for e in manifest.get("outputs", {}).values()}
    on_disk = {k: v for k, v in content.files.items() if k != MANIFEST_NAME}
    changed = sorted(p for p, sha in listed.items() if on_disk.get(p) != sha)
    extra = sorted(set(on_disk) - set(listed))
    problems = [f"{p} changed or missing since it was generated" for p in changed[:3]]
    problems += [f"{p} was not generated (not listed)" for p in extra[:3]]
    return problems
