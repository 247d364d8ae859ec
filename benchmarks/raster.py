"""Rasterizer benchmark (issue 3): the virtual actor (~27k triangles) on 2 CPU threads.

Prints ms per frame at 512x512 and 2048x2048 (rasterize: face index + differentiable barycentrics + depth;
and a full shaded, textured render_mesh preview at 512), each idle and with one core kept busy by a process
the benchmark starts and stops (benchmarks/_contention.py), the peak extra memory (process peak RSS growth,
measured in a fresh child process per size), the 4096x4096 memory bound, the ratio against pytorch3d's
rasterizer when pytorch3d is importable, and CUDA batch throughput when a CUDA device exists.

    PYTHONPATH=. python benchmarks/raster.py [--repeats 10]                     # as a user's script runs
    DOPPEL_NO_TUNING=1 PYTHONPATH=. python benchmarks/raster.py --repeats 3     # OpenMP's busy-waiting default
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _contention  # first third-party import: Doppel's core before torch (benchmarks/_contention.py)
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _camera(size: int, n_views: int = 1, close: bool = False):
    from capture import Camera

    if close:  # the torso fills the frame: every pixel covered
        return Camera.look_at((0.0, 1.15, 0.75), (0.0, 1.15, 0.0), width=size, height=size, fov_y_deg=30.0)
    if n_views == 1:
        return Camera.look_at((0.0, 0.95, 3.4), (0.0, 0.9, 0.0), width=size, height=size, fov_y_deg=34.0)
    return Camera.orbit(n_views, (0.0, 0.9, 0.0), 3.4, 0.05, width=size, height=size, fov_y_deg=34.0)


def _load(path):
    import torch

    d = np.load(path)
    return torch.from_numpy(d["v"]), torch.from_numpy(d["f"])


def _time(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts), min(ts)


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(path: str, size: int, what: str) -> None:
    """Run one rasterization in this fresh process; print the peak resident-memory growth during the call
    (MiB, sampled every millisecond from /proc/self/statm) and the process peak RSS, as JSON."""
    import threading

    import torch

    torch.set_num_threads(2)
    from neural_render import rasterize, render_mesh

    v, f = _load(path)
    cam = _camera(size, close=what == "close")
    with torch.no_grad():
        rasterize(v, f, _camera(64))  # imports and first-call allocations, at a tiny size
    base = _rss_mib()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.001)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = render_mesh(v, f, cam) if what == "render" else rasterize(v, f, cam)
    ms = (time.perf_counter() - t0) * 1000
    peak[0] = max(peak[0], _rss_mib())
    done.set()
    th.join()
    cover = float(out.mask.float().mean()) if what != "render" else None
    del out
    print(json.dumps({"size": size, "peak_extra_mib": peak[0] - base, "ms": ms, "coverage": cover,
                      "process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _child_run(path, size, what="raster", env=None):
    out = subprocess.run([sys.executable, __file__, "--child", path, str(size), what], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--child", nargs=3)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    from _contention import machine_line

    from doppel.virtual_actor import build_virtual_actor

    actor = build_virtual_actor(0, texture_size=512)
    tmp = tempfile.mkdtemp(prefix="doppel_raster_bench_")
    path = str(Path(tmp) / "actor.npz")
    np.savez(path, v=actor.vertices, f=actor.faces)
    import torch

    torch.set_num_threads(2)
    print(f"{machine_line()} | CUDA: {torch.cuda.is_available()} | {platform.processor() or platform.machine()}")
    print(f"mesh: virtual actor seed 0, {len(actor.vertices)} vertices, {len(actor.faces)} triangles")
    _speed(actor, args.repeats)
    _memory(path)
    _peers(torch.from_numpy(actor.vertices), torch.from_numpy(actor.faces))


def _speed(actor, repeats: int) -> None:
    """Wall ms per call, idle and with one core busy (medians and best), on 2 threads and on 1."""
    import torch
    from _contention import table, time_idle_and_busy

    from neural_render import rasterize, render_mesh, soft_silhouette

    v, f = torch.from_numpy(actor.vertices), torch.from_numpy(actor.faces)
    uvs, fuv, tex = (torch.from_numpy(actor.uvs), torch.from_numpy(actor.face_uvs), torch.from_numpy(actor.texture))

    def silhouette_step():
        with torch.enable_grad():
            vg = v.clone().requires_grad_(True)
            soft_silhouette(vg, f, _camera(512)).sum().backward()

    c512, c2048 = _camera(512), _camera(2048)
    fns = {"rasterize 512x512": lambda: rasterize(v, f, c512),
           "rasterize 512x512 cull_backfaces": lambda: rasterize(v, f, c512, cull_backfaces=True),
           "render_mesh 512x512 (textured, shaded)": lambda: render_mesh(v, f, c512, uvs=uvs, face_uvs=fuv,
                                                                         texture=tex),
           "soft_silhouette 512x512 fwd + bwd": silhouette_step}
    big = {"rasterize 2048x2048": lambda: rasterize(v, f, c2048),
           "rasterize 2048x2048 cull_backfaces": lambda: rasterize(v, f, c2048, cull_backfaces=True)}
    for threads in (2, 1):
        torch.set_num_threads(threads)
        with torch.no_grad():
            rows = time_idle_and_busy(fns, repeats=max(1, repeats // 2), blocks=2)
            rows.update(time_idle_and_busy(big, repeats=2, blocks=2))
        print(f"\n{threads} thread(s), wall ms (load average {_contention.load_average()}):")
        print(table(rows))
    torch.set_num_threads(2)
    with torch.no_grad():
        fr = rasterize(v, f, c512)
    print(f"coverage of the benchmark view: {float(fr.mask.float().mean()) * 100:.1f} % of pixels")


def _memory(path: str) -> None:
    for size, what in ((512, "raster"), (2048, "raster"), (4096, "raster"), (4096, "close")):
        r = _child_run(path, size, what)
        print(f"peak memory, rasterize {size}x{size}{' close-up' if what == 'close' else ''} (fresh process, "
              f"{r['coverage'] * 100:.0f} % of pixels covered): +{r['peak_extra_mib']:.0f} MiB resident during the "
              f"call (process peak RSS {r['process_peak_rss_mib']:.0f} MiB), {r['ms']:.0f} ms (first call)")


def _peers(v, f) -> None:
    """pytorch3d's rasterizer (when importable) and CUDA batch throughput (when a device exists)."""
    import torch

    from neural_render import pytorch3d_available, rasterize

    if pytorch3d_available():
        cam = _camera(512)
        with torch.no_grad():
            p3, _ = _time(lambda: rasterize(v, f, cam, backend="pytorch3d"), 3)
            ours, _ = _time(lambda: rasterize(v, f, cam), 3)
        print(f"pytorch3d rasterizer 512x512: median {p3:.1f} ms vs Doppel {ours:.1f} ms in the same run: "
              f"{p3 / ours:.1f}x")
    else:
        print("pytorch3d: not importable here, no ratio measured")
    if not torch.cuda.is_available():
        print("CUDA: no device here, batch throughput not measured")
        return
    dev = torch.device("cuda")
    vc, fc = v.to(dev), f.to(dev)
    print(f"GPU: {torch.cuda.get_device_name(dev)}")
    for size in (512, 2048):
        cams = _camera(size, 16).to(device=dev)

        def run(cams=cams):
            rasterize(vc, fc, cams)
            torch.cuda.synchronize()

        with torch.no_grad():
            med, _ = _time(run, 5)
        print(f"CUDA batch of 16 views {size}x{size}: {16000 / med:.0f} views/s ({med:.1f} ms per batch)")


if __name__ == "__main__":
    main()
