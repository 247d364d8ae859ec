"""Demo stage "neural": a small neural double trained on the capture stage's session and the fit stage's mesh,
with one camera held out; the report shows the held-out view as photo | CGI baseline | neural | error.

The demo's budget is a minute (a few seconds in quick mode), so the figures are far from a trained model's; the
full-size measurement is `benchmarks/neural_double.py` (docs/benchmarks.md).
"""

from __future__ import annotations

from doppel.report import Section


def stage_neural(ctx) -> Section:
    """Train into ``ctx.out/neural`` (a `doppel render train` model folder) when the capture and fit stages ran."""
    session, fit = ctx.state.get("capture_session"), ctx.state.get("fit_dir")
    if session is None or fit is None:
        return Section("Neural double", text="Skipped: needs the capture and fit stages.")
    import torch

    from capture.calibration_io import read_calibration
    from doppel.render_stage import TrainRequest, finish_training, train_session

    names = [c.name for c in read_calibration(session / "calibration.json")]
    holdout = names[-1:]
    d = ctx.out / "neural"
    d.mkdir(parents=True, exist_ok=True)
    req = TrainRequest(session=session, fit=fit, out=d, holdout=holdout, size=96 if ctx.quick else 192,
                       iterations=15 if ctx.quick else 100_000, minutes=None if ctx.quick else 1.0,
                       texture_size=64 if ctx.quick else 128, rgb_texture_size=256 if ctx.quick else 512,
                       cgi_texture_size=256 if ctx.quick else 512)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(min(threads, 2))
        summary = train_session(req, d, params={"seed": ctx.seed, "quick": ctx.quick, **ctx.provenance})
    finally:
        torch.set_num_threads(threads)
    finish_training(d)
    ctx.state["neural_dir"] = d
    table = {"held-out camera": holdout[0], "training size": "x".join(map(str, summary["size"])),
             "steps": summary["steps"], "best held-out PSNR (dB, in the person mask)": summary["best_holdout_psnr"],
             "budget": "15 steps (quick)" if ctx.quick else "1 minute on the CPU"}
    return Section(
        "Neural double",
        text=("A neural texture and a deferred neural renderer (neural_render) trained on the capture's photos with "
              "the fit's mesh, one camera held out (`doppel render train`). Left to right: the held-out photo, the "
              "CGI baseline (the photos baked into the fit's UV space), the neural renderer, and |neural - photo| "
              "x 4 inside the person mask. A demo-sized run: see docs/benchmarks.md for the 15-minute figures."),
        images=[("neural/holdout.png", "held-out view: photo | CGI | neural | error x 4")],
        table=table,
        files=["neural/model.safetensors", "neural/config.json", "neural/history.json"],
    )
