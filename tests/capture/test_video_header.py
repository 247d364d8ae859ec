"""A video's header read from ffmpeg's text: pixel aspect, colour tags, bit depth, timecode; and turned into the
encoder options that give a written plate the same."""

from fractions import Fraction

from capture.video_header import RENDERED, encoder_options, parse_stream_header

_HEAD = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'plate.mp4':
  Metadata:
    major_brand     : isom
    timecode        : 01:02:03:04
  Duration: 00:00:01.00, start: 0.000000, bitrate: 2812 kb/s
"""


def _line(video: str) -> str:
    return _HEAD + f"  Stream #0:0[0x1](und): Video: {video}\n      handler_name    : VideoHandler\n"


def test_the_colour_tags_are_read_as_ffmpeg_prints_them():
    h = parse_stream_header(_line("h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709/unknown/unknown, progressive), "
                                  "1280x720 [SAR 1:1 DAR 16:9], 2779 kb/s, 24 fps, 24 tbr, 12288 tbn (default)"))
    assert (h.pix_fmt, h.colour, h.tbr, h.sar, h.bit_depth) == ("yuv420p", {"range": "tv", "colorspace": "bt709"},
                                                                24.0, Fraction(1), 8)
    assert h.timecode == "01:02:03:04"
    # one name for all three when space, primaries and transfer agree; a chroma siting is not a colour
    h = parse_stream_header(_line("h264 (High), yuv420p(tv, bt709, progressive, left), 1920x1080 [SAR 1:1 DAR 16:9], "
                                  "25 fps, 25 tbr"))
    assert h.colour == {"range": "tv", "colorspace": "bt709", "color_primaries": "bt709", "color_trc": "bt709"}
    h = parse_stream_header(_line("hevc (Main 10), yuv420p10le(tv, bt2020nc/bt2020/smpte2084), 3840x2160 "
                                  "[SAR 1:1 DAR 16:9], 23.98 fps, 23.98 tbr"))
    assert (h.bit_depth, h.colour["color_trc"], h.tbr) == (10, "smpte2084", 23.98)
    # full range, anamorphic pixels, a "k" rate that is not a rate
    h = parse_stream_header(_line("mjpeg, yuvj422p(pc, bt470bg/unknown/unknown), 1440x1080 [SAR 4:3 DAR 16:9], "
                                  "25 fps, 1k tbr"))
    assert (h.colour, h.sar, h.tbr) == ({"range": "pc", "colorspace": "bt470bg"}, Fraction(4, 3), None)


def test_untagged_and_rgb_coded_streams_carry_no_matrix():
    h = parse_stream_header(_line("h264 (High), yuv420p(progressive), 640x360, 24 fps, 24 tbr"))
    assert h.colour == {} and h.pix_fmt == "yuv420p"
    h = parse_stream_header(_line("h264 (High 4:4:4), gbrp(pc, gbr/bt709/bt709), 640x360, 24 fps, 24 tbr"))
    assert "colorspace" not in h.colour and h.colour["color_primaries"] == "bt709"
    assert parse_stream_header("no video here").colour == {}
    assert encoder_options(None) == ([], None)


def test_encoder_options_give_the_tags_pixel_aspect_and_timecode():
    h = parse_stream_header(_line("h264, yuv420p(tv, bt709), 1440x1080 [SAR 4:3 DAR 16:9], 25 fps, 25 tbr"))
    options, vf = encoder_options(h)
    assert options == ["-timecode", "01:02:03:04"]
    assert vf == "setparams=range=tv:colorspace=bt709:color_primaries=bt709:color_trc=bt709,setsar=4/3"
    assert encoder_options(RENDERED) == ([], "setparams=range=tv:colorspace=bt709:color_primaries=bt709:"
                                             "color_trc=bt709")


def test_interlaced_streams_are_told_apart_from_progressive_ones():
    h = parse_stream_header(_line("h264 (High), yuv420p(tv, bt709, top coded first (swapped)), 1920x1080 "
                                  "[SAR 1:1 DAR 16:9], 25 fps, 25 tbr"))
    assert h.interlaced and h.colour["colorspace"] == "bt709"
    assert parse_stream_header(_line("h264, yuv420p(bottom first), 640x360, 25 fps, 25 tbr")).interlaced
    assert not parse_stream_header(_line("h264, yuv420p(tv, progressive), 640x360, 25 fps, 25 tbr")).interlaced


def test_codec_profile_and_a_pixel_aspect_printed_outside_brackets_are_read():
    h = parse_stream_header(_line("prores (HQ) (apch / 0x68637061), yuv422p10le(tv, bt709, progressive), 1440x1080, "
                                  "36995 kb/s, SAR 4:3 DAR 16:9, 24 fps, 24 tbr, 12288 tbn (default)"))
    assert (h.codec, h.profile, h.sar, h.bit_depth) == ("prores", "HQ", Fraction(4, 3), 10)
    h = parse_stream_header(_line("h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 640x360, 24 fps"))
    assert (h.codec, h.profile) == ("h264", "High")


def test_a_header_is_described_in_one_line_for_the_report():
    from capture.video_header import describe

    h = parse_stream_header(_line("prores (HQ) (apch / 0x68637061), yuv422p10le(tv, bt709, progressive), 1920x1080, "
                                  "SAR 1:1 DAR 16:9, 24 fps, 24 tbr"))
    assert describe(h) == "prores HQ, yuv422p10le (10-bit), bt709 tv, timecode 01:02:03:04"
    assert describe(None) == ""


def test_rates_printed_rounded_are_given_back_exact():
    from capture.video_header import exact_rate

    assert exact_rate(23.98) == Fraction(24000, 1001) and exact_rate(29.97) == Fraction(30000, 1001)
    assert exact_rate(59.94) == Fraction(60000, 1001) and exact_rate(119.88) == Fraction(120000, 1001)
    assert exact_rate(24.0) == 24 and exact_rate(25.0) == 25 and exact_rate(12.5) == Fraction(25, 2)


def test_a_colour_name_ffmpeg_may_print_but_setparams_may_not_take_is_left_untagged():
    h = parse_stream_header(_line("h264, yuv420p(tv, bt709/some-new-primaries/arib-std-b67), 640x360, 25 fps"))
    assert h.colour == {"range": "tv", "colorspace": "bt709", "color_trc": "arib-std-b67"}
