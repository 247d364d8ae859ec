"""`doppel keys`, `doppel verify`, and disclosure of a real actor's rig preview (--no-provenance refused)."""

import json

import numpy as np
from PIL import Image

from assets import signing_keys as sk
from assets.actors import add_actor
from assets.workspace import init_workspace
from tests.assets.provenance_helpers import textured
from tests.cli_runner import run_cli


def test_keys_init_show_and_verify(tmp_path, capsys):
    root = tmp_path / "ws"
    init_workspace(root)
    code, out, err = run_cli(capsys, "keys", "init", "--org", "Acme Pictures", "-W", root)
    assert code == 0, err
    assert "Acme Pictures" in out and "BEGIN" not in out
    assert (root / sk.KEYS_DIR / sk.SIGNER_KEY_NAME).stat().st_mode & 0o777 == 0o600
    code, _, err = run_cli(capsys, "keys", "init", "-W", root)
    assert code == 1 and "already has a signing identity" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run_cli(capsys, "keys", "show", "-W", root)
    assert code == 0 and "Acme Pictures" in out
    # verify: a plain file is absent (exit 0), a corrupt one is one error (exit 1)
    Image.fromarray(textured(0)).save(tmp_path / "plain.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    code, out, _ = run_cli(capsys, "verify", tmp_path / "plain.png", "--json", "-W", root)
    rep = json.loads(out)
    assert code == 0 and rep["c2pa"]["state"] == "absent" and rep["watermark"]["found"] is False
    code, out, _ = run_cli(capsys, "verify", tmp_path / "plain.png", tmp_path / "broken.png", "-W", root)
    assert code == 1 and "not a readable image" in out
    # a delivery folder: every image and video under it (it said "no such file" of a folder)
    (tmp_path / "delivery" / "cam0").mkdir(parents=True)
    Image.fromarray(textured(1)).save(tmp_path / "delivery" / "cam0" / "0000.png")
    Image.fromarray(textured(2)).save(tmp_path / "delivery" / "still.jpg")
    (tmp_path / "delivery" / "notes.json").write_text("{}")
    code, out, _ = run_cli(capsys, "verify", tmp_path / "delivery", "-W", root)
    assert code == 0 and "cam0/0000.png" in out and "still.jpg" in out and "notes.json" not in out
    assert "verify: 2 files, 0 invalid" in out
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "verify", tmp_path / "empty", "-W", root)
    assert code == 1 and "a folder with no image, video or 3D export in it" in err
    code, _, err = run_cli(capsys, "verify", tmp_path / "missing.png", "-W", root)
    assert code == 1 and "missing.png: no such file or folder" in err


def test_real_actor_preview_is_signed_and_no_provenance_is_refused(tmp_path, capsys):
    import datetime as _dt

    from assets.consent import grant

    root = tmp_path / "ws"
    ws = init_workspace(root)
    add_actor(ws, "Jane Roe", actor_id="jane")
    grant(ws, "jane", ["rig"], "Film", (_dt.date.today() + _dt.timedelta(days=9)).isoformat())
    base = ["rig", "--actor", "jane", "--production", "Film", "--preview-size", 160, "-W", root]
    code, _, err = run_cli(capsys, *base, "--out", tmp_path / "r0", "--no-provenance")
    assert code == 1 and "--no-provenance is only allowed for the virtual actor" in err
    assert not (tmp_path / "r0").exists()
    code, _, err = run_cli(capsys, *base, "--out", tmp_path / "r1", "--label", "Synthetic: digital double")
    assert code == 0, err
    assert (root / sk.KEYS_DIR / sk.CHAIN_NAME).is_file()          # identity made on first use
    code, out, _ = run_cli(capsys, "verify", tmp_path / "r1" / "preview.png", "--json", "-W", root)
    rep = json.loads(out)
    assert code == 0 and rep["c2pa"]["state"] == "trusted" and rep["watermark"]["found"]
    assert rep["record"]["actor"] == "jane" and rep["record"]["consent_status"] == "valid"
    assert rep["c2pa"]["assertion"]["use"] == "rig"
    img = np.asarray(Image.open(tmp_path / "r1" / "preview.png").convert("RGB"))
    assert img[-3:, :20].mean() < 40                                  # the visible label's dark band
    # the manifest hashes the signed preview
    from core.storage import read_manifest, sha256_file

    entry = read_manifest(tmp_path / "r1")["outputs"]["preview"]
    assert entry["sha256"] == sha256_file(tmp_path / "r1" / "preview.png")


def test_virtual_actor_may_skip_provenance(tmp_path, capsys):
    root = tmp_path / "ws"
    init_workspace(root)
    code, _, err = run_cli(capsys, "rig", "--out", tmp_path / "v", "--preview-size", 64, "--no-provenance",
                           "-W", root)
    assert code == 0, err
    code, out, _ = run_cli(capsys, "verify", tmp_path / "v" / "preview.png", "--json", "-W", root)
    assert json.loads(out)["c2pa"]["state"] == "absent"


def test_expired_identity_fails_before_the_work_in_one_line(tmp_path, capsys):
    import datetime as _dt

    root = tmp_path / "ws"
    ws = init_workspace(root)
    sk.init_keys(ws)
    _, chain, key, _ = sk.generate_chain("Old", now=_dt.datetime(2020, 1, 1, tzinfo=_dt.UTC), signer_days=30)
    (sk.keys_dir(ws) / sk.CHAIN_NAME).write_bytes(chain)
    (sk.keys_dir(ws) / sk.SIGNER_KEY_NAME).write_bytes(key)
    code, _, err = run_cli(capsys, "rig", "--out", tmp_path / "r", "--preview-size", 64, "-W", root)
    assert code == 1 and "expired on 2020-01-31" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_real_actors_retarget_preview_movie_is_marked_as_it_is_encoded(tmp_path, capsys, clips, monkeypatch):
    """The retarget's preview.mp4 for a real actor is watermarked frame by frame as it is encoded and signed
    (one H.264 encode: the re-encoding route is never taken); `verify` trusts it and reads its record."""
    import datetime as _dt

    import assets.disclosure as disclosure
    from assets.consent import grant

    clip, target = clips
    root = tmp_path / "ws"
    ws = init_workspace(root)
    add_actor(ws, "Jane Roe", actor_id="jane")
    grant(ws, "jane", ["retarget"], "Film", (_dt.date.today() + _dt.timedelta(days=9)).isoformat())

    def no_second_encode(*a, **k):
        raise AssertionError("the preview movie was encoded twice")

    monkeypatch.setattr(disclosure, "_rewrite_video", no_second_encode)
    code, _, err = run_cli(capsys, "retarget", clip, "--rig", target, "--out", tmp_path / "a", "--actor", "jane",
                           "--production", "Film", "-W", root)
    assert code == 0, err
    code, out, _ = run_cli(capsys, "verify", tmp_path / "a" / "preview.mp4", "--json", "-W", root)
    rep = json.loads(out)
    assert code == 0 and rep["c2pa"]["state"] == "trusted" and rep["watermark"]["found"], rep
    assert rep["record"]["actor"] == "jane" and rep["c2pa"]["assertion"]["use"] == "retarget"


def test_a_reviewer_who_cannot_write_the_workspace_reads_and_verifies_but_records_nothing(tmp_path, capsys,
                                                                                          monkeypatch):
    """A supervisor with read access only (the index and the keys are the pipeline account's): every listing
    failed with 'attempt to write a readonly database', `verify` said 'no workspace' or 'Permission denied', and a
    gated command failed on the manifest key. Now listings, the audit check and `verify` (trusted through the
    index's copy of the trust anchor, the record found through the C2PA assertion; the watermark, keyed by a
    secret, said to be unread) work, and a command that records is refused in one line, nothing written."""
    import datetime as _dt
    import os
    import pathlib

    from assets.consent import grant
    from assets.manifest_signing import KEY_NAME

    root = tmp_path / "ws"
    ws = init_workspace(root)
    add_actor(ws, "Jane Roe", actor_id="jane")
    grant(ws, "jane", ["rig"], "Film", (_dt.date.today() + _dt.timedelta(days=9)).isoformat())
    code, _, err = run_cli(capsys, "rig", "--actor", "jane", "--production", "Film", "--preview-size", 96, "-W",
                           root, "--out", tmp_path / "r1")
    assert code == 0, err
    secret = {root / KEY_NAME, root / sk.KEYS_DIR}
    real_access, real_read = os.access, pathlib.Path.read_bytes

    def access(path, mode, *a, **k):                 # what a user outside the pipeline account may do here
        p = pathlib.Path(path)
        if (mode & os.W_OK and (p == root or root in p.parents)) or \
                (mode & os.R_OK and any(s == p or s in p.parents for s in secret)):
            return False
        return real_access(path, mode, *a, **k)

    def read_bytes(self):
        if any(s == self or s in self.parents for s in secret):
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    code, out, err = run_cli(capsys, "actor", "list", "-W", root)
    assert code == 0 and "jane" in out, err
    code, out, err = run_cli(capsys, "audit", "verify", "-W", root)
    assert code == 0 and "audit log OK" in out, err
    code, out, err = run_cli(capsys, "verify", tmp_path / "r1" / "preview.png", "--json", "-W", root)
    rep = json.loads(out)
    assert code == 0 and rep["c2pa"]["state"] == "trusted", (rep, err)
    assert rep["record"]["actor"] == "jane" and rep["record"]["source"] == "c2pa"
    assert not rep["watermark"]["found"] and "cannot read the workspace's keys" in rep["watermark"]["note"]
    code, out, _ = run_cli(capsys, "verify", tmp_path / "r1" / "preview.png", "-W", root)
    assert "this user cannot read its keys; the trust anchor from the index, no watermark key" in " ".join(out.split())
    code, _, err = run_cli(capsys, "rig", "--actor", "jane", "--production", "Film", "--preview-size", 96, "-W",
                           root, "--out", tmp_path / "r2")
    assert code == 1 and "cannot write the workspace's index" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r2").exists()
