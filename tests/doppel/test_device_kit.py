"""scripts/device_kit.py: the kit carried to the device machine loads there without the body model."""

import builtins
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.anny_fit import write_posed_anny_fit

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return mod


@pytest.fixture(scope="module")
def capture_and_fit(tmp_path_factory):
    """A 2-camera, 3-frame synthetic capture and a posed Anny fit of its first frame (3 mm of detail)."""
    from doppel.synthetic_capture import synthesize_capture
    from reconstruction.body_models import AnnyModel

    tmp = tmp_path_factory.mktemp("kit")
    synthesize_capture(tmp / "cap", n_cameras=2, seed=0, size=64, texture_size=64, frames=3)
    model = AnnyModel()
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 0.02, (len(model.skeleton.joint_names), 3))
    fit = tmp / "fit"
    write_posed_anny_fit(fit, model, pose, {"height": 0.55, "weight": 0.45}, np.array([0.0, 0.9, 0.0]), 0.003, rng)
    return tmp / "cap", fit, model


def test_the_kit_loads_without_the_body_model_and_carries_the_rig_posed_novel_meshes(tmp_path, capture_and_fit,
                                                                                      monkeypatch):
    import trimesh

    from capture.session import load_session
    from doppel.neural_inputs import load_fit_mesh

    capture, fit, model = capture_and_fit
    kit = _script("device_kit", ROOT / "scripts" / "device_kit.py")
    bench = _script("neural_double", ROOT / "benchmarks" / "neural_double.py")
    kit.copy_capture(capture, tmp_path / "capture")
    kit.copy_fit(fit, tmp_path / "fit")
    written = bench.write_rig_posed_meshes(fit, capture, tmp_path / "novel")
    assert [p.name for p in written] == ["001.ply", "002.ply"]
    assert not list((tmp_path / "capture").rglob("*.exr"))                  # photos travel as PNG alone
    session = load_session(tmp_path / "capture" / "session")
    assert list(session.frames) == ["000", "001", "002"] and len(session.cameras) == 2

    real_import = builtins.__import__

    def no_body_model(name, *args, **kwargs):                                # the device machine: no Anny, no warp
        if name.split(".")[0] in ("anny", "warp") or name == "reconstruction.body_models":
            raise ImportError(f"no {name} here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_body_model)
    loaded = load_fit_mesh(tmp_path / "fit")
    monkeypatch.undo()
    uvs, face_uvs = model.uvs
    assert np.array_equal(loaded.uvs, np.asarray(uvs, np.float32))
    assert np.array_equal(loaded.face_uvs, np.asarray(face_uvs, np.int64))
    assert np.array_equal(loaded.faces, np.asarray(model.faces, np.int64))
    for i, p in enumerate(written, start=1):
        v = np.asarray(trimesh.load(p, process=False).vertices, np.float32)
        want = bench.rig_posed_fit(fit, capture, i, 3).numpy()
        assert np.abs(v - want).max() < 1e-5
    assert bench.novel_mesh_kind(str(tmp_path / "novel"), tmp_path / "fit") == str(tmp_path / "novel")
    with pytest.raises(SystemExit, match="not auto, rig, ground_truth or a folder"):
        bench.novel_mesh_kind(str(tmp_path / "nowhere"), tmp_path / "fit")


def test_only_the_proven_virtual_actor_goes_into_the_kit(tmp_path, capture_and_fit):
    """The kit sends photos to another machine: a capture or a fit without proof of being synthetic is refused."""
    import shutil

    from core.storage import write_manifest
    from doppel.synthetic_provenance import write_synthetic_session_manifest

    capture, fit, _ = capture_and_fit
    kit = _script("device_kit", ROOT / "scripts" / "device_kit.py")
    cap, fit2 = tmp_path / "cap", tmp_path / "fit"
    shutil.copytree(capture, cap)
    shutil.copytree(fit, fit2)
    with pytest.raises(SystemExit, match="session: not proven the virtual actor's .*no manifest"):
        kit.require_virtual_actor(cap, fit2)                           # no provenance: refused
    write_synthetic_session_manifest(cap / "session", seed=0, settings={"cameras": 2, "size": 64, "frames": 3})
    with pytest.raises(SystemExit, match="fit: not proven the virtual actor's"):
        kit.require_virtual_actor(cap, fit2)                           # the fit still has none
    write_manifest(fit2, "fit", params={"actor_id": "virtual"},
                   outputs={"params": "params.json", "fit_mesh": "fit_mesh.ply"})
    kit.require_virtual_actor(cap, fit2)                               # both proven: accepted
    write_manifest(fit2, "fit", params={"actor_id": "jane-doe"},
                   outputs={"params": "params.json", "fit_mesh": "fit_mesh.ply"})
    with pytest.raises(SystemExit, match="fit: not proven the virtual actor's"):
        kit.require_virtual_actor(cap, fit2)                           # a real actor's fit
