"""Consent gates on the stage commands: a real actor's rig needs consent to build, and what is made from it
(animation, export) carries that actor's likeness and needs consent for each later use."""

import datetime as dt
import json

import pytest

from assets.actors import add_actor
from assets.consent import grant
from assets.workspace import Workspace
from mocap_retarget.bvh import write_bvh
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk
from tests.cli_runner import run_cli


@pytest.fixture()
def ws(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe", actor_id="jane")
    return ws


def test_rig_retarget_export_follow_the_actors_consent(tmp_path, capsys, ws):
    rig_dir, anim_dir = tmp_path / "rig", tmp_path / "anim"
    W = ("--workspace", ws.root)
    # no consent yet: refused, nothing written
    code, _, err = run_cli(capsys, "rig", "--out", rig_dir, "--actor", "jane", "--production", "Film", *W)
    assert code == 1 and "error:" in err and not rig_dir.exists()
    soon = dt.date.today() + dt.timedelta(days=10)
    consent = grant(ws, "jane", ["rig", "retarget"], "Film", soon)
    code, _, err = run_cli(capsys, "rig", "--out", rig_dir, "--actor", "jane", "--production", "Film",
                           "--preview-size", 64, *W)
    assert code == 0, err
    params = json.loads((rig_dir / "manifest.json").read_text())["params"]
    assert params["actor_id"] == "jane" and params["consent_id"] == consent.id

    clip = tmp_path / "walk.bvh"
    write_bvh(clip, synthetic_walk(WalkSpec(seconds=0.5, fps=30), names=SCHEMES["mixamo"], rest="A"), units="cm")
    # the rig records jane: retargeting onto it without a production is refused, naming her
    code, _, err = run_cli(capsys, "retarget", clip, "--rig", rig_dir, "--out", anim_dir, *W)
    assert code == 1 and "'jane'" in err
    # ... and under another actor's name too
    code, _, err = run_cli(capsys, "retarget", clip, "--rig", rig_dir, "--out", anim_dir, "--actor", "virtual", *W)
    assert code == 1 and "jane" in err
    code, _, err = run_cli(capsys, "retarget", clip, "--rig", rig_dir, "--out", anim_dir, "--production", "Film",
                           "--preview-size", 64, *W)
    assert code == 0, err
    # export is not covered by this consent
    code, _, err = run_cli(capsys, "export", rig_dir, "--anim", anim_dir, "--out", tmp_path / "d.glb",
                           "--production", "Film", "--no-texture", *W)
    assert code == 1 and not (tmp_path / "d.glb").exists()
    grant(ws, "jane", ["export"], "Film", soon)
    code, _, err = run_cli(capsys, "export", rig_dir, "--anim", anim_dir, "--out", tmp_path / "d.glb",
                           "--production", "Film", "--no-texture", *W)
    assert code == 0, err
    code, out, _ = run_cli(capsys, "assets", "list", "--actor", "jane", "--tree", *W)
    assert code == 0 and "rig" in out and "animation" in out and "export" in out
    code, _, err = run_cli(capsys, "audit", "verify", *W)
    assert code == 0, err


def test_default_rig_is_the_virtual_actor_and_needs_no_consent(tmp_path, capsys):
    code, _, err = run_cli(capsys, "rig", "--out", tmp_path / "rig", "--preview-size", 64)
    assert code == 0, err
    params = json.loads((tmp_path / "rig" / "manifest.json").read_text())["params"]
    assert params["actor_id"] == "virtual" and "not required" in params["consent_id"]


def test_capture_ingest_of_a_real_actor_needs_scan_consent(tmp_path, capsys, ws):
    session = tmp_path / "session"
    (session / "images").mkdir(parents=True)
    code, _, err = run_cli(capsys, "capture", "ingest", session, "--out", tmp_path / "ingest",
                           "--actor", "jane", "--production", "Film", "--workspace", ws.root)
    assert code == 1 and "error:" in err and "jane" in err
    assert not (tmp_path / "ingest").exists()
    code, out, _ = run_cli(capsys, "audit", "show", "--workspace", ws.root)
    assert code == 0 and "refused" in out


def test_a_file_named_in_another_encoding_is_refused_in_a_workspace_in_one_line(tmp_path, capsys, ws):
    """A clip from an old share named in Latin-1 (caf\\xe9.bvh) failed in a workspace with "'utf-8' codec can't
    encode character '\\udce9' ... surrogates not allowed" (the audit log's hash). The workspace records paths as
    UTF-8, so such a name is refused before any record, naming the file and how to rename it."""
    import os

    from assets import audit

    grant(ws, "jane", ["rig", "retarget"], "Film", dt.date.today() + dt.timedelta(days=10))
    W = ("--workspace", ws.root, "--actor", "jane", "--production", "Film")
    rig_dir = tmp_path / "rig"
    code, _, err = run_cli(capsys, "rig", "--out", rig_dir, "--preview-size", 64, *W)
    assert code == 0, err
    clip = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.bvh")
    walk = synthetic_walk(WalkSpec(seconds=0.3, fps=30), names=SCHEMES["mixamo"], rest="A")
    write_bvh(clip, walk, units="cm")
    write_bvh(tmp_path / "walk.bvh", walk, units="cm")
    before = len(list(audit.entries(ws)))
    for source, out in ((clip, tmp_path / "anim"), (tmp_path / "walk.bvh",
                                                    os.fsdecode(os.fsencode(tmp_path) + b"/anim_\xe9"))):
        code, _, err = run_cli(capsys, "retarget", source, "--rig", rig_dir, "--out", out, *W)
        said = " ".join(err.split())
        assert code == 1 and "its name is not UTF-8" in said and "\\xe9" in said and "convmv" in said, said
    assert len(list(audit.entries(ws))) == before              # nothing recorded
    code, _, err = run_cli(capsys, "audit", "verify", "--workspace", ws.root)
    assert code == 0, err
