"""ChArUco rig calibration on exact synthetic board renders from known cameras."""

import numpy as np
import pytest

from capture.charuco import BoardSpec, CalibrationFailed, calibrate_rig_from_folder, detect_charuco
from capture.npcam import as_np
from doppel.synthetic_capture import board_calibration_rig, render_board_view, write_board_rig_images

DETECT_BIAS_PX = 0.05      # mean detection offset allowed on an exact render (checks the pixel convention)
FOCAL_TOL = 0.005          # relative focal error (the 8-camera benchmark measures < 0.1 %)
CENTRE_TOL_M = 0.004       # camera-centre error
RMS_TOL_PX = 0.5


def test_board_spec_parse():
    s = BoardSpec.parse("charuco:squares_x=7,squares_y=5,square=0.08,marker=0.06,dict=DICT_5X5_100")
    assert (s.squares_x, s.squares_y, s.square, s.marker, s.dict) == (7, 5, 0.08, 0.06, "DICT_5X5_100")
    assert s.corners3d.shape == (24, 3)
    for bad, msg in [("checker:7", "expected 'charuco"), ("charuco:foo=1", "unknown key 'foo'"),
                     ("charuco:marker=0.1", "smaller than square"), ("charuco:dict=DICT_NOPE", "dictionary")]:
        with pytest.raises(ValueError, match=msg):
            BoardSpec.parse(bad)


def test_detection_is_unbiased_on_exact_render():
    rig = board_calibration_rig(n_cameras=2, n_poses=3, width=640, height=480, distortion=False, seed=3)
    cam = rig.cameras[0]
    errs = []
    for T in rig.board_poses.values():
        det = detect_charuco(render_board_view(rig.spec, cam, T, supersample=2), rig.spec)
        if det is None:
            continue
        X = rig.spec.corners3d[det.ids] @ T[:3, :3].T + T[:3, 3]
        errs.append(det.uv - cam.project(X))
    e = np.concatenate(errs)
    assert len(e) > 30
    # median: a steeply foreshortened view has a few corners off by ~1 px (the calibration flags such views)
    assert np.all(np.abs(np.median(e, 0)) < DETECT_BIAS_PX), np.median(e, 0)
    assert np.percentile(np.linalg.norm(e, axis=1), 75) < 0.3


def test_calibrate_small_rig(tmp_path):
    rig = board_calibration_rig(n_cameras=3, n_poses=7, width=640, height=480, seed=1)
    write_board_rig_images(rig, tmp_path / "imgs", supersample=2, noise_std=1.0)
    res = calibrate_rig_from_folder(tmp_path / "imgs", rig.spec)
    T_wb = rig.board_poses[res.reference[1]]
    for est, true in zip(map(as_np, res.cameras), rig.cameras, strict=True):
        assert est.name == true.name
        assert abs(est.K[0, 0] / true.K[0, 0] - 1) < FOCAL_TOL
        c_true = (np.linalg.inv(T_wb) @ np.append(true.center, 1))[:3]
        assert np.linalg.norm(est.center - c_true) < CENTRE_TOL_M
        assert res.rms[est.name] < RMS_TOL_PX
        np.testing.assert_allclose(est.R @ est.R.T, np.eye(3), atol=1e-9)
    # the photos are read and searched on every core by default: one thread or three give the same calibration
    for n in (1, 3):
        again = calibrate_rig_from_folder(tmp_path / "imgs", rig.spec, num_threads=n)
        assert (again.rms, again.views_used, again.missing_views) == (res.rms, res.views_used, res.missing_views)
        for a, b in zip(map(as_np, again.cameras), map(as_np, res.cameras), strict=True):
            assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("K", "R", "t", "dist"))


def test_calibration_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        calibrate_rig_from_folder(tmp_path / "missing", BoardSpec())
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no camera folders"):
        calibrate_rig_from_folder(tmp_path / "empty", BoardSpec())
    # a camera that sees nothing but grey
    import cv2

    d = tmp_path / "grey" / "cam00"
    d.mkdir(parents=True)
    for k in range(3):
        cv2.imwrite(str(d / f"{k:03d}.png"), np.full((120, 160), 128, np.uint8))
    with pytest.raises(CalibrationFailed, match="cam00.*detected in only 0"):
        calibrate_rig_from_folder(tmp_path / "grey", BoardSpec())
    (d / "002.png").write_bytes(b"\x89PNG garbage")
    (d / "001.png").write_bytes(b"")
    # every photo it cannot read named in one line (before: the first, and the run stopped there)
    with pytest.raises(ValueError, match="2 of 3 photos cannot be read: .*001.png: image file is empty; "
                                         ".*002.png: image could not be decoded"):
        calibrate_rig_from_folder(tmp_path / "grey", BoardSpec())
    # a camera's photos of two sizes: the first of another size named (the photos are read side by side, the
    # answer is the one reading them in order gives)
    m = tmp_path / "mixed" / "cam00"
    m.mkdir(parents=True)
    for k in range(6):
        cv2.imwrite(str(m / f"{k:03d}.png"), np.full((120, 160) if k not in (3, 5) else (100, 160), 128, np.uint8))
    with pytest.raises(ValueError, match=r"003.png: image is 160x100 but camera 'cam00'.s other images are 160x120"):
        calibrate_rig_from_folder(tmp_path / "mixed", BoardSpec(), num_threads=3)
