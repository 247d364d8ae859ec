"""Session validation: every bad-input case is a clear error naming the file or camera."""

import json
import shutil

import cv2
import numpy as np
import pytest

from capture.calibration_io import CalibrationError
from capture.session import SessionError, check_session_folder, load_session, write_session
from tests.capture.conftest import portrait_cameras


@pytest.fixture()
def session(tmp_path):
    cams = portrait_cameras(3, size=64)
    imgs = {c.name: np.full((64, 64, 3), 100 + 20 * i, np.uint8) for i, c in enumerate(cams)}
    return write_session(tmp_path / "s", cams, imgs)


def test_load_ok(session):
    s = load_session(session)
    assert s.camera_names == ["cam00", "cam01", "cam02"]
    assert list(s.frames) == ["0"] and s.frames["0"]["cam01"].name == "cam01.png"


def test_multi_frame(tmp_path):
    cams = portrait_cameras(2, size=32)
    for f in ("f000", "f001"):
        write_session(tmp_path / "m", cams, {c.name: np.zeros((32, 32, 3), np.uint8) for c in cams}, frame=f)
    s = load_session(tmp_path / "m")
    assert list(s.frames) == ["f000", "f001"]


def test_camera_without_image(session):
    (session / "images" / "cam01.png").unlink()
    with pytest.raises(SessionError, match=r"camera\(s\) \['cam01'\] have no image"):
        load_session(session)


def test_a_take_whose_later_frame_a_camera_dropped(tmp_path):
    """A camera out of sync for a frame of a take: that view is left out of that frame, with a warning. Not the
    first frame (it sets the actor), and not a camera with no image in any frame (a name matching no file)."""
    cams = portrait_cameras(3, size=32)
    for f in ("f000", "f001", "f002"):
        write_session(tmp_path / "m", cams, {c.name: np.zeros((32, 32, 3), np.uint8) for c in cams}, frame=f)
    (tmp_path / "m" / "images" / "f001" / "cam01.png").unlink()
    s = load_session(tmp_path / "m")
    assert s.dropped == {"f001": ["cam01"]} and sorted(s.frames["f001"]) == ["cam00", "cam02"]
    assert len(s.frames["f002"]) == 3
    assert any("frame f001: camera(s) ['cam01'] have no image (a dropped frame)" in w for w in s.warnings)
    (tmp_path / "m" / "images" / "f000" / "cam02.png").unlink()
    with pytest.raises(SessionError, match=r"calibrated camera\(s\) \['cam02'\] have no image in the take's first "
                                           r"frame 'f000'"):
        load_session(tmp_path / "m")
    for f in ("f000", "f002"):
        (tmp_path / "m" / "images" / f / "cam01.png").unlink(missing_ok=True)
    with pytest.raises(SessionError, match=r"camera\(s\) \['cam01'\] have no image in any frame"):
        load_session(tmp_path / "m")


def test_a_take_in_a_folder_per_camera(tmp_path):
    """images/CAMERA/FRAME.* (a folder per camera, as many capture systems export a take) reads as
    images/FRAME/CAMERA.*; a dropped frame is one camera's missing file; frame names that differ between the
    cameras' folders are said."""
    cams = portrait_cameras(3, size=32)
    write_session(tmp_path / "m", cams, {}, frame=None)
    for c in cams:
        (tmp_path / "m" / "images" / c.name).mkdir(parents=True)
        for f in ("0001", "0002", "0003"):
            if (c.name, f) != ("cam02", "0002"):
                cv2.imwrite(str(tmp_path / "m" / "images" / c.name / f"{f}.png"), np.zeros((32, 32, 3), np.uint8))
    s = load_session(tmp_path / "m")
    assert list(s.frames) == ["0001", "0002", "0003"] and s.dropped == {"0002": ["cam02"]}
    assert s.frames["0003"]["cam01"] == tmp_path / "m" / "images" / "cam01" / "0003.png"
    for c in cams:
        for f in (tmp_path / "m" / "images" / c.name).iterdir():
            f.rename(f.with_name(f"{c.name}_{f.name}"))
    with pytest.raises(SessionError, match="no frame holds the images of two cameras"):
        load_session(tmp_path / "m")


def test_wrong_size(session):
    import cv2

    cv2.imwrite(str(session / "images" / "cam02.png"), np.zeros((50, 64, 3), np.uint8))
    with pytest.raises(SessionError, match=r"cam02.png: image is 64x50 but camera 'cam02' is calibrated for 64x64"):
        load_session(session)


def test_corrupt_and_truncated_jpeg(session):
    import cv2

    (session / "images" / "cam00.png").unlink()
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    (session / "images" / "cam00.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(SessionError, match=r"cam00.jpg: (JPEG is truncated|image could not be decoded)"):
        load_session(session)
    (session / "images" / "cam00.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(SessionError, match=r"cam00.jpg: image could not be decoded"):
        load_session(session)
    # two bad images: both named in one line (before: the first, and the check stopped there)
    bad = sorted((session / "images").glob("*.png"))[0]
    bad.write_bytes(b"")
    with pytest.raises(SessionError, match=rf"2 of \d+ images cannot be read whole: .*cam00.jpg: image could not be "
                                           rf"decoded.*; .*{bad.name}: image file is empty"):
        load_session(session)


def test_bad_calibration_values(session):
    p = session / "calibration.json"
    doc = json.loads(p.read_text())
    doc["cameras"][1]["R"] = [[1, 0, 0], [0, 1, 0], [0, 0.5, 1]]
    p.write_text(json.dumps(doc))
    with pytest.raises(CalibrationError, match=r"calibration.json.*camera 'cam01'.*R.*rotation"):
        load_session(session)
    doc["cameras"][1]["R"] = np.eye(3).tolist()
    doc["cameras"][2]["K"][1][1] = float("nan")
    p.write_text(json.dumps(doc).replace("NaN", "NaN"))
    with pytest.raises(CalibrationError, match=r"camera 'cam02'.*K.*non-finite"):
        load_session(session)


def test_empty_and_missing(tmp_path, session):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_session(tmp_path / "nope")
    shutil.rmtree(session / "images")
    (session / "images").mkdir()
    with pytest.raises(SessionError, match="empty"):
        load_session(session)
    (session / "calibration.json").unlink()
    with pytest.raises(SessionError, match="no calibration.json"):
        load_session(session)


def test_a_folder_holding_a_session_names_it(tmp_path, session):
    """`capture synth --out DIR` writes DIR/session: DIR given for the session says where it is."""
    with pytest.raises(SessionError, match=f"no calibration.json and no images/ folder; the session is {session} "):
        load_session(tmp_path)
    cams = portrait_cameras(1, size=16)
    write_session(tmp_path / "t", cams, {c.name: np.zeros((16, 16, 3), np.uint8) for c in cams})
    with pytest.raises(SessionError, match="sessions inside it: .*/s, .*/t$"):
        check_session_folder(tmp_path)
    assert check_session_folder(session) == session


def test_extra_image_is_a_warning(session):
    import cv2

    cv2.imwrite(str(session / "images" / "stray.png"), np.zeros((64, 64, 3), np.uint8))
    s = load_session(session)
    assert any("stray" in w for w in s.warnings)


def test_a_portrait_photo_is_checked_as_it_is_shown(tmp_path):
    """A camera turned to portrait writes landscape pixels and EXIF orientation 6. Calibration, ingest and fit read
    it upright (OpenCV applies the orientation), so the session's size check must too (before: refused, 'image is
    96x64 but camera calibrated for 64x96')."""
    from PIL import Image

    from capture.calibration_io import write_doppel_json
    from capture.npcam import PinholeNP as Camera
    from doppel.synthetic_capture import intrinsics

    root = tmp_path / "portrait"
    (root / "images").mkdir(parents=True)
    im = Image.fromarray(np.full((64, 96, 3), 90, np.uint8))            # stored 96 wide, 64 high
    exif = im.getexif()
    exif[0x0112] = 6                                                     # shown turned: 64 wide, 96 high
    im.save(root / "images" / "cam00.jpg", exif=exif.tobytes())
    cam = Camera.look_at("cam00", [0, 1.6, 1.1], [0, 1.6, 0], intrinsics(64, 96, 40.0), 64, 96)
    write_doppel_json(root / "calibration.json", [cam])
    assert load_session(root).frames["0"]["cam00"].name == "cam00.jpg"
    write_doppel_json(root / "calibration.json", [Camera.look_at("cam00", [0, 1.6, 1.1], [0, 1.6, 0],
                                                                 intrinsics(96, 64, 40.0), 96, 64)])
    with pytest.raises(SessionError, match="image is 64x96 but camera 'cam00' is calibrated for 96x64"):
        load_session(root)


def test_16_bit_tiff_photos_load_and_camera_raw_files_are_named(tmp_path):
    """Photogrammetry rigs develop their RAW files to 16-bit TIFF: a session of them loads (every stage reads
    them through OpenCV; the photos the texture bake and the neural double learn from keep their 16 bits); RAW
    files themselves are refused with what to do."""
    import cv2

    cams = portrait_cameras(2, size=64)
    root = write_session(tmp_path / "s", cams, {c.name: np.zeros((64, 64, 3), np.uint8) for c in cams})
    for c in cams:
        (root / "images" / f"{c.name}.png").unlink()
        cv2.imwrite(str(root / "images" / f"{c.name}.tif"), np.full((64, 64, 3), 40000, np.uint16))
    s = load_session(root)
    assert s.frames["0"]["cam01"].suffix == ".tif"
    from capture.images import read_image

    assert read_image(s.frames["0"]["cam01"]).dtype == np.uint8
    for c in cams:       # a gradient finer than 8 bits: the texture bake and training get all 16 (they got 256 levels)
        cv2.imwrite(str(root / "images" / f"{c.name}.tif"),
                    (np.linspace(0, 65535, 64 * 64).reshape(64, 64)[..., None] * np.ones(3)).astype(np.uint16))
    from doppel.neural_inputs import load_photo

    photo = load_photo(s.frames["0"]["cam01"], s.cameras[1])
    assert photo.dtype == np.float32 and len(np.unique(photo[..., 0])) == 64 * 64 and photo.max() == 1.0
    for c in cams:
        (root / "images" / f"{c.name}.tif").rename(root / "images" / f"{c.name}.CR3")
    with pytest.raises(SessionError, match="camera RAW files: develop them to 16-bit TIFF or JPEG first"):
        load_session(root)


def test_a_camera_calibrated_on_a_turned_photo_as_stored_is_refused_saying_so(tmp_path):
    """A COLMAP model of a rig with a camera in portrait: calibrated on the photo as stored (landscape), the photo
    shown turned (EXIF orientation 6): the size mismatch names the turn and the way out."""
    from PIL import Image

    from capture.calibration_io import write_doppel_json
    from capture.npcam import PinholeNP

    K = np.array([[60.0, 0, 32], [0, 60, 24], [0, 0, 1]])
    cam = PinholeNP.look_at("cam00", [0, 1, 2], [0, 1, 0], K, 64, 48)
    (tmp_path / "images").mkdir()
    write_doppel_json(tmp_path / "calibration.json", [cam, PinholeNP.look_at("cam01", [1, 1, 2], [0, 1, 0], K, 64,
                                                                              48)])
    im = Image.fromarray(np.zeros((48, 64, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "images" / "cam00.jpg", exif=exif)
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "images" / "cam01.jpg")
    with pytest.raises(SessionError, match=r"image is 48x64 but camera 'cam00' is calibrated for 64x48 \(the photo "
                                           r"is stored turned, EXIF orientation 6"):
        load_session(tmp_path)
