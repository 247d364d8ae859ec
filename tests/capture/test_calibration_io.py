"""Calibration readers/writers: round trips through Doppel JSON, COLMAP text/binary (pycolmap) and
OpenCV YAML/JSON, and clear errors naming the file and field."""

import json

import numpy as np
import pytest
import torch

from capture.calibration_io import (
    CalibrationError,
    calibration_rms,
    cameras_to_dict,
    read_calibration,
    read_colmap,
    read_doppel_json,
    read_opencv,
    write_colmap_text,
    write_doppel_json,
    write_opencv_yaml,
)
from capture.npcam import PinholeNP as Camera
from capture.npcam import as_np

TOL = 1e-9


def cams(dist=True):
    out = []
    for i in range(3):
        K = np.array([[900.0 + 10 * i, 0, 320.5], [0, 905.0, 240.25], [0, 0, 1]])
        c = Camera.look_at(f"cam{i:02d}", [np.sin(i), 1.5, 3 * np.cos(i)], [0, 1, 0], K, 640, 480)
        if dist:
            c.dist = np.array([-0.1 * i, 0.02, 1e-4, -2e-4, 0.0])
        out.append(c)
    return out


def assert_same(a, b, tol=TOL):
    assert [c.name for c in a] == [c.name for c in b]
    for x, y in zip(map(as_np, a), map(as_np, b), strict=True):
        for attr in ("K", "R", "t", "dist"):
            np.testing.assert_allclose(getattr(x, attr), getattr(y, attr), atol=tol, err_msg=f"{x.name}.{attr}")
        assert (x.width, x.height) == (y.width, y.height)


def test_doppel_json_roundtrip(tmp_path):
    p = write_doppel_json(tmp_path / "calibration.json", cams(), rms={"cam00": 0.2})
    back = read_doppel_json(p)
    assert_same(cams(), back)
    assert calibration_rms(p) == {"cam00": pytest.approx(0.2)}
    assert back[0].dtype == torch.float64  # capture.Camera, float64 so nothing is lost on a round trip
    assert read_calibration(p)[1].name == "cam01"


@pytest.mark.parametrize("binary", [False, True])
def test_colmap_roundtrip(tmp_path, binary):
    import pycolmap

    folder = write_colmap_text(tmp_path / "sparse", cams())
    if binary:
        rec = pycolmap.Reconstruction(str(folder))
        (tmp_path / "bin").mkdir()
        rec.write_binary(str(tmp_path / "bin"))
        folder = tmp_path / "bin"
        assert (folder / "cameras.bin").is_file()
    back = read_colmap(folder)
    assert_same(cams(), back, tol=1e-7)
    # projection agrees with pycolmap's own camera model (same pixel convention)
    rec = pycolmap.Reconstruction(str(folder))
    X = np.array([[0.1, 1.2, 0.3]])
    for img in rec.images.values():
        c = as_np(next(c for c in back if c.name == img.name))
        ours = c.project(X)[0]
        Xc = img.cam_from_world() * X[0] if callable(img.cam_from_world) else img.cam_from_world * X[0]
        theirs = rec.cameras[img.camera_id].img_from_cam(np.asarray(Xc)[None])[0]
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_opencv_yaml_and_json(tmp_path):
    p = write_opencv_yaml(tmp_path / "rig.yaml", cams())
    assert_same(cams(), read_opencv(p), tol=1e-9)
    assert_same(cams(), read_calibration(p), tol=1e-9)
    # OpenCV-style JSON with rvec instead of R and camera_matrix / tvec names
    c = cams()[1]
    doc = {"camera_matrix": c.K.tolist(), "distortion_coefficients": c.dist.tolist(), "rvec": c.rvec.tolist(),
           "tvec": c.t.tolist(), "image_width": 640, "image_height": 480}
    (tmp_path / "cam01.json").write_text(json.dumps(doc))
    back = read_calibration(tmp_path / "cam01.json")
    assert back[0].name == "cam01"
    np.testing.assert_allclose(as_np(back[0]).R, c.R, atol=1e-9)


def _doc():
    return json.loads(json.dumps(cameras_to_dict(cams())))


@pytest.mark.parametrize("mutate, expect", [
    (lambda d: d["cameras"][1]["K"][0].__setitem__(0, float("nan")), r"camera 'cam01' \(cameras\[1\]\)\.K.*non-finite"),
    (lambda d: d["cameras"][0]["R"][0].__setitem__(0, 1.5), r"camera 'cam00'.*R.*rotation"),
    (lambda d: d["cameras"][2].__setitem__("t", [0, 1]), r"camera 'cam02'.*t.*3 values"),
    (lambda d: d["cameras"][2].__setitem__("name", "cam00"), r"unique.*cam00"),
    (lambda d: d.__setitem__("units", "mm"), r"units.*'m'"),
    (lambda d: d["cameras"][0].pop("width"), r"camera 'cam00'.*width.*Field required"),
    (lambda d: d.__setitem__("cameras", []), r"cameras"),
])
def test_invalid_calibration_names_file_and_field(tmp_path, mutate, expect):
    d = _doc()
    mutate(d)
    p = tmp_path / "calibration.json"
    p.write_text(json.dumps(d))
    with pytest.raises(CalibrationError, match=expect) as e:
        read_doppel_json(p)
    assert str(p) in str(e.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_doppel_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CalibrationError, match="bad.json: not valid JSON"):
        read_doppel_json(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="not a COLMAP sparse model"):
        read_colmap(tmp_path)


def test_writer_refuses_invalid_camera_and_keeps_old_file(tmp_path):
    p = write_doppel_json(tmp_path / "calibration.json", cams())
    before = p.read_bytes()
    bad = cams()
    bad[0].K[0, 0] = np.nan
    with pytest.raises(CalibrationError):
        write_doppel_json(p, bad)
    assert p.read_bytes() == before


@pytest.mark.parametrize("content, message", [
    (b"[1, 2]", "calibration file must be a JSON object, got a JSON list"),
    (b'"cameras"', "calibration file must be a JSON object, got a JSON str"),
    (bytes(range(256)) * 4, "calibration file is not UTF-8 text"),
    (b"", "not valid JSON"),
])
def test_calibration_that_is_not_an_object_names_the_file(tmp_path, content, message):
    """Issue 21: a calibration.json that is a list or binary was an internal error (exit 2) or a bare codec
    message; now a CalibrationError naming the file, through every reader."""
    from capture.calibration_io import read_calibration, read_opencv

    p = tmp_path / "calibration.json"
    p.write_bytes(content)
    for reader in (read_doppel_json, read_calibration, read_opencv):
        with pytest.raises(CalibrationError, match=message) as e:
            reader(p)
        assert str(e.value).startswith(str(p))


def test_opencv_json_cameras_must_be_objects(tmp_path):
    from capture.calibration_io import read_opencv

    p = tmp_path / "rig.json"
    p.write_text('{"cameras": [1, 2]}')
    with pytest.raises(CalibrationError, match="'cameras' must be a list of objects"):
        read_opencv(p)
