"""FBX through Blender, and round trips through Blender's importers: FBX (three presets), glTF and USD files are
imported back with bpy (one worker process for all of them), animation frames are evaluated and the vertices compared
with Rig.pose. Blender processes in this module: 3 exports + 1 import/evaluation + 1 error case."""

import os
import stat

import numpy as np
import pytest

from assets.blender_worker import BlenderError, run_blender_tasks
from assets.export import ExportError, export_rig
from assets.export.common import prepare_scene, reference_vertices
from assets.export.fbx import evaluate_in_blender, fbx_global_settings
from assets.export.gltf import split_vertices
from assets.export.run import default_options
from core.errors import MissingDependencyError

TOL_M = 1e-5            # round-trip tolerance, metres (the issue asks for < 1 mm)
FRAMES = [0, 6, 11]
PROV = {"actor_id": "actor-42", "consent_ref": "consent-7", "doppel_version": "0.1.0"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_rig, tiny_anim, texture_png):
    d = tmp_path_factory.mktemp("fbx")
    files = {}
    for preset in ("maya", "unreal", "blender"):
        res = export_rig(tiny_rig, "fbx", d / f"{preset}.fbx", tiny_anim, default_options("fbx", preset),
                         texture=texture_png, provenance=PROV)
        assert res.frames == 12
        files[preset] = res.path
    files["glb"] = export_rig(tiny_rig, "glb", d / "double.glb", tiny_anim, texture=texture_png).path
    files["usda"] = export_rig(tiny_rig, "usda", d / "double.usda", tiny_anim).path
    kinds = ("maya", "unreal", "blender", "glb", "usda")
    evals = evaluate_in_blender([files[k] for k in kinds], FRAMES, tiny_anim.fps)
    return files, dict(zip(kinds, evals, strict=True))


@pytest.mark.parametrize("preset", ["maya", "unreal", "blender"])
def test_fbx_round_trip_through_blender(exported, tiny_rig, tiny_anim, preset):
    _, evals = exported
    ev = evals[preset]
    ref = reference_vertices(tiny_rig, tiny_anim, FRAMES)
    assert ev.vertices.shape == ref.shape                         # FBX keeps the vertex order
    np.testing.assert_allclose(ev.rest, tiny_rig.vertices, atol=TOL_M)
    assert np.abs(ev.vertices - ref).max() < TOL_M
    info = ev.info
    assert info["bone_names"] == tiny_rig.joint_names
    assert info["shape_keys"] == tiny_rig.blendshape_names
    assert info["uv_layers"] == 1 and info["images"] and info["materials"]
    assert info["custom_properties"]["doppel_actor_id"] == "actor-42"
    assert info["custom_properties"]["doppel_consent_ref"] == "consent-7"


def test_glb_round_trip_through_blender(exported, tiny_rig, tiny_anim):
    _, evals = exported
    ev = evals["glb"]
    ref = reference_vertices(tiny_rig, tiny_anim, FRAMES)
    src, _, _ = split_vertices(prepare_scene(tiny_rig, None, default_options("glb")))
    np.testing.assert_allclose(ev.rest, tiny_rig.vertices[src], atol=TOL_M)   # Blender keeps glTF's vertices
    assert np.abs(ev.vertices - ref[:, src]).max() < TOL_M
    assert ev.info["shape_keys"] == tiny_rig.blendshape_names
    # the comparison can fail: another frame is far off
    assert np.abs(ev.vertices[1] - ref[0, src]).max() > 1e-3


def test_usd_round_trip_through_blender(exported, tiny_rig, tiny_anim):
    """The .usda read by Blender's USD importer (its own UsdSkel reading and armature skinning, not usd-core's
    BakeSkinning that test_export_usd uses), morph targets animated: Rig.pose's vertices."""
    _, evals = exported
    ev = evals["usda"]
    ref = reference_vertices(tiny_rig, tiny_anim, FRAMES)
    assert ev.vertices.shape == ref.shape and ev.info["shape_keys"] == tiny_rig.blendshape_names
    assert np.abs(ev.vertices - ref).max() < TOL_M
    assert np.abs(ev.vertices[1] - ref[0]).max() > 1e-3              # the comparison can fail


def test_a_rig_without_an_animation_opens_in_its_bind_pose(tmp_path, tiny_rig):
    """Blender 5 makes a new shape key at full weight: an FBX of a rig alone had every blendshape on (the tiny rig's
    'wave' moved its vertices by 16 mm), in Maya as in Blender."""
    path = export_rig(tiny_rig, "fbx", tmp_path / "rig.fbx").path
    (ev,) = evaluate_in_blender([path], [0], 24.0, static=True)
    assert ev.info["shape_keys"] == tiny_rig.blendshape_names
    assert np.abs(ev.vertices[0] - tiny_rig.vertices).max() < TOL_M


def test_fbx_presets_axes_and_units(exported):
    files, _ = exported
    maya, unreal, blender = (fbx_global_settings(files[k]) for k in ("maya", "unreal", "blender"))
    assert (maya["UpAxis"], maya["FrontAxis"], maya["FrontAxisSign"]) == (1, 2, 1)          # Y-up, facing +Z
    assert maya["UnitScaleFactor"] == pytest.approx(1.0)                                       # centimetres
    assert (unreal["UpAxis"], unreal["UnitScaleFactor"]) == (2, pytest.approx(1.0))           # Z-up, cm
    assert (blender["UpAxis"], blender["UnitScaleFactor"]) == (2, pytest.approx(100.0))       # Z-up, metres


def test_blender_error_is_one_clear_line(tmp_path):
    with pytest.raises(BlenderError, match=r"Blender: evaluate: .*missing\.fbx"):
        evaluate_in_blender([tmp_path / "missing.fbx"], [0], 24.0)


def test_blender_crash_becomes_clear_error(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Segmentation fault in Blender' >&2\nkill -SEGV $$\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(BlenderError, match=r"crashed \(signal 11\).*Segmentation fault in Blender"):
        run_blender_tasks([({"kind": "evaluate"}, {})], python=str(fake))


def test_channels_a_take_never_moves_are_held_not_keyed(tmp_path, tiny_rig):
    """A joint held at one non-identity rotation and a shape key at one weight: no keys for them in the worker's
    scene (a body take leaves fingers, toes, eyes and the face still), and the FBX read back skins to Rig.pose's
    vertices at every frame checked (the held values are in the file)."""
    from assets.export.common import smooth_random_animation
    from assets.export.fbx import fbx_task
    from rigging.animation import Animation

    anim = smooth_random_animation(tiny_rig, frames=12, blendshapes=2)
    R, w = anim.local_rotations.copy(), anim.blendshape_weights.copy()
    held = tiny_rig.joint_names.index("neck-head")                   # a leaf of the chain: its rotation shows
    R[:, held] = R[3, held]
    w[:, 1] = 0.7
    anim = Animation(joint_names=anim.joint_names, local_rotations=R, root_translation=anim.root_translation,
                     fps=anim.fps, blendshape_names=anim.blendshape_names, blendshape_weights=w)
    out = export_rig(tiny_rig, "fbx", tmp_path / "held.fbx", anim).path
    (ev,) = evaluate_in_blender([out], FRAMES, anim.fps)
    ref = reference_vertices(tiny_rig, anim, FRAMES)
    assert np.abs(ev.vertices - ref).max() < TOL_M
    assert np.abs(ref[0] - ref[-1]).max() > 1e-3                     # the frames checked differ
    scene = prepare_scene(tiny_rig, anim, default_options("fbx"))
    task, arrays = fbx_task(scene, tmp_path / "direct.fbx", "y")
    (res,) = run_blender_tasks([(task, arrays)])
    roots = int((tiny_rig.parents < 0).sum())
    channels = 4 * len(tiny_rig.joint_names) + 3 * roots + len(anim.blendshape_names)
    assert res.info["keyed_channels"] == channels - 4 - 1, res.info   # the held joint's quaternion and weight


def test_a_worker_killed_for_memory_says_so(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nkill -KILL $$\n")                  # what the kernel's out-of-memory killer does
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(BlenderError, match=r"crashed \(signal 9, killed: most often the machine ran out of memory"):
        run_blender_tasks([({"kind": "evaluate"}, {})], python=str(fake))


def test_a_long_takes_fbx_gets_time_for_its_frames(monkeypatch, tmp_path, tiny_rig):
    """The worker's limit grows with the bake (frames x bones): a 10-minute take at 120 fps onto a 104-bone rig
    is no longer stopped at 600 s ("try a shorter clip")."""
    import assets.blender_worker as bw
    from assets.export.common import smooth_random_animation
    from assets.export.fbx import fbx_timeout_s

    assert fbx_timeout_s(0, 104) == bw.WORKER_TIMEOUT_S
    assert fbx_timeout_s(71_552, 104) > 1300
    seen = {}

    def record(tasks, timeout=bw.WORKER_TIMEOUT_S, **kw):
        seen["timeout"] = timeout
        raise BlenderError("stop here")

    monkeypatch.setattr(bw, "run_blender_tasks", record)
    anim = smooth_random_animation(tiny_rig, frames=5000)
    with pytest.raises(ExportError):
        export_rig(tiny_rig, "fbx", tmp_path / "a.fbx", anim=anim)
    assert seen["timeout"] == pytest.approx(fbx_timeout_s(5000, len(tiny_rig.joint_names)))
    assert seen["timeout"] > bw.WORKER_TIMEOUT_S


def test_blender_missing(monkeypatch, tmp_path, tiny_rig):
    import assets.blender_worker as bw

    monkeypatch.setattr(bw, "blender_available", lambda: False)
    with pytest.raises(MissingDependencyError, match="pip install bpy"):
        export_rig(tiny_rig, "fbx", tmp_path / "a.fbx")
    assert list(tmp_path.iterdir()) == []


def test_failed_fbx_export_leaves_no_partial_file(monkeypatch, tmp_path, tiny_rig):
    import assets.blender_worker as bw

    def half_written(tasks, **kw):
        with open(tasks[0][0]["out"], "wb") as f:
            f.write(b"Kaydara FBX Binary  \0 half")
        raise BlenderError("Blender worker crashed (signal 9) in task 0 (export_fbx): killed")

    monkeypatch.setattr(bw, "run_blender_tasks", half_written)
    (tmp_path / "a.fbx").write_bytes(b"previous export")
    with pytest.raises(ExportError, match=r"a\.fbx: Blender could not write the FBX: .*crashed"):
        export_rig(tiny_rig, "fbx", tmp_path / "a.fbx")
    assert [p.name for p in tmp_path.iterdir()] == ["a.fbx"]
    assert (tmp_path / "a.fbx").read_bytes() == b"previous export"
    assert os.access(tmp_path, os.W_OK)


TRACEBACK_ERROR = """export_fbx: RuntimeError: Error: Python: Traceback (most recent call last):
  File "/venv/bpy/5.0/scripts/addons_core/io_scene_fbx/encode_bin.py", line 328, in _write
    write(data)
OSError: [Errno 28] No space left on device
Location: /venv/bpy/5.0/scripts/modules/bpy/ops.py:109"""


def test_blender_traceback_becomes_one_line_naming_the_file(monkeypatch, tmp_path, capsys):
    """A Blender failure (here: a full disk) is one red line naming the output and the exception, exit 1."""
    import assets.blender_worker as bw
    from core.errors import DoppelError
    from tests.assets.conftest import make_rig
    from tests.assets.test_export_cli import run_cli

    rig = make_rig()
    rig.metadata = {"model": "synthetic"}           # no actor: runs outside a workspace
    rig_dir = tmp_path / "rig"
    rig.validate().save(rig_dir)

    assert issubclass(BlenderError, DoppelError)
    assert bw.one_line(TRACEBACK_ERROR) == "export_fbx: OSError: [Errno 28] No space left on device"

    def full_disk(tasks, **kw):
        raise BlenderError(f"Blender: {TRACEBACK_ERROR}")

    monkeypatch.setattr(bw, "run_blender_tasks", full_disk)
    code, out, err = run_cli(capsys, "export", str(rig_dir), "--out", str(tmp_path / "a.fbx"), "--no-texture")
    assert code == 1
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert f"disk full writing {tmp_path / 'a.fbx'}" in errors[0] and "No space left" in errors[0]

    def broken(tasks, **kw):
        raise BlenderError("Blender: export_fbx: RuntimeError: armature has no bones")

    monkeypatch.setattr(bw, "run_blender_tasks", broken)
    code, out, err = run_cli(capsys, "export", str(rig_dir), "--out", str(tmp_path / "a.fbx"), "--no-texture")
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert code == 1 and len(errors) == 1, err
    assert f"{tmp_path / 'a.fbx'}: Blender could not write the FBX" in errors[0] and "no bones" in errors[0]


def test_fbx_gets_the_exact_rate_and_the_clip_range(tmp_path, tiny_rig):
    """A BVH frame time of 0.008333 s (120.0048 fps) is written as 120 fps, and the file's time span covers the
    clip (frames 1..T), not Blender's default 0..1 s."""
    from assets.export import smooth_random_animation
    from assets.export.fbx import FBX_KTIME

    anim = smooth_random_animation(tiny_rig, frames=30, fps=1 / 0.008333, seed=1)
    res = export_rig(tiny_rig, "fbx", tmp_path / "clip.fbx", anim, default_options("fbx", "maya"))
    g = fbx_global_settings(res.path)
    assert g["TimeMode"] == 1 and g["CustomFrameRate"] == 120.0            # FBX's eFrames120
    assert g["TimeSpanStart"] == pytest.approx(1 / 120 * FBX_KTIME, abs=1)
    assert g["TimeSpanStop"] == pytest.approx(30 / 120 * FBX_KTIME, abs=1)


def test_the_worker_reads_and_writes_relative_paths_where_the_caller_is(exported, monkeypatch, tmp_path):
    """The worker ran in Doppel's own folder, so a relative path in a task meant a file there: `doppel demo --out
    x` run outside the repository had Cycles write x's EXR into the repository and the demo's comparison failed.
    Its imports still come from Doppel's folder, whatever the caller's folder holds."""
    from assets.blender_worker import run_blender_tasks

    files, _ = exported
    monkeypatch.chdir(files["maya"].parent)
    (files["maya"].parent / "assets").mkdir(exist_ok=True)      # a studio's own "assets" folder beside the files
    (res,) = run_blender_tasks([({"kind": "fbx_properties", "path": files["maya"].name}, {})])
    assert res.info["objects"] and "unreadable" not in res.info
    monkeypatch.chdir(tmp_path)
    (res,) = run_blender_tasks([({"kind": "fbx_properties", "path": files["maya"].name}, {})])
    assert "No such file" in res.info["unreadable"]


def test_a_relative_working_folder_reaches_the_worker(exported, monkeypatch, tmp_path):
    """`doppel export RIG --format fbx --out double.fbx` run in a project folder failed ("No such file ...
    /work/main/.double.fbx.work-.../task_0.json"): the working folder beside a relative OUT was relative, and the
    worker, started in Doppel's folder, looked for its tasks there."""
    import tempfile

    from core.leftovers import work_folder

    files, _ = exported
    monkeypatch.chdir(files["maya"].parent)
    with work_folder("double.fbx", temp_default=True) as w:
        assert w.is_absolute() and w.parent == files["maya"].parent
    (tmp_path / "rel").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", "rel")           # a relative temporary folder, whoever set it
    (res,) = run_blender_tasks([({"kind": "fbx_properties", "path": str(files["maya"])}, {})])
    assert res.info["objects"] and "unreadable" not in res.info
