"""Does `doppel swap` stream its plate? Peak memory of the swap against the plate's length, at 4K.

The issue: "Frames are streamed: a 4K, 10-minute plate never sits in memory." A 4K frame is 24 MiB (RGB, 8 bit),
so a swap that kept its plate would grow by that per frame. This script writes 4K plates of different lengths
(the astronaut moved by smooth warps, as the face-swap benchmark's real-photo plates; written frame by frame),
runs the `doppel swap` command on each in a child process as a user would, samples the resident memory of the
child and of its whole process tree (the ffmpeg decoders and encoder included) every 50 ms, and prints the peaks,
the swap process's peak in each quarter of its run, the growth per frame between the two longest plates, and that
growth carried to 10 minutes at 24 fps.

    PYTHONPATH=. python benchmarks/swap_memory.py [--frames 24,96,240] [--size 3840x2160] [--work DIR] [--neural]
        [--swap-args '--head-px 0']

--neural: the head is drawn by a neural double (`--double MODEL --rig RIG`) with `doppel render train`'s
default architecture, untrained (an untrained model costs what a trained one of that architecture does).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import core  # noqa: F401  (before torch: OpenMP's passive wait policy for the neural double built here)

MIB = 2 ** 20


def write_plate(path: Path, width: int, height: int, frames: int, fps: float = 24.0) -> None:
    """A plate of ``frames`` frames (width x height): the astronaut, ``height`` px tall, on a grey canvas, moved
    by `plate_from_still`'s warps; encoded frame by frame (never all in memory)."""
    import cv2
    import imageio_ffmpeg
    import numpy as np
    import skimage.data

    from doppel.face_swap.stills import plate_from_still

    face = cv2.resize(skimage.data.astronaut(), (height, height), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((height, width, 3), 60, np.uint8)
    x0 = (width - height) // 2
    canvas[:, x0:x0 + height] = face
    wr = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, macro_block_size=1, quality=8,
                                     ffmpeg_log_level="error")
    wr.send(None)
    for f in plate_from_still(canvas, frames, seed=1, strength=0.5):
        wr.send(np.ascontiguousarray(f))
    wr.close()


def tree_rss(proc) -> tuple[int, int]:
    """(resident bytes of ``proc``, of ``proc`` and all its descendants)."""
    import psutil

    try:
        own = proc.memory_info().rss
        kids = sum(c.memory_info().rss for c in proc.children(recursive=True) if c.is_running())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0, 0
    return own, own + kids


def untrained_neural_double(rig: Path, out: Path) -> Path:
    """A neural double of ``rig``'s topology with `doppel render train`'s default architecture (TrainRequest's
    texture sizes and supersampling), its RGB prior a flat skin tone, saved to ``out`` (untrained)."""
    import torch

    from doppel.render_stage import TrainRequest
    from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig, save_model
    from rigging import Rig

    if (out / "model.safetensors").is_file():
        return out
    r, req = Rig.load(rig), TrainRequest.__dataclass_fields__
    cfg = NeuralDoubleConfig(texture_size=req["texture_size"].default, supersample=req["supersample"].default,
                             rgb_texture_size=req["rgb_texture_size"].default)
    model = NeuralDouble(cfg, torch.as_tensor(r.faces), torch.as_tensor(r.uvs, dtype=torch.float32),
                         torch.as_tensor(r.face_uvs), torch.as_tensor(r.vertices))
    model.init_from_bake(torch.tensor([0.6, 0.4, 0.3]).expand(256, 256, 3))
    return save_model(out, model)


def run_swap(plate: Path, rig: Path, out: Path, model: Path | None = None, extra: list[str] | None = None) -> dict:
    """`doppel swap PLATE --double RIG --out OUT` (``model``: `--double MODEL --rig RIG`) in a child process; wall
    seconds, peak resident memory, and the peak of the swap process in each quarter of the run (a plate kept in
    memory, or memory that creeps up, shows as quarters rising one after the other; a bounded process as
    quarters that level off). extra: more `doppel swap` options."""
    import psutil

    double = ["--double", str(rig)] if model is None else ["--double", str(model), "--rig", str(rig)]
    cmd = [sys.executable, "-m", "doppel", "swap", str(plate), *double, "--out", str(out), "--force", *(extra or [])]
    t = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    samples: list[tuple[float, int]] = []
    peak_tree = 0
    while child.poll() is None:
        own, tree = tree_rss(proc)
        samples.append((time.perf_counter() - t, own))
        peak_tree = max(peak_tree, tree)
        time.sleep(0.05)
    wall = time.perf_counter() - t
    err = child.stderr.read()
    if child.returncode != 0:
        raise RuntimeError(f"doppel swap failed ({child.returncode}): {err[-2000:]}")
    peak_own = max((r for _, r in samples), default=0)
    at = next((s for s, r in samples if r == peak_own), 0.0)
    quarters = [max((r for s, r in samples if q * wall / 4 <= s < (q + 1) * wall / 4), default=0) / MIB
                for q in range(4)]
    return {"wall_s": wall, "peak_own_mib": peak_own / MIB, "peak_tree_mib": peak_tree / MIB, "peak_at": at / wall,
            "quarters_mib": quarters}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", default="24,96,240", help="plate lengths, comma-separated (default 24,96,240)")
    ap.add_argument("--size", default="3840x2160", help="plate size WxH (default 3840x2160)")
    ap.add_argument("--work", type=Path, help="keep plates, rig and outputs here (default: a temporary folder)")
    ap.add_argument("--neural", action="store_true", help="draw the head with an (untrained) neural double")
    ap.add_argument("--swap-args", default="", help="more `doppel swap` options, e.g. '--head-px 0'")
    args = ap.parse_args()
    width, height = (int(x) for x in args.size.lower().split("x"))
    lengths = sorted(int(x) for x in args.frames.split(","))
    work = args.work or Path(tempfile.mkdtemp(prefix="swap_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    rig = work / "rig"
    if not (rig / "rig.npz").is_file():
        subprocess.run([sys.executable, "-m", "doppel", "rig", "--out", str(rig), "--force"], check=True,
                       stdout=subprocess.DEVNULL)
    model = untrained_neural_double(rig, work / "neural_double") if args.neural else None
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d %H:%M %Z')}; "
          f"plates {width}x{height} at 24 fps, `doppel swap` defaults, head drawn by the "
          f"{'neural double' if model else 'textured rig'} {args.swap_args}")
    print("| frames | wall s | frames/s | peak RSS, swap process (MiB) | when (share of the run) "
          "| peak RSS, with ffmpeg (MiB) | swap process's peak in each quarter of the run (MiB) |")
    print("|---|---|---|---|---|---|---|")
    rows = {}
    for n in lengths:
        plate = work / f"plate_{n}.mp4"
        if not plate.is_file():
            write_plate(plate, width, height, n)
        r = rows[n] = run_swap(plate, rig, work / f"out_{n}{'_neural' if model else ''}.mp4", model,
                                  shlex.split(args.swap_args))
        print(f"| {n} | {r['wall_s']:.1f} | {n / r['wall_s']:.2f} | {r['peak_own_mib']:.0f} | {r['peak_at']:.0%} | "
              f"{r['peak_tree_mib']:.0f} | {' / '.join(f'{q:.0f}' for q in r['quarters_mib'])} |", flush=True)
    if len(lengths) > 1:      # the two longest: the shortest plate's peak is still the allocators' warm-up
        a, b = lengths[-2], lengths[-1]
        per = (rows[b]["peak_own_mib"] - rows[a]["peak_own_mib"]) / (b - a)
        frame_mib = width * height * 3 / MIB
        print(f"growth of the swap process's peak between {a} and {b} frames: {per:+.2f} MiB per frame (one "
              f"{width}x{height} RGB frame is {frame_mib:.1f} MiB); at that rate 10 minutes at 24 fps (14400 "
              f"frames) would peak at {rows[b]['peak_own_mib'] + max(per, 0.0) * (14400 - b):.0f} MiB")


if __name__ == "__main__":
    main()
