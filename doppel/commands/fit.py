"""`doppel fit`: fit a body model to a capture session (multi-view) or register it to a scan."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli, resolve_actor


def fit(
    session: Path = typer.Argument(None, help="Capture session folder (multi-view fit)."),
    out: Path = typer.Option(..., "--out", help="Output folder: params.json, fit_mesh.ply, metrics.json, ..."),
    landmarks: Path = typer.Option(None, "--landmarks", help="Landmark (ingest) folder of the session."),
    scan: Path = typer.Option(None, "--scan", help="A scan mesh (.ply/.obj) to register the model to."),
    model: str = typer.Option("anny", "--model", help="Body model: anny (smplx/flame: multi-view path only, later)."),
    iterations: int = typer.Option(60, "--iterations", help="Model-fit iterations."),
    rigid_init: str = typer.Option("up", "--rigid-init", help="Scan alignment start: up (scan +Y up), pca, identity."),
    nonrigid_iterations: int = typer.Option(6, "--nonrigid-iterations",
                                            help="Non-rigid ICP iterations per stiffness step (0 = no non-rigid)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
) -> None:
    """Fit the body model; writes OUT/params.json, fit_mesh.ply, fit_mesh_bind.ply, displacements.npz, metrics.json."""
    import torch

    from reconstruction.body_models import AnnyModel
    from reconstruction.scan_pipeline import ScanPipelineConfig, run_scan_fit

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    dev = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    if scan is None:
        if session is None:
            raise ValueError("give a capture SESSION_DIR (with --landmarks) or --scan SCAN.ply")
        raise ValueError("fitting from a capture session is not available yet: the session/landmark readers of the "
                         "capture package are not merged; use --scan, or the library's "
                         "reconstruction.fitting.fit_multiview with in-memory views")
    if model != "anny":
        raise ValueError(f"--model {model}: the scan path supports anny only for now")
    if iterations < 1:
        raise ValueError(f"--iterations must be >= 1, got {iterations}")
    actor_id = resolve_actor(actor, [scan], command="fit")
    console = Console()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn())
    with gate_from_cli(workspace, actor_id, production, use="fit", command="fit", inputs=[scan]) as run, \
            Progress(*columns, console=console) as bar:
        task = bar.add_task("fit: loading model", total=1.0)
        body = AnnyModel(device=dev)
        prov = {"actor_id": run.provenance["actor"], "consent_id": run.provenance["consent"],
                "production": run.provenance["production"]}
        metrics = run_scan_fit(body, scan, out, ScanPipelineConfig(iterations=iterations, rigid_init=rigid_init,
                                                  nonrigid=nonrigid_iterations > 0,
                                                  nonrigid_iterations=max(nonrigid_iterations, 1)),
                               progress=lambda d, f: bar.update(task, description=f"fit: {d}", completed=f),
                               provenance=prov)
        run.add_output(out, kind="fit")
    console.print(f"fit: registered to {scan.name}: mean distance {metrics['registered_to_scan']['mean_mm']:.2f} mm "
                  f"(model alone {metrics['model_fit_to_scan']['mean_mm']:.2f} mm) -> {out}")
