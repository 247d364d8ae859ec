import datetime as dt

import pytest

from assets import audit
from assets.actors import add_actor
from assets.consent import ConsentError, grant, revoke
from assets.hashing import path_sha256
from assets.lineage import LineageError, asset_tree, list_assets, outputs_under_consent, parents_of
from assets.workspace import Workspace
from core.storage import sha256_file, write_manifest
from doppel.consent_gate import gated

TODAY = dt.date(2026, 6, 1)
CHAIN = [("scan", "capture"), ("scan", "landmarks"), ("fit", "fit"), ("rig", "rig"), ("retarget", "animation"),
         ("export", "export")]


@pytest.fixture
def ws(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe")
    return ws


def make(ws, use, kind, inputs, consent_today=TODAY, name=None):
    out = ws.root / f"{name or kind}.txt"
    with gated(ws, "jane-doe", use, "Dune", command=kind, inputs=inputs, today=consent_today) as run:
        out.write_text(f"{kind} made from {[str(i) for i in inputs]}\n")
        run.add_output(out, kind=kind)
    return out, run


def test_pipeline_lineage_and_tree(ws, tmp_path):
    c = grant(ws, "jane-doe", "scan,fit,rig,retarget,export", "Dune", "2026-12-31", today=TODAY)
    bvh = tmp_path / "stunt.bvh"  # an external input (not an asset): hashed in the audit record only
    bvh.write_text("HIERARCHY\n")
    prev, made = [], []
    for use, kind in CHAIN:
        inputs = [*prev, bvh] if kind == "animation" else prev
        out, run = make(ws, use, kind, inputs)
        made.append(run.registered[0])
        prev = [out]
    # A second export from the same rig: the tree branches.
    _, run2 = make(ws, "export", "export", [ws.root / "rig.txt"], name="export2")
    assert [a.kind for a in parents_of(ws, run2.registered[0].id)] == ["rig"]
    assert all(a.consent_id == c.id and a.actor_id == "jane-doe" for a in list_assets(ws, "jane-doe"))
    roots = asset_tree(ws, "jane-doe")
    assert [r.asset.kind for r in roots] == ["capture"]
    node, kinds = roots[0], []
    while node.children:
        kinds.append(node.asset.kind)
        node = node.children[0]
    assert kinds == ["capture", "landmarks", "fit", "rig", "animation"]
    rig = roots[0].children[0].children[0].children[0]
    assert [ch.asset.kind for ch in rig.children] == ["animation", "export"]
    # The audit record of the animation names its inputs with their hashes, and its output.
    anim = made[4]
    rec = next(e.record for e in audit.entries(ws) if e.seq == anim.audit_seq)
    assert rec["consent"] == c.id and rec["use"] == "retarget" and rec["production"] == "Dune"
    assert {i["path"]: i["sha256"] for i in rec["inputs"]} == {"rig.txt": sha256_file(ws.root / "rig.txt"),
                                                              str(bvh.resolve()): sha256_file(bvh)}
    assert rec["outputs"] == [{"asset": anim.id, "kind": "animation", "path": "animation.txt",
                               "sha256": sha256_file(ws.root / "animation.txt")}]
    assert audit.verify(ws).ok


def test_revocation_stops_new_work_and_lists_outputs(ws):
    c1 = grant(ws, "jane-doe", "scan,fit", "Dune", "2026-12-31", today=TODAY)
    c2 = grant(ws, "jane-doe", "rig", "Dune", "2026-12-31", today=TODAY)
    cap, r1 = make(ws, "scan", "capture", [])
    fit, r2 = make(ws, "fit", "fit", [cap])
    rig, r3 = make(ws, "rig", "rig", [fit])
    revoke(ws, c1.id, "actor withdrew")
    ran = []
    with pytest.raises(ConsentError, match=f"{c1.id} revoked"), gated(ws, "jane-doe", "fit", "Dune", today=TODAY):
        ran.append(1)
    assert ran == []  # refused before the body runs
    direct, derived = outputs_under_consent(ws, c1.id)
    assert [a.id for a in direct] == [r1.registered[0].id, r2.registered[0].id]
    assert [a.id for a in derived] == [r3.registered[0].id] and derived[0].consent_id == c2.id


def test_revocation_during_a_run_registers_and_reports(ws):
    c = grant(ws, "jane-doe", "fit", "Dune", "2026-12-31", today=TODAY)
    out = ws.root / "fit.txt"
    with pytest.raises(ConsentError, match=f"consent {c.id} was revoked \\(or expired\\) while fit ran"):
        with gated(ws, "jane-doe", "fit", "Dune", command="fit", today=TODAY) as run:
            out.write_text("x")
            run.add_output(out, kind="fit")
            revoke(ws, c.id, "withdrawn mid-run")  # another process revokes while we work
    direct, _ = outputs_under_consent(ws, c.id)
    assert [a.path for a in direct] == ["fit.txt"]
    assert audit.entries(ws)[-1].record["outcome"] == "consent_revoked_during_run"


def test_a_performers_consent_the_run_needs_is_rechecked_and_the_run_is_in_their_record(ws):
    """A run that also needs another person's consent (jane's export of an animation holding bob's performance):
    bob's record names the run and its outputs, what a killed run leaves is found under his consent too, and his
    revocation during the run is caught when it ends (before: checked at the start only, recorded nowhere)."""
    import shutil

    from assets.unfinished_runs import unfinished_of
    from core.leftovers import checkpoint_sibling, owners_of, record_owner
    from core.stage_folders import temp_sibling
    from doppel.consent_gate import authorize

    add_actor(ws, "Bob Stunt", actor_id="bob")
    grant(ws, "jane-doe", "export", "Dune", "2026-12-31", today=TODAY)
    bobs = grant(ws, "bob", "export", "Dune", "2026-12-31", today=TODAY)
    bob = authorize(ws, "bob", "export", "Dune", command="export (performance of bob)", today=TODAY)
    out = ws.root / "double.glb"
    with gated(ws, "jane-doe", "export", "Dune", command="export", today=TODAY, outputs=[out], also=[bob]) as run:
        temp = temp_sibling(out)
        assert [u.leftover.path for u in unfinished_of(ws, bobs.id)] == [temp]   # his to purge, were it killed
        temp.unlink()
        ck = checkpoint_sibling(out, "swap")
        ck.mkdir()
        record_owner(ck)                                                        # a checkpoint: his too
        assert {o["consent"] for o in owners_of(ck)} == {bobs.id, run.auth.consent_id}
        shutil.rmtree(ck)
        out.write_bytes(b"glTF")
        run.add_output(out, kind="export")
    jane_rec, bob_rec = (e.record for e in audit.entries(ws)[-2:])
    assert (jane_rec["actor"], jane_rec["command"], jane_rec["outcome"]) == ("jane-doe", "export", "ok")
    assert (bob_rec["actor"], bob_rec["command"], bob_rec["consent"], bob_rec["outcome"]) == (
        "bob", "export (performance of bob)", bobs.id, "ok")
    assert bob_rec["outputs"] == jane_rec["outputs"] and len(bob_rec["outputs"]) == 1
    with pytest.raises(ConsentError, match=f"consent {bobs.id} was revoked .* see `doppel consent show bob`"):
        with gated(ws, "jane-doe", "export", "Dune", command="export", today=TODAY, also=[bob]) as run:
            out.write_bytes(b"glTF 2")
            run.add_output(out, kind="export")
            revoke(ws, bobs.id, "withdrawn mid-run")            # bob withdraws while jane's export runs
    assert audit.entries(ws)[-1].record["outcome"] == "consent_revoked_during_run"
    assert audit.entries(ws)[-2].record["outcome"] == "ok"     # jane's own consent still holds


def test_a_run_whose_input_a_purge_deleted_says_so(ws):
    """Revoked and purged while a run reads it: the run's own error ("file listed in the manifest does not exist")
    becomes one line naming the revocation, audited, nothing registered."""
    from assets.consent_purge import execute_purge, plan_purge

    c = grant(ws, "jane-doe", "rig,export", "Dune", "2026-12-31", today=TODAY)
    rig, _ = make(ws, "rig", "rig", [])
    out = ws.root / "export"
    out.mkdir()
    n = len(list_assets(ws))
    with pytest.raises(ConsentError, match=f"export stopped: consent {c.id} was revoked while it ran "
                                           f"\\(.*rig.txt: file listed in the manifest does not exist\\)"):
        with gated(ws, "jane-doe", "export", "Dune", command="export", inputs=[rig], today=TODAY) as run:
            revoke(ws, c.id, "withdrawn")                # another process revokes and purges while we work
            execute_purge(ws, plan_purge(ws, c.id))
            assert not rig.exists()
            (out / "double.glb").write_bytes(b"glTF")
            write_manifest(out, "export", inputs={"rig": rig}, outputs={"glb": "double.glb"})
            run.add_output(out, kind="export")
    assert len(list_assets(ws)) == n
    rec = audit.entries(ws)[-1].record
    assert (rec["outcome"], rec["outputs"], rec["detail"]["revoked"]) == ("stopped_after_revocation", [], c.id)


def test_failed_body_registers_nothing(ws):
    grant(ws, "jane-doe", "fit", "Dune", "2026-12-31", today=TODAY)
    n = len(audit.entries(ws))
    with pytest.raises(RuntimeError), gated(ws, "jane-doe", "fit", "Dune", today=TODAY) as run:
        run.add_output(ws.root / "never.txt", kind="fit")
        raise RuntimeError("fit diverged")
    assert list_assets(ws) == [] and len(audit.entries(ws)) == n


def test_bad_kind_missing_input_and_output(ws):
    grant(ws, "jane-doe", "fit", "Dune", "2026-12-31", today=TODAY)
    with pytest.raises(LineageError, match="asset kind 'Fit!'"), gated(ws, "jane-doe", "fit", "Dune",
                                                                        today=TODAY) as run:
        run.add_output(ws.root / "x", kind="Fit!")
    ran = []
    with pytest.raises(FileNotFoundError, match="nope.txt"), gated(ws, "jane-doe", "fit", "Dune", today=TODAY,
                                                                    inputs=[ws.root / "nope.txt"]) as run:
        ran.append(1)
    assert ran == []  # a missing input fails before the work starts
    with pytest.raises(FileNotFoundError, match="missing.ply"), gated(ws, "jane-doe", "fit", "Dune",
                                                                       today=TODAY) as run:
        run.add_output(ws.root / "missing.ply", kind="fit")
    assert list_assets(ws) == []


def test_folder_hashes(tmp_path):
    d = tmp_path / "stage"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a")
    (d / "sub" / "b.txt").write_text("b")
    h1 = path_sha256(d)
    (d / "sub" / "b.txt").write_text("B")
    assert path_sha256(d) != h1
    write_manifest(d, "fit", outputs={"a": "a.txt"})
    assert path_sha256(d) == sha256_file(d / "manifest.json")


def test_parent_is_the_exact_version_or_the_enclosing_folder(ws):
    grant(ws, "jane-doe", "fit,rig", "Dune", "2026-12-31", today=TODAY)
    fit_dir = ws.root / "fits" / "jane"
    fit_dir.mkdir(parents=True)
    versions = []
    for v in range(2):  # the same folder fitted twice: two versions of one path
        (fit_dir / "mesh.ply").write_text(f"mesh v{v}")
        write_manifest(fit_dir, "fit", params={"v": v}, outputs={"mesh": "mesh.ply"})
        with gated(ws, "jane-doe", "fit", "Dune", today=TODAY) as run:
            run.add_output(fit_dir, kind="fit")
        versions.append(run.registered[0].id)
    # A rig made from a file inside the stage folder: its parent is the folder's latest version.
    _, run = make(ws, "rig", "rig", [fit_dir / "mesh.ply"])
    assert [a.id for a in parents_of(ws, run.registered[0].id)] == [versions[1]]
    # A file registered twice with different content, then put back to the first: the parent of what
    # is made from it is the version with that exact content, not the latest.
    cal = ws.root / "calibration.txt"
    cal_versions = []
    for text in ("A", "B"):
        cal.write_text(text)
        with gated(ws, "jane-doe", "fit", "Dune", today=TODAY) as run:
            run.add_output(cal, kind="capture")
        cal_versions.append(run.registered[0].id)
    cal.write_text("A")
    _, run = make(ws, "fit", "fit", [cal], name="fit-from-cal")
    assert [a.id for a in parents_of(ws, run.registered[0].id)] == [cal_versions[0]]


def test_a_lineage_thousands_of_levels_deep_is_a_tree_and_a_page(ws, capsys, tmp_path):
    """A chain of 1200 outputs each made from the last (a model resumed again and again): building the tree, the
    CLI's tree and the review site recursed once per level and failed with RecursionError past a few hundred."""
    import random

    from assets.lineage import AssetNode, walk_tree
    from doppel.review.site import tree_html
    from tests.cli_runner import run_cli

    grant(ws, "jane-doe", "render", "Dune", "2027-01-01", today=TODAY)
    prev = []
    for k in range(1200):
        out, _ = make(ws, "render", "render", prev, name=f"m{k:04d}")
        prev = [out]
    roots = asset_tree(ws, "jane-doe")
    depths = [d for _, d in walk_tree(roots)]
    assert len(roots) == 1 and max(depths) == 1199 and len(depths) == 1200
    html = tree_html(roots, {})
    assert html.count("<li>") == html.count("</li>") == 1200 and html.count("<ul") == html.count("</ul>") == 1200
    code, out, _ = run_cli(capsys, "assets", "list", "--actor", "jane-doe", "--tree", "--workspace", ws.root)
    assert code == 0 and "m1199.txt" in out

    def reference(nodes):                          # the recursive drawing tree_html replaced
        items = []
        for n in nodes:
            below = reference(n.children) if n.children else ""
            items.append(f"<li>{_item(n)}{below}</li>")
        return f"<ul class='tree'>{''.join(items)}</ul>"

    from doppel.review.site import _tree_item

    def _item(n):
        return _tree_item(n.asset, {}, set())

    rng = random.Random(3)
    assets = [a for n, _ in walk_tree(roots) for a in [n.asset]][:40]
    for _ in range(20):                            # random small forests: the same HTML as the recursion
        def grow(level):
            return [AssetNode(rng.choice(assets), grow(level + 1) if level < 4 else [])
                    for _ in range(rng.randint(0, 3))]
        forest = grow(0)
        assert tree_html(forest, {}) == reference(forest)


def test_listings_for_scripts_one_json_object_per_line(ws, capsys):
    """`assets list --json` and `actor list --json`: a pipeline script reads what the table shows, and more (the
    file, whether it is still there, the consent's status), without parsing a drawn table."""
    import json

    from tests.cli_runner import run_cli

    c = grant(ws, "jane-doe", "scan,fit,rig", "Dune", "2027-01-01", today=TODAY)
    cap, _ = make(ws, "scan", "capture", [])
    fit, _ = make(ws, "fit", "fit", [cap])
    make(ws, "rig", "rig", [fit])
    make(ws, "rig", "rig", [fit])                           # the same path again: the first is replaced
    fit.unlink()                                            # the fit is gone from disk
    revoke(ws, c.id, reason="withdrawn")
    code, out, _ = run_cli(capsys, "assets", "list", "--actor", "jane-doe", "--json", "-W", ws.root)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["kind"] for r in rows] == ["capture", "fit", "rig", "rig"]
    assert [r["state"] for r in rows] == ["current", "gone", "replaced", "current"]
    assert rows[2]["replaced_by"] == rows[3]["id"] and rows[0]["file"] == str(ws.root / "capture.txt")
    assert {r["consent_status"] for r in rows} == {"revoked"} and rows[0]["consent"] == c.id
    code, out, _ = run_cli(capsys, "assets", "list", "--actor", "jane-doe", "--tree", "--json", "-W", ws.root)
    tree = [json.loads(line) for line in out.splitlines()]
    assert [(r["kind"], r["depth"]) for r in tree] == [("capture", 0), ("fit", 1), ("rig", 2), ("rig", 2)]
    assert tree[1]["parent"] == tree[0]["id"] and tree[3]["parent"] == tree[1]["id"]
    code, out, _ = run_cli(capsys, "actor", "list", "--json", "-W", ws.root)
    actors = {a["id"]: a for a in map(json.loads, out.splitlines())}
    assert actors["jane-doe"]["name"] == "Jane Doe" and actors["virtual"]["virtual"] is True
