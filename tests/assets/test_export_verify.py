"""`doppel verify` of 3D exports: the provenance inside an FBX, USD or glTF, and whether its bytes are an export the
workspace registered (then the consent's status today). Before, verify read every file as an image: each of
Doppel's own exports was "not a readable image" and counted invalid (exit 1)."""

import json

import pytest

from assets.export_verify import read_export_provenance, verify_export
from tests.cli_runner import run_cli


@pytest.fixture()
def exports(tmp_path, capsys, tiny_rig_dir, consented_workspace):
    """actor-42's tiny rig exported as glb, usda and fbx through the gated CLI."""
    ws, consent_id = consented_workspace
    out = {}
    (tmp_path / "delivery").mkdir()
    for suffix in ("glb", "usda", "fbx"):
        path = tmp_path / "delivery" / f"double.{suffix}"
        code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(path), "--no-texture",
                               "--workspace", str(ws.root), "--production", "Film")
        assert code == 0, err
        out[suffix] = path
    return ws, consent_id, out


def test_every_format_reads_back_the_provenance_it_was_written_with(exports):
    _, consent_id, files = exports
    for path in files.values():
        prov = read_export_provenance(path)
        assert prov["actor_id"] == "actor-42" and prov["consent_ref"] == consent_id, path
        assert prov["rig_sha256"] and prov["doppel_version"], path


def test_verify_names_the_registered_export_and_its_consent_then_its_revocation(exports, capsys):
    ws, consent_id, files = exports
    code, out, err = run_cli(capsys, "verify", str(files["glb"].parent), "--workspace", str(ws.root))
    assert code == 0, out + err
    assert "verify: 3 files, 0 invalid" in out and "not a readable image" not in out
    assert out.count(f"actor actor-42, production Film, use export, consent {consent_id}: valid") == 3
    assert out.count("unchanged since") == 3
    code, _, err = run_cli(capsys, "consent", "revoke", consent_id, "--reason", "withdrawn", "-W", str(ws.root))
    assert code == 0, err
    code, out, _ = run_cli(capsys, "verify", str(files["fbx"]), "--workspace", str(ws.root), "--json")
    report = json.loads(out)
    assert code == 0 and report["kind"] == "export" and report["record"]["consent_status"] == "revoked"


def test_an_edited_export_is_told_from_the_registered_one(exports):
    ws, consent_id, files = exports
    doc = files["usda"].read_text().replace("doppel", "doppel", 1) + "\n# touched up by hand\n"
    edited = files["usda"].with_name("edited.usda")
    edited.write_text(doc)
    r = verify_export(edited, ws)
    assert not r.invalid and r.record.source == "provenance" and r.record.asset_id is None
    assert r.record.consent == consent_id and r.record.consent_status == "valid"
    assert any("match no export registered" in n for n in r.notes)


def test_unreadable_and_unmarked_exports(tmp_path, exports, capsys):
    ws, _, files = exports
    data = files["fbx"].read_bytes()
    (tmp_path / "broken.fbx").write_bytes(data[: len(data) // 2])          # a delivery cut short
    (tmp_path / "broken.glb").write_bytes(b"not gltf at all")
    (tmp_path / "plain.gltf").write_text(json.dumps({"asset": {"version": "2.0"}}))
    code, out, _ = run_cli(capsys, "verify", str(tmp_path / "broken.fbx"), str(tmp_path / "broken.glb"),
                           str(tmp_path / "plain.gltf"), "--workspace", str(ws.root))
    assert code == 1 and "verify: 3 files, 2 invalid" in out
    assert "broken.fbx: not a readable FBX file" in out and "broken.glb: not a readable GLB file" in out
    assert "provenance (gltf): none" in out and "carries no Doppel provenance" in out


def test_an_ascii_fbx_from_another_package_keeps_its_provenance(tmp_path):
    path = tmp_path / "resaved.fbx"
    path.write_text('; FBX 7.4.0 project file\nFBXHeaderExtension:  {\n}\nObjects:  {\n  Model: 1, "Model::rig", '
                    '"Null" {\n    Properties70:  {\n      P: "doppel_actor_id", "KString", "", "A+U", "actor-42"\n'
                    '      P: "doppel_consent_ref", "KString", "", "A+U", "c-0123"\n    }\n  }\n}\n')
    assert read_export_provenance(path) == {"actor_id": "actor-42", "consent_ref": "c-0123"}
    r = verify_export(path, None)
    assert not r.invalid and r.record is None and "no workspace" in r.notes[0]


def test_an_export_names_its_production_and_workspace_and_another_workspace_says_so(exports, tmp_path):
    from assets.signing_keys import workspace_id
    from assets.workspace import Workspace

    ws, _, files = exports
    for path in files.values():
        prov = read_export_provenance(path)
        assert prov["production"] == "Film" and prov["workspace"] == workspace_id(ws), path
    elsewhere = Workspace.init(tmp_path / "vendor")
    r = verify_export(files["glb"], elsewhere)
    assert r.record.consent_status.startswith("unknown") and not r.invalid     # the consent is not kept there
    assert f"exported in another workspace (id {workspace_id(ws)}" in r.notes[0]


def test_an_export_made_in_a_workspace_is_signed_beside_it_and_a_changed_byte_shows(exports):
    ws, _, files = exports
    for path in files.values():
        assert path.with_name(path.name + ".c2pa").is_file(), path
        assert verify_export(path, ws).c2pa.state == "trusted", path
    data = bytearray(files["fbx"].read_bytes())
    data[-40] ^= 1                                  # one bit of the delivery changed after signing
    files["fbx"].write_bytes(bytes(data))
    r = verify_export(files["fbx"], ws)
    assert r.invalid and r.c2pa.state == "invalid" and "dataHash.mismatch" in r.c2pa.reason


def test_a_folder_of_fbx_deliveries_is_read_in_one_blender_start(exports, capsys, monkeypatch):
    import shutil

    import assets.blender_worker as bw

    ws, consent_id, files = exports
    for k in range(3):
        shutil.copy(files["fbx"], files["fbx"].with_name(f"shot{k}.fbx"))
    files["fbx"].with_name("cut.fbx").write_bytes(files["fbx"].read_bytes()[:5000])
    calls, real = [], bw.run_blender_tasks
    monkeypatch.setattr(bw, "run_blender_tasks", lambda tasks, **kw: calls.append(len(tasks)) or real(tasks, **kw))
    code, out, _ = run_cli(capsys, "verify", str(files["fbx"].parent), "--workspace", str(ws.root))
    assert calls == [5] and code == 1, out              # the cut delivery is invalid, the rest are read
    assert out.count(f"provenance (fbx): actor actor-42, consent {consent_id}") == 4
    assert "cut.fbx: not a readable FBX file" in out


def test_an_alembic_cache_is_signed_verified_and_replaced_like_the_other_exports(tmp_path, capsys, tiny_rig_dir,
                                                                                 tiny_anim, consented_workspace):
    ws, consent_id = consented_workspace
    gate = ("--workspace", str(ws.root), "--production", "Film")
    tiny_anim.save(tmp_path / "take")
    cache = tmp_path / "double.abc"
    code, out, err = run_cli(capsys, "export", str(tiny_rig_dir), "--anim", str(tmp_path / "take"), "--out",
                             str(cache), "--preset", "maya", *gate)
    assert code == 0, err
    assert "abc (Y-up, cm), 12 frames" in out
    prov = read_export_provenance(cache)
    assert prov["actor_id"] == "actor-42" and prov["consent_ref"] == consent_id and prov["production"] == "Film"
    code, out, _ = run_cli(capsys, "verify", str(cache), "--workspace", str(ws.root))
    assert code == 0 and f"actor actor-42, production Film, use export, consent {consent_id}: valid" in out, out
    assert verify_export(cache, ws).c2pa.state == "trusted"
    code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(cache), *gate)     # its own file
    assert code == 0, err
    other = tmp_path / "shot010_fx.abc"
    other.write_bytes(cache.read_bytes().replace(b"doppel_", b"studio_"))       # another tool's cache
    code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(other), *gate)
    assert code == 1 and "exists and is not a Doppel export" in err
    code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(tmp_path / "z.abc"), "--up", "z", *gate)
    assert code == 1 and "Alembic files are Y-up by convention" in err and not (tmp_path / "z.abc").exists()
    data = bytearray(cache.read_bytes())
    data[-40] ^= 1                                                              # changed after signing
    cache.write_bytes(bytes(data))
    assert verify_export(cache, ws).c2pa.state == "invalid"
