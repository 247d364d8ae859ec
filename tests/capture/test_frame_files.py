"""Frame files of folder plates: 16-bit and scene-linear EXR frames read as 8-bit display RGB, and written back
with what the swap did not change kept as the source had it (bytes, samples, channels, header)."""

import cv2
import numpy as np
import OpenEXR
import pytest

from capture.frame_files import display_to_linear, frame_size, linear_to_display, read_frame, write_frame


def _exr(path, h=48, w=64, seed=0, **extra_header):
    rng = np.random.default_rng(seed)
    header = {"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage, **extra_header}
    channels = {"RGB": (rng.random((h, w, 3)) * 1.6).astype(np.float16),          # highlights over 1.0 too
                "A": np.ones((h, w), np.float16), "Z": rng.random((h, w)).astype(np.float32)}
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))
    return path


def _channels_and_header(path):
    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {k: np.array(v.pixels) for k, v in f.channels().items()}, dict(f.header())


def test_the_display_transfer_function_round_trips_8_bit_values():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, -1)
    assert np.array_equal(linear_to_display(display_to_linear(levels)), levels)
    assert np.array_equal(linear_to_display(display_to_linear(levels).astype(np.float16)), levels)   # half too
    assert linear_to_display(np.array([[[-1.0, 0.5, 7.0]]]))[0, 0].tolist() == [0, 188, 255]


def test_an_exr_frame_left_alone_is_the_source_and_a_changed_one_keeps_everything_else(tmp_path):
    src = _exr(tmp_path / "plate.0001.exr", owner="plate dept")
    assert frame_size(src) == (64, 48)
    rgb = read_frame(src)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    write_frame(tmp_path / "same.exr", rgb, src)
    assert (tmp_path / "same.exr").read_bytes() == src.read_bytes()          # byte for byte
    face = rgb.copy()
    face[10:30, 20:40] = (210, 150, 120)                                       # the swap drew a face here
    write_frame(tmp_path / "swapped.exr", face, src)
    got, header = _channels_and_header(tmp_path / "swapped.exr")
    old, old_header = _channels_and_header(src)
    changed = np.zeros((48, 64), bool)
    changed[10:30, 20:40] = True
    for name in "RGBAZ":                       # every sample outside the face, and alpha and depth everywhere
        assert got[name].dtype == old[name].dtype
        keep = ~changed if name in "RGB" else np.ones_like(changed)
        assert np.array_equal(got[name][keep], old[name][keep]), name
    assert np.array_equal(read_frame(tmp_path / "swapped.exr"), face)        # the face reads back as drawn
    assert (header["owner"], header["compression"]) == ("plate dept", old_header["compression"])


def test_16_bit_frames_keep_their_samples_and_alpha_where_unchanged(tmp_path):
    rng = np.random.default_rng(1)
    bgra = rng.integers(0, 65536, (48, 64, 4), dtype=np.uint16)
    src = tmp_path / "f.0001.png"
    cv2.imwrite(str(src), bgra)
    rgb = read_frame(src)
    assert np.array_equal(rgb, np.round(bgra[..., 2::-1] / 257).astype(np.uint8))
    write_frame(tmp_path / "same.png", rgb, src)
    assert (tmp_path / "same.png").read_bytes() == src.read_bytes()
    rgb[5:15, 5:15] = 200
    write_frame(tmp_path / "out.png", rgb, src)
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (48, 64, 4)
    keep = np.ones((48, 64), bool)
    keep[5:15, 5:15] = False
    assert np.array_equal(out[keep], bgra[keep]) and np.array_equal(out[..., 3], bgra[..., 3])
    assert (out[5:15, 5:15, :3] == 200 * 257).all()


def test_a_jpeg_frame_passed_through_is_not_encoded_again(tmp_path):
    src = tmp_path / "f.0001.jpg"
    cv2.imwrite(str(src), np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    write_frame(tmp_path / "out.jpg", read_frame(src), src)
    assert (tmp_path / "out.jpg").read_bytes() == src.read_bytes()            # no generation loss


def test_exr_frames_a_plate_cannot_use_are_refused_in_one_line(tmp_path):
    over = tmp_path / "overscan.exr"
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
                       "dataWindow": (np.array([-8, -8], np.int32), np.array([71, 55], np.int32)),
                       "displayWindow": (np.array([0, 0], np.int32), np.array([63, 47], np.int32))},
                      {"RGB": np.zeros((64, 80, 3), np.float16)}) as f:
        f.write(str(over))
    with pytest.raises(ValueError, match="data window .* is not its display window"):
        frame_size(over)
    depth = tmp_path / "depth.exr"
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {"Z": np.zeros((48, 64), np.float32)}) as f:
        f.write(str(depth))
    with pytest.raises(ValueError, match="no R, G and B channels"):
        frame_size(depth)
    (tmp_path / "junk.exr").write_bytes(b"v/1\x01" + b"\x00" * 64)
    with pytest.raises(ValueError, match="EXR could not be read"):
        frame_size(tmp_path / "junk.exr")


def test_exif_orientations_are_applied_as_pil_applies_them():
    from PIL import Image, ImageOps

    from capture.frame_files import oriented

    stored = np.random.default_rng(3).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for o in range(1, 9):
        im = Image.fromarray(stored)
        im.getexif()[0x0112] = o
        im.info["exif"] = im.getexif().tobytes()
        ref = np.asarray(ImageOps.exif_transpose(im))
        assert np.array_equal(oriented(stored, o), ref), o


def test_a_phone_photo_is_read_upright_and_written_back_with_its_colour_profile(tmp_path):
    from PIL import Image, ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    upright = np.random.default_rng(4).integers(0, 256, (64, 48, 3), dtype=np.uint8)     # portrait, 48 x 64
    stored = np.ascontiguousarray(np.rot90(upright, 1))                                  # the sensor's landscape
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6                                                                     # "turn 90 degrees to show"
    src = tmp_path / "IMG_0001.jpg"
    im.save(src, exif=exif, icc_profile=icc, quality=100, subsampling=0)
    assert frame_size(src) == (48, 64)
    rgb = read_frame(src)
    assert rgb.shape == (64, 48, 3) and np.abs(rgb.astype(int) - upright).mean() < 3      # upright, as shown
    write_frame(tmp_path / "same.jpg", rgb, src)
    assert (tmp_path / "same.jpg").read_bytes() == src.read_bytes()
    rgb[10:20, 10:20] = 128
    write_frame(tmp_path / "out.jpg", rgb, src)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.size == (48, 64) and out.info.get("icc_profile") == icc
        assert out.getexif().get(0x0112, 1) == 1                                          # shown as stored: upright
