"""C2PA content credentials and disclose_file: trusted / untrusted / invalid / absent, bad identities, atomicity."""

import datetime as _dt
import logging
import os

import numpy as np
import pytest
from PIL import Image

from assets import signing_keys as sk
from assets.audit import entries
from assets.consent import revoke
from assets.content_credentials import build_manifest, read_credentials, sign_bytes
from assets.disclosure import DisclosureContext, disclose_file
from assets.media_verify import verify_file
from assets.workspace import init_workspace
from capture.video_header import read_stream_header
from tests.assets.provenance_helpers import jpeg, textured, workspace_with_actor


@pytest.fixture()
def ws_consent(tmp_path):
    return workspace_with_actor(tmp_path / "ws")


def _png(path, seed=0, h=192, w=256):
    Image.fromarray(textured(seed, h, w)).save(path)
    return path


def _ctx(ws, consent, **kw):
    return DisclosureContext(ws, "jane", consent.id, "Film", "render", command="test", **kw)


def test_signed_file_is_trusted_and_leads_to_the_consent(ws_consent, tmp_path):
    ws, consent = ws_consent
    plate = _png(tmp_path / "plate.png", seed=9)
    out = _png(tmp_path / "shot.png")
    res = disclose_file(out, _ctx(ws, consent, kind="composite", ingredients=(plate,)))
    assert res.disclosed and res.payload is not None and res.seq == res.payload.seq
    rep = verify_file(out, ws)
    assert rep.c2pa.state == "trusted" and not rep.invalid
    assert rep.c2pa.source_type.endswith("/compositeWithTrainedAlgorithmicMedia")
    a = rep.c2pa.assertion
    assert (a["actor"], a["consent"], a["production"], a["audit_seq"]) == ("jane", consent.id, "Film", res.seq)
    assert a["ingredients"][0]["name"] == "plate.png" and len(a["ingredients"][0]["sha256"]) == 64
    assert "Jane" not in str(a)                      # ids only, no names
    assert rep.watermark.found and rep.watermark.seq == res.seq
    assert (rep.record.actor, rep.record.consent_status) == ("jane", "valid")
    # a re-encoded copy lost its manifest: the watermark still leads to the record; revocation shows up
    Image.fromarray(jpeg(np.asarray(Image.open(out).convert("RGB")), 75)).save(tmp_path / "copy.jpg", quality=90)
    revoke(ws, consent.id, "actor asked")
    copy = verify_file(tmp_path / "copy.jpg", ws)
    assert copy.c2pa.state == "absent" and copy.watermark.seq == res.seq
    assert copy.record.source == "watermark" and copy.record.consent_status == "revoked"


def test_flipped_byte_is_invalid_and_other_key_is_untrusted(ws_consent, tmp_path):
    ws, consent = ws_consent
    out = _png(tmp_path / "a.png")
    disclose_file(out, _ctx(ws, consent))
    data = bytearray(out.read_bytes())
    data[40] ^= 0x01                                   # inside the first IDAT/IHDR area: hashed pixels
    (tmp_path / "flip.png").write_bytes(bytes(data))
    assert verify_file(tmp_path / "flip.png", ws).invalid
    # re-signed by another identity: valid signature, not this workspace's anchor
    anchor, chain, key, _ = sk.generate_chain("Someone else")
    raw = (tmp_path / "b.png")
    _png(raw, seed=2)
    signed, _ = sign_bytes(raw.read_bytes(), "b.png", build_manifest("b.png", "render", {}, [], None), chain, key)
    raw.write_bytes(signed)
    rep = read_credentials(raw, sk.trust_anchor(ws))
    assert rep.state == "untrusted" and "untrusted" in rep.reason
    assert read_credentials(raw, anchor).state == "trusted"
    assert read_credentials(_png(tmp_path / "plain.png"), anchor).state == "absent"


def test_a_grant_discloses_files_where_the_workspace_is_not_open(ws_consent, tmp_path):
    """A batch worker's files: signed and marked under the driver's grant, no audit record of their own; verify
    leads from each to the grant's record (the task's: actor, consent, the plate performer)."""
    from assets.disclosure import grant_disclosure

    ws, consent = ws_consent
    g = grant_disclosure(ws, {"command": "batch swap", "actor": "jane", "consent": consent.id, "production": "Film",
                              "use": "face_replace", "kind": "batch task", "file": "swap-0", "ingredients": [],
                              "performer": "stunt", "performer_consent": None})
    assert "secret" not in repr(g) and "PRIVATE" not in repr(g)
    ctx = DisclosureContext(None, "jane", consent.id, "Film", "face_replace", kind="composite", grant=g)
    records = len(entries(ws))
    for name in ("a.png", "b.png"):
        res = disclose_file(_png(tmp_path / name), ctx)
        assert res.disclosed and res.seq == g.seq
        rep = verify_file(tmp_path / name, ws)
        assert rep.c2pa.state == "trusted" and rep.watermark.found and rep.watermark.seq == g.seq
        assert rep.record.actor == "jane" and rep.record.performer == "stunt", rep.record
    assert len(entries(ws)) == records          # the worker appends nothing


def test_exr_gets_a_sidecar(ws_consent, tmp_path):
    ws, consent = ws_consent
    exr = tmp_path / "beauty.exr"
    exr.write_bytes(b"\x76\x2f\x31\x01" + bytes(range(256)) * 8)
    res = disclose_file(exr, _ctx(ws, consent))
    assert res.sidecar == tmp_path / "beauty.exr.c2pa" and res.payload is None and res.notes
    assert read_credentials(exr, sk.trust_anchor(ws)).state == "trusted"
    exr.write_bytes(exr.read_bytes()[:-1] + b"\x00")
    assert read_credentials(exr, sk.trust_anchor(ws)).state == "invalid"


def test_a_sequence_of_exr_frames_notes_the_missing_watermark_once(ws_consent, tmp_path, caplog):
    ws, consent = ws_consent
    (tmp_path / "shot").mkdir()
    with caplog.at_level(logging.WARNING, logger="assets.disclosure"):
        for i in range(3):
            exr = tmp_path / "shot" / f"{i:04d}.exr"
            exr.write_bytes(b"\x76\x2f\x31\x01" + bytes(range(256)) * 8 + bytes([i]))
            assert disclose_file(exr, _ctx(ws, consent)).notes        # every result still carries the note
    said = [r for r in caplog.records if "not watermarked" in r.getMessage()]
    assert len(said) == 1 and "0000.exr" in said[0].getMessage()
    for i in range(3):
        assert read_credentials(tmp_path / "shot" / f"{i:04d}.exr", sk.trust_anchor(ws)).state == "trusted"


def test_small_image_is_signed_without_the_mark(ws_consent, tmp_path):
    ws, consent = ws_consent
    res = disclose_file(_png(tmp_path / "tiny.png", h=64, w=64), _ctx(ws, consent))
    assert res.disclosed and res.payload is None and "smaller than the watermark needs" in res.notes[0]
    assert read_credentials(tmp_path / "tiny.png", sk.trust_anchor(ws)).state == "trusted"


def test_failures_leave_no_unsigned_file(tmp_path, monkeypatch):
    ws = init_workspace(tmp_path / "bare")               # no signing identity
    out = _png(tmp_path / "x.png")
    ctx = DisclosureContext(ws, "virtual", None, "demo", "render")
    with pytest.raises(sk.SigningIdentityError, match="no signing identity.*doppel keys init"):
        disclose_file(out, ctx)
    assert not out.exists()
    sk.init_keys(ws)
    out = _png(tmp_path / "y.png")
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    with pytest.raises(PermissionError, match="not writable"):
        disclose_file(out, ctx)


def test_expired_and_unreadable_identities_are_one_line(tmp_path, monkeypatch):
    ws = init_workspace(tmp_path / "w")
    sk.init_keys(ws)
    anchor, chain, key, _ = sk.generate_chain("Old", now=_dt.datetime(2020, 1, 1, tzinfo=_dt.UTC), signer_days=30)
    folder = sk.keys_dir(ws)
    (folder / sk.CHAIN_NAME).write_bytes(chain)
    (folder / sk.SIGNER_KEY_NAME).write_bytes(key)
    with pytest.raises(sk.SigningIdentityError, match=r"expired on 2020-01-31"):
        sk.load_identity(ws)
    sk.init_keys(ws, force=True)
    real = type(folder).read_bytes

    def deny(self):
        if self.name == sk.SIGNER_KEY_NAME:
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(type(folder), "read_bytes", deny)
    with pytest.raises(sk.SigningIdentityError, match="cannot read the signing key"):
        sk.load_identity(ws)


def test_keys_are_private_and_imported_chains_are_checked(tmp_path):
    ws = init_workspace(tmp_path / "w")
    info = sk.init_keys(ws, org="Studio")
    for name in (sk.SIGNER_KEY_NAME, sk.ROOT_KEY_NAME):
        assert (info.folder / name).stat().st_mode & 0o077 == 0
    with pytest.raises(sk.SigningIdentityError, match="already has"):
        sk.init_keys(ws)
    _, chain, _, _ = sk.generate_chain("A")
    _, _, other_key, _ = sk.generate_chain("B")
    (tmp_path / "c.pem").write_bytes(chain)
    (tmp_path / "k.pem").write_bytes(other_key)
    with pytest.raises(sk.SigningIdentityError, match="does not belong"):
        sk.init_keys(ws, cert=tmp_path / "c.pem", key=tmp_path / "k.pem", force=True)
    secret = (info.folder / sk.SIGNER_KEY_NAME).read_bytes()
    from assets import audit

    assert all(secret.decode().splitlines()[1] not in str(e.record) for e in audit.entries(ws))


def test_imported_certificate_signs_trusted(tmp_path):
    ws = init_workspace(tmp_path / "w")
    anchor, chain, key, _ = sk.generate_chain("Real CA Studio")
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    info = sk.init_keys(ws, cert=tmp_path / "chain.pem", key=tmp_path / "key.pem")
    assert info.source == "imported" and info.org == "Real CA Studio"
    assert not (info.folder / sk.ROOT_KEY_NAME).exists() and sk.trust_anchor(ws) == anchor
    out = _png(tmp_path / "s.png")
    disclose_file(out, DisclosureContext(ws, "virtual", None, "demo", "render"))
    assert verify_file(out, ws).c2pa.state == "trusted"


def test_a_video_keeps_its_audio_and_is_signed_without_being_read_whole(ws_consent, tmp_path, monkeypatch):
    """An MP4 (a swapped plate) is watermarked frame by frame with its audio, colour tags and timecode kept, and
    signed through streams: a 10-minute 4K video is gigabytes, never read into memory whole."""
    import subprocess
    from pathlib import Path

    import imageio.v2 as imageio
    import imageio_ffmpeg

    ws, consent = ws_consent
    out = tmp_path / "shot.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=256x192:rate=24", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                    "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000", "-map", "0:v", "-map", "1:a", "-map",
                    "2:a", "-t", "1", "-vf", "setparams=colorspace=bt709:range=tv", "-c:v", "libx264", "-pix_fmt",
                    "yuv420p", "-c:a", "aac", "-shortest", "-timecode", "01:00:00:00", str(out)], check=True)
    whole = Path.read_bytes

    def read_bytes(self):
        assert self.suffix != ".mp4", f"{self} read whole"
        return whole(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    res = disclose_file(out, _ctx(ws, consent, kind="composite"))
    monkeypatch.undo()
    assert res.disclosed
    with imageio.get_reader(out, format="FFMPEG") as r:
        meta = r.get_meta_data()
        n = sum(1 for _ in r)
    assert meta["audio_codec"] == "aac" and n == 24 and meta["fps"] == 24.0
    header = read_stream_header(out)
    assert (header.colour, header.timecode) == ({"range": "tv", "colorspace": "bt709"}, "01:00:00:00")
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True,
                          text=True).stderr
    assert info.count("Audio: aac") == 2                         # both audio tracks
    rep = verify_file(out, ws)
    assert rep.c2pa.state == "trusted" and rep.watermark.found and rep.watermark.seq == res.seq
    assert not list(tmp_path.glob(".shot.mp4.*"))                # no temporary file left


def test_a_10_bit_prores_is_disclosed_in_its_codec_and_keeps_its_precision_under_the_mark(ws_consent, tmp_path):
    """`disclose_file` on a 10-bit ProRes .mov: embedded C2PA, the watermark found, the codec and depth kept, and
    the frames' 10-bit codes moved only by the mark (through 8 bits every code moved, twice as far on average)."""
    import subprocess

    import imageio_ffmpeg

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    ws, consent = ws_consent
    out = tmp_path / "shot.mov"
    subprocess.run([ff, "-v", "error", "-f", "lavfi", "-i", "gradients=size=320x192:rate=24:speed=0.01", "-frames:v",
                    "6", "-vf", "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv", "-c:v",
                    "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le", str(out)], check=True)

    def codes(path):
        raw = subprocess.run([ff, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb48le", "-"],
                             capture_output=True, check=True).stdout
        return np.frombuffer(raw, "<u2").astype(float) / 64

    before = codes(out)
    res = disclose_file(out, _ctx(ws, consent, kind="composite"))
    header = read_stream_header(out)
    assert res.disclosed and (header.codec, header.bit_depth) == ("prores", 10)
    rep = verify_file(out, ws)
    assert rep.c2pa.state == "trusted" and rep.watermark.found and rep.watermark.seq == res.seq
    off = codes(out) - before                                     # 10-bit levels; an 8-bit step is 4
    assert np.abs(off).mean() < 6 and (off == 0).mean() > 0.1    # 4.1, 0.20 (through 8 bits: 8.8, 0.00)


def test_a_16_bit_tiff_is_disclosed_with_its_low_bits_kept_under_the_mark(ws_consent, tmp_path):
    """`disclose_file` on a 16-bit TIFF: embedded C2PA and the watermark found, and the marks move its codes by
    whole 8-bit steps (x 257), so the plate's low bits stay (taken as drawn, every marked pixel lost them)."""
    import cv2

    ws, consent = ws_consent
    out = tmp_path / "frame.tif"
    rng = np.random.default_rng(0)
    src = textured(3, 192, 256).astype(np.uint16) * 257 + rng.integers(0, 120, (192, 256, 3), dtype=np.uint16)
    cv2.imwrite(str(out), src[..., ::-1])
    res = disclose_file(out, _ctx(ws, consent, kind="composite"))
    rep = verify_file(out, ws)
    assert res.disclosed and rep.c2pa.state == "trusted" and rep.watermark.found
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[..., ::-1].astype(int)
    assert np.any(got != src, axis=-1).mean() > 0.5 and np.all((got - src) % 257 == 0)


def test_a_file_disclosed_in_a_forked_copy_of_the_workspace_is_not_given_the_copys_record(ws_consent, tmp_path):
    """A workspace copied to a second site keeps its id and keys; both go on appending audit records with the same
    numbers. A file disclosed at one site named a record number that, at the other, is another file's record:
    verify there gave that record's actor and consent. The manifest now names the record's chain hash too."""
    import shutil

    ws, consent = ws_consent
    fork = tmp_path / "site-b"
    shutil.copytree(ws.root, fork)
    from assets.workspace import Workspace

    ws_b = Workspace.open(fork)
    here = disclose_file(_png(tmp_path / "a.png"), _ctx(ws, consent))
    there = disclose_file(_png(tmp_path / "b.png", seed=3), _ctx(ws_b, consent, kind="composite"))
    assert here.seq == there.seq                                 # the same number, two different records
    rep = verify_file(tmp_path / "a.png", ws_b)
    assert rep.c2pa.state == "trusted" and rep.record.actor is None and "not the one the file" in rep.record.note
    assert verify_file(tmp_path / "a.png", ws).record.consent_status == "valid"
