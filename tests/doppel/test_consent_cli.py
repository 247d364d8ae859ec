"""The consent CLI end to end, and a gated command written the way stage commands adopt the gate."""

import datetime as dt
import json
import re
import sqlite3
from pathlib import Path

import pytest

import doppel.pipeline.demo as demo_pipeline
from assets import audit
from assets.workspace import Workspace
from core.storage import sha256_file, write_manifest
from doppel.cli import app, main
from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli
from doppel.report import Section
from doppel.synthetic_provenance import write_synthetic_session_manifest

FUTURE = (dt.date.today() + dt.timedelta(days=30)).isoformat()


def probe_fit(src: Path, out: Path, workspace: WorkspaceOpt = None, actor: ActorOpt = None,
              production: ProductionOpt = None) -> None:
    """A stage command written as the real ones adopt the gate (see doppel/consent_gate.py)."""
    with gate_from_cli(workspace, actor, production, use="fit", command="probe-fit", inputs=[src]) as run:
        out.write_text(f"fit of {src.name}\n")
        run.add_output(out, kind="fit")


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("DOPPEL_WORKSPACE", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)  # Rich's 80 columns off a terminal: tables must still be whole
    monkeypatch.chdir(tmp_path)
    app.command("probe-fit")(probe_fit)

    def run(*args):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        out = capsys.readouterr()
        return exc.value.code, out.out, out.err

    yield run
    app.registered_commands.pop()


def test_consent_workflow_through_the_cli(cli, tmp_path):
    ws = tmp_path / "ws"
    assert cli("init", ws)[0] == 0
    code, out, _ = cli("actor", "add", "Jane Doe", "--workspace", ws)
    assert code == 0 and "actor added: jane-doe" in out
    src = tmp_path / "capture.txt"
    src.write_text("photos")
    jane = ("-W", ws, "--actor", "jane-doe", "--production", "Dune")
    # No consent: refused with one line, nothing written.
    code, out, err = cli("probe-fit", src, tmp_path / "fit.txt", *jane)
    assert code == 1 and not (tmp_path / "fit.txt").exists()
    assert err.startswith("error: refused: no valid consent from actor 'jane-doe' for use 'fit'")
    assert err.count("\n") == 1
    doc = tmp_path / "signed.pdf"
    doc.write_bytes(b"%PDF signed")
    code, out, err = cli("consent", "grant", "jane-doe", "--uses", "scan,fit", "--production", "Dune", "--expires",
                         FUTURE, "--document", doc, "-W", ws)
    assert code == 0, err
    cid = out.split()[1].rstrip(":")
    assert cid.startswith("c-") and sha256_file(doc)[:16] in out
    code, out, err = cli("probe-fit", src, tmp_path / "fit.txt", *jane)
    assert code == 0, err
    assert (tmp_path / "fit.txt").is_file()
    # Another production: refused.
    code, _, err = cli("probe-fit", src, tmp_path / "fit2.txt", "-W", ws, "--actor", "jane-doe", "--production",
                       "Other")
    assert code == 1 and f"{cid} is for production 'Dune'" in err
    code, out, _ = cli("consent", "show", "jane-doe", "-W", ws)
    assert code == 0 and cid in out and "valid" in out and "scan,fit" in out
    code, out, _ = cli("assets", "list", "--actor", "jane-doe", "-W", ws)
    assert code == 0 and "fit.txt" in out
    # off a terminal (a log, a pipe) the table's cells are whole, not cut to 80 columns
    assert any(str(tmp_path / "fit.txt") in line and "Dune" in line for line in out.splitlines()), out
    code, out, _ = cli("consent", "revoke", cid, "--reason", "actor withdrew", "-W", ws)
    assert code == 0 and "revoked" in out and "fit.txt" in out and "outputs to withdraw" in out
    code, _, err = cli("probe-fit", src, tmp_path / "fit3.txt", "-W", ws, "--actor", "jane-doe", "--production",
                       "Dune")
    assert code == 1 and f"{cid} revoked" in err and not (tmp_path / "fit3.txt").exists()
    code, out, _ = cli("consent", "show", "jane-doe", "-W", ws)
    assert "revoked" in out and "actor withdrew" in out and "fit.txt" in out
    code, out, _ = cli("assets", "list", "--actor", "jane-doe", "-W", ws)      # the listing says so too
    assert code == 0 and f"{cid} (revoked: withdraw)" in out
    code, out, _ = cli("assets", "list", "--actor", "jane-doe", "--tree", "-W", ws)
    assert code == 0 and f"{cid} (revoked: withdraw)" in out
    code, out, _ = cli("audit", "verify", "-W", ws)
    assert code == 0 and "audit log OK: 7 records" in out  # actor, grant, refusal, fit, refusal, revoke, refusal
    assert re.search(r"audit log OK: 7 records, head 7 [0-9a-f]{64}\n", out), out     # the head hash on its line
    code, out, _ = cli("audit", "show", "--last", "2", "-W", ws)
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["action"] for r in recs] == ["consent.revoke", "gate.refused"]
    # Tampering is named, exit 1.
    con = sqlite3.connect(ws / "doppel.sqlite")
    con.execute("DROP TRIGGER audit_no_delete")
    con.execute("DELETE FROM audit WHERE seq=4")
    con.commit()
    con.close()
    code, _, err = cli("audit", "verify", "-W", ws)
    assert code == 1 and "audit record 4 deleted" in err


def test_gate_option_errors_and_workspace_defaults(cli, tmp_path, monkeypatch):
    src = tmp_path / "capture.txt"
    src.write_text("photos")
    # Outside any workspace an input without provenance still runs, as the actor 'unknown' (never virtual) ...
    code, _, err = cli("probe-fit", src, tmp_path / "o.txt")
    assert code == 0, err
    # ... and cannot be declared the virtual actor without proof that it is synthetic.
    code, _, err = cli("probe-fit", src, tmp_path / "o.txt", "--actor", "virtual")
    assert code == 1 and "--actor virtual needs proof" in err and str(src) in err and err.count("\n") == 1
    code, _, err = cli("probe-fit", src, tmp_path / "o.txt", "--actor", "jane-doe")
    assert code == 1 and "--production is required" in err
    code, _, err = cli("probe-fit", src, tmp_path / "o.txt", "--actor", "jane-doe", "--production", "Dune")
    assert code == 1 and "not a Doppel workspace" in err  # cwd is not a workspace
    ws = Workspace.init(tmp_path / "ws")
    monkeypatch.setenv("DOPPEL_WORKSPACE", str(ws.root))  # $DOPPEL_WORKSPACE is the default
    assert cli("actor", "add", "Jane Doe")[0] == 0
    code, _, err = cli("probe-fit", src, tmp_path / "o.txt", "--actor", "jane-doe", "--production", "Dune")
    assert code == 1 and "refused" in err
    # In a workspace an input without provenance needs --actor: one line, nothing written, audited.
    code, _, err = cli("probe-fit", src, tmp_path / "o2.txt")
    assert code == 1 and "carries no provenance" in err and "--actor" in err and not (tmp_path / "o2.txt").exists()
    rec = audit.entries(ws)[-1].record
    assert rec["action"] == "gate.refused" and "no provenance" in rec["detail"]["reason"]
    # A synthetic input proven by its signed manifest runs as the virtual actor, no consent needed.
    synth = tmp_path / "synth"
    (synth / "images").mkdir(parents=True)
    (synth / "images" / "cam0.png").write_bytes(b"rendered")
    (synth / "calibration.json").write_text("{}")
    write_synthetic_session_manifest(synth, seed=0, settings={}, key=ws.manifest_key())
    code, _, err = cli("probe-fit", synth, tmp_path / "o3.txt")
    assert code == 0, err
    rec = audit.entries(ws)[-1].record
    assert rec["actor"] == "virtual" and rec["consent"].startswith("not required") and rec["production"] == "demo"
    monkeypatch.delenv("DOPPEL_WORKSPACE")
    monkeypatch.chdir(ws.root)  # else the current folder
    code, out, _ = cli("actor", "list")
    assert code == 0 and "jane-doe" in out and "virtual" in out


def test_demo_registers_stage_folders_with_lineage(cli, tmp_path, monkeypatch):
    """`doppel demo --workspace` registers each stage folder; lineage comes from the manifests' hashes."""
    def capture(ctx):
        d = ctx.out / "capture"
        d.mkdir()
        (d / "images.txt").write_text("synthetic views")
        write_manifest(d, "capture", outputs={"images": "images.txt"})
        return Section("capture")

    def fit(ctx):
        d = ctx.out / "fit"
        d.mkdir()
        (d / "mesh.ply").write_text("ply")
        write_manifest(d, "fit", inputs={"images": ctx.out / "capture" / "images.txt"}, outputs={"mesh": "mesh.ply"})
        return Section("fit")

    monkeypatch.setattr(demo_pipeline, "STAGES", [("capture", capture), ("fit", fit)])
    ws = Workspace.init(tmp_path / "ws")
    code, out, err = cli("demo", "--out", tmp_path / "demo", "--workspace", ws.root)
    assert code == 0, err
    code, out, _ = cli("assets", "list", "--actor", "virtual", "--tree", "-W", ws.root)
    assert code == 0
    lines = [line for line in out.splitlines() if "demo/" in line]
    assert "capture" in lines[0] and "fit" in lines[1] and lines[1].index("fit") > lines[0].index("capture")
    recs = [e.record for e in audit.entries(ws)]
    assert [r["use"] for r in recs] == ["scan", "fit"]
    assert all(r["consent"].startswith("not required") for r in recs)
    assert recs[1]["inputs"][0]["asset"] == recs[0]["outputs"][0]["asset"]
    assert audit.verify(ws).ok


def test_real_demo_quick_registers_the_virtual_actor(cli, tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    code, out, err = cli("demo", "--quick", "--out", tmp_path / "demo", "--workspace", ws.root)
    assert code == 0, err
    recs = [e.record for e in audit.entries(ws)]
    assert len(recs) >= 1 and recs[0]["actor"] == "virtual" and recs[0]["outputs"][0]["kind"] == "capture"
    assert recs[0]["outputs"][0]["sha256"] == sha256_file(tmp_path / "demo" / "actor" / "manifest.json")
    assert audit.verify(ws).ok
    swaps = [r for r in recs if r["outputs"] and r["outputs"][0]["kind"] == "swap"]     # the face replacement
    assert len(swaps) == 2 and {r["use"] for r in swaps} == {"face_replace"}   # its folder and its side folder
    # the demo's capture session proves itself synthetic (outside a workspace: unsigned, taken as written)
    demo = tmp_path / "demo"
    session = demo / "capture" / "session"
    assert json.loads((session / "manifest.json").read_text())["stage"] == "synthetic_capture"
    with gate_from_cli(None, None, None, "scan", command="capture ingest", inputs=[session]) as run:
        assert run.auth.actor_id == "virtual"
    # in its workspace every folder it wrote is the virtual actor's, nested ones too: the session, its landmarks,
    # the swap's plate (its proofs signed with the workspace's key) and the face take (they were refused there)
    for use, inputs in (("render", [session, demo / "fit"]), ("fit", [demo / "capture" / "ingest"]),
                        ("face_replace", [demo / "swap" / "shot" / "plate" / "plate.mp4"]),
                        ("face_replace", [demo / "swap" / "shot" / "plate" / "frames"]),
                        ("render", [demo / "swap" / "face_take", demo / "rig"])):
        with gate_from_cli(ws.root, None, None, use, command="test", inputs=inputs) as run:
            assert run.auth.actor_id == "virtual", inputs


def test_cli_errors_are_one_line(cli, tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    assert cli("actor", "add", "Jane Doe", "-W", ws.root)[0] == 0
    code, _, err = cli("consent", "grant", "jane-doe", "--uses", "scan,paint", "--production", "Dune", "--expires",
                       "2027-13-01", "-W", ws.root)
    assert code == 1 and err.count("\n") == 1
    assert "uses: unknown use 'paint'" in err and "expires: " in err and "2027-13-01" in err
    code, _, err = cli("assets", "list", "--tree", "-W", ws.root)
    assert code == 1 and "--tree needs --actor" in err
    code, _, err = cli("assets", "list", "--actor", "nobody", "--tree", "-W", ws.root)
    assert code == 1 and "unknown actor 'nobody'" in err
    code, out, _ = cli("consent", "show", "virtual", "-W", ws.root)
    assert code == 0 and "needs no consent" in out


def test_missing_option_is_a_usage_error_not_internal(cli, tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    code, _, err = cli("consent", "grant", "jane-doe", "-W", ws.root)
    assert code == 2 and "internal" not in err and "uses" in err


def test_the_listing_says_which_version_a_path_holds(cli, tmp_path):
    """A file exported twice was two rows of one path, nothing saying which one the file is; an output deleted
    since read as if it were there. The replaced version now names its successor, a deleted one says so."""
    ws = tmp_path / "ws"
    assert cli("init", ws)[0] == 0
    assert cli("actor", "add", "Jane Doe", "-W", ws)[0] == 0
    assert cli("consent", "grant", "jane-doe", "--uses", "fit", "--production", "Dune", "--expires", FUTURE,
               "-W", ws)[0] == 0
    src = tmp_path / "capture.txt"
    src.write_text("photos")
    jane = ("-W", ws, "--actor", "jane-doe", "--production", "Dune")
    for out in ("fit.txt", "fit.txt", "other.txt"):
        assert cli("probe-fit", src, tmp_path / out, *jane)[0] == 0
    (tmp_path / "other.txt").unlink()
    from assets.lineage import list_assets

    ids = [a.id for a in list_assets(Workspace.open(ws))]
    for args in ((), ("--tree",)):
        code, out, _ = cli("assets", "list", "--actor", "jane-doe", *args, "-W", ws)
        text = " ".join(out.split())
        assert code == 0 and f"fit.txt (replaced by {ids[1]})" in text and text.count("replaced by") == 1, out
        assert "other.txt (gone)" in text and text.count("(gone)") == 1
