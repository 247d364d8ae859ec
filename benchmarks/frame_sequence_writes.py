"""Writing a frame sequence the way a swap or a shot does when it signs each frame: one temporary sibling per frame,
inside the run's own temporary folder. Prints the seconds for N frames (default 4000).

    PYTHONPATH=. python benchmarks/frame_sequence_writes.py [--frames N]

Before stop 55 each temporary sibling listed the whole folder for killed runs' leftovers (N^2/2 names in all).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from core.stage_folders import temp_sibling


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4000)
    n = ap.parse_args().frames
    with tempfile.TemporaryDirectory() as root:
        folder = temp_sibling(Path(root) / "shot", directory=True)
        t = time.perf_counter()
        for i in range(n):
            f = folder / f"sh010.{i + 1001:05d}.png"
            f.write_bytes(b"")
            os.replace(temp_sibling(f), f)
        print(f"frame_sequence_writes: {n} frames, {time.perf_counter() - t:.2f} s "
              f"({(time.perf_counter() - t) / n * 1e3:.2f} ms a frame)")


if __name__ == "__main__":
    main()
