"""Metashape's camera export read as Doppel cameras: the test writes exports in Metashape 1.x and 2.x layouts from
known cameras and projects points through Metashape's documented camera model (written here again, from the
manual, not imported) and through the Doppel cameras read (and cv2.projectPoints): they agree to 1e-6 px."""

import logging
import math

import cv2
import numpy as np
import pytest

from capture.calibration_io import CalibrationError, read_calibration
from capture.metashape_xml import MAX_REFIT_PX, MetashapeError, read_metashape_xml
from capture.npcam import PinholeNP, as_np

W, H = 1600, 1200
CALIB = {"f": 1410.5, "cx": 12.25, "cy": -7.5, "b1": 1.75,
         "k1": -0.081, "k2": 0.062, "k3": -0.011, "p1": 6e-4, "p2": -3.5e-4}
# chunk -> world: rotation about a tilted axis, a translation and the scale a scale bar gave
AXIS = np.array([0.3, -0.8, 0.5]) / np.linalg.norm([0.3, -0.8, 0.5])
R0 = cv2.Rodrigues(AXIS * 0.7)[0]
T0 = np.array([0.4, -1.2, 2.5])
S0 = 3.7


def rig(n=4, origin=(0.0, 0.0, 0.0)):
    """n cameras in a ring around ``origin`` + (0, 1, 0), looking at it: (world -> camera R, centre) each."""
    out = []
    o = np.asarray(origin)
    for i in range(n):
        a = 2 * math.pi * i / n
        c = PinholeNP.look_at(f"cam{i:02d}", o + [2.5 * math.sin(a), 1.2 + 0.2 * i, 2.5 * math.cos(a)],
                              o + [0, 1, 0], np.eye(3), W, H)
        out.append((c.R, c.center))
    return out


def _calibration_xml(calib):
    tags = "".join(f"<{k}>{v!r}</{k}>" for k, v in calib.items())
    return (f'<calibration type="frame" class="adjusted"><resolution width="{W}" height="{H}"/>{tags}'
            "</calibration>")


def chunk_transform(cam_R, centre):
    """Metashape's camera-to-chunk 4x4 (rigid, chunk units) of a camera given in the world."""
    R_cw = cam_R.T
    M = np.eye(4)
    M[:3, :3] = R0.T @ R_cw
    M[:3, 3] = R0.T @ (centre - T0) / S0
    return M


def write_export(path, cams, calib=CALIB, layout="2.x", sensor_type="frame", world=True, unaligned=()):
    """A Metashape cameras export of ``cams`` ((R, centre) pairs), labelled as photos in a rig's folders."""
    tf = (f"<transform><rotation>{' '.join(map(repr, R0.ravel()))}</rotation>"
          f"<translation>{' '.join(map(repr, T0))}</translation><scale>{S0!r}</scale></transform>") if world else ""
    cams_xml = "".join(
        f'<camera id="{i}" sensor_id="0" component_id="0" label="D:\\rig\\cam{i:02d}\\cam{i:02d}_0001.JPG">'
        f"<transform>{' '.join(map(repr, chunk_transform(R, c).ravel()))}</transform></camera>"
        for i, (R, c) in enumerate(cams))
    cams_xml += "".join(f'<camera id="{100 + j}" sensor_id="0" label="{lab}"/>' for j, lab in enumerate(unaligned))
    components = f'<components next_id="1" active_id="0"><component id="0">{tf}</component></components>'
    body = (f'<sensors><sensor id="0" label="rig body (50mm)" type="{sensor_type}">'
            f'<resolution width="{W}" height="{H}"/>{_calibration_xml(calib)}</sensor></sensors>'
            + (components if layout == "2.x" else "")
            + f'<cameras><group id="0" label="rig" type="folder">{cams_xml}</group></cameras>'
            + (tf if layout == "1.x" else ""))
    version = "2.0.0" if layout == "2.x" else "1.5.0"
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<document version="{version}">'
                    f'<chunk label="Chunk 1" enabled="true">{body}</chunk></document>\n')
    return path


def metashape_project(X, cam_R, centre, calib):
    """The manual's projection of world points X (N, 3): world -> chunk -> camera -> pixels."""
    M = chunk_transform(cam_R, centre)
    Xc = (X - T0) @ R0 / S0                               # world -> chunk: R0^T (X - T0) / s
    P = (Xc - M[:3, 3]) @ M[:3, :3]                       # chunk -> camera: Rc^T (Xc - tc)
    x, y = P[:, 0] / P[:, 2], P[:, 1] / P[:, 2]
    g = {k: calib.get(k, 0.0) for k in ("k1", "k2", "k3", "k4", "p1", "p2", "p3", "p4", "b1", "b2")}
    r2 = x * x + y * y
    radial = 1 + g["k1"] * r2 + g["k2"] * r2 ** 2 + g["k3"] * r2 ** 3 + g["k4"] * r2 ** 4
    tang = 1 + g["p3"] * r2 + g["p4"] * r2 ** 2
    xd = x * radial + (g["p1"] * (r2 + 2 * x * x) + 2 * g["p2"] * x * y) * tang
    yd = y * radial + (g["p2"] * (r2 + 2 * y * y) + 2 * g["p1"] * x * y) * tang
    u = W * 0.5 + calib["cx"] + xd * calib["f"] + xd * g["b1"] + yd * g["b2"]
    v = H * 0.5 + calib["cy"] + yd * calib["f"]
    return np.stack([u, v], -1)


def points_in_view(rng, cam_R, centre, n=300):
    """World points in front of a camera, spread over most of its image (2 to 4 m away)."""
    d = np.stack([rng.uniform(-0.5, 0.5, n), rng.uniform(-0.38, 0.38, n), np.ones(n)], -1)
    depth = rng.uniform(2.0, 4.0, n)[:, None]
    return centre + (d * depth) @ cam_R            # camera -> world: R^T p


@pytest.mark.parametrize("layout", ["2.x", "1.x"])
def test_cameras_project_as_metashape_does(tmp_path, layout):
    rng = np.random.default_rng(3)
    cams = rig()
    read = read_metashape_xml(write_export(tmp_path / "cameras.xml", cams, layout=layout))
    assert [c.name for c in read.cameras] == [f"cam{i:02d}_0001" for i in range(len(cams))]
    assert read.unaligned == [] and read.refit_px == {}
    for (R, centre), cam in zip(cams, read.cameras, strict=True):
        X = points_in_view(rng, R, centre)
        want = metashape_project(X, R, centre, CALIB)
        got = cam.project(cam.K.new_tensor(X))[0].numpy()
        assert np.abs(got - want).max() < 1e-6
        c = as_np(cam)
        cv_uv = cv2.projectPoints(X, c.rvec, c.t, c.K, c.dist)[0].reshape(-1, 2)   # the library's projection
        assert np.abs(cv_uv - want).max() < 1e-6
        np.testing.assert_allclose(c.center, centre, atol=1e-9)                      # metres, as placed


def test_tangential_terms_are_not_taken_by_name(tmp_path):
    """Metashape's P1 is OpenCV's p2: read by name, the corners move by pixels (the converters' trap)."""
    cams = rig(1)
    cam = read_metashape_xml(write_export(tmp_path / "cameras.xml", cams)).cameras[0]
    np.testing.assert_allclose(as_np(cam).dist, [CALIB["k1"], CALIB["k2"], CALIB["p2"], CALIB["p1"], CALIB["k3"]])
    X = points_in_view(np.random.default_rng(0), *cams[0])
    by_name = dict(CALIB, p1=CALIB["p2"], p2=CALIB["p1"])
    assert np.abs(metashape_project(X, *cams[0], by_name) - metashape_project(X, *cams[0], CALIB)).max() > 1.0


@pytest.mark.parametrize("extra", [{"k4": 0.004, "p3": 0.02}, {"b2": -0.45}])
def test_terms_without_an_opencv_one_are_refitted_and_said(tmp_path, caplog, extra):
    calib = dict(CALIB, **extra)
    cams = rig(2)
    with caplog.at_level(logging.WARNING):
        read = read_metashape_xml(write_export(tmp_path / "cameras.xml", cams, calib=calib))
    worst = read.refit_px["rig body (50mm)"]
    assert 0 < worst < MAX_REFIT_PX
    assert "refitted" in caplog.text
    rng = np.random.default_rng(1)
    for (R, centre), cam in zip(cams, read.cameras, strict=True):
        X = points_in_view(rng, R, centre)
        err = np.abs(cam.project(cam.K.new_tensor(X))[0].numpy() - metashape_project(X, R, centre, calib))
        assert np.sqrt((err ** 2).sum(1)).max() <= worst * 1.05 + 1e-6


def test_distortion_the_five_terms_cannot_follow_is_refused(tmp_path):
    with pytest.raises(MetashapeError, match="k4"):
        read_metashape_xml(write_export(tmp_path / "cameras.xml", rig(1), calib=dict(CALIB, k4=2.0)))


def test_unaligned_cameras_are_left_out_and_said(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        read = read_metashape_xml(write_export(tmp_path / "c.xml", rig(3), unaligned=["cam07_0001.JPG"]))
    assert len(read.cameras) == 3 and read.unaligned == ["cam07_0001.JPG"]
    assert "not aligned" in caplog.text


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"world": False}, "never scaled"),
    ({"sensor_type": "fisheye"}, "fisheye"),
])
def test_refusals(tmp_path, kwargs, message):
    with pytest.raises(MetashapeError, match=message):
        read_metashape_xml(write_export(tmp_path / "cameras.xml", rig(2), **kwargs))


def test_georeferenced_chunk_is_refused(tmp_path):
    path = write_export(tmp_path / "cameras.xml", rig(2, origin=(-2499366.4, -4256836.5, 4029217.9)))  # geocentric
    with pytest.raises(MetashapeError, match="georeferenced"):
        read_metashape_xml(path)


def test_two_chunks_are_refused(tmp_path):
    path = write_export(tmp_path / "cameras.xml", rig(2))
    text = path.read_text()
    chunk = text[text.index("<chunk"):text.index("</document>")]
    path.write_text(text.replace("</document>", chunk.replace("Chunk 1", "Chunk 2") + "</document>"))
    with pytest.raises(MetashapeError, match=r"2 chunks \['Chunk 1', 'Chunk 2'\]"):
        read_metashape_xml(path)


def test_read_calibration_takes_it_and_opencv_xml_still_reads(tmp_path):
    from capture.calibration_io import write_opencv_yaml

    cams = read_calibration(write_export(tmp_path / "cameras.xml", rig(2)))
    assert [c.name for c in cams] == ["cam00_0001", "cam01_0001"]
    opencv = write_opencv_yaml(tmp_path / "opencv.xml", [as_np(c) for c in cams])   # FileStorage XML, not Metashape
    assert [c.name for c in read_calibration(opencv)] == ["cam00_0001", "cam01_0001"]
    bad = write_export(tmp_path / "flat.xml", rig(2), world=False)
    with pytest.raises(CalibrationError, match="never scaled"):
        read_calibration(bad)


def export_of(cams, path, label_of):
    """A Metashape export of Doppel cameras (PinholeNP, no skew), a sensor each (a rig calibrated per camera),
    chunk-to-world the identity scaled by 1: what Metashape writes for a rig aligned in metres."""
    sensors, cameras = [], []
    for i, c in enumerate(cams):
        (fx, _, cx), (_, fy, cy), _ = c.K
        k1, k2, p1, p2, k3 = c.dist
        calib = {"f": fy, "b1": fx - fy, "cx": cx - c.width / 2, "cy": cy - c.height / 2,
                 "k1": k1, "k2": k2, "k3": k3, "p1": p2, "p2": p1}
        tags = "".join(f"<{k}>{float(v)!r}</{k}>" for k, v in calib.items())
        sensors.append(f'<sensor id="{i}" label="body {i}" type="frame"><calibration class="adjusted">'
                       f'<resolution width="{c.width}" height="{c.height}"/>{tags}</calibration></sensor>')
        M = np.eye(4)
        M[:3, :3], M[:3, 3] = c.R.T, c.center
        cameras.append(f'<camera id="{i}" sensor_id="{i}" label="{label_of(c.name)}">'
                       f"<transform>{' '.join(repr(float(v)) for v in M.ravel())}</transform></camera>")
    path.write_text('<document version="1.4.0"><chunk label="rig">'
                    f"<sensors>{''.join(sensors)}</sensors><cameras>{''.join(cameras)}</cameras>"
                    "<transform><rotation>1 0 0 0 1 0 0 0 1</rotation><translation>0 0 0</translation>"
                    "<scale>1</scale></transform></chunk></document>")
    return path


def test_a_session_from_a_rig_aligned_in_metashape(tmp_path, capsys):
    """The rig's photos and Metashape's export, whose cameras are named after the photos it aligned: the session
    names each camera after its folder, with the calibration Metashape solved."""
    from capture.calibration_io import read_doppel_json
    from capture.session import load_session
    from tests.capture.test_session_assembly import _dump
    from tests.cli_runner import run_cli

    dump, _cal, cams = _dump(tmp_path, frames=(1, 2))
    xml = export_of(cams, tmp_path / "cameras.xml", lambda name: f"{name.upper()}_0001.png")
    code, out, err = run_cli(capsys, "capture", "session", dump, "--calibration", xml, "--out", tmp_path / "s")
    assert code == 0, out + err
    assert "3 calibrated camera(s) named after the folder holding their photo: CAM00_0001 -> CAM00" in out
    s = load_session(tmp_path / "s")
    assert s.camera_names == ["CAM00", "CAM01", "CAM02"] and list(s.frames) == ["0001", "0002"]
    got = read_doppel_json(tmp_path / "s" / "calibration.json")
    for a, b in zip(got, cams, strict=True):
        a = as_np(a)
        for attr in ("K", "R", "t", "dist"):
            np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), atol=1e-9, err_msg=attr)
    (dump / "CAM01" / "CAM01_0001.png").rename(dump / "CAM01" / "CAM01_0003.png")   # its calibration photo gone
    code, out, err = run_cli(capsys, "capture", "session", dump, "--calibration", xml, "--out", tmp_path / "t")
    assert code == 1 and "['CAM01_0001'] have no folder, nor a photo of that name" in err


def test_a_camera_mounted_in_portrait_is_turned_to_its_photo_as_shown(tmp_path):
    """<orientation>6</orientation> (EXIF: turn a quarter clockwise to show): the sensor is calibrated as stored
    (landscape); Doppel reads the photo as shown (portrait), so the camera is turned with it."""
    from capture.camera_orientation import as_shown

    cams = rig(2)
    path = write_export(tmp_path / "cameras.xml", cams)
    text = path.read_text().replace('label="D:\\rig\\cam01\\cam01_0001.JPG"><transform>',
                                    'label="D:\\rig\\cam01\\cam01_0001.JPG"><orientation>6</orientation><transform>')
    assert text != path.read_text()
    path.write_text(text)
    landscape, portrait = read_metashape_xml(path).cameras
    assert (landscape.width, landscape.height) == (W, H) and (portrait.width, portrait.height) == (H, W)
    stored = read_metashape_xml(write_export(tmp_path / "plain.xml", cams)).cameras[1]
    want = as_shown(as_np(stored), 6)
    for attr in ("K", "R", "t", "dist"):
        np.testing.assert_allclose(getattr(as_np(portrait), attr), getattr(want, attr), atol=1e-12)
    path.write_text(text.replace("<orientation>6</orientation>", "<orientation>5</orientation>"))
    with pytest.raises(MetashapeError, match="mirror image"):
        read_metashape_xml(path)


def test_a_photoscan_export_has_its_principal_point_in_pixels(tmp_path):
    """PhotoScan wrote fx, fy and cx, cy in pixels (not f, b1 and offsets from the image centre): the same camera."""
    cams = rig(2)
    new = read_metashape_xml(write_export(tmp_path / "new.xml", cams)).cameras
    old = {k: v for k, v in CALIB.items() if k not in ("f", "b1", "cx", "cy")}
    old.update(fx=CALIB["f"] + CALIB["b1"], fy=CALIB["f"], cx=W / 2 + CALIB["cx"], cy=H / 2 + CALIB["cy"])
    got = read_metashape_xml(write_export(tmp_path / "old.xml", cams, calib=old, layout="1.x")).cameras
    for a, b in zip(new, got, strict=True):
        for attr in ("K", "R", "t", "dist"):
            np.testing.assert_allclose(getattr(as_np(a), attr), getattr(as_np(b), attr), atol=1e-9)
