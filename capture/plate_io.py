"""Plates: live-action footage read and written frame by frame, never held whole in memory.

A plate is a video file (mp4 / mov / mkv / avi / mxf through the ffmpeg binary that ships in imageio-ffmpeg's
wheel), a folder of numbered frames (png / jpg / tif / bmp at 8 or 16 bits, DPX at 8 to 16, or scene-linear OpenEXR;
sorted by the number in their names; in any OCIO colour space, `capture.plate_colour`), or one image. `probe_plate`
reads what it is (size, frame rate, frame count, audio) and refuses what cannot be processed frame-exactly
(unreadable or damaged files, variable frame rates, non-square pixels, images under `MIN_PLATE_PX`);
`iter_plate_frames` streams (H, W, 3) uint8 RGB frames; `PlateWriter` writes the same kind of plate back (a video
keeps the frame rate, its colour encoding and tags, its start timecode, and copies the source's audio; a folder
keeps the source's file names, formats and bit depths, and what the swap left unchanged keeps the source's values,
`capture.frame_files`; an image takes the format from OUT's suffix), atomically: OUT appears complete or not at all.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from capture.video_header import (
    ALPHA_PIX_FMTS,
    StreamHeader,
    encoder_options,
    exact_rate,
    has_alpha,
    read_stream_header,
    video_codec,
)
from core.stage_folders import temp_sibling
from core.storage import raise_if_disk_full

log = logging.getLogger(__name__)


def _not_a_rotation_notice(record: logging.LogRecord) -> bool:
    """imageio-ffmpeg warns on every read of a video whose display matrix rotates it ("The frame size for reading
    (H, W) is different from the source frame size (W, H)"): ffmpeg hands the frames over upright, which is what
    a plate means; said once by the probe instead."""
    return not str(record.msg).startswith("The frame size for reading")


logging.getLogger("imageio_ffmpeg").addFilter(_not_a_rotation_notice)

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".mxf")
# frame files, read and written by capture.frame_files
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".exr", ".dpx")
MIN_PLATE_PX = 64          # plates smaller than this (either side) are refused
# H.264 of written videos: x264's "veryfast" preset at CRF 8. Against imageio-ffmpeg's quality 8 (CRF 10, preset
# medium), on a grainy 1080p plate: 0.1 dB closer to the frames sent (36.60 vs 36.50 dB), 6 % larger, less than half
# the encoder's CPU (grain makes x264's slower presets expensive: at medium the encode took more CPU than the swap's
# own work per frame). docs/benchmarks.md, "The plate's encoder".
H264_CRF = 8
H264_PRESET = "veryfast"
ProbeProgress = Callable[[int, int], None]   # (frames decoded, frames expected)
SQUARE_PIXEL_TOLERANCE = 0.01   # a pixel aspect further from 1 than this is refused (an anamorphic plate)
VFR_TOLERANCE_FRAMES = 1.5  # decoded frames vs duration x fps beyond this -> variable frame rate, refused


@dataclass(frozen=True)
class PlateInfo:
    """What a plate is. kind: "video", "frames" or "image"; width, height in px; fps (None for stills);
    frame_count; audio_codec: the source's audio codec or None; frames: the frame files of a folder plate
    (in order), else empty; header: a video's colour tags, bit depth and timecode (`capture.video_header`),
    which `PlateWriter` gives its output; None for stills. colorspace: the OCIO colour space of the plate's
    values (`capture.plate_colour`: a frame file's samples, a video's RGB as its tags decode it), None: as they
    are encoded (`capture.frame_files`)."""

    path: Path
    kind: str
    width: int
    height: int
    fps: float | None
    frame_count: int
    audio_codec: str | None = None
    frames: tuple[Path, ...] = field(default_factory=tuple)
    header: StreamHeader | None = None
    colorspace: str | None = None


def _frame_number(p: Path) -> int | None:
    m = re.findall(r"\d+", p.stem)
    return int(m[-1]) if m else None


def _check_size(path: Path, w: int, h: int) -> None:
    if min(w, h) < MIN_PLATE_PX:
        raise ValueError(f"{path}: plate is {w}x{h} px; plates smaller than {MIN_PLATE_PX} px are refused "
                         "(too small to find and replace a face)")


def _probe_folder(path: Path) -> PlateInfo:
    from capture.frame_files import frame_size

    numbered = numbered_frames(path)
    if not numbered:
        other = sorted({p.suffix.lower() for p in path.iterdir() if p.is_file() and _frame_number(p) is not None
                        and p.suffix and p.suffix.lower() not in IMAGE_SUFFIXES})
        hint = (f"; its numbered {', '.join(other)} files are not read: convert them first, e.g. to 16-bit TIFF: "
                f"ffmpeg -start_number FIRST -i IN.%04d{other[0]} -pix_fmt rgb48le -start_number FIRST OUT.%04d.tif") \
            if other else ""
        raise ValueError(f"{path}: no numbered frames ({', '.join(IMAGE_SUFFIXES)}) in the plate folder{hint}")
    _check_numbering(path, numbered)
    frames = tuple(p for _, p in numbered)
    w, h = frame_size(frames[0])
    _check_size(path, w, h)
    for f in frames[1:]:                       # headers only: a long sequence is checked in seconds
        if (size := frame_size(f)) != (w, h):
            raise ValueError(f"{f}: frame is {size[0]}x{size[1]} px, the plate's first frame ({frames[0].name}) "
                             f"{w}x{h}: a plate's frames must share one size")
    return PlateInfo(path, "frames", w, h, sequence_fps(frames[0]), len(frames), None, frames)


def numbered_frames(folder: Path) -> list[tuple[int, Path]]:
    """The (frame number, file) of every numbered image in a plate folder (`IMAGE_SUFFIXES`), by number then
    name."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(((n, p) for p in files if (n := _frame_number(p)) is not None), key=lambda x: (x[0], x[1].name))


def sequence_fps(first: Path) -> float | None:
    """The frame rate a frame sequence's first file declares: a DPX header's frame rate, an EXR's
    ``framesPerSecond``; None for other formats or a missing or implausible value (outside 1-1000). NTSC rates
    come back exact (23.976 -> 24000/1001: `capture.video_header.exact_rate`)."""
    from capture.frame_files import DPX, EXR

    suffix = first.suffix.lower()
    fps = None
    if suffix == DPX:
        from capture.dpx_frames import dpx_frame_rate

        fps = dpx_frame_rate(first)
    elif suffix == EXR:
        from capture.frame_files import exr_header

        fps = exr_rate(exr_header(first))
    if fps is None or not 1.0 <= fps <= 1000.0:
        return None
    return float(exact_rate(fps))


def exr_rate(header: dict) -> float | None:
    """frames/s of an EXR header's ``framesPerSecond`` (OpenEXR's standard rational attribute, which the OpenEXR
    module reads as a Fraction; a pair of integers; OpenImageIO writes it as ``FramesPerSecond``), or None."""
    from fractions import Fraction

    rate = header.get("framesPerSecond", header.get("FramesPerSecond"))
    if isinstance(rate, Fraction):
        return float(rate) if rate > 0 else None
    if rate is not None and len(np.ravel(rate)) == 2 and float(np.ravel(rate)[1]) > 0:
        return float(np.ravel(rate)[0]) / float(np.ravel(rate)[1])
    return None


def exr_timing_attributes(fps: float | None, shutter_deg: float = 0.0) -> dict:
    """The OpenEXR header attributes of a frame sequence's timing, what `exr_rate` and `frame_shutter_angle` read
    back: ``framesPerSecond`` (a Fraction, NTSC rates exact: `capture.video_header.exact_rate`) and, with a shutter
    angle above 0 (degrees), ``expTime`` (the seconds it was open). {} without a frame rate."""
    if not fps or fps <= 0:
        return {}
    rate = exact_rate(fps)
    out: dict = {"framesPerSecond": rate}
    if shutter_deg > 0:
        out["expTime"] = float(shutter_deg / 360.0 / float(rate))
    return out


def frame_shutter_angle(frame: Path) -> tuple[float, str] | None:
    """(degrees, where it was read) of the camera's shutter a frame file's header declares: a DPX film header's
    shutter angle; an EXR's ``expTime`` (seconds) times its frame rate (`exr_rate`) times 360. None when the
    header declares none (other formats, absent or undefined fields, a value outside 0-360 degrees)."""
    from capture.frame_files import DPX, EXR

    suffix = frame.suffix.lower()
    angle, source = None, ""
    if suffix == DPX:
        from capture.dpx_frames import dpx_shutter_angle

        angle, source = dpx_shutter_angle(frame), "its DPX header's shutter angle"
    elif suffix == EXR:
        from capture.frame_files import exr_header

        header = exr_header(frame)
        rate, exposure = exr_rate(header), header.get("expTime")
        if exposure is not None and rate:
            angle = float(np.ravel(exposure)[0]) * rate * 360.0
            source = f"its EXR header's expTime {float(np.ravel(exposure)[0]):.6g} s at {rate:.6g} frames/s"
    try:
        angle = float(angle)
    except (TypeError, ValueError):
        return None
    return (angle, source) if np.isfinite(angle) and 0.0 < angle <= 360.0 + 1e-6 else None


def plate_shutter_angle(path: str | os.PathLike) -> tuple[float, str]:
    """(degrees, where it was read) of the plate camera's shutter, from the first frame's header (a DPX or EXR
    frame sequence, or one such frame: `frame_shutter_angle`). ValueError (one line) when the plate declares none
    (a video's container, PNG / TIFF frames, a header without one)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: plate not found")
    first = path
    if path.is_dir():
        frames = numbered_frames(path)
        if not frames:
            raise ValueError(f"{path}: no numbered frames ({', '.join(IMAGE_SUFFIXES)}) in the plate folder")
        first = frames[0][1]
    found = frame_shutter_angle(first) if first.suffix.lower() in IMAGE_SUFFIXES else None
    if found is None:
        raise ValueError(f"--shutter auto: {first.name} declares no shutter angle (read from a DPX header's shutter "
                         "angle or an EXR's expTime and frame rate); give --shutter DEGREES")
    return round(found[0], 4), found[1]


def _check_numbering(path: Path, numbered: list[tuple[int, Path]]) -> None:
    """ValueError (one line) when two files carry one frame number (two sequences, or two formats of one, in the
    folder); a warning naming the missing numbers when the sequence has holes (its frames are taken as consecutive:
    the track's smoothing spans a hole as one frame)."""
    for (a, pa), (b, pb) in zip(numbered, numbered[1:], strict=False):
        if a == b:
            raise ValueError(f"{path}: {pa.name} and {pb.name} are both frame {a}: one sequence per plate folder")
    numbers = [n for n, _ in numbered]
    steps = np.diff(numbers)
    if len(steps) and (steps != steps.min()).any():
        step = int(steps.min())
        missing = sorted(set(range(numbers[0], numbers[-1] + 1, step)) - set(numbers))
        shown = ", ".join(map(str, missing[:8])) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        log.warning("%s: %d frame(s) missing from the sequence (%s); the frames around a hole are treated as "
                    "consecutive", path, len(missing), shown)


def _probe_video(path: Path, progress: ProbeProgress | None = None) -> PlateInfo:
    import imageio_ffmpeg

    try:
        gen = imageio_ffmpeg.read_frames(str(path))
        meta = next(gen)
        gen.close()
    except (RuntimeError, OSError, StopIteration, ValueError, IndexError) as e:
        raise ValueError(f"{path}: video could not be read (corrupt or unsupported: {str(e).splitlines()[0][:160]})"
                         ) from None
    w, h = (int(x) for x in meta["size"])
    _check_size(path, w, h)
    header = read_stream_header(path)
    _check_header(path, header)                    # from the header: before the whole video is decoded
    if tuple(meta.get("source_size") or (w, h)) != (w, h):
        log.info("%s: stored %dx%d, shown rotated by its display matrix: read and written upright, %dx%d", path,
                 *meta["source_size"], w, h)
    fps = float(meta.get("fps") or 0) or float(header.tbr or 0)   # a very short MXF prints only its tbr
    count, secs = _decode_video(path, progress, round(float(meta.get("duration") or 0) * fps))
    if count < 1:
        raise ValueError(f"{path}: video has no decodable frames")
    if fps <= 0:
        raise ValueError(f"{path}: video has no frame rate in its header")
    duration = float(meta.get("duration") or secs or 0)
    tbr = header.tbr
    if (duration > 0 and abs(duration * fps - count) > max(VFR_TOLERANCE_FRAMES, 0.01 * count)) or \
            (tbr is not None and abs(tbr - fps) > 0.01 * fps):
        raise ValueError(f"{path}: variable frame rate ({count} frames in {duration:.3f} s: {fps:g} fps on average, "
                         f"{tbr or fps:g} nominal); convert it to a constant rate first, e.g. ffmpeg -i IN -fps_mode "
                         "cfr -r FPS OUT")
    return PlateInfo(path, "video", w, h, fps, int(count), meta.get("audio_codec"), header=header)


def _check_header(path: Path, header: StreamHeader) -> None:
    """ValueError (one line, naming the ffmpeg command that fixes it) for a video the swap cannot treat as whole
    frames of square pixels; a note of a bit depth over 8 (its alpha: `PlateWriter`)."""
    if abs(header.sar - 1) > SQUARE_PIXEL_TOLERANCE:
        raise ValueError(f"{path}: non-square pixels (pixel aspect {header.sar.numerator}:{header.sar.denominator}): "
                         "faces are tracked and drawn in square pixels; de-squeeze it first, e.g. ffmpeg -i IN -vf "
                         "'scale=trunc(iw*sar/2)*2:ih,setsar=1' OUT")
    if header.interlaced:
        raise ValueError(f"{path}: interlaced video (each frame two fields): faces are tracked and drawn in whole "
                         "frames; deinterlace it first (ffmpeg -i IN -vf bwdif=mode=send_frame OUT), or, if its "
                         "frames are progressive and only flagged otherwise, re-flag it (-vf setfield=prog)")
    if header.bit_depth > 8:
        log.info("%s: a %d-bit plate (%s): decoded at 16 bits a sample; the swap works on 8 and writes back at "
                 "%d bits, every pixel it left unchanged at the plate's precision", path, header.bit_depth,
                 header.pix_fmt, header.bit_depth)


def _decode_video(path: Path, progress: ProbeProgress | None = None, expected: int = 0) -> tuple[int, float]:
    """(frames, seconds) of the video stream, every frame decoded. ValueError (one line) when ffmpeg cannot read
    it or its decoder reports damaged data: a damaged stream still decodes, with the broken blocks guessed from
    their neighbours ("concealed"), and those guesses would go into the swapped plate as if they were the plate.
    progress(frames decoded, expected) about twice a second (a long plate takes minutes)."""
    import subprocess

    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-nostats", "-progress",
           "pipe:1", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"]
    frames, micro = None, 0                       # the latest progress block's
    with tempfile.TemporaryFile("w+", errors="replace") as err, \
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, errors="replace") as proc:
        for line in proc.stdout:                   # key=value lines; a block ends with "progress=continue|end"
            key, _, value = line.strip().partition("=")
            if key == "frame" and value.isdigit():
                frames = int(value)
                if progress is not None:
                    progress(frames, max(expected, frames))
            elif key == "out_time_us" and value.isdigit():
                micro = int(value)
        proc.wait()
        err.seek(0)
        errors = [re.sub(r" @ 0x[0-9a-f]+", "", ln).strip() for ln in err if ln.strip()]
    if proc.returncode != 0 or not frames:          # None or 0: nothing decoded
        raise ValueError(f"{path}: video could not be read (corrupt or unsupported: "
                         f"{(errors or ['ffmpeg exit ' + str(proc.returncode)])[-1][:160]})")
    if errors:
        raise ValueError(f"{path}: video is damaged: decoding it reported {len(errors)} error(s), first "
                         f"{errors[0][:120]!r}; repair or re-encode it first, e.g. ffmpeg -i IN -c:v libx264 "
                         "-crf 10 OUT")
    return frames, micro / 1e6


def probe_plate(path: str | os.PathLike, progress: ProbeProgress | None = None,
                colorspace: str | None = None) -> PlateInfo:
    """What the plate at ``path`` is; FileNotFoundError / ValueError (one line naming the file) otherwise. A video
    is decoded once, whole (its frames counted, damaged data refused): progress(frames decoded, frames expected)
    is called as it goes. colorspace: the OCIO colour space the plate's values are in (checked against the
    config; `capture.plate_colour`): a frame file's samples, or a video's RGB as its colour tags decode it (a
    camera's log encoding in ProRes, ...)."""
    from capture.frame_files import frame_size

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: plate not found")
    if colorspace is not None:
        from capture.plate_colour import check_colorspace

        colorspace = check_colorspace(colorspace)
    if path.is_dir():
        return _with_colorspace(_probe_folder(path), colorspace)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return replace(_probe_video(path, progress), colorspace=colorspace)
    if suffix in IMAGE_SUFFIXES:
        w, h = frame_size(path)
        _check_size(path, w, h)
        return _with_colorspace(PlateInfo(path, "image", w, h, None, 1, None, (path,)), colorspace)
    raise ValueError(f"{path}: not a plate: expected a video ({', '.join(VIDEO_SUFFIXES)}), an image "
                     f"({', '.join(IMAGE_SUFFIXES)}) or a folder of numbered frames")


def _with_colorspace(info: PlateInfo, colorspace: str | None) -> PlateInfo:
    """info with its colour space: the one given, else the one an EXR's header declares (its colorInteropID or
    chromaticities); a warning when a DPX says it is log-encoded and no colour space was given."""
    from capture.frame_files import DPX, EXR

    first = info.frames[0]
    if colorspace is None and first.suffix.lower() == EXR:
        from capture.frame_files import exr_header
        from capture.plate_colour import declared_colorspace

        if (colorspace := declared_colorspace(exr_header(first), first)) is not None:
            log.info("%s: read as %s, the colour space its EXR header declares (--plate-colorspace overrides it)",
                     info.path, colorspace)
    if colorspace is None and first.suffix.lower() == DPX:
        from capture.dpx_frames import LOG_TRANSFERS, dpx_spec, dpx_transfer

        if (transfer := dpx_transfer(dpx_spec(first))) in LOG_TRANSFERS:
            log.warning("%s: its DPX header says %s encoding: without a colour space its code values are tracked "
                        "and matched as display values; name it (doppel swap --plate-colorspace, e.g. 'ADX10' or "
                        "'ARRI LogC3 (EI800)') to work in a display view", info.path, transfer.lower())
    return replace(info, colorspace=colorspace)


def iter_plate_frames(info: PlateInfo, start: int = 0, end: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, rgb (H, W, 3) uint8) for frames start <= i < end (end None: to the last), streamed. Frame
    files of more than 8 bits or in EXR, and videos of more than 8 bits or with a colour space: their 8-bit
    display RGB (`capture.frame_files.read_frame`, `capture.plate_colour.display_of_codes`)."""
    from capture.frame_files import read_frame

    end = info.frame_count if end is None else min(end, info.frame_count)
    if info.kind != "video":
        for i in range(start, end):
            rgb = read_frame(info.frames[i], info.colorspace)
            if rgb.shape[:2] != (info.height, info.width):
                raise ValueError(f"{info.frames[i]}: frame decodes to {rgb.shape[1]}x{rgb.shape[0]} px, the plate "
                                 f"is {info.width}x{info.height}")
            yield i, rgb
        return
    if not high_precision(info):
        yield from _video_frames(info, start, end, np.uint8)
        return
    from capture.plate_colour import display_of_codes

    for i, codes in _video_frames(info, start, end, np.uint16):
        yield i, display_of_codes(codes, info.colorspace)


def high_precision(info: PlateInfo) -> bool:
    """Whether a video plate is decoded at 16 bits a sample (and written back merged into those codes): one of
    more than 8 bits, or with a colour space to convert from."""
    return info.kind == "video" and (info.colorspace is not None or
                                     (info.header is not None and info.header.bit_depth > 8))


def _video_frames(info: PlateInfo, start: int, end: int, dtype) -> Iterator[tuple[int, np.ndarray]]:
    """(i, (H, W, 3) RGB of ``dtype``: uint8 or uint16 codes) of a video plate's frames start <= i < end."""
    return read_video_frames(info.path, (info.width, info.height), np.dtype(dtype) == np.uint16, start, end)


def read_video_frames(path: str | os.PathLike, size: tuple[int, int], wide: bool = False, start: int = 0,
                      end: int | None = None, alpha: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """(i, (H, W, 3) RGB) of the video's frames start <= i < end (None: to the last), decoded by ffmpeg as its
    colour tags say, streamed: uint8, or with ``wide`` uint16 codes (``rgb48le``); with ``alpha`` (H, W, 4)
    uint16 RGBA (``rgba64le``). size: (W, H) px as decoded (upright). ValueError naming the frame that could not
    be decoded."""
    import imageio_ffmpeg

    w, h = size
    fmt, c, dtype = ("rgba64le", 4, "<u2") if alpha else ("rgb48le", 3, "<u2") if wide else ("rgb24", 3, np.uint8)
    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt=fmt, bpp=c * np.dtype(dtype).itemsize)
    i = start
    try:
        next(gen)
        for i, buf in enumerate(gen):
            if end is not None and i >= end:
                break
            if i >= start:
                yield i, np.frombuffer(buf, dtype).reshape(h, w, c)
    except RuntimeError as e:
        raise ValueError(f"{path}: video frame {i} could not be decoded ({str(e).splitlines()[0][:160]})") from None
    finally:
        gen.close()


_AUDIO_KEPT = {".mp4": ("aac", "alac", "mp3", "ac3", "eac3", "opus"), ".m4v": ("aac", "alac", "mp3", "ac3", "eac3"),
               ".mov": ("aac", "alac", "mp3", "ac3", "eac3", "pcm_"), ".avi": ("mp3", "ac3", "pcm_s16le", "pcm_u8")}


def _audio_options(source_codec: str | None, suffix: str) -> tuple[str, ...]:
    """How the plate's audio goes into OUT (ffmpeg options): copied when OUT's container holds its codec (an .mkv
    holds any), else re-encoded losslessly where it can be: PCM into an MP4 as ALAC, anything into an MXF as 48 kHz
    24-bit PCM (all MXF holds), the rest into a .mov as PCM, into an MP4 as AAC at 320 kb/s, into an .avi as PCM."""
    suffix, codec = suffix.lower(), source_codec or ""
    if suffix == ".mxf":
        return ("-c:a", "pcm_s24le", "-ar", "48000")
    kept = _AUDIO_KEPT.get(suffix)
    if kept is None or any(codec == k or (k.endswith("_") and codec.startswith(k)) for k in kept):
        return ("-c:a", "copy")
    if suffix in (".mp4", ".m4v"):
        return ("-c:a", "alac") if codec.startswith("pcm_") else ("-c:a", "aac", "-b:a", "320k")
    return ("-c:a", "pcm_s24le") if suffix == ".mov" else ("-c:a", "pcm_s16le")


def plate_kind(path: str | os.PathLike) -> str | None:
    """"frames", "video" or "image": what the plate at ``path`` is by its name (nothing read); None when its name
    says none (``probe_plate`` then refuses it)."""
    path = Path(path)
    if path.is_dir():
        return "frames"
    suffix = path.suffix.lower()
    return "video" if suffix in VIDEO_SUFFIXES else "image" if suffix in IMAGE_SUFFIXES else None


def check_out_name(out: str | os.PathLike, source: PlateInfo | str | None) -> None:
    """ValueError (one line) when ``out`` cannot hold what a plate of ``source``'s kind (its PlateInfo, or
    ``plate_kind``'s answer) writes: a video for a video, an image for an image, a folder of the same file names
    for a frame folder (a folder called ``out.mp4`` would be none of what its name says). For a caller to check
    before its slow work."""
    out, suffix = Path(out), Path(out).suffix.lower()
    kind = source.kind if isinstance(source, PlateInfo) else source
    if kind == "video" and suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"{out}: the plate is a video; give an output video name ({', '.join(VIDEO_SUFFIXES)})")
    if kind == "image" and suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{out}: the plate is an image; give an image name ({', '.join(IMAGE_SUFFIXES)})")
    if kind == "frames" and suffix in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES):
        raise ValueError(f"{out}: the plate is a folder of frames, and so is the output (the plate's file names); "
                         f"give a folder name, not a {suffix} name")


class PlateWriter:
    """Writes frames to ``out`` in the source plate's kind, atomically (a temporary sibling renamed on `close`;
    `abort` removes it). Video: H.264 (x264 at ``crf`` with ``preset``) at the source's fps, yuv420p (10-bit for a
    source of more than 8), or ProRes of the source's profile for a ProRes source written as .mov / .mkv
    (`capture.video_header.video_codec`), converted with the source's colour matrix and range and tagged like it
    (`capture.video_header.encoder_options`), its timecode and audio copied; frames: the source's file names,
    formats and bit depths (`capture.frame_files.write_frame`: a frame left as it was is the source file, copied;
    elsewhere the unchanged pixels keep the source's values); image: the format of ``out``'s suffix (the same
    as the plate's: written like a frame).

    Use as a context manager: an exception inside the block aborts, so ``out`` never holds half a plate.
    before_publish: called with each finished file (the video, the image, or every frame of a folder) while it
    is still under its temporary name, e.g. to watermark and sign it; an exception there aborts too.
    disclosure: ``disclosure(name)`` is called before the first frame of each output file (the video, the image,
    each frame of a folder) with the name it will be published under, and returns None or a pending disclosure
    (`assets.disclosure.begin_disclosure`): every frame of that file goes through its ``mark`` before it is
    encoded, and its ``finish(path)`` signs the finished file before ``before_publish``. The pixels are encoded
    once, marked. A frame of a folder is finished (signed, ``before_publish``) as soon as it is written.

    partial: for a plate of frames, a folder kept between runs to write into instead of a temporary one (a swap's
    checkpoint, `doppel.face_swap.checkpoint`), holding the first ``done`` frames already, each finished; it is
    kept when the writer aborts, so a later run goes on from it."""

    def __init__(self, out: str | os.PathLike, source: PlateInfo, crf: int = H264_CRF, preset: str = H264_PRESET,
                 before_publish: Callable[[Path], None] | None = None, disclosure: Callable[[str], Any] | None = None,
                 partial: str | os.PathLike | None = None, done: int = 0):
        self.out = Path(out)
        self.source = source
        self.before_publish = before_publish
        self.disclosure = disclosure
        self._pending: list[tuple[Path, Any]] = []      # (file as written, its pending disclosure)
        self.count = done
        self._keep = partial is not None
        parent = self.out.parent
        parent.mkdir(parents=True, exist_ok=True)
        check_out_name(self.out, source)
        if partial is not None:
            if source.kind != "frames":
                raise ValueError(f"{self.out}: only a plate of frames can be written over several runs")
            self._tmp = Path(partial)
            self._tmp.mkdir(exist_ok=True)
        elif source.kind == "frames":
            self._tmp = temp_sibling(self.out, directory=True)      # a killed run's is removed by the next
        else:
            self._tmp = temp_sibling(self.out)
        self._video = None
        self._codes = None          # a high-precision video's source codes, read alongside (`_merged`)
        self._alpha = False         # ... with its alpha channel, written back (a ProRes 4444 plate)
        self._crf, self._preset = crf, preset

    def write(self, rgb: np.ndarray) -> None:
        """rgb (H, W, 3) uint8, the source's size."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        if rgb.shape != (self.source.height, self.source.width, 3):
            raise ValueError(f"{self.out}: frame {self.count} is {rgb.shape}, the plate is "
                             f"{(self.source.height, self.source.width, 3)}")
        shown = self._marked(rgb)
        try:
            if self.source.kind == "video":
                self._write_video(rgb, shown)
            else:
                from capture.frame_files import write_frame

                write_frame(self._written(), shown, self.source.frames[self.count if self.source.kind == "frames"
                                                                       else 0], self.source.colorspace, drawn=rgb)
                if self.source.kind == "frames":
                    self._finish_frame(self._written())
        except OSError as e:
            raise_if_disk_full(e, self._written(), self._published())
            raise
        self.count += 1

    def _finish_frame(self, f: Path) -> None:
        """A frame of a folder, written: its pending disclosure signed, then ``before_publish``."""
        for g, pending in self._pending:
            if g == f and pending is not None:
                pending.finish(f)
        self._pending = [(g, p) for g, p in self._pending if g != f]
        if self.before_publish is not None:
            self.before_publish(f)

    def _written(self) -> Path:
        """Where the current frame (a folder's) or the file is being written (its temporary name)."""
        return self._tmp / self.source.frames[self.count].name if self.source.kind == "frames" else self._tmp

    def _published(self) -> Path:
        """The name `_written` will be published under."""
        return self.out / self.source.frames[self.count].name if self.source.kind == "frames" else self.out

    def _marked(self, rgb: np.ndarray) -> np.ndarray:
        """The frame through its file's pending disclosure (begun at the file's first frame), if any."""
        if self.disclosure is None:
            return rgb
        if self.source.kind == "frames":
            name = self.source.frames[self.count].name
            self._pending.append((self._tmp / name, self.disclosure(name)))
        elif not self._pending:
            self._pending.append((self._tmp, self.disclosure(self.out.name)))
        pending = self._pending[-1][1]
        return rgb if pending is None else np.ascontiguousarray(pending.mark(rgb), dtype=np.uint8)

    def _write_video(self, rgb: np.ndarray, shown: np.ndarray) -> None:
        from capture.video_encoder import VideoEncoder

        wide = high_precision(self.source)
        if self._video is None:
            options, vf = encoder_options(self.source.header)    # the plate's colour tags, pixel aspect, timecode
            codec, pix_fmt, codec_options = video_codec(self.source.header, self.out.suffix, self._crf, self._preset,
                                                        (self.source.width, self.source.height))
            self._alpha = ALPHA_PIX_FMTS.match(pix_fmt) is not None
            if has_alpha(self.source.header) and not self._alpha:
                log.warning("%s: the plate's alpha channel (%s) is not carried into %s (only a ProRes 4444 plate "
                            "written as .mov, .mkv or .mxf keeps it)", self.source.path, self.source.header.pix_fmt,
                            self.out.name)
            self._video = VideoEncoder(self._tmp, (self.source.width, self.source.height), self.source.fps, codec,
                                       pix_fmt, codec_options + options + (["-vf", vf] if vf else []),
                                       audio_from=self.source.path if self.source.audio_codec else None,
                                       audio_options=_audio_options(self.source.audio_codec, self.out.suffix),
                                       input_pix_fmt="rgba64le" if self._alpha else "rgb48le" if wide else "rgb24")
            self._codes = read_video_frames(self.source.path, (self.source.width, self.source.height), True,
                                            alpha=self._alpha) if wide or self._alpha else None
        self._video.write(self._merged(rgb, shown) if self._codes is not None else shown)

    def _merged(self, rgb: np.ndarray, shown: np.ndarray) -> np.ndarray:
        """The source frame's 16-bit codes with the swap's frame ``rgb`` (published as ``shown``, with the
        disclosure's marks) merged in: what the swap left alone keeps the plate's precision and encoding
        (`capture.plate_colour.merged_codes`)."""
        from capture.plate_colour import display_of_codes, merged_codes

        try:
            _, codes = next(self._codes)
        except StopIteration:
            raise ValueError(f"{self.source.path}: the plate has fewer frames than {self.count + 1}") from None
        cs = self.source.colorspace
        return merged_codes(codes, display_of_codes(codes[..., :3], cs), rgb, shown, cs)   # alpha kept as it is

    def close(self) -> Path:
        """Finish and move into place; returns ``out``."""
        try:
            self._close_codes()
            if self._video is not None:
                video, self._video = self._video, None
                video.close()
            for f, pending in self._pending:
                if pending is not None:
                    pending.finish(f)
            if self.before_publish is not None and self.source.kind != "frames":    # frames: as they are written
                self.before_publish(self._tmp)
        except BaseException as e:
            self.abort()
            if isinstance(e, OSError):            # named by the file it is published as
                name = Path(e.filename) if e.filename is not None else self._tmp
                frame = self.source.kind == "frames" and e.filename is not None
                raise_if_disk_full(e, name, self.out / name.name if frame else self.out)
            raise
        if self.source.kind == "frames":
            if self.out.exists():
                shutil.rmtree(self.out) if self.out.is_dir() else self.out.unlink()
            self._tmp.rename(self.out)
        else:
            os.replace(self._tmp, self.out)
        return self.out

    def _close_codes(self) -> None:
        if self._codes is not None:
            self._codes.close()
            self._codes = None

    def abort(self) -> None:
        self._close_codes()
        if self._video is not None:
            self._video.abort()
            self._video = None
        if self._keep:
            return
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp, ignore_errors=True)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> PlateWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
