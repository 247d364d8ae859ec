"""Plates in and out: videos keep size, frame rate, frame count and audio; folders keep names; writes are atomic."""

import re
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from capture.plate_io import PlateWriter, iter_plate_frames, probe_plate


def _frames(n=6, h=96, w=128):
    return [np.full((h, w, 3), 20 * i, np.uint8) for i in range(n)]


def _video(path, frames, fps=25, audio=False):
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    h, w = frames[0].shape[:2]
    cmd = [ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps),
           "-i", "-"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-shortest", "-c:a", "aac"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "10", str(path)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)


def test_video_round_trip_keeps_rate_count_size_and_audio(tmp_path):
    src = tmp_path / "plate.mp4"
    _video(src, _frames(), fps=24, audio=True)
    seen = []
    info = probe_plate(src, lambda done, total: seen.append((done, total)))     # every frame decoded, reported
    assert seen and seen[-1] == (6, 6)
    assert (info.kind, info.width, info.height, info.frame_count, info.fps) == ("video", 128, 96, 6, 24.0)
    assert info.audio_codec == "aac"
    out = tmp_path / "out.mp4"
    with PlateWriter(out, info) as w:
        for _, f in iter_plate_frames(info):
            w.write(255 - f)
    back = probe_plate(out)
    assert (back.width, back.height, back.frame_count, back.fps, back.audio_codec) == (128, 96, 6, 24.0, "aac")
    got = [f for _, f in iter_plate_frames(back, 2, 4)]
    assert len(got) == 2 and abs(float(got[0].mean()) - (255 - 40)) < 3
    # the encoder's settings (x264 writes them into the stream): the default CRF and preset, or the ones given
    assert b"crf=8.0" in out.read_bytes() and b" ref=1 " in out.read_bytes()           # veryfast: one reference
    with PlateWriter(tmp_path / "slow.mp4", info, crf=12, preset="medium") as w:
        for _, f in iter_plate_frames(info):
            w.write(f)
    slow = (tmp_path / "slow.mp4").read_bytes()
    assert b"crf=12.0" in slow and b" ref=3 " in slow


def test_folder_plate_keeps_file_names_and_an_error_leaves_nothing(tmp_path):
    import cv2

    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(_frames(3)):
        cv2.imwrite(str(d / f"shot.{i + 1001}.png"), f)
    info = probe_plate(d)
    assert info.kind == "frames"
    assert [p.name for p in info.frames] == ["shot.1001.png", "shot.1002.png", "shot.1003.png"]
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), PlateWriter(out, info) as w:
        w.write(_frames(1)[0])
        raise RuntimeError("crash mid-shot")
    assert not out.exists() and not list(tmp_path.glob(".out.*"))
    with PlateWriter(out, info) as w:
        for _, f in iter_plate_frames(info):
            w.write(f)
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in info.frames]
    # a frame of another size (a proxy rendered into the sequence) is refused by the probe, from the headers
    cv2.imwrite(str(d / "shot.1004.png"), np.zeros((48 * 2, 64 * 3, 3), np.uint8))
    with pytest.raises(ValueError, match=r"shot\.1004\.png: frame is 192x96 px, the plate's first frame"):
        probe_plate(d)
    # and a frame whose pixels do not match what the probe saw (replaced after it) stops the read, naming it
    (d / "shot.1004.png").unlink()
    info = probe_plate(d)
    cv2.imwrite(str(d / "shot.1002.png"), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=r"shot\.1002\.png: frame decodes to 64x64 px, the plate is 128x96"):
        list(iter_plate_frames(info))
    # a frame cut short (an interrupted copy or render) is refused, naming it, not passed on half grey
    cv2.imwrite(str(d / "shot.1002.png"), _frames(3)[1])
    data = (d / "shot.1003.png").read_bytes()
    (d / "shot.1003.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"shot\.1003\.png: image could not be decoded"):
        list(iter_plate_frames(probe_plate(d)))


def test_bad_plates_are_refused_with_one_line(tmp_path):
    import cv2

    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((40, 200, 3), np.uint8))
    with pytest.raises(ValueError, match="smaller than 64 px"):
        probe_plate(small)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(ValueError, match="could not be read"):
        probe_plate(bad)
    with pytest.raises(FileNotFoundError):
        probe_plate(tmp_path / "missing.mov")
    vfr = tmp_path / "vfr.mp4"
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    frames = _frames(24)
    # timestamps that jump: frames 0-11 at 24 fps, then a 2 s gap, kept as variable frame rate
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "128x96", "-r", "24",
                    "-i", "-", "-vf", "setpts='N/24/TB+gte(N,12)*2/TB'", "-fps_mode", "vfr", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(vfr)], input=b"".join(f.tobytes() for f in frames), check=True)
    with pytest.raises(ValueError, match="variable frame rate"):
        probe_plate(vfr)



def _damaged(src, dst, frac=0.5, n=4000):
    """dst: src with n random bytes written over the middle of its coded video (the mdat box), as a broken copy
    or a bad sector would leave it; the file's header and index stay intact."""
    data = bytearray(src.read_bytes())
    at = data.index(b"mdat") + 8
    end = len(data) if data.rfind(b"moov") < at else data.rfind(b"moov") - 4
    s = at + int((end - at) * frac)
    data[s:s + n] = np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))


def test_a_video_with_damaged_data_is_refused_and_healthy_encodings_pass(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(24)]   # noise: a large mdat
    src = tmp_path / "plate.mp4"
    _video(src, frames)
    assert probe_plate(src).frame_count == 24
    # damaged in the middle: ffmpeg still decodes every frame (the broken blocks concealed) and exits 0, so the
    # frame count alone cannot tell; the decoder's errors must refuse it
    _damaged(src, tmp_path / "damaged.mp4")
    gen = imageio_ffmpeg.read_frames(str(tmp_path / "damaged.mp4"))
    next(gen)
    assert sum(1 for _ in gen) == 24                       # what the plate reader would have passed on
    with pytest.raises(ValueError, match=r"damaged\.mp4: video is damaged: decoding it reported \d+ error") as e:
        probe_plate(tmp_path / "damaged.mp4")
    assert "\n" not in str(e.value) and "re-encode" in str(e.value)
    # healthy files in other containers and codecs, and an edit-listed cut (its coded frames before the cut point
    # are decoded but not shown): no false alarm, frames counted as shown
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    for name, codec in (("prores.mov", "prores_ks"), ("mjpeg.avi", "mjpeg"), ("ffv1.mkv", "ffv1")):
        subprocess.run([ff, "-y", "-loglevel", "error", "-i", str(src), "-c:v", codec, str(tmp_path / name)],
                       check=True)
        assert probe_plate(tmp_path / name).frame_count == 24, name
    subprocess.run([ff, "-y", "-loglevel", "error", "-ss", "0.3", "-i", str(src), "-c", "copy",
                    str(tmp_path / "cut.mp4")], check=True)
    cut = probe_plate(tmp_path / "cut.mp4")
    assert cut.frame_count == len(list(iter_plate_frames(cut))) < 24


class _FakePending:
    """Records what a PlateWriter does with a pending disclosure: frames marked (+1), files finished."""

    def __init__(self, name, log):
        self.name, self.log = name, log
        log.append(("begin", name))

    def mark(self, rgb):
        self.log.append(("mark", self.name))
        return rgb + 1

    def finish(self, path):
        self.log.append(("finish", self.name, path.is_file()))


def test_writer_marks_frames_as_it_encodes_them_and_finishes_each_file(tmp_path):
    """A video is one disclosure (begun at its first frame under OUT's name, every frame marked, finished once);
    a folder one per frame under the frame's own name; finish sees the written file before it is published."""
    import cv2

    src = tmp_path / "plate.mp4"
    _video(src, _frames(4))
    log = []
    with PlateWriter(tmp_path / "out.mp4", probe_plate(src), disclosure=lambda n: _FakePending(n, log)) as w:
        for _, f in iter_plate_frames(probe_plate(src)):
            w.write(f)
        assert not (tmp_path / "out.mp4").exists()
    assert log == [("begin", "out.mp4")] + [("mark", "out.mp4")] * 4 + [("finish", "out.mp4", True)]
    got = [f for _, f in iter_plate_frames(probe_plate(tmp_path / "out.mp4"))]
    assert abs(float(got[3].mean()) - 61) < 2                        # marked (+1) before encoding
    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(_frames(2)):
        cv2.imwrite(str(d / f"shot.{i + 1001}.png"), f)
    log.clear()
    with PlateWriter(tmp_path / "out", probe_plate(d), disclosure=lambda n: _FakePending(n, log)) as w:
        for _, f in iter_plate_frames(probe_plate(d)):
            w.write(f)
    assert log == [("begin", "shot.1001.png"), ("mark", "shot.1001.png"), ("finish", "shot.1001.png", True),
                   ("begin", "shot.1002.png"), ("mark", "shot.1002.png"), ("finish", "shot.1002.png", True)]
    assert int(cv2.imread(str(tmp_path / "out" / "shot.1002.png"))[0, 0, 0]) == 21


def test_a_failed_finish_leaves_nothing(tmp_path):
    src = tmp_path / "plate.mp4"
    _video(src, _frames(2))

    class Refuses(_FakePending):
        def finish(self, path):
            raise RuntimeError("signing failed")

    with pytest.raises(RuntimeError, match="signing failed"), \
            PlateWriter(tmp_path / "out.mp4", probe_plate(src), disclosure=lambda n: Refuses(n, [])) as w:
        for _, f in iter_plate_frames(probe_plate(src)):
            w.write(f)
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".out.*"))


def test_a_written_plate_gets_the_mode_a_plain_file_would(tmp_path):
    """The writer's temporary sibling is made private (mkstemp 0600, mkdtemp 0700); the published video, image
    and frame folder get what open() / mkdir() give under the umask, so others on a shared volume can read them."""
    import os

    import cv2

    from core.storage import default_mode

    src = tmp_path / "plate.mp4"
    _video(src, _frames(2))
    img = tmp_path / "still.png"
    cv2.imwrite(str(img), _frames(1)[0])
    d = tmp_path / "frames"
    d.mkdir()
    cv2.imwrite(str(d / "f.0001.png"), _frames(1)[0])
    old = os.umask(0o022)
    try:
        for plate, out in ((src, tmp_path / "o.mp4"), (img, tmp_path / "o.png"), (d, tmp_path / "o_frames")):
            info = probe_plate(plate)
            with PlateWriter(out, info) as w:
                for _, f in iter_plate_frames(info):
                    w.write(f)
            assert out.stat().st_mode & 0o777 == default_mode(directory=out.is_dir()) == (0o755 if out.is_dir()
                                                                                           else 0o644), out
    finally:
        os.umask(old)


def _colour_frames(n=6, h=96, w=128):
    """Saturated colours (a grey image reads the same through any YUV matrix)."""
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    return [np.stack([255 * x, 255 * y, 255 * (1 - x) * (0.5 + 0.1 * i)], -1).clip(0, 255).astype(np.uint8)
            for i in range(n)]


def _as_player(path, matrix, rng="tv"):
    """The frames as a player shows them: decoded with the given matrix and range, whatever the file says."""
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    res = subprocess.run([ff, "-v", "error", "-i", str(path), "-vf", f"scale=in_color_matrix={matrix}:in_range={rng}",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True)
    return np.frombuffer(res.stdout, np.uint8).astype(float)


@pytest.mark.parametrize("tags, pix_fmt, matrix", [
    ("colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv", "yuv420p", "bt709"),
    ("colorspace=bt2020nc:color_primaries=bt2020:color_trc=smpte2084:range=tv", "yuv420p10le", "bt2020"),
    ("colorspace=bt709:range=pc", "yuv420p", "bt709"),
])
def test_a_written_plate_keeps_the_plates_colour_encoding_bit_depth_and_timecode(tmp_path, tags, pix_fmt, matrix):
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    src, out = tmp_path / "plate.mp4", tmp_path / "out.mp4"
    frames = _colour_frames()
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "128x96", "-r", "24",
                    "-i", "-", "-vf", f"setparams={tags}", "-c:v", "libx264", "-pix_fmt", pix_fmt, "-crf", "4",
                    "-timecode", "10:00:00:00", str(src)], input=b"".join(f.tobytes() for f in frames), check=True)
    info = probe_plate(src)
    with PlateWriter(out, info) as w:                 # frames passed through, as a swap does where there is no face
        for _, rgb in iter_plate_frames(info):
            w.write(rgb)
    got = probe_plate(out).header
    assert got.colour == info.header.colour and info.header.colour
    assert (got.timecode, got.bit_depth) == ("10:00:00:00", info.header.bit_depth)
    rng = info.header.colour["range"]
    # a player decodes both files by the plate's matrix: the output looks like the plate, 1.3-1.7 grey levels off
    # on average (chroma re-subsampled); the old writer's untagged BT.601 encode was 5.4-9.1 levels off
    err = np.abs(_as_player(out, matrix, rng) - _as_player(src, matrix, rng)).mean()
    assert err < 2.5, err


def test_a_plate_with_non_square_pixels_is_refused(tmp_path):
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    src = tmp_path / "hdv.mp4"
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "128x96", "-r", "24",
                    "-i", "-", "-vf", "setsar=4/3", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)],
                   input=b"".join(f.tobytes() for f in _colour_frames()), check=True)
    with pytest.raises(ValueError, match=r"non-square pixels \(pixel aspect 4:3\).*setsar=1"):
        probe_plate(src)


def test_a_phone_clip_rotated_by_its_display_matrix_is_read_and_written_upright(tmp_path, caplog):
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    frames = _frames(4)
    for f in frames:
        f[:16, :16] = 255                              # a mark in the stored frame's top-left corner
    stored, src, out = tmp_path / "stored.mp4", tmp_path / "phone.mp4", tmp_path / "out.mp4"
    _video(stored, frames, fps=24)
    subprocess.run([ff, "-y", "-loglevel", "error", "-display_rotation", "90", "-i", str(stored), "-c", "copy",
                    str(src)], check=True)
    with caplog.at_level("WARNING"):
        info = probe_plate(src)
        rgb = [f for _, f in iter_plate_frames(info)]
    assert (info.width, info.height, len(rgb)) == (96, 128, 4)          # upright: 96 wide, 128 tall
    assert rgb[0][-16:, :16].mean() > 200 and rgb[0][:16, :16].mean() < 100   # counter-clockwise: bottom-left
    assert not caplog.records                                            # no warning on every read
    with PlateWriter(out, info) as w:
        for f in rgb:
            w.write(f)
    back = probe_plate(out)
    assert (back.width, back.height) == (96, 128)
    assert next(iter_plate_frames(back))[1][-16:, :16].mean() > 200      # written upright, shown the same


def test_an_interlaced_plate_is_refused_with_the_commands_that_fix_it(tmp_path):
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    src, fixed = tmp_path / "1080i.mp4", tmp_path / "deinterlaced.mp4"
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "128x96", "-r", "25",
                    "-i", "-", "-vf", "setfield=tff", "-c:v", "libx264", "-flags", "+ildct+ilme", "-x264-params",
                    "tff=1", "-pix_fmt", "yuv420p", str(src)], input=b"".join(f.tobytes() for f in _colour_frames()),
                   check=True)
    with pytest.raises(ValueError, match=r"interlaced video .* bwdif=mode=send_frame .* setfield=prog"):
        probe_plate(src)
    subprocess.run([ff, "-y", "-loglevel", "error", "-i", str(src), "-vf", "bwdif=mode=send_frame", str(fixed)],
                   check=True)
    assert probe_plate(fixed).frame_count == 6                  # what the message says to run is accepted


def test_a_frame_folder_with_a_hole_is_named_and_two_sequences_in_one_folder_are_refused(tmp_path, caplog):
    import cv2

    folder = tmp_path / "sh010"
    folder.mkdir()
    for n in (1001, 1002, 1003, 1006, 1007):
        cv2.imwrite(str(folder / f"sh010.{n}.png"), np.zeros((96, 128, 3), np.uint8))
    with caplog.at_level("WARNING"):
        info = probe_plate(folder)
    assert info.frame_count == 5 and "2 frame(s) missing from the sequence (1004, 1005)" in caplog.text
    caplog.clear()
    twos = tmp_path / "twos"                            # animated on twos: a regular step is not a hole
    twos.mkdir()
    for n in (2, 4, 6):
        cv2.imwrite(str(twos / f"f{n:04d}.png"), np.zeros((96, 128, 3), np.uint8))
    with caplog.at_level("WARNING"):
        probe_plate(twos)
    assert not caplog.records
    cv2.imwrite(str(folder / "sh020.1002.jpg"), np.zeros((96, 128, 3), np.uint8))
    with pytest.raises(ValueError, match=r"sh010.1002.png and sh020.1002.jpg are both frame 1002"):
        probe_plate(folder)


@pytest.mark.parametrize("encode, codec, profile, depth", [
    (["-c:v", "prores_ks", "-profile:v", "1", "-pix_fmt", "yuv422p10le"], "prores", "LT", 10),
    (["-c:v", "dnxhd", "-profile:v", "dnxhr_hqx", "-pix_fmt", "yuv422p10le"], "dnxhd", "DNXHR HQX", 10),
])
def test_an_editorial_codec_plate_is_written_back_in_its_codec_and_profile_in_a_mov(tmp_path, encode, codec, profile,
                                                                                    depth):
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    src = tmp_path / "plate.mov"
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "256x144", "-r", "24",
                    "-i", "-", "-vf", "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv",
                    *encode, str(src)], input=b"".join(f.tobytes() for f in _colour_frames(h=144, w=256)), check=True)
    info = probe_plate(src)
    assert (info.header.codec, info.header.profile, info.header.bit_depth) == (codec, profile, depth)
    for out, want in ((tmp_path / "out.mov", (codec, profile)), (tmp_path / "out.mp4", ("h264", "High 10"))):
        with PlateWriter(out, info) as w:
            for _, rgb in iter_plate_frames(info):
                w.write(rgb)
        got = probe_plate(out).header
        assert (got.codec, got.profile, got.colour) == (*want, info.header.colour)
        err = np.abs(_as_player(out, "bt709") - _as_player(src, "bt709")).mean()
        assert err < 2.5, (out, err)


@pytest.mark.parametrize("pix_fmt, size", [("yuv444p", (129, 97)), ("yuv422p10le", (128, 97))])
def test_an_h264_plate_keeps_its_chroma_and_an_odd_size(tmp_path, pix_fmt, size):
    """An H.264 plate in 4:4:4 (or 4:2:2) was written back as 4:2:0, losing chroma, and at an odd size (1281x721)
    not at all ("ffmpeg could not encode the video": 4:2:0 needs even sides)."""
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    src, w, h = tmp_path / "plate.mp4", *size
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r",
                    "24", "-i", "-", "-c:v", "libx264", "-pix_fmt", pix_fmt, str(src)],
                   input=b"".join(f.tobytes() for f in _colour_frames(n=3, h=h, w=w)), check=True)
    info = probe_plate(src)
    with PlateWriter(tmp_path / "out.mp4", info) as wr:
        for _, rgb in iter_plate_frames(info):
            wr.write(rgb)
    got = probe_plate(tmp_path / "out.mp4")
    assert (got.width, got.height, got.frame_count) == (w, h, 3)
    assert got.header.pix_fmt.startswith(pix_fmt)


def test_the_chroma_subsampling_of_a_pixel_format():
    from capture.video_header import chroma_subsampling

    assert [chroma_subsampling(f) for f in ("yuv444p", "gbrp10le", "yuvj420p", "nv12", "yuyv422", "yuv422p10le",
                                            None)] == ["444", "444", "420", "420", "422", "422", "420"]


def test_an_h264_plate_keeps_its_chroma_and_another_codec_becomes_what_players_take():
    from fractions import Fraction

    from capture.video_header import StreamHeader, video_codec

    def header(codec, pix_fmt):
        return StreamHeader(24.0, Fraction(1), pix_fmt, {}, None, False, codec, None)

    def fmt(h, size=(128, 96)):
        return video_codec(h, ".mp4", 8, "veryfast", size)[1]

    assert fmt(header("h264", "yuv444p")) == "yuv444p"                    # High 4:4:4 back as itself
    assert fmt(header("prores", "yuv422p10le")) == "yuv420p10le"          # ProRes into an mp4: High 10, playable
    assert fmt(header("prores", "yuv444p10le"), (129, 97)) == "yuv444p10le"   # odd: 4:2:0 cannot hold it
    assert fmt(header("h264", "yuv422p"), (129, 96)) == "yuv444p"


def test_a_dpx_sequence_is_read_as_ffmpeg_decodes_it_and_a_format_not_read_is_refused_with_a_conversion(tmp_path):
    """10-bit DPX frames (ffmpeg's gbrp10le writer) are a plate: their display RGB is ffmpeg's own decode of them
    rounded to 8 bits; numbered frames of a format not read (Cineon) are refused naming a conversion."""
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    dpx, cin = tmp_path / "dpx", tmp_path / "cin"
    dpx.mkdir()
    cin.mkdir()
    subprocess.run([ff, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=128x96:rate=24", "-frames:v", "3",
                    "-pix_fmt", "gbrp10le", "-start_number", "1001", str(dpx / "sh.%04d.dpx")], check=True)
    info = probe_plate(dpx)
    assert (info.kind, info.width, info.height, info.frame_count) == ("frames", 128, 96, 3)
    assert info.frames[0].name == "sh.1001.dpx"
    for i, rgb in iter_plate_frames(info):
        raw = subprocess.run([ff, "-v", "error", "-i", str(info.frames[i]), "-f", "rawvideo", "-pix_fmt", "rgb48le",
                              "-"], capture_output=True, check=True).stdout
        want = np.round(np.frombuffer(raw, np.uint16).reshape(96, 128, 3) / 257.0).astype(np.uint8)
        assert np.array_equal(rgb, want)
    for i in range(3):
        (cin / f"sh.{1001 + i}.cin").write_bytes(b"\x80\x2a\x5f\xd7" + bytes(60))
    with pytest.raises(ValueError, match=r"numbered \.cin files are not read: convert them first.*rgb48le"):
        probe_plate(cin)


def _audio_streams(path):
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    text = subprocess.run([ff, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return [re.search(r"Audio: ([a-z0-9_]+)", ln).group(1) for ln in text.splitlines() if "Audio: " in ln]


def test_every_audio_track_of_a_camera_original_is_kept(tmp_path):
    """Camera originals carry several audio tracks, often PCM: all of them come back; an MP4, which cannot hold
    PCM, gets them as lossless ALAC."""
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    src = tmp_path / "A001C003.mov"
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "128x96", "-r", "24",
                    "-i", "-", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-f", "lavfi", "-i",
                    "sine=frequency=660:duration=1", "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "pcm_s24le", "-shortest", str(src)],
                   input=b"".join(f.tobytes() for f in _colour_frames(24)), check=True)
    assert _audio_streams(src) == ["pcm_s24le", "pcm_s24le"]
    info = probe_plate(src)
    for out, codecs in ((tmp_path / "out.mov", ["pcm_s24le"] * 2), (tmp_path / "out.mp4", ["alac"] * 2)):
        with PlateWriter(out, info) as w:
            for _, rgb in iter_plate_frames(info):
                w.write(rgb)
        assert _audio_streams(out) == codecs and probe_plate(out).frame_count == 24


def test_an_encoder_failure_is_one_line_and_leaves_nothing(tmp_path):
    src = tmp_path / "plate.mp4"
    _video(src, _frames(4))
    info = probe_plate(src)
    out = tmp_path / "out.mp4"
    with pytest.raises(OSError, match="ffmpeg could not encode the video"):
        with PlateWriter(out, info, crf=-5) as w:          # x264 refuses the rate control
            for _, rgb in iter_plate_frames(info):
                w.write(rgb)
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_an_ntsc_rate_plate_keeps_its_exact_rate_and_drop_frame_timecode(tmp_path):
    """ffmpeg prints 29.97; written at that instead of 30000/1001 a plate drifts from its audio (0.1 s in 10
    minutes) and a drop-frame timecode is refused."""
    from capture.plate_io import _decode_video

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    src, out = tmp_path / "ntsc.mov", tmp_path / "out.mov"
    subprocess.run([ff, "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=128x96:rate=30000/1001",
                    "-frames:v", "300", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-timecode", "01:00:00;00", str(src)],
                   check=True)
    info = probe_plate(src)
    assert info.fps == 29.97 and info.header.timecode == "01:00:00;00"
    with PlateWriter(out, info) as w:
        for _, rgb in iter_plate_frames(info):
            w.write(rgb)
    assert _decode_video(out) == _decode_video(src) == (300, 10.01)     # 300 / (30000/1001) s, to the microsecond
    assert probe_plate(out).header.timecode == "01:00:00;00"


def test_an_mxf_plate_comes_back_as_mxf_and_an_mp4_one_written_to_mxf_gets_dnxhr_and_pcm(tmp_path):
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    src, mp4 = tmp_path / "A001.mxf", tmp_path / "plate.mp4"
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=256x144:rate=25", "-f",
                    "lavfi", "-i", "sine=frequency=440:duration=1:sample_rate=48000", "-frames:v", "25", "-c:v",
                    "dnxhd", "-profile:v", "dnxhr_sq", "-pix_fmt", "yuv422p", "-c:a", "pcm_s24le", "-timecode",
                    "10:00:00:00", str(src)], check=True)
    _video(mp4, _frames(24, h=144, w=256), fps=24, audio=True)       # H.264 and AAC: DNxHR and PCM in an MXF
    for plate, codec, audio in ((src, "dnxhd", ["pcm_s24le"]), (mp4, "dnxhd", ["pcm_s24le"])):
        info = probe_plate(plate)
        out = tmp_path / f"out_{plate.stem}.mxf"
        with PlateWriter(out, info) as w:
            for _, rgb in iter_plate_frames(info):
                w.write(rgb)
        back = probe_plate(out)
        assert (back.header.codec, _audio_streams(out), back.frame_count) == (codec, audio, info.frame_count)
    assert probe_plate(tmp_path / "out_A001.mxf").header.timecode == "10:00:00:00"


def test_audio_a_container_cannot_hold_is_reencoded_and_the_rest_copied(tmp_path):
    from capture.plate_io import _audio_options

    assert _audio_options("aac", ".mov") == _audio_options("vorbis", ".mkv") == ("-c:a", "copy")
    assert _audio_options("pcm_s24le", ".mov") == ("-c:a", "copy")
    assert _audio_options("pcm_s24le", ".mp4") == ("-c:a", "alac")
    assert _audio_options("flac", ".mp4") == ("-c:a", "aac", "-b:a", "320k")
    assert _audio_options("flac", ".mov") == ("-c:a", "pcm_s24le")
    assert _audio_options("aac", ".mxf") == ("-c:a", "pcm_s24le", "-ar", "48000")
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    src = tmp_path / "plate.mkv"
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "128x96", "-r", "24",
                    "-i", "-", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:v", "libx264", "-pix_fmt",
                    "yuv420p", "-c:a", "flac", "-shortest", str(src)],
                   input=b"".join(f.tobytes() for f in _colour_frames(24)), check=True)
    info = probe_plate(src)
    for out, codec in ((tmp_path / "o.mp4", "aac"), (tmp_path / "o.mov", "pcm_s24le"), (tmp_path / "o.mkv", "flac")):
        with PlateWriter(out, info) as w:
            for _, rgb in iter_plate_frames(info):
                w.write(rgb)
        assert _audio_streams(out) == [codec]


def test_what_the_header_refuses_is_refused_before_the_video_is_decoded(tmp_path, monkeypatch):
    from capture import plate_io

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    src = tmp_path / "hdv.mp4"
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "128x96", "-r", "24",
                    "-i", "-", "-vf", "setsar=4/3", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)],
                   input=b"".join(f.tobytes() for f in _colour_frames()), check=True)
    monkeypatch.setattr(plate_io, "_decode_video", lambda *a, **k: pytest.fail("decoded a plate its header refuses"))
    with pytest.raises(ValueError, match="non-square pixels"):
        probe_plate(src)


def _prores_4444_with_alpha(path, n=6, w=128, h=96):
    """A ProRes 4444 clip with an alpha channel (a horizontal ramp) over ffmpeg's test picture."""
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ff, "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=24", "-frames:v", str(n),
                    "-vf", "format=rgba,geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)':a='32+X'", "-c:v", "prores_ks",
                    "-profile:v", "4", "-pix_fmt", "yuva444p10le", str(path)], check=True)


def test_a_prores_4444_plate_keeps_its_alpha_channel_and_an_mp4_says_it_cannot(tmp_path, caplog):
    """The swap's writer carries a ProRes 4444 plate's alpha into its .mov (it had been dropped, with a warning):
    the alpha codes as the plate's, the colour changed only where the swap drew; into an .mp4 (H.264 has no alpha)
    it warns. `doppel disclose`'s rewrite of such a file keeps it too."""
    from assets.disclosure import _rewrite_video
    from capture.plate_io import read_video_frames
    from capture.video_header import has_alpha, read_stream_header

    src = tmp_path / "plate.mov"
    _prores_4444_with_alpha(src)
    info = probe_plate(src)
    assert has_alpha(info.header)
    with PlateWriter(tmp_path / "out.mov", info) as writer:
        for _, rgb in iter_plate_frames(info):
            rgb = rgb.copy()
            rgb[20:50, 30:70] = (200, 120, 90)
            writer.write(rgb)
    assert has_alpha(read_stream_header(tmp_path / "out.mov"))
    size = (info.width, info.height)
    before = [f for _, f in read_video_frames(src, size, alpha=True)]
    after = [f for _, f in read_video_frames(tmp_path / "out.mov", size, alpha=True)]
    assert len(after) == len(before) == 6
    for a, b in zip(before, after, strict=True):
        assert np.array_equal(a[..., 3], b[..., 3])                       # alpha as the plate's
        away = np.ones(a.shape[:2], bool)
        away[16:54, 26:74] = False
        diff = np.abs(a[..., :3].astype(int) - b[..., :3]) / 64           # 10-bit levels
        assert diff[away].mean() < 1.0 and diff[~away].mean() > 20
    caplog.clear()
    with caplog.at_level("WARNING"), PlateWriter(tmp_path / "out.mp4", info) as writer:
        for _, rgb in iter_plate_frames(info):
            writer.write(rgb)
    assert "alpha channel" in caplog.text and not has_alpha(read_stream_header(tmp_path / "out.mp4"))
    _rewrite_video(src, lambda view: view)
    kept = [f for _, f in read_video_frames(src, size, alpha=True)]
    assert all(np.array_equal(a[..., 3], b[..., 3]) for a, b in zip(before, kept, strict=True))


_KILLED_WRITER = """
import sys, time
import numpy as np
from capture.plate_io import PlateWriter, probe_plate
from pathlib import Path
w = PlateWriter(sys.argv[2], probe_plate(sys.argv[1])).__enter__()
w.write(np.zeros((96, 128, 3), np.uint8))
Path(sys.argv[3]).write_text("ready")
time.sleep(120)
"""


@pytest.mark.parametrize("kind", ["video", "frames"])
def test_a_killed_writers_partial_plate_is_removed_by_the_next_writer(tmp_path, kind):
    """A swap killed mid-plate (the OOM killer, a farm's preemption) left its partial plate beside OUT under a
    random hidden name that no later run removed: gigabytes at 4K, one per kill. The next writer of OUT now
    removes it (the name says whose it was; that process is gone)."""
    import os
    import signal
    import sys
    import time
    from pathlib import Path

    import cv2

    src = tmp_path / "plate.mp4"
    _video(src, _frames())
    if kind == "frames":
        (tmp_path / "frames").mkdir()
        for i, f in enumerate(_frames()):
            cv2.imwrite(str(tmp_path / "frames" / f"{i:04d}.png"), f)
        src = tmp_path / "frames"
    out, ready = tmp_path / ("out.mp4" if kind == "video" else "out"), tmp_path / "ready"
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(src), str(out), str(ready)],
                            env={**os.environ, "PYTHONPATH": str(repo)}, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    left = [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}")]
    assert len(left) == 1 and not out.exists()              # what the kill leaves
    info = probe_plate(src)
    with PlateWriter(out, info) as w:
        for _, f in iter_plate_frames(info):
            w.write(f)
    assert out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}")]
