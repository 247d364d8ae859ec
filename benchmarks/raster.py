"""Rasterizer benchmark (issue 3): the virtual actor (~27k triangles) on 2 CPU threads.

Prints ms per frame at 512x512 and 2048x2048 (rasterize: face index + differentiable barycentrics + depth;
and a full shaded, textured render_mesh preview at 512), the peak extra memory (process peak RSS growth,
measured in a fresh child process per size), the 4096x4096 memory bound, the ratio against pytorch3d's
rasterizer when pytorch3d is importable, and CUDA batch throughput when a CUDA device exists.

    PYTHONPATH=. python benchmarks/raster.py [--repeats 10]
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


def child_timing(path: str, size: int) -> None:
    """Time rasterize at ``size`` on 2 threads in this fresh process (its environment chosen by the parent)."""
    import torch

    torch.set_num_threads(2)
    from neural_render import rasterize

    v, f = _load(path)
    cam = _camera(size)
    with torch.no_grad():
        med, best = _time(lambda: rasterize(v, f, cam), 10 if size == 512 else 3)
    print(json.dumps({"median": med, "best": best}))


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
        if args.child[2] == "timing":
            child_timing(args.child[0], int(args.child[1]))
        else:
            child(args.child[0], int(args.child[1]), args.child[2])
        return
    import torch

    torch.set_num_threads(2)
    from doppel.virtual_actor import build_virtual_actor
    from neural_render import pytorch3d_available, rasterize, render_mesh

    actor = build_virtual_actor(0, texture_size=512)
    tmp = tempfile.mkdtemp(prefix="doppel_raster_bench_")
    path = str(Path(tmp) / "actor.npz")
    np.savez(path, v=actor.vertices, f=actor.faces)
    v, f = torch.from_numpy(actor.vertices), torch.from_numpy(actor.faces)
    uvs, fuv, tex = (torch.from_numpy(actor.uvs), torch.from_numpy(actor.face_uvs), torch.from_numpy(actor.texture))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; CUDA: {torch.cuda.is_available()}")
    print(f"mesh: virtual actor seed 0, {len(v)} vertices, {len(f)} triangles")
    print(f"load average at start: {os.getloadavg()[0]:.1f} (other processes share these {os.cpu_count()} cores)")
    from neural_render import soft_silhouette

    def measure(label, fn, repeats):
        """Wall time (median, best) and CPU time of this process (median), in ms per call."""
        with torch.no_grad():
            fn()
            wall, cpu = [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
        print(f"{label}, {torch.get_num_threads()} thread(s): wall median {statistics.median(wall):.1f} ms, "
              f"best {min(wall):.1f} ms; CPU time median {statistics.median(cpu):.1f} ms")

    def silhouette_step():
        with torch.enable_grad():
            vg = v.clone().requires_grad_(True)
            soft_silhouette(vg, f, _camera(512)).sum().backward()

    for threads in (2, 1):
        torch.set_num_threads(threads)
        for size in (512, 2048):
            cam = _camera(size)
            reps = args.repeats if size == 512 else 3
            measure(f"rasterize {size}x{size}", lambda cam=cam: rasterize(v, f, cam), reps)
            measure(f"rasterize {size}x{size} cull_backfaces=True (the actor is closed)",
                    lambda cam=cam: rasterize(v, f, cam, cull_backfaces=True), reps)
        measure("render_mesh 512x512 (textured, mip-mapped, shaded)",
                lambda: render_mesh(v, f, _camera(512), uvs=uvs, face_uvs=fuv, texture=tex), 5)
        measure("soft_silhouette 512x512 forward + backward", silhouette_step, 3)
    for size in (512, 2048):
        r = _child_run(path, size, "timing", env={"OMP_WAIT_POLICY": "PASSIVE"})
        print(f"rasterize {size}x{size}, 2 threads, OMP_WAIT_POLICY=PASSIVE (fresh process): wall median "
              f"{r['median']:.1f} ms, best {r['best']:.1f} ms")
    with torch.no_grad():
        fr = rasterize(v, f, _camera(512))
    print(f"coverage of the benchmark view: {float(fr.mask.float().mean()) * 100:.1f} % of pixels")
    torch.set_num_threads(2)
    for size, what in ((512, "raster"), (2048, "raster"), (4096, "raster"), (4096, "close")):
        r = _child_run(path, size, what)
        print(f"peak memory, rasterize {size}x{size}{' close-up' if what == 'close' else ''} (fresh process, "
              f"{r['coverage'] * 100:.0f} % of pixels covered): +{r['peak_extra_mib']:.0f} MiB resident during the "
              f"call (process peak RSS {r['process_peak_rss_mib']:.0f} MiB), {r['ms']:.0f} ms (first call)")
    if pytorch3d_available():
        for size in (512,):
            cam = _camera(size)
            with torch.no_grad():
                p3, _ = _time(lambda cam=cam: rasterize(v, f, cam, backend="pytorch3d"), 3)
                ours, _ = _time(lambda cam=cam: rasterize(v, f, cam), 3)
            print(f"pytorch3d rasterizer {size}x{size}: median {p3:.1f} ms vs Doppel {ours:.1f} ms in the same run: "
                  f"{p3 / ours:.1f}x")
    else:
        print("pytorch3d: not importable here, no ratio measured")
    if torch.cuda.is_available():
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
    else:
        print("CUDA: no device here, batch throughput not measured")


if __name__ == "__main__":
    main()
