"""The review site without a browser: glTF evaluation against Rig.pose, framing of a travelling clip, data gathered
from a workspace, escaping of user data, the provenance hook, the command and the server's interface.
(tests/doppel/test_review_browser.py loads the pages in Chromium.)"""

from __future__ import annotations

import html
import math
import re

import numpy as np
import pytest
import torch

from assets.export.common import prepare_scene
from assets.export.gltf import split_vertices
from assets.export.run import default_options
from doppel.review import build_site, frame_animation, gather, make_server
from doppel.review.framing import MIN_ASPECT, grid_lines, write_viewer_glb
from doppel.review.gltf_eval import GltfReadError, load_glb, posed_points
from doppel.review.provenance_hook import check_provenance
from tests.cli_runner import run_cli
from tests.doppel.review_data import EVIL_NAME, EVIL_PRODUCTION, FPS, TRAVEL_M, make_workspace, travel_glb
from tests.gltf_validator import assert_valid_gltf

TOL_M = 1e-5       # float32 storage in the glb


@pytest.fixture(scope="module")
def glb(tmp_path_factory):
    return travel_glb(tmp_path_factory.mktemp("glb") / "cartwheel.glb")


@pytest.fixture(scope="module")
def ws(tmp_path_factory, glb):
    return make_workspace(tmp_path_factory.mktemp("ws") / "studio", glb[0])


def _reference(rig, anim, frame: int) -> np.ndarray:
    """Rig.pose of ``frame`` in the glb's vertex order (UV seams split vertices)."""
    ref = rig.pose(torch.tensor(anim.local_rotations[frame:frame + 1]),
                   torch.tensor(anim.root_translation[frame:frame + 1])).numpy()[0]
    src, _, _ = split_vertices(prepare_scene(rig, None, default_options("glb")))
    return ref[src]


@pytest.mark.parametrize("frame", [0, 7, 23])
def test_gltf_evaluation_matches_rig_pose(glb, frame):
    path, rig, anim = glb
    got = posed_points(load_glb(path), frame / FPS)
    np.testing.assert_allclose(got, _reference(rig, anim, frame), atol=TOL_M)


def test_gltf_evaluation_interpolates_between_keys(glb):
    path, rig, anim = glb
    scene = load_glb(path)
    mid = posed_points(scene, 10.5 / FPS)
    a, b = _reference(rig, anim, 10), _reference(rig, anim, 11)
    # the root travels linearly: half-way between keys in x, whatever the rotation does
    assert abs(mid[:, 0].mean() - (a[:, 0].mean() + b[:, 0].mean()) / 2) < 0.02


def _project(points: np.ndarray, f, aspect: float) -> np.ndarray:
    """NDC (x, y) of points seen by model-viewer's orbit camera (theta about +Y from +Z, phi from +Y), written out
    independently of framing.camera_axes."""
    th, ph = math.radians(f.theta_deg), math.radians(f.phi_deg)
    target = np.asarray(f.target)
    eye = target + f.radius * np.array([math.sin(ph) * math.sin(th), math.cos(ph), math.sin(ph) * math.cos(th)])
    fwd = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(fwd, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    rel = points - eye
    z = rel @ fwd
    t = math.tan(math.radians(f.fov_deg) / 2)
    return np.stack([(rel @ right) / (z * t * aspect), (rel @ up) / (z * t)], 1)


def test_framing_keeps_the_whole_travelling_clip_in_view(glb):
    path, rig, anim = glb
    scene = load_glb(path)
    f = frame_animation(scene)
    every = np.concatenate([_reference(rig, anim, k) for k in range(anim.num_frames)])
    assert np.all(every.min(0) >= np.asarray(f.lo) - TOL_M) and np.all(every.max(0) <= np.asarray(f.hi) + TOL_M)
    assert f.travel > TRAVEL_M - 0.5                      # the clip goes far beyond the rest pose
    for aspect in (16 / 9, MIN_ASPECT):
        ndc = _project(every, f, aspect)
        assert np.abs(ndc).max() < 1.0, aspect            # every posed vertex of every frame is on screen
        grid = _project(grid_lines(f).astype(np.float64), f, aspect)
        assert np.abs(grid).max() < 1.0, aspect           # and the whole floor grid
    # not wastefully far: something touches the edge within 15 % at the design aspect
    assert np.abs(_project(np.concatenate([every, grid_lines(f)]), f, MIN_ASPECT)).max() > 0.85
    # framing the bind pose (what model-viewer does by default) would lose the end of the clip
    rest = np.asarray(f.rest_hi) - np.asarray(f.rest_lo)
    assert f.hi[0] - f.lo[0] > 2 * rest[0] + TRAVEL_M / 2
    assert f.actor_height == pytest.approx(rig.vertices[:, 1].max() - rig.vertices[:, 1].min(), abs=1e-4)
    attrs = f.attributes()
    assert attrs["camera-orbit"].endswith(f"{f.radius:.3f}m") and "camera-target" in attrs


def test_viewer_glb_adds_grid_and_pole_and_keeps_animation(glb, tmp_path):
    path, _, _ = glb
    f = frame_animation(load_glb(path))
    out = write_viewer_glb(path, tmp_path / "v.glb", f)
    import pygltflib

    g = pygltflib.GLTF2.load_binary(str(out))
    names = [n.name for n in g.nodes]
    assert "doppel_review_floor_grid" in names and "doppel_review_height_pole" in names
    assert len(g.animations) == 1 and g.asset.extras["doppel"]["actor_id"] == "jane-doe"
    lines = grid_lines(f)
    assert lines[:, 0].min() <= f.lo[0] and lines[:, 0].max() >= f.hi[0]       # the grid covers the travel
    # the original skinned mesh evaluates the same in the copy
    np.testing.assert_allclose(posed_points(load_glb(out), 0.5)[:len(posed_points(load_glb(path), 0.5))],
                               posed_points(load_glb(path), 0.5), atol=1e-6)
    # a valid file still (pygltflib's load gives the sparse morph targets a byteOffset that glTF forbids)
    assert_valid_gltf(out)


def test_a_glb_of_four_influences_a_vertex_is_framed(glb, tmp_path):
    """Another tool's export with at most four joints a vertex has no JOINTS_1 at all (pygltflib declares only
    JOINTS_0): the review's evaluator stopped with "'Attributes' object has no attribute 'JOINTS_1'" (`doppel review
    Xbot.glb`, a Mixamo rig from Blender's exporter, before stop 73)."""
    import pygltflib

    from assets.export.gltf import glb_bytes

    path, _, _ = glb
    gltf = pygltflib.GLTF2.load_binary(str(path))
    for prim in gltf.meshes[0].primitives:
        attrs = prim.attributes
        for extra in [k for k in vars(attrs) if k.startswith(("JOINTS_", "WEIGHTS_")) and not k.endswith("_0")]:
            delattr(attrs, extra)
    four = tmp_path / "four.glb"
    four.write_bytes(glb_bytes(gltf))
    framing = frame_animation(load_glb(four))
    assert framing.hi[1] > framing.lo[1]
    build_site(four, tmp_path / "site")
    assert (tmp_path / "site" / "index.html").is_file()


def test_unreadable_glb_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"glTF\x02\x00\x00\x00garbage")
    with pytest.raises(GltfReadError, match="bad.glb"):
        load_glb(bad)


def test_gather_workspace(ws):
    data = gather(ws.root)
    assert data.is_workspace and data.audit.ok and data.audit.records > 5
    jane = next(a for a in data.actors if a.actor.id == "jane-doe")
    assert jane.actor.name == EVIL_NAME
    assert sorted(c.status() for c in jane.consents) == ["revoked", "valid"]
    assert [s.kind for s in jane.stages] == ["capture", "rig", "animation", "export", "render"]
    assert [n.asset.kind for n in jane.tree] == ["capture"]


def test_site_escapes_user_data_and_links_lineage(ws, tmp_path):
    res = build_site(ws.root, tmp_path / "site")
    texts = {p.name: p.read_text(encoding="utf-8") for p in res.pages}
    actor = texts["actor-jane-doe.html"]
    assert html.escape(EVIL_NAME, quote=True) in actor and html.escape(EVIL_PRODUCTION, quote=True) in actor
    for t in texts.values():
        assert "<script>window.__xss" not in t and "<img src=x" not in t and "<b>" not in t
        assert "<i>tiny" not in t
    assert "revoked" in actor and "withdrawn &lt;b&gt;by the actor&lt;/b&gt;" in actor
    assert actor.count("<ul class='tree'>") >= 4            # capture > rig > animation > export > render
    links = set(re.findall(r"href='(stage-\d+\.html)'", actor))
    assert len(links) == 5 and all((res.root / ln).is_file() for ln in links)
    assert res.viewers == 2                                  # the export's page and its rig's page
    index = texts["index.html"]
    assert "verified" in index and "1 valid, 1 revoked" in index


def test_render_pages_use_the_provenance_hook(ws, tmp_path):
    res = build_site(ws.root, tmp_path / "site")
    render = next(p for p in res.pages if "render:" in p.read_text(encoding="utf-8").split("<h1>")[1][:40])
    text = render.read_text(encoding="utf-8")
    assert "<th>provenance</th>" in text
    assert "no C2PA, no watermark" in text and "badge bad" in text      # a render nobody signed or marked
    assert check_provenance(tmp_path / "missing.png").state == "unreadable"


def test_provenance_column_reads_doppel_verify(tmp_path):
    """A signed and watermarked render is 'signed, trusted' with its consent's status; a re-encoded copy keeps its
    watermark; after revocation both fail; an unmarked frame fails."""
    import numpy as np
    from PIL import Image

    from assets.consent import revoke
    from assets.disclosure import DisclosureContext, disclose_file
    from doppel.consent_gate import gated
    from tests.assets.provenance_helpers import jpeg, textured, workspace_with_actor

    ws, consent = workspace_with_actor(tmp_path / "ws")
    shot = ws.root / "renders" / "shot1"
    shot.mkdir(parents=True)
    Image.fromarray(textured(1)).save(shot / "frame_0001.png")
    Image.fromarray(textured(2)).save(shot / "frame_0002.png")
    disclose_file(shot / "frame_0001.png", DisclosureContext(ws, "jane", consent.id, "Film", "render", command="t"))
    copy = np.asarray(Image.open(shot / "frame_0001.png").convert("RGB"))
    Image.fromarray(jpeg(copy, 85)).save(shot / "frame_0001_copy.jpg", quality=92)
    with gated(ws, "jane", "render", "Film", command="render") as run:
        run.add_output(shot, kind="render")
    states = {p.name: check_provenance(p, ws) for p in sorted(shot.iterdir())}
    assert states["frame_0001.png"].state == "signed, trusted, watermarked; consent valid"
    assert states["frame_0001.png"].ok is True and "c2pa: trusted" in states["frame_0001.png"].detail
    assert states["frame_0001_copy.jpg"].state == "no C2PA, watermarked; consent valid"
    assert states["frame_0001_copy.jpg"].ok is True
    assert states["frame_0002.png"].ok is False and states["frame_0002.png"].state == "no C2PA, no watermark"
    revoke(ws, consent.id, "withdrawn")
    after = {p.name: check_provenance(p, ws) for p in sorted(shot.iterdir())}
    assert [s.ok for s in after.values()] == [False, False, False]
    assert all("consent revoked" in after[n].state for n in ("frame_0001.png", "frame_0001_copy.jpg"))


def test_outputs_of_a_revoked_consent_are_listed_not_copied(tmp_path):
    """Once a consent is revoked the site copies none of the likeness made under it (a swapped plate registered
    under the plate performer's revoked consent and the double's valid one included, and such a file inside a
    folder of the valid consent); their pages name the consent and what to withdraw. Before: all copied."""
    from PIL import Image

    from assets.consent import grant, revoke
    from doppel.consent_gate import gated
    from tests.assets.provenance_helpers import textured, workspace_with_actor

    ws, consent = workspace_with_actor(tmp_path / "ws")
    from assets.actors import add_actor

    add_actor(ws, "Stunt", actor_id="stunt")
    stunt = grant(ws, "stunt", "face_replace", "Film", "2099-12-31")
    shots = ws.root / "renders"
    (shots / "shot1").mkdir(parents=True)
    Image.fromarray(textured(1)).save(shots / "shot1" / "frame_0001.png")
    Image.fromarray(textured(2)).save(shots / "swapped.png")
    with gated(ws, "jane", "render", "Film", command="render") as run:
        run.add_output(shots / "shot1", kind="render")
    with gated(ws, "stunt", "face_replace", "Film", command="swap") as run:   # the plate performer's gate
        run.add_output(shots / "swapped.png", kind="composite")
    with gated(ws, "jane", "render", "Film", command="swap") as run:          # the double's gate
        run.add_output(shots / "swapped.png", kind="composite")
    with gated(ws, "jane", "render", "Film", command="render") as run:        # a folder holding the swap
        run.add_output(shots, kind="render")

    def copied(site):
        return sorted(p.name for p in (site / "files").rglob("*") if p.is_file())

    res = build_site(ws.root, tmp_path / "site1")
    assert copied(res.root).count("swapped.png") == 3 and res.withheld == 0
    revoke(ws, stunt.id, "withdrawn")
    res = build_site(ws.root, tmp_path / "site2")
    assert "swapped.png" not in copied(res.root) and copied(res.root).count("frame_0001.png") == 2
    assert res.withheld == 1
    texts = [p.read_text(encoding="utf-8") for p in res.pages]
    swap_pages = [t for t in texts if "composite: renders/swapped.png" in t]
    assert len(swap_pages) == 2 and all(f"consent {stunt.id} of actor stunt revoked" in t for t in swap_pages)
    assert all("<img" not in t and "Withdraw" in t for t in swap_pages)
    folder = next(t for t in texts if "render: renders</h1>" in t)
    assert "1 file(s) in the folder are outputs of a revoked or expired consent" in folder
    index = res.index.read_text(encoding="utf-8")             # at a glance: whose assets were left out
    assert index.count("withheld") == 2 and "1 withheld" in index
    jane_page = (res.root / "actor-jane.html").read_text(encoding="utf-8")
    assert jane_page.count("withheld") == 1 and "renders/swapped.png</a> <span class='badge" in jane_page
    revoke(ws, consent.id, "withdrawn")
    res = build_site(ws.root, tmp_path / "site3")
    assert copied(res.root) == [] and res.withheld == 3


def test_a_review_site_holding_copies_of_a_consents_outputs_is_purged_with_it(tmp_path, capsys, monkeypatch):
    """A site built before a revocation held copies of the likeness (a render's frames) after the consent's purge:
    nobody had recorded it. Now a workspace's site is recorded (`review.site`) and the purge deletes the sites whose
    latest build copied its outputs; a site rebuilt since without them is left; a reviewer who cannot write the
    workspace is told the site is not recorded."""
    from PIL import Image

    from assets import audit
    from assets.consent_purge import execute_purge, plan_purge
    from assets.workspace import Workspace
    from doppel.consent_gate import gated
    from tests.assets.provenance_helpers import textured, workspace_with_actor

    ws, consent = workspace_with_actor(tmp_path / "ws")
    shot = ws.root / "renders" / "shot1"
    shot.mkdir(parents=True)
    Image.fromarray(textured(1)).save(shot / "frame_0001.png")
    with gated(ws, "jane", "render", "Film", command="render") as run:
        run.add_output(shot, kind="render")
    first = build_site(ws.root, tmp_path / "site")
    build_site(ws.root, tmp_path / "site2")
    assert first.copied == [run.registered[0].id] and not first.unrecorded
    sites = [e.record["site"] for e in audit.entries(ws) if e.record.get("action") == "review.site"]
    assert sites == [str(tmp_path / "site"), str(tmp_path / "site2")]
    with monkeypatch.context() as m:                 # a reviewer who may read the workspace, not write it
        m.setattr(Workspace, "read_only", property(lambda self: True))
        code, out, err = run_cli(capsys, "review", "--out", tmp_path / "site3", "-W", ws.root)
    assert code == 0, err
    said = " ".join(out.split())
    assert "holds copies of 1 output(s) and could not be recorded in the workspace" in said, said
    assert "a consent's purge will not find it; delete it when the review is done" in said

    code, out, err = run_cli(capsys, "consent", "revoke", consent.id, "--reason", "withdrawn", "-W", ws.root)
    said = " ".join(out.split())
    assert code == 0 and f"review sites with copies of them: {tmp_path / 'site'}, {tmp_path / 'site2'};" in said, said
    build_site(ws.root, tmp_path / "site2")          # rebuilt after the revocation: the frames left out
    plan = plan_purge(ws, consent.id)
    assert [i.path.name for i in plan.to_delete if i.kind == "review site"] == ["site"]
    execute_purge(ws, plan)
    assert not (tmp_path / "site").exists() and (tmp_path / "site2" / "index.html").is_file()


def test_tampered_audit_log_shows_on_the_index(tmp_path, glb):
    ws = make_workspace(tmp_path / "studio", glb[0])
    with ws.write() as con:
        con.execute("DROP TRIGGER audit_no_update")
        con.execute("UPDATE audit SET record = replace(record, 'Old Show', 'New Show') WHERE seq = 3")
    res = build_site(ws.root, tmp_path / "site")
    index = res.index.read_text(encoding="utf-8")
    assert "verified" not in index and "problem(s)" in index and "audit record 3 was edited" in index


def test_stage_folder_source_and_errors(glb, tmp_path):
    d = tmp_path / "demo" / "export"
    d.mkdir(parents=True)
    (d / "double.glb").write_bytes(glb[0].read_bytes())
    (d / "manifest.json").write_text('{"stage": "export"}')
    data = gather(tmp_path / "demo")
    assert [s.kind for s in data.stages] == ["export"] and not data.is_workspace
    with pytest.raises(FileNotFoundError, match="nope"):
        gather(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no stage folder found"):
        gather(tmp_path / "empty")


def test_a_stage_folder_named_in_another_encoding_is_reviewed(glb, tmp_path):
    """A folder of stage outputs named in Latin-1 (out_\\xe9, from an old share) failed the whole site: "'utf-8'
    codec can't encode character '\\udce9'". Its name is shown with the byte escaped, its files linked by their
    own bytes."""
    import os

    from doppel.review.pages import esc, href

    root = tmp_path / "show"
    d = os.fsdecode(os.fsencode(root) + b"/out_\xe9")
    os.makedirs(d)
    (root / os.path.basename(d) / "double.glb").write_bytes(glb[0].read_bytes())
    (root / os.path.basename(d) / "manifest.json").write_text('{"stage": "export"}')
    res = build_site(root, tmp_path / "site")
    pages = "".join(p.read_text(encoding="utf-8") for p in res.pages)
    assert "out_\\xe9" in pages
    assert esc(os.fsdecode(b"caf\xe9")) == "caf\\xe9" and href(os.fsdecode(b"a/caf\xe9.png")) == "a/caf%E9.png"


def test_review_command_and_refusals(ws, tmp_path, capsys, monkeypatch):
    code, out, err = run_cli(capsys, "review", ws.root, "--out", tmp_path / "site")
    assert code == 0, out + err
    assert (tmp_path / "site" / "index.html").is_file() and "2 3D viewer(s)" in out
    assert (tmp_path / "site" / "static" / "model-viewer-umd.min.js").stat().st_size > 500_000
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, out, err = run_cli(capsys, "review", ws.root, "--out", other)
    assert code == 1 and "--force" in out + err and (other / "notes.txt").read_text() == "mine"
    code, out, err = run_cli(capsys, "review", tmp_path / "missing", "--out", tmp_path / "s2")
    assert code == 1 and "missing" in out + err and not (tmp_path / "s2").exists()
    # the workspace as every other command takes it: -W, $DOPPEL_WORKSPACE, the current folder
    code, out, err = run_cli(capsys, "review", "-W", ws.root, "--out", tmp_path / "s3")
    assert code == 0 and "2 3D viewer(s)" in out, out + err
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DOPPEL_WORKSPACE", raising=False)
    code, out, err = run_cli(capsys, "review", "--out", tmp_path / "s4")
    assert code == 1 and "not a Doppel workspace" in err and "give SOURCE" in err and not (tmp_path / "s4").exists()
    code, out, err = run_cli(capsys, "review", ws.root, "-W", ws.root, "--out", tmp_path / "s4")
    assert code == 1 and "not both" in err


def test_a_damaged_glb_is_named_on_its_page_and_the_site_is_written(glb, tmp_path, caplog):
    d = tmp_path / "demo" / "export"
    d.mkdir(parents=True)
    (d / "double.glb").write_bytes(glb[0].read_bytes())
    (d / "broken.glb").write_bytes(b"glTF\x02")
    (d / "manifest.json").write_text('{"stage": "export"}')
    res = build_site(tmp_path / "demo", tmp_path / "site")
    assert res.viewers == 1
    page = "".join(p.read_text() for p in res.pages)
    assert "broken.glb (export broken.glb) cannot be shown: not a readable binary glTF" in page
    assert ".tmp-" not in page and "broken.glb" in caplog.text


def test_server_binds_loopback_only(ws, tmp_path):
    res = build_site(ws.root, tmp_path / "site")
    srv = make_server(res.root, 0)
    try:
        assert srv.server_address[0] == "127.0.0.1" and srv.server_address[1] > 0
    finally:
        srv.server_close()
    with pytest.raises(FileNotFoundError, match="build the site first"):
        make_server(tmp_path, 0)


def test_a_site_inside_the_source_is_not_reviewed_again(glb, tmp_path):
    src = tmp_path / "demo"
    (src / "export").mkdir(parents=True)
    (src / "export" / "double.glb").write_bytes(glb[0].read_bytes())
    first = build_site(src, src / "site")
    assert first.viewers == 1
    again = build_site(src, src / "site")                  # the site's copy of double.glb is not a second export
    assert again.viewers == 1 and [s.label for s in gather(src).stages] == ["export/double.glb"]


def test_a_registered_asset_deleted_from_disk_is_named(tmp_path, glb):
    import shutil

    ws = make_workspace(tmp_path / "studio", glb[0])
    shutil.rmtree(ws.root / "animations" / "run")
    res = build_site(ws.root, tmp_path / "site")
    page = next(p for p in res.pages if "animation: animations/run" in p.read_text(encoding="utf-8"))
    assert "missing: deleted or moved" in page.read_text(encoding="utf-8")


def test_metrics_tables_flatten_nested_values():
    from doppel.review.pages import flatten, table

    rows = flatten({"feet": {"l": {"skate": 0.4}, "r": {"skate": 1.5}}, "scale": 0.97, "deep": {"a": {"b": {"c": 1}}}})
    assert rows == {"feet.l.skate": 0.4, "feet.r.skate": 1.5, "scale": 0.97, "deep.a.b": {"c": 1}}
    assert "<th>feet.r.skate</th><td>1.5</td>" in table({"feet": {"r": {"skate": 1.5}}})


def test_review_serve_answers_on_loopback(ws, tmp_path):
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.doppel.test_stage_folders import from_a_terminal

    proc = subprocess.Popen([sys.executable, "-m", "doppel", "review", str(ws.root), "--out", str(tmp_path / "site"),
                             "--serve", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=from_a_terminal)   # Ctrl-C reaches it (a background run's children ignore it)
    try:
        url = None
        for line in proc.stdout:
            m = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
            if m:
                url = m.group(1)
                break
        assert url, "no 'serving' line"
        with urllib.request.urlopen(url + "index.html", timeout=30) as r:
            assert r.status == 200 and b"Audit log" in r.read()
        with urllib.request.urlopen(url + "static/model-viewer-umd.min.js", timeout=30) as r:
            assert r.headers["Content-Type"].startswith("text/javascript")
        proc.send_signal(signal.SIGINT)                     # Ctrl-C stops serving; the site stays, exit 0
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "server stopped" in out and (tmp_path / "site" / "index.html").is_file()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_provenance_column_fails_a_swap_whose_plate_performer_revoked(tmp_path):
    """A face replacement names its real plate performer; once they revoke their consent the column fails it,
    though the double's consent (here the virtual actor's) still holds."""
    from PIL import Image

    from assets.actors import add_actor
    from assets.consent import grant, revoke
    from assets.disclosure import DisclosureContext, disclose_file
    from tests.assets.provenance_helpers import textured, workspace_with_actor

    ws, _ = workspace_with_actor(tmp_path / "ws")
    add_actor(ws, "Stunt Double", actor_id="stunt")
    c = grant(ws, "stunt", ["face_replace"], "Film", "2099-01-01")
    Image.fromarray(textured(3)).save(tmp_path / "swap.png")
    disclose_file(tmp_path / "swap.png", DisclosureContext(ws, "virtual", None, "Film", "face_replace", "composite",
                                                           command="swap", performer="stunt",
                                                           performer_consent=c.id))
    st = check_provenance(tmp_path / "swap.png", ws)
    assert st.ok and st.state.endswith("consent not needed (virtual actor); plate performer's consent valid"), st
    assert f"plate performer: actor stunt, consent {c.id}: valid" in st.detail
    revoke(ws, c.id, "withdrawn")
    st = check_provenance(tmp_path / "swap.png", ws)
    assert not st.ok and "plate performer's consent revoked" in st.state, st


def test_an_export_page_says_whether_the_file_is_the_registered_export(tmp_path, glb):
    ws = make_workspace(tmp_path / "studio", glb[0])
    page = next(p for p in build_site(ws.root, tmp_path / "site").pages
                if "export: exports/jane" in p.read_text(encoding="utf-8")).read_text(encoding="utf-8")
    assert "badge ok'>unsigned; registered export, unchanged; consent valid" in page      # made by the library
    with open(ws.root / "exports" / "jane <double>.glb", "ab") as f:
        f.write(b"\0" * 4)                         # touched after it was exported
    page = next(p for p in build_site(ws.root, tmp_path / "site2").pages
                if "export: exports/jane" in p.read_text(encoding="utf-8")).read_text(encoding="utf-8")
    assert "badge bad'>unsigned; not the registered export" in page and "match no export registered" in page


def test_an_export_the_site_cannot_show_is_offered_for_download(tmp_path, glb):
    """An FBX, USD or Alembic delivery is copied into the site; its page links the copy (it was copied and shown
    nowhere: a reviewer could not reach it)."""
    from doppel.consent_gate import gated

    ws = make_workspace(tmp_path / "studio", glb[0])
    cache = ws.root / "exports" / "jane shot <010>.abc"
    cache.write_bytes(b"Ogawa" + bytes(2_000_000))
    with gated(ws, "jane-doe", "export", EVIL_PRODUCTION, command="export", inputs=[ws.root / "rigs" / "jane"]) as run:
        run.add_output(cache, kind="export")
    page = next(p for p in build_site(ws.root, tmp_path / "site").pages
                if "export: exports/jane shot" in p.read_text(encoding="utf-8")).read_text(encoding="utf-8")
    link = re.search(r"<a href='(files/[^']+)' download>jane shot &lt;010&gt;\.abc</a> \(2\.0 MB\)", page)
    assert link, page
    from urllib.parse import unquote

    assert (tmp_path / "site" / unquote(html.unescape(link.group(1)))).stat().st_size == 2_000_005
    glb_page = next(p for p in build_site(ws.root, tmp_path / "site2").pages
                    if "export: exports/jane &lt;double&gt;.glb" in p.read_text(encoding="utf-8"))
    assert "<h2>Files</h2>" not in glb_page.read_text(encoding="utf-8")      # the viewer links the .glb itself
