"""What a video stream's header says beyond its size and rate: pixel aspect, colour encoding, bit depth, timecode.

A swapped plate must look like its plate in every player and conform like it in editorial. The frames go through
RGB, so the output is only faithful when it is encoded back with the plate's own colour matrix and range and
carries the same tags (an HD plate tagged BT.709, written untagged with ffmpeg's BT.601 default, plays about 10
grey levels off in players that assume BT.709 for untagged HD: docs/benchmarks.md, "Plates that keep their colour
and timecode"), and keeps the start timecode.

`read_stream_header` parses the first video stream's line of ``ffmpeg -i`` (the ffmpeg binary of imageio-ffmpeg's
wheel: no ffprobe ships there); `encoder_options` turns a header into ffmpeg output options for `PlateWriter`.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

# ffmpeg's names, as it prints them and as its setparams filter takes them
_RANGES = ("tv", "pc")
_COLOUR_KEYS = ("colorspace", "color_primaries", "color_trc")
_SAME_NAMES = ("bt709", "smpte170m", "smpte240m")     # printed once when space, primaries and transfer all are it
_INTERLACED = ("top first", "bottom first", "top coded first (swapped)", "bottom coded first (swapped)")
_PRIMARIES = ("bt709", "bt470m", "bt470bg", "smpte170m", "smpte240m", "film", "bt2020", "smpte428", "smpte431",
              "smpte432", "jedec-p22", "ebu3213")
_TRANSFERS = ("bt709", "gamma22", "gamma28", "smpte170m", "smpte240m", "linear", "log100", "log316", "iec61966-2-4",
              "bt1361e", "iec61966-2-1", "bt2020-10", "bt2020-12", "smpte2084", "smpte428", "arib-std-b67")
# the names ffmpeg prints and setparams takes; a name outside these lists (a new one) is left untagged rather than
# failing the encode at the end of a swap
_MATRICES = ("bt709", "fcc", "bt470bg", "smpte170m", "smpte240m", "bt2020nc", "bt2020c")   # YUV matrices swscale
                                                      # converts with; another (gbr, ycgco, ...) is left untagged


@dataclass(frozen=True)
class StreamHeader:
    """tbr: the nominal rate (ffmpeg's "tbr"), None when it does not say; sar: the pixel aspect ratio (width /
    height of one pixel as displayed; 1 = square); pix_fmt: the stored pixel format (e.g. "yuv420p10le");
    colour: the tagged encoding, ffmpeg's names under setparams' keys (range, colorspace, color_primaries,
    color_trc), only those the stream states; timecode: the start timecode ("HH:MM:SS:FF", ";" before the
    frames when drop-frame), None when there is none; interlaced: the stream says its frames are two fields
    (ffmpeg's field order "top first", "bottom first", ...); codec, profile: the stream's codec and profile as
    ffmpeg names them ("prores", "HQ")."""

    tbr: float | None = None
    sar: Fraction = Fraction(1)
    pix_fmt: str | None = None
    colour: dict[str, str] = field(default_factory=dict)
    timecode: str | None = None
    interlaced: bool = False
    codec: str | None = None
    profile: str | None = None

    @property
    def bit_depth(self) -> int:
        """Bits per sample of the stored pixels (8 unless the pixel format names more, e.g. yuv420p10le: 10)."""
        m = re.search(r"p(9|1[0-6])(le|be)?$", self.pix_fmt or "")
        return int(m.group(1)) if m else 8


# frames drawn here (renders, previews, synthetic plates) are sRGB with Rec.709 primaries: encoded and tagged BT.709,
# so that every player decodes them with the matrix they were encoded with (untagged HD is read as BT.709, untagged SD
# as BT.601, and ffmpeg encodes untagged RGB with BT.601)
RENDERED = StreamHeader(colour={"range": "tv", "colorspace": "bt709", "color_primaries": "bt709", "color_trc": "bt709"})


def read_stream_header(path: str | Path, ffmpeg: str | None = None) -> StreamHeader:
    """The first video stream's `StreamHeader` from ``ffmpeg -i path`` (a header read, no decode)."""
    import imageio_ffmpeg

    res = subprocess.run([ffmpeg or imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         capture_output=True, text=True, errors="replace", timeout=60)
    return parse_stream_header(res.stderr)


def parse_stream_header(text: str) -> StreamHeader:
    """`StreamHeader` from the text ffmpeg prints about its input (``ffmpeg -i``)."""
    lines = text.splitlines()
    i = next((k for k, ln in enumerate(lines) if "Stream #" in ln and "Video:" in ln), None)
    if i is None:
        return StreamHeader()
    line = lines[i]
    m = re.search(r"([\d.]+)(k?) tbr", line)
    tbr = float(m.group(1)) if m and not m.group(2) else None
    m = re.search(r"SAR (\d+):(\d+) DAR", line)             # "[SAR 1:1 DAR 16:9]", or ", SAR 1:1 DAR 16:9," (ProRes)
    sar = Fraction(int(m.group(1)), int(m.group(2))) if m and int(m.group(2)) > 0 and int(m.group(1)) > 0 \
        else Fraction(1)
    pix_fmt, colour, interlaced = _pixel_format(line)
    m = re.match(r"\s*([a-z0-9_]+)(?: \(([^()/]+)\))?", line.split("Video:", 1)[1])
    codec, profile = (m.group(1), m.group(2)) if m else (None, None)
    return StreamHeader(tbr, sar, pix_fmt, colour, _timecode(lines, i), interlaced, codec, profile)


def _pixel_format(line: str) -> tuple[str | None, dict[str, str], bool]:
    """(pixel format, tagged colour, interlaced) from a stream line's "yuv420p(tv, bt709/unknown/unknown,
    progressive)"; one name for all three of colorspace / primaries / transfer when they are the same
    ("yuv420p(tv, bt709)")."""
    parts = _top_level_split(line.split("Video:", 1)[1])
    if len(parts) < 2:
        return None, {}, False
    m = re.match(r"([a-z0-9_]+)(?:\((.*)\))?$", parts[1])
    if not m:
        return None, {}, False
    colour: dict[str, str] = {}
    tokens = _top_level_split(m.group(2) or "")
    for token in tokens:
        if token in _RANGES:
            colour["range"] = token
        elif token in _SAME_NAMES or token.count("/") == 2:        # else a field order, a chroma siting
            names = token.split("/") if "/" in token else [token] * 3
            colour.update({k: v for k, v in zip(_COLOUR_KEYS, names, strict=True)
                           if v and v not in ("unknown", "reserved")})
    for key, known in (("colorspace", _MATRICES), ("color_primaries", _PRIMARIES), ("color_trc", _TRANSFERS)):
        if colour.get(key) not in known:
            colour.pop(key, None)
    return m.group(1), colour, any(t in _INTERLACED for t in tokens)


def _top_level_split(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses, each part stripped."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


def _timecode(lines: list[str], stream: int) -> str | None:
    """The first "timecode : HH:MM:SS:FF" in the container's or the video stream's metadata."""
    for ln in lines[:stream + 8]:
        m = re.match(r"\s*timecode\s*:\s*(\d\d:\d\d:\d\d[:;.]\d\d)\s*$", ln)
        if m:
            return m.group(1)
    return None


NTSC_BASES = (24, 30, 48, 60, 120, 240)     # their x 1000/1001 rates, which ffmpeg prints rounded (23.98, 29.97)


def exact_rate(fps: float) -> Fraction:
    """The frame rate as ffmpeg should be given it: ffmpeg prints a rate to two decimals, and a video written at
    23.98 instead of 24000/1001 frames a second drifts from its audio by 0.1 s in 10 minutes. NTSC rates (within
    0.006 of n x 1000/1001) come back exact; any other as the nearest fraction with a denominator up to 1000."""
    for base in NTSC_BASES:
        if abs(fps - base * 1000 / 1001) < 0.006:
            return Fraction(base * 1000, 1001)
    return Fraction(fps).limit_denominator(1000)


def describe(header: StreamHeader | None) -> str:
    """One line for people: codec and profile, pixel format and bit depth, colour tags, timecode, e.g. "prores HQ,
    yuv422p10le (10-bit), bt709 tv, timecode 01:00:00:00"; "" for None."""
    if header is None:
        return ""
    colour = " ".join(dict.fromkeys(v for k, v in header.colour.items() if k != "range")) or "untagged"
    parts = [" ".join(p for p in (header.codec, header.profile) if p),
             f"{header.pix_fmt} ({header.bit_depth}-bit)" if header.pix_fmt else "",
             f"{colour} {header.colour.get('range', '')}".strip(),
             "interlaced" if header.interlaced else "",
             f"pixel aspect {header.sar.numerator}:{header.sar.denominator}" if header.sar != 1 else "",
             f"timecode {header.timecode}" if header.timecode else ""]
    return ", ".join(p for p in parts if p)


ALPHA_PIX_FMTS = re.compile(r"(yuva|rgba|bgra|argb|abgr|gbrap|ya)")   # ffmpeg pixel formats with an alpha plane


def has_alpha(header: StreamHeader | None) -> bool:
    """Whether the video's pixel format has an alpha channel (a ProRes 4444 with alpha: yuva444p10le/12le)."""
    return header is not None and bool(ALPHA_PIX_FMTS.match(header.pix_fmt or ""))


def alpha_on_grid(rgba: np.ndarray, pix_fmt: str) -> np.ndarray:
    """(H, W, 4) uint16 RGBA codes with the alpha put on the n-bit grid of the encoder's pixel format (yuva444p10le:
    10): ffmpeg decodes an n-bit alpha code v as (v << (16 - n)) plus a fraction and encodes by rounding, so the
    fraction is dropped first and the plate's alpha codes come back exactly (rounded, a quarter moved a code)."""
    bits = re.search(r"p(\d+)(le|be)$", pix_fmt)
    drop = 16 - int(bits.group(1)) if bits else 8
    out = rgba.copy()
    out[..., 3] &= np.uint16(0xFFFF ^ ((1 << drop) - 1))
    return out


PRORES_PROFILES = {"Proxy": 0, "LT": 1, "Standard": 2, "HQ": 3, "4444": 4, "4444XQ": 5}   # ffmpeg's names


DNXHR_PIX_FMTS = {"dnxhr_lb": "yuv422p", "dnxhr_sq": "yuv422p", "dnxhr_hq": "yuv422p", "dnxhr_hqx": "yuv422p10le",
                  "dnxhr_444": "yuv444p10le"}


def video_codec(header: StreamHeader | None, suffix: str, crf: int, preset: str,
                size: tuple[int, int] | None = None) -> tuple[str, str, list[str]]:
    """(encoder, pixel format, its options) for a plate written back as a ``suffix`` file: a ProRes plate into a .mov,
    .mkv or .mxf as ProRes of its profile (10-bit 4:2:2, 4:4:4 for the 4444 profiles, with its alpha channel when it
    has one: `has_alpha`), a DNxHR one as DNxHR of its profile (DNxHD, whose rates are fixed per format, as DNxHR HQ
    or HQX); any other plate into an .mxf as DNxHR HQ or HQX (ffmpeg's MXF muxer mistimes H.264 with B-frames);
    anything else as H.264 (x264 at ``crf`` with ``preset``), 10-bit when the plate is more than 8, 4:2:0 (what
    players take) but for an H.264 plate, which keeps its chroma subsampling (`chroma_subsampling`), and at 4:4:4
    where ``size`` (W, H px) is odd where the subsampling needs it even."""
    intermediate = header is not None and suffix.lower() in (".mov", ".mkv", ".mxf")
    if intermediate and header.codec == "prores":
        profile = PRORES_PROFILES.get(header.profile or "", 3)
        pix_fmt = ("yuva444p10le" if has_alpha(header) else "yuv444p10le") if profile >= 4 else "yuv422p10le"
        return "prores_ks", pix_fmt, ["-profile:v", str(profile), "-vendor", "apl0"]
    if (intermediate and header.codec == "dnxhd") or suffix.lower() == ".mxf":   # DNxHR by its profile; DNxHD (fixed
        profile = ((header and header.profile) or "").lower().replace(" ", "_")  # rates) and anything else: HQ(X)
        if profile not in DNXHR_PIX_FMTS:
            profile = "dnxhr_hqx" if header is not None and header.bit_depth > 8 else "dnxhr_hq"
        return "dnxhd", DNXHR_PIX_FMTS[profile], ["-profile:v", profile]
    deep = header is not None and header.bit_depth > 8
    chroma = "420"                     # what players take (QuickTime, browsers); an H.264 plate keeps its own
    if header is not None and header.codec == "h264":
        chroma = chroma_subsampling(header.pix_fmt)
    w, h = size or (2, 2)
    if (chroma == "420" and (w % 2 or h % 2)) or (chroma == "422" and w % 2):   # x264 needs even sides there
        chroma = "444"
    return "libx264", f"yuv{chroma}p" + ("10le" if deep else ""), ["-crf", str(int(crf)), "-preset", str(preset)]


def chroma_subsampling(pix_fmt: str | None) -> str:
    """"444", "422" or "420": the chroma resolution of a stored pixel format (RGB and planar GBR formats are
    4:4:4; unknown ones 4:2:0). An H.264 plate is written back at its own: a 4:4:4 plate (High 4:4:4 Predictive)
    lost its chroma to 4:2:0, and one of odd size could not be written at all (4:2:0 needs even sides)."""
    name = (pix_fmt or "").lower()
    if "444" in name or name.startswith(("gbr", "rgb", "bgr", "argb", "abgr")):
        return "444"
    if "422" in name or name.startswith(("yuyv", "uyvy")):
        return "422"
    return "420"


def encoder_options(header: StreamHeader | None) -> tuple[list[str], str | None]:
    """(ffmpeg output options, video filter or None) that give an encoded RGB plate the header's colour tags,
    converted with its matrix and range (ffmpeg converts by the frames' tags: ``setparams``), its pixel aspect
    (``setsar``) and its start timecode."""
    if header is None:
        return [], None
    filters = []
    if header.colour:
        filters.append("setparams=" + ":".join(f"{k}={v}" for k, v in header.colour.items()))
    if header.sar != 1:
        filters.append(f"setsar={header.sar.numerator}/{header.sar.denominator}")
    options = ["-timecode", header.timecode] if header.timecode else []
    return options, ",".join(filters) or None
