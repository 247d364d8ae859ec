"""`doppel export`: files written with provenance, bad input as one red line."""

import re

import numpy as np
import pytest

from assets.export.gltf import read_glb_json
from rigging.animation import Animation
from tests.assets.conftest import random_rotations
from tests.cli_runner import run_cli


@pytest.fixture()
def gate(consented_workspace):
    """CLI options that pass the consent gate for the tiny rig (made from actor-42's likeness)."""
    return ("--workspace", str(consented_workspace[0].root), "--production", "Film")


def test_export_of_a_real_actors_rig_needs_consent(tmp_path, capsys, tiny_rig_dir, texture_png,
                                                    consented_workspace):
    ws, _ = consented_workspace
    code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(tmp_path / "x.glb"),
                           "--workspace", str(ws.root))
    assert code == 1 and "--production is required for actor 'actor-42'" in err
    code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(tmp_path / "x.glb"),
                           "--workspace", str(ws.root), "--production", "Another Film")
    assert code == 1 and "error:" in err and "Another Film" in err
    assert not (tmp_path / "x.glb").exists()
    code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(tmp_path / "x.glb"),
                           "--workspace", str(ws.root), "--production", "Film", "--actor", "someone-else")
    assert code == 1 and "actor-42" in err


def test_export_glb_and_usda_with_animation(tmp_path, capsys, tiny_rig_dir, tiny_anim, texture_png,
                                            consented_workspace):
    ws, consent_id = consented_workspace
    gate = ("--workspace", str(ws.root), "--production", "Film")
    anim_dir = tmp_path / "take"
    tiny_anim.save(anim_dir)
    code, out, err = run_cli(capsys, "export", str(tiny_rig_dir), "--anim", str(anim_dir), "--out",
                             str(tmp_path / "d.glb"), "--texture", str(texture_png), *gate)
    assert code == 0, err
    assert "glb (Y-up, m), 12 frames" in out
    prov = read_glb_json(tmp_path / "d.glb")["asset"]["extras"]["doppel"]
    assert prov["actor_id"] == "actor-42" and prov["consent_ref"] == consent_id
    assert prov["animation"].endswith("animation.npz")
    code, out, err = run_cli(capsys, "export", str(tiny_rig_dir), "--anim", str(anim_dir), "--format", "usda",
                             "--out", str(tmp_path / "d.usda"), "--preset", "unreal", "--no-texture", *gate)
    assert code == 0, err
    text = (tmp_path / "d.usda").read_text()
    assert 'upAxis = "Z"' in text and "metersPerUnit = 0.01" in text and "actor-42" in text


def test_export_without_texture_for_non_anny_uvs(tmp_path, capsys, tiny_rig_dir, gate):
    code, out, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(tmp_path / "d.glb"), *gate)
    assert code == 0, err
    assert read_glb_json(tmp_path / "d.glb").get("materials", []) == []


def test_an_export_replaces_its_own_file_but_not_anothers(tmp_path, capsys, tiny_rig_dir, gate):
    """`doppel export` replaced any file of its --out name without a word; now only an earlier Doppel export
    (its provenance says so), or any file with --force."""
    from assets.export.existing_out import written_by_doppel

    for name in ("d.glb", "d.usda", "d.usdz"):
        out = tmp_path / name
        out.write_text("the client's hand-finished rig")
        code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(out), "--no-texture", *gate)
        assert code == 1 and "exists and is not a Doppel export" in err and "--force" in err, err
        assert out.read_text() == "the client's hand-finished rig"
        code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(out), "--no-texture", "--force",
                               *gate)
        assert code == 0 and written_by_doppel(out), err
        code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(out), "--no-texture", *gate)
        assert code == 0, err                                              # its own export: replaced again
    fbx = tmp_path / "other.fbx"
    fbx.write_bytes(b"Kaydara FBX Binary  \x00" + bytes(64))
    assert not written_by_doppel(fbx)
    fbx.write_bytes(b"Kaydara FBX Binary  \x00" + b"P\x0e\x00\x00\x00doppel_version")
    assert written_by_doppel(fbx)


def test_a_second_export_to_a_file_being_written_is_refused(tmp_path, capsys, tiny_rig_dir, gate):
    """Two `doppel export --out same.glb` started together both reported success, and the file was the last
    one's (each registered as an asset). The later run now finds the earlier run's claim and stops."""
    import os
    import time

    from core.stage_folders import _host

    out = tmp_path / "same.glb"
    older = tmp_path / f".same.glb.tmp-{_host()}-{os.getppid()}-{time.time_ns() - 10**9}_c"   # a live run's claim
    older.touch()
    code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(out), "--no-texture", *gate)
    assert code == 1 and "another run is writing it" in err and not out.exists(), err
    assert sorted(p.name for p in tmp_path.iterdir()) == [older.name]     # this run's claim withdrawn
    older.unlink()
    dead = tmp_path / f".same.glb.tmp-{_host()}-{2**22 + 7}-{time.time_ns() - 10**9}_c"  # a killed run's claim
    dead.touch()
    code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(out), "--no-texture", *gate)
    assert code == 0 and out.is_file(), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.glb", "same.glb.c2pa"]   # stale claim gone, its own too


def test_export_bad_input_one_line(tmp_path, capsys, tiny_rig_dir, gate):
    bad = Animation(["hips", "LeftArm"], random_rotations(3, 2), np.zeros((3, 3)), 30.0)
    bad.save(tmp_path / "bad_take")
    cases = [
        (["--anim", str(tmp_path / "bad_take"), "--out", str(tmp_path / "a.glb")], "not in the rig"),
        (["--anim", str(tmp_path / "bad_take"), "--out", str(tmp_path / "new" / "deeper" / "a.glb")], "not in the rig"),
        (["--out", str(tmp_path / "a.obj")], "cannot tell the format"),
        (["--out", str(tmp_path / "a.glb"), "--units", "cm"], "glTF 2.0 is Y-up in metres"),
        (["--out", str(tmp_path / "a.fbx"), "--preset", "houdini"], "--preset must be one of"),
        (["--out", str(tmp_path / "a.glb"), "--format", "obj"], "--format must be one of"),
        (["--out", str(tmp_path / "a.usdz"), "--format", "usd"], "is a usdz file name, --format usd writes .usd"),
    ]
    for args, msg in cases:
        code, out, err = run_cli(capsys, "export", str(tiny_rig_dir), "--no-texture", *args, *gate)
        assert code == 1 and msg in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) <= 2, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_take"]


def test_an_export_makes_its_missing_output_folders(tmp_path, capsys, tiny_rig_dir, gate):
    """As a stage command makes its OUT folder: `--out shots/sh010/double.glb` makes shots/sh010/ (it was refused);
    a refused export leaves none of the folders it made (the bad-input test above)."""
    out = tmp_path / "shots" / "sh010" / "double.glb"
    code, msg, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(out), "--no-texture", *gate)
    assert code == 0 and out.is_file(), err
    assert read_glb_json(out)["asset"]["extras"]["doppel"]["actor_id"] == "actor-42"


def test_export_invalid_rig_folder(tmp_path, capsys, tiny_rig_dir, gate):
    import shutil

    d = tmp_path / "rig"
    shutil.copytree(tiny_rig_dir, d)
    with open(d / "rig.npz", "ab") as f:
        f.write(b"tampered")
    code, out, err = run_cli(capsys, "export", str(d), "--out", str(tmp_path / "a.glb"), *gate)
    assert code == 1 and "does not match the SHA-256" in err
    code, out, err = run_cli(capsys, "export", str(tmp_path / "nope"), "--out", str(tmp_path / "a.glb"))
    assert code == 1 and re.search(r"nope: (input not found|no such file or folder)", err), err  # gate's wording
    assert not (tmp_path / "a.glb").exists()


def test_export_rig_that_fails_validate(tmp_path, capsys, tiny_rig_dir, gate):
    """A rig folder whose arrays are intact (hash matches) but invalid: one line naming the problem."""
    import io
    import json
    import shutil

    from core.storage import sha256_file

    d = tmp_path / "rig"
    shutil.copytree(tiny_rig_dir, d)
    with np.load(d / "rig.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["skin_weights"] = arrays["skin_weights"] * 2
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (d / "rig.npz").write_bytes(buf.getvalue())
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["outputs"]["rig"]["sha256"] = sha256_file(d / "rig.npz")
    (d / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run_cli(capsys, "export", str(d), "--out", str(tmp_path / "a.usdz"), "--no-texture", *gate)
    assert code == 1 and "invalid rig: skin_weights" in err and "do not sum to 1" in err
    assert not (tmp_path / "a.usdz").exists()


def test_a_texture_of_another_actor_cannot_leave_under_the_rigs_consent(tmp_path, capsys, tiny_rig_dir,
                                                                         texture_png, gate):
    """--texture is a likeness input: another actor's baked albedo is refused with actor-42's rig (inputs of two
    actors), and nothing is written."""
    import shutil

    from core.storage import write_manifest

    tex = tmp_path / "jane_tex"
    tex.mkdir()
    shutil.copy(texture_png, tex / "albedo.png")
    write_manifest(tex, "texture", params={"actor_id": "jane"}, outputs={"albedo": "albedo.png"})
    code, _, err = run_cli(capsys, "export", str(tiny_rig_dir), "--out", str(tmp_path / "x.glb"),
                           "--texture", str(tex / "albedo.png"), *gate)
    assert code == 1 and "several actors" in err and "jane" in err, err
    assert not (tmp_path / "x.glb").exists()
