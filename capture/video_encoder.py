"""An ffmpeg process that encodes RGB frames from a pipe, with every audio track of a source video copied.

imageio-ffmpeg's writer copies one audio track; camera originals often carry several (a boom and lavaliers on
separate tracks), and editorial wants them all back. `VideoEncoder` runs the ffmpeg binary of imageio-ffmpeg's wheel
itself: rawvideo frames on stdin, the source's audio streams mapped and copied (``-map 1:a?``), the encoder,
pixel format and options given by the caller, ffmpeg's messages kept in a temporary file and quoted when it fails.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np


class VideoEncoder:
    """Encode (H, W, 3) uint8 RGB frames to ``path`` at ``fps`` (`capture.video_header.exact_rate`). audio_from:
    a video whose audio streams are all mapped (None: no audio), with ``audio_options`` (default: copied as they
    are); codec, pix_fmt: the encoder and its pixel format; options: more output
    options (rate control, tags, ``-vf`` ...); input_pix_fmt: rgb24 (uint8 frames), rgb48le (uint16) or rgba64le
    (uint16 RGBA: a plate's alpha kept; into a pixel format with alpha, each frame's alpha is put on that format's
    grid first, `capture.video_header.alpha_on_grid`, so its codes come back exactly)."""

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float, codec: str, pix_fmt: str,
                 options: list[str] | None = None, audio_from: str | Path | None = None,
                 audio_options: tuple[str, ...] = ("-c:a", "copy"), input_pix_fmt: str = "rgb24"):
        import imageio_ffmpeg

        from capture.video_header import ALPHA_PIX_FMTS, exact_rate

        w, h = size
        self.path, self.size = Path(path), (int(w), int(h))
        self.dtype = np.dtype("<u2" if input_pix_fmt in ("rgb48le", "rgba64le") else np.uint8)
        self.channels = 4 if input_pix_fmt == "rgba64le" else 3
        self._alpha_fmt = pix_fmt if self.channels == 4 and ALPHA_PIX_FMTS.match(pix_fmt) else None
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-v", "error", "-f", "rawvideo",
               "-pix_fmt", input_pix_fmt, "-s", f"{w}x{h}", "-r", str(exact_rate(fps)), "-i", "-"]
        if audio_from is not None:
            cmd += ["-i", str(audio_from)]
        cmd += ["-map", "0:v:0"] + (["-map", "1:a?", *audio_options] if audio_from is not None else [])
        cmd += ["-c:v", codec, "-pix_fmt", pix_fmt, *(options or []), "-f", _muxer(self.path), str(self.path)]
        self._log = tempfile.TemporaryFile("w+", errors="replace")
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def write(self, rgb: np.ndarray) -> None:
        """One frame, (H, W, 3) at the encoder's size: uint8, or uint16 with input_pix_fmt "rgb48le"; (H, W, 4)
        uint16 with "rgba64le"."""
        if rgb.shape != (self.size[1], self.size[0], self.channels):
            raise ValueError(f"{self.path}: frame {rgb.shape}, the encoder takes "
                             f"{(self.size[1], self.size[0], self.channels)}")
        if self._alpha_fmt is not None:
            from capture.video_header import alpha_on_grid

            rgb = alpha_on_grid(rgb, self._alpha_fmt)
        try:
            self._proc.stdin.write(np.ascontiguousarray(rgb, self.dtype).tobytes())
        except BrokenPipeError:
            raise self._failure() from None

    def close(self) -> None:
        """Finish the file; OSError quoting ffmpeg when it failed."""
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        if self._proc.wait() != 0:
            raise self._failure()
        self._log.close()

    def abort(self) -> None:
        """Stop ffmpeg; the file may be incomplete (the caller removes it)."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if not self._log.closed:
            self._log.close()

    def _failure(self) -> OSError:
        """The error to raise, with ffmpeg's last message; ffmpeg stopped."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._log.seek(0)
        lines = [ln.strip() for ln in self._log if ln.strip()]
        self._log.close()
        from core.stage_folders import shown_path

        return OSError(f"{shown_path(self.path)}: ffmpeg could not encode the video "
                       f"({lines[-1][:200] if lines else 'no message'})")


def _muxer(path: Path) -> str:
    """ffmpeg's muxer for an output name (the temporary name may not end like the final one)."""
    return {".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".m4v": "mp4", ".mxf": "mxf"}.get(path.suffix.lower(),
                                                                                                "mp4")
