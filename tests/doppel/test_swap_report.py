"""swap_report.html's head and charts, from a SwapResult made here (no swap runs): why frames passed through, the
charts' axes (values, the flag limit, the plate's frame numbers) and marks, no "nan" in the table."""

from __future__ import annotations

import re

import cv2
import numpy as np

from capture.plate_io import probe_plate
from doppel.face_swap.report import write_report
from doppel.face_swap.swap import FLAG_ERROR, NOT_BRIDGED, FrameQC, SwapConfig, SwapResult
from reconstruction.head_tracking import HeadTrack


def _result(tmp_path) -> SwapResult:
    """Frames 10-15 of a plate: 11 flagged (tracking error over the limit), 12 lost by the detector and not bridged,
    14 without a face."""
    frames = [FrameQC(10, True, 0.03, 0.02, 0.8), FrameQC(11, True, 0.09, FLAG_ERROR + 0.02, 0.7, flags=["tracking"]),
              FrameQC(12, False, flags=[f"{NOT_BRIDGED}: the head turns 40 degrees across it: passed through"]),
              FrameQC(13, True, 0.03, 0.02, 0.75), FrameQC(14, False), FrameQC(15, True, 0.02, 0.01, 0.8)]
    valid = np.array([f.swapped for f in frames])
    track = HeadTrack(np.repeat(np.eye(3)[None], 6, 0), np.tile([0.0, 0.0, 1.0], (6, 1)), np.zeros((6, 0)), valid,
                      np.full(6, 0.02), 500.0)
    return SwapResult(tmp_path / "out", frames, track, (0, 0, 63, 63), 1.0)


def test_the_report_says_why_frames_passed_through_and_its_charts_have_axes(tmp_path):
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"p.{10 + i:04d}.png"), np.zeros((64, 64, 3), np.uint8))
    info = probe_plate(tmp_path)
    path = write_report(tmp_path / "swap_report.html", _result(tmp_path), info, SwapConfig(), tmp_path, tmp_path,
                        tmp_path / "out")
    html = path.read_text()
    assert "2 passed through (no face in 1; in 1, a face the detector lost inside the shot" in html
    assert "nan" not in html.lower()                       # a passed-through frame's cells are dashes
    charts = re.findall(r"<svg.*?</svg>", html)
    assert len(charts) == 3
    ticks = re.findall(r'text-anchor="middle">(\d+)</text>', charts[0])
    assert ticks[0] == "10" and ticks[-1] == "15"           # the plate's frame numbers along x
    assert f">{FLAG_ERROR:.3g}</text>" in charts[0]         # the flag limit, labelled
    assert charts[0].count('fill="#eee"') == 2              # frames 12 and 14 shaded: passed through
    assert charts[0].count('fill="#b00"/>') == 1            # frame 11 dotted red: flagged (12's flag has no value)
    assert ">25%</text>" in charts[2] and ">0%</text>" in charts[2]     # coverage in percent
    # the line breaks at the frames with no value: 10-11 a line, 13 and 15 points of their own
    assert charts[0].count("<polyline") == 1 and charts[0].count('r="1.5"') == 2
