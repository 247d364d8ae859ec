"""What `doppel render shot --resume` saves: a shot killed (SIGKILL) part-way, then resumed, against the same shot
uninterrupted, in one run.

The double: a `doppel demo` output folder (its neural model, capture calibration, rig and retargeted clip). Each
shot is the `doppel render shot` command in a child process, as a user runs it; the killed one is killed once its
checkpoint holds the given fraction of the frames. Prints the uninterrupted time, the time the killed run had
spent, the resumed run's time, the frames the checkpoint kept, and whether the resumed shot's PNGs, EXRs and
movies equal the uninterrupted one's pixel for pixel (outside a workspace: no per-run watermark).

    PYTHONPATH=. python benchmarks/shot_resume.py --demo DEMO_OUT [--frames 24] [--camera ring00 --camera ring03]
        [--size 512] [--kill-at 0.5] [--work DIR]
"""
# make bench: needs inputs (see the docstring's command line); `make bench` lists it and does not run it

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from _killed_runs import killed, timed


def shot_cmd(demo: Path, cameras: list[str], frames: int, size: int, out: Path, resume: bool = False) -> list[str]:
    cams = [x for c in cameras for x in ("--camera", c)]
    return [sys.executable, "-m", "doppel", "render", "shot", str(demo / "neural"), "--cameras",
            str(demo / "capture" / "session" / "calibration.json"), *cams, "--rig", str(demo / "rig"), "--anim",
            str(demo / "retarget"), "--frames", f"0:{frames}", "--size", str(size), "--out", str(out),
            *(["--resume"] if resume else [])]


def same_shot(a: Path, b: Path) -> bool:
    import imageio.v3 as iio
    import numpy as np

    from neural_render.image_io import read_exr

    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.suffix in (".png", ".exr", ".mp4"))
    if files != sorted(p.relative_to(b) for p in b.rglob("*") if p.suffix in (".png", ".exr", ".mp4")):
        return False
    read = {".png": iio.imread, ".exr": read_exr, ".mp4": lambda p: np.stack(list(iio.imiter(p)))}
    return all(np.array_equal(read[f.suffix](a / f), read[f.suffix](b / f)) for f in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, required=True, help="a `doppel demo --out` folder")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--camera", action="append", default=None)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--kill-at", type=float, default=0.5, help="fraction of the frames written when killed")
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args()
    cams = a.camera or ["ring00", "ring03"]
    work = a.work or Path(tempfile.mkdtemp(prefix="shot_resume_"))
    total = a.frames * len(cams)
    whole = timed(shot_cmd(a.demo, cams, a.frames, a.size, work / "whole"))
    out = work / "out"
    ck = out.parent / f".{out.name}.shot.checkpoint"
    at = max(1, int(total * a.kill_at))
    frames = ck / out.name
    ran = killed(shot_cmd(a.demo, cams, a.frames, a.size, out),
                 lambda: frames.is_dir() and len(list(frames.glob("*/*.exr"))) >= at)
    kept = sum(json.loads((ck / "shot.json").read_text())["done"].values()) if (ck / "shot.json").is_file() else 0
    resumed = timed(shot_cmd(a.demo, cams, a.frames, a.size, out, resume=True))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {a.frames} frames x "
          f"{len(cams)} cameras at {a.size} px, killed once {at} of {total} frames were written")
    print(f"uninterrupted shot: {whole:.1f} s")
    print(f"killed run: {ran:.1f} s; its checkpoint kept {kept} frame(s)")
    print(f"resumed run: {resumed:.1f} s ({resumed / whole:.0%} of the uninterrupted shot; killed + resumed "
          f"{ran + resumed:.1f} s, against {ran + whole:.1f} s starting over)")
    same = same_shot(out, work / "whole")
    print(f"resumed shot's PNGs, EXRs and movies identical to the uninterrupted shot's: {same}")


if __name__ == "__main__":
    main()
