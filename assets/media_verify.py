"""`doppel verify`: read both marks of a file and look its payload up in the workspace.

For each file: the C2PA state (trusted against the workspace's anchor / valid but untrusted / invalid with the
failure codes / absent), the watermark (payload and confidence, or not found), and the record both point to: the
audit record ``disclosure.mark`` named by the payload's sequence number (or the C2PA Doppel assertion when the
watermark is gone), with the actor, production, use and the consent's status today (valid, revoked, expired).

A re-encoded copy that lost its manifest still leads to its record through the watermark. A file is *invalid*
when its C2PA manifest is invalid (edited after signing) or it cannot be read at all.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from assets import watermark as wm
from assets.consent import consent_status
from assets.content_credentials import UNMARKED, CredentialsReport, read_credentials
from assets.workspace import Workspace
from core.group_sharing import unreadable_reason

log = logging.getLogger(__name__)

MAX_VIDEO_FRAMES = 48        # frames of a video read for the watermark (evenly spread over the first ones)
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mxf")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".dpx", ".tif", ".tiff", ".webp")


def media_files(paths) -> list[Path]:
    """``paths`` (files or folders) -> the files to verify: a file as given, a folder as every image, video and 3D
    export under it (IMAGE_SUFFIXES, VIDEO_SUFFIXES, assets.export_verify.EXPORT_SUFFIXES; sidecar manifests,
    JSON and the like skipped), sorted. A path that does not exist, or a folder with none of those in it, is a
    FileNotFoundError naming it."""
    from assets.export_verify import EXPORT_SUFFIXES

    kinds = IMAGE_SUFFIXES + VIDEO_SUFFIXES + EXPORT_SUFFIXES
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in kinds)
            if not found:
                raise FileNotFoundError(f"{p}: a folder with no image, video or 3D export in it "
                                        f"({', '.join(s.lstrip('.') for s in kinds)})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out


@dataclass(frozen=True)
class WatermarkReport:
    """found; workspace_tag and seq (when found); confidence in [0, 1]; note (why not read, if so)."""

    found: bool
    confidence: float = 0.0
    workspace_tag: int | None = None
    seq: int | None = None
    note: str = ""


@dataclass(frozen=True)
class RecordReport:
    """The workspace record a file points to (ids only) and the consent's status today."""

    source: str                  # "watermark" or "c2pa": which mark led here
    seq: int
    actor: str | None = None
    production: str | None = None
    use: str | None = None
    consent: str | None = None
    consent_status: str = ""     # valid / revoked / expired / not needed (virtual actor) / unknown
    note: str = ""
    performer: str | None = None          # a face replacement's plate performer, and their consent's status
    performer_consent: str | None = None
    performer_status: str = ""


@dataclass(frozen=True)
class MediaReport:
    path: str
    c2pa: CredentialsReport
    watermark: WatermarkReport
    record: RecordReport | None
    error: str = ""              # the file could not be read at all

    @property
    def invalid(self) -> bool:
        return bool(self.error) or self.c2pa.state == "invalid"

    def as_dict(self) -> dict:
        return {**asdict(self), "invalid": self.invalid}


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() in (".tif", ".tiff"):              # 16-bit TIFF too: as the swap wrote it
        from capture.frame_files import read_frame

        return read_frame(path)
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None


def _frames(path: Path):
    import imageio.v2 as imageio

    try:
        reader = imageio.get_reader(path, format="FFMPEG")
    except (OSError, RuntimeError, ValueError) as e:
        raise ValueError(f"{path}: not a readable video ({str(e).splitlines()[0] if str(e) else e})") from None
    with reader:
        try:
            for i, frame in enumerate(reader):
                if i >= MAX_VIDEO_FRAMES:
                    break
                yield frame
        except (OSError, RuntimeError, IndexError) as e:
            raise ValueError(f"{path}: video unreadable after frame {i} ({e})") from None


def read_watermark(path: Path, key: wm.WatermarkKey | None, no_key: str = "no workspace") -> WatermarkReport:
    """The watermark of an image or video (ValueError naming the file when it cannot be decoded). ``no_key``: why
    there is no key, when ``key`` is None."""
    if path.suffix.lower() in UNMARKED:
        return WatermarkReport(False, note=f"{path.suffix[1:].upper()} files carry no watermark (sidecar manifest "
                                           "only)")
    if key is None:
        return WatermarkReport(False, note=f"not read ({no_key}: the watermark key is the workspace's secret)")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        det = wm.decode_frames(_frames(path), key)
    else:
        det = wm.decode(_read_image(path), key)
    if det.payload is None:
        return WatermarkReport(False, det.confidence, note="not found")
    return WatermarkReport(True, det.confidence, det.payload.workspace_tag, det.payload.seq)


def lookup(ws: Workspace, seq: int, source: str, today: _dt.date | None = None,
           expect_hash: str | None = None) -> RecordReport:
    """The ``disclosure.mark`` audit record ``seq`` of ``ws`` and the consent's status ``today``. expect_hash:
    the record's chain hash as the file's manifest names it (None: not named): another hash means this index's
    record ``seq`` is not the file's (a copy of the workspace that went its own way, or a forged manifest)."""
    with ws.read() as con:
        row = con.execute("SELECT record, hash FROM audit WHERE seq=?", (seq,)).fetchone()
    if row is None:
        return RecordReport(source, seq, note=f"audit record {seq} does not exist in this workspace")
    if expect_hash and row[1] != expect_hash:
        return RecordReport(source, seq, note=f"audit record {seq} here is not the one the file was disclosed "
                                              "under (its chain hash differs): disclosed in a copy of this "
                                              "workspace that has since gone its own way, or a forged manifest")
    rec = json.loads(row[0])
    if rec.get("action") != "disclosure.mark":
        return RecordReport(source, seq, note=f"audit record {seq} is a {rec.get('action')!r}, not a disclosure")
    actor, consent = rec.get("actor"), rec.get("consent")
    performer, performer_consent = rec.get("performer"), rec.get("performer_consent")
    return RecordReport(source, seq, actor, rec.get("production"), rec.get("use"), consent,
                        consent_status(ws, actor, consent, today), performer=performer,
                        performer_consent=performer_consent,
                        performer_status=consent_status(ws, performer, performer_consent, today) if performer else "")


def verify_file(path: str | Path, ws: Workspace | None, today: _dt.date | None = None) -> MediaReport:
    """Both marks of ``path`` and the record they point to in ``ws`` (None: no workspace, C2PA only)."""
    from assets.signing_keys import trust_anchor, watermark_secret, workspace_id

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    why = unreadable_reason(path)
    if why:
        return MediaReport(str(path), CredentialsReport("unchecked", "not read"),
                           WatermarkReport(False, note="not read"), None, why)
    anchor = trust_anchor(ws) if ws is not None else None
    secret = watermark_secret(ws) if ws is not None else None
    key = wm.WatermarkKey.from_secret(secret) if secret is not None else None
    creds = read_credentials(path, anchor)
    try:
        mark = read_watermark(path, key, "no workspace" if ws is None else "this user cannot read the workspace's keys")
    except ValueError as e:
        return MediaReport(str(path), creds, WatermarkReport(False, note="unreadable"), None, str(e))
    record = None
    ws_id = workspace_id(ws) if ws is not None else None
    if ws_id is not None:
        tag = wm.workspace_tag(ws_id)
        named = creds.assertion or {}
        if mark.found and mark.workspace_tag == tag:
            same = named.get("audit_seq") == mark.seq
            record = lookup(ws, mark.seq, "watermark", today, named.get("audit_hash") if same else None)
        elif creds.assertion and creds.assertion.get("workspace") == ws_id \
                and isinstance(creds.assertion.get("audit_seq"), int):
            record = lookup(ws, creds.assertion["audit_seq"], "c2pa", today, named.get("audit_hash"))
        elif mark.found:
            record = RecordReport("watermark", mark.seq, note="marked in another workspace")
        seq_c2pa = (creds.assertion or {}).get("audit_seq")
        if record is not None and mark.found and isinstance(seq_c2pa, int) and seq_c2pa != mark.seq:
            record = dataclasses.replace(record, note=f"the marks disagree: watermark audit {mark.seq}, C2PA audit "
                                                      f"{seq_c2pa} (a manifest copied from another file?)")
    return MediaReport(str(path), creds, mark, record)


def describe(r: MediaReport) -> list[str]:
    """Human-readable lines for one report (the CLI prints them)."""
    lines = [r.path]
    if r.error:
        lines.append(f"  error: {r.error}")
    c = r.c2pa
    lines.append(f"  c2pa: {c.state}" + (f" ({c.reason})" if c.reason else "")
                 + (f", signer {c.signer}" if c.signer else ""))
    m = r.watermark
    lines.append(f"  watermark: payload workspace {m.workspace_tag:08x} seq {m.seq} (confidence {m.confidence:.2f})"
                 if m.found else f"  watermark: {m.note or 'not found'} (confidence {m.confidence:.2f})")
    if r.record is not None:
        rec = r.record
        if rec.actor is not None:
            lines.append(f"  record (audit {rec.seq}, via {rec.source}): actor {rec.actor}, production "
                         f"{rec.production}, use {rec.use}, consent {rec.consent or '-'}: {rec.consent_status}")
        if rec.performer is not None:
            lines.append(f"  plate performer: actor {rec.performer}, consent {rec.performer_consent or '-'}: "
                         f"{rec.performer_status}")
        if rec.note:
            lines.append(f"  record ({rec.source}): {rec.note}")
    return lines
