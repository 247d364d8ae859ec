"""BVH parse (and write) speed: 10,000 frames of a 30-joint skeleton (96 channels), from text in memory
and from a file. Prints the best of 5 runs. Goal: parsing well under a second.

    PYTHONPATH=. python benchmarks/bvh.py
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import torch

from mocap_retarget.bvh import format_bvh, parse_bvh, read_bvh
from mocap_retarget.synthetic import WalkSpec, synthetic_walk


def best(fn, n=5):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    torch.set_num_threads(2)
    motion = synthetic_walk(WalkSpec(seconds=10000 / 120, fps=120))
    assert motion.num_joints == 30 and motion.num_frames == 10000
    chans = sum(len(c) for c in motion.channels)
    text = format_bvh(motion, units="cm", precision=4)
    t_write = best(lambda: format_bvh(motion, units="cm", precision=4), n=3)
    t_parse = best(lambda: parse_bvh(text))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "clip.bvh"
        p.write_text(text.replace("\n", "\r\n"), encoding="utf-8")
        t_read = best(lambda: read_bvh(p))
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"clip: {motion.num_frames} frames, {motion.num_joints} joints, {chans} channels, "
          f"{len(text) / 1e6:.1f} MB of text")
    print(f"parse_bvh (text in memory): {t_parse * 1000:.0f} ms  ({motion.num_frames / t_parse:,.0f} frames/s)")
    print(f"read_bvh (file, CRLF):      {t_read * 1000:.0f} ms")
    print(f"format_bvh (write):         {t_write * 1000:.0f} ms")


if __name__ == "__main__":
    main()
