"""`doppel rig`: files written, errors as one red line."""

import json

import numpy as np
import pytest

from doppel.cli import main
from rigging import Rig
from tests.reconstruction.synthetic_models import write_smplx_npz


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_rig_anny_writes_rig_manifest_preview(tmp_path, capsys):
    out = tmp_path / "rig"
    code, stdout, err = run_cli(capsys, "rig", "--out", str(out), "--seed", "1", "--phenotype", "height=0.7",
                                "--preview-size", "96")
    assert code == 0, err
    assert "104 joints" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["shape"]["height"] == 0.7 and manifest["params"]["seed"] == 1
    assert set(manifest["outputs"]) == {"rig", "preview"}
    rig = Rig.load(out)
    assert rig.num_joints == 104 and len(rig.blendshape_names) == 52
    from PIL import Image

    img = np.asarray(Image.open(out / "preview.png"))
    assert img.shape == (96, 4 * 96, 3)
    assert (img.reshape(-1, 3).std(0) > 10).all(), "the preview shows something, not a flat background"


def test_rig_same_seed_same_rig(tmp_path, capsys):
    for name in ("a", "b"):
        assert run_cli(capsys, "rig", "--out", str(tmp_path / name), "--seed", "5", "--preview-size", "64")[0] == 0
    a, b = Rig.load(tmp_path / "a"), Rig.load(tmp_path / "b")
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.bind_matrices, b.bind_matrices)


def test_rig_bad_input_is_one_red_line(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(capsys, "rig", "--out", str(tmp_path / "x"), "--phenotype", "heigth=0.7")
    assert code == 1 and "unknown name(s) ['heigth']" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "rig", "--out", str(tmp_path / "x"), "--phenotype", "height")
    assert code == 1 and "KEY=VALUE" in err
    monkeypatch.delenv("DOPPEL_MODELS_DIR", raising=False)
    code, _, err = run_cli(capsys, "rig", "--out", str(tmp_path / "x"), "--model", "smplx")
    assert code == 1 and "DOPPEL_MODELS_DIR" in err and "smpl-x.is.tue.mpg.de" in err
    assert not (tmp_path / "x" / "rig.npz").exists()


def test_rig_smplx_from_model_file(tmp_path, capsys):
    path = write_smplx_npz(tmp_path / "models" / "SMPLX_NEUTRAL.npz")
    out = tmp_path / "rig"
    code, _, err = run_cli(capsys, "rig", "--model", "smplx", "--model-file", str(path), "--out", str(out),
                           "--preview-size", "64")
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["model_file"]["sha256"]
    rig = Rig.load(out)
    assert rig.num_joints == 55 and rig.corrective_joints is not None and rig.joint_names[0] == "pelvis"
