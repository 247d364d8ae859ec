"""C2PA content credentials (c2pa-python): sign synthetic media offline, read and classify them.

A Doppel manifest holds:

- ``c2pa.actions``: ``c2pa.created`` with the IPTC digital source type ``trainedAlgorithmicMedia`` (a neural
  render) or ``compositeWithTrainedAlgorithmicMedia`` (a face replacement composited into a plate);
- the inputs (a plate, say) as ingredients; their SHA-256 is in the Doppel assertion;
- ``c2pa.training-mining``: generative training, training, inference and data mining not allowed;
- ``org.doppel.disclosure``: actor id, consent id, production, use, audit sequence number, workspace id,
  watermark payload (ids only: no names, no personal data).

Signing is offline (no timestamp server) with the workspace's ES256 identity (`assets.signing_keys`); thumbnails
are off. PNG, JPEG, TIFF, MP4, MOV and AVI embed the manifest; EXR, DPX, BMP, MKV and MXF files get a sidecar
``FILE.c2pa`` that signs their bytes (c2pa cannot embed in them).
Reading checks the signature chain against the workspace's trust anchor.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.errors import DoppelError

log = logging.getLogger(__name__)

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
SOURCE_TYPES = {"render": IPTC + "trainedAlgorithmicMedia",                     # neural renders of a double
                "composite": IPTC + "compositeWithTrainedAlgorithmicMedia",     # face replacements in a plate
                "model": IPTC + "compositeSynthetic"}      # a double's 3D export: a body model fitted to photos
EMBEDDED = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff",
            ".tiff": "image/tiff", ".mp4": "video/mp4", ".mov": "video/quicktime", ".m4v": "video/x-m4v",
            ".avi": "video/avi"}
SIDECAR = {".exr": "image/x-exr", ".dpx": "image/x-dpx", ".bmp": "image/bmp",     # c2pa cannot embed in these
           ".mkv": "video/x-matroska", ".mxf": "application/mxf",
           # 3D exports: a sidecar bound to the file's bytes by a data hash (c2pa embeds in none of them)
           ".glb": "model/gltf-binary", ".gltf": "model/gltf+json", ".fbx": "application/vnd.autodesk.fbx",
           ".usd": "model/vnd.usd", ".usda": "model/vnd.usda", ".usdc": "model/vnd.usdc",
           ".usdz": "model/vnd.usdz+zip", ".abc": "application/x-alembic"}
SIDECAR_SUFFIX = ".c2pa"
# formats signed but not watermarked, and why: their values are a plate's, kept as they are outside the face
UNMARKED = {".exr": "pixels are not watermarked (scene-linear float data)",
            ".dpx": "pixels are not watermarked (a scan's code values)",
            **{s: "is a 3D model: no pixels to watermark" for s in (".glb", ".gltf", ".fbx", ".usd", ".usda",
                                                                     ".usdc", ".usdz", ".abc")}}
DOPPEL_LABEL = "org.doppel.disclosure"
_NOT_ALLOWED = {"use": "notAllowed"}
TRAINING_MINING = {"entries": {k: dict(_NOT_ALLOWED) for k in (
    "c2pa.ai_generative_training", "c2pa.ai_training", "c2pa.ai_inference", "c2pa.data_mining")}}


class ContentCredentialsError(DoppelError):
    """Signing failed (bad identity, unsupported file) or a manifest could not be read."""


def media_type(path: Path) -> str:
    """The MIME type Doppel signs ``path`` as (embedded or sidecar); ValueError for other suffixes."""
    suffix = path.suffix.lower()
    if suffix in EMBEDDED:
        return EMBEDDED[suffix]
    if suffix in SIDECAR:
        return SIDECAR[suffix]
    raise ValueError(f"{path}: cannot carry content credentials (supported: "
                     f"{', '.join(sorted(EMBEDDED) + sorted(SIDECAR))})")


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def build_manifest(title: str, source_type: str, assertion: dict, ingredients: list[dict], label: str | None,
                   ) -> dict:
    """The manifest definition (c2pa-python JSON) for one file."""
    from assets.provenance import doppel_version

    if source_type not in SOURCE_TYPES:
        raise ValueError(f"content credentials: source type must be one of {sorted(SOURCE_TYPES)}, "
                         f"got {source_type!r}")
    action = {"action": "c2pa.created", "digitalSourceType": SOURCE_TYPES[source_type],
              "softwareAgent": {"name": "Doppel", "version": doppel_version()}}
    if label:
        action["parameters"] = {"visibleLabel": label}
    return {"claim_generator_info": [{"name": "Doppel", "version": doppel_version()}], "title": title,
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}},
                           {"label": "c2pa.training-mining", "data": TRAINING_MINING},
                           {"label": DOPPEL_LABEL, "data": {**assertion, "ingredients": ingredients}}]}


def _context(anchor_pem: bytes | None = None):
    import c2pa

    settings: dict = {"builder": {"thumbnail": {"enabled": False}}}
    if anchor_pem is not None:
        settings["verify"] = {"verify_trust": True}
        settings["trust"] = {"trust_anchors": anchor_pem.decode()}
    return c2pa.Context.from_dict(settings)


def sign_bytes(data: bytes, path_name: str, manifest: dict, chain_pem: bytes, key_pem: bytes,
               ingredient_files: list[Path] = ()) -> tuple[bytes, bytes | None]:
    """Sign ``data`` (the file's content; its name gives the format) -> (signed content, sidecar manifest or
    None). PNG/JPEG/MP4: the manifest is embedded and the sidecar is None; EXR: the content is unchanged and the
    manifest store comes back for the sidecar. In memory: a long video is signed by `sign_stream`."""
    out = io.BytesIO()
    store = sign_stream(io.BytesIO(data), out, path_name, manifest, chain_pem, key_pem, ingredient_files)
    return (out.getvalue(), None) if store is None else (data, store)


def sign_stream(source: BinaryIO, dest: BinaryIO, path_name: str, manifest: dict, chain_pem: bytes,
                key_pem: bytes, ingredient_files: list[Path] = ()) -> bytes | None:
    """Sign the content read from ``source`` (seekable; ``path_name`` gives the format), streamed: c2pa reads
    and writes through the two streams, so a file of any size is never held in memory. PNG/JPEG/MP4: the
    signed content (manifest embedded) is written to ``dest`` and None comes back; EXR: ``dest`` is left
    empty and the manifest store comes back (for the sidecar; the content is unchanged)."""
    import c2pa

    fmt = media_type(Path(path_name))
    embedded = Path(path_name).suffix.lower() in EMBEDDED
    target = _WriteErrors(dest) if embedded else io.BytesIO()
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain_pem, key_pem, None))
        with signer, c2pa.Builder(manifest, context=_context()) as builder:
            if not embedded:
                builder.set_no_embed()
            for ing in ingredient_files:
                _add_ingredient(builder, ing)
            store = builder.sign(signer, fmt, source, target)
    except c2pa.C2paError as e:
        if getattr(target, "error", None) is not None:      # c2pa reports a failed write as "Io: Other: ..."
            raise target.error from None
        raise ContentCredentialsError(f"{path_name}: C2PA signing failed ({_first_line(e)})") from None
    return None if embedded else bytes(store)


class _WriteErrors:
    """``dest`` as c2pa writes it, keeping the first OSError of a write (a full disk: ENOSPC), which c2pa turns
    into an opaque "Io: Other" error."""

    def __init__(self, dest: BinaryIO):
        self.dest, self.error = dest, None

    def write(self, data) -> int:
        try:
            return self.dest.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        try:
            self.dest.flush()
        except OSError as e:
            self.error = self.error or e
            raise

    def __getattr__(self, name: str):          # read, seek, tell, ...: the stream's own
        return getattr(self.dest, name)


def _add_ingredient(builder, path: Path) -> None:
    """An input (a plate) as a c2pa ingredient, read from its content when c2pa can parse its format; others
    are named by their SHA-256 in the Doppel assertion only (logged)."""
    import c2pa

    info = {"title": path.name, "relationship": "inputTo"}
    fmt = EMBEDDED.get(path.suffix.lower())
    if fmt is None:
        log.info("%s: not a format c2pa reads as an ingredient; its SHA-256 is in the Doppel assertion", path)
        return
    try:
        with open(path, "rb") as f:
            builder.add_ingredient(info, fmt, f)
    except c2pa.C2paError as e:
        log.warning("%s: not added as a c2pa ingredient (%s); its SHA-256 is in the Doppel assertion", path,
                    _first_line(e))


def _first_line(e: Exception) -> str:
    return next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)


@dataclass(frozen=True)
class CredentialsReport:
    """The C2PA state of a file: ``state`` one of trusted / untrusted (valid signature, unknown signer) /
    invalid / absent; ``reason``: the failure codes (invalid, untrusted) or why absent; ``assertion``: the
    Doppel assertion when present; ``source_type``: the digital source type of its c2pa.created action."""

    state: str
    reason: str = ""
    assertion: dict | None = None
    source_type: str | None = None
    signer: str | None = None


def read_credentials(path: Path, anchor_pem: bytes | None) -> CredentialsReport:
    """Read and classify the content credentials of ``path`` (embedded, or its ``.c2pa`` sidecar)."""
    import c2pa

    path = Path(path)
    side = sidecar_path(path)
    try:
        if side.is_file():
            with open(path, "rb") as f:
                reader = c2pa.Reader(media_type(path), f, side.read_bytes(), context=_context(anchor_pem))
        elif path.suffix.lower() in SIDECAR:       # its credentials can only be beside it
            return CredentialsReport("absent", f"no sidecar manifest ({side.name})")
        else:
            reader = c2pa.Reader.try_create(str(path), context=_context(anchor_pem))
            if reader is None:
                return CredentialsReport("absent", "no C2PA manifest")
        with reader:
            state = reader.get_validation_state() or ""
            results = reader.get_validation_results() or {}
            active = reader.get_active_manifest() or {}
    except c2pa.C2paError as e:
        text = _first_line(e)
        if "ManifestNotFound" in type(e).__name__ or "no JUMBF" in text:
            return CredentialsReport("absent", "no C2PA manifest")
        if "NotSupported" in type(e).__name__ or "not supported" in text.lower():
            return CredentialsReport("absent", f"format not supported by C2PA ({text})")
        return CredentialsReport("invalid", f"unreadable manifest ({text})")
    failures = [f.get("code", "") for f in results.get("activeManifest", {}).get("failure", [])]
    assertion, source = _doppel_parts(active)
    signer = (active.get("signature_info") or {}).get("common_name")
    if state == "Trusted":
        return CredentialsReport("trusted", "", assertion, source, signer)
    if state == "Valid":
        return CredentialsReport("untrusted", ", ".join(failures) or "signer not in the trust anchors",
                                 assertion, source, signer)
    return CredentialsReport("invalid", ", ".join(c for c in failures if c) or state or "invalid", assertion,
                             source, signer)


def _doppel_parts(active: dict) -> tuple[dict | None, str | None]:
    assertion, source = None, None
    for a in active.get("assertions", []):
        label = a.get("label", "")
        if label == DOPPEL_LABEL:
            assertion = a.get("data")
        elif label.startswith("c2pa.actions"):
            for act in a.get("data", {}).get("actions", []):
                if act.get("action") == "c2pa.created":
                    source = act.get("digitalSourceType")
    return assertion, source
