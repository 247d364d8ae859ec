"""Consent fails closed (issue 13 section 1, issue 21 section 1): unreadable, missing or edited manifests are
refusals, an input is the virtual actor only by positive proof, and content identity survives a removed or
edited manifest. Every refusal is one line, writes nothing, and is in the audit log."""

import datetime as dt
import json

import numpy as np
import pytest

from assets import audit
from assets.actors import add_actor
from assets.consent import grant
from assets.workspace import Workspace
from core.storage import write_manifest
from doppel.consent_gate import gate_from_cli, gated
from doppel.synthetic_provenance import write_synthetic_session_manifest
from mocap_retarget.bvh import write_bvh
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk
from tests.assets.conftest import make_rig
from tests.cli_runner import run_cli

SOON = dt.date.today() + dt.timedelta(days=30)


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv("DOPPEL_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe")
    grant(ws, "jane-doe", ["scan", "rig", "retarget", "export"], "Dune", SOON)
    return ws


def jane_rig(ws, folder):
    """A rig of Jane's registered in the workspace the way `doppel rig --actor jane-doe` registers it."""
    rig = make_rig()
    rig.metadata = {**rig.metadata, "actor_id": "jane-doe", "consent_id": "from the gate"}
    with gated(ws, "jane-doe", "rig", "Dune", command="rig") as run:
        rig.save(folder)
        run.add_output(folder, kind="rig")
    return folder


def clip(tmp_path):
    path = tmp_path / "walk.bvh"
    write_bvh(path, synthetic_walk(WalkSpec(seconds=0.2, fps=30), names=SCHEMES["mixamo"], rest="A"), units="cm")
    return path


def last_record(ws):
    return audit.entries(ws, last=1)[0].record


def refused_once(code, out, err, written, ws, command):
    """The common checks of a refusal: exit 1, one line, nothing written, audited."""
    assert code == 1, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not written.exists()
    rec = last_record(ws)
    assert rec["action"] == "gate.refused" and rec["command"] == command
    return rec["detail"]["reason"]


CORRUPTIONS = {
    "truncated": lambda text: text[: len(text) // 2].encode(),
    "binary garbage": lambda text: bytes(range(256)) * 4,
    "json list": lambda text: b"[1, 2, 3]",
    "json string": lambda text: b'"rig"',
    "deeply nested": lambda text: b"[" * 100_000 + b"]" * 100_000,
    "wrong schema": lambda text: json.dumps({**json.loads(text), "schema_version": 7}).encode(),
    "outputs not objects": lambda text: json.dumps({**json.loads(text), "outputs": ["rig.npz"]}).encode(),
}


@pytest.mark.parametrize("command", ["export", "retarget"])
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_manifest_of_a_real_actors_rig_is_a_refusal(tmp_path, capsys, ws, command, corruption):
    rig = jane_rig(ws, tmp_path / "rig")
    manifest = rig / "manifest.json"
    manifest.write_bytes(CORRUPTIONS[corruption](manifest.read_text()))
    before = len(audit.entries(ws))
    if command == "export":
        out = tmp_path / "jane.glb"
        args = ("export", rig, "--out", out, "--no-texture")
    else:
        out = tmp_path / "anim"
        args = ("retarget", clip(tmp_path), "--rig", rig, "--out", out)
    code, stdout, err = run_cli(capsys, *args, "-W", ws.root)
    reason = refused_once(code, stdout, err, out, ws, command)
    assert str(manifest) in err and str(manifest) in reason
    assert "re-run the stage" in err or "restore" in err
    assert len(audit.entries(ws)) == before + 1
    # --actor cannot override an unreadable manifest, not even with the right actor and production
    code, _, err = run_cli(capsys, *args, "-W", ws.root, "--actor", "jane-doe", "--production", "Dune")
    refused_once(code, "", err, out, ws, command)


def test_edited_or_removed_rig_manifest_never_makes_it_virtual(tmp_path, capsys, ws):
    rig = jane_rig(ws, tmp_path / "rig")
    manifest = json.loads((rig / "manifest.json").read_text())
    assert manifest["signature"]["alg"] == "hmac-sha256"
    key_file = ws.root / ".doppel-manifest-key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.read_bytes().hex() not in json.dumps(manifest)
    manifest["params"]["actor_id"] = "virtual"
    (rig / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "x.glb"
    code, _, err = run_cli(capsys, "export", rig, "--out", out, "--no-texture", "-W", ws.root)
    reason = refused_once(code, "", err, out, ws, "export")
    assert "edited after Doppel wrote it" in reason and "jane-doe" in reason
    code, _, err = run_cli(capsys, "export", rig, "--out", out, "--no-texture", "-W", ws.root, "--actor", "virtual")
    refused_once(code, "", err, out, ws, "export")
    # the manifest removed: the rig is still Jane's by content (rig.npz is registered), so her consent applies
    (rig / "manifest.json").unlink()
    code, _, err = run_cli(capsys, "export", rig, "--out", out, "--no-texture", "-W", ws.root)
    assert code == 1 and "--production is required for actor 'jane-doe'" in err and not out.exists()
    code, _, err = run_cli(capsys, "export", rig, "--out", out, "--no-texture", "-W", ws.root, "--actor", "virtual")
    assert "made from actor 'jane-doe'" in refused_once(code, "", err, out, ws, "export")


def fake_ingest(ws, session, out, actor="jane-doe"):
    """What `doppel capture ingest SESSION --out OUT --actor jane-doe --production Dune` registers (its gate, with
    a stand-in for MediaPipe's work)."""
    with gate_from_cli(ws.root, actor, "Dune", "scan", command="capture ingest", inputs=[session]) as run:
        out.mkdir()
        np.savez(out / "landmarks.npz", pose=np.arange(99.0))
        (out / "triangulated.json").write_text('{"frames": {}}')
        write_manifest(out, "capture_ingest", params={"actor_id": actor},
                       outputs={"landmarks": "landmarks.npz", "triangulated": "triangulated.json"})
        run.add_output(out, kind="landmarks")


def real_session(tmp_path):
    """A capture session as a real rig writes it: images/ + calibration.json, no manifest."""
    s = tmp_path / "S"
    (s / "images").mkdir(parents=True)
    (s / "images" / "cam0.png").write_bytes(b"a real person's photo")
    (s / "calibration.json").write_text('{"cameras": []}')
    return s


@pytest.mark.parametrize("tamper", ["rm manifest", "actor_id virtual", "actor_id other"])
def test_fit_after_the_ingest_manifest_is_removed_or_edited(tmp_path, capsys, ws, tamper):
    """Issue 21 section 1: never the virtual actor; Jane's or refused."""
    session, ing = real_session(tmp_path), tmp_path / "ing"
    fake_ingest(ws, session, ing)
    if tamper == "rm manifest":
        (ing / "manifest.json").unlink()
    else:
        m = json.loads((ing / "manifest.json").read_text())
        m["params"]["actor_id"] = tamper.split()[1]
        (ing / "manifest.json").write_text(json.dumps(m))
    out = tmp_path / "f"
    code, _, err = run_cli(capsys, "fit", session, "--landmarks", ing, "--out", out, "-W", ws.root,
                           "--production", "Dune")
    reason = refused_once(code, "", err, out, ws, "fit")
    if tamper == "rm manifest":  # attributed to Jane by content: refused by her consent (it has no 'fit' use)
        assert last_record(ws)["actor"] == "jane-doe" and "no valid consent from actor 'jane-doe'" in reason
    else:
        assert "edited after Doppel wrote it" in reason
    assert all(r.record.get("actor") != "virtual" for r in audit.entries(ws))


def test_session_without_provenance_needs_an_actor_in_a_workspace(tmp_path, capsys, ws):
    session = real_session(tmp_path)
    code, _, err = run_cli(capsys, "capture", "ingest", session, "--out", tmp_path / "ing", "-W", ws.root)
    reason = refused_once(code, "", err, tmp_path / "ing", ws, "capture ingest")
    assert "carries no provenance (it has no manifest)" in reason and "--actor" in reason
    assert str(session) in err
    code, _, err = run_cli(capsys, "capture", "ingest", session, "--out", tmp_path / "ing", "-W", ws.root,
                           "--actor", "virtual")
    assert "--actor virtual needs proof" in refused_once(code, "", err, tmp_path / "ing", ws, "capture ingest")
    # once ingested as Jane's, the session itself is known by content: nobody else's, never virtual
    fake_ingest(ws, session, tmp_path / "ing1")
    add_actor(ws, "John Roe")
    code, _, err = run_cli(capsys, "capture", "ingest", session, "--out", tmp_path / "ing2", "-W", ws.root,
                           "--actor", "john-roe", "--production", "Dune")
    assert "made from actor 'jane-doe'" in refused_once(code, "", err, tmp_path / "ing2", ws, "capture ingest")


def synthetic_session(folder, key=None, tag="a"):
    (folder / "images").mkdir(parents=True)
    for cam in ("ring00", "ring01"):
        (folder / "images" / f"{cam}.png").write_bytes(f"rendered {cam} {tag}".encode())
    (folder / "calibration.json").write_text('{"cameras": ["ring00", "ring01"]}')
    return write_synthetic_session_manifest(folder, seed=3, settings={"cameras": 2, "size": 64, "frames": 1},
                                            key=key)


def gate_actor(ws_root, session, actor=None):
    """The actor `capture ingest SESSION` would run as (ConsentError when refused)."""
    with gate_from_cli(ws_root, actor, None, "scan", command="capture ingest", inputs=[session]) as run:
        return run.auth.actor_id


@pytest.mark.parametrize("change", ["replace an image", "add a photo", "unsigned", "forged in another workspace"])
def test_synthetic_session_only_by_positive_proof(tmp_path, ws, change):
    from assets.consent import ConsentError

    session = tmp_path / "synth" / "session"
    manifest = synthetic_session(session, key=ws.manifest_key())
    assert manifest["stage"] == "synthetic_capture" and manifest["params"]["seed"] == 3
    assert manifest["params"]["generator"] == "doppel.synthetic_capture.synthesize_capture"
    assert {e["path"] for e in manifest["outputs"].values()} == {"images/ring00.png", "images/ring01.png",
                                                                  "calibration.json"}
    assert gate_actor(ws.root, session) == "virtual"
    if change == "replace an image":
        (session / "images" / "ring00.png").write_bytes(b"a real person's photo")
    elif change == "add a photo":
        (session / "images" / "ring02.png").write_bytes(b"a real person's photo")
    elif change == "unsigned":
        synthetic_session(tmp_path / "other", key=None, tag="b")
        session = tmp_path / "other"
    else:
        synthetic_session(tmp_path / "other", key=Workspace.init(tmp_path / "ws2").manifest_key(), tag="b")
        session = tmp_path / "other"
    with pytest.raises(ConsentError, match="carries no provenance"):
        gate_actor(ws.root, session)
    with pytest.raises(ConsentError, match="--actor virtual needs proof"):
        gate_actor(ws.root, session, "virtual")
    assert last_record(ws)["action"] == "gate.refused"
    # outside a workspace there is no secret: an unsigned proof is taken as written, a broken one is 'unknown'
    assert gate_actor(None, session) == ("unknown" if change in ("replace an image", "add a photo") else "virtual")


def test_capture_synth_writes_the_proof(tmp_path, capsys, ws):
    out = tmp_path / "synth"
    code, _, err = run_cli(capsys, "capture", "synth", "--out", out, "--cameras", 2, "--size", 64, "--seed", 1,
                           "-W", ws.root)
    assert code == 0, err
    manifest = json.loads((out / "session" / "manifest.json").read_text())
    files = sorted(p.relative_to(out / "session").as_posix() for p in (out / "session").rglob("*")
                   if p.is_file() and p.name != "manifest.json")
    assert sorted(e["path"] for e in manifest["outputs"].values()) == files and len(files) == 3
    assert manifest["params"]["seed"] == 1 and "signature" in manifest
    assert gate_actor(ws.root, out / "session") == "virtual"


def humanoid_rig(folder, actor=None):
    """A rig of the walk's own skeleton (retargets cleanly), saved outside any workspace."""
    from rigging import Rig

    skel = synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"])
    rest = skel.rest_positions()
    B = np.repeat(np.eye(4)[None], skel.num_joints, axis=0)
    B[:, :3, 3] = rest
    verts, faces, idx = [], [], []
    for j, p in enumerate(skel.parents):
        if p >= 0:
            verts += [rest[p], rest[j], (rest[p] + rest[j]) / 2 + 0.02]
            faces.append([len(verts) - 3, len(verts) - 2, len(verts) - 1])
            idx += [p, p, p]
    rig = Rig(joint_names=skel.names, parents=skel.parents, bind_matrices=B, vertices=np.array(verts, np.float32),
              faces=np.array(faces), skin_indices=np.array(idx)[:, None],
              skin_weights=np.ones((len(idx), 1), np.float32),
              metadata={"model": "test"} | ({"actor_id": actor} if actor else {}))
    rig.save(folder)
    return folder


def test_outside_a_workspace_outputs_record_the_actor_unknown(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DOPPEL_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    rig = humanoid_rig(tmp_path / "rig")  # its manifest records no actor
    out = tmp_path / "anim"
    code, _, err = run_cli(capsys, "retarget", clip(tmp_path), "--rig", rig, "--out", out, "--preview-size", 64)
    assert code == 0, err
    params = json.loads((out / "manifest.json").read_text())["params"]
    assert params["actor_id"] == "unknown" and params["consent_id"].startswith("not checked")
    # ... so in a workspace that output is nobody's proof of anything: it needs --actor, and never virtual
    ws = Workspace.init(tmp_path / "ws")
    code, _, err = run_cli(capsys, "export", rig, "--anim", out, "--out", tmp_path / "a.glb", "-W", ws.root,
                           "--no-texture")
    assert "carries no provenance" in refused_once(code, "", err, tmp_path / "a.glb", ws, "export")
    code, _, err = run_cli(capsys, "export", rig, "--anim", out, "--out", tmp_path / "a.glb", "-W", ws.root,
                           "--no-texture", "--actor", "virtual")
    assert "needs proof" in refused_once(code, "", err, tmp_path / "a.glb", ws, "export")


def test_a_file_input_is_known_by_its_content(tmp_path, capsys, ws):
    """An animation file copied out of Jane's retarget folder (no manifest beside it) is still Jane's."""
    anim_dir = tmp_path / "take"
    with gated(ws, "jane-doe", "retarget", "Dune", command="retarget") as run:
        anim_dir.mkdir()
        np.savez(anim_dir / "animation.npz", fps=np.array(30.0))
        write_manifest(anim_dir, "retarget", params={"actor_id": "jane-doe"}, outputs={"animation": "animation.npz"})
        run.add_output(anim_dir, kind="animation")
    loose = tmp_path / "copy.npz"
    loose.write_bytes((anim_dir / "animation.npz").read_bytes())
    rig = humanoid_rig(tmp_path / "virtual_rig", actor="virtual")  # unsigned: no proof here, but no other owner
    code, _, err = run_cli(capsys, "export", rig, "--anim", loose, "--out", tmp_path / "v.glb", "-W", ws.root,
                           "--actor", "virtual", "--no-texture")
    reason = refused_once(code, "", err, tmp_path / "v.glb", ws, "export")
    assert "made from actor 'jane-doe'" in reason and "copy.npz" in reason


def test_lineage_survives_a_removed_manifest_so_revocation_lists_the_fit(tmp_path, ws):
    from assets.consent import consents_for
    from assets.lineage import outputs_under_consent

    session, ing = real_session(tmp_path), tmp_path / "ing"
    fake_ingest(ws, session, ing)
    (ing / "manifest.json").unlink()
    grant(ws, "jane-doe", ["fit"], "Dune", SOON)
    with gate_from_cli(ws.root, None, "Dune", "fit", command="fit", inputs=[session, ing]) as run:
        (tmp_path / "fit.txt").write_text("fit")
        run.add_output(tmp_path / "fit.txt", kind="fit")
    assert run.auth.actor_id == "jane-doe"
    scan = next(c for c in consents_for(ws, "jane-doe") if "scan" in c.uses)
    direct, derived = outputs_under_consent(ws, scan.id)
    assert [a.kind for a in direct] == ["landmarks"] and [a.kind for a in derived] == ["fit"]
