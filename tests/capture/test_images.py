"""Capture image reading: the declared size is checked before decoding; bad files name themselves."""

import struct
import time
import zlib

import numpy as np
import pytest

from capture.images import MAX_IMAGE_PIXELS, check_image_size, map_photos, read_image


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels but carries almost no data (a decompression bomb's header)."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b""))


def test_huge_declared_png_is_refused_before_decoding(tmp_path):
    p = tmp_path / "cam00.png"
    p.write_bytes(_png_header_only(30000, 30000))
    t = time.process_time()         # this process's CPU time: another test process on the core does not count
    with pytest.raises(ValueError, match=r"cam00.png: image declares 30000x30000 pixels \(900 MP\), over the limit"):
        read_image(p)
    assert time.process_time() - t < 1.0, "refused from the header, not after decoding 2.7 GB"


def test_image_at_the_limit_passes_the_header_check(tmp_path):
    side = int(MAX_IMAGE_PIXELS ** 0.5)
    p = tmp_path / "ok.png"
    p.write_bytes(_png_header_only(side, side))
    assert check_image_size(p) == (side, side)


def test_small_png_round_trip_and_bad_files(tmp_path):
    import cv2

    img = (np.arange(12 * 10 * 3) % 256).astype(np.uint8).reshape(10, 12, 3)
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), img)
    assert np.array_equal(read_image(p), img)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png: image file is empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "junk.png").write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match="junk.png: image could not be decoded"):
        read_image(tmp_path / "junk.png")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")


def test_session_with_a_huge_declared_image_is_a_session_error(tmp_path):
    import cv2

    from capture.calibration_io import write_doppel_json
    from capture.npcam import PinholeNP
    from capture.session import SessionError, load_session

    cams = [PinholeNP.look_at(f"cam{i}", np.array([i * 0.1, 0.0, 2.0]), np.zeros(3),
                              np.array([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]), 64, 64).to_camera()
            for i in range(2)]
    (tmp_path / "images").mkdir()
    write_doppel_json(tmp_path / "calibration.json", cams)
    cv2.imwrite(str(tmp_path / "images" / "cam0.png"), np.zeros((64, 64, 3), np.uint8))
    (tmp_path / "images" / "cam1.png").write_bytes(_png_header_only(30000, 30000))
    with pytest.raises(SessionError, match="cam1.png: image declares 30000x30000"):
        load_session(tmp_path)


def test_photos_mapped_on_threads_come_in_order_and_an_early_stop_drops_the_rest():
    """`map_photos` gives the results in the items' order whatever the threads finish first, and a caller that
    stops at the first result does not wait for the photos not begun (40 of 0.05 s each on two threads: 1 s)."""
    def work(k: int) -> int:
        time.sleep(0.05 * (k % 3 == 0))
        return k * k

    assert list(map_photos(work, range(12), num_threads=3)) == [k * k for k in range(12)]
    t = time.perf_counter()
    for _ in map_photos(lambda k: time.sleep(0.05), range(40), num_threads=2):
        break
    assert time.perf_counter() - t < 0.5


@pytest.mark.parametrize("bad", [-1, 0, 1.5, True])
def test_a_thread_count_below_one_is_refused_not_run_on_one_thread(bad, tmp_path):
    """-1 and 0 mean "all cores" to some libraries (COLMAP reads -1 so): here they are refused at once, by the
    photo pool, the board calibration and SfM, instead of running on one thread (the pool) or every core (COLMAP)."""
    from capture.charuco import BoardSpec, calibrate_rig_from_folder
    from capture.sfm import run_sfm

    with pytest.raises(ValueError, match="expected None"):
        list(map_photos(lambda k: k, range(3), num_threads=bad))
    with pytest.raises(ValueError, match="num_threads"):
        calibrate_rig_from_folder(tmp_path / "no-such-rig", BoardSpec(), num_threads=bad)
    with pytest.raises(ValueError, match="num_threads"):
        run_sfm(tmp_path / "no-such-photos", tmp_path / "w", num_threads=bad)
    with pytest.raises(ValueError, match="mapper_threads"):
        run_sfm(tmp_path / "no-such-photos", tmp_path / "w", mapper_threads=bad)
