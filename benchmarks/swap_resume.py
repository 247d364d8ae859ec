"""What `doppel swap --resume` saves: a swap of a plate of frames killed (SIGKILL) part-way, then resumed, against the
same swap uninterrupted, in one run.

The plate: the astronaut moved by smooth warps (`doppel.face_swap.stills.plate_from_still`), written as PNG
frames at the given size. Each swap is the `doppel swap` command in a child process, as a user runs it; the killed
one is killed once its checkpoint holds the given fraction of the frames. Prints the uninterrupted time, the time
the killed run had spent, the resumed run's time, the frames the checkpoint kept, and whether the resumed plate's
frames equal the uninterrupted one's (outside a workspace: no per-run watermark).

    PYTHONPATH=. python benchmarks/swap_resume.py [--frames 48] [--size 1920x1080] [--kill-at 0.5] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from _killed_runs import killed, timed


def write_plate(folder: Path, width: int, height: int, frames: int) -> None:
    import cv2
    import numpy as np
    import skimage.data

    from doppel.face_swap.stills import plate_from_still

    folder.mkdir(parents=True)
    side = min(width, height)
    still = cv2.resize(skimage.data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 128, np.uint8)
    for i, f in enumerate(plate_from_still(still, frames, seed=0, strength=0.2)):
        canvas[:, (width - side) // 2:(width - side) // 2 + side] = f
        cv2.imwrite(str(folder / f"sh010.{1001 + i}.png"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))


def swap_cmd(plate: Path, rig: Path, out: Path, resume: bool = False) -> list[str]:
    return [sys.executable, "-m", "doppel", "swap", str(plate), "--double", str(rig), "--out", str(out),
            *(["--resume"] if resume else [])]


def same_frames(a: Path, b: Path) -> bool:
    return sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in os.listdir(a))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--kill-at", type=float, default=0.5, help="fraction of the frames written when killed")
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    work = a.work or Path(tempfile.mkdtemp(prefix="swap_resume_"))
    from doppel.doubles import build_default_rig

    rig_dir = work / "rig"
    rig, params, _ = build_default_rig("anny", seed=3)
    rig.save(rig_dir, params=params)
    plate = work / "plate"
    write_plate(plate, w, h, a.frames)
    whole = timed(swap_cmd(plate, rig_dir, work / "whole"))
    out = work / "out"
    ck = out.parent / f".{out.name}.swap.checkpoint"
    at, frames = max(1, int(a.frames * a.kill_at)), ck / out.name       # the frames written, under OUT's name
    ran = killed(swap_cmd(plate, rig_dir, out), lambda: frames.is_dir() and len(os.listdir(frames)) >= at)
    kept = json.loads((ck / "comp.json").read_text())["next"] if (ck / "comp.json").is_file() else 0
    resumed = timed(swap_cmd(plate, rig_dir, out, resume=True))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {a.frames} frames "
          f"{w}x{h}, killed once {int(a.frames * a.kill_at)} frames were written")
    print(f"uninterrupted swap: {whole:.1f} s")
    print(f"killed run: {ran:.1f} s; its checkpoint kept the tracking and {kept} frame(s)")
    print(f"resumed run: {resumed:.1f} s ({resumed / whole:.0%} of the uninterrupted swap; killed + resumed "
          f"{ran + resumed:.1f} s, against {ran + whole:.1f} s starting over)")
    print(f"resumed plate's frames identical to the uninterrupted swap's: {same_frames(out, work / 'whole')}")


if __name__ == "__main__":
    main()
