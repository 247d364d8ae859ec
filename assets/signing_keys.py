"""A workspace's signing identity for content credentials (C2PA) and its watermark key.

    WORKSPACE/.doppel-keys/
      trust-anchor.pem     the root certificate verifiers trust (the workspace's trust anchor; public)
      signer-chain.pem     signer certificate + its chain up to the root (public; goes into every manifest)
      signer.key           the signer's private key, PKCS#8 PEM, mode 0600 (0640 in a shared workspace)
      root.key             the generated root's private key, mode 0600 / 0640 (absent for an imported certificate)
      identity.json        organisation, certificate fingerprints and validity (no secrets)

`init_keys` (``doppel keys init``) makes an ECDSA P-256 root (CA, keyCertSign) and a signer certificate (not a
CA, digitalSignature, emailProtection extended key usage, subject and authority key identifiers: the chain
c2pa-python 0.38 validates), or imports a real certificate chain and key (``--cert`` / ``--key``). The index
records the anchor's SHA-256 (meta ``trust_anchor_sha256``) and an audit record ``keys.init``.

The watermark key is derived from the workspace's manifest secret (`assets.manifest_signing`), so every workspace
has one without another file; the workspace id (the payload's workspace tag hashes it) is that secret's key id.
Private keys are never written into manifests, audit records or logs.

In a workspace shared with a group (`assets.workspace_sharing`) the secrets are the group's: every member signs in
the workspace's name (``core.group_sharing``: readable by that group, never by others). A reviewer who may read the
workspace but not its keys (``.doppel-keys`` and the manifest secret are the owner's, or the group's, alone) still
verifies against the trust anchor and finds the records a file points to: the index also keeps the anchor and the
workspace id, both public (`record_public_facts`, by every gated command of a writer). Only the watermark, whose
key is secret, is then not read.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assets.manifest_signing import KEY_NAME
from assets.workspace import Workspace
from core.errors import DoppelError
from core.group_sharing import lock_mode, secret_folder_mode, secret_mode, secret_mode_problem, sharing_gid
from core.storage import atomic_write_bytes, atomic_write_text

KEYS_DIR = ".doppel-keys"
ANCHOR_NAME = "trust-anchor.pem"
CHAIN_NAME = "signer-chain.pem"
SIGNER_KEY_NAME = "signer.key"
ROOT_KEY_NAME = "root.key"
IDENTITY_NAME = "identity.json"
LOCK_NAME = ".lock"          # keys_lock's file
KEYS_LOCK_TIMEOUT_S = 120.0  # making an identity takes well under a second
ANCHOR_META = "trust_anchor_sha256"
ANCHOR_PEM_META = "trust_anchor_pem"   # the anchor itself (public), for users who cannot read .doppel-keys
WORKSPACE_ID_META = "workspace_id"     # workspace_id (public), for users who cannot read the manifest secret
ROOT_DAYS = 3650            # validity of a generated root certificate
SIGNER_DAYS = 730           # validity of a generated signer certificate


class SigningIdentityError(DoppelError):
    """The workspace's signing identity is missing, expired, unreadable or not a valid C2PA chain."""


@dataclass(frozen=True)
class SigningIdentity:
    """What signing needs: the chain (signer first) and key as PEM, the trust anchor, the certificate's end."""

    chain_pem: bytes
    key_pem: bytes
    anchor_pem: bytes
    org: str
    not_after: _dt.datetime

    def __repr__(self) -> str:  # keep the private key out of tracebacks and logs
        return f"SigningIdentity(org={self.org!r}, not_after={self.not_after.isoformat()})"


def keys_dir(ws: Workspace) -> Path:
    return ws.root / KEYS_DIR


def workspace_id(ws: Workspace) -> str | None:
    """The workspace's id: the key id of its manifest secret (16 hex digits; public). For a user who cannot read
    the secret, the id the index keeps (None when it keeps none yet)."""
    if _secret_unreadable(ws):
        return _meta(ws, WORKSPACE_ID_META)[WORKSPACE_ID_META]
    return ws.manifest_key().key_id


def watermark_secret(ws: Workspace) -> bytes | None:
    """32 bytes derived from the workspace's manifest secret; keys the invisible watermark. None for a reader
    who cannot read the secret (a read-only user)."""
    if _secret_unreadable(ws):
        return None
    return hmac.new(ws.manifest_key().secret, b"doppel-watermark-secret-v1", hashlib.sha256).digest()


def record_public_facts(ws: Workspace) -> None:
    """Keep the workspace id and the trust anchor (both public) in the index, for readers who cannot read the keys;
    written once (by a user who can write the workspace), then only read."""
    facts = {WORKSPACE_ID_META: ws.manifest_key().key_id}
    path = keys_dir(ws) / ANCHOR_NAME
    if path.is_file():
        facts[ANCHOR_PEM_META] = path.read_text(encoding="ascii")
    if _meta(ws, *facts) == facts:
        return
    with ws.write() as con:
        for k, v in facts.items():
            _set_meta(con, k, v)


def _secret_unreadable(ws: Workspace) -> bool:
    """True for a reader who may not read the workspace's manifest secret (a read-only user)."""
    return ws.read_only and not os.access(ws.root / KEY_NAME, os.R_OK)


def _meta(ws: Workspace, *keys: str) -> dict[str, str | None]:
    """The index's meta values of ``keys`` (None where there is none), in one read."""
    with ws.read() as con:
        rows = dict(con.execute(f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(keys))})", keys))
    return {k: rows.get(k) for k in keys}


def _set_meta(con, key: str, value: str) -> None:
    con.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value))


def _name(cn: str, org: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def _key_usage(sign: bool):
    from cryptography import x509

    return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=not sign, crl_sign=not sign,
                         encipher_only=False, decipher_only=False)


def generate_chain(org: str, now: _dt.datetime | None = None, signer_days: int = SIGNER_DAYS,
                   ) -> tuple[bytes, bytes, bytes, bytes]:
    """A new ECDSA P-256 root and signer for ``org`` -> (anchor PEM, chain PEM (signer + root), signer key PEM,
    root key PEM). ``now`` and ``signer_days`` exist for tests (an expired certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = now or _dt.datetime.now(_dt.UTC)
    root_key, signer_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"{org} Doppel root", org)
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(hours=1)).not_valid_after(now + _dt.timedelta(days=ROOT_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(sign=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    signer = (x509.CertificateBuilder().subject_name(_name(f"{org} Doppel signer", org)).issuer_name(root_name)
              .public_key(signer_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - _dt.timedelta(hours=1)).not_valid_after(now + _dt.timedelta(days=signer_days))
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(_key_usage(sign=True), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
              .sign(root_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM

    def key_pem(k):
        return k.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    anchor = root.public_bytes(pem)
    return anchor, signer.public_bytes(pem) + anchor, key_pem(signer_key), key_pem(root_key)


def _write_secret(path: Path, data: bytes, root: Path) -> None:
    """Write a private key of the workspace at ``root`` with its final mode from the start (0600, or 0640 in a
    shared workspace: ``core.group_sharing.secret_mode``), never readable by others, not even briefly."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, secret_mode(root))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_private(path: Path, what: str, root: Path | None = None) -> bytes:
    """A private key's bytes; in the workspace at ``root``, refused when readable by more than it should be."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningIdentityError(f"{path}: {what} is missing") from None
    except PermissionError as e:
        should = "0600 and yours" if root is None or sharing_gid(root) is None else \
            "0640 and in the shared workspace's group: are you a member? (`id`)"
        raise SigningIdentityError(f"{path}: cannot read {what} ({e.strerror}); check its owner and mode "
                                   f"(it should be {should})") from None
    problem = None if root is None else secret_mode_problem(path, root)
    if problem:
        raise SigningIdentityError(f"{path}: {what} is {problem}")
    return data


def _check_chain(chain_pem: bytes, key_pem: bytes, where: str, now: _dt.datetime | None = None):
    """Parse and check a chain and key -> (certificates, anchor PEM). One-line SigningIdentityError otherwise."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as e:
        raise SigningIdentityError(f"{where}: not a PEM certificate chain ({e})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise SigningIdentityError(f"{where}: the private key is not an unencrypted PEM key ({e})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SigningIdentityError(f"{where}: the key must be ECDSA P-256 (ES256), got {type(key).__name__}")
    if certs[0].public_key().public_numbers() != key.public_key().public_numbers():
        raise SigningIdentityError(f"{where}: the private key does not belong to the chain's first certificate")
    now = now or _dt.datetime.now(_dt.UTC)
    for c in certs:
        if c.not_valid_after_utc < now:
            raise SigningIdentityError(f"{where}: certificate {c.subject.rfc4514_string()!r} expired on "
                                       f"{c.not_valid_after_utc.date()}; run `doppel keys init --force` or give a "
                                       "renewed certificate")
        if c.not_valid_before_utc > now:
            raise SigningIdentityError(f"{where}: certificate {c.subject.rfc4514_string()!r} is not valid before "
                                       f"{c.not_valid_before_utc.isoformat()}")
    root = certs[-1]
    if len(certs) < 2 or root.issuer != root.subject:
        raise SigningIdentityError(f"{where}: the chain must hold the signer certificate and end with its "
                                   "self-signed root (the trust anchor)")
    return certs, root.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class KeysInfo:
    """What `init_keys` made or imported (no secrets)."""

    folder: Path
    org: str
    anchor_sha256: str
    signer_subject: str
    not_after: str          # UTC ISO-8601
    source: str             # "generated" or "imported"


def init_keys(ws: Workspace, org: str | None = None, cert: Path | None = None, key: Path | None = None,
              force: bool = False) -> KeysInfo:
    """Create (or import with ``cert`` and ``key``) the workspace's signing identity; record its trust anchor.

    Refuses to replace an existing identity without ``force`` (files signed with the old one stay verifiable
    only against the old anchor, which `doppel verify` then reports as untrusted).
    """
    if (cert is None) != (key is None):
        raise ValueError("keys init: give both --cert CHAIN.pem and --key KEY.pem, or neither")
    with keys_lock(ws):
        if (keys_dir(ws) / CHAIN_NAME).exists() and not force:
            raise SigningIdentityError(f"{keys_dir(ws)}: the workspace already has a signing identity (--force "
                                       "replaces it)")
        return _init_keys(ws, org, cert, key)


def init_keys_if_missing(ws: Workspace) -> KeysInfo | None:
    """Generate the workspace's signing identity unless it has one (None then). Commands that sign on first use
    call it: under ``keys_lock``, so commands started together make one identity and wait for it, never half
    of one (eight `doppel rig` started at once on a new workspace: six failed before)."""
    with keys_lock(ws):
        folder = keys_dir(ws)
        if (folder / CHAIN_NAME).exists() or (folder / IDENTITY_NAME).exists():
            return None
        return _init_keys(ws, None, None, None)


@contextlib.contextmanager
def keys_lock(ws: Workspace, timeout_s: float = KEYS_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Exclusive lock (``filelock``, across processes) over the workspace's signing identity files while they
    are made; SigningIdentityError when another process holds it for more than ``timeout_s`` seconds."""
    from filelock import FileLock, Timeout

    folder = _make_keys_dir(ws)
    try:
        with FileLock(folder / LOCK_NAME, timeout=timeout_s, mode=lock_mode(ws.root)):
            yield
    except Timeout:
        raise SigningIdentityError(f"{folder / LOCK_NAME}: another process has held the signing identity's lock "
                                   f"for {timeout_s:.0f} s; try again") from None


def _make_keys_dir(ws: Workspace) -> Path:
    """The keys folder, made with its mode whatever the umask (0700; 02770 in a shared workspace, where every member
    takes its lock and may renew the identity)."""
    folder = keys_dir(ws)
    try:
        folder.mkdir()
    except FileExistsError:
        return folder
    os.chmod(folder, secret_folder_mode(ws.root))
    return folder


def _init_keys(ws: Workspace, org: str | None, cert: Path | None, key: Path | None) -> KeysInfo:
    """init_keys' work, under keys_lock."""
    from assets import audit

    folder = keys_dir(ws)
    if cert is not None:
        chain_pem = Path(cert).read_bytes()
        key_pem = _read_private(Path(key), "the private key")
        certs, anchor = _check_chain(chain_pem, key_pem, str(cert))
        root_key, source = None, "imported"
        org = org or _org_of(certs[0])
    else:
        org = (org or "Doppel studio").strip()
        if not org or len(org) > 64 or any(ord(ch) < 32 for ch in org):
            raise ValueError(f"keys init: --org must be 1-64 printable characters, got {org!r}")
        anchor, chain_pem, key_pem, root_key = generate_chain(org)
        certs, _ = _check_chain(chain_pem, key_pem, "generated chain")
        source = "generated"
    _make_keys_dir(ws)
    _write_secret(folder / SIGNER_KEY_NAME, key_pem, ws.root)
    if root_key is not None:
        _write_secret(folder / ROOT_KEY_NAME, root_key, ws.root)
    else:
        (folder / ROOT_KEY_NAME).unlink(missing_ok=True)
    atomic_write_bytes(folder / ANCHOR_NAME, anchor)
    atomic_write_bytes(folder / CHAIN_NAME, chain_pem)
    info = KeysInfo(folder, org, hashlib.sha256(anchor).hexdigest(), certs[0].subject.rfc4514_string(),
                    certs[0].not_valid_after_utc.isoformat(), source)
    atomic_write_text(folder / IDENTITY_NAME, json.dumps(
        {k: str(v) for k, v in info.__dict__.items() if k != "folder"}, indent=2) + "\n")
    with ws.write() as con:
        _set_meta(con, ANCHOR_META, info.anchor_sha256)
        _set_meta(con, ANCHOR_PEM_META, anchor.decode("ascii"))
        audit.append(con, {"action": "keys.init", "org": org, "source": source,
                           "trust_anchor_sha256": info.anchor_sha256, "signer": info.signer_subject,
                           "not_after": info.not_after})
    return info


def _org_of(cert) -> str:
    from cryptography.x509.oid import NameOID

    attrs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(attrs[0].value) if attrs else cert.subject.rfc4514_string()


def trust_anchor(ws: Workspace) -> bytes | None:
    """The workspace's trust anchor (PEM), None when it has no signing identity. Checked against the index. A user
    who cannot read ``.doppel-keys`` gets the copy the index keeps (None when it keeps none yet)."""
    path = keys_dir(ws) / ANCHOR_NAME
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return None
    except PermissionError:
        kept = _meta(ws, ANCHOR_PEM_META)[ANCHOR_PEM_META]
        if kept is None:
            return None
        pem = kept.encode("ascii")
    with ws.read() as con:
        row = con.execute("SELECT value FROM meta WHERE key=?", (ANCHOR_META,)).fetchone()
    if row is None or row[0] != hashlib.sha256(pem).hexdigest():
        raise SigningIdentityError(f"{path}: the trust anchor does not match the one the index recorded "
                                   "(replaced outside `doppel keys init`)")
    return pem


def load_identity(ws: Workspace) -> SigningIdentity:
    """The workspace's signing identity, checked (present, readable, not expired, key matches the chain)."""
    folder = keys_dir(ws)
    chain_path = folder / CHAIN_NAME
    if not chain_path.is_file():
        raise SigningIdentityError(f"{ws.root}: no signing identity (no {KEYS_DIR}/{CHAIN_NAME}); run "
                                   f"`doppel keys init --workspace {ws.root}`")
    chain_pem = chain_path.read_bytes()
    key_pem = _read_private(folder / SIGNER_KEY_NAME, "the signing key", ws.root)
    certs, anchor = _check_chain(chain_pem, key_pem, str(chain_path))
    anchor_rec = trust_anchor(ws)
    if anchor_rec is None or anchor_rec.strip() != anchor.strip():
        raise SigningIdentityError(f"{chain_path}: the chain's root is not the workspace's recorded trust anchor")
    return SigningIdentity(chain_pem, key_pem, anchor, _org_of(certs[0]), certs[0].not_valid_after_utc)
