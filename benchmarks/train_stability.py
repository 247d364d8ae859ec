"""Does a neural-double training without held-out cameras stay healthy to its last step? Constant against decayed
learning rates, with the divergence guards off so that a collapse shows instead of being repaired.

`doppel render train` without `--holdout` (the CLI's default) has no held-out views: nothing stops it early and
nothing but the training loss can tell a healthy state. At a constant learning rate such runs on the demo's
Cycles capture collapsed late (stop 39: the loss jumped ~20 x and stayed, the alpha of every render 0).
`TrainConfig.lr_schedule = "auto"` (the default since stop 40) decays the rates along a half cosine in those runs.
This script trains the same session and fit with each schedule and seed, with `diverged_loss` and `diverged_db`
set to 0 (no guard), and prints per run the mean loss of every 100-step window, the first window over 3 x the
lowest before it (a collapse), the final window's loss, the alpha of the kept model's render of the first
training view (mean inside its person mask: ~1 when healthy, 0 after a collapse) and the wall time:

    PYTHONPATH=. python benchmarks/train_stability.py --session demo_out/capture/session --fit demo_out/fit
        [--size 128] [--iterations 1200] [--seeds 0,1] [--schedules constant,auto] [--alpha-eps E] [--work DIR]
"""

# make bench: needs inputs (see the docstring's command line); `make bench` lists it and does not run it
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import core  # noqa: F401  (before torch: OpenMP's passive wait policy)

WINDOW = 100           # steps per evaluation window
COLLAPSE = 3.0         # a window over this many times the lowest before it is a collapse


def train_once(session: Path, fit: Path, out: Path, size: int, iterations: int, seed: int, schedule: str,
               alpha_eps: float = 0.0) -> dict:
    """One training without held-out views and without divergence guards -> its window losses, collapse, alpha."""
    from doppel.render_stage import TrainRequest, train_session

    small = size <= 128
    req = TrainRequest(session=session, fit=fit, out=out, holdout=[], size=size, iterations=iterations,
                       texture_size=128 if small else 256, rgb_texture_size=512 if small else 1024,
                       cgi_texture_size=512 if small else 1024,
                       options={"seed": seed, "lr_schedule": schedule, "diverged_loss": 0.0, "diverged_db": 0.0,
                                "eval_every": WINDOW, "alpha_eps": alpha_eps})
    windows: list[float] = []
    t0 = time.perf_counter()
    summary = train_session(req, out, progress=lambda step, total, loss, psnr: windows.append(loss))
    collapse = next((WINDOW * (i + 1) for i in range(1, len(windows))
                     if windows[i] > COLLAPSE * min(windows[:i])), None)
    return {"windows": windows, "collapse": collapse, "schedule": summary.get("lr_schedule"),
            "alpha": kept_alpha(out, session, fit, size), "seconds": time.perf_counter() - t0}


def kept_alpha(model_dir: Path, session: Path, fit: Path, size: int) -> float:
    """Mean alpha of the saved model's render of its first training camera (frame 0) inside the person mask."""
    from doppel.render_stage import TrainRequest, holdout_views
    from neural_render.neural_double import load_model
    from neural_render.training import render_views

    model = load_model(model_dir)[0].eval()
    req = TrainRequest(session=session, fit=fit, out=model_dir, holdout=[model.config.cameras[0]], size=size)
    views = holdout_views(req, model)
    alpha = render_views(model, views, views.holdout_ids[:1], "cpu")[0, ..., 3]
    return float(alpha[views.masks[int(views.holdout_ids[0])] > 0.5].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--session", type=Path, required=True)
    ap.add_argument("--fit", type=Path, required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=1200)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--schedules", default="constant,auto")
    ap.add_argument("--alpha-eps", type=float, default=0.0, help="TrainConfig.alpha_eps of every run (default 0)")
    ap.add_argument("--work", type=Path, default=None, help="where the models go (default: a temporary folder)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="train_stability_"))
    print(f"{args.session} + {args.fit}: {args.size} px, {args.iterations} steps, no held-out views, guards off, "
          f"alpha_eps {args.alpha_eps:g}")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for schedule in args.schedules.split(","):
            r = train_once(args.session, args.fit, work / f"{schedule}_seed{seed}", args.size, args.iterations,
                           seed, schedule, args.alpha_eps)
            rows.append((seed, schedule, r))
            print(f"seed {seed} {schedule} ({r['schedule']}): windows " + " ".join(f"{w:.4f}" for w in r["windows"]),
                  flush=True)
    print("\n| seed | schedule | collapse (step) | last window loss | lowest window | alpha of a render | wall s |")
    print("|---|---|---|---|---|---|---|")
    for seed, schedule, r in rows:
        print(f"| {seed} | {schedule} ({r['schedule']}) | {r['collapse'] or 'none'} | {r['windows'][-1]:.4f} | "
              f"{min(r['windows']):.4f} | {r['alpha']:.3f} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
