"""`doppel rig`: files written, errors as one red line."""

import json

import numpy as np
import pytest

from rigging import Rig
from tests.cli_runner import run_cli
from tests.reconstruction.synthetic_models import write_smplx_npz


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


@pytest.mark.parametrize("value", ["5", "1e6", "-3", "nan", "inf"])
def test_rig_phenotype_out_of_range_is_refused(tmp_path, capsys, value):
    """Issue 21: --phenotype height=5 (1e6, -3) was accepted although Anny's range is [0, 1]."""
    code, _, err = run_cli(capsys, "rig", "--out", str(tmp_path / "x"), "--phenotype", f"height={value}",
                           "--preview-size", "64")
    assert code == 1 and "--phenotype" in err and "height" in err and "Traceback" not in err
    assert "[0, 1]" in err or "finite" in err
    assert not (tmp_path / "x" / "rig.npz").exists()


@pytest.mark.parametrize("size", ["100000", "10", "0"])
def test_rig_preview_size_is_bounded(tmp_path, capsys, size):
    code, _, err = run_cli(capsys, "rig", "--out", str(tmp_path / "x"), "--preview-size", size)
    assert code == 1 and "--preview-size must be between 64 and 4096 pixels" in err
    assert not (tmp_path / "x").exists()


def test_empty_npz_model_file_is_one_red_line_not_aborted(tmp_path, capsys):
    """Issue 21: a 0-byte .npz as --model-file printed 'aborted' with exit 130 (np.load's EOFError, which click
    turns into Abort); now exit 1 naming the file."""
    empty = tmp_path / "SMPLX_NEUTRAL.npz"
    empty.write_bytes(b"")
    code, _, err = run_cli(capsys, "rig", "--model", "smplx", "--model-file", str(empty), "--out",
                           str(tmp_path / "x"), "--preview-size", "64")
    assert code == 1 and "SMPLX_NEUTRAL.npz" in err and "empty" in err and "aborted" not in err


def test_empty_rig_npz_is_a_rig_error(tmp_path, capsys):
    from rigging import RigError
    from rigging.rig import RIG_FILE

    out = tmp_path / "rig"
    code, _, err = run_cli(capsys, "rig", "--out", str(out), "--preview-size", "64")
    assert code == 0, err
    (out / RIG_FILE).write_bytes(b"")
    with pytest.raises(RigError, match="rig.npz: content does not match"):
        Rig.load(out)
    # with the manifest's hash matching the empty file, the archive itself is read: still a RigError naming it
    import hashlib

    m = json.loads((out / "manifest.json").read_text())
    m["outputs"]["rig"]["sha256"] = hashlib.sha256(b"").hexdigest()
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(RigError, match="rig.npz: rig archive is empty"):
        Rig.load(out)
