"""Keyed signatures of stage manifests written inside a workspace (HMAC-SHA256 with a per-workspace secret).

Every output folder a gated command registers in a workspace gets a ``signature`` in its ``manifest.json``:

    "signature": {"alg": "hmac-sha256", "key_id": "<16 hex>", "mac": "<64 hex>"}

``mac`` is HMAC-SHA256 of the manifest's canonical JSON without the ``signature`` field, keyed by the
workspace's secret; the manifest lists every output with its SHA-256, so the signature covers the data too.
An edited manifest (its actor changed to ``virtual``, say) no longer verifies and is reported as edited.

The secret is 32 random bytes in ``WORKSPACE/.doppel-manifest-key`` (mode 0600; 0640 and the group's in a workspace
shared with a group, ``core.group_sharing``), created with the workspace (or
on first use in a workspace made before signatures existed). It is never written into a manifest, an audit
record or a log; ``key_id`` is a hash of it that only says which workspace signed.

Limits, honestly: whoever can read the key file can sign anything (the key protects against edits by people and
tools without access to it, not against the workspace's owner); outside a workspace there is no secret at all,
so there a manifest's claims are taken as written and a forged JSON cannot be told apart from a real one.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import DoppelError
from core.group_sharing import secret_mode, secret_mode_problem
from core.storage import MANIFEST_NAME, atomic_write_json, read_manifest

KEY_NAME = ".doppel-manifest-key"
SIGNATURE_FIELD = "signature"
ALGORITHM = "hmac-sha256"
_KEY_BYTES = 32


class SigningKeyError(DoppelError):
    """The workspace's signing key is unreadable, of the wrong size, or readable by others."""


@dataclass(frozen=True)
class ManifestKey:
    key_id: str                        # 16 hex digits naming the key (a hash of it; reveals nothing)
    secret: bytes = b""                # 32 bytes; never logged, never written anywhere but the key file

    def __repr__(self) -> str:  # keep the secret out of tracebacks and logs
        return f"ManifestKey(key_id={self.key_id!r})"


class SignatureStatus(enum.Enum):
    VALID = "valid"              # signed with this key, unchanged since
    EDITED = "edited"            # signed with this key, changed since (or the signature itself was tampered with)
    OTHER_KEY = "other_key"      # signed in another workspace: cannot be checked here
    UNSIGNED = "unsigned"        # written outside a workspace (or before signatures existed)


def _key_id(secret: bytes) -> str:
    return hashlib.sha256(b"doppel-manifest-key-id\n" + secret).hexdigest()[:16]


def load_key(root: str | os.PathLike, create: bool = True) -> ManifestKey:
    """The signing key of the workspace at ``root``; created (0600, or 0640 when shared) when missing and ``create``.

    Raises SigningKeyError naming the key file when it is of the wrong size or readable by more than the owner (in
    a shared workspace: than the owner and the workspace's group).
    """
    path = Path(root) / KEY_NAME
    if not path.exists():
        if not create:
            raise SigningKeyError(f"{path}: the workspace's manifest signing key is missing")
        _create_key(path)
    problem = secret_mode_problem(path, root)
    if problem:
        raise SigningKeyError(f"{path}: the manifest signing key is {problem}")
    try:
        secret = path.read_bytes()
    except PermissionError:
        raise SigningKeyError(f"{path}: this user cannot read the workspace's manifest signing key, which is its "
                              f"owner's alone (mode {path.stat().st_mode & 0o777:o}): a team shares a workspace with "
                              "`doppel init DIR --group GROUP`, run by its owner") from None
    if len(secret) != _KEY_BYTES:
        raise SigningKeyError(f"{path}: {len(secret)} bytes, expected {_KEY_BYTES} (the key file was damaged; "
                              "manifests signed with it can no longer be checked)")
    return ManifestKey(_key_id(secret), secret)


def _create_key(path: Path) -> None:
    """Write a fresh key atomically without ever replacing one (two processes may race here)."""
    fd, tmp = tempfile.mkstemp(prefix=".key.", dir=path.parent)  # mkstemp: mode 0600
    try:
        os.chmod(tmp, secret_mode(path.parent))         # 0640 in a shared workspace: every member signs
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(_KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: keep theirs
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _canonical(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def mac_of(manifest: dict[str, Any], key: ManifestKey) -> str:
    return hmac.new(key.secret, _canonical(manifest), hashlib.sha256).hexdigest()


def signed(manifest: dict[str, Any], key: ManifestKey) -> dict[str, Any]:
    """A copy of ``manifest`` with its signature (any previous one replaced)."""
    out = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    out[SIGNATURE_FIELD] = {"alg": ALGORITHM, "key_id": key.key_id, "mac": mac_of(out, key)}
    return out


def sign_folder(folder: str | os.PathLike, key: ManifestKey) -> dict[str, Any]:
    """Sign ``folder/manifest.json`` in place (atomic rewrite); returns the signed manifest."""
    manifest = signed(read_manifest(folder), key)
    atomic_write_json(Path(folder) / MANIFEST_NAME, manifest)
    return manifest


def check_signature(manifest: dict[str, Any], key: ManifestKey) -> SignatureStatus:
    """Whether ``manifest`` (as read) carries a valid signature of ``key``."""
    sig = manifest.get(SIGNATURE_FIELD)
    if sig is None:
        return SignatureStatus.UNSIGNED
    if not isinstance(sig, dict) or sig.get("alg") != ALGORITHM or not isinstance(sig.get("mac"), str):
        return SignatureStatus.EDITED
    if sig.get("key_id") != key.key_id:
        return SignatureStatus.OTHER_KEY
    ok = hmac.compare_digest(sig["mac"], mac_of(manifest, key))
    return SignatureStatus.VALID if ok else SignatureStatus.EDITED
