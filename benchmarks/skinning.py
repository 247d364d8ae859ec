"""Rig.pose (LBS and DQS) on the Anny rig vs anny's own forward pass, at batch 1 and 64, 2 CPU threads.

    PYTHONPATH=. python benchmarks/skinning.py [--repeats N] [--device cpu|cuda] [--dtype float32|float64]
        [--tune-process]        # also core.runtime.tune_process() (glibc malloc), as the doppel CLI does
    DOPPEL_NO_TUNING=1 PYTHONPATH=. python benchmarks/skinning.py    # OpenMP's busy-waiting default

Both sides get the same random poses and expressions. anny's forward blends the phenotype blendshapes,
rebuilds the rest skeleton, runs its kinematics and skins (its default skinning: NVIDIA warp LBS when warp
is installed, else torch LBS; its torch 'lbs' and 'dqs' are timed too); Rig.pose starts from the baked
bind mesh. "Rig.pose lbs" is what callers get without autograd on the CPU (the fused numba kernel,
rigging/lbs_kernel.py); "Rig.pose lbs, torch path" is the differentiable path. Every candidate is timed
once per round, round after round (so all see the same load on a shared machine); times are the median
and minimum over rounds, in milliseconds; the ratio is anny's median time over the candidate's. On the CPU
the rounds run idle and with one core kept busy by a process the benchmark starts and stops
(benchmarks/_contention.py); both are printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import _contention  # first third-party import: Doppel's core before torch (benchmarks/_contention.py)
import torch

# --tune-process: malloc keeps freed memory as in the doppel CLI (core/runtime.py); the OpenMP policy is
# already set by the import above, as in any script that imports a Doppel package before torch
TUNED = None
if "--tune-process" in sys.argv:
    from core.runtime import tune_process

    TUNED = tune_process()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--tune-process", action="store_true",
                    help="call core.runtime.tune_process() (glibc malloc keeps freed memory) as the doppel CLI does")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    from reconstruction.body_models.anny_model import _quiet_warp
    from rigging import Rig

    _quiet_warp()
    import anny

    from reconstruction.body_models import AnnyModel
    from reconstruction.body_models.anny_cache import whole_cache

    with whole_cache(anny.paths.get_anny_cache_path()):
        peers = {name: anny.Anny(facial_actions="all", skinning_method=sm).to(dtype=dtype, device=dev)
                 for name, sm in (("anny (default skinning)", None), ("anny lbs", "lbs"), ("anny dqs", "dqs"))}
    model = AnnyModel(dtype=torch.float64)
    pheno = {"gender": 0.4, "age": 0.6, "muscle": 0.5, "weight": 0.5, "height": 0.6, "proportions": 0.5}
    rig = Rig.from_body_model(model, pheno)
    J, E = rig.num_joints, len(rig.blendshape_names)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {platform.node()} | {platform.processor() or platform.machine()} | torch {torch.__version__} | "
          f"threads {torch.get_num_threads()} | {dev} {args.dtype} | anny rig: {J} joints, "
          f"{rig.num_vertices} vertices, {E} facial blendshapes | load average {load:.1f} | "
          f"tune_process: {TUNED} | OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "
          f"DOPPEL_NO_TUNING={os.environ.get('DOPPEL_NO_TUNING')}")
    print(f"{'batch':>5}  {'what':<28} {'idle median':>11} {'min ms':>8}  {'anny default / this':>19}  "
          f"{'1 core busy':>11} {'min ms':>8}  {'busy/idle':>9}")
    for B in [int(b) for b in args.batches.split(",")]:
        results = bench_batch(B, rig, peers, pheno, dtype, dev, args.repeats, sync)
        ref = results["anny (default skinning)"].idle_ms
        for name, r in results.items():
            print(f"{B:>5}  {name:<28} {r.idle_ms:>11.2f} {r.idle_min_ms:>8.2f}  {ref / r.idle_ms:>18.1f}x  "
                  f"{r.busy_ms:>11.2f} {r.busy_min_ms:>8.2f}  {r.ratio:>8.1f}x")
        lbs, dqs = results["Rig.pose lbs"], results["Rig.pose dqs"]
        print(f"{B:>5}  Rig.pose lbs vs anny default forward: {ref / lbs.idle_ms:.1f}x faster; "
              f"Rig.pose dqs vs anny dqs forward: {results['anny dqs'].idle_ms / dqs.idle_ms:.1f}x faster (idle); "
              f"load average {_contention.load_average()}")


def _torch_path(rig, rotvec, expr):
    """Rig.pose LBS without the fused numba kernel (the differentiable path, the one CUDA runs)."""
    return rig.pose(rotvec, None, expr, backend="torch")


def bench_batch(B, rig, peers, pheno, dtype, dev, repeats, sync) -> dict[str, _contention.IdleBusy]:
    """Median and min ms of every peer's forward and of Rig.pose (lbs, dqs) on the same random inputs, idle and
    with one core busy (CPU; on CUDA the busy rounds are skipped)."""
    import roma

    J, E = rig.num_joints, len(rig.blendshape_names)
    g = torch.Generator().manual_seed(B)
    rotvec = (torch.randn(B, J, 3, generator=g) * 0.3).to(dtype=dtype, device=dev)
    expr = torch.rand(B, E, generator=g).to(dtype=dtype, device=dev)
    deltas = torch.eye(4, dtype=dtype, device=dev).repeat(B, J, 1, 1)
    deltas[..., :3, :3] = roma.rotvec_to_rotmat(rotvec)
    pk = {k: torch.full((B,), v, dtype=dtype, device=dev) for k, v in pheno.items()}
    fns = {name: (lambda peer=peer: peer(pose_parameters=deltas, phenotype_kwargs=pk, facial_actions=expr))
           for name, peer in peers.items()}
    for method in ("lbs", "dqs"):
        fns[f"Rig.pose {method}"] = lambda method=method: rig.pose(rotvec, None, expr, method=method)
    fns["Rig.pose lbs, torch path"] = lambda: _torch_path(rig, rotvec, expr)
    if dev.type == "cuda":
        fns = {name: (lambda fn=fn: (fn(), sync())) for name, fn in fns.items()}
    with torch.no_grad():
        return _contention.time_idle_and_busy(fns, repeats=max(1, repeats // 2), blocks=2, busy=dev.type == "cpu")


if __name__ == "__main__":
    main()
