"""`doppel capture session`: a rig's photos, as its cameras named them, assembled into a session."""

from __future__ import annotations

import numpy as np
import pytest

from capture.calibration_io import write_doppel_json
from capture.session import SessionError, load_session
from tests.capture.conftest import portrait_cameras
from tests.cli_runner import run_cli


def _dump(tmp_path, frames=(1, 2, 3), size=64):
    """DUMP/CAMxx/CAMxx_00NN.png (upper-case folders: the calibration's names are lower-case) + calibration."""
    import cv2

    cams = portrait_cameras(3, size=size)
    cal = tmp_path / "rig.json"
    write_doppel_json(cal, cams)
    for i, c in enumerate(cams):
        d = tmp_path / "dump" / c.name.upper()
        d.mkdir(parents=True)
        for f in frames:
            cv2.imwrite(str(d / f"{c.name.upper()}_{f:04d}.png"), np.full((size, size, 3), 10 * f + i, np.uint8))
    return tmp_path / "dump", cal, cams


def test_photos_named_after_their_cameras_become_a_session(tmp_path, capsys):
    dump, cal, cams = _dump(tmp_path)
    (dump / "CAM01" / "CAM01_0003.png").unlink()                     # a camera missed a moment
    (dump / "witness").mkdir()                                      # a folder of no calibrated camera
    (dump / "witness" / "w_0001.png").write_bytes((dump / "CAM00" / "CAM00_0001.png").read_bytes())
    code, out, err = run_cli(capsys, "capture", "session", dump, "--calibration", cal, "--out", tmp_path / "s")
    assert code == 0, out + err
    assert "moment '0003' left out: no photo from cam01" in out and "ignored: witness" in out
    assert "2 moment(s) x 3 cameras, photos matched by file name without the camera's name" in out
    s = load_session(tmp_path / "s")
    assert list(s.frames) == ["0001", "0002"] and s.camera_names == [c.name for c in cams]
    import cv2

    img = cv2.imread(str(s.frames["0002"]["cam02"]))
    assert int(img[0, 0, 0]) == 22                                   # moment 2 of camera 2, under its own name
    assert (tmp_path / "s" / "images" / "0002" / "cam02.png").stat().st_ino == \
        (dump / "CAM02" / "CAM02_0002.png").stat().st_ino            # hard-linked, not re-encoded
    # a session a gated stage can take: its manifest says what it is (without one the consent gate refused it,
    # "holds a Doppel stage's output" with no manifest saying whose likeness)
    from doppel.likeness import inspect_input

    evidence = inspect_input(tmp_path / "s", required=True, ws=None, key=None)
    assert not evidence.problem and evidence.claimed is None
    import json

    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["stage"] == "capture session"


def test_one_moment_and_refusals(tmp_path, capsys):
    dump, cal, cams = _dump(tmp_path, frames=(7,))
    code, out, err = run_cli(capsys, "capture", "session", dump, "--calibration", cal, "--out", tmp_path / "one")
    assert code == 0 and sorted(p.name for p in (tmp_path / "one" / "images").iterdir()) == \
        ["cam00.png", "cam01.png", "cam02.png"], out + err
    import shutil

    shutil.rmtree(dump / "CAM02")
    code, out, err = run_cli(capsys, "capture", "session", dump, "--calibration", cal, "--out", tmp_path / "two")
    assert code == 1 and "calibrated camera(s) ['cam02'] have no folder" in err and not (tmp_path / "two").exists()
    from capture.session_assembly import plan_session

    shutil.copytree(dump / "CAM01", dump / "CAM02")                 # every camera back, but each at its own moment
    (dump / "CAM01" / "CAM01_0007.png").rename(dump / "CAM01" / "CAM01_0008.png")
    (dump / "CAM02" / "CAM01_0007.png").rename(dump / "CAM02" / "CAM02_0009.png")
    with pytest.raises(SessionError, match="no moment has a photo from every calibrated camera"):
        plan_session(dump, cal)


def test_a_calibration_in_another_format_is_written_as_doppel_json(tmp_path, capsys):
    from capture.calibration_io import read_doppel_json, write_opencv_yaml

    dump, cal, cams = _dump(tmp_path, frames=(1,))
    yml = tmp_path / "rig.yml"
    write_opencv_yaml(yml, cams)
    code, out, err = run_cli(capsys, "capture", "session", dump, "--calibration", yml, "--out", tmp_path / "s")
    assert code == 0, out + err
    got = read_doppel_json(tmp_path / "s" / "calibration.json")
    assert [c.name for c in got] == [c.name for c in cams]
    np.testing.assert_allclose(got[1].K, cams[1].K, atol=1e-9)
