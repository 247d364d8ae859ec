"""`doppel consent purge`: after a revocation, delete what was made under the consent (and from it, and the
photos read as the likeness), keep what the index says must stay, record it all. Before, `consent revoke` listed
the outputs and deleting them was left to hand work; the raw capture was not even listed."""

import datetime as dt
import os

import pytest

from assets import audit
from assets.actors import add_actor
from assets.consent import ConsentError, grant, revoke
from assets.consent_purge import execute_purge, plan_purge
from assets.workspace import Workspace
from doppel.consent_gate import gated
from doppel.likeness import inspect_input
from tests.cli_runner import run_cli

LATER = dt.date.today() + dt.timedelta(days=365)


def _make(ws, use, production, out, inputs=(), likeness=(), kind="fit", text=None):
    """One gated run of jane's writing ``out`` (a file, or a folder when ``text`` is a dict) from ``inputs``."""
    if isinstance(text, dict):
        out.mkdir(parents=True)
        for name, body in text.items():
            (out / name).write_text(body)
    else:
        out.write_text(text or out.name)
    evidence = [inspect_input(p, required=True, ws=ws, key=ws.manifest_key()) for p in likeness]
    with gated(ws, "jane", use, production, command=use, inputs=[*inputs, *likeness], likeness=evidence) as run:
        run.add_output(out, kind=kind)


@pytest.fixture()
def studio(tmp_path):
    """jane's capture read under consent A (Film); a fit and a rig made under A; an export of the rig made under B
    (Sequel, still valid); the capture read under B too for another fit; a file A made, remade under B."""
    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe", actor_id="jane")
    a = grant(ws, "jane", "scan,fit,rig,export,face_replace", "Film", LATER)
    b = grant(ws, "jane", "scan,fit,rig,export", "Sequel", LATER)
    r = ws.root
    capture, photos = r / "captures" / "jane", r / "captures" / "jane_b"
    for folder in (capture, photos):
        folder.mkdir()
        (folder / "cam0.jpg").write_bytes(os.urandom(64))
    _make(ws, "fit", "Film", r / "fits" / "jane", likeness=[capture], text={"params.json": "{}"})
    _make(ws, "rig", "Film", r / "rigs" / "jane.txt", inputs=[r / "fits" / "jane"], kind="rig")
    _make(ws, "export", "Sequel", r / "exports" / "jane.glb", inputs=[r / "rigs" / "jane.txt"], kind="export")
    _make(ws, "fit", "Sequel", r / "fits" / "jane_sequel.txt", likeness=[photos])
    _make(ws, "fit", "Film", r / "fits" / "jane_sequel_b.txt", likeness=[photos])
    _make(ws, "fit", "Film", r / "fits" / "shared.txt")
    (r / "plates").mkdir()
    (r / "plates" / "sh010.mov").write_bytes(os.urandom(64))         # camera-original footage of her
    _make(ws, "face_replace", "Film", r / "renders" / "sh010_swap.mov", likeness=[r / "plates" / "sh010.mov"],
          kind="render")
    _make(ws, "fit", "Sequel", r / "fits" / "shared.txt", text="remade under the sequel's consent")
    return ws, a.id, b.id


def test_a_valid_consent_is_never_purged(studio):
    ws, a, _ = studio
    with pytest.raises(ConsentError, match=f"consent {a} is valid .* revoke it first"):
        plan_purge(ws, a)


def test_the_plan_lists_outputs_derived_ones_and_the_capture_and_keeps_what_must_stay(studio):
    ws, a, b = studio
    revoke(ws, a, "withdrawn")
    plan = plan_purge(ws, a)
    actions = {i.stored: (i.action, i.kind, i.why) for i in plan.items}
    assert actions["fits/jane"][:2] == ("delete", "fit")
    assert actions["rigs/jane.txt"][:2] == ("delete", "rig")
    assert actions["exports/jane.glb"][:2] == ("delete", "export")          # made under B from A's rig
    assert actions["captures/jane"][:2] == ("delete", "input")              # the photos read as her likeness
    assert actions["captures/jane_b"][0] == "keep" and b in actions["captures/jane_b"][2]   # B read them too
    assert actions["fits/shared.txt"][0] == "keep" and "replaced since" in actions["fits/shared.txt"][2]
    assert actions["renders/sh010_swap.mov"][0] == "delete"
    assert actions["plates/sh010.mov"][0] == "keep" and "face replacement" in actions["plates/sh010.mov"][2]
    assert all((ws.root / i.stored).exists() for i in plan.items), "a plan deletes nothing"


def test_purge_deletes_records_and_keeps_the_hashes(studio, capsys):
    ws, a, _ = studio
    revoke(ws, a, "withdrawn")
    (ws.root / "fits" / "jane" / "params.json").write_text('{"edited": true}')       # hand work in an output
    plan = plan_purge(ws, a)
    assert {i.stored for i in plan.kept} >= {"fits/jane"}
    (ws.root / "exports" / "jane.glb.c2pa").write_bytes(b"its content credentials")
    res = execute_purge(ws, plan)
    gone = {"rigs/jane.txt", "exports/jane.glb", "captures/jane", "fits/jane_sequel_b.txt", "renders/sh010_swap.mov"}
    assert {i.stored for i in res.deleted} == gone and not res.failed
    assert not any((ws.root / p).exists() for p in gone) and not (ws.root / "exports" / "jane.glb.c2pa").exists()
    assert (ws.root / "fits" / "jane").is_dir() and (ws.root / "captures" / "jane_b").is_dir()
    assert (ws.root / "plates" / "sh010.mov").is_file()
    assert (ws.root / "fits" / "shared.txt").read_text() == "remade under the sequel's consent"
    record = audit.entries(ws, last=1)[0].record
    assert record["action"] == "consent.purge" and ["input", "captures/jane"] in record["detail"]["deleting"]
    assert audit.verify(ws).ok
    with ws.read() as con:                    # a copy of the deleted likeness is still known as jane's
        assert con.execute("SELECT COUNT(*) FROM content WHERE path='captures/jane'").fetchone()[0] == 1
    assert {i.stored for i in execute_purge(ws, plan_purge(ws, a, include_changed=True)).deleted} == {"fits/jane"}


def test_cli_lists_without_yes_deletes_with_it_and_reports_failures(studio, capsys, monkeypatch):
    ws, a, _ = studio
    W = ("-W", str(ws.root))
    code, _, err = run_cli(capsys, "consent", "purge", a, *W)
    assert code == 1 and "revoke it first" in err
    revoke(ws, a, "withdrawn")
    code, out, _ = run_cli(capsys, "consent", "purge", a, *W)
    assert code == 0 and "nothing deleted without --yes" in out and "run again with --yes" in out
    assert (ws.root / "rigs" / "jane.txt").exists()
    real_unlink = os.unlink
    monkeypatch.setattr(os, "unlink", lambda p, *k, **kw: (_ for _ in ()).throw(PermissionError(13, "Permission "
                        "denied")) if str(p).endswith("jane.glb") else real_unlink(p, *k, **kw))
    code, out, _ = run_cli(capsys, "consent", "purge", a, "--yes", *W)
    assert code == 1 and "could not delete" in out and "jane.glb: Permission denied" in " ".join(out.split())
    assert not (ws.root / "rigs" / "jane.txt").exists() and (ws.root / "exports" / "jane.glb").exists()
    purge, incomplete = (e.record for e in audit.entries(ws, last=2))
    assert purge["action"] == "consent.purge" and incomplete["action"] == "consent.purge_incomplete"
    assert incomplete["detail"]["failed"][0][1] == "exports/jane.glb"
    assert ["export-" in row[0] for row in purge["detail"]["deleting"]].count(True) == 1
    code, out, _ = run_cli(capsys, "consent", "show", "jane", *W)
    flat = " ".join(out.split())
    assert code == 0 and "rigs/jane.txt (gone)" in flat and "exports/jane.glb (gone)" not in flat


def test_the_plan_reads_the_index_in_a_fixed_number_of_connections(tmp_path, monkeypatch):
    """A consent with many outputs: the plan opened one index connection per output (2003 outputs: 6.9 s, each
    connection also reading the mount table); now a few, whatever the count."""
    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe", actor_id="jane")
    c = grant(ws, "jane", "export", "Film", LATER)
    (ws.root / "exports" / "takes").mkdir()
    for k in range(40):
        _make(ws, "export", "Film", ws.root / "exports" / "takes" / f"take{k:03d}.glb", kind="export")
    revoke(ws, c.id, reason="withdrawn")
    opened = []
    real = Workspace.connect
    monkeypatch.setattr(Workspace, "connect", lambda self: opened.append(1) or real(self))
    plan = plan_purge(ws, c.id)
    assert len(plan.to_delete) == 40
    assert len(opened) <= 8, len(opened)       # 6, and 2 more since: the runs that did not finish, the review sites


def test_a_swapped_plate_registered_for_the_plate_performer_too_is_purged_with_the_doubles_consent(tmp_path):
    """`doppel swap` registers the swapped plate under the double's actor and under the plate's performer (two
    assets, one file). The performer's registration, the later one, made the double's actor's purge keep the plate
    ("replaced since by ..., made under another consent"): her face stayed on disk after her consent's purge."""
    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe", actor_id="jane")
    add_actor(ws, "Stunt Double", actor_id="stunt")
    a = grant(ws, "jane", "face_replace", "Film", LATER)
    grant(ws, "stunt", "face_replace", "Film", LATER)
    shot = ws.root / "shots" / "sh010.mov"
    shot.parent.mkdir()
    shot.write_bytes(os.urandom(64))                 # jane's face on the stunt performer's plate
    for actor in ("jane", "stunt"):
        with gated(ws, actor, "face_replace", "Film", command="swap") as run:
            run.add_output(shot, kind="composite")
    revoke(ws, a.id, "withdrawn")
    (item,) = plan_purge(ws, a.id).items
    assert item.action == "delete" and item.path == shot, item
    from assets.lineage import list_assets
    from doppel.commands.assets_cmd import path_state

    state_of = path_state(ws)                       # `assets list`: both are the file's, neither "replaced"
    assert sorted(state_of(x)[0] for x in list_assets(ws) if x.kind == "composite") == ["current", "current"]
    shot.write_bytes(os.urandom(64))                # remade under the performer's consent alone: jane's is replaced
    with gated(ws, "stunt", "face_replace", "Film", command="swap") as run:
        run.add_output(shot, kind="composite")
    (item,) = plan_purge(ws, a.id).items
    assert item.action == "keep" and item.why.startswith("replaced since by"), item
