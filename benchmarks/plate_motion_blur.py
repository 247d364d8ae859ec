"""Motion-blurred synthetic plates through Cycles (`doppel capture plate --renderer cycles --shutter DEG`): Cycles'
own motion blur of the performer and the film camera keyed over the open shutter, against the rasterizer's
coverage of the exact performance averaged over that shutter (33 times). Prints, per frame, the coverage (the
EXR's alpha) difference to that average inside the band the shutter changes (|blurred - sharp| > 0.1), for the
sharp Cycles plate and the blurred one, and what a plate frame (plate and ground truth) costs each way here.

    PYTHONPATH=. python benchmarks/plate_motion_blur.py [--size 320x180] [--frames 6] [--samples 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def coverage(P, f: float, times) -> np.ndarray:
    """(H, W) the performer's coverage in plate frame f averaged over ``times`` (frames relative to f): the
    rasterizer's 4x4 supersampled alpha of the exact performance and film camera at each time."""
    import torch

    from doppel.synthetic_plate import _frame
    from neural_render import render_mesh

    out = []
    for t in times:
        fr = _frame(P, f + t)
        with torch.no_grad():
            rgba = render_mesh(torch.as_tensor(fr.verts_b), torch.as_tensor(P.actor_b.faces),
                               fr.cam.to_camera(dtype=torch.float32), supersample=4)
        out.append(rgba[0, ..., 3].numpy())
    return np.mean(out, 0)


def main() -> None:
    import dataclasses

    import core  # noqa: F401 - before torch
    from doppel.cycles_capture import read_exr_rgba
    from doppel.synthetic_plate import PlateConfig, _prepare, parse_size, render_plate
    from doppel.virtual_actor import build_virtual_actor

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="320x180")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--shutter", type=float, default=180.0)
    ap.add_argument("--shutter-samples", type=int, default=8)
    args = ap.parse_args()
    w, h = parse_size(args.size)
    actors = build_virtual_actor(1, texture_size=1024), build_virtual_actor(0, texture_size=1024)
    sharp = PlateConfig(frames=args.frames, width=w, height=h, camera="handheld", renderer="cycles",
                        samples=args.samples, texture_size=1024)
    blurred = dataclasses.replace(sharp, shutter_deg=args.shutter, shutter_samples=args.shutter_samples)
    P = _prepare(sharp, *actors)
    half = args.shutter / 720.0
    with tempfile.TemporaryDirectory() as tmp:
        alphas, seconds = {}, {}
        for name, cfg in (("sharp", sharp), ("blurred", blurred)):
            t0 = time.perf_counter()
            res = render_plate(Path(tmp) / name, cfg, actor_b=actors[0], actor_a=actors[1])
            seconds[name] = (time.perf_counter() - t0) / args.frames
            alphas[name] = [read_exr_rgba(res.out / "plate" / "frames_exr" / f"{f:06d}.exr")[..., 3]
                            for f in range(args.frames)]
    print(f"plate {w}x{h}, {args.frames} frames (handheld camera), Cycles {args.samples} spp, shutter "
          f"{args.shutter:g} degrees keyed at {args.shutter_samples + 1} times")
    print("frame  band px  sharp Cycles err  blurred Cycles err")
    rows = []
    for f in range(args.frames):
        want = coverage(P, f, np.linspace(-half, half, 33))
        band = np.abs(want - coverage(P, f, [0.0])) > 0.1
        if band.sum() == 0:
            continue
        e = [float(np.abs(alphas[k][f] - want)[band].mean()) for k in ("sharp", "blurred")]
        rows.append(e)
        print(f"{f:5d}  {int(band.sum()):7d}  {e[0]:16.3f}  {e[1]:18.3f}")
    m = np.mean(rows, 0)
    print(f"mean   {'':7s}  {m[0]:16.3f}  {m[1]:18.3f}")
    print(f"seconds a plate frame (plate + ground truth): sharp {seconds['sharp']:.1f}, "
          f"blurred {seconds['blurred']:.1f}")


if __name__ == "__main__":
    main()
