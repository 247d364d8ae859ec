"""`ingest` end to end on views of a printed portrait with known geometry: triangulated face landmarks
lie on the photo's plane; a blurred view and a camera out of place are warnings in the report."""

import json

import numpy as np
import pytest

from capture.ingest import IngestConfig, ingest
from capture.session import write_session
from tests.capture.conftest import photo_pose, portrait_cameras, render_portrait

PLANE_TOL_M = 0.01        # triangulated face landmarks within 1 cm of the photo plane (median)
REPROJ_MEDIAN_PX = 2.0    # MediaPipe's landmark jitter across views, px at 384 px


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    import cv2
    import roma
    import torch

    tmp = tmp_path_factory.mktemp("ingest")
    cams = portrait_cameras(5)
    imgs = render_portrait(cams)
    imgs["cam02"] = cv2.GaussianBlur(imgs["cam02"], (0, 0), 4.0)
    # cam04 moved after calibration: its calibrated rotation is 6 degrees off what took the picture
    bad = cams[4]
    dR = roma.rotvec_to_rotmat(torch.tensor([0.0, np.radians(6.0), 0.0], dtype=torch.float64)).numpy()
    bad.R = dR @ bad.R
    bad.t = dR @ bad.t
    write_session(tmp / "session", cams, imgs)
    res = ingest(tmp / "session", tmp / "out", IngestConfig(hands=False))
    return res


def test_outputs_written(ingested):
    out = ingested.out
    for name in ("landmarks.npz", "triangulated.json", "qc.json", "contact_sheet.png", "manifest.json",
                 "masks/cam00.png"):
        assert (out / name).is_file(), name
    with np.load(out / "landmarks.npz") as d:
        assert d["face"].shape == (1, 5, 478, 2) and list(d["cameras"]) == [f"cam{i:02d}" for i in range(5)]
    tri = json.loads((out / "triangulated.json").read_text())
    assert tri["units"] == "m" and len(tri["frames"]["0"]["face"]) == 478


def test_face_landmarks_on_the_photo_plane(ingested):
    T = photo_pose()
    n, p0 = -T[:3, 2], T[:3, 3]
    rows = [r for r in ingested.triangulated["frames"]["0"]["face"] if r["ok"]]
    assert len(rows) > 400
    X = np.array([r["X"] for r in rows])
    dist = np.abs((X - p0) @ n)
    assert np.median(dist) < PLANE_TOL_M
    err = np.array([r["error_px"] for r in rows])
    assert np.median(err) < REPROJ_MEDIAN_PX
    # the moved camera is not used by the robust triangulation for most landmarks
    used4 = np.mean(["cam04" in r["views"] for r in rows])
    assert used4 < 0.2


def test_warnings(ingested):
    w = "\n".join(ingested.warnings)
    assert "cam02: blurred" in w
    assert "cam04: camera out of place?" in w
    assert "cam00" not in w and "cam01" not in w


def test_report_and_cache(ingested, tmp_path):
    from doppel.capture_report import write_ingest_report

    p = write_ingest_report(ingested)
    html = p.read_text()
    assert "contact_sheet.png" in html and "camera out of place" in html and "cameras seeing the face" in html
    # a second run hits the landmark cache for every image
    res2 = ingest(ingested.session.root, ingested.out, IngestConfig(hands=False))
    import json as _json

    assert _json.loads((ingested.out / "manifest.json").read_text())["landmark_cache_hits"] == 5
    assert res2.triangulated["frames"]["0"]["summary"] == ingested.triangulated["frames"]["0"]["summary"]


def test_bad_session_writes_nothing(tmp_path):
    cams = portrait_cameras(2, size=32)
    write_session(tmp_path / "s", cams, {"cam00": np.zeros((32, 32, 3), np.uint8)})
    with pytest.raises(Exception, match="cam01"):
        ingest(tmp_path / "s", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_views_masks_are_written_not_kept(tmp_path):
    """Each view's person mask (a float a pixel: 67 MB for a 17 MP camera) was kept for the whole ingest, so its
    peak grew by that much per camera (48 cameras at 4096 px: 4.2 GB, against 2.2 GB for 16); they are written
    to OUT/masks and let go. Six views with 16 MB masks: the memory held at once stays under three of them."""
    import tracemalloc

    from capture.ingest import _detect_views
    from capture.landmarks import ImageLandmarks
    from capture.session import load_session

    cams = portrait_cameras(6, size=64)
    write_session(tmp_path / "s", cams, {c.name: np.full((64, 64, 3), 90, np.uint8) for c in cams})
    (tmp_path / "out" / "masks").mkdir(parents=True)
    side = 2048                                          # a 16 MB float mask per view

    class Detector:
        def detect_file(self, path):
            nan, mask = np.full((1, 2), np.nan), np.full((side, side), 0.7, np.float32)
            return ImageLandmarks(64, 64, nan.repeat(478, 0), np.zeros(478), nan.repeat(33, 0), np.zeros(33),
                                  np.full((2, 21, 2), np.nan), np.zeros((2, 21)), mask)

    tracemalloc.start()
    try:
        lms, qcs, _ = _detect_views(load_session(tmp_path / "s"), Detector(), tmp_path / "out", None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(qcs) == 6 and all(q.mask_fraction == 1.0 for q in qcs)
    assert len(list((tmp_path / "out" / "masks").iterdir())) == 6
    assert peak < 3 * side * side * 4, f"peak {peak / 1e6:.0f} MB"


def test_a_killed_ingest_loses_no_detection(ingested, tmp_path, monkeypatch, capsys):
    """`doppel capture ingest` stopped at the third image (a kill, a full disk): the detections of the first two
    are in `.OUT.ingest.checkpoint/cache` and the next ingest into OUT takes them from there; a finished ingest
    leaves its cache in OUT/cache (where an ingest of an edited session takes it from) and no checkpoint."""
    from capture.landmarks import LandmarkDetector
    from doppel.cli import main

    def run(*args):
        with pytest.raises(SystemExit) as e:
            main(["capture", "ingest", str(ingested.session.root), "--out", str(tmp_path / "ing"), "--no-hands",
                  *args])
        return e.value.code

    real, calls = LandmarkDetector._detect, []

    def stop_at_third(self, rgb):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(self, rgb)

    with monkeypatch.context() as m:
        m.setattr(LandmarkDetector, "_detect", stop_at_third)
        assert run() == 1
    ck = tmp_path / ".ing.ingest.checkpoint"
    assert len(list((ck / "cache").glob("*.npz"))) == 2 and not (tmp_path / "ing").exists()
    said = " ".join(capsys.readouterr().err.split())      # it said "nothing was written" and nothing of the cache
    assert "disk full" in said and "nothing was written" not in said, said
    assert "the landmarks of 2 image(s) found so far are kept in" in said and "the same ingest into ing goes on" \
        in said, said
    assert run() == 0
    assert "landmarks of 2 image(s) taken from the cache" in capsys.readouterr().out
    assert not ck.exists() and len(list((tmp_path / "ing" / "cache").glob("*.npz"))) == 5
    assert json.loads((tmp_path / "ing" / "manifest.json").read_text())["landmark_cache_hits"] == 2
    assert run("--force") == 0                          # an ingest again into OUT: every image from OUT/cache
    assert "landmarks of 5 image(s) taken from the cache" in capsys.readouterr().out
