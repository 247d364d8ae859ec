"""Does a plate passed through Doppel look like the plate? Colour encoding, tags, bit depth and timecode.

A swap writes every frame of the plate back (frames without the face unchanged). The frames go through RGB, so
the output looks like the plate only if it is encoded with the plate's colour matrix and range and tagged like
it: a player decodes each file by its tags, and an untagged HD file as BT.709 (untagged SD as BT.601). This
script makes 1280x720 and 640x360 plates of ffmpeg's testsrc2 pattern (saturated colours, gradients, text) in
common encodings, passes every frame through `capture.plate_io.PlateWriter` as a swap does where there is no face,
and prints how far a player's view of the output is from its view of the plate (grey levels, mean and 99th
percentile over all pixels and channels), for the writer as it is and for the writer given no header (what it
did before stop 46: untagged, ffmpeg's BT.601 default), side by side in one run.

    PYTHONPATH=. python benchmarks/plate_fidelity.py [--frames 24]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

PLATES = {   # name: (size, setparams tags or "", pixel format)
    "untagged SD 640x360": ("640x360", "", "yuv420p"),
    "untagged HD": ("1280x720", "", "yuv420p"),
    "BT.709 HD": ("1280x720", "colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv", "yuv420p"),
    "BT.709 full range": ("1280x720", "colorspace=bt709:range=pc", "yuv420p"),
    "BT.601 (smpte170m) HD": ("1280x720", "colorspace=smpte170m:color_primaries=smpte170m:color_trc=smpte170m:"
                              "range=tv", "yuv420p"),
    "BT.2020 PQ 10-bit": ("1280x720", "colorspace=bt2020nc:color_primaries=bt2020:color_trc=smpte2084:range=tv",
                          "yuv420p10le"),
}
_SWSCALE = {"bt709": "bt709", "smpte170m": "bt601", "bt470bg": "bt601", "bt2020nc": "bt2020", "fcc": "fcc",
            "smpte240m": "smpte240m"}


def make_plate(path: Path, size: str, tags: str, pix_fmt: str, frames: int) -> None:
    import imageio_ffmpeg

    vf = ["-vf", f"setparams={tags}"] if tags else []
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=24", "-frames:v", str(frames), *vf, "-c:v", "libx264", "-crf", "12",
                    "-pix_fmt", pix_fmt, "-timecode", "01:00:00:00", str(path)], check=True)


def player_view(path: Path, header, width: int) -> np.ndarray:
    """Every frame as a player decodes it: by the file's tags; untagged, BT.709 when HD (>= 1280 px), else BT.601."""
    import imageio_ffmpeg

    matrix = _SWSCALE.get(header.colour.get("colorspace", ""), "bt709" if width >= 1280 else "bt601")
    rng = header.colour.get("range", "tv")
    res = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf",
                          f"scale=in_color_matrix={matrix}:in_range={rng}", "-f", "rawvideo", "-pix_fmt", "rgb48le",
                          "-"], capture_output=True, check=True)
    return np.frombuffer(res.stdout, np.uint16).astype(np.float32) / 257.0


def pass_through(info, out: Path) -> None:
    from capture.plate_io import PlateWriter, iter_plate_frames

    with PlateWriter(out, info) as w:
        for _, rgb in iter_plate_frames(info):
            w.write(rgb)


def main() -> None:
    from capture.plate_io import probe_plate
    from capture.video_header import read_stream_header

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24)
    args = ap.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| plate | kept: colour tags / bit depth / timecode | now: mean / p99 grey levels | "
          "untagged writer: mean / p99 |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (size, tags, pix_fmt) in PLATES.items():
            src = Path(tmp) / "plate.mp4"
            make_plate(src, size, tags, pix_fmt, args.frames)
            info = probe_plate(src)
            ref = player_view(src, info.header, info.width)
            row = []
            for writer_info in (info, dataclasses.replace(info, header=None)):
                out = Path(tmp) / "out.mp4"
                pass_through(writer_info, out)
                got = read_stream_header(out)
                err = np.abs(player_view(out, got, info.width) - ref)
                row.append((got, f"{err.mean():.2f} / {np.percentile(err, 99):.1f}"))
            got = row[0][0]
            kept = (f"{'yes' if got.colour == info.header.colour else 'NO'} / "
                    f"{'yes' if got.bit_depth == info.header.bit_depth else 'NO'} ({got.bit_depth}) / "
                    f"{'yes' if got.timecode == info.header.timecode else 'NO'}")
            print(f"| {name} | {kept} | {row[0][1]} | {row[1][1]} |", flush=True)


if __name__ == "__main__":
    main()
