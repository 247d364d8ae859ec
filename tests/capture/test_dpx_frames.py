"""DPX plate frames: read as ffmpeg decodes them, written back under the source's header with only the changed
pixels new; layouts the swap cannot treat as RGB refused in one line."""

import shutil
import subprocess

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from capture.dpx_frames import dpx_spec, dpx_transfer, read_dpx, write_dpx
from capture.frame_files import frame_size, read_frame, write_frame


def _scan(path, bits=10, **header):
    """A 96x64 DPX of random codes written by OpenImageIO with a scanner's header fields."""
    import OpenImageIO as oiio

    rng = np.random.default_rng(0)
    samples = (rng.integers(0, 2 ** bits, (64, 96, 3)) * 2 ** (16 - bits)).astype(np.uint16)
    spec = oiio.ImageSpec(96, 64, 3, oiio.UINT16)
    spec.attribute("oiio:BitsPerSample", bits)
    for k, v in header.items():
        spec.attribute(k, v)
    write_dpx(path, samples, spec)


def test_a_10_bit_dpx_decodes_as_ffmpeg_decodes_it(tmp_path):
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ff, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64", "-frames:v", "1", "-pix_fmt",
                    "gbrp10le", str(tmp_path / "a.dpx")], check=True)
    samples, spec = read_dpx(tmp_path / "a.dpx")
    raw = subprocess.run([ff, "-v", "error", "-i", str(tmp_path / "a.dpx"), "-f", "rawvideo", "-pix_fmt", "rgb48le",
                          "-"], capture_output=True, check=True).stdout
    assert np.array_equal(samples, np.frombuffer(raw, np.uint16).reshape(64, 96, 3))
    assert spec.get_int_attribute("oiio:BitsPerSample") == 10 and frame_size(tmp_path / "a.dpx") == (96, 64)


def test_a_dpx_frame_is_written_back_under_its_header_with_only_the_changed_pixels_new(tmp_path):
    header = {"dpx:TimeCode": "01:02:03:04", "dpx:FrameRate": 24.0, "dpx:InputDevice": "ARRISCAN",
              "dpx:Transfer": "Printing density", "DocumentName": "sh010"}
    src = tmp_path / "sh.1001.dpx"
    _scan(src, **header)
    samples = read_dpx(src)[0]
    rgb = read_frame(src)
    write_frame(tmp_path / "same.dpx", rgb, src)
    assert (tmp_path / "same.dpx").read_bytes() == src.read_bytes()          # unchanged: the file itself
    face = rgb.copy()
    face[10:30, 20:50] = (200, 120, 90)
    (tmp_path / "out").mkdir()
    write_frame(tmp_path / "out" / src.name, face, src)
    got, spec = read_dpx(tmp_path / "out" / src.name)
    inside = np.zeros((64, 96), bool)
    inside[10:30, 20:50] = True
    changed = np.any(got != samples, axis=-1)
    assert np.array_equal(got[~inside], samples[~inside]) and changed[inside].mean() > 0.95
    assert np.array_equal(read_frame(tmp_path / "out" / src.name), face)    # the face reads back as drawn
    assert spec.get_int_attribute("oiio:BitsPerSample") == 10 and dpx_transfer(spec) == "Printing density"
    for k, v in header.items():
        assert spec.getattribute(k) == v, k


def test_dpx_layouts_that_are_not_rgb_are_refused_in_one_line(tmp_path):
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ff, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64", "-frames:v", "1", "-pix_fmt",
                    "gray16le", str(tmp_path / "luma.dpx")], check=True)
    with pytest.raises(ValueError, match=r"luma.dpx: a DPX of .* expected RGB or RGBA"):
        dpx_spec(tmp_path / "luma.dpx")
    shutil.copyfile(tmp_path / "luma.dpx", tmp_path / "cut.dpx")
    (tmp_path / "cut.dpx").write_bytes((tmp_path / "luma.dpx").read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cut.dpx: DPX could not be read"):
        read_frame(tmp_path / "cut.dpx")
    with pytest.raises(FileNotFoundError):
        frame_size(tmp_path / "missing.dpx")


def _exr_oiio(path, **attributes):
    """A 64x64 EXR written by OpenImageIO with ``attributes`` (a pair: a rational, e.g. FramesPerSecond)."""
    import OpenImageIO as oiio

    path.parent.mkdir(parents=True, exist_ok=True)
    spec = oiio.ImageSpec(64, 64, 3, oiio.HALF)
    for k, v in attributes.items():
        if isinstance(v, tuple):
            spec.attribute(k, oiio.TypeDesc("rational"), v)
        else:
            spec.attribute(k, v)
    out = oiio.ImageOutput.create(str(path))
    out.open(str(path), spec)
    out.write_image(np.full((64, 64, 3), 0.18, np.float32))
    out.close()


def test_a_frame_sequence_takes_its_frame_rate_from_its_headers(tmp_path):
    """DPX and EXR sequences carry their frame rate (the swap's tracks.npz and report, the detector-bias smoothing
    in seconds): read from the first frame, NTSC rates exact; absent, zero or other formats: None (unknown). An EXR's
    rate is OpenEXR's rational ``framesPerSecond`` (read as a Fraction) or OpenImageIO's ``FramesPerSecond``."""
    from fractions import Fraction

    import OpenEXR

    from capture.plate_io import probe_plate

    for name, rate in (("ntsc", 23.976), ("fifty", 50.0), ("zero", 0.0)):
        (tmp_path / name).mkdir()
        for i in range(2):
            _scan(tmp_path / name / f"sh.{1001 + i}.dpx", **{"dpx:FrameRate": rate})
    (tmp_path / "none").mkdir()
    _scan(tmp_path / "none" / "sh.1001.dpx")
    assert probe_plate(tmp_path / "ntsc").fps == 24000 / 1001
    assert probe_plate(tmp_path / "fifty").fps == 50.0
    assert probe_plate(tmp_path / "zero").fps is None and probe_plate(tmp_path / "none").fps is None
    for name, fps in (("exr25", (25, 1)), ("exr_ntsc", (30000, 1001))):
        (tmp_path / name).mkdir()
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, "framesPerSecond": fps}
        with OpenEXR.File(header, {"RGB": np.full((64, 64, 3), 0.18, np.float16)}) as f:
            f.write(str(tmp_path / name / "sh.1001.exr"))
    assert probe_plate(tmp_path / "exr25").fps == 25.0 and probe_plate(tmp_path / "exr_ntsc").fps == 30000 / 1001
    _exr_oiio(tmp_path / "oiio" / "sh.1001.exr", FramesPerSecond=(24000, 1001))
    (tmp_path / "rational").mkdir()
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
              "framesPerSecond": Fraction(48, 1)}                  # OpenEXR's rational, as cameras and Nuke write it
    with OpenEXR.File(header, {"RGB": np.full((64, 64, 3), 0.18, np.float16)}) as f:
        f.write(str(tmp_path / "rational" / "sh.1001.exr"))
    assert probe_plate(tmp_path / "rational").fps == 48.0 and probe_plate(tmp_path / "oiio").fps == 24000 / 1001
    (tmp_path / "png").mkdir()
    cv2.imwrite(str(tmp_path / "png" / "sh.1001.png"), np.zeros((64, 64, 3), np.uint8))
    assert probe_plate(tmp_path / "png").fps is None


def test_a_plates_shutter_angle_is_read_from_its_dpx_or_exr_headers(tmp_path):
    """`plate_shutter_angle` (`doppel swap --shutter auto`): a DPX film header's shutter angle; an EXR's expTime
    times its frame rate times 360 (OpenEXR's names or OpenImageIO's); one frame or a folder's first; anything
    that declares none (no field, a PNG, a video, an EXR exposure without a rate) is refused in one line."""
    import cv2

    from capture.plate_io import plate_shutter_angle

    (tmp_path / "dpx").mkdir()
    for i in range(2):
        _scan(tmp_path / "dpx" / f"sh.{1001 + i}.dpx", **{"dpx:ShutterAngle": 172.8 + i})
    assert plate_shutter_angle(tmp_path / "dpx") == (172.8, "its DPX header's shutter angle")   # the first frame
    _scan(tmp_path / "plain.dpx")
    _exr_oiio(tmp_path / "exr" / "sh.1001.exr", FramesPerSecond=(24, 1), ExposureTime=1 / 96)
    angle, source = plate_shutter_angle(tmp_path / "exr" / "sh.1001.exr")
    assert angle == 90.0 and source == "its EXR header's expTime 0.0104167 s at 24 frames/s"
    _exr_oiio(tmp_path / "ntsc.exr", FramesPerSecond=(24000, 1001), ExposureTime=1 / 48)
    assert plate_shutter_angle(tmp_path / "ntsc.exr")[0] == pytest.approx(180 * 1000 / 1001, abs=1e-4)
    _exr_oiio(tmp_path / "no_rate.exr", ExposureTime=1 / 48)
    cv2.imwrite(str(tmp_path / "f.0001.png"), np.zeros((64, 64, 3), np.uint8))
    (tmp_path / "clip.mov").write_bytes(b"")
    for bad in ("plain.dpx", "no_rate.exr", "f.0001.png", "clip.mov"):
        with pytest.raises(ValueError, match=f"--shutter auto: {bad} declares no shutter angle"):
            plate_shutter_angle(tmp_path / bad)
    with pytest.raises(FileNotFoundError):
        plate_shutter_angle(tmp_path / "missing")
    (tmp_path / "garbage.dpx").write_bytes(b"SDPX" + bytes(60))                 # unreadable, not "no angle"
    with pytest.raises(ValueError, match="garbage.dpx: DPX could not be read"):
        plate_shutter_angle(tmp_path / "garbage.dpx")
