"""Disclosure of synthetic media: the one call every writer of synthetic imagery makes.

    from assets.disclosure import DisclosureContext, disclose_file

    ctx = DisclosureContext.from_run(run, kind="render", ingredients=[plate])   # run: the command's GatedRun
    disclose_file(out / "shot_0001.png", ctx)        # after writing the file, before publishing it

`disclose_file(path, ctx)` takes a PNG, JPEG, TIFF, MP4 (or EXR, DPX, BMP) that the caller has just written and,
in place and atomically:

1. appends an audit record ``disclosure.mark`` (actor, consent, production, use, command, file name, the
   ingredients' SHA-256) and takes its sequence number;
2. draws the optional visible label;
3. embeds the invisible watermark (`assets.watermark`) with payload (workspace tag, audit sequence number) in
   the image, or in every frame of a video;
4. signs C2PA content credentials (`assets.content_credentials`) with the workspace's signing identity: embedded
   in PNG/JPEG/TIFF/MP4, a sidecar ``FILE.c2pa`` for EXR, DPX and BMP and for 3D exports (FBX, USD, glTF; EXR
   and DPX pixels and 3D models are not watermarked: `UNMARKED`);
5. replaces the file with the signed one (rename). If any step fails, the unsigned file is removed and the error
   raised: no unsigned file is left where a signed one is expected. Write into a staging folder (as the stage
   commands do) and nothing unsigned is ever visible.

Outside a workspace there is no signing identity, no watermark key and no audit log to point to, and the consent
gate lets only the virtual actor or the actor ``unknown`` run there. Such files are left unsigned and unmarked
(only the visible label is drawn); the result says so (``disclosed=False``) and a warning is logged. For a
real actor's likeness, work inside a workspace.

Images smaller than the watermark needs (`watermark.MIN_SIDE`) are signed without the mark; the result's
``notes`` say so and a warning is logged.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assets import watermark as wm
from assets.content_credentials import EMBEDDED, UNMARKED, build_manifest, media_type, sidecar_path, sign_stream
from assets.workspace import VIRTUAL_ACTOR_ID, Workspace
from core.stage_folders import shown_path, temp_sibling
from core.storage import atomic_write_bytes, new_temp_file, sha256_file

log = logging.getLogger(__name__)
_NOTED: set[tuple[str, str]] = set()       # (folder, note) already logged: a sequence's frames say it once
_NOTED_MAX = 10_000

JPEG_QUALITY = 95          # quality a marked JPEG is written with
PNG_COMPRESS_LEVEL = 1     # zlib level of a re-written PNG: 1080p in ~1/4 of level 6's time, files ~15 % larger
LABEL_MAX = 80             # longest visible label (characters)


@dataclass(frozen=True)
class DisclosureGrant:
    """What a process that may not open the workspace's index (a batch worker on any machine) needs to disclose
    files as the workspace does: its signing identity, watermark secret and id, and the number of the
    ``disclosure.mark`` audit record the driver appended for the task (`grant_disclosure`); every file the task
    writes carries that number, so `doppel verify` leads from any of them to the task's record."""

    identity: object               # assets.signing_keys.SigningIdentity
    secret: bytes
    workspace_id: str
    seq: int
    audit_hash: str = ""           # that record's chain hash: which record it is, should a copy of the index fork

    def __repr__(self) -> str:     # keep the secrets out of tracebacks and logs
        return f"DisclosureGrant(workspace_id={self.workspace_id!r}, seq={self.seq})"


def grant_disclosure(ws: Workspace, record: dict) -> DisclosureGrant:
    """Append a ``disclosure.mark`` audit record (``record``: command, actor, consent, production, use, ...; the
    caller's, e.g. a batch task's) and return the `DisclosureGrant` that discloses files under it elsewhere.
    SigningIdentityError when the workspace's identity is missing, expired or unreadable (nothing is recorded)."""
    from assets import audit
    from assets.signing_keys import load_identity, watermark_secret, workspace_id

    identity = load_identity(ws)
    with ws.write() as con:
        entry = audit.append(con, {"action": "disclosure.mark", **record})
    return DisclosureGrant(identity, watermark_secret(ws), workspace_id(ws), entry.seq, entry.hash)


@dataclass(frozen=True)
class DisclosureContext:
    """Who and what a synthetic file is about. Ids only, never names.

    workspace: the workspace (None outside one: nothing is signed, see the module doc); actor_id, consent_id
    (None for the virtual actor), production, use: from the consent gate's authorisation; kind: "render"
    (trainedAlgorithmicMedia) or "composite" (a face replacement: compositeWithTrainedAlgorithmicMedia);
    ingredients: the input files (the plate) hashed into the manifest; label: visible text drawn on the image;
    command: the command that wrote it (audit); performer, performer_consent: a face replacement's plate
    performer (a real or unknown person whose performance the file alters; None: none, or the virtual actor)."""

    workspace: Workspace | None
    actor_id: str
    consent_id: str | None
    production: str
    use: str
    kind: str = "render"
    ingredients: tuple[Path, ...] = ()
    label: str | None = None
    command: str = ""
    performer: str | None = None
    performer_consent: str | None = None
    grant: DisclosureGrant | None = None     # outside the workspace's process: sign and mark under this grant

    @property
    def signs(self) -> bool:
        """Whether files are signed and marked (in a workspace, or under a grant)."""
        return self.workspace is not None or self.grant is not None

    @staticmethod
    def from_run(run, kind: str = "render", ingredients: Sequence[str | os.PathLike] = (), label: str | None = None,
                 ) -> DisclosureContext:
        """The context of a `doppel.consent_gate.GatedRun` (its workspace and authorisation)."""
        a = run.auth
        return DisclosureContext(run.ws, a.actor_id, a.consent_id, a.production, a.use.value, kind,
                                 tuple(Path(p) for p in ingredients), label, run.command,
                                 grant=getattr(run, "disclosure_grant", None))


@dataclass(frozen=True)
class DisclosureResult:
    """What `disclose_file` did: ``disclosed`` (signed; False outside a workspace), ``seq`` (audit record),
    ``payload`` (watermark; None when not marked), ``sidecar`` (EXR), ``notes`` (one line each)."""

    path: Path
    disclosed: bool
    seq: int | None = None
    payload: wm.Payload | None = None
    sidecar: Path | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def check_label(label: str | None) -> str | None:
    """A visible label: printable, at most LABEL_MAX characters (ValueError otherwise); '' means none."""
    if not label:
        return None
    if len(label) > LABEL_MAX or any(ord(c) < 32 for c in label):
        raise ValueError(f"--label: at most {LABEL_MAX} printable characters, got {label!r}")
    return label


def draw_label(image: np.ndarray, label: str) -> np.ndarray:
    """(H, W, 3|4) uint8 -> a copy with ``label`` in white on a dark band at the bottom left."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    size = max(10, image.shape[0] // 28)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:
        font = ImageFont.load_default()
    x0, y0, x1, y1 = draw.textbbox((0, 0), label, font=font)
    pad = max(2, size // 4)
    top = image.shape[0] - (y1 - y0) - 3 * pad
    draw.rectangle((0, top, x1 - x0 + 2 * pad, image.shape[0]), fill=(0, 0, 0) + ((255,) if im.mode == "RGBA" else ()))
    draw.text((pad - x0, top + pad - y0), label, fill=(255, 255, 255) + ((255,) if im.mode == "RGBA" else ()),
              font=font)
    return np.asarray(im)


def _check_writable(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file to disclose")
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(f"{path.parent}: folder not writable, cannot write the signed {path.name}")


def _audit_record(ctx: DisclosureContext, path: Path, ingredients: list[dict]) -> tuple[int, str]:
    """Append the file's ``disclosure.mark`` audit record; its (seq, chain hash)."""
    from assets import audit

    with ctx.workspace.write() as con:
        entry = audit.append(con, {"action": "disclosure.mark", "command": ctx.command, "actor": ctx.actor_id,
                                   "consent": ctx.consent_id, "production": ctx.production, "use": ctx.use,
                                   "kind": ctx.kind, "file": path.name, "ingredients": ingredients,
                                   **_performer(ctx)})
    return entry.seq, entry.hash


def _performer(ctx: DisclosureContext) -> dict:
    """The plate performer's fields of an audit record and an assertion (none when there is none)."""
    return {} if ctx.performer is None else {"performer": ctx.performer, "performer_consent": ctx.performer_consent}


def disclose_file(path: str | os.PathLike, context: DisclosureContext) -> DisclosureResult:
    """Label, watermark and sign ``path`` (PNG, JPEG, MP4; EXR: sidecar) in place, atomically (module doc).
    The pixels are decoded and re-encoded once more; a writer that can mark its frames as it encodes them
    uses `begin_disclosure` instead (one encode).

    Raises (one line naming the file): SigningIdentityError (no, expired or unreadable signing identity),
    PermissionError (output folder not writable), ValueError (unsupported format, bad label), C2PA failures
    (ContentCredentialsError). On any failure the unsigned file is removed.
    """
    path = Path(path)
    media_type(path)
    check_label(context.label)
    _check_writable(path)
    try:
        pending = begin_disclosure(path.name, context)
        if pending.label or pending.key is not None:
            _rewrite_pixels(path, pending.mark)
    except BaseException:
        if context.signs:
            path.unlink(missing_ok=True)
        raise
    return pending.finish(path)


def begin_disclosure(name: str, context: DisclosureContext) -> PendingDisclosure:
    """Start disclosing a file called ``name`` (PNG, JPEG, MP4; EXR: sidecar) before it is written, so that
    its pixels are encoded once: the audit record is appended and the watermark payload fixed now; the writer
    passes every image or frame through ``PendingDisclosure.mark`` as it encodes it and calls
    ``PendingDisclosure.finish(path)`` on the written file (under any temporary name: the manifest and the audit
    record name ``name``). Same errors as `disclose_file`, raised here, before anything is written."""
    from assets.signing_keys import load_identity, watermark_secret, workspace_id

    label = check_label(context.label)
    if not context.signs:                          # nothing signed: any format takes the label
        return PendingDisclosure(name, context, label)
    media_type(Path(name))
    ingredients = [{"name": p.name, "sha256": sha256_file(p)} for p in context.ingredients]
    if context.workspace is None:                  # a batch worker: the driver recorded the task (`grant`)
        g = context.grant
        identity, key, ws_id, seq = g.identity, wm.WatermarkKey.from_secret(g.secret), g.workspace_id, g.seq
        audit_hash = g.audit_hash
    else:
        identity = load_identity(context.workspace)      # before anything is recorded
        key = wm.WatermarkKey.from_secret(watermark_secret(context.workspace))
        ws_id = workspace_id(context.workspace)
        seq, audit_hash = _audit_record(context, Path(name), ingredients)
    payload = wm.Payload(wm.workspace_tag(ws_id), seq)
    return PendingDisclosure(name, context, label, identity, key, ws_id, ingredients, payload, audit_hash)


class PendingDisclosure:
    """A disclosure begun before its file exists (`begin_disclosure`): ``mark`` each image or video frame as it
    is encoded, ``finish`` the written file. Outside a workspace only the label is drawn and nothing is signed."""

    def __init__(self, name: str, context: DisclosureContext, label: str | None, identity=None,
                 key: wm.WatermarkKey | None = None, ws_id: str = "", ingredients: list[dict] | None = None,
                 payload: wm.Payload | None = None, audit_hash: str = ""):
        self.name, self.context, self.label, self.audit_hash = name, context, label, audit_hash
        self.identity, self.key, self.ws_id, self.payload = identity, key, ws_id, payload
        self.ingredients = ingredients or []
        self.notes: list[str] = []
        self.too_small = False          # an image or frame was too small for the mark: signed unmarked
        if key is not None and (why := UNMARKED.get(Path(name).suffix.lower())):
            self.notes.append(f"{Path(name).suffix.lower()[1:].upper()} {why}; signed "
                              "with a sidecar manifest")
            self.key = None

    def mark(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3|4) uint8 -> the same with the label drawn and the watermark embedded (an image too small for
        the mark passes unmarked, noted once)."""
        if self.label:
            image = draw_label(image, self.label)
        if self.key is None:
            return image
        try:
            return wm.embed(image, self.payload, self.key)
        except wm.WatermarkTooSmall as e:
            if not self.too_small:
                self.too_small = True
                self.notes.append(f"not watermarked: {e}; signed anyway")
            return image

    def finish(self, path: str | os.PathLike) -> DisclosureResult:
        """Sign the written file ``path`` in place (EXR: sidecar); on any failure it is removed and the error
        raised. Outside a workspace: nothing signed, ``disclosed=False`` (logged)."""
        path, ctx = Path(path), self.context
        if self.identity is None:
            note = "not signed or watermarked: outside a workspace there is no signing identity or audit log"
            _note_once(path, note, logging.INFO if ctx.actor_id == VIRTUAL_ACTOR_ID else logging.WARNING)
            return DisclosureResult(path, False, notes=(note,))
        marked = self.key is not None and not self.too_small       # key None: EXR (sidecar), never marked
        seq = self.payload.seq
        assertion = {"actor": ctx.actor_id, "consent": ctx.consent_id, "production": ctx.production,
                     "use": ctx.use, "audit_seq": seq, "workspace": self.ws_id,
                     **({"audit_hash": self.audit_hash} if self.audit_hash else {}),
                     "watermark": {"workspace_tag": self.payload.workspace_tag, "seq": seq} if marked else None,
                     **_performer(ctx)}
        manifest = build_manifest(self.name, ctx.kind, assertion, self.ingredients, self.label)
        sidecar = None
        try:
            _check_writable(path)
            store = _sign_in_place(path, manifest, self.identity, list(ctx.ingredients))
            if store is not None:
                sidecar = sidecar_path(path.with_name(self.name))
                atomic_write_bytes(sidecar, store)
        except BaseException:
            path.unlink(missing_ok=True)
            if sidecar is not None:
                sidecar.unlink(missing_ok=True)
            raise
        for n in self.notes:
            _note_once(path, n)
        return DisclosureResult(path, True, seq, self.payload if marked else None, sidecar, tuple(self.notes))


def _note_once(path: Path, note: str, level: int = logging.WARNING) -> None:
    """Log a disclosure note of a written file, once per folder and note (a shot's or a plate's frames share it)."""
    key = (str(path.parent), note)
    if key in _NOTED:
        return
    if len(_NOTED) >= _NOTED_MAX:
        _NOTED.clear()
    _NOTED.add(key)
    log.log(level, "%s: %s (said once for the files written beside it)", shown_path(path), note)


class Discloser:
    """Discloses the files a command writes under one context: call it on a written file (`disclose_file`), or
    ``begin(name)`` before writing one whose frames can be marked as they are encoded (`begin_disclosure`).
    ``Discloser(None)`` does nothing (``begin`` returns None)."""

    def __init__(self, context: DisclosureContext | None):
        self.context = context

    def __call__(self, path: str | os.PathLike) -> None:
        if self.context is not None:
            disclose_file(path, self.context)

    def begin(self, name: str) -> PendingDisclosure | None:
        return None if self.context is None else begin_disclosure(name, self.context)

    def check(self, name: str) -> None:
        """ValueError (one line) when a file called ``name`` cannot carry the disclosure; before any work."""
        if self.context is not None and self.context.signs:      # signed in a workspace (or under its grant) only
            media_type(Path(name))


def _sign_in_place(path: Path, manifest: dict, identity, ingredients: list[Path]) -> bytes | None:
    """Sign ``path`` (`sign_stream`: read and written as streams, never whole in memory; a 4K plate's video
    may be gigabytes) and replace it with the signed file atomically; returns the sidecar's manifest store for
    a format that keeps it beside the file (EXR; the file is then unchanged), else None."""
    tmp = temp_sibling(path)        # a whole plate's size: a killed run's copy is removed by the next writer
    try:
        with open(path, "rb") as src, open(tmp, "w+b") as dest:
            store = sign_stream(src, dest, path.name, manifest, identity.chain_pem, identity.key_pem, ingredients)
            dest.flush()
            os.fsync(dest.fileno())
        if store is None:
            os.replace(tmp, path)
        else:
            Path(tmp).unlink()
        return store
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:    # a full disk under c2pa's writes names no file
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def _rewrite_pixels(path: Path, edit) -> None:
    """Decode an image, apply ``edit`` ((H, W, C) uint8 -> same), re-encode in its own format, replace."""
    from PIL import Image

    from capture.plate_io import VIDEO_SUFFIXES

    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        _rewrite_video(path, edit)
        return
    if suffix in (".tif", ".tiff", ".bmp"):
        _rewrite_frame_file(path, edit)
        return
    if suffix not in EMBEDDED:
        return
    with Image.open(path) as im:
        has_alpha = im.mode in ("RGBA", "LA") or "transparency" in im.info
        arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    out = Image.fromarray(edit(arr))
    buf = io.BytesIO()
    if suffix == ".png":
        out.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        out.convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY)
    atomic_write_bytes(path, buf.getvalue())     # a full disk names ``path``


def _rewrite_frame_file(path: Path, edit) -> None:
    """A TIFF (8 or 16 bits) or BMP through ``edit`` on its 8-bit display RGB; the pixels the edit changed move by
    its change in code values (`capture.frame_files.write_frame` with ``drawn``: a 16-bit file keeps its low bits
    under the marks), its bit depth and alpha are kept."""
    from capture.frame_files import read_frame, write_frame

    fd, tmp = new_temp_file(path.parent, f".{path.stem}.", path.suffix)    # the mode open() gives
    os.close(fd)
    try:
        view = read_frame(path)
        write_frame(tmp, np.ascontiguousarray(edit(view), dtype=np.uint8), path, drawn=view)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rewrite_video(path: Path, edit) -> None:
    """Decode every frame, apply ``edit``, re-encode in the file's own container the way a swapped plate is
    written (`capture.video_header.video_codec`: ProRes and DNxHR kept, else H.264 at `capture.plate_io`'s rate
    control; the exact frame rate, every audio track copied, the colour encoding and tags, bit depth and timecode
    kept: `capture.video_header`, `capture.video_encoder`) and replace ``path``. Frame by frame: the video is never
    in memory; an odd size is padded by a pixel (H.264 4:2:0 needs even sides). A video of more than 8 bits is
    decoded at 16, ``edit`` sees its 8-bit view, and the edit's changes are merged into the frame's own codes
    (`capture.plate_colour.merged_codes`): its precision is kept under the marks; a ProRes 4444's alpha channel
    is kept as it is."""
    import imageio.v2 as imageio

    from capture.plate_colour import display_of_codes, merged_codes
    from capture.plate_io import H264_CRF, H264_PRESET, read_video_frames
    from capture.video_encoder import VideoEncoder
    from capture.video_header import ALPHA_PIX_FMTS, encoder_options, read_stream_header, video_codec

    header = read_stream_header(path)
    options, vf = encoder_options(header)
    reader = imageio.get_reader(path, format="FFMPEG")
    meta = reader.get_meta_data()
    reader.close()
    codec, pix_fmt, codec_options = video_codec(header, path.suffix, H264_CRF, H264_PRESET, tuple(meta["size"]))
    alpha = ALPHA_PIX_FMTS.match(pix_fmt) is not None
    wide = header.bit_depth > 8 or alpha
    fd, tmp = new_temp_file(path.parent, f".{path.name}.", path.suffix)    # the mode open() gives
    os.close(fd)
    try:
        encoder = VideoEncoder(tmp, tuple(meta["size"]), float(meta.get("fps", 24.0)), codec, pix_fmt,
                               codec_options + options + ["-vf", ",".join(["pad=ceil(iw/2)*2:ceil(ih/2)*2",
                                                                           *([vf] if vf else [])])],
                               audio_from=path if meta.get("audio_codec") else None,
                               input_pix_fmt="rgba64le" if alpha else "rgb48le" if wide else "rgb24")
        try:
            for _, codes in read_video_frames(path, tuple(meta["size"]), wide, alpha=alpha):
                view = display_of_codes(codes[..., :3])
                encoder.write(merged_codes(codes, view, view, np.ascontiguousarray(edit(view), dtype=np.uint8)))
            encoder.close()
        except BaseException:
            encoder.abort()
            raise
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
